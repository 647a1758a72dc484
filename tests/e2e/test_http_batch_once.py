# SPDX-License-Identifier: BSD-3-Clause
"""POST /v1/batch with an Idempotency-Key (issue 10): the whole batch once.

The first request applies the batch and records its answer with the key in
the batch's own log record; every retry with the same key and operations
gets that answer back byte for byte, marked `Idempotent-Replayed: true`,
and applies nothing: after repeats, after a SIGKILL and restart, under
parallel copies.  The same key with another batch (or a key a single change
used) is a 422; a retry while the first is not durable yet a 409.  A failed
batch records nothing.  See docs/http.md, "Batches".
"""

import concurrent.futures
import os
import random
import threading
import time
import uuid

import pytest
import requests

from conftest import STORE
from test_http_idempotency import (REPLAYED, assert_applied_once,
                                   assert_first, assert_replay)
from test_http_util import TIMEOUT, assert_problem, counter_url, session


def new_key():
    return f"batch-{uuid.uuid4()}"


def batch(s, server, ops, idem):
    return s.post(server.url + "/v1/batch", json={"ops": ops},
                  headers={"Idempotency-Key": idem}, timeout=TIMEOUT)


def move(a, b, n):
    """Move n from a to b and read both: a constant-sum transfer."""
    return [{"op": "decrement", "key": a, "by": n},
            {"op": "increment", "key": b, "by": n},
            {"op": "get", "key": a}, {"op": "get", "key": b}]


def values(server, *keys):
    red = server.redis()
    return [None if v is None else int(v) for v in red.mget(*keys)]


def test_batch_retry_is_the_first_answer_and_applies_nothing(tallyd, key):
    # Given a transfer sent with a key
    s, a, b, idem = session(tallyd), key("a"), key("b"), new_key()
    tallyd.redis().set(a, 100)
    first = batch(s, tallyd, move(a, b, 30), idem)
    assert_first(first)
    assert [x["value"] for x in first.json()["results"]] == [70, 30, 70, 30]
    # When it is sent again, after the counters moved on
    tallyd.redis().incrby(a, 1000)
    for _ in range(20):
        # Then each retry is the first answer, byte for byte, and nothing ran
        assert_replay(batch(s, tallyd, move(a, b, 30), idem), first)
    assert values(tallyd, a, b) == [1070, 30]


def test_batch_retry_after_sigkill_is_the_first_answer(tallyd, key):
    # Given an acknowledged batch with a key (so it is durable)
    s, a, b, idem = session(tallyd), key("a"), key("b"), new_key()
    first = batch(s, tallyd, move(a, b, 5) + [{"op": "set", "key": key("c"),
                                              "value": 9}], idem)
    assert_first(first)
    # When tallyd is SIGKILLed and restarted before the client retries
    tallyd.restart(crash=True)
    s = session(tallyd)
    # Then the retry gets the identical first answer, and the counters moved
    # once
    for _ in range(5):
        assert_replay(batch(s, tallyd, move(a, b, 5) +
                            [{"op": "set", "key": key("c"), "value": 9}],
                            idem), first)
    assert values(tallyd, a, b, key("c")) == [-5, 5, 9]
    # And through a snapshot (the engine's own) and a clean restart too
    if STORE == "engine":
        tallyd.redis().save()
    tallyd.restart()
    assert_replay(batch(session(tallyd), tallyd, move(a, b, 5) +
                        [{"op": "set", "key": key("c"), "value": 9}], idem),
                  first)
    assert values(tallyd, a, b) == [-5, 5]


def test_concurrent_batch_retries_apply_once(tallyd, key):
    # Given 16 clients sending the same keyed batch at once
    a, b, idem, n = key("a"), key("b"), new_key(), 16

    def one(_):
        with session(tallyd) as s:
            return batch(s, tallyd, move(a, b, 3), idem)
    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        answers = list(pool.map(one, range(n)))
    # Then exactly one applied it; every other answer is a replay of it or
    # a 409 in flight, and the counters moved once
    first = assert_applied_once(answers)
    assert values(tallyd, a, b) == [-3, 3]
    assert_replay(batch(session(tallyd), tallyd, move(a, b, 3), idem), first)


def test_batch_key_with_another_batch_is_422(tallyd, key):
    s, a, b, idem = session(tallyd), key("a"), key("b"), new_key()
    assert_first(batch(s, tallyd, move(a, b, 1), idem))
    # Another amount, another order, decrement for increment by minus: each
    # is another batch
    for ops in (move(a, b, 2), list(reversed(move(a, b, 1))),
                [{"op": "increment", "key": a, "by": -1}] + move(a, b, 1)[1:]):
        assert_problem(batch(s, tallyd, ops, idem), 422,
                       "idempotency-key-reused")
    assert values(tallyd, a, b) == [-1, 1]
    # A single change's key is not a batch's, nor the other way round
    single = new_key()
    r = s.post(counter_url(tallyd, a, "increment"),
               headers={"Idempotency-Key": single}, timeout=TIMEOUT)
    assert_first(r)
    assert_problem(batch(s, tallyd, [{"op": "increment", "key": a}], single),
                   422, "idempotency-key-reused")
    r = s.post(counter_url(tallyd, a, "increment"),
               headers={"Idempotency-Key": idem}, timeout=TIMEOUT)
    assert_problem(r, 422, "idempotency-key-reused")
    assert values(tallyd, a, b) == [0, 1]


def test_same_operations_spelt_differently_are_one_batch(tallyd, key):
    s, a, idem = session(tallyd), key("a"), new_key()
    first = batch(s, tallyd, [{"op": "increment", "key": a}], idem)
    assert_first(first)
    # "by": 1 is the default, and member order does not matter
    r = s.post(tallyd.url + "/v1/batch",
               data='{"ops": [{"key": "%s", "by": 1, "op": "increment"}]}' % a,
               headers={"Idempotency-Key": idem,
                        "Content-Type": "application/json"},
               timeout=TIMEOUT)
    assert_replay(r, first)
    assert values(tallyd, a) == [1]


def test_failed_batch_records_nothing(tallyd, key):
    s, big, a, idem = session(tallyd), key("big"), key("a"), new_key()
    red = tallyd.redis()
    red.set(big, 2**63 - 1)
    ops = [{"op": "increment", "key": a}, {"op": "increment", "key": big}]
    assert_problem(batch(s, tallyd, ops, idem), 409, "overflow")
    assert red.get(a) is None
    # Its retry is a first attempt: it runs (and fails) again, until it can
    red.set(big, 0)
    r = batch(s, tallyd, ops, idem)
    assert_first(r)
    assert values(tallyd, a, big) == [1, 1]


def test_batch_answer_too_big_to_keep_is_413(tallyd, key):
    # 1000 reads of long keys answer more than the 64 KiB a key may keep
    s, idem = session(tallyd), new_key()
    long_key = key("k") + "x" * 100
    ops = [{"op": "increment", "key": long_key}] + \
        [{"op": "get", "key": long_key}] * 999
    r = batch(s, tallyd, ops, idem)
    assert_problem(r, 413, "too-large")
    assert "Idempotency-Key" in r.json()["detail"]
    assert tallyd.redis().get(long_key) is None
    # Without a key the same batch is fine
    r = s.post(tallyd.url + "/v1/batch", json={"ops": ops}, timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    assert tallyd.redis().get(long_key) == "1"


def test_bad_batch_key_is_400(tallyd, key):
    s = session(tallyd)
    for idem in ("", "x" * 257, '"open'):
        r = batch(s, tallyd, [{"op": "increment", "key": key("a")}], idem)
        assert_problem(r, 400, "bad-idempotency-key")
    assert tallyd.redis().get(key("a")) is None


def test_batch_without_a_key_is_unchanged(tallyd, key):
    s, a = session(tallyd), key("a")
    for i in range(1, 3):
        r = requests.post(tallyd.url + "/v1/batch",
                          json={"ops": [{"op": "increment", "key": a}]},
                          timeout=TIMEOUT)
        assert r.status_code == 200 and REPLAYED not in r.headers
        assert r.json()["results"][0]["value"] == i
    s.close()


@pytest.mark.own_server
def test_keyed_batches_under_random_sigkills_apply_exactly_once(
        tallyd_factory):
    """A client sends keyed transfers (1 from a to b, and a read of b) back
    to back while tallyd is SIGKILLed at random moments, 30 times.  After
    each restart it retries every key it sent, answered or not, until it
    gets a 200.  Each transfer must count once, whether its record made it
    before the crash or only with the retry: in the end b holds exactly as
    many as there were keys, a the opposite, and a retry of an answered key
    is its first answer."""
    rng = random.Random(int(os.environ.get("TALLY_TEST_SEED", "10")))
    server = tallyd_factory()
    ops = [{"op": "decrement", "key": "a"}, {"op": "increment", "key": "b"},
           {"op": "get", "key": "b"}]
    sent, answered = [], {}

    def sender(stop):
        with session(server) as s:
            while not stop.is_set():
                idem = new_key()
                sent.append(idem)
                try:
                    r = s.post(server.url + "/v1/batch", json={"ops": ops},
                               headers={"Idempotency-Key": idem}, timeout=5)
                except requests.RequestException:
                    return
                if r.status_code != 200:
                    return
                answered[idem] = r

    for _ in range(30):
        stop = threading.Event()
        t = threading.Thread(target=sender, args=(stop,), daemon=True)
        t.start()
        time.sleep(rng.uniform(0.01, 0.08))
        server.kill()
        stop.set()
        t.join(10)
        assert not t.is_alive()
        server.start()
        with session(server) as s:
            for idem in sent:
                r = batch(s, server, ops, idem)
                while r.status_code == 409:  # in flight: retry shortly
                    time.sleep(0.01)
                    r = batch(s, server, ops, idem)
                if idem in answered:
                    assert_replay(r, answered[idem])
                else:
                    assert r.status_code == 200, r.text
                    answered[idem] = r
    assert len(sent) > 30
    assert values(server, "a", "b") == [-len(sent), len(sent)]
    # Every transfer saw its own place in the sequence: no two answers the
    # same value of b, and none is missing.
    seen = sorted(r.json()["results"][2]["value"] for r in answered.values())
    assert seen == list(range(1, len(sent) + 1))


@pytest.mark.own_server
def test_same_keyed_batch_on_two_instances_applies_once(tallyd_factory,
                                                        tmp_path):
    """Two tallyd instances on one database get the same keyed batch at the
    same moment, many times over: each batch applies once, and both
    instances answer it byte for byte the same (one of them a replay)."""
    if STORE == "engine":
        pytest.skip("instances share counters only on a remote store")
    shared = str(tmp_path / "shared")
    one, two = tallyd_factory(dir=shared), tallyd_factory(dir=shared)
    rounds = 25
    send_on_both(one, two, "a", "b", rounds)
    assert values(one, "a", "b") == [-rounds, rounds]
    assert values(two, "a", "b") == [-rounds, rounds]


def send_on_both(one, two, a, b, rounds):
    """rounds keyed transfers of 1 from a to b, each sent to instances one
    and two at the same moment: both answer 200 with the same bytes, one
    of them a replay, and each round moved the counters once."""
    go = threading.Barrier(2)

    def send(server, idem):
        with session(server) as s:
            go.wait(TIMEOUT)
            r = batch(s, server, move(a, b, 1), idem)
            while r.status_code == 409:  # in flight: retry shortly
                time.sleep(0.01)
                r = batch(s, server, move(a, b, 1), idem)
            return r

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        for i in range(rounds):
            idem = new_key()
            x, y = pool.map(send, (one, two), (idem, idem))
            assert x.status_code == 200 and y.status_code == 200, \
                (x.text, y.text)
            assert x.content == y.content
            assert (REPLAYED in x.headers) != (REPLAYED in y.headers)
            assert [v["value"] for v in x.json()["results"]][2:] == \
                [-(i + 1), i + 1]
