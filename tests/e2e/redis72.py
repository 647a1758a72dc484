# SPDX-License-Identifier: BSD-3-Clause
"""A Redis 7.2 made of Debian's 7.0 and a small proxy, for the WAITAOF
path of --store-wait-replicas (src/store/redis.c; docs/redis-store.md).

Redis72Proxy listens on a free loopback port and relays each command of
each client connection, one at a time, to a real redis-server behind it,
so EVALSHA, SCRIPT LOAD, CONFIG GET and everything tally's scripts do are
answered by Redis itself.  It makes up three things only: INFO's
redis_version (7.2.4 unless told otherwise), and the answers to WAIT and
WAITAOF, which it gives itself from `wait` and `waitaof` (an integer, a
[numlocal, numreplicas] pair, or an error string), as a 7.2 primary with
replicas would; a WAITAOF with numlocal > 0 to a Redis without AOF is
refused, as 7.2 refuses it.  It records every command it was sent, per connection, in
order (`log`), and the SHA-1 each SCRIPT LOAD answered, in order (`shas`).

What it does not show: how a real 7.2 counts fsyncs (WAITAOF's answer
here is whatever the test says), nor real replicas.  Only RESP2 is
spoken (tallyd sends no HELLO).
"""
import socket
import threading


def read_reply(f, out):
    """One RESP2 reply (or command) from file f, its bytes appended to out;
    returns it parsed (bytes, int, list, or an Exception for an error)."""
    line = f.readline()
    if not line:
        raise EOFError
    out += line
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest
    if kind == b"-":
        return Exception(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        out += data
        return data[:-2]
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [read_reply(f, out) for _ in range(n)]
    raise ValueError(f"not RESP: {line!r}")


def encode(v):
    if isinstance(v, str):
        return f"-{v}\r\n".encode()
    if isinstance(v, int):
        return b":%d\r\n" % v
    return b"*%d\r\n" % len(v) + b"".join(encode(x) for x in v)


class Redis72Proxy:
    def __init__(self, backend_port, version="7.2.4"):
        self.backend_port = backend_port
        self.version = version
        self.wait = 1              # WAIT's answer
        self.waitaof = [1, 1]      # WAITAOF's answer
        self.log = []              # [(connection number, [args])]
        self.shas = []             # SCRIPT LOAD's answers, in order
        self.lock = threading.Lock()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def commands(self, name):
        """The commands named name (upper case) in the order sent."""
        with self.lock:
            return [a for _, a in self.log if a[0].upper() == name]

    def _accept(self):
        n = 0
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            n += 1
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c, n),
                             daemon=True).start()

    def _answer(self, args, b, bf):
        """What to send back for command args: made up, or Redis's."""
        name = args[0].upper()
        if name == b"WAIT":
            return encode(self.wait)
        if name == b"WAITAOF":
            if int(args[1]) > 0 and self._backend_aof(b, bf) != b"yes":
                # 7.2's own refusal
                return encode("ERR WAITAOF cannot be used when numlocal is "
                              "set but appendonly is disabled.")
            return encode(self.waitaof)
        b.sendall(encode_command(args))
        raw = bytearray()
        reply = read_reply(bf, raw)
        if name == b"SCRIPT" and isinstance(reply, bytes):
            with self.lock:
                self.shas.append(reply.decode())
        if name == b"INFO" and isinstance(reply, bytes):
            text = reply.decode().replace(
                "redis_version:" + reply.decode().split(
                    "redis_version:")[1].split("\r\n")[0],
                "redis_version:" + self.version)
            data = text.encode()
            return b"$%d\r\n%s\r\n" % (len(data), data)
        return bytes(raw)

    @staticmethod
    def _backend_aof(b, bf):
        b.sendall(encode_command([b"CONFIG", b"GET", b"appendonly"]))
        return read_reply(bf, bytearray())[1]

    def _serve(self, c, n):
        try:
            b = socket.create_connection(("127.0.0.1", self.backend_port))
        except OSError:  # the Redis behind is gone: so is this connection
            c.close()
            return
        cf, bf = c.makefile("rb"), b.makefile("rb")
        try:
            while True:
                args = read_reply(cf, bytearray())
                with self.lock:
                    self.log.append((n, [a.decode(errors="replace")
                                         for a in args]))
                c.sendall(self._answer(args, b, bf))
        except (EOFError, OSError, ValueError):
            pass
        finally:
            c.close()
            b.close()

    def close(self):
        self.sock.close()
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def encode_command(args):
    return b"*%d\r\n" % len(args) + b"".join(
        b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
