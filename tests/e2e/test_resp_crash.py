# SPDX-License-Identifier: BSD-3-Clause
"""Many clients increment while the server is SIGKILLed and restarted over
and over: every acknowledged increment must survive and none may count twice.

Each client sends INCRs over its own raw socket (no library retries, so each
request is sent exactly once) to a counter shared by all and to one of its
own.  A reply that arrived is acknowledged; a request sent whose reply never
arrived may or may not have happened.  So per counter, after the storm:
    acknowledged <= final value <= attempted.
A client's own counter has a single writer, so the values its INCRs return
must also strictly increase and never exceed the final value.
"""

import os
import random
import socket
import threading
import time

import pytest

from conftest import Closed, RawResp, RespError

pytestmark = pytest.mark.own_server

CLIENTS = int(os.environ.get("TALLY_TEST_CLIENTS", "12"))
KILL_CYCLES = int(os.environ.get("TALLY_TEST_KILL_CYCLES", "15"))


class Worker(threading.Thread):
    def __init__(self, server, idx, stop):
        super().__init__(daemon=True)
        self.server, self.idx, self.stop = server, idx, stop
        self.own = f"own:{idx}"
        self.acked = {"shared": 0, self.own: 0}
        self.attempted = {"shared": 0, self.own: 0}
        self.own_values = []   # what INCR on the own counter returned, in order
        self.errors = []       # error replies: none is expected
        self.rng = random.Random(idx)

    def connect(self):
        while not self.stop.is_set():
            try:
                return RawResp(self.server.host, self.server.port, timeout=5)
            except OSError:
                time.sleep(0.01)  # server is down; it comes back soon
        return None

    def run(self):
        conn = None
        while not self.stop.is_set():
            if conn is None:
                conn = self.connect()
                if conn is None:
                    return
            # A small pipelined batch: several INCRs written at once.
            batch = [self.rng.choice(("shared", self.own))
                     for _ in range(self.rng.randint(1, 8))]
            try:
                conn.send(b"".join(RawResp.encode("INCR", k) for k in batch))
            except OSError:
                # Some of these bytes may have reached the server.
                for k in batch:
                    self.attempted[k] += 1
                conn.close()
                conn = None
                continue
            for k in batch:
                self.attempted[k] += 1
            try:
                for k in batch:
                    reply = conn.read()
                    if isinstance(reply, RespError):
                        self.errors.append((k, reply.text))
                        continue
                    self.acked[k] += 1
                    if k == self.own:
                        self.own_values.append(reply)
            except (Closed, OSError, socket.timeout):
                conn.close()
                conn = None
        if conn is not None:
            conn.close()


def test_acknowledged_increments_survive_repeated_sigkill(tallyd):
    # Given a dozen clients incrementing a shared counter and their own
    stop = threading.Event()
    workers = [Worker(tallyd, i, stop) for i in range(CLIENTS)]
    for w in workers:
        w.start()
    rng = random.Random(1)
    deadline = time.monotonic() + 120
    try:
        # When the server is killed and restarted again and again under load
        for _ in range(KILL_CYCLES):
            time.sleep(rng.uniform(0.1, 0.4))
            tallyd.kill()
            tallyd.start()
            assert time.monotonic() < deadline, "kill cycles took too long"
        time.sleep(0.3)  # some traffic against the last incarnation
    finally:
        stop.set()
        for w in workers:
            w.join(30)
    assert not any(w.is_alive() for w in workers), "a client thread hung"

    # Then, read back after one more clean restart
    tallyd.restart(crash=False)
    r = tallyd.redis()
    errors = [e for w in workers for e in w.errors]
    assert not errors, f"error replies during the storm: {errors[:5]}"

    shared_acked = sum(w.acked["shared"] for w in workers)
    shared_attempted = sum(w.attempted["shared"] for w in workers)
    shared = int(r.get("shared") or 0)
    assert shared_acked > 0, "no increment was ever acknowledged"
    assert shared_acked <= shared <= shared_attempted, (
        f"shared: acknowledged {shared_acked}, final {shared}, "
        f"attempted {shared_attempted}")

    present = 1
    for w in workers:
        final = int(r.get(w.own) or 0)
        present += final > 0
        assert w.acked[w.own] <= final <= w.attempted[w.own], (
            f"{w.own}: acknowledged {w.acked[w.own]}, final {final}, "
            f"attempted {w.attempted[w.own]}")
        vals = w.own_values
        assert all(a < b for a, b in zip(vals, vals[1:])), (
            f"{w.own}: INCR replies went backwards or repeated: {vals}")
        assert not vals or vals[-1] <= final, (
            f"{w.own}: INCR once answered {vals[-1]} but the counter reads {final}")
    assert r.dbsize() == present, "counters appeared that nobody wrote"
