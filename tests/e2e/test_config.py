# SPDX-License-Identifier: BSD-3-Clause
"""tallyd --config FILE (src/server/conffile.c): every flag can be set in the
file and CONFIG GET shows it back; the command line wins over the file; an
unknown name or a bad value stops the start naming the file and line;
CONFIG SET changes log-level and maxclients and refuses the rest the way
Redis does; SIGHUP rereads the file.  tallyd.conf.example documents every
flag and is itself a valid file."""

import re
import signal
import subprocess

import pytest
import redis

import conftest
from conftest import REPO
from test_http_shutdown import wait_log

EXAMPLE = REPO / "tallyd.conf.example"
NOT_SETTINGS = {"--help", "--version", "--config"}


def settings():
    """Every setting: the long flags `tallyd --help` lists, without dashes."""
    out = subprocess.run([conftest.TALLYD, "--help"], capture_output=True,
                         text=True, check=True).stdout
    flags = set(re.findall(r"^\s+(--[a-z][a-z0-9-]*)", out, re.M))
    flags |= set(re.findall(r", (--[a-z][a-z0-9-]*)", out))
    return sorted(f[2:] for f in flags - NOT_SETTINGS)


def example_values():
    """name -> value of each commented-out setting in tallyd.conf.example
    ("#name value"; prose comments have a blank after the '#')."""
    values = {}
    for line in EXAMPLE.read_text().splitlines():
        m = re.fullmatch(r"#([a-z][a-z0-9-]*) (.+)", line)
        if m:
            values[m.group(1)] = m.group(2)
    return values


def write(d, text):
    """Write d's configuration file; {d.port} and such name its ports."""
    d.conf.write_text(text.format(d=d))


BASE = ("dir {d.dir}\nbind 127.0.0.1\nport {d.port}\nhttp-port {d.http_port}\n"
        "memcache-port {d.mc_port}\n")


@pytest.fixture
def conf_tallyd(tallyd_factory):
    """conf_tallyd(text, extra=(), start=True): a tallyd started as `tallyd
    --config FILE [extra...]` with text in FILE, nothing else on its command
    line, so the file's settings are the ones in force."""

    def make(text, extra=(), start=True):
        d = tallyd_factory(start=False)
        d.conf = d.workdir / "tallyd.conf"
        d.extra = list(extra)
        d.argv = lambda: [conftest.TALLYD, "--config", str(d.conf), *d.extra]
        write(d, text)
        return d.start() if start else d

    return make


def config_get(d, name, **kw):
    return d.redis(**kw).config_get(name)


def test_the_example_names_every_flag():
    documented = example_values()
    missing = [s for s in settings() if s not in documented]
    assert not missing, f"tallyd.conf.example lacks {missing}"
    assert not set(documented) - set(settings()), "example names a non-flag"


@pytest.mark.own_server
def test_the_example_is_a_valid_file_commented_and_uncommented(conf_tallyd):
    # As shipped, every line commented: tallyd starts on its defaults (the
    # ports given on the command line, which win).
    d = conf_tallyd(EXAMPLE.read_text().replace("{", "{{").replace("}", "}}"),
                    start=False)
    d.extra = ["--dir", str(d.dir), "--port", str(d.port), "--http-port",
               str(d.http_port)]
    d.start()
    assert config_get(d, "log-level") == {"log-level": "info"}
    d.stop()
    # Every line uncommented (the password file aside, which the example
    # names on a path this machine lacks): each value is valid.
    lines = []
    for line in EXAMPLE.read_text().splitlines():
        m = re.fullmatch(r"#([a-z][a-z0-9-]*) (.+)", line)
        if m and m.group(1) != "password-file":
            lines.append(f"{m.group(1)} {m.group(2)}")
    write(d, "\n".join(lines).replace("{", "{{").replace("}", "}}") + "\n")
    d.start()
    password = example_values()["requirepass"].strip('"')
    assert d.redis(password=password).ping() is True
    d.stop()


# A value for each setting that is not its default, and what CONFIG GET
# shows for it.  A flag not listed here is tried with the value in
# tallyd.conf.example and expected back as written.
def round_trip_values(d, tmp_path):
    pw = tmp_path / "password"
    pw.write_text("from the file\n")
    return {
        "dir": (str(tmp_path / "rt-data"),) * 2,
        "bind": ("127.0.0.2", "127.0.0.2"),
        "port": (str(d.port), str(d.port)),
        "http-port": ("0", "0"),
        "memcache-port": ("0", "0"),
        "fsync": ("everysec", "everysec"),
        "requirepass": ('"two words"', "(set)"),
        "password-file": (str(pw), str(pw)),
        "maxclients": ("77", "77"),
        "log-level": ("debug", "debug"),
        "allow-flush": ("yes", "yes"),
        "snapshot-min-log": ("4096", "4096"),
        "idempotency-ttl": ("90m", "90m"),
        "spin": ("off", "off"),
        "tls-port": (str(d.tls_port),) * 2,
        "https-port": (str(d.tls_port),) * 2,
        "memcache-tls-port": (str(d.tls_port),) * 2,
        "tls-auth-clients": ("optional", "optional"),
        "tls-protocols": ("TLSv1.3", "TLSv1.3"),
        "store": ('""', ""),  # the engine; a URI is shown as "(set)"
    }


def self_signed(tmp_path):
    """A certificate and key for the TLS ports' round trips."""
    crt, key = tmp_path / "rt.crt", tmp_path / "rt.key"
    if not crt.exists():
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                        "-nodes", "-keyout", str(key), "-out", str(crt),
                        "-days", "2", "-subj", "/CN=localhost"], check=True,
                       capture_output=True)
    return crt, key


@pytest.mark.own_server
def test_every_flag_round_trips_through_a_file(conf_tallyd, tmp_path):
    failures = []
    example = example_values()
    for name in settings():
        d = conf_tallyd(BASE, start=False)
        d.tls_port = conftest.free_port()
        values = round_trip_values(d, tmp_path)
        value, shown = values.get(name, (example.get(name), example.get(name)))
        assert value is not None, f"no value to try for {name}"
        # The setting comes after BASE, so it wins over BASE's line for it.
        tls = ""
        if name.endswith("-port") and "tls" in name or name == "https-port":
            crt, key = self_signed(tmp_path)
            tls = (f"tls-cert-file {crt}\ntls-key-file {key}\n"
                   "tls-auth-clients no\n")
        write(d, BASE + tls + f"{name} {value}\n")
        if name == "bind":
            d.host = "127.0.0.2"
        password = {"requirepass": "two words",
                    "password-file": "from the file"}.get(name)
        d.start()
        got = config_get(d, name, password=password).get(name)
        if got != shown:
            failures.append(f"{name}: file said {value!r}, CONFIG GET {got!r}")
        d.stop()
    assert not failures, failures


@pytest.mark.own_server
def test_the_command_line_wins_over_the_file_wherever_it_stands(conf_tallyd):
    text = BASE + "fsync everysec\nlog-level debug\nmaxclients 50\n"
    d = conf_tallyd(text, start=False)
    d.extra = ["--fsync", "no", "--maxclients=60"]
    d.start()
    r = d.redis()
    assert r.config_get("fsync") == {"fsync": "no"}
    assert r.config_get("maxclients") == {"maxclients": "60"}
    assert r.config_get("log-level") == {"log-level": "debug"}  # file's
    assert r.config_get("appendfsync") == {"appendfsync": "no"}
    d.stop()

    # A flag before --config wins too: the file is read first, always.
    d.argv = lambda: [conftest.TALLYD, "--fsync", "always", "--config",
                      str(d.conf)]
    d.start()
    assert d.redis().config_get("fsync") == {"fsync": "always"}
    d.stop()


@pytest.mark.own_server
def test_a_setting_given_twice_keeps_the_last(conf_tallyd):
    d = conf_tallyd(BASE + "maxclients 10\nMaxClients 20\n")
    assert config_get(d, "maxclients") == {"maxclients": "20"}


@pytest.mark.own_server
def test_quoted_values_with_blanks_hashes_and_escapes(conf_tallyd):
    d = conf_tallyd(BASE + 'requirepass "sp ace#\\x41\\"q"\n')
    with pytest.raises((redis.ResponseError, redis.AuthenticationError),
                       match="WRONGPASS|invalid"):
        d.redis(password="sp").ping()
    assert d.redis(password='sp ace#A"q').ping() is True
    d.stop()
    write(d, BASE + "requirepass 'it\\'s'   \n")
    d.start()
    assert d.redis(password="it's").ping() is True


BAD_FILES = [
    ("port 1\nnosuch 1\n", 2, "unknown setting 'nosuch'"),
    ("# fine\n\nfsync sometimes\n", 3, "bad value 'sometimes' for --fsync"),
    ("port 99999\n", 1, "--port wants a port number"),
    ("log-level\n", 1, "'log-level' needs a value"),
    ("port 1 2\n", 1, "takes one value"),
    ('requirepass "open\n', 1, "unbalanced quotes"),
    ('requirepass "a"b\n', 1, "closing quote"),
    ("allow-flush maybe\n", 1, "wants yes or no"),
    ("dir /tmp\nconfig other.conf\n", 2, "cannot be set in a configuration file"),
    ("help yes\n", 1, "cannot be set"),
    ("maxclients 0\n", 1, "bad value '0' for --maxclients"),
    ("password-file /nonexistent/pw\n", 1, "--password-file /nonexistent/pw"),
]


@pytest.mark.own_server
@pytest.mark.parametrize("text, line, reason", BAD_FILES)
def test_a_bad_file_stops_the_start_naming_file_line_and_reason(
        conf_tallyd, text, line, reason):
    d = conf_tallyd(text, start=False)
    d.spawn()
    rc = d.wait_exit()
    log = d.run_log()
    assert rc == 2, log
    assert f"{d.conf}:{line}: " in log, log
    assert reason in log, log


@pytest.mark.own_server
def test_a_missing_file_and_a_misspelt_config_flag_stop_the_start(conf_tallyd):
    d = conf_tallyd("", start=False)
    d.conf.unlink()
    d.spawn()
    assert d.wait_exit() == 2
    assert f"--config {d.conf}: No such file or directory" in d.run_log()
    d.argv = lambda: [conftest.TALLYD, "--conf", str(d.conf)]
    d.spawn()
    assert d.wait_exit() == 2
    assert "spell --config out in full" in d.run_log()


@pytest.mark.own_server
def test_config_set_changes_log_level_and_maxclients_only(conf_tallyd):
    d = conf_tallyd(BASE)
    r = d.redis()
    assert r.config_set("log-level", "debug") is True
    assert r.config_get("log-level") == {"log-level": "debug"}
    assert r.config_set("LOG-LEVEL", "warn") is True
    assert r.config_get("log-level") == {"log-level": "warn"}

    # maxclients takes effect for the next connection.
    r.ping()
    assert r.config_set("maxclients", "1") is True
    assert r.config_get("maxclients") == {"maxclients": "1"}
    other = redis.Redis(host=d.host, port=d.port, socket_timeout=5)
    with pytest.raises(redis.exceptions.ConnectionError):
        other.ping()
    wait_log(d, "refused a client: --maxclients 1 reached")
    assert r.config_set("maxclients", "100") is True
    assert other.ping() is True
    other.close()

    with pytest.raises(redis.ResponseError, match=r"^CONFIG SET failed "
                       r"\(possibly related to argument 'port'\) - can't set "
                       r"immutable config$"):
        r.config_set("port", "1234")
    with pytest.raises(redis.ResponseError, match="immutable"):
        r.config_set("fsync", "no")
    with pytest.raises(redis.ResponseError, match=r"^Unknown option or number "
                       r"of arguments for CONFIG SET - 'nosuch'$"):
        r.config_set("nosuch", "1")
    with pytest.raises(redis.ResponseError, match=r"argument 'log-level'\) - "
                       r"bad value 'loud' for --log-level"):
        r.config_set("log-level", "loud")
    assert r.config_get("log-level") == {"log-level": "warn"}
    assert r.config_get("port") == {"port": str(d.port)}


@pytest.mark.own_server
def test_config_get_shows_defaults_and_hides_the_password(conf_tallyd):
    d = conf_tallyd(BASE + "requirepass secret\n")
    got = config_get(d, "*", password="secret")
    assert got["requirepass"] == "(set)"
    assert "secret" not in got.values()
    assert got["idempotency-ttl"] == "1d"
    assert got["fsync"] == "always" and got["spin"] == "on"
    assert got["allow-flush"] == "no"
    assert got["dir"] == str(d.dir)
    # The Redis names clients ask for are still there.
    assert got["appendonly"] == "yes" and got["save"] == ""
    assert set(settings()) <= set(got)


@pytest.mark.own_server
def test_sighup_rereads_the_file_and_keeps_settings_on_a_bad_one(conf_tallyd):
    d = conf_tallyd(BASE + "log-level info\nmaxclients 40\n")
    r = d.redis()
    # A run-time setting changes; one read only at start is logged as such.
    write(d, BASE.replace("port {d.port}", "port 1") +
            "log-level debug\nmaxclients 41\n")
    d.proc.send_signal(signal.SIGHUP)
    wait_log(d, "SIGHUP: port changed in")
    assert r.config_get("log-level") == {"log-level": "debug"}
    assert r.config_get("maxclients") == {"maxclients": "41"}
    assert r.config_get("port") == {"port": str(d.port)}

    # A bad file changes nothing and says why.
    write(d, BASE + "log-level warn\nfsync sometimes\n")
    d.proc.send_signal(signal.SIGHUP)
    wait_log(d, ":7: bad value 'sometimes' for --fsync; every setting stays")
    assert r.config_get("log-level") == {"log-level": "debug"}
    assert r.ping() is True

    # A flag on the command line still wins after a reload.
    d.stop()
    d.extra = ["--maxclients", "99"]
    write(d, BASE + "maxclients 50\n")
    d.start()
    write(d, BASE + "maxclients 51\n")
    d.proc.send_signal(signal.SIGHUP)
    wait_log(d, "reread, nothing changed")
    assert d.redis().config_get("maxclients") == {"maxclients": "99"}


@pytest.mark.own_server
def test_every_flag_without_a_file_is_unchanged(tallyd_factory):
    """No --config: the flags alone, as before; CONFIG GET shows them."""
    d = tallyd_factory(fsync="everysec", maxclients=33)
    r = d.redis()
    assert r.config_get("fsync") == {"fsync": "everysec"}
    assert r.config_get("maxclients") == {"maxclients": "33"}
    assert r.config_get("port") == {"port": str(d.port)}
    d.proc.send_signal(signal.SIGHUP)
    wait_log(d, "no --config file, nothing to reread")
    assert r.ping() is True


@pytest.mark.own_server
def test_sighup_notices_a_change_to_any_line_of_a_repeated_flag(conf_tallyd):
    two = ("http-allowed-host one.example\n"
           "http-allowed-host two.example\n")
    d = conf_tallyd(BASE + two)
    assert config_get(d, "http-allowed-host") == {
        "http-allowed-host": "one.example,two.example"}
    write(d, BASE + two.replace("one.", "uno."))
    d.proc.send_signal(signal.SIGHUP)
    wait_log(d, "SIGHUP: http-allowed-host changed in")
