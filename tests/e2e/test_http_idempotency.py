# SPDX-License-Identifier: BSD-3-Clause
"""Exactly once over HTTP: the Idempotency-Key header on POST, PUT, DELETE.

A client whose request timed out sends it again with the same key; the
server applies it once and answers every retry with the first response,
marked `Idempotent-Replayed: true`: after repeats, after a SIGKILL and
restart, under 20 parallel copies.  A key reused for another request is a
422 and changes nothing; a retry while the first is not durable yet is a
409 with Retry-After.  Keys share one table with RESP's .ONCE commands.
See docs/http.md, "Exactly once".
"""

import concurrent.futures
import http.client
import socket
import uuid
from pathlib import Path

import pytest

from test_http_metrics import parse_prometheus
from test_http_util import (TIMEOUT, RawResponse, assert_problem,
                            counter_url, get_value, raw_request, session)

REPLAYED = "Idempotent-Replayed"


def new_key(name="req"):
    return f"{name}-{uuid.uuid4()}"


def post(s, server, key, action, idem, body=None):
    return s.post(counter_url(server, key, action), json=body,
                  headers={"Idempotency-Key": idem}, timeout=TIMEOUT)


def assert_first(r, status=200):
    assert r.status_code == status, r.text
    assert REPLAYED not in r.headers


def assert_replay(r, first):
    """r repeats the first response: status, body bytes, and the mark."""
    assert r.status_code == first.status_code, r.text
    assert r.content == first.content
    assert r.headers.get(REPLAYED) == "true"


def idem_metrics(s, server):
    r = s.get(f"{server.url}/metrics", timeout=TIMEOUT)
    assert r.status_code == 200
    fams = parse_prometheus(r.text)
    out = {name: fams[name]["samples"][0][2]
           for name in ("tally_once_ids", "tally_once_bytes",
                        "tally_once_replays_total")}
    for _, labels, v in fams["tally_http_idempotency_requests_total"]["samples"]:
        out[labels["outcome"]] = v
    return out


def test_same_key_sent_100_times_counts_once(tallyd, key):
    # Given a counter at 10 and one logical increment with its key
    s = session(tallyd)
    k, idem = key("hits"), new_key()
    assert s.put(counter_url(tallyd, k), json={"value": 10},
                 timeout=TIMEOUT).status_code == 200
    # When the increment is sent 100 times
    first = post(s, tallyd, k, "increment", idem, {"by": 5})
    retries = [post(s, tallyd, k, "increment", idem, {"by": 5})
               for _ in range(99)]
    # Then the first applied it, each retry is its response again, marked
    assert_first(first)
    assert first.json() == {"key": k, "value": 15}
    for r in retries:
        assert_replay(r, first)
    assert get_value(s, tallyd, k) == 15
    # And a plain change in between does not change what the key answers
    s.post(counter_url(tallyd, k, "increment"), timeout=TIMEOUT)
    assert_replay(post(s, tallyd, k, "increment", idem, {"by": 5}), first)
    assert get_value(s, tallyd, k) == 16


def test_quoted_and_bare_key_are_one_key(tallyd, key):
    # The draft's sf-string form "abc" and the bare abc name the same id
    s = session(tallyd)
    k, idem = key(), new_key()
    first = post(s, tallyd, k, "increment", f'"{idem}"')
    assert_first(first)
    assert_replay(post(s, tallyd, k, "increment", idem), first)
    # An empty body and {"by": 1} are the same request
    assert_replay(post(s, tallyd, k, "increment", idem, {"by": 1}), first)
    assert get_value(s, tallyd, k) == 1


@pytest.mark.own_server
def test_retries_after_sigkill_and_restart_are_replays(tallyd):
    # Given an acknowledged increment with a key (so it is durable)
    s = session(tallyd)
    idem = new_key()
    s.put(counter_url(tallyd, "crash"), json={"value": 100}, timeout=TIMEOUT)
    first = post(s, tallyd, "crash", "increment", idem, {"by": 7})
    assert_first(first)
    assert first.json()["value"] == 107
    # When the server is SIGKILLed and restarted before the client retries
    tallyd.restart(crash=True)
    s = session(tallyd)
    # Then 100 retries get the first response, and nothing more is counted
    for _ in range(100):
        assert_replay(post(s, tallyd, "crash", "increment", idem, {"by": 7}),
                      first)
    assert get_value(s, tallyd, "crash") == 107
    # And the key is still refused for another request
    assert_problem(post(s, tallyd, "crash", "increment", idem, {"by": 8}),
                   422, "idempotency-key-reused")
    m = idem_metrics(s, tallyd)
    assert m["tally_once_ids"] >= 1
    assert m["tally_once_replays_total"] == 100
    assert m["replayed"] == 100 and m["reused"] == 1


def test_reused_key_with_another_request_is_422_and_changes_nothing(tallyd,
                                                                   key):
    # Given a key used for "increment k by 5"
    s = session(tallyd)
    k, other, idem = key(), key("other"), new_key()
    first = post(s, tallyd, k, "increment", idem, {"by": 5})
    assert_first(first)
    # When it comes back with another body, key path, method or action
    attempts = [
        lambda: post(s, tallyd, k, "increment", idem, {"by": 6}),
        lambda: post(s, tallyd, k, "increment", idem),
        lambda: post(s, tallyd, other, "increment", idem, {"by": 5}),
        lambda: post(s, tallyd, k, "decrement", idem, {"by": 5}),
        lambda: s.put(counter_url(tallyd, k), json={"value": 5},
                      headers={"Idempotency-Key": idem}, timeout=TIMEOUT),
        lambda: s.delete(counter_url(tallyd, k),
                         headers={"Idempotency-Key": idem}, timeout=TIMEOUT),
    ]
    for attempt in attempts:
        r = attempt()
        # Then each is a 422 problem that says why, and nothing changes
        body = assert_problem(r, 422, "idempotency-key-reused")
        assert "different request" in body["detail"]
        assert REPLAYED not in r.headers
    assert get_value(s, tallyd, k) == 5
    assert get_value(s, tallyd, other) is None
    # And the first request still replays
    assert_replay(post(s, tallyd, k, "increment", idem, {"by": 5}), first)


def test_decrement_by_n_is_increment_by_minus_n(tallyd, key):
    s = session(tallyd)
    k, idem = key(), new_key()
    first = post(s, tallyd, k, "decrement", idem, {"by": 3})
    assert first.json()["value"] == -3
    assert_replay(post(s, tallyd, k, "increment", idem, {"by": -3}), first)
    assert get_value(s, tallyd, k) == -3


def test_put_with_key_replays_and_does_not_overwrite(tallyd, key):
    # Given a PUT with a key, then a later plain change
    s = session(tallyd)
    k, idem = key(), new_key()

    def put():
        return s.put(counter_url(tallyd, k), json={"value": 7},
                     headers={"Idempotency-Key": idem}, timeout=TIMEOUT)
    first = put()
    assert_first(first)
    assert first.json() == {"key": k, "value": 7}
    s.put(counter_url(tallyd, k), json={"value": 8}, timeout=TIMEOUT)
    # When the PUT is retried
    # Then it answers as the first time and leaves the later value alone
    assert_replay(put(), first)
    assert get_value(s, tallyd, k) == 8


def test_delete_with_key_replays_204_and_404(tallyd, key):
    s = session(tallyd)
    k, gone = key(), key("never")
    d1, d2 = new_key("d1"), new_key("d2")

    def delete(name, idem):
        return s.delete(counter_url(tallyd, name),
                        headers={"Idempotency-Key": idem}, timeout=TIMEOUT)
    # Given a counter deleted with a key, then created again
    s.put(counter_url(tallyd, k), json={"value": 1}, timeout=TIMEOUT)
    first = delete(k, d1)
    assert_first(first, 204)
    s.put(counter_url(tallyd, k), json={"value": 2}, timeout=TIMEOUT)
    # When the DELETE is retried, it is the first 204 again; nothing deleted
    assert_replay(delete(k, d1), first)
    assert get_value(s, tallyd, k) == 2
    # Given a DELETE of a missing counter (a 404, recorded too)
    miss = delete(gone, d2)
    assert_problem(miss, 404, "not-found")
    assert REPLAYED not in miss.headers
    s.put(counter_url(tallyd, gone), json={"value": 3}, timeout=TIMEOUT)
    # When it is retried after the counter was created, it is still a 404
    again = delete(gone, d2)
    assert_problem(again, 404, "not-found")
    assert_replay(again, miss)
    assert get_value(s, tallyd, gone) == 3


def test_get_ignores_the_header(tallyd, key):
    s = session(tallyd)
    k, idem = key(), new_key()
    s.put(counter_url(tallyd, k), json={"value": 4}, timeout=TIMEOUT)
    for _ in range(2):
        r = s.get(counter_url(tallyd, k), headers={"Idempotency-Key": idem},
                  timeout=TIMEOUT)
        assert r.status_code == 200 and REPLAYED not in r.headers
    # The key was not used by the GETs: an increment takes it as new
    assert_first(post(s, tallyd, k, "increment", idem))
    assert get_value(s, tallyd, k) == 5


def test_parallel_requests_with_one_key_count_once(tallyd, key):
    # Given 20 clients sending the same increment with the same key at once
    k, idem, n = key(), new_key(), 20

    def one(_):
        with session(tallyd) as s:
            return post(s, tallyd, k, "increment", idem, {"by": 2})
    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        answers = list(pool.map(one, range(n)))
    # Then exactly one applied it, each other answer is a replay of it or a
    # 409 "in flight" with Retry-After, and the counter moved once
    first = assert_applied_once(answers)
    s = session(tallyd)
    assert get_value(s, tallyd, k) == 2
    # And a retry now, once the first is durable, is a replay
    assert_replay(post(s, tallyd, k, "increment", idem, {"by": 2}), first)


def assert_applied_once(answers):
    """Of answers to copies of one keyed request, exactly one applied it and
    each other is a replay of it or a 409 "in flight"; returns that one."""
    applied = [r for r in answers
               if r.status_code == 200 and REPLAYED not in r.headers]
    assert len(applied) == 1, [(r.status_code, r.text) for r in answers]
    for r in answers:
        if r is applied[0]:
            continue
        if r.status_code == 409:
            assert_problem(r, 409, "idempotency-key-in-flight")
            assert r.headers["Retry-After"] == "1"
            assert REPLAYED not in r.headers
        else:
            assert_replay(r, applied[0])
    return applied[0]


def send_at_once(server, target, idem, n):
    """Send the same POST with Idempotency-Key idem on n connections opened
    beforehand, back to back from one thread, so the server reads them all
    within microseconds (well inside one fsync); return the n responses."""
    req = (f"POST {target} HTTP/1.1\r\n"
           f"Host: {server.host}:{server.http_port}\r\n"
           f"Idempotency-Key: {idem}\r\nContent-Length: 0\r\n"
           "Connection: close\r\n").encode()
    if server.password:
        req += f"Authorization: Bearer {server.password}\r\n".encode()
    conns = [socket.create_connection((server.host, server.http_port),
                                      TIMEOUT) for _ in range(n)]
    try:
        for c in conns:
            c.sendall(req + b"\r\n")
        out = []
        for c in conns:
            r = http.client.HTTPResponse(c)
            r.begin()
            out.append(RawResponse(r.status, r.headers, r.read()))
        return out
    finally:
        for c in conns:
            c.close()


def test_retry_before_the_first_is_durable_is_409(tallyd, key):
    """Copies that arrive while the first request's fsync runs must get 409
    with Retry-After, never a replay of a response that a crash could still
    take back.  Whether a copy lands inside the fsync is timing, so try a
    few rounds until one does."""
    seen_409 = 0
    for rnd in range(1, 21):
        k = key(f"r{rnd}")
        target = counter_url(tallyd, k, "increment").removeprefix(tallyd.url)
        answers = send_at_once(tallyd, target, new_key(), 8)
        applied = [r for r in answers
                   if r.status_code == 200 and REPLAYED not in r.headers]
        assert len(applied) == 1, [(r.status_code, r.text) for r in answers]
        for r in answers:
            if r.status_code == 409:
                assert_problem(r, 409, "idempotency-key-in-flight")
                assert r.headers["Retry-After"] == "1"
                assert REPLAYED not in r.headers
                seen_409 += 1
            elif r is not applied[0]:
                assert_replay(r, applied[0])
        assert get_value(session(tallyd), tallyd, k) == 1
        if seen_409:
            break
    assert seen_409 > 0, "no copy arrived while the first was in flight"


def test_key_from_resp_once_replays_over_http(tallyd, key):
    """RESP's .ONCE ids and HTTP's keys are one table: the same change sent
    over either protocol with the same id is one request."""
    s, r = session(tallyd), tallyd.redis()
    k = key()
    i, dc, st, dl, gd = (new_key(x) for x in ("i", "dc", "s", "dl", "gd"))
    # INCRBY.ONCE, then the same increment over HTTP
    assert r.execute_command("INCRBY.ONCE", k, 5, i) == 5
    rep = post(s, tallyd, k, "increment", i, {"by": 5})
    assert rep.status_code == 200 and rep.headers.get(REPLAYED) == "true"
    assert rep.json() == {"key": k, "value": 5}
    # DECRBY.ONCE k 2 is HTTP's decrement by 2
    assert r.execute_command("DECRBY.ONCE", k, 2, dc) == 3
    rep = post(s, tallyd, k, "decrement", dc, {"by": 2})
    assert rep.headers.get(REPLAYED) == "true" and rep.json()["value"] == 3
    # SET.ONCE is PUT
    assert r.execute_command("SET.ONCE", k, 9, st) in ("OK", True)
    rep = s.put(counter_url(tallyd, k), json={"value": 9},
                headers={"Idempotency-Key": st}, timeout=TIMEOUT)
    assert rep.headers.get(REPLAYED) == "true" and rep.json()["value"] == 9
    assert r.get(k) == "9"
    # And an HTTP first is replayed by RESP
    first = post(s, tallyd, k, "increment", new_key("h"), {"by": 1})
    assert r.execute_command("INCRBY.ONCE", k, 1,
                             first.request.headers["Idempotency-Key"]) == 10
    assert r.get(k) == "10"
    # DEL.ONCE is DELETE; GETDEL.ONCE is another request (it reports the value)
    assert r.execute_command("DEL.ONCE", k, dl) == 1
    rep = s.delete(counter_url(tallyd, k), headers={"Idempotency-Key": dl},
                   timeout=TIMEOUT)
    assert rep.status_code == 204 and rep.headers.get(REPLAYED) == "true"
    r.set(k, 4)
    assert r.execute_command("GETDEL.ONCE", k, gd) == "4"
    assert_problem(s.delete(counter_url(tallyd, k),
                            headers={"Idempotency-Key": gd}, timeout=TIMEOUT),
                   422, "idempotency-key-reused")
    # And the key's use over HTTP for another change is refused
    assert_problem(post(s, tallyd, k, "increment", i, {"by": 6}), 422,
                   "idempotency-key-reused")


@pytest.mark.parametrize("value, why", [
    (b"", "1 to 256 bytes"),
    (b'""', "1 to 256 bytes"),
    (b"x" * 257, "1 to 256 bytes"),
    (b'"' + b"x" * 257 + b'"', "1 to 256 bytes"),
    (b'"abc', "no closing quote"),
    (b'"abc";p=1', "nothing may follow"),
    (b'"a\\bc"', "backslash"),
    (b'"caf\xc3\xa9"', "printable ASCII"),
])
def test_bad_key_is_400_and_changes_nothing(tallyd, key, value, why):
    k = key()
    r = raw_request(tallyd, "POST", counter_url(tallyd, k, "increment")
                    .removeprefix(tallyd.url), {"Idempotency-Key": value})
    body = assert_problem(r, 400, "bad-idempotency-key")
    assert why in body["detail"]
    assert get_value(session(tallyd), tallyd, k) is None


def test_longest_key_and_escapes_are_accepted(tallyd, key):
    s = session(tallyd)
    k = key()
    longest = "x" * 256
    first = post(s, tallyd, k, "increment", longest)
    assert_first(first)
    # 256 bytes inside the quotes is the same id
    assert_replay(post(s, tallyd, k, "increment", f'"{longest}"'), first)
    # \" and \\ unescape: "a\"b\\c" is the id a"b\c
    esc = new_key('a"b\\c')
    quoted = '"' + esc.replace("\\", "\\\\").replace('"', '\\"') + '"'
    first = post(s, tallyd, k, "increment", quoted)
    assert_first(first)
    assert_replay(post(s, tallyd, k, "increment", esc), first)
    assert get_value(s, tallyd, k) == 2


def test_two_key_headers_are_400(tallyd, key):
    k = key()
    r = raw_request(tallyd, "POST", counter_url(tallyd, k, "increment")
                    .removeprefix(tallyd.url),
                    [("Idempotency-Key", "a1"), ("Idempotency-Key", "a1")])
    body = assert_problem(r, 400, "bad-idempotency-key")
    assert "more than once" in body["detail"]
    assert get_value(session(tallyd), tallyd, k) is None


def test_failed_first_request_leaves_the_key_unused(tallyd, key):
    # Given an increment with a key that overflows (nothing is recorded)
    s = session(tallyd)
    k, idem = key(), new_key()
    s.put(counter_url(tallyd, k), json={"value": 2**63 - 1}, timeout=TIMEOUT)
    assert_problem(post(s, tallyd, k, "increment", idem), 409, "overflow")
    # When the counter has room and the request is retried
    s.put(counter_url(tallyd, k), json={"value": 0}, timeout=TIMEOUT)
    # Then the retry is a first attempt
    assert_first(post(s, tallyd, k, "increment", idem))
    assert get_value(s, tallyd, k) == 1


@pytest.mark.own_server
def test_metrics_move(tallyd):
    s = session(tallyd)
    before = idem_metrics(s, tallyd)
    assert before["tally_once_ids"] == 0
    assert before["tally_once_replays_total"] == 0
    idem = new_key()
    post(s, tallyd, "m", "increment", idem)                  # applied
    post(s, tallyd, "m", "increment", idem)                  # replayed
    post(s, tallyd, "m", "increment", idem, {"by": 2})       # reused
    post(s, tallyd, "m", "increment", "x" * 300)             # invalid
    s.put(counter_url(tallyd, "m"), json={"value": 2**63 - 1},
          timeout=TIMEOUT)
    post(s, tallyd, "m", "increment", new_key())             # failed
    tallyd.redis().execute_command("INCRBY.ONCE", "m2", 1, new_key())
    after = idem_metrics(s, tallyd)
    assert after["tally_once_ids"] == 2  # the HTTP key and the RESP id
    assert after["tally_once_bytes"] > before["tally_once_bytes"]
    assert after["tally_once_replays_total"] == 1
    for outcome, n in (("applied", 1), ("replayed", 1), ("reused", 1),
                       ("invalid", 1), ("failed", 1), ("inflight", 0)):
        assert after[outcome] - before[outcome] == n, outcome


def test_documents_match_the_server(tallyd, key):
    """openapi.yaml declares the header on exactly the methods that honour
    it, with the replay header, 409 and 422; both documents name the
    problem types the server sends for keys."""
    yaml = pytest.importorskip("yaml")
    docs = Path(__file__).resolve().parents[2] / "docs"
    spec = yaml.safe_load((docs / "openapi.yaml").read_text())
    prose = (docs / "http.md").read_text()
    param = "#/components/parameters/IdempotencyKey"
    takes = set()
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method == "parameters":
                continue
            if {"$ref": param} in op.get("parameters", []):
                takes.add((method, path))
                assert {"409", "422"} <= set(op["responses"]), (method, path)
    assert takes == {("put", "/v1/counters/{key}"),
                     ("delete", "/v1/counters/{key}"),
                     ("post", "/v1/counters/{key}/increment"),
                     ("post", "/v1/counters/{key}/decrement"),
                     ("post", "/v1/batch")}
    assert spec["components"]["parameters"]["IdempotencyKey"]["name"] == \
        "Idempotency-Key"
    assert REPLAYED in spec["components"]["responses"]["Counter"]["headers"]
    # Provoke each problem and look for its type in both documents
    s = session(tallyd)
    k, idem = key(), new_key()
    post(s, tallyd, k, "increment", idem)
    seen = [assert_problem(post(s, tallyd, k, "increment", idem, {"by": 2}),
                           422)["type"],
            assert_problem(post(s, tallyd, k, "increment", "x" * 257),
                           400)["type"],
            "urn:tally:problem:idempotency-key-in-flight"]
    enum = spec["components"]["schemas"]["Problem"]["properties"]["type"][
        "enum"]
    for t in seen:
        assert t in enum
        assert f"`{t.removeprefix('urn:tally:problem:')}`" in prose
    assert f"`{REPLAYED}: true`" in prose
