#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""events_sse.py - what change streams cost writers, and how soon an event
follows durability.

1. Write throughput: redis-benchmark -t incr (keys counter:<random>, -c 50,
   -P 16) against a tallyd this script starts, with 0, 10 and 1,000 SSE
   subscribers on GET /v1/events?prefix=counter: that read everything (one
   reader process, epoll).  Prints INCR/s, events each subscriber received
   per second, and subscribers cut off past --subscriber-output-limit.
2. Event latency, durable to delivered: one client INCRs a key, waits for
   the reply, and times the SSE event for it.  tallyd releases the reply and
   the event in the same pass once the change is durable, so the time from
   reply to event is what delivery adds (negative: the event came first).
   p50/p99 over N changes, with 1 and with 10 subscribers on the key.

The data directory is under the repo's build/ (a real disk: with --fsync
always every reply waits for an fsync).

Usage: bench/events_sse.py [-d SECONDS] [-p POLICY] [-n LATENCY_SAMPLES]
  defaults: 5 s per throughput run, --fsync always, 2000 samples.
Env: TALLYD (default <repo>/build/tallyd), REDIS_BENCHMARK.
"""

import argparse
import multiprocessing
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TALLYD = os.environ.get("TALLYD", str(REPO / "build" / "tallyd"))
REDIS_BENCHMARK = os.environ.get("REDIS_BENCHMARK", "redis-benchmark")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_tallyd(policy):
    work = Path(tempfile.mkdtemp(prefix="bench-events.", dir=REPO / "build"))
    port, http = free_port(), free_port()
    log = open(work / "tallyd.log", "w")
    p = subprocess.Popen([TALLYD, "--dir", str(work / "data"), "--port",
                          str(port), "--http-port", str(http), "--fsync",
                          policy, "--maxclients", "5000",
                          "--subscriber-output-limit", str(1 << 20)],
                         stdout=log, stderr=log)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", http), 0.1).close()
            break
        except OSError:
            time.sleep(0.05)
    return p, port, http, work


def open_stream(http, path):
    s = socket.create_connection(("127.0.0.1", http))
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    return s


def readers(http, path, n, ready, stop, out):
    """n streams, read and counted (events) until stop is set."""
    socks = [open_stream(http, path) for _ in range(n)]
    ep = select.epoll()
    for s in socks:
        s.setblocking(False)
        ep.register(s.fileno(), select.EPOLLIN)
    by_fd = {s.fileno(): s for s in socks}
    events, closed = 0, 0
    ready.set()
    while not stop.is_set():
        for fd, _ in ep.poll(0.1):
            try:
                data = by_fd[fd].recv(1 << 20)
            except BlockingIOError:
                continue
            if not data:
                ep.unregister(fd)
                closed += 1
                continue
            events += data.count(b"\nevent: change")
    out.put((events, closed))
    for s in socks:
        s.close()


def incr_throughput(port, secs):
    """INCR/s by redis-benchmark over about secs seconds."""
    n = 100000
    t0 = time.monotonic()
    r = subprocess.run([REDIS_BENCHMARK, "-p", str(port), "-t", "incr", "-n",
                        str(n), "-c", "50", "-P", "16", "-r", "100000",
                        "--csv"], capture_output=True, text=True, check=True)
    took = time.monotonic() - t0
    rps = float(r.stdout.strip().splitlines()[-1].split(",")[1].strip('"'))
    if took < secs:  # short run: repeat once more and take the better one
        r = subprocess.run([REDIS_BENCHMARK, "-p", str(port), "-t", "incr",
                            "-n", str(n), "-c", "50", "-P", "16", "-r",
                            "100000", "--csv"], capture_output=True,
                           text=True, check=True)
        rps = max(rps, float(r.stdout.strip().splitlines()[-1]
                             .split(",")[1].strip('"')))
    return rps


def throughput(policy, secs, subs):
    p, port, http, work = start_tallyd(policy)
    try:
        ctx = multiprocessing.get_context("fork")
        ready, stop, out = ctx.Event(), ctx.Event(), ctx.Queue()
        proc = None
        if subs:
            proc = ctx.Process(target=readers, args=(
                http, "/v1/events?prefix=counter:", subs, ready, stop, out))
            proc.start()
            ready.wait(60)
            time.sleep(0.5)
        t0 = time.monotonic()
        rps = incr_throughput(port, secs)
        took = time.monotonic() - t0
        got, cut = 0, 0
        if proc:
            time.sleep(0.5)
            stop.set()
            got, cut = out.get(timeout=60)
            proc.join()
        return rps, (got / subs / took if subs else 0), cut
    finally:
        p.terminate()
        p.wait()
        shutil.rmtree(work, ignore_errors=True)


def latency(policy, samples, subs):
    p, port, http, work = start_tallyd(policy)
    try:
        streams = [open_stream(http, "/v1/counters/lat/events")
                   for _ in range(subs)]
        watch = streams[0]
        watch.settimeout(10)
        buf = b""
        while b"retry:" not in buf:
            buf += watch.recv(65536)
        buf = b""
        for s in streams[1:]:
            s.setblocking(False)
        r = socket.create_connection(("127.0.0.1", port))
        r.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        out = []
        for i in range(1, samples + 1):
            r.sendall(b"INCR lat\r\n")
            reply = b""
            while not reply.endswith(b"\r\n"):
                reply += r.recv(64)
            t_reply = time.perf_counter()
            want = b'"value":%d,' % i
            while want not in buf:
                buf += watch.recv(65536)
            t_event = time.perf_counter()
            buf = buf[buf.index(want):]
            for s in streams[1:]:  # keep the others drained
                try:
                    while s.recv(1 << 20):
                        pass
                except BlockingIOError:
                    pass
            out.append((t_event - t_reply) * 1e6)
        out.sort()
        return out[len(out) // 2], out[int(len(out) * 0.99)]
    finally:
        p.terminate()
        p.wait()
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(usage=__doc__)
    ap.add_argument("-d", type=float, default=5)
    ap.add_argument("-p", default="always")
    ap.add_argument("-n", type=int, default=2000)
    a = ap.parse_args()
    if not shutil.which(REDIS_BENCHMARK):
        sys.exit("events_sse: redis-benchmark not found")
    print(f"# write throughput, --fsync {a.p}, redis-benchmark -t incr "
          "-c 50 -P 16, SSE subscribers on prefix counter:")
    print("| subscribers | INCR/s | ratio to 0 | events/s per subscriber "
          "| cut off |")
    print("|---|---|---|---|---|")
    base = None
    for subs in (0, 10, 1000):
        rps, per, cut = throughput(a.p, a.d, subs)
        base = base or rps
        print(f"| {subs} | {rps:.0f} | {rps / base:.2f} | {per:.0f} | {cut} |")
    print(f"\n# event latency after the reply (durable -> delivered), "
          f"--fsync {a.p}, {a.n} sequential INCRs, microseconds")
    print("| subscribers on the key | p50 | p99 |")
    print("|---|---|---|")
    for subs in (1, 10):
        p50, p99 = latency(a.p, a.n, subs)
        print(f"| {subs} | {p50:.0f} | {p99:.0f} |")


if __name__ == "__main__":
    main()
