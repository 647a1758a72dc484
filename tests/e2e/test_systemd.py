# SPDX-License-Identifier: BSD-3-Clause
"""tallyd as a systemd service: the unit dist/tallyd.service passes
`systemd-analyze verify` (and its offline security review), and tallyd
speaks the notify protocol (src/server/notify.c) to a datagram socket the
test binds, the way systemd would: READY=1 only once recovery is done and
it serves, RELOADING=1/READY=1 around SIGHUP, STOPPING=1 at a graceful
stop."""

import os
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest

from conftest import REPO
from test_install import need, prefix  # noqa: F401 (a fixture)

UNIT = REPO / "dist/tallyd.service"


def analyze(*args, env=None):
    return subprocess.run(["systemd-analyze", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=120)


def need_systemd_analyze(tmp_path):
    """systemd-analyze, and proof that it can verify a unit here at all."""
    need("systemd-analyze")  # Debian's systemd; fails under CI if missing
    probe = tmp_path / "probe.service"
    probe.write_text("[Service]\nType=oneshot\nExecStart=/bin/true\n")
    r = analyze("verify", "--man=no", probe)
    if r.returncode != 0 or r.stderr.strip():
        # Not a missing install: this machine cannot run it (no systemd
        # directories, no /proc, a seccomp jail...); say exactly what it said.
        pytest.skip("systemd-analyze cannot verify even a trivial unit here: "
                    f"exit {r.returncode}: {r.stderr.strip()[:300]}")


def installed_unit(prefix):  # noqa: F811
    unit = prefix / "lib/systemd/system/tallyd.service"
    assert unit.is_file(), "tallyd.service is not installed"
    return unit


def test_the_installed_unit_is_dist_tallyd_service_with_the_installed_path(prefix):  # noqa: F811
    src = UNIT.read_text().splitlines()
    dst = installed_unit(prefix).read_text().splitlines()
    assert len(src) == len(dst)
    changed = [(a, b) for a, b in zip(src, dst) if a != b]
    if str(prefix) != "/usr":
        assert changed == [(
            "ExecStart=/usr/sbin/tallyd --dir ${STATE_DIRECTORY} $TALLYD_OPTS",
            f"ExecStart={prefix}/sbin/tallyd --dir ${{STATE_DIRECTORY}} "
            "$TALLYD_OPTS")]


def test_systemd_analyze_verify_passes_without_a_warning(prefix, tmp_path):  # noqa: F811
    """dist/tallyd.service as installed (only ExecStart differs, checked
    above), so verify can also check the binary and the man pages exist."""
    need_systemd_analyze(tmp_path)
    env = dict(os.environ, MANPATH=str(prefix / "share/man"))
    man = [] if shutil.which("man") else ["--man=no"]
    r = analyze("verify", *man, installed_unit(prefix), env=env)
    assert r.returncode == 0 and not r.stderr.strip(), r.stderr


def test_systemd_analyze_verify_is_not_blind_to_a_bad_setting(prefix, tmp_path):  # noqa: F811
    need_systemd_analyze(tmp_path)
    bad = tmp_path / "tallyd.service"
    bad.write_text(installed_unit(prefix).read_text().replace(
        "ProtectSystem=strict", "ProtectSystem=sometimes"))
    r = analyze("verify", "--man=no", bad)
    assert "sometimes" in r.stderr, r.stderr


def test_the_unit_is_hardened_and_runs_as_a_notify_service():
    text = UNIT.read_text()
    settings = dict(re.findall(r"^(\w+)=(.*)$", text, re.M))
    assert settings["Type"] == "notify"
    assert settings["StateDirectory"] == "tally"
    assert settings["DynamicUser"] == "yes"
    assert settings["ProtectSystem"] == "strict"
    assert settings["NoNewPrivileges"] == "yes"
    assert settings["PrivateTmp"] == "yes"
    assert set(settings["RestrictAddressFamilies"].split()) == \
        {"AF_INET", "AF_INET6", "AF_UNIX"}
    assert settings["ExecReload"] == "/bin/kill -HUP $MAINPID"


def test_systemd_analyze_security_rates_the_unit_well_exposed_at_most_2(prefix, tmp_path):  # noqa: F811
    need_systemd_analyze(tmp_path)
    r = analyze("security", "--offline=yes", "--threshold=20",
                installed_unit(prefix))
    m = re.search(r"Overall exposure level for tallyd.service: ([\d.]+)",
                  r.stdout)
    assert m, r.stdout[-500:] + r.stderr
    assert float(m.group(1)) <= 2.0, r.stdout[-2000:]


# ---- the notify protocol ---------------------------------------------------

class NotifySocket:
    """A datagram socket standing in for systemd's notify socket."""

    def __init__(self, address):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.env = address if isinstance(address, str) else \
            "@" + address[1:].decode()

    def next(self, timeout=30):
        """The next message as a dict of its VAR=value lines."""
        self.sock.settimeout(timeout)
        data = self.sock.recv(4096).decode()
        return dict(line.split("=", 1) for line in data.split("\n") if line)

    def close(self):
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path):
    s = NotifySocket(str(tmp_path / "notify.sock"))
    yield s
    s.close()


@pytest.mark.engine_files("the engine's recovery (the ready line's counters)")
@pytest.mark.own_server
def test_ready_1_is_sent_after_recovery_and_stopping_1_at_shutdown(
        tallyd_factory, notify_socket):
    # Given a data directory with counters to recover,
    d = tallyd_factory()
    r = d.redis()
    for i in range(50):
        r.incrby(f"k{i}", i + 1)
    d.stop()

    # when tallyd starts with $NOTIFY_SOCKET,
    d.env["NOTIFY_SOCKET"] = notify_socket.env
    d.spawn()
    msg = notify_socket.next()
    # then the first message is READY=1, naming the main pid, sent once
    # recovery is done: it serves the recovered counters at once,
    assert msg.get("READY") == "1", msg
    assert msg["MAINPID"] == str(d.pid)
    assert "50 counters" in msg["STATUS"]
    assert " ready" in d.run_log()
    assert d.redis().get("k49") == "50"

    # and SIGHUP (systemctl reload) is bracketed by RELOADING=1 and READY=1
    # and does not end the process,
    d.proc.send_signal(signal.SIGHUP)
    assert notify_socket.next().get("RELOADING") == "1"
    assert notify_socket.next().get("READY") == "1"
    assert d.redis().ping() is True

    # and a graceful stop says STOPPING=1 before it exits 0.
    d.proc.send_signal(signal.SIGTERM)
    assert notify_socket.next().get("STOPPING") == "1"
    assert d.wait_exit() == 0


@pytest.mark.own_server
def test_notify_socket_in_the_abstract_namespace(tallyd_factory):
    name = f"\0tally-test-{os.getpid()}-{time.monotonic_ns()}".encode()
    s = NotifySocket(name)
    try:
        d = tallyd_factory(start=False, env={"NOTIFY_SOCKET": s.env})
        d.spawn()
        assert s.next().get("READY") == "1"
    finally:
        s.close()


@pytest.mark.own_server
def test_without_notify_socket_nothing_is_sent_and_it_runs(tallyd_factory):
    d = tallyd_factory(env={"NOTIFY_SOCKET": None})
    assert d.redis().ping() is True
    d.proc.send_signal(signal.SIGHUP)
    time.sleep(0.2)
    assert d.running(), d.run_log()


@pytest.mark.own_server
def test_an_unusable_notify_socket_is_a_warning_not_a_failure(tallyd_factory, tmp_path):
    d = tallyd_factory(env={"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")})
    assert d.redis().ping() is True
    assert "cannot notify the service manager" in d.run_log()
