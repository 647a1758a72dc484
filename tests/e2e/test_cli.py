# SPDX-License-Identifier: BSD-3-Clause
"""End-to-end tests of `tally`, the command-line client and offline tools.

Each test runs the real binary ($TALLY_CLI, default build/tally) against a
real tallyd started by conftest.py's fixtures, and checks what a shell script
would see: stdout, stderr and the exit status (0 ok, 1 not found, 2 error;
check: 0 clean, 1 torn tail, 3 corrupt).
The online tests use keys unique to the test, so they also run against a
server given by $TALLY_TEST_ADDR; the offline ones (check, dump, restore,
repair) stop their own server and work on its data directory.
"""

import base64
import json
import os
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import TALLY_CLI, free_port

OK, NOTFOUND, ERROR = 0, 1, 2
TORN, CORRUPT = 1, 3  # check's verdicts beside OK


def run(*args, server=None, input=None, env=None, timeout=60):
    """Run tally with args (str or bytes, passed as they are) and return the
    CompletedProcess with stdout and stderr as bytes.  With server, the -H,
    -p and -a options that reach it come first."""
    argv = [TALLY_CLI]
    if server is not None:
        argv += ["-H", server.host, "-p", str(server.port)]
        if server.password:
            argv += ["-a", server.password]
    argv += [a if isinstance(a, bytes) else str(a) for a in args]
    full_env = {k: v for k, v in os.environ.items()
                if not k.startswith("TALLY_")}
    full_env.update(env or {})
    return subprocess.run(argv, input=input, capture_output=True,
                          timeout=timeout, env=full_env)


def out(p):
    return p.stdout.decode()


def err(p):
    return p.stderr.decode("utf-8", "replace")


def json_lines(p):
    return [json.loads(line) for line in p.stdout.decode().splitlines()]


def key_bytes(obj):
    """The key of a dump/list JSON object, as bytes."""
    if "key_b64" in obj:
        return base64.b64decode(obj["key_b64"], validate=True)
    return obj["key"].encode()


# ---- online commands ------------------------------------------------------

def test_incr_decr_set_get_del_print_values_and_exit_0(tallyd, key):
    k = key("c")
    assert out(run("incr", k, server=tallyd)) == "1\n"
    assert out(run("incr", k, "41", server=tallyd)) == "42\n"
    assert out(run("decr", k, server=tallyd)) == "41\n"
    assert out(run("decr", k, "-9", server=tallyd)) == "50\n"
    p = run("get", k, server=tallyd)
    assert (p.returncode, out(p)) == (OK, "50\n")
    p = run("set", k, "-9223372036854775808", server=tallyd)
    assert (p.returncode, out(p)) == (OK, "OK\n")
    assert out(run("get", k, server=tallyd)) == "-9223372036854775808\n"
    p = run("del", k, server=tallyd)
    assert p.returncode == OK
    assert tallyd.redis().get(k) is None


def test_get_and_del_of_a_missing_counter_exit_1(tallyd, key):
    k = key("missing")
    p = run("get", k, server=tallyd)
    assert (p.returncode, out(p)) == (NOTFOUND, "")
    assert "not found" in err(p)
    p = run("del", k, server=tallyd)
    assert p.returncode == NOTFOUND
    assert "not found" in err(p)


def test_json_output_of_every_online_command_parses(tallyd, key):
    k = key("j")

    def js(*args, rc=OK):
        p = run("--json", *args, server=tallyd)
        assert p.returncode == rc, err(p)
        return json.loads(out(p))

    assert js("ping") == {"pong": True}
    assert js("incr", k, "5") == {"key": k, "value": 5}
    assert js("decr", k, "2") == {"key": k, "value": 3}
    assert js("set", k, "9223372036854775807") == {
        "key": k, "value": 9223372036854775807}
    assert js("get", k) == {"key": k, "value": 9223372036854775807}
    assert js("del", k) == {"deleted": True}
    assert js("del", k, rc=NOTFOUND) == {"deleted": False}
    assert js("get", k, rc=NOTFOUND) == {"key": k, "value": None}
    info = js("info")
    assert isinstance(info, dict) and info


def test_info_prints_the_servers_info_text(tallyd):
    p = run("info", server=tallyd)
    assert p.returncode == OK
    assert "\r" not in out(p)
    assert re.search(r"^\w+:", out(p), re.M), out(p)


def test_a_server_error_reply_exits_2_with_the_message(tallyd, key):
    k = key("max")
    assert run("set", k, "9223372036854775807", server=tallyd).returncode == OK
    p = run("incr", k, server=tallyd)
    assert (p.returncode, out(p)) == (ERROR, "")
    assert "overflow" in err(p)
    assert tallyd.redis().get(k) == "9223372036854775807"


def test_connection_refused_exits_2():
    p = run("-p", str(free_port()), "ping")
    assert p.returncode == ERROR
    assert "refused" in err(p).lower()


def test_a_server_that_never_answers_times_out_with_exit_2():
    with socket.socket() as silent:  # accepts (backlog) but never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        start = time.monotonic()
        p = run("-p", str(silent.getsockname()[1]), "--timeout", "1", "ping")
        assert p.returncode == ERROR
        assert "in time" in err(p)
        assert time.monotonic() - start < 10


@pytest.mark.parametrize("args", [
    ["get"], ["get", "a", "b"], ["incr", "k", "1.5"], ["incr", "k", "007"],
    ["set", "k"], ["set", "k", "ten"], ["nosuchcommand"], ["--bogus", "ping"],
    ["-p", "99999", "ping"], [], ["check"], ["dump", "--dir"],
    ["repair", "--dir", "x", "--force"],
])
def test_bad_usage_exits_2_without_touching_anything(args):
    p = run(*args)
    assert p.returncode == ERROR
    assert p.stdout == b""
    assert err(p)


def test_help_describes_every_command():
    p = run("--help")
    assert p.returncode == OK
    for cmd in ("get", "incr", "decr", "set", "del", "list", "info", "ping",
                "check", "dump", "restore", "repair"):
        assert f"tally {cmd}" in out(p)
        q = run(cmd, "--help")
        assert q.returncode == OK and out(q).startswith("usage: tally"), cmd


def test_a_key_spelled_like_an_option_is_still_a_key(tallyd, key):
    k = "--help" + key("opt")
    assert out(run("incr", "--", k, server=tallyd)) == "1\n"
    assert out(run("incr", k, "-5", server=tallyd)) == "-4\n"
    assert tallyd.redis().get(k) == "-4"


def test_environment_gives_host_port_and_password(tallyd_factory):
    d = tallyd_factory(requirepass="s3cret")
    env = {"TALLY_HOST": d.host, "TALLY_PORT": str(d.port)}
    p = run("ping", env=env)
    assert p.returncode == ERROR  # no password: the server refuses
    p = run("ping", env=dict(env, TALLY_PASSWORD="s3cret"))
    assert (p.returncode, out(p)) == (OK, "PONG\n")
    p = run("-a", "wrong", "ping", env=env)
    assert p.returncode == ERROR
    # A flag wins over the environment.
    p = run("-p", str(d.port), "-a", "s3cret", "ping",
            env={"TALLY_PORT": str(free_port())})
    assert p.returncode == OK


def test_list_pages_through_every_counter_under_a_literal_prefix(tallyd, key):
    r = tallyd.redis()
    prefix = key("p*[?]\\")  # glob characters must match only themselves
    pipe = r.pipeline(transaction=False)
    for i in range(2500):  # several SCAN pages and several MGETs
        pipe.set(f"{prefix}{i:05d}", i)
    pipe.execute()
    r.set(key("p") + "x", 1)       # shares all but the glob characters
    r.set(key("pXX?*"), 1)         # what the unescaped glob would match

    p = run("list", prefix, server=tallyd)
    assert p.returncode == OK, err(p)
    lines = out(p).splitlines()
    shown = prefix.replace("\\", "\\\\")  # a backslash makes it quoted
    assert lines == [f'"{shown}{i:05d}" {i}' for i in range(2500)]

    p = run("--json", "list", prefix, server=tallyd)
    assert [(o["key"], o["value"]) for o in json_lines(p)] == [
        (f"{prefix}{i:05d}", i) for i in range(2500)]


def test_list_escapes_unprintable_keys_and_json_keeps_them_exact(tallyd, key):
    base = key("bin").encode()
    keys = {base + b"\n\x01\xff": 1, base + b" sp\"ace\\": 2,
            base + "\u00e9".encode(): 3, base + b"\x00z": 4}
    r = tallyd.redis(decode_responses=False)
    for k, v in keys.items():
        if b"\x00" in k:
            r.set(k, v)  # a NUL byte cannot be in argv; only a library can
            continue
        assert run("set", k, str(v), server=tallyd).returncode == OK
        assert r.get(k) == str(v).encode()  # argv bytes went over unchanged

    p = run("list", base, server=tallyd)
    assert p.returncode == OK, err(p)
    text = p.stdout.decode("ascii")  # every other byte is escaped
    assert len(text.splitlines()) == len(keys)  # no key broke a line
    b = base.decode()
    assert f'"{b}\\n\\x01\\xff" 1\n' in text
    assert f'"{b} sp\\"ace\\\\" 2\n' in text
    assert f'"{b}\\xc3\\xa9" 3\n' in text
    assert f'"{b}\\x00z" 4\n' in text

    got = {key_bytes(o): o["value"]
           for o in json_lines(run("--json", "list", base, server=tallyd))}
    assert got == keys
    objs = json_lines(run("--json", "list", base, server=tallyd))
    assert any("key_b64" in o for o in objs)  # the \xff key
    assert any(o.get("key") == base.decode() + "\u00e9" for o in objs)


# ---- offline tools -------------------------------------------------------

def fill(server, n=300):
    """Write n counters (one record each, more for some) and stop."""
    r = server.redis(decode_responses=False)
    for i in range(n):
        r.incrby(f"c{i}".encode(), i)
    r.set(b"bin\xff\x00\n", -7)
    r.set("uni\u00e9".encode(), 9)
    server.stop()


def dump(d):
    p = run("dump", "--dir", d)
    assert p.returncode == OK, err(p)
    return p.stdout


def log_files(d):
    return sorted(Path(d).glob("log-*.tly"))


@pytest.mark.engine_files("the offline tools on a data directory")
@pytest.mark.own_server
def test_offline_tools_refuse_a_directory_a_running_tallyd_holds(
        tallyd_factory, tmp_path):
    d = tallyd_factory()
    d.redis().incr("x")
    for args in (["check"], ["dump"], ["restore"], ["repair"],
                 ["repair", "--yes"]):
        p = run(args[0], "--dir", d.dir, *args[1:], input=b"")
        assert p.returncode == ERROR, args
        assert "in use" in err(p), (args, err(p))
        assert p.stdout == b""
    assert d.redis().get("x") == "1"


@pytest.mark.engine_files("the offline tools on a data directory")
@pytest.mark.own_server
def test_dump_then_restore_gives_the_same_counters(tallyd_factory, tmp_path):
    d = tallyd_factory()
    fill(d)
    first = dump(d.dir)
    objs = [json.loads(line) for line in first.splitlines()]
    assert len(objs) == 302
    got = {key_bytes(o): o["value"] for o in objs}
    assert got[b"bin\xff\x00\n"] == -7 and got["uni\u00e9".encode()] == 9
    assert got[b"c299"] == 299

    new = tmp_path / "restored"
    p = run("restore", "--dir", new, input=first)
    assert p.returncode == OK, err(p)
    assert "302" in out(p)
    assert dump(new) == first
    assert run("check", "--dir", new).returncode == OK

    # The restored directory serves the same counters.
    e = tallyd_factory(dir=new)
    r = e.redis(decode_responses=False)
    assert r.get(b"bin\xff\x00\n") == b"-7"
    assert r.get(b"c123") == b"123"
    assert r.dbsize() == 302


@pytest.mark.engine_files("the offline tools on a data directory")
@pytest.mark.own_server
def test_restore_refuses_a_directory_that_holds_counters(tallyd_factory):
    d = tallyd_factory()
    d.redis().set("old", 1)
    d.stop()
    before = dump(d.dir)
    p = run("restore", "--dir", d.dir,
            input=b'{"key": "new", "value": 2}\n')
    assert p.returncode == ERROR
    assert "not empty" in err(p) or "already holds" in err(p)
    assert dump(d.dir) == before


@pytest.mark.engine_files("the offline tools on a data directory")
@pytest.mark.own_server
@pytest.mark.parametrize("bad", [
    b'not json\n',
    b'{"key": "a", "value": "1"}\n',
    b'{"key": "a", "value": 1.5}\n',
    b'{"key": "a", "value": 99999999999999999999}\n',
    b'{"key_b64": "!!", "value": 1}\n',
    b'{"key": "a", "key_b64": "YQ==", "value": 1}\n',
    b'{"value": 1}\n',
    b'{"key": "a", "value": 1, "extra": 0}\n',
    b'{"key": "a", "value": 1}\n\n{"key_b64": "YQ==", "value": 2}\n',
    b'[1, 2]\n',
    b'{"key": "' + b"k" * 1025 + b'", "value": 1}\n',
])
def test_restore_rejects_bad_input_and_writes_nothing(tmp_path, bad):
    new = tmp_path / "r"
    p = run("restore", "--dir", new, input=b'{"key": "ok", "value": 1}\n' + bad)
    assert p.returncode == ERROR
    assert "nothing written" in err(p), err(p)
    assert "line 2 " in err(p) or "once, the first a " in err(p), err(p)
    assert not new.exists() or not any(new.iterdir())


@pytest.mark.engine_files("the offline tools on a data directory")
@pytest.mark.own_server
def test_check_passes_a_sound_directory(tallyd_factory):
    d = tallyd_factory()
    fill(d, 50)
    p = run("check", "--dir", d.dir)
    assert p.returncode == OK, err(p)
    assert out(p).strip()
    p = run("--json", "check", "--dir", d.dir)
    assert json.loads(out(p))["ok"] is True
    assert json.loads(out(p))["status"] == "clean"
    assert "closed cleanly" in json.loads(out(p))["report"]


def newest_log(d):
    return max(log_files(d), key=lambda f: int(f.name[4:20], 16))


@pytest.mark.engine_files("the offline tools on a data directory")
@pytest.mark.own_server
def test_check_exits_3_for_a_flipped_byte_of_the_last_record_after_a_stop(
        tallyd_factory):
    # Issue 16: SET, a graceful stop, one byte of that record's value
    # flipped.  That is rot of an acknowledged change, not a torn write.
    d = tallyd_factory()
    d.redis().set("visits:home", 5)
    d.stop()
    log = newest_log(d.dir)
    data = bytearray(log.read_bytes())
    # The last frame is the clean stop's mark (36 bytes); before it, the
    # frame holding the SET: its record ends with the key, the value is
    # the 8 bytes before it.
    end = len(data.rstrip(b"\0")) - 36
    pos = end - len("visits:home") - 4
    data[pos] ^= 0x01
    log.write_bytes(data)

    p = run("check", "--dir", d.dir)
    assert p.returncode == CORRUPT, (out(p), err(p))
    assert log.name in err(p) and "tally repair" in err(p), err(p)
    p = run("repair", "--dir", d.dir)
    assert p.returncode == CORRUPT
    assert log.read_bytes() == bytes(data)
    p = run("repair", "--dir", d.dir, "--yes")
    assert p.returncode == OK, err(p)
    assert "intact records" in out(p), out(p)
    assert run("check", "--dir", d.dir).returncode == OK


@pytest.mark.engine_files("the offline tools on a data directory")
@pytest.mark.own_server
def test_check_exits_1_for_a_torn_tail_that_open_cuts(tallyd_factory):
    d = tallyd_factory()
    d.redis().set("kept", 7)
    d.stop()
    # The stop's last write, its CLOSE mark, cut short as by a crash.
    log = newest_log(d.dir)
    data = log.read_bytes()
    end = len(data.rstrip(b"\0"))
    log.write_bytes(data[:end - 20])

    p = run("check", "--dir", d.dir)
    assert p.returncode == TORN, (out(p), err(p))
    assert "torn tail" in out(p) and log.name in out(p), out(p)
    p = run("--json", "check", "--dir", d.dir)
    assert p.returncode == TORN
    report = json.loads(out(p))
    assert report["ok"] is True and report["status"] == "torn"
    p = run("repair", "--dir", d.dir)
    assert p.returncode == TORN
    d.start()
    assert d.redis().get("kept") == "7"
    d.stop()
    assert run("check", "--dir", d.dir).returncode == OK


@pytest.mark.engine_files("the offline tools on a data directory")
@pytest.mark.own_server
def test_check_names_the_file_and_offset_of_a_flipped_byte(tallyd_factory):
    d = tallyd_factory(snapshot_min_log=2**40)  # keep every record in the log
    fill(d)
    logs = log_files(d.dir)
    assert logs, list(Path(d.dir).iterdir())
    log = max(logs, key=lambda f: f.stat().st_size)
    data = bytearray(log.read_bytes())
    # Log space is reserved ahead and reads as zeros past the last record;
    # flip a byte halfway through the records themselves, far from the tail.
    end = len(data.rstrip(b"\0"))
    assert end > 4096, end
    pos = 32 + (end - 32) // 2
    data[pos] ^= 0x5A
    log.write_bytes(data)

    p = run("check", "--dir", d.dir)
    assert p.returncode == CORRUPT
    msg = err(p)
    assert log.name in msg, msg
    offsets = [int(n) for n in re.findall(r"\b\d+\b", msg.replace(log.name, ""))]
    assert any(32 <= n <= pos for n in offsets), msg
    assert "tally repair" in msg and "dropping" in msg, msg
    p = run("--json", "check", "--dir", d.dir)
    assert p.returncode == CORRUPT
    report = json.loads(out(p))
    assert report["ok"] is False and log.name in report["report"]
    assert report["status"] == "corrupt"

    # repair without --yes says what is wrong and changes nothing.
    p = run("repair", "--dir", d.dir)
    assert p.returncode == CORRUPT
    assert log.name in err(p) and "--yes" in err(p)
    assert log.read_bytes() == bytes(data)

    # With --yes it cuts the damage; the directory then checks and opens.
    p = run("repair", "--dir", d.dir, "--yes")
    assert p.returncode == OK, err(p)
    assert out(p).strip()
    assert run("check", "--dir", d.dir).returncode == OK
    d.start()
    assert d.redis().get("c0") == "0"  # written before the damage


@pytest.mark.engine_files("the offline tools on a data directory")
@pytest.mark.own_server
def test_dump_of_a_missing_directory_fails_without_creating_it(tmp_path):
    p = run("dump", "--dir", tmp_path / "nope")
    assert p.returncode == ERROR
    assert not (tmp_path / "nope").exists()
