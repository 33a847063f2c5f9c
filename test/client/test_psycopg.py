#!/usr/bin/python3
"""notify_ext through psycopg 3's own listening API.

An autocommit connection runs SELECT ext_listen('py_chan') and then sits in
the blocking Connection.notifies() generator (psycopg 3.1, as in Debian 12)
in a thread, sending nothing; another connection notifies.  Each
notification must reach the generator within 1 s with the right channel,
payload and sender PID; NULL payloads arrive as ''; a transaction's
notifications arrive in order with duplicates folded; rolled-back ones and
other channels never arrive.

Connection from PGHOST/PGPORT/PGUSER/PGDATABASE.  Prints TAP; exits 1 on
any failure.
"""
import os
import queue
import sys
import threading
import time

import psycopg

CHANNEL = "py_chan"
LIMIT = 1.0      # seconds for a delivery
QUIET = 0.3      # seconds to watch for something that must not arrive
STOP = "__stop__"

DSN = dict(host=os.environ.get("PGHOST", "/tmp"),
           port=os.environ.get("PGPORT", "5432"),
           user=os.environ.get("PGUSER", "postgres"),
           dbname=os.environ.get("PGDATABASE", "postgres"))

ntests = 0
nfailed = 0


def check(cond, name, detail=""):
    global ntests, nfailed
    ntests += 1
    if not cond:
        nfailed += 1
    print("%s %d - %s" % ("ok" if cond else "not ok", ntests, name), flush=True)
    if not cond and detail:
        print("#   " + detail, flush=True)


def main():
    listener = psycopg.connect(**DSN, autocommit=True)
    notifier = psycopg.connect(**DSN, autocommit=True)
    npid = notifier.info.backend_pid
    print("# psycopg %s; listener PID %d, notifier PID %d"
          % (psycopg.__version__, listener.info.backend_pid, npid), flush=True)
    listener.execute("SELECT ext_listen(%s)", (CHANNEL,))

    received = queue.Queue()

    def listen():
        # psycopg's own API: blocks on the socket, yields as they come
        for n in listener.notifies():
            received.put((time.monotonic(), n))
            if n.payload == STOP:
                break

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()

    def notify(sql, params=()):
        t0 = time.monotonic()
        notifier.execute(sql, params)
        return t0, time.monotonic()

    def expect(payload, name, sent):
        t_send, t_done = sent
        try:
            t_recv, n = received.get(timeout=(t_done + LIMIT) - time.monotonic())
        except (queue.Empty, ValueError):
            check(False, name, "nothing within %.0f ms of the notifier's call returning"
                  % (LIMIT * 1000))
            return
        want = (CHANNEL, payload, npid)
        got = (n.channel, n.payload, n.pid)
        ok = got == want and t_recv - t_done <= LIMIT
        check(ok, name, "got %r, want %r" % (got, want))
        print("#   latency %.3f ms from the notifier's send (%.3f ms after its call returned)"
              % ((t_recv - t_send) * 1000, (t_recv - t_done) * 1000), flush=True)

    def expect_nothing(name):
        try:
            _, n = received.get(timeout=QUIET)
        except queue.Empty:
            check(True, name)
            return
        check(False, name, "unexpected %r" % ((n.channel, n.payload, n.pid),))

    # 1. a plain autocommit notify
    expect("hello", "idle listener gets ext_notify('py_chan', 'hello')",
           notify("SELECT ext_notify(%s, 'hello')", (CHANNEL,)))

    # 2. no payload, NULL payload
    expect("", "no payload arrives as ''", notify("SELECT ext_notify(%s)", (CHANNEL,)))
    expect("", "NULL payload arrives as ''",
           notify("SELECT ext_notify(%s, NULL)", (CHANNEL,)))

    # 3. a transaction: in order, duplicates folded, only at commit
    with notifier.transaction():
        for p in ("a", "b", "a", "c"):
            notifier.execute("SELECT ext_notify(%s, %s)", (CHANNEL, p))
        expect_nothing("nothing before the notifier's transaction commits")
        t0 = time.monotonic()  # the COMMIT is sent when the block ends
    sent = (t0, time.monotonic())
    for p in ("a", "b", "c"):
        expect(p, "transaction: %r in order (duplicate folded)" % p, sent)

    # 4. rolled back, another channel: nothing; then the next one is next
    try:
        with notifier.transaction():
            notifier.execute("SELECT ext_notify(%s, 'rolled back')", (CHANNEL,))
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    notify("SELECT ext_notify('py_other_chan', 'other channel')")
    expect_nothing("no rolled-back or other-channel notification")
    expect("après ✓", "non-ASCII payload intact, and next in line",
           notify("SELECT ext_notify(%s, %s)", (CHANNEL, "après ✓")))

    # stop the generator with a notification of our own
    notify("SELECT ext_notify(%s, %s)", (CHANNEL, STOP))
    thread.join(timeout=LIMIT + 1)
    check(not thread.is_alive(), "the notifies() generator ended on the stop notification")
    try:
        _, n = received.get_nowait()
        check(n.payload == STOP, "nothing else arrived",
              "unexpected %r" % ((n.channel, n.payload, n.pid),))
    except queue.Empty:
        check(False, "nothing else arrived", "the stop notification is missing")

    if not thread.is_alive():
        listener.close()
    notifier.close()
    print("1..%d" % ntests)
    print("# test_psycopg: %d passed, %d failed" % (ntests - nfailed, nfailed))
    return 1 if nfailed else 0


if __name__ == "__main__":
    sys.exit(main())
