#!/usr/bin/env bash
# Installs what proc needs on Debian or Ubuntu, with apt-get: as root directly, otherwise
# through sudo. Packages already installed are left alone, and nothing runs when none is
# missing.
#
#   scripts/install-deps.sh           everything the whole suite uses (scripts/test.sh)
#   scripts/install-deps.sh minimal   enough to build proc and run its native tests and examples
set -euo pipefail

minimal=(cmake ninja-build g++ catch2 libfmt-dev)
all=("${minimal[@]}" clang clang-format python3 pkg-config g++-mingw-w64-x86-64 wine
     libasio-dev libcereal-dev)

case "${1:-all}" in
  minimal) want=("${minimal[@]}") ;;
  all) want=("${all[@]}") ;;
  *) echo "usage: $0 [minimal|all]" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
# libFuzzer comes with the clang runtime of the distribution's clang (14 on Debian 12).
if [ "${1:-all}" = all ]; then
  rt=$(apt-cache search --names-only '^libclang-rt-[0-9]+-dev$' 2>/dev/null | sort -V | tail -1 | cut -d' ' -f1)
  if command -v clang >/dev/null; then
    major=$(clang --version | sed -n 's/.*clang version \([0-9]*\).*/\1/p' | head -1)
    [ -n "$major" ] && rt="libclang-rt-$major-dev"
  fi
  [ -n "$rt" ] && ! dpkg -s "$rt" >/dev/null 2>&1 && missing+=("$rt")
fi
[ ${#missing[@]} -eq 0 ] && exit 0

as_root=()
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null; then
    echo "install-deps.sh: need root or sudo to install: ${missing[*]}" >&2
    exit 1
  fi
  as_root=(sudo)
fi
echo "installing: ${missing[*]}"
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
# The clang runtime named after clang itself, now that clang is there.
if [ "${1:-all}" = all ] && command -v clang >/dev/null; then
  major=$(clang --version | sed -n 's/.*clang version \([0-9]*\).*/\1/p' | head -1)
  if [ -n "$major" ] && ! dpkg -s "libclang-rt-$major-dev" >/dev/null 2>&1; then
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "libclang-rt-$major-dev" >/dev/null
  fi
fi
