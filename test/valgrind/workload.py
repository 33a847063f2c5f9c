#!/usr/bin/python3
"""The short workload test/valgrind/run.sh runs against a server under
valgrind: every path of notify_ext once, few sessions, small data.  TAP
lines ("ok - ...", "not ok - ...", no plan: run.sh prints it); exit
status 1 if any failed.

usage: workload.py PIDFILE    (connection from PGHOST/PGPORT/PGUSER)

Writes the PIDs of the backends it used to PIDFILE, one a line, so that
run.sh can check that they ran under valgrind.  The server runs 10 to 50
times slower than usual: every wait is generous, and checks that something
did NOT arrive use a marker notification sent after it instead of a pause.

  - ext_listen, ext_notify, delivery to an idle listener waiting on its
    socket, self-notifies, duplicates folded, ext_listening_channels;
  - savepoints (rolled back and released), aborted transactions, an error
    in a notifying transaction, LISTEN in a rolled-back transaction;
  - a listener inside a transaction gets its notifications after COMMIT;
  - conversion to the client encoding (LATIN1), an unconvertible payload;
  - ext_unlisten, ext_unlisten_all, DISCARD ALL;
  - the 64kB ring spilling to disk (pg_notify_ext/) for a parked listener,
    a batch bigger than the ring written straight to disk, a spill file
    that cannot be read (truncated: the gap signal), all with the default
    notify_ext.queue_disk_limit;
  - the queue full on the 64kB queue (54000) with notify_ext.queue_disk_limit
    = 0 (ALTER SYSTEM, reset afterwards), then usable again;
  - drop-in mode (notify_ext.intercept = on): LISTEN, NOTIFY, pg_notify;
  - ext_notify_trigger; the monitoring functions;
  - a terminated listener and one whose client vanishes leave no trace.
"""
import json
import os
import select
import subprocess
import sys
import time

import psycopg

PGHOST = os.environ.get("PGHOST", "/tmp")
PGPORT = os.environ.get("PGPORT", "5432")
PGUSER = os.environ.get("PGUSER", "postgres")
DB = os.environ.get("PGDATABASE", "postgres")
WAIT = float(os.environ.get("NE_VG_WAIT", "60"))   # seconds, for what must arrive
PIDFILE = sys.argv[1] if len(sys.argv) > 1 else os.devnull

failures = []
passed = 0
pids = set()


def check(name, cond, detail=""):
    global passed
    if cond:
        passed += 1
        print("ok - %s" % name, flush=True)
    else:
        failures.append(name)
        print("not ok - %s %s" % (name, detail), flush=True)


def conn(**kw):
    c = psycopg.connect(host=PGHOST, port=PGPORT, user=PGUSER, dbname=DB,
                        autocommit=True, connect_timeout=120, **kw)
    c.received = []
    c.add_notify_handler(lambda n: c.received.append((n.channel, n.payload)))
    pids.add(c.info.backend_pid)
    with open(PIDFILE, "a") as f:
        f.write("%d\n" % c.info.backend_pid)
    return c


def receive(c, until=None, n=None, timeout=WAIT, raw=False):
    """Notifications of c (read during its queries, or now from its socket
    without sending anything) until one on channel `until` arrived, or n
    arrived, or the timeout.  raw: payloads as bytes (libpq's view)."""
    got = [(ch, p.encode() if raw else p) for ch, p in c.received]
    c.received = []
    deadline = time.time() + timeout

    def done():
        if until is not None:
            return any(g[0] == until for g in got)
        return n is not None and len(got) >= n

    while not done():
        left = deadline - time.time()
        if left <= 0:
            break
        select.select([c.fileno()], [], [], min(left, 1.0))
        c.pgconn.consume_input()
        while True:
            x = c.pgconn.notifies()
            if x is None:
                break
            got.append((x.relname.decode(), x.extra if raw else x.extra.decode()))
    return got


def q(c, sql, *args):
    return c.execute(sql, args or None).fetchall()


def main():
    admin = conn()
    admin.execute("CREATE EXTENSION IF NOT EXISTS notify_ext")
    n = conn()
    npid = n.info.backend_pid

    # ------------------------------------------------ basic, idle delivery
    l = conn()
    l.execute("SELECT ext_listen('vg_a'), ext_listen('vg_b')")
    check("ext_listening_channels", q(l, "SELECT * FROM ext_listening_channels()") ==
          [("vg_a",), ("vg_b",)])
    check("ext_listeners shows the listener",
          q(admin, "SELECT count(*) FROM ext_listeners() WHERE pid = %s", l.info.backend_pid) == [(2,)])
    n.execute("SELECT ext_notify('vg_a', 'one')")
    got = receive(l, until="vg_a")
    check("idle listener woken, gets the notification", got == [("vg_a", "one")], got)

    # ------------------------------------------- savepoints, aborts, dedup
    n.autocommit = False
    n.execute("SELECT ext_notify('vg_a', 'keep')")
    n.execute("SAVEPOINT s1")
    n.execute("SELECT ext_notify('vg_a', 'rolled back')")
    n.execute("ROLLBACK TO SAVEPOINT s1")
    n.execute("SAVEPOINT s2")
    n.execute("SELECT ext_notify('vg_b', 'released'), ext_notify('vg_b', 'released')")
    n.execute("RELEASE SAVEPOINT s2")
    n.execute("SELECT ext_notify('vg_a', 'keep')")          # a duplicate
    n.commit()
    n.execute("SELECT ext_notify('vg_a', 'aborted')")
    n.rollback()
    n.execute("SELECT ext_notify('vg_a', 'error')")
    try:
        n.execute("SELECT 1 / 0")
    except psycopg.errors.DivisionByZero:
        pass
    n.rollback()
    n.autocommit = True
    n.execute("SELECT ext_notify('vg_b', 'marker1')")
    got = receive(l, n=3)
    check("savepoints, aborts, errors and duplicates", got ==
          [("vg_a", "keep"), ("vg_b", "released"), ("vg_b", "marker1")], got)

    l.autocommit = False
    l.execute("SELECT ext_listen('vg_never')")
    l.rollback()
    l.autocommit = True
    check("LISTEN in a rolled-back transaction has no effect",
          q(l, "SELECT * FROM ext_listening_channels()") == [("vg_a",), ("vg_b",)])

    # ---------------------------------- a listener inside a transaction
    l.autocommit = False
    l.execute("SELECT 1")
    n.execute("SELECT ext_notify('vg_a', 'while busy')")
    l.execute("SELECT ext_notify('vg_a', 'self')")
    l.commit()
    l.autocommit = True
    got = receive(l, n=2)
    check("listener in a transaction gets notifications after COMMIT, self-notify included",
          got == [("vg_a", "while busy"), ("vg_a", "self")], got)

    # ------------------------------------------------- client encoding
    e = conn(options="-c client_encoding=LATIN1")
    e.execute("SELECT ext_listen('vg_enc')")
    n.execute("SELECT ext_notify('vg_enc', 'año')")
    n.execute("SELECT ext_notify('vg_enc', 'price: €')")    # no € in LATIN1: dropped
    n.execute("SELECT ext_notify('vg_enc', 'after')")
    got = receive(e, n=2, raw=True)
    check("payload converted to LATIN1, unconvertible one dropped",
          got == [("vg_enc", "año".encode("latin1")), ("vg_enc", b"after")], got)
    check("LATIN1 session still usable", q(e, "SELECT 1") == [(1,)])
    e.close()

    # ------------------------------- ext_unlisten, ext_unlisten_all, DISCARD ALL
    l.execute("SELECT ext_unlisten('vg_a')")
    n.execute("SELECT ext_notify('vg_a', 'unlistened'), ext_notify('vg_b', 'marker2')")
    got = receive(l, until="vg_b")
    check("ext_unlisten", got == [("vg_b", "marker2")], got)
    l.execute("SELECT ext_unlisten_all()")
    check("ext_unlisten_all", q(l, "SELECT count(*) FROM ext_listening_channels()") == [(0,)])
    d = conn()
    d.execute("SELECT ext_listen('vg_d')")
    d.execute("DISCARD ALL")
    check("DISCARD ALL stops listening",
          q(d, "SELECT count(*) FROM ext_listening_channels()") == [(0,)])
    d.execute("SELECT ext_listen('vg_m')")
    n.execute("SELECT ext_notify('vg_d', 'discarded'), ext_notify('vg_a', 'x'), ext_notify('vg_m', 'marker3')")
    got = receive(d, until="vg_m") + receive(l, timeout=0)
    check("nothing for discarded or unlistened channels", got == [("vg_m", "marker3")], got)
    d.close()

    # ------------------------------------- spill to disk (64kB ring)
    per = 7990
    f = conn()
    f.execute("SELECT ext_listen('vg_spill'), ext_listen('notify_ext.gap')")
    f.autocommit = False
    f.execute("SELECT 1")                       # parked in a transaction
    sent = []
    for b in range(1, 7):                       # 6 x 32 kB: the ring spills
        n.execute("SELECT count(ext_notify('vg_spill', %s || ':' || lpad(i::text, %s, 'x'))) "
                  "FROM generate_series(1, 4) i", (b, per))
        sent += ["%d:%s" % (b, str(i).rjust(per, "x")) for i in range(1, 5)]
    n.execute("SELECT count(ext_notify('vg_spill', 'g:' || lpad(i::text, %s, 'x'))) "
              "FROM generate_series(1, 12) i", (per,))   # 96 kB, more than the ring
    sent += ["g:%s" % str(i).rjust(per, "x") for i in range(1, 13)]
    disk = q(admin, "SELECT disk_bytes FROM notify_ext_queue")[0][0]
    check("spill: 288 kB for a parked listener go to disk", disk > 0, disk)
    f.commit()
    f.autocommit = True
    got = receive(f, n=len(sent))
    check("spill: the parked listener then gets all %d, in order" % len(sent),
          [p for _, p in got] == sent, (len(got), [p[:12] for _, p in got[:2]]))
    # a spill file that cannot be read
    f.autocommit = False
    f.execute("SELECT 1")
    for b in range(1, 7):
        n.execute("SELECT count(ext_notify('vg_spill', %s || ':' || lpad(i::text, %s, 'z'))) "
                  "FROM generate_series(1, 4) i", (b, per))
    ddir = q(admin, "SHOW data_directory")[0][0]
    spill = os.path.join(ddir, "pg_notify_ext")
    try:
        for name in os.listdir(spill):
            os.truncate(os.path.join(spill, name), 0)
        truncated = True
    except OSError as ex:
        truncated = ex
    notices = []
    f.add_notice_handler(lambda diag: notices.append(diag.sqlstate))
    f.commit()
    f.autocommit = True
    n.execute("SELECT ext_notify('vg_spill', 'after the read error')")
    got = []
    deadline = time.time() + WAIT
    while time.time() < deadline and ("vg_spill", "after the read error") not in got:
        got += receive(f, n=1, timeout=max(0.1, deadline - time.time()))
    check("spill: a truncated spill file: gap notice and notification, then the next one",
          truncated is True and "01N01" in notices and any(ch == "notify_ext.gap" for ch, _ in got)
          and got[-1:] == [("vg_spill", "after the read error")], (truncated, notices, got[-2:]))
    f.close()
    check("spill: queue usage back to 0",
          q(n, "SELECT ext_notification_queue_usage()") == [(0.0,)])

    # ------------------------ queue full (64kB ring, no disk tier)
    admin.execute("ALTER SYSTEM SET notify_ext.queue_disk_limit = 0")
    admin.execute("SELECT pg_reload_conf()")
    deadline = time.time() + WAIT
    while q(n, "SHOW notify_ext.queue_disk_limit") != [("0",)] and time.time() < deadline:
        time.sleep(0.2)
    check("queue_disk_limit = 0 in effect for the notifier", q(n, "SHOW notify_ext.queue_disk_limit") == [("0",)])
    qsize = q(admin, "SELECT setting::bigint * 1024 FROM pg_settings "
                     "WHERE name = 'notify_ext.queue_size'")[0][0]
    nhalf = int(qsize / 2 / (per + 30)) + 1
    f = conn()
    f.execute("SELECT ext_listen('vg_full')")
    f.autocommit = False
    f.execute("SELECT 1")                       # parked in a transaction
    warnings = []
    n.add_notice_handler(lambda diag: warnings.append(diag.severity_nonlocalized))
    n.execute("SELECT count(ext_notify('vg_full', lpad(i::text, %d, 'x'))) "
              "FROM generate_series(1, %d) i" % (per, nhalf))
    err = None
    try:
        for _ in range(2):
            n.execute("SELECT count(ext_notify('vg_full', lpad(i::text, %d, 'y'))) "
                      "FROM generate_series(1, %d) i" % (per, nhalf))
    except psycopg.Error as ex:
        err = ex
    check("half-full warning", "WARNING" in warnings, warnings)
    check("the full queue fails the notifying commit with 54000",
          err is not None and err.sqlstate == "54000", err)
    f.commit()
    f.autocommit = True
    got = receive(f, n=nhalf)
    check("the parked listener gets the first batch",
          [p for _, p in got][:nhalf] == [str(i).rjust(per, "x") for i in range(1, nhalf + 1)],
          len(got))
    receive(f, timeout=1)                       # anything else it had
    n.execute("SELECT ext_notify('vg_full', 'after')")
    got = receive(f, until="vg_full")
    check("queue usable after being full", got[-1:] == [("vg_full", "after")], got)
    check("queue usage back to 0",
          q(n, "SELECT ext_notification_queue_usage()") == [(0.0,)])
    f.close()
    admin.execute("ALTER SYSTEM RESET notify_ext.queue_disk_limit")
    admin.execute("SELECT pg_reload_conf()")

    # ------------------------------------------------------- drop-in mode
    p = conn()
    p.execute("SET notify_ext.intercept = on")
    p.execute("LISTEN vg_drop")
    p.execute("NOTIFY vg_drop, 'plain'")
    p.execute("SELECT pg_notify('vg_drop', 'function')")
    got = receive(p, n=2)
    check("drop-in LISTEN / NOTIFY / pg_notify, self", got ==
          [("vg_drop", "plain"), ("vg_drop", "function")], got)
    n.execute("SET notify_ext.intercept = on")
    n.execute("NOTIFY vg_drop, 'from another session'")
    got = receive(p, n=1)
    check("drop-in NOTIFY to an idle listener", got == [("vg_drop", "from another session")], got)
    p.execute("UNLISTEN *")
    check("drop-in UNLISTEN *", q(p, "SELECT count(*) FROM ext_listening_channels()") == [(0,)])
    n.execute("RESET notify_ext.intercept")
    p.close()

    # ------------------------------------------------------------ trigger
    admin.execute("DROP TABLE IF EXISTS vg_t")
    admin.execute("CREATE TABLE vg_t (id int PRIMARY KEY, v text)")
    admin.execute("CREATE TRIGGER vg_t_notify AFTER INSERT OR UPDATE OR DELETE ON vg_t "
                  "FOR EACH ROW EXECUTE FUNCTION ext_notify_trigger('vg_t')")
    l.execute("SELECT ext_listen('vg_t')")
    n.execute("INSERT INTO vg_t VALUES (1, 'a')")
    n.execute("UPDATE vg_t SET v = 'b'")
    n.execute("DELETE FROM vg_t")
    got = receive(l, n=3)
    try:
        payloads = [json.loads(g[1]) for g in got]
    except ValueError:
        payloads = []
    check("ext_notify_trigger: three JSON notifications",
          len(got) == 3 and len(payloads) == 3, got)

    # --------------------------------------------------------- monitoring
    stats = q(admin, "SELECT * FROM ext_notification_stats()")
    check("ext_notification_stats", len(stats) == 1, stats)
    check("ext_listeners", len(q(admin, "SELECT * FROM ext_listeners()")) >= 1)

    # ------------------------------------- listeners that go away
    t = conn()
    t.execute("SELECT ext_listen('vg_gone1')")
    tpid = t.info.backend_pid
    admin.execute("SELECT pg_terminate_backend(%s)", (tpid,))
    code = ("import psycopg,time;"
            "c=psycopg.connect(host=%r,port=%r,user=%r,dbname=%r,autocommit=True,connect_timeout=120);"
            "c.execute(\"SELECT ext_listen('vg_gone2')\");"
            "print(c.info.backend_pid,flush=True);time.sleep(600)") % (PGHOST, PGPORT, PGUSER, DB)
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    cpid = int(child.stdout.readline())
    pids.add(cpid)
    with open(PIDFILE, "a") as fh:
        fh.write("%d\n" % cpid)
    child.kill()
    child.wait()
    deadline = time.time() + WAIT
    left = None
    while time.time() < deadline:
        left = q(admin, "SELECT count(*) FROM ext_listeners() WHERE pid IN (%s, %s)", tpid, cpid)
        if left == [(0,)]:
            break
        time.sleep(0.5)
    check("terminated listener and vanished client leave no trace", left == [(0,)], left)
    n.execute("SELECT ext_notify('vg_gone1'), ext_notify('vg_gone2')")
    check("nothing queued for departed listeners",
          q(n, "SELECT ext_notification_queue_usage()") == [(0.0,)])

    for c in (l, n, admin):
        c.close()


try:
    main()
except Exception as ex:                       # a failure, not a crash of the script
    failures.append("workload")
    print("not ok - the workload ran to the end: %s: %s" % (type(ex).__name__, ex), flush=True)
print("# backends used: %s" % " ".join(str(p) for p in sorted(pids)))
sys.exit(1 if failures else 0)
