#!/usr/bin/env bash
# How much compile time `#include <proc/proc.hpp>` adds to a translation unit.
#
# Compiles four TUs with `$CXX -std=c++20 -O0 -c`, each $RUNS times, and reports the median
# CPU time (user + system) and the median wall time of the compiler:
#   empty       an empty file (the compiler's own start-up cost)
#   baseline    #include <string> and <vector> (what almost every TU has anyway)
#   proc        #include <proc/proc.hpp>
#   use         #include <proc/proc.hpp> and one proc::call (what a new user's first file costs:
#               the templates it instantiates are compiled too)
# and the added cost of proc over each, in seconds and as a ratio to the baseline. The wall time
# is what a user waits for; on a quiet machine it is close to the CPU time.
#
#   bench/compile_cost/measure.sh              the figure
#   bench/compile_cost/measure.sh --breakdown  also each public header, fmt and the heavier
#                                              standard headers alone
# Environment: CXX (default g++), RUNS (default 5), CXXFLAGS (added to every compile).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
include="$here/../../include"
cxx="${CXX:-g++}"
runs="${RUNS:-5}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# compile_median NAME SOURCE-TEXT: prints the median CPU time (user + system, in seconds) of
# compiling it. CPU time rather than wall time, so that other work on a shared machine
# disturbs the figure as little as possible.
# With WALL=1 the median wall time instead.
compile_median() {
  local src="$work/$1.cpp" times=() t
  printf '%b\n' "$2" >"$src"
  for ((i = 0; i < runs; i++)); do
    # shellcheck disable=SC2086
    if ! t=$( { TIMEFORMAT='%3U %3S %3R'; time "$cxx" -std=c++20 -O0 ${CXXFLAGS:-} -I"$include" \
      -c "$src" -o "$work/$1.o" 2>"$work/$1.err"; } 2>&1); then
      echo "error"  # does not compile on its own: the caller shows it
      return
    fi
    if [ "${WALL:-0}" = 1 ]; then
      times+=("$(awk '{ printf "%d", $3 * 1000 }' <<<"$t")")
    else
      times+=("$(awk '{ printf "%d", ($1 + $2) * 1000 }' <<<"$t")")
    fi
  done
  printf '%s\n' "${times[@]}" | sort -n | awk -v n="$runs" '{ t[NR] = $1 }
    END { m = (n % 2) ? t[(n + 1) / 2] : (t[n / 2] + t[n / 2 + 1]) / 2; printf "%.3f\n", m / 1e3 }'
}

echo "compiler: $("$cxx" --version | head -1); -std=c++20 -O0 -c; median CPU time of $runs;" \
  "load average $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
empty=$(compile_median empty "")
baseline=$(compile_median baseline "#include <string>\n#include <vector>")
proc=$(compile_median proc "#include <proc/proc.hpp>")
use=$(compile_median use "#include <proc/proc.hpp>\nint main() { return proc::call({\"true\"}); }")
wall_use=$(WALL=1 compile_median use "#include <proc/proc.hpp>\nint main() { return proc::call({\"true\"}); }")
wall_empty=$(WALL=1 compile_median empty "")
if [ "$proc" = error ] || [ "$use" = error ]; then
  cat "$work/proc.err" "$work/use.err" >&2
  exit 1
fi

awk -v e="$empty" -v b="$baseline" -v p="$proc" -v u="$use" -v wu="$wall_use" -v we="$wall_empty" 'BEGIN {
  printf "  empty TU                  %6.3f s\n", e
  printf "  <string> + <vector>       %6.3f s\n", b
  printf "  <proc/proc.hpp>           %6.3f s\n", p
  printf "  + one proc::call          %6.3f s (wall %.3f s; empty TU wall %.3f s)\n", u, wu, we
  printf "added by proc over an empty TU:        %.3f s\n", p - e
  printf "added by proc over <string>+<vector>:  %.3f s (%.1fx the baseline TU)\n", p - b, p / b
  printf "a first proc::call over an empty TU:   %.3f s CPU, %.3f s wall\n", u - e, wu - we
}'

if [ "${1:-}" = "--breakdown" ]; then
  echo "each header alone (median, seconds; includes what it includes):"
  for h in fmt/core.h fmt/format.h filesystem functional chrono variant thread mutex string vector \
    proc/shlex.hpp proc/environment.hpp proc/options.hpp proc/errors.hpp proc/pipe.hpp \
    proc/popen.hpp proc/run.hpp proc/pipeline.hpp proc/format.hpp; do
    t=$(compile_median "h_${h//[\/.]/_}" "#include <$h>")
    if [ "$t" = error ]; then
      printf '  %-24s does not compile on its own\n' "<$h>"
    else
      printf '  %-24s %6.3f\n' "<$h>" "$t"
    fi
  done
  # The same standard and fmt headers proc.hpp pulls in, without proc's own code.
  deps=(filesystem chrono thread condition_variable semaphore functional map unordered_map variant
    span optional algorithm fmt/core.h)
  text=""
  for h in "${deps[@]}"; do text+="#include <$h>\n"; done
  t=$(compile_median deps "$text")
  printf '  %-24s %6.3f  (%s)\n' "its includes alone" "$t" "${deps[*]}"
fi
