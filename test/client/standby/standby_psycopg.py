#!/usr/bin/python3
"""psycopg, unmodified, listening on a hot standby in drop-in mode.

The application's code is core LISTEN/NOTIFY code: both connections turn
drop-in mode on the way a user would, in the connection string
(options='-c notify_ext.intercept=on').  On the standby, the listener runs
a plain LISTEN and then sits idle in psycopg's blocking notifies()
generator (in a thread), sending nothing; on the primary (notify_ext.wal_log
= on) the notifier runs pg_notify() and NOTIFY statements.  Every
notification must arrive at the standby's listener, in the primary's
order, with the primary backend's PID (pg_backend_pid() there): non-ASCII
payloads intact, empty ones (NOTIFY without payload, pg_notify with '') as
'', a transaction's notifications in order with duplicates folded and a
rolled-back savepoint's dropped; nothing of an aborted or failed
transaction, nothing of another channel.  That the listener sent nothing
while it waited is checked on the standby: its pg_stat_activity
query_start does not change.  No delivery time is asserted (a
notification not there after WAIT seconds counts as missing).

Connections: the primary from PGHOST/PGPORT/PGUSER/PGDATABASE, the standby
from NE_STANDBY_HOST/NE_STANDBY_PORT (same user and database).  Prints TAP;
exits 1 on any failure.
"""
import os
import queue
import sys
import threading

import psycopg
from psycopg import sql

CHANNEL = "py_standby"
WAIT = 30.0      # seconds before a notification counts as missing (no latency is asserted)
STOP = "__stop__"
DROPIN = "-c notify_ext.intercept=on"

PRIMARY = dict(host=os.environ.get("PGHOST", "/tmp"), port=os.environ.get("PGPORT", "5432"),
               user=os.environ.get("PGUSER", "postgres"), dbname=os.environ.get("PGDATABASE", "postgres"))
STANDBY = dict(PRIMARY, host=os.environ.get("NE_STANDBY_HOST", PRIMARY["host"]),
               port=os.environ.get("NE_STANDBY_PORT", PRIMARY["port"]))

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
    return cond


def main():
    # the listener's session on the standby, and a monitoring one there
    listener = psycopg.connect(**STANDBY, options=DROPIN, autocommit=True)
    monitor = psycopg.connect(**STANDBY, autocommit=True)
    notifier = psycopg.connect(**PRIMARY, options=DROPIN, autocommit=True)
    lpid = listener.info.backend_pid
    npid = notifier.execute("SELECT pg_backend_pid()").fetchone()[0]
    print("# psycopg %s; standby listener PID %d, primary notifier PID %d"
          % (psycopg.__version__, lpid, npid), flush=True)
    check(monitor.execute("SELECT pg_is_in_recovery()").fetchone()[0] is True,
          "the listener's server is a hot standby")
    check(notifier.execute("SELECT pg_is_in_recovery()").fetchone()[0] is False,
          "the notifier's server is the primary")
    for who, c in (("standby listener", listener), ("primary notifier", notifier)):
        v = c.execute("SHOW notify_ext.intercept").fetchone()[0]
        check(v == "on", "%s: drop-in mode on from the connection string" % who, "notify_ext.intercept = %r" % v)

    listener.execute("LISTEN %s" % CHANNEL)
    chans = [r[0] for r in listener.execute("SELECT pg_listening_channels()").fetchall()]
    check(chans == [CHANNEL], "plain LISTEN on the standby: pg_listening_channels() = [%r]" % CHANNEL, repr(chans))
    listed = [r[0] for r in monitor.execute(
        "SELECT channel FROM ext_listeners() WHERE pid = %s", (lpid,)).fetchall()]
    check(listed == [CHANNEL], "... and it is notify_ext's: the standby's ext_listeners() has it", repr(listed))
    # the listener's last query; it sends nothing from here on
    before = monitor.execute("SELECT query_start, query FROM pg_stat_activity WHERE pid = %s",
                             (lpid,)).fetchone()

    received = queue.Queue()

    def listen():
        # psycopg's own API: blocks on the socket, yields as they come
        for n in listener.notifies():
            received.put(n)
            if n.payload == STOP:
                break

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()

    expected = []

    def notify_stmt(payload=None, channel=CHANNEL):
        if payload is None:
            return sql.SQL("NOTIFY {}").format(sql.Identifier(channel))
        return sql.SQL("NOTIFY {}, {}").format(sql.Identifier(channel), sql.Literal(payload))

    # autocommit statements, one transaction each
    notifier.execute("SELECT pg_notify(%s, 'one')", (CHANNEL,))
    expected.append(("one", "pg_notify()"))
    notifier.execute(notify_stmt("two"))
    expected.append(("two", "NOTIFY statement"))
    notifier.execute(notify_stmt())
    expected.append(("", "NOTIFY without a payload: ''"))
    notifier.execute("SELECT pg_notify(%s, '')", (CHANNEL,))
    expected.append(("", "pg_notify() with an empty payload: '' (another transaction: not folded)"))
    for p in ("après ✓ 日本語 🎉", "Ünïcödé — ½ «ß»"):
        notifier.execute("SELECT pg_notify(%s, %s)", (CHANNEL, p))
        expected.append((p, "non-ASCII payload through pg_notify(): %r" % p))
        notifier.execute(notify_stmt(p + " (NOTIFY)"))
        expected.append((p + " (NOTIFY)", "non-ASCII payload through NOTIFY: %r" % (p + " (NOTIFY)")))

    # a transaction: in order, duplicates folded, a rolled-back savepoint dropped
    with notifier.transaction():
        notifier.execute("SELECT pg_notify(%s, 'tx-1')", (CHANNEL,))
        notifier.execute(notify_stmt("tx-2"))
        notifier.execute("SELECT pg_notify(%s, 'tx-1')", (CHANNEL,))   # duplicate: folded
        notifier.execute(notify_stmt("tx-3"))
        try:
            with notifier.transaction():
                notifier.execute(notify_stmt("savepoint rolled back"))
                raise RuntimeError("roll back the savepoint")
        except RuntimeError:
            pass
        notifier.execute("SELECT pg_notify(%s, 'tx-4')", (CHANNEL,))
    for p in ("tx-1", "tx-2", "tx-3", "tx-4"):
        expected.append((p, "transaction: %s in order (duplicate folded, rolled-back savepoint dropped)" % p))

    # aborted, failed, another channel: none of it arrives
    try:
        with notifier.transaction():
            notifier.execute(notify_stmt("aborted 1"))
            notifier.execute("SELECT pg_notify(%s, 'aborted 2')", (CHANNEL,))
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    try:
        with notifier.transaction():
            notifier.execute(notify_stmt("failed"))
            notifier.execute("SELECT 1/0")
    except psycopg.errors.DivisionByZero:
        pass
    notifier.execute(notify_stmt("other channel", channel="py_standby_other"))
    notifier.execute("SELECT pg_notify(%s, 'after the aborts')", (CHANNEL,))
    expected.append(("after the aborts", "next comes what followed the aborted and failed transactions "
                     "(nothing of them, nothing of another channel)"))

    # the generator stops on this one
    notifier.execute(notify_stmt(STOP))
    expected.append((STOP, "the stop notification, last"))

    for payload, name in expected:
        try:
            n = received.get(timeout=WAIT)
        except queue.Empty:
            check(False, name, "nothing arrived within %.0f s" % WAIT)
            break
        got = (n.channel, n.payload, n.pid)
        want = (CHANNEL, payload, npid)
        check(got == want, name + ", with the primary backend's PID", "got %r, want %r" % (got, want))
    thread.join(timeout=WAIT)
    check(not thread.is_alive(), "the notifies() generator ended on the stop notification")
    extra = []
    while not received.empty():
        n = received.get_nowait()
        extra.append((n.channel, n.payload, n.pid))
    check(not extra, "nothing else arrived", "unexpected %r" % extra)
    after = monitor.execute("SELECT query_start, query, state FROM pg_stat_activity WHERE pid = %s",
                            (lpid,)).fetchone()
    check(after is not None and after[:2] == before,
          "the listener sent no query while it waited (its query_start and query did not change)",
          "before %r, after %r" % (before, after))

    if not thread.is_alive():
        listener.close()
    notifier.close()
    monitor.close()
    print("1..%d" % ntests)
    print("# standby_psycopg: %d passed, %d failed" % (ntests - nfailed, nfailed))
    return 1 if nfailed else 0


if __name__ == "__main__":
    sys.exit(main())
