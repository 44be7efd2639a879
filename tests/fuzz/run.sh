#!/usr/bin/env bash
# Builds the fuzzers with clang++ (-fsanitize=fuzzer,address,undefined) in build/fuzz and runs
# each for a bounded time over a scratch copy of its seed corpus (tests/fuzz/corpus/<fuzzer>/,
# which is read but never written). Exits non-zero on a finding; the input that triggered it is
# kept under build/fuzz/findings/<fuzzer>/ and its log is printed.
#
#   tests/fuzz/run.sh                      every fuzzer, 20 s each (PROC_FUZZ_SECONDS)
#   tests/fuzz/run.sh shlex environment    only these
#
# Needs clang++ and libFuzzer (Debian: clang, libclang-rt-14-dev); installs them when missing
# and running as root (as CI does).
set -euo pipefail
cd "$(dirname "$0")/../.."

seconds=${PROC_FUZZ_SECONDS:-20}
build=build/fuzz
fuzzers=("$@")
[ ${#fuzzers[@]} -gt 0 ] || fuzzers=(shlex windows_quote environment codec)

need=()
command -v clang++ >/dev/null || need+=(clang)
command -v cmake >/dev/null || need+=(cmake)
if command -v dpkg-query >/dev/null && [ -z "$(find /usr/lib/llvm-*/lib/clang -name 'libclang_rt.fuzzer-x86_64.a' 2>/dev/null | head -1)" ]; then
  rt=$(apt-cache search --names-only '^libclang-rt-[0-9]+-dev$' 2>/dev/null | sort -V | tail -1 | cut -d' ' -f1)
  need+=("${rt:-libclang-rt-14-dev}")
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "run.sh: missing ${need[*]} (install them, or run as root)" >&2
    exit 2
  fi
  echo "run.sh: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi

generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
cmake -S tests/fuzz -B "$build" "${generator[@]}" -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPROC_FUZZ_REPLAY=OFF >/dev/null
cmake --build "$build"

status=0
for f in "${fuzzers[@]}"; do
  work="$build/corpus/$f"
  findings="$build/findings/$f"
  log="$build/$f.log"
  mkdir -p "$work" "$findings"
  echo "=== fuzzing $f for ${seconds} s ==="
  if "$build/${f}_fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="$findings/" -print_final_stats=1 \
      "$work" "tests/fuzz/corpus/$f" >"$log" 2>&1; then
    grep -E '^Done|stat::number_of_executed_units' "$log" || true
  else
    echo "=== $f: FINDING (see $log; inputs in $findings) ==="
    tail -n 60 "$log"
    status=1
  fi
done
[ $status -eq 0 ] && echo "fuzzing: no findings"
exit $status
