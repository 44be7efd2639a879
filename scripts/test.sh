#!/usr/bin/env bash
# The whole test suite, as CI runs it: the native build (g++) with tests, examples and package
# tests; the tests again under AddressSanitizer+UBSan and under ThreadSanitizer (the examples,
# packaging, docs and compile-time checks come out the same there: PROC_TEST_ONCE and
# PROC_BUILD_EXAMPLES are off); the clang build;
# the Windows back end cross-compiled with mingw-w64 and run under Wine; and a short run of each
# fuzzer (tests/fuzz/run.sh, 20 s each). First, every C++ file must be clang-formatted.
#
#   scripts/test.sh            everything
#   scripts/test.sh default    one or more steps by name
#                              (format default clang asan tsan windows-mingw fuzz)
set -euo pipefail
cd "$(dirname "$0")/.."

presets=("$@")
if [ ${#presets[@]} -eq 0 ]; then
  presets=(format default clang asan tsan)
  if [ -f cmake/mingw-w64.cmake ] && command -v x86_64-w64-mingw32-g++-posix >/dev/null && command -v wine >/dev/null; then
    presets+=(windows-mingw)
  fi
  presets+=(fuzz)
fi

for preset in "${presets[@]}"; do
  echo "=== preset: $preset ==="
  start=$(date +%s)
  if [ "$preset" = format ]; then
    bad=$(git ls-files '*.hpp' '*.cpp' | while read -r f; do
      clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || echo "$f"
    done)
    if [ -n "$bad" ]; then
      echo "not clang-formatted (run clang-format -i):" $bad >&2
      exit 1
    fi
    echo "=== format: every C++ file is clang-formatted ==="
    continue
  fi
  if [ "$preset" = fuzz ]; then
    tests/fuzz/run.sh
    echo "=== fuzz: no findings in $(( $(date +%s) - start )) s ==="
    continue
  fi
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset"
  ctest --preset "$preset"
  echo "=== preset $preset: passed in $(( $(date +%s) - start )) s ==="
done
