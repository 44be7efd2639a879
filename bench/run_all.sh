#!/usr/bin/env bash
# Builds the benchmarks (preset `bench`, Release), runs every one of them and Python's
# subprocess on the same figures, and prints one table: medians, ratios to the raw baseline
# measured in the same run, and whether each target holds.
#
#   bench/run_all.sh            full run (about 10 minutes on 2 cores; needs ~10 GiB free RAM)
#   bench/run_all.sh --quick    smaller sizes and fewer rounds (a smoke test, about 1 minute)
#
# The raw output of each program is kept in build/bench/results/*.txt; the table is also
# written to build/bench/results/table.md. Numbers from a shared, busy machine are noisy: the
# ratios are paired per round, but rerun when the machine is idle for figures worth quoting.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
[[ "${1:-}" == "--quick" ]] && quick=1

cmake --preset bench >/dev/null
cmake --build --preset bench >/dev/null
bin=build/bench/bench
out=build/bench/results
mkdir -p "$out"
rm -f "$out"/*.txt

run() {
  local name=$1
  shift
  echo "== $name $*" >&2
  "$@" | tee "$out/$name.txt" | grep -v '^RESULT|' >&2
}

if ((quick)); then
  run spawn "$bin/bench_spawn" --rounds=3 --batch=50 --sizes=0,1024
  run capture "$bin/bench_capture" --rounds=2 --sizes=1,64
  run lines "$bin/bench_lines" --rounds=3 --counts=100000,1000000
  run communicate "$bin/bench_communicate" --rounds=2 --mib=64
  run pipeline "$bin/bench_pipeline" --rounds=3 --n=1000000
  run wait_for "$bin/bench_wait_for" --samples=10
  run threads "$bin/bench_threads" --rounds=3 --spawns=100
  run many "$bin/bench_many" --rounds=1 --children=1000 --bytes=100000
  run mp "$bin/bench_mp" --rounds=3 --spawns=5 --pings=500 --mib=16 --tasks=2000
  run mp_shared "$bin/bench_mp_shared" --rounds=3 --locks=50000 --msgs=50 --mib=8 --pings=500
  run run_all "$bin/bench_run_all" --rounds=3 --n=200 --children=50 --calls=500
  run python python3 bench/python_subprocess.py "$bin" --quick
  run python_mp python3 bench/python_mp.py --quick
else
  run spawn "$bin/bench_spawn" --rounds=11 --batch=100 --sizes=0,2048,8192
  run capture "$bin/bench_capture" --rounds=5 --sizes=1,16,128,1024
  run lines "$bin/bench_lines" --rounds=7 --counts=100000,1000000,10000000
  run communicate "$bin/bench_communicate" --rounds=5 --mib=1024
  run pipeline "$bin/bench_pipeline" --rounds=11 --n=10000000
  run wait_for "$bin/bench_wait_for" --samples=40
  run threads "$bin/bench_threads" --rounds=9 --spawns=300
  run many "$bin/bench_many" --rounds=3 --children=1000 --bytes=100000
  run mp "$bin/bench_mp"
  run mp_shared "$bin/bench_mp_shared"
  run run_all "$bin/bench_run_all"
  run python python3 bench/python_subprocess.py "$bin"
  run python_mp python3 bench/python_mp.py
fi

{
  echo "machine: $(nproc) cores, $(uname -sr), $(ldd --version | head -1 | sed 's/.* //' | sed 's/^/glibc /'), $(g++ --version | head -1)"
  echo
  for f in spawn capture lines communicate pipeline wait_for threads many mp mp_shared run_all python python_mp; do
    cat "$out/$f.txt"
  done | grep '^RESULT|' | python3 -c '
import sys
rows = [l.rstrip("\n").split("|")[1:] for l in sys.stdin]
base = {(r[0], r[1]): float(r[2]) for r in rows}
print("| figure | variant | median | ratio | vs | target | |")
print("|---|---|---:|---:|---|---|---|")
for fig, var, val, unit, ratio, vs, target in rows:
    val, ratio = float(val), float(ratio)
    if ratio == 0 and vs:  # Python rows: divide by the C++ raw baseline of the same run
        b = base.get((fig, vs))
        ratio = val / b if b else float("nan")
    ok = ""
    if target.startswith("<="):
        ok = "met" if ratio <= float(target[2:]) else "MISSED"
    elif target.startswith(">="):
        ok = "met" if ratio >= float(target[2:]) else "MISSED"
    elif target.startswith("<") and target.endswith("us"):
        ok = "met" if val < float(target[1:-2]) else "MISSED"
    elif target:
        ok = "met"
    print(f"| {fig} | {var} | {val:.4g} {unit} | {ratio:.3f}x | {vs} | {target} | {ok} |")
'
} | tee "$out/table.md"
