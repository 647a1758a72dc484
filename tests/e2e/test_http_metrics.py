# SPDX-License-Identifier: BSD-3-Clause
"""/metrics: the page parses as Prometheus text format 0.0.4 (with a small,
strict parser written here), every family the docs promise is there with the
right type, histograms are well formed, and the numbers move as operations
happen."""

import math
import re

import pytest

from test_http_util import TIMEOUT, counter_url, session

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(rf"^({NAME})(?:\{{((?:{LABEL})(?:,{LABEL})*)?,?\}})?"
                    r" (\S+)(?: (-?\d+))?$")
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')


def parse_float(text):
    if text in ("+Inf", "Inf"):
        return math.inf
    if text == "-Inf":
        return -math.inf
    if text == "NaN":
        return math.nan
    return float(text)


def parse_prometheus(text):
    """Parse exposition text into {family: {"type", "help", "samples":
    [(name, labels dict, value)]}}.  Raises AssertionError on anything the
    format does not allow."""
    assert text.endswith("\n"), "exposition must end with a newline"
    families, current = {}, None
    for n, line in enumerate(text.split("\n")[:-1], 1):
        where = f"line {n}: {line!r}"
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            kind, name, rest = line[2:6], *line[7:].split(" ", 1)
            assert re.fullmatch(NAME, name), where
            fam = families.setdefault(name, {"type": "untyped", "help": None,
                                             "samples": []})
            if kind == "TYPE":
                assert rest in ("counter", "gauge", "histogram", "summary",
                                "untyped"), where
                assert not fam["samples"], f"TYPE after samples, {where}"
                fam["type"] = rest
            else:
                fam["help"] = rest
            current = name
            continue
        if line.startswith("#") or line == "":
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample, {where}"
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        fam_name = current
        if name != current:
            if current and families[current]["type"] == "histogram" and \
                    name in (current + "_bucket", current + "_sum",
                             current + "_count"):
                pass
            else:  # a sample with no TYPE line is an untyped family
                assert name not in families, f"family split up, {where}"
                families[name] = {"type": "untyped", "help": None,
                                  "samples": []}
                fam_name = current = name
        parsed = dict(LABEL_RE.findall(labels))
        families[fam_name]["samples"].append((name, parsed, parse_float(value)))
    for name, fam in families.items():
        assert fam["samples"], f"family {name} has no samples"
        seen = set()
        for sname, labels, _ in fam["samples"]:
            ident = (sname, tuple(sorted(labels.items())))
            assert ident not in seen, f"duplicate series {ident}"
            seen.add(ident)
    return families


def check_histogram(fam, name):
    buckets = [(parse_float(lb["le"]), v) for n, lb, v in fam["samples"]
               if n == name + "_bucket"]
    assert buckets and buckets[-1][0] == math.inf, name
    bounds = [b for b, _ in buckets]
    assert bounds == sorted(bounds) and len(set(bounds)) == len(bounds), name
    counts = [c for _, c in buckets]
    assert counts == sorted(counts), f"{name} buckets not cumulative"
    (count,) = [v for n, _, v in fam["samples"] if n == name + "_count"]
    (total,) = [v for n, _, v in fam["samples"] if n == name + "_sum"]
    assert count == buckets[-1][1] and total >= 0
    return count, total


def scrape(s, tallyd):
    r = s.get(tallyd.url + "/metrics", timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == \
        "text/plain; version=0.0.4; charset=utf-8"
    return parse_prometheus(r.text)


def value(fams, family, **labels):
    for _, lb, v in fams[family]["samples"]:
        if lb == labels:
            return v
    raise KeyError((family, labels))


EXPECTED = {
    "tally_commands_total": "counter",
    "tally_command_errors_total": "counter",
    "tally_connected_clients": "gauge",
    "tally_counters": "gauge",
    "tally_syncs_total": "counter",
    "tally_inline_syncs_total": "counter",
    "tally_sync_duration_seconds": "histogram",
    "tally_group_commit_batch_size": "histogram",
    "tally_log_bytes": "gauge",
    "tally_snapshot_bytes": "gauge",
    "tally_last_snapshot_time_seconds": "gauge",
    "tally_recovery_duration_seconds": "gauge",
    "tally_healthy": "gauge",
    "tally_health_code": "gauge",
    "tally_once_ids": "gauge",
    "tally_once_bytes": "gauge",
    "tally_once_replays_total": "counter",
    "tally_http_idempotency_requests_total": "counter",
    "tally_events_released_total": "counter",
    "tally_events_dropped_total": "counter",
    "tally_events_subscribers": "gauge",
    "tally_subscribers_cut_off_total": "counter",
}


def test_parser_rejects_what_prometheus_rejects():
    for bad in ("x 1", "x{a=1} 1\n", "x{a=\"1\"}\n", "# TYPE x bogus\nx 1\n",
                "x 1\nx 2\n", "1x 2\n"):
        with pytest.raises((AssertionError, ValueError)):
            parse_prometheus(bad)


def test_metrics_parse_and_have_every_family(tallyd):
    s = session(tallyd)
    fams = scrape(s, tallyd)
    for name, typ in EXPECTED.items():
        assert name in fams, name
        assert fams[name]["type"] == typ, name
        assert fams[name]["help"], name
    check_histogram(fams["tally_sync_duration_seconds"],
                    "tally_sync_duration_seconds")
    check_histogram(fams["tally_group_commit_batch_size"],
                    "tally_group_commit_batch_size")
    assert value(fams, "tally_healthy") == 1
    assert value(fams, "tally_health_code") == 0
    for proto in ("resp", "http", "memcache"):
        assert value(fams, "tally_commands_total", protocol=proto,
                     command="incrby") >= 0


def test_metrics_move_as_operations_happen(tallyd, key):
    s = session(tallyd)
    before = scrape(s, tallyd)
    # When 7 increments arrive over HTTP, 3 over RESP, one overflows, and a
    # new counter is created
    for _ in range(7):
        assert s.post(counter_url(tallyd, key(), "increment"),
                      timeout=TIMEOUT).status_code == 200
    r = tallyd.redis()
    for _ in range(3):
        r.incr(key("resp"))
    s.put(counter_url(tallyd, key("max")), json={"value": 2**63 - 1},
          timeout=TIMEOUT)
    assert s.post(counter_url(tallyd, key("max"), "increment"),
                  timeout=TIMEOUT).status_code == 409
    after = scrape(s, tallyd)

    def delta(fam, **lb):
        return value(after, fam, **lb) - value(before, fam, **lb)

    # Then the per-protocol command counts moved by at least that much
    # (a shared server may see other traffic too)
    assert delta("tally_commands_total", protocol="http",
                 command="incrby") >= 8
    assert delta("tally_commands_total", protocol="resp",
                 command="incrby") >= 3
    assert delta("tally_commands_total", protocol="http", command="set") >= 1
    assert delta("tally_command_errors_total", protocol="http",
                 command="incrby") >= 1
    # and the engine made at least one sync, which the histograms count
    assert delta("tally_syncs_total") >= 1
    c0, _ = check_histogram(before["tally_sync_duration_seconds"],
                            "tally_sync_duration_seconds")
    c1, s1 = check_histogram(after["tally_sync_duration_seconds"],
                             "tally_sync_duration_seconds")
    assert c1 > c0 and s1 > 0
    b0, _ = check_histogram(before["tally_group_commit_batch_size"],
                            "tally_group_commit_batch_size")
    b1, bsum = check_histogram(after["tally_group_commit_batch_size"],
                               "tally_group_commit_batch_size")
    assert b1 > b0 and bsum >= 11
    assert value(after, "tally_counters") >= 3
    assert value(after, "tally_log_bytes") > value(before, "tally_log_bytes")


@pytest.mark.own_server
def test_counters_gauge_counts_exactly(tallyd_factory):
    d = tallyd_factory()
    s = session(d)
    assert value(scrape(s, d), "tally_counters") == 0
    for i in range(5):
        s.put(counter_url(d, f"c{i}"), json={"value": i}, timeout=TIMEOUT)
    s.delete(counter_url(d, "c0"), timeout=TIMEOUT)
    assert value(scrape(s, d), "tally_counters") == 4


@pytest.mark.own_server
def test_connected_clients_counts_resp_connections(tallyd_factory):
    d = tallyd_factory()
    s = session(d)
    base = value(scrape(s, d), "tally_connected_clients")
    clients = [d.raw() for _ in range(3)]
    for c in clients:
        assert c.cmd("PING") == b"PONG"
    assert value(scrape(s, d), "tally_connected_clients") == base + 3
    for c in clients:
        c.close()


@pytest.mark.engine_files("the engine's snapshots")
@pytest.mark.own_server
def test_snapshot_shows_in_metrics(tallyd_factory):
    d = tallyd_factory()
    s = session(d)
    s.put(counter_url(d, "k"), json={"value": 1}, timeout=TIMEOUT)
    assert d.redis().save() is True
    fams = scrape(s, d)
    assert value(fams, "tally_snapshot_bytes") > 0
    assert value(fams, "tally_last_snapshot_time_seconds") > 1_600_000_000
