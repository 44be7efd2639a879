#!/usr/bin/env python3
"""Python's subprocess on the same figures as the C++ benchmarks, for comparison.

    python3 bench/python_subprocess.py BUILD_BENCH_DIR [--quick]

BUILD_BENCH_DIR holds bench_noop and bench_child (build/bench/bench). Prints one line per
figure in the C++ programs' format, RESULT|figure|variant|median|unit|0|baseline|, with the
figure names of the C++ programs; bench/run_all.sh divides by the raw baseline that the C++
program measured in the same run. Every variant checks its result like the C++ ones do.
"""

import os
import resource
import statistics
import subprocess
import sys
import time


def emit(figure, variant, value, unit, baseline):
    print(f"  {variant:34} {value:12.3f} {unit}")
    print(f"RESULT|{figure}|{variant}|{value:.6g}|{unit}|0|{baseline}|", flush=True)


def timed(fn, rounds, batch=1):
    fn()  # warm-up
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(batch):
            fn()
        samples.append((time.perf_counter() - t0) / batch)
    return statistics.median(samples)


def which(name):
    for d in os.environ.get("PATH", "/usr/bin:/bin").split(":"):
        p = os.path.join(d or ".", name)
        if os.access(p, os.X_OK):
            return p
    sys.exit(f"{name} not found")


def spawn(noop, rounds, batch):
    def run():
        assert subprocess.run([noop]).returncode == 0

    def capture():
        r = subprocess.run([noop], stdout=subprocess.PIPE)
        assert r.returncode == 0 and r.stdout == b""

    def raw():
        pid = os.posix_spawn(noop, [noop], os.environ)
        assert os.waitpid(pid, 0)[1] == 0

    fig = "spawn+wait, parent 0 MiB resident"
    emit(fig, "python subprocess.run", timed(run, rounds, batch) * 1e6, "us",
         "raw posix_spawn+waitpid")
    emit(fig, "python run(stdout=PIPE)", timed(capture, rounds, batch) * 1e6, "us",
         "raw posix_spawn+pipe")
    emit(fig, "python os.posix_spawn+waitpid", timed(raw, rounds, batch) * 1e6, "us",
         "raw posix_spawn+waitpid")


def capture_one(child, nbytes):
    """Runs in a fresh interpreter: time and peak memory growth of check_output."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t0 = time.perf_counter()
    out = subprocess.check_output([child, "spew", str(nbytes)])
    dt = time.perf_counter() - t0
    assert len(out) == nbytes and out[63:64] == b"\n"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(dt, peak, before)


def capture(child, rounds, mib):
    nbytes = mib << 20
    times, mems = [], []
    for _ in range(rounds):
        out = subprocess.check_output(
            [sys.executable, __file__, "--capture-one", child, str(nbytes)])
        dt, peak, before = (float(x) for x in out.split())
        times.append(dt)
        mems.append((peak - before) / nbytes)
    emit(f"capture {mib} MiB: time", "python check_output", statistics.median(times) * 1e3,
         "ms", "raw read, 1 MiB pipe")
    m = statistics.median(mems)
    print(f"  {'python check_output':34} peak growth {m:.3f}x output size")
    print(f"RESULT|capture {mib} MiB: peak memory|python check_output|{m * mib:.6g}|MiB|{m:.4f}|"
          f"output size|", flush=True)


def lines(rounds, count):
    seq = which("seq")

    def it():
        p = subprocess.Popen([seq, str(count)], stdout=subprocess.PIPE)
        n = 0
        for _ in p.stdout:
            n += 1
        p.stdout.close()
        assert p.wait() == 0 and n == count

    emit(f"lines of seq {count}", "python for line in p.stdout",
         timed(it, rounds) / count * 1e9, "ns/line", "raw read 64 KiB + memchr")


def communicate(rounds, mib):
    cat = which("cat")
    data = bytes((97 + i % 23 for i in range(23))) * ((mib << 20) // 23 + 1)
    data = data[: mib << 20]

    def it():
        p = subprocess.Popen([cat], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        out, _ = p.communicate(data)
        assert p.returncode == 0 and len(out) == len(data) and out[-1] == data[-1]

    emit(f"{mib} MiB both ways through cat", "python communicate", timed(it, rounds) * 1e3, "ms",
         "raw poll loop, 64 KiB pipes")


def pipeline(rounds, n):
    seq, grep, wc = which("seq"), which("grep"), which("wc")
    expected = sum(1 for i in range(1, n + 1) if "7" in str(i))

    def it():
        p1 = subprocess.Popen([seq, str(n)], stdout=subprocess.PIPE)
        p2 = subprocess.Popen([grep, "7"], stdin=p1.stdout, stdout=subprocess.PIPE)
        p1.stdout.close()
        p3 = subprocess.Popen([wc, "-l"], stdin=p2.stdout, stdout=subprocess.PIPE)
        p2.stdout.close()
        out, _ = p3.communicate()
        assert p1.wait() == 0 and p2.wait() == 0 and p3.returncode == 0
        assert int(out) == expected

    emit(f"pipeline seq {n}, grep 7, wc -l", "python Popen chain", timed(it, rounds) * 1e3, "ms",
         "raw 3x posix_spawn")


def wait_latency(child, samples):
    lat = []
    for _ in range(samples):
        p = subprocess.Popen([child, "stamp", "20"], stdout=subprocess.PIPE)
        rc = p.wait(timeout=5)
        back = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        stamp = int(p.stdout.read())
        p.stdout.close()
        assert rc == 0
        lat.append((back - stamp) / 1e3)
    emit("wait latency after exit (median)", "python wait(timeout=5)", statistics.median(lat),
         "us", "raw pidfd poll+waitid")


def run_many(noop, rounds, n):
    """Python's answer to run_all: a ThreadPoolExecutor of 2 running subprocess.run."""
    from concurrent.futures import ThreadPoolExecutor

    def it():
        with ThreadPoolExecutor(max_workers=2) as ex:
            codes = list(ex.map(lambda _: subprocess.run([noop]).returncode, range(n)))
        assert codes == [0] * n

    emit("run_all of many no-op children", "python ThreadPoolExecutor(2) + run",
         timed(it, rounds) / n * 1e6, "us/child", "sequential raw posix_spawn+waitpid / 2")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--capture-one":
        capture_one(sys.argv[2], int(sys.argv[3]))
        return
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    d = sys.argv[1]
    quick = "--quick" in sys.argv
    noop, child = os.path.join(d, "bench_noop"), os.path.join(d, "bench_child")
    print("Python", sys.version.split()[0], "subprocess")
    spawn(noop, 3 if quick else 7, 50 if quick else 200)
    capture(child, 2 if quick else 5, 64 if quick else 1024)
    lines(1 if quick else 3, 1000000 if quick else 10000000)
    communicate(1 if quick else 3, 64 if quick else 1024)
    pipeline(1 if quick else 5, 1000000 if quick else 10000000)
    wait_latency(child, 5 if quick else 20)
    run_many(noop, 2 if quick else 5, 200 if quick else 1000)


if __name__ == "__main__":
    main()
