# SPDX-License-Identifier: BSD-3-Clause
"""POST /v1/batch (issue 10): several operations as one atomic change.

All results come back in order, a "get" sees the batch's earlier writes,
one failing operation leaves nothing applied, malformed batches are refused
before anything runs, and the batch survives a crash whole.
"""

import pytest
import requests

JSON = {"Content-Type": "application/json"}


def batch(server, ops, **kw):
    return requests.post(server.url + "/v1/batch", json={"ops": ops},
                         timeout=10, **kw)


def test_batch_runs_in_order_and_reads_its_writes(tallyd, key):
    a, b = key("a"), key("b")
    r = batch(tallyd, [{"op": "increment", "key": a, "by": 5},
                       {"op": "decrement", "key": b},
                       {"op": "set", "key": key("c"), "value": 7},
                       {"op": "get", "key": a},
                       {"op": "delete", "key": key("c")},
                       {"op": "get", "key": key("c")},
                       {"op": "delete", "key": key("none")}])
    assert r.status_code == 200, r.text
    assert [(x["op"], x.get("value", x.get("deleted")))
            for x in r.json()["results"]] == [
        ("increment", 5), ("decrement", -1), ("set", 7), ("get", 5),
        ("delete", True), ("get", None), ("delete", False)]
    red = tallyd.redis()
    assert red.mget(a, b, key("c")) == ["5", "-1", None]


def test_one_failure_applies_nothing(tallyd, key):
    red = tallyd.redis()
    a, big = key("a"), key("big")
    red.set(big, 2**63 - 1)
    r = batch(tallyd, [{"op": "increment", "key": a, "by": 3},
                       {"op": "set", "key": key("s"), "value": 1},
                       {"op": "increment", "key": big}])
    assert r.status_code == 409, r.text
    assert red.get(a) is None and red.get(key("s")) is None
    assert red.get(big) == str(2**63 - 1)


@pytest.mark.parametrize("body,why", [
    ({"ops": []}, "1 to 1000"),
    ({"ops": [{"op": "multiply", "key": "k"}]}, "unknown \\\"op\\\""),
    ({"ops": [{"op": "set", "key": "k"}]}, "value"),
    ({"ops": [{"op": "increment", "key": "k", "by": 1.5}]}, "by"),
    ({"ops": [{"op": "get", "key": "k", "extra": 1}]}, "unknown member"),
    ({"ops": [{"op": "get"}]}, "key"),
    ({"other": 1}, "ops"),
])
def test_malformed_batches_are_refused_whole(tallyd, key, body, why):
    # A good operation first: it must not run either.
    payload = body
    if body.get("ops"):
        payload = {"ops": [{"op": "increment", "key": key("first")}] +
                   body["ops"]}
    r = requests.post(tallyd.url + "/v1/batch", json=payload, timeout=10)
    assert r.status_code == 400, r.text
    assert why.replace("\\", "") in r.json()["detail"]
    assert tallyd.redis().get(key("first")) is None


def test_batch_needs_json_and_post(tallyd):
    r = requests.post(tallyd.url + "/v1/batch", data="{}", timeout=10,
                      headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    assert requests.get(tallyd.url + "/v1/batch", timeout=10).status_code \
        == 405


@pytest.mark.own_server
def test_batch_survives_a_crash_whole(tallyd):
    r = batch(tallyd, [{"op": "increment", "key": "x", "by": -10},
                       {"op": "increment", "key": "y", "by": 10}])
    assert r.status_code == 200
    tallyd.restart(crash=True)
    assert tallyd.redis().mget("x", "y") == ["-10", "10"]
