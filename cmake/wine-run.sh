#!/bin/sh
# The emulator ctest runs the Windows executables with: `wine-run.sh <wine> <wineserver> <exe> ...`
# (CMAKE_CROSSCOMPILING_EMULATOR, set in mingw-w64.cmake).
#
# The first Wine program of a prefix starts the Wine server and Wine's own service processes
# (services.exe, explorer.exe, winedevice.exe, ...), and they keep that program's stdout and
# stderr. Under ctest those are the test's output pipe, which ctest reads to its end: the test
# that happened to start Wine would wait for Wine to shut down, that is for the end of the whole
# run, and time out. So the server is started here with no descriptor of ours, kept for 30 s
# after its last client, and one Wine program without our descriptors starts the services. A
# lock keeps two tests from starting Wine at once.
wine=$1
wineserver=$2
shift 2
lock="${TMPDIR:-/tmp}/proc-wine-start-$(id -u).lock"
(
  flock 9
  # Exit status 0: a new server was started (a running one makes it fail at once).
  # Neither gets the lock's descriptor either: the server would hold the lock while it runs.
  if "$wineserver" -p30 </dev/null >/dev/null 2>&1 9>&-; then
    "$wine" cmd.exe /c exit </dev/null >/dev/null 2>&1 9>&- || true
  fi
) 9>"$lock"
exec "$wine" "$@"
