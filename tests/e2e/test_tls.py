# SPDX-License-Identifier: BSD-3-Clause
"""TLS on every front end (src/server/tls.c): RESP on --tls-port, HTTPS on
--https-port, memcached on --memcache-tls-port, driven by real clients
(redis-cli --tls, redis-py ssl=True, curl --cacert, pymemcache with an SSL
context, tally --tls).  Certificates are made here with openssl: a CA, a
second CA nobody trusts, server and client certificates, expired ones.
Refused: a server certificate of the wrong CA or expired, and with
--tls-auth-clients yes a client without a certificate or with a bad one.
The three promises hold over TLS across SIGKILL, and SIGHUP rotates the
certificates while a client keeps its connection."""

import os
import shutil
import signal
import socket
import ssl
import subprocess
import time

import pytest
import redis
import requests
from pymemcache.client.base import Client as Memcache

import conftest
from conftest import free_port
from test_http_shutdown import wait_log

pytestmark = pytest.mark.own_server


def openssl(*args, cwd):
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def make_ca(d, name):
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
            f"{name}.key", "-out", f"{name}.crt", "-days", "30", "-subj",
            f"/CN={name}", cwd=d)


def make_cert(d, name, ca, cn, days=30, server=True):
    """name.crt/name.key signed by ca; a server's names 127.0.0.1 and
    localhost.  days=-1 makes one that expired yesterday."""
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
            "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=d)
    ext = d / f"{name}.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n" if server
                   else "extendedKeyUsage=clientAuth\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt",
            "-CAkey", f"{ca}.key", "-CAcreateserial", "-out", f"{name}.crt",
            "-days", str(days), "-extfile", ext.name, cwd=d)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.fail("openssl is not installed (Debian package openssl)")
    d = tmp_path_factory.mktemp("pki")
    make_ca(d, "ca")
    make_ca(d, "other-ca")
    make_cert(d, "server", "ca", "tally server")
    make_cert(d, "rotated", "ca", "tally rotated")
    make_cert(d, "expired", "ca", "tally expired", days=-1)
    make_cert(d, "wrong", "other-ca", "tally wrong CA")
    make_cert(d, "client", "ca", "client", server=False)
    make_cert(d, "client-other", "other-ca", "client other", server=False)
    make_cert(d, "client-expired", "ca", "client expired", days=-1,
              server=False)
    return d


def tls_server(factory, pki, tmp_path, cert="server", auth="no", start=True,
               **flags):
    """A tallyd with every TLS port open besides the plain ones; its cert
    and key are copies (in tmp_path) that a test may overwrite."""
    live = tmp_path / "live"
    live.mkdir(exist_ok=True)
    shutil.copy(pki / f"{cert}.crt", live / "server.crt")
    shutil.copy(pki / f"{cert}.key", live / "server.key")
    d = factory(start=False, tls_port=free_port(), https_port=free_port(),
                memcache_tls_port=free_port(),
                tls_cert_file=live / "server.crt",
                tls_key_file=live / "server.key",
                tls_ca_cert_file=pki / "ca.crt", tls_auth_clients=auth,
                **flags)
    d.tls_port = d.flags["tls_port"]
    d.https_port = d.flags["https_port"]
    d.mc_tls_port = d.flags["memcache_tls_port"]
    d.live = live
    return d.start() if start else d


def rtls(d, pki, ca="ca", cert=None, **kw):
    """redis-py over TLS to d's --tls-port."""
    extra = {}
    if cert:
        extra = dict(ssl_certfile=str(pki / f"{cert}.crt"),
                     ssl_keyfile=str(pki / f"{cert}.key"))
    return redis.Redis(host="127.0.0.1", port=d.tls_port, ssl=True,
                       ssl_ca_certs=str(pki / f"{ca}.crt"),
                       ssl_cert_reqs="required", ssl_check_hostname=True,
                       decode_responses=True, socket_timeout=10, **extra, **kw)


def ctx(pki, ca="ca", cert=None, maximum=None):
    c = ssl.create_default_context(cafile=str(pki / f"{ca}.crt"))
    if cert:
        c.load_cert_chain(str(pki / f"{cert}.crt"), str(pki / f"{cert}.key"))
    if maximum:
        c.maximum_version = maximum
    return c


def mc_tls(d, pki, **kw):
    return Memcache(("127.0.0.1", d.mc_tls_port), tls_context=ctx(pki, **kw),
                    timeout=10, connect_timeout=10)


def cli(d, pki, *args, ca="ca"):
    return subprocess.run([conftest.TALLY_CLI, "-p", str(d.tls_port), "--tls",
                           "--cacert", str(pki / f"{ca}.crt"), *args],
                          capture_output=True, text=True, timeout=30)


def test_every_front_end_and_real_client_over_tls(tallyd_factory, pki, tmp_path):
    d = tls_server(tallyd_factory, pki, tmp_path)
    # redis-cli --tls
    out = subprocess.run(["redis-cli", "--tls", "--cacert", str(pki / "ca.crt"),
                          "-p", str(d.tls_port), "incrby", "k", "5"],
                         capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "5", out.stderr
    # redis-py ssl=True
    assert rtls(d, pki).incr("k") == 6
    # curl --cacert, and requests, over HTTPS
    out = subprocess.run(["curl", "-sS", "--cacert", str(pki / "ca.crt"),
                          "-X", "POST", "-d", '{"by": 2}',
                          "-H", "Content-Type: application/json",
                          f"https://127.0.0.1:{d.https_port}/v1/counters/k/increment"],
                         capture_output=True, text=True, timeout=30)
    assert '"value":8' in out.stdout.replace(" ", ""), out.stdout + out.stderr
    r = requests.get(f"https://localhost:{d.https_port}/v1/counters/k",
                     verify=str(pki / "ca.crt"), timeout=10)
    assert r.json()["value"] == 8
    # pymemcache with an SSL context
    m = mc_tls(d, pki)
    assert m.incr("k", 3) == 11
    m.close()
    # tally --tls
    out = cli(d, pki, "get", "k")
    assert out.returncode == 0 and out.stdout.strip() == "11", out.stderr
    # and the plain ports still serve the same counters.
    assert d.redis().get("k") == "11"


def test_plain_text_on_a_tls_port_is_refused_and_logged(tallyd_factory, pki, tmp_path):
    d = tls_server(tallyd_factory, pki, tmp_path)
    s = socket.create_connection(("127.0.0.1", d.tls_port), timeout=10)
    s.sendall(b"PING\r\n")
    got = b""
    try:
        while chunk := s.recv(100):
            got += chunk
    except ConnectionResetError:
        pass
    s.close()
    assert b"PONG" not in got  # closed, maybe after a TLS alert
    wait_log(d, "TLS handshake with client 127.0.0.1:")
    assert rtls(d, pki).ping() is True


def test_a_server_certificate_of_another_ca_is_refused(tallyd_factory, pki, tmp_path):
    d = tls_server(tallyd_factory, pki, tmp_path, cert="wrong")
    with pytest.raises(redis.exceptions.ConnectionError, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        rtls(d, pki).ping()
    out = cli(d, pki, "ping")
    assert out.returncode == 2
    assert "certificate was refused" in out.stderr
    out = subprocess.run(["curl", "-sS", "--cacert", str(pki / "ca.crt"),
                          f"https://127.0.0.1:{d.https_port}/healthz"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 60, out  # curl: peer certificate cannot be authenticated
    # Trusting the other CA, the same server is fine.
    assert rtls(d, pki, ca="other-ca").ping() is True


def test_an_expired_server_certificate_is_refused(tallyd_factory, pki, tmp_path):
    d = tls_server(tallyd_factory, pki, tmp_path, cert="expired")
    with pytest.raises(redis.exceptions.ConnectionError, match="expired"):
        rtls(d, pki).ping()
    out = cli(d, pki, "ping")
    assert out.returncode == 2 and "expired" in out.stderr, out.stderr
    with pytest.raises(ssl.SSLError, match="expired"):
        m = mc_tls(d, pki)
        m.get("k")


def test_client_certificates_with_tls_auth_clients_yes(tallyd_factory, pki, tmp_path):
    d = tls_server(tallyd_factory, pki, tmp_path, auth="yes")
    # A certificate of the CA: accepted, over RESP, HTTPS and memcached.
    assert rtls(d, pki, cert="client").incr("c") == 1
    r = requests.get(f"https://127.0.0.1:{d.https_port}/v1/counters/c",
                     verify=str(pki / "ca.crt"), timeout=10,
                     cert=(str(pki / "client.crt"), str(pki / "client.key")))
    assert r.json()["value"] == 1
    out = subprocess.run([conftest.TALLY_CLI, "-p", str(d.tls_port),
                          "--cacert", str(pki / "ca.crt"),
                          "--cert", str(pki / "client.crt"),
                          "--key", str(pki / "client.key"), "incr", "c"],
                         capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "2", out.stderr
    # None, another CA's, or an expired one: refused, nothing runs.
    for cert in (None, "client-other", "client-expired"):
        with pytest.raises((redis.exceptions.ConnectionError, ssl.SSLError)):
            rtls(d, pki, cert=cert).incr("c")
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"https://127.0.0.1:{d.https_port}/healthz",
                     verify=str(pki / "ca.crt"), timeout=10)
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        m = mc_tls(d, pki)
        m.incr("c", 1)
    out = cli(d, pki, "incr", "c")
    assert out.returncode == 2
    assert d.redis().get("c") == "2"


def test_tls_auth_clients_optional_checks_only_what_is_sent(tallyd_factory, pki, tmp_path):
    d = tls_server(tallyd_factory, pki, tmp_path, auth="optional")
    assert rtls(d, pki).ping() is True
    assert rtls(d, pki, cert="client").ping() is True
    with pytest.raises((redis.exceptions.ConnectionError, ssl.SSLError)):
        rtls(d, pki, cert="client-other").ping()


def test_tls_protocols_tls13_refuses_a_tls12_client(tallyd_factory, pki, tmp_path):
    d = tls_server(tallyd_factory, pki, tmp_path, tls_protocols="TLSv1.3")
    c = ctx(pki, maximum=ssl.TLSVersion.TLSv1_2)
    raw = socket.create_connection(("127.0.0.1", d.tls_port), timeout=10)
    with pytest.raises(ssl.SSLError):
        c.wrap_socket(raw, server_hostname="localhost")
    raw.close()
    with ctx(pki).wrap_socket(socket.create_connection(
            ("127.0.0.1", d.tls_port), timeout=10), server_hostname="localhost") as s:
        assert s.version() == "TLSv1.3"


def test_the_three_promises_over_tls_across_sigkill(tallyd_factory, pki, tmp_path):
    d = tls_server(tallyd_factory, pki, tmp_path)
    r = rtls(d, pki)
    m = mc_tls(d, pki)
    https = f"https://127.0.0.1:{d.https_port}/v1/counters"
    verify = str(pki / "ca.crt")
    # 10 reads 10; 10 -> 11; 10 -> 15 in five steps: on each front end.
    assert r.set("resp:a", 10) is True
    assert r.set("resp:b", 10) and r.incr("resp:b") == 11
    assert r.set("resp:c", 10)
    for _ in range(5):
        r.incr("resp:c")
    assert requests.put(f"{https}/http:a", json={"value": 10}, verify=verify,
                        timeout=10).ok
    assert requests.put(f"{https}/http:b", json={"value": 10}, verify=verify,
                        timeout=10).ok
    requests.post(f"{https}/http:b/increment", json={"by": 1}, verify=verify,
                  timeout=10).raise_for_status()
    m.set("mc:c", "10")
    for _ in range(5):
        m.incr("mc:c", 1)
    m.close()
    r.close()
    d.restart(crash=True)
    r = rtls(d, pki)
    assert r.mget("resp:a", "resp:b", "resp:c") == ["10", "11", "15"]
    assert requests.get(f"{https}/http:a", verify=verify, timeout=10).json()["value"] == 10
    assert requests.get(f"{https}/http:b", verify=verify, timeout=10).json()["value"] == 11
    assert int(mc_tls(d, pki).get("mc:c")) == 15


def test_a_pipeline_of_many_requests_over_tls(tallyd_factory, pki, tmp_path):
    """Large reads and writes through the TLS layer: records split across
    reads, decrypted bytes left in OpenSSL, partial writes."""
    d = tls_server(tallyd_factory, pki, tmp_path, fsync="everysec")
    r = rtls(d, pki)
    p = r.pipeline(transaction=False)
    for i in range(20000):
        p.incr(f"p{i % 7}")
    out = p.execute()
    assert len(out) == 20000
    assert sum(int(r.get(f"p{i}")) for i in range(7)) == 20000
    # Replies of 3 MB in all, arguments just under the 64 KiB limit: many
    # records each way, and writes the socket takes only in part.
    big = "x" * 60000
    p = r.pipeline(transaction=False)
    for _ in range(50):
        p.echo(big)
    assert p.execute() == [big] * 50


def peer_cn(port, pki):
    with ctx(pki).wrap_socket(socket.create_connection(("127.0.0.1", port),
                              timeout=10), server_hostname="localhost") as s:
        subject = dict(x[0] for x in s.getpeercert()["subject"])
        return subject["commonName"]


def test_sighup_rotates_certificates_without_dropping_a_connection(
        tallyd_factory, pki, tmp_path):
    d = tls_server(tallyd_factory, pki, tmp_path)
    r = rtls(d, pki)
    assert r.incr("kept") == 1  # this connection stays open throughout
    assert peer_cn(d.tls_port, pki) == "tally server"

    shutil.copy(pki / "rotated.crt", d.live / "server.crt")
    shutil.copy(pki / "rotated.key", d.live / "server.key")
    d.proc.send_signal(signal.SIGHUP)
    wait_log(d, "TLS certificates and keys reloaded")
    assert peer_cn(d.tls_port, pki) == "tally rotated"
    assert peer_cn(d.https_port, pki) == "tally rotated"
    assert peer_cn(d.mc_tls_port, pki) == "tally rotated"
    assert r.incr("kept") == 2  # the old connection, on the old certificate

    # A certificate that does not match its key: the old ones stay.
    shutil.copy(pki / "server.crt", d.live / "server.crt")
    d.proc.send_signal(signal.SIGHUP)
    wait_log(d, "TLS not reloaded")
    assert "--tls-key-file" in d.run_log().split("TLS not reloaded")[-1]
    assert peer_cn(d.tls_port, pki) == "tally rotated"
    assert r.incr("kept") == 3


@pytest.mark.parametrize("flags, message", [
    ({"tls_cert_file": None}, "a TLS port needs --tls-cert-file and --tls-key-file"),
    ({"tls_ca_cert_file": None, "tls_auth_clients": "yes"},
     "--tls-auth-clients yes needs --tls-ca-cert-file"),
    ({"tls_protocols": "TLSv1.1"}, "'TLSv1.1' is not TLSv1.2 or TLSv1.3"),
    ({"tls_ciphers": "NO-SUCH-CIPHER"}, "--tls-ciphers 'NO-SUCH-CIPHER'"),
    ({"tls_key_file": "/nonexistent.key"}, "--tls-key-file /nonexistent.key"),
])
def test_bad_tls_settings_stop_the_start_saying_why(tallyd_factory, pki, tmp_path,
                                                    flags, message):
    d = tls_server(tallyd_factory, pki, tmp_path, start=False)
    d.flags.update(flags)
    d.spawn()
    rc = d.wait_exit()
    assert rc in (1, 2), d.run_log()
    assert message in d.run_log(), d.run_log()


def test_resp_over_tls_only_with_port_0(tallyd_factory, pki, tmp_path):
    d = tls_server(tallyd_factory, pki, tmp_path, start=False)
    d.port = 0
    d.start()
    assert rtls(d, pki).ping() is True
    assert "--tls-port" in subprocess.run(
        [conftest.TALLYD, "--port", "0"], capture_output=True, text=True).stderr


def test_tls_settings_in_the_config_file_and_config_get(tallyd_factory, pki, tmp_path):
    d = tls_server(tallyd_factory, pki, tmp_path, auth="optional")
    got = d.redis().config_get("tls-*")
    assert got["tls-port"] == str(d.tls_port)
    assert got["tls-auth-clients"] == "optional"
    assert got["tls-protocols"] == "TLSv1.2 TLSv1.3"
    assert got["tls-cert-file"] == str(d.live / "server.crt")
    assert os.path.exists(got["tls-ca-cert-file"])


@pytest.mark.engine_files("the fsync shim on the engine's log")
def test_replies_over_tls_are_held_until_durable_and_never_sent_after_a_failed_sync(
        tallyd_factory, pki, tmp_path):
    """The durability hold is conn.c's, above the TLS seam: the same as on a
    plain socket (test_faults.py), with tests/fault/failsync.c."""
    from test_faults import Faults, shim_path
    faults = Faults(tmp_path / "faults")
    asan = os.environ.get("ASAN_OPTIONS", "")
    env = {"LD_PRELOAD": shim_path(), "TALLY_FAULT_DIR": str(faults.path),
           "ASAN_OPTIONS": (asan + ":" if asan else "") + "verify_asan_link_order=0"}
    d = tls_server(tallyd_factory, pki, tmp_path, env=env)
    s = ctx(pki).wrap_socket(socket.create_connection(("127.0.0.1", d.tls_port),
                                                      timeout=10),
                             server_hostname="localhost")
    s.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n5\r\n")
    assert s.recv(100) == b"+OK\r\n"

    # Given a slow sync, an INCR's reply waits for it,
    faults.slow(0.4)
    s.sendall(b"*2\r\n$4\r\nINCR\r\n$1\r\na\r\n")
    s.settimeout(0.2)
    with pytest.raises((socket.timeout, ssl.SSLWantReadError, TimeoutError)):
        s.recv(100)
    s.settimeout(10)
    assert s.recv(100) == b":6\r\n"

    # and when the sync fails, the connection closes without the reply.
    s.sendall(b"*2\r\n$4\r\nINCR\r\n$1\r\na\r\n")
    time.sleep(0.1)
    faults.fail()
    got = b""
    try:
        while chunk := s.recv(100):
            got += chunk
    except (ssl.SSLError, ConnectionResetError):
        pass
    assert got == b"", got
    s.close()


def test_https_requests_on_one_connection_are_not_held_by_nagle(tallyd_factory, pki, tmp_path):
    """bufferevent_openssl sends a response as several records; without
    TCP_NODELAY each request waited for the client's delayed ACK (~40 ms:
    22 requests/s at one client)."""
    d = tls_server(tallyd_factory, pki, tmp_path, fsync="everysec")
    s = requests.Session()
    ca = str(pki / "ca.crt")
    url = f"https://127.0.0.1:{d.https_port}/v1/counters/n/increment"
    s.post(url, json={"by": 1}, verify=ca, timeout=10).raise_for_status()
    t0 = time.monotonic()  # the handshake is done: one connection from here
    for _ in range(50):
        s.post(url, json={"by": 1}, verify=ca, timeout=10).raise_for_status()
    elapsed = time.monotonic() - t0
    assert elapsed < 1.0, f"50 HTTPS requests took {elapsed:.2f}s"
    s.close()
