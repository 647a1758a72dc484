# SPDX-License-Identifier: BSD-3-Clause
"""Authentication over RESP: --requirepass and --password-file, NOAUTH before
AUTH, WRONGPASS, HELLO 3 AUTH, and AUTH against a server with no password,
all with Redis 7's texts."""

import pytest
import redis

from conftest import RespError

pytestmark = pytest.mark.own_server

NOAUTH = RespError("NOAUTH Authentication required.")
WRONGPASS = RespError(
    "WRONGPASS invalid username-password pair or user is disabled.")


@pytest.fixture(params=["requirepass", "password_file"])
def locked(request, tallyd_factory, tmp_path):
    """A server whose password is s3cret, set by flag or by file."""
    if request.param == "requirepass":
        return tallyd_factory(requirepass="s3cret")
    pwfile = tmp_path / "password"
    # Only the first line is the password.
    pwfile.write_text("s3cret\nnot-the-password\n")
    return tallyd_factory(password_file=pwfile)


def test_commands_before_auth_get_noauth(locked):
    with locked.raw() as c:
        for cmd in (("GET", "k"), ("INCR", "k"), ("DBSIZE",), ("KEYS", "*"),
                    ("SCAN", 0), ("SET", "k", 1), ("CONFIG", "GET", "save")):
            assert c.cmd(*cmd) == NOAUTH, cmd
        # Nothing was changed by the refused commands
        assert c.cmd("AUTH", "s3cret") == b"OK"
        assert c.cmd("EXISTS", "k") == 0


def test_auth_with_the_right_password_opens_the_session(locked):
    with locked.raw() as c:
        assert c.cmd("AUTH", "s3cret") == b"OK"
        assert c.cmd("INCR", "k") == 1
    with locked.raw() as c:   # the form with a user name, as Redis 6+ has it
        assert c.cmd("AUTH", "default", "s3cret") == b"OK"
        assert c.cmd("INCR", "k") == 2
    # Authentication is per connection
    with locked.raw() as c:
        assert c.cmd("GET", "k") == NOAUTH


def test_wrong_password_gets_wrongpass_and_stays_locked(locked):
    with locked.raw() as c:
        assert c.cmd("AUTH", "guess") == WRONGPASS
        assert c.cmd("AUTH", "not-the-password") == WRONGPASS
        assert c.cmd("AUTH", "s3cre") == WRONGPASS
        assert c.cmd("INCR", "k") == NOAUTH


def test_hello_3_with_auth(locked):
    with locked.raw() as c:
        assert c.cmd("HELLO", 3, "AUTH", "default", "nope") == WRONGPASS
        assert c.cmd("GET", "k") == NOAUTH
        hello = c.cmd("HELLO", 3, "AUTH", "default", "s3cret")
        assert isinstance(hello, dict) and hello[b"proto"] == 3, hello
        assert c.cmd("INCR", "k") == 1
        assert c.cmd("GET", "missing") is None


def test_hello_3_without_auth_on_a_locked_server_is_refused(locked):
    with locked.raw() as c:
        reply = c.cmd("HELLO", 3)
        assert isinstance(reply, RespError) and reply.text.startswith(
            "NOAUTH"), reply


def test_redis_py_with_password(locked):
    r = locked.redis(password="s3cret")
    assert r.incr("k") == 1
    # redis-py 4 raises ResponseError for WRONGPASS, later ones
    # AuthenticationError; either must carry Redis's text.
    with pytest.raises((redis.AuthenticationError, redis.ResponseError),
                       match="invalid username-password pair"):
        locked.redis(password="wrong").ping()


def test_auth_without_a_configured_password(tallyd):
    with tallyd.raw() as c:
        assert c.cmd("AUTH", "anything") == RespError(
            "ERR AUTH <password> called without any password configured for "
            "the default user. Are you sure your configuration is correct?")
        assert c.cmd("PING") == b"PONG"
