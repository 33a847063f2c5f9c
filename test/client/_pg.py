"""Connections shared by the Python client tests (the harness skips files
starting with an underscore): psycopg connections that collect
notifications, waiting for notifications without sending a query, and Raw,
a minimal protocol-level frontend."""
import os
import select
import socket
import struct
import time

import psycopg

PGHOST = os.environ.get("PGHOST", "/tmp")
PGPORT = os.environ.get("PGPORT", "5432")
PGUSER = os.environ.get("PGUSER", "postgres")
DB = os.environ.get("PGDATABASE", "postgres")

def conn(dbname=DB, **kw):
    c = psycopg.connect(host=PGHOST, port=PGPORT, user=PGUSER,
                        dbname=dbname, autocommit=True, **kw)
    # notifications psycopg reads while running a query land here
    c.received = []
    c.add_notify_handler(lambda n: c.received.append((n.channel, n.payload, n.pid)))
    return c


def wait_notifies(c, n, timeout=2.0):
    """Collect up to n notifications without sending any query."""
    got = c.received
    c.received = []
    deadline = time.time() + timeout
    while len(got) < n:
        left = deadline - time.time()
        if left <= 0:
            break
        select.select([c.fileno()], [], [], left)
        c.pgconn.consume_input()
        while True:
            x = c.pgconn.notifies()
            if x is None:
                break
            got.append((x.relname.decode(), x.extra.decode(), x.be_pid))
    return got


# ---------------------------------------------------------------- raw protocol
class Raw:
    """A minimal frontend: trust auth, then the message types it reads."""

    def __init__(self, dbname=DB, options=None, rcvbuf=None):
        if PGHOST.startswith("/"):
            self.s = socket.socket(socket.AF_UNIX)
            addr = os.path.join(PGHOST, ".s.PGSQL.%s" % PGPORT)
        else:
            self.s = socket.socket(socket.AF_INET)
            addr = (PGHOST, int(PGPORT))
        if rcvbuf:
            # a client that reads slowly: the server's writes block sooner
            self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.s.connect(addr)
        body = struct.pack("!i", 196608)
        params = [("user", PGUSER), ("database", dbname)]
        if options:
            params.append(("options", options))
        for k, v in params:
            body += k.encode() + b"\0" + v.encode() + b"\0"
        body += b"\0"
        self.s.sendall(struct.pack("!i", len(body) + 4) + body)
        self.buf = b""
        self.pid = None
        while True:
            t, payload = self.read()
            if t == "K":
                self.pid = struct.unpack("!i", payload[:4])[0]
            if t == "R" and struct.unpack("!i", payload[:4])[0] != 0:
                raise RuntimeError("raw client needs trust authentication")
            if t == "Z":
                break

    def read(self):
        while len(self.buf) < 5 or len(self.buf) < 1 + struct.unpack("!i", self.buf[1:5])[0]:
            d = self.s.recv(65536)
            if not d:
                raise EOFError
            self.buf += d
        n = struct.unpack("!i", self.buf[1:5])[0]
        t, payload = chr(self.buf[0]), self.buf[5:1 + n]
        self.buf = self.buf[1 + n:]
        return t, payload

    def send(self, t, payload=b""):
        self.s.sendall(t.encode() + struct.pack("!i", len(payload) + 4) + payload)

    def until_ready(self):
        seq = []
        while True:
            t, p = self.read()
            seq.append(t)
            if t == "Z":
                return seq, p

    def query(self, sql):
        self.send("Q", sql.encode() + b"\0")
        return self.until_ready()

    def extended(self, sql):
        self.send("P", b"\0" + sql.encode() + b"\0" + struct.pack("!h", 0))
        self.send("B", b"\0\0" + struct.pack("!hhh", 0, 0, 0))
        self.send("E", b"\0" + struct.pack("!i", 0))
        self.send("S")
        return self.until_ready()
