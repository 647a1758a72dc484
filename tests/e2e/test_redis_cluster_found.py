# SPDX-License-Identifier: BSD-3-Clause
"""Regressions the black-box suite's pass over --store redis+cluster:// found
in the cluster store (src/store/redis_cluster*.c), each named after what
broke, on a cluster of the test's own (test_redis_cluster.py's Cluster,
three masters).  The suite's own tests that found them run in that pass too
(./test.sh, TALLY_TEST_STORE=redis-cluster).
"""
import re

import pytest
import requests

from test_redis_cluster import masters  # noqa: F401

pytestmark = pytest.mark.own_server


def test_a_master_fact_the_cluster_keeps_itself_is_named_once(
        tallyd_factory, masters):
    # Given tallyd on a cluster that has run a batch (a WATCH on one counter)
    t = tallyd_factory(store=masters.uri)
    r = t.redis()
    with r.pipeline() as p:
        p.watch("w")
        p.multi()
        p.incr("w")
        assert p.execute() == [1]
    # When INFO store and /metrics are read
    with t.raw() as c:
        info = c.cmd("INFO", "store").decode()
    names = [line.partition(":")[0] for line in info.splitlines()
             if ":" in line]
    text = requests.get(t.url + "/metrics", timeout=10).text
    types = re.findall(r"^# TYPE (\S+) ", text, re.M)
    # Then each fact is named once, the batch counts being the cluster's
    # (they used to come once more, a master's zero, after the cluster's)
    assert sorted(names) == sorted(set(names)), info
    assert sorted(types) == sorted(set(types))
    assert names.count("store_redis_batch_commits") == 1
    assert r.info("store")["store_redis_batch_commits"] == 1
    assert "tally_store_redis_batch_commits 1" in text.splitlines()
    # And every master's fact is still there, merged
    for name in ("store_durability", "store_ops", "store_unknown_outcomes",
                 "store_reconnects"):
        assert name in names, info
