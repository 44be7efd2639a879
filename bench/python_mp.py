#!/usr/bin/env python3
"""Python's multiprocessing on the figures of bench_mp and bench_mp_shared, for comparison.

    python3 bench/python_mp.py [--quick]

Prints RESULT|figure|variant|median|unit|0|baseline| lines with the C++ programs' figure and
baseline names; bench/run_all.sh divides each by the raw baseline the C++ program measured in
the same run. Both start methods where they differ (spawn, fork). Every variant checks its
result, as the C++ ones do.
"""

import multiprocessing as mp
import statistics
import sys
import time


def emit(figure, variant, value, unit, baseline):
    print(f"  {variant:44} {value:12.3f} {unit}")
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


def nothing():
    pass


def inc(x):
    return x + 1


def echo(conn, other):
    other.close()  # a fork copies the parent's end too: without this, no EOF ever comes
    try:
        while True:
            conn.send_bytes(conn.recv_bytes())
    except EOFError:
        pass


def sink(conn, other, per_ack):
    other.close()
    try:
        while True:
            for _ in range(per_ack):
                assert len(conn.recv_bytes()) == 1 << 20
            conn.send_bytes(b"")
    except EOFError:
        pass


def main():
    quick = "--quick" in sys.argv
    rounds = 3 if quick else 7
    spawns = 5 if quick else 20
    pings = 500 if quick else 2000
    mib = 16 if quick else 64
    tasks = 2000 if quick else 10000

    for method in ("spawn", "fork"):
        ctx = mp.get_context(method)

        def start_join():
            p = ctx.Process(target=nothing)
            p.start()
            p.join()
            assert p.exitcode == 0

        emit("mp spawn+join", f"Python Process({method}).start+join", timed(start_join, rounds, spawns) * 1e6,
             "us", "posix_spawn self --noop + waitpid")

    ctx = mp.get_context("fork")
    a, b = ctx.Pipe()
    p = ctx.Process(target=echo, args=(b, a))
    p.start()
    b.close()
    msg = b"0123456789abcdef"

    def ping():
        a.send_bytes(msg)
        assert a.recv_bytes() == msg

    def ping_pickled():
        a.send(msg)
        assert a.recv() == msg

    emit("mp ping-pong 16 B", "Python Pipe send_bytes+recv_bytes 16 B", timed(ping, rounds, pings) * 1e6,
         "us", "raw write+read 16 B, socketpair")
    emit("mp ping-pong 16 B", "Python Pipe send+recv (pickle) 16 B", timed(ping_pickled, rounds, pings) * 1e6,
         "us", "raw write+read 16 B, socketpair")
    a.close()
    p.join()

    a, b = ctx.Pipe()
    per_ack = 8
    p = ctx.Process(target=sink, args=(b, a, per_ack))
    p.start()
    b.close()
    payload = b"m" * (1 << 20)

    def megs():
        for _ in range(per_ack):
            a.send_bytes(payload)
        a.recv_bytes()

    emit("mp 1 MiB messages (time per MiB)", "Python Pipe send_bytes 1 MiB", timed(megs, rounds, max(1, mib // per_ack)) / per_ack * 1e6,
         "us", "raw write 1 MiB, socketpair")
    a.close()
    p.join()

    with ctx.Pool(2) as pool:
        data = list(range(tasks))

        def pool_map():
            assert pool.map(inc, data) == [x + 1 for x in data]

        emit("mp Pool::map tiny tasks", "Python Pool(2).map, per task", timed(pool_map, rounds) / tasks * 1e6,
             "us", "raw write+read 16 B, socketpair")

    lock = ctx.Lock()

    def lock_unlock():
        for _ in range(10000):
            lock.acquire()
            lock.release()

    emit("mp Lock, uncontended", "Python Lock acquire+release", timed(lock_unlock, rounds) / 10000 * 1e9, "ns",
         "raw robust pthread_mutex lock+unlock")

    q = ctx.Queue()
    small = b"0123456789abcdef"

    def queue_small():
        for _ in range(64):
            q.put(small)
        for _ in range(64):
            assert q.get() == small

    emit("mp Queue small messages (per 64)", "Python Queue put+get 16 B", timed(queue_small, rounds, 20) * 1e6, "us",
         "raw SOCK_SEQPACKET send+recv 16 B")
    big = b"q" * (1 << 20)

    def queue_big():
        q.put(big)
        assert len(q.get()) == 1 << 20

    emit("mp Queue 1 MiB messages", "Python Queue put+get 1 MiB", timed(queue_big, rounds, 8 if quick else 32) * 1e6,
         "us", "raw memfd + SCM_RIGHTS 1 MiB")
    q.close()
    q.join_thread()

    with ctx.Manager() as m:
        d = m.dict({"count": 0})

        def dict_add():
            d["count"] = d["count"] + 1  # Python has no atomic add: a get and a set

        emit("mp SharedDict add round trip", "Python Manager dict get+set", timed(dict_add, rounds, 500) * 1e6, "us",
             "raw SOCK_SEQPACKET round trip to a thread")


if __name__ == "__main__":
    main()
