#!/usr/bin/python3
"""Real-client tests of notify_ext that need several sessions, other
databases, raw protocol access or dying clients.

Run with Debian's python3 and psycopg 3 against a cluster with notify_ext
preloaded; connection from PGHOST/PGPORT/PGUSER.  Exits 1 on any failure.

  - wire order: a self-notify arrives after CommandComplete and before
    ReadyForQuery, for the simple and the extended protocol;
  - database-local delivery; a listener in another database, parked in a
    transaction, neither receives nor holds back the queue;
  - a full queue fails the notifying COMMIT with core's error, the half-full
    warning names the PID of the listener that holds the queue, and after
    that listener reads, everything was delivered and the queue is usable
    (with notify_ext.queue_disk_limit = 0: the ring only);
  - a listener that is terminated, or whose client vanishes, leaves no row
    in the listener table;
  - notifications are converted to the client encoding.
"""
import os
import select
import subprocess
import sys
import time

import psycopg

from _tap import check, fail, finish

from _pg import DB, PGHOST, PGPORT, PGUSER, Raw, conn, wait_notifies
from _queue_conf import disk_limit


def test_wire_order():
    r = Raw()
    r.query("SELECT ext_listen('wire')")
    seq, _ = r.query("SELECT ext_notify('wire', 'simple')")
    check("simple protocol self-notify: ... C A Z", seq[-3:] == ["C", "A", "Z"], seq)
    seq, _ = r.query("BEGIN; SELECT ext_notify('wire', 'block'); COMMIT")
    check("self-notify at COMMIT of a block: C A Z", seq[-3:] == ["C", "A", "Z"], seq)
    seq, _ = r.extended("SELECT ext_notify('wire', 'extended')")
    check("extended protocol self-notify: C A Z", seq[-3:] == ["C", "A", "Z"], seq)
    # another session's notification reaches a session in a block at its end
    other = conn()
    r.query("BEGIN")
    other.execute("SELECT ext_notify('wire', 'from other')")
    seq, st = r.query("SELECT 1")
    check("nothing inside a block", "A" not in seq and st == b"T", seq)
    seq, st = r.query("COMMIT")
    check("at COMMIT of the block: C A Z", seq == ["C", "A", "Z"] and st == b"I", seq)
    # and after ROLLBACK of an aborted block
    r.query("BEGIN")
    seq, st = r.query("SELECT 1/0")
    other.execute("SELECT ext_notify('wire', 'while aborted')")
    time.sleep(0.2)
    seq, st = r.query("SELECT 1")
    check("nothing in an aborted block", "A" not in seq and st == b"E", seq)
    seq, st = r.query("ROLLBACK")
    check("at ROLLBACK of an aborted block: C A Z", seq == ["C", "A", "Z"], seq)
    other.close()
    r.s.close()


def test_dropin_extended_protocol():
    """Drop-in mode through the extended protocol (Parse/Bind/Execute/Sync)."""
    r = Raw(options="-c notify_ext.intercept=on")
    seq, _ = r.extended("LISTEN dropin_ext")
    check("extended LISTEN under intercept", seq[-2:] == ["C", "Z"], seq)
    seq, _ = r.extended("NOTIFY dropin_ext, 'extended NOTIFY'")
    check("extended NOTIFY self-notify: C A Z", seq[-3:] == ["C", "A", "Z"], seq)
    seq, _ = r.extended("SELECT pg_notify('dropin_ext', 'extended pg_notify')")
    check("extended pg_notify self-notify: ... C A Z", seq[-3:] == ["C", "A", "Z"], seq)
    seq, _ = r.extended("SELECT count(*) FROM ext_listening_channels() WHERE ext_listening_channels = 'dropin_ext'")
    check("the LISTEN went to notify_ext", "D" in seq, seq)
    other = conn()
    other.execute("SELECT ext_notify('dropin_ext', 'from ext_notify')")
    time.sleep(0.2)
    r.s.settimeout(2)
    t, p = r.read()
    check("idle raw listener receives from another session", t == "A" and b"from ext_notify" in p, (t, p))
    other.close()
    r.s.close()


def ctxt_switches(pid):
    total = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                total += int(line.split()[1])
    return total


def test_only_interested_woken():
    """An idle listener on other channels is not woken by notifications it
    does not listen to (core PG 15 wakes it every time); one on the
    notified channel is.  Wake-ups are read off the listening backends'
    context-switch counters in /proc (same machine)."""
    bystander = conn()
    bystander.execute("SELECT ext_listen('not_this_one')")
    core_bystander = conn()
    core_bystander.execute("LISTEN not_this_one_either")
    target = conn()
    target.execute("SELECT ext_listen('this_one')")
    n = conn()
    pids = [c.info.backend_pid for c in (bystander, core_bystander, target)]
    if not all(os.path.exists("/proc/%d/status" % p) for p in pids):
        check("backends visible in /proc (server on this machine)", False)
        return
    time.sleep(0.2)
    before = [ctxt_switches(p) for p in pids]
    # one at a time, each received before the next: every notify is a
    # separate wake-up, however the scheduler treats us (no coalescing)
    got = []
    for i in range(200):
        n.execute("SELECT ext_notify('this_one', %s)", (str(i),))
        got += wait_notifies(target, 1, 5)
    after_ext = [ctxt_switches(p) for p in pids]
    check("the interested listener received the 200 one by one", len(got) == 200, len(got))
    # (fewer for core: each waits for the bystander to run, up to 0.2 s)
    for i in range(60):
        n.execute("SELECT pg_notify('this_one_core', %s)", (str(i),))
        # give core's bystander the chance to run before the next one
        deadline = time.time() + 0.2
        seen = ctxt_switches(pids[1])
        while ctxt_switches(pids[1]) == seen and time.time() < deadline:
            time.sleep(0.001)
    after_core = [ctxt_switches(p) for p in pids]
    d_bystander = after_ext[0] - before[0]
    d_target = after_ext[2] - before[2]
    d_core_bystander = after_core[1] - after_ext[1]
    check("idle listener on another channel not woken by 200 notifies (%d switches)" % d_bystander,
          d_bystander < 20, d_bystander)
    check("the interested listener was woken (%d switches)" % d_target, d_target >= 20, d_target)
    check("control: core wakes its idle listener on another channel (%d switches for 60 core notifies)"
          % d_core_bystander, d_core_bystander >= 30, d_core_bystander)
    for c in (bystander, core_bystander, target, n):
        c.close()


def test_database_local():
    admin = conn()
    admin.execute("DROP DATABASE IF EXISTS notify_ext_other")
    admin.execute("CREATE DATABASE notify_ext_other")
    o = conn("notify_ext_other")
    o.execute("CREATE EXTENSION notify_ext")
    lo = conn("notify_ext_other")
    lo.execute("SELECT ext_listen('shared_name')")
    lh = conn()
    lh.execute("SELECT ext_listen('shared_name')")
    n = conn()
    n.execute("SELECT ext_notify('shared_name', 'here')")
    got_here = wait_notifies(lh, 1)
    got_other = wait_notifies(lo, 1, 0.3)
    check("same database receives", [g[:2] for g in got_here] == [("shared_name", "here")], got_here)
    check("other database does not receive", got_other == [], got_other)
    o.execute("SELECT ext_notify('shared_name', 'there')")
    got_other = wait_notifies(lo, 1)
    check("other database receives its own", [g[:2] for g in got_other] == [("shared_name", "there")], got_other)
    # a listener of the other database parked in a transaction holds nothing
    lo.autocommit = False
    lo.execute("SELECT 1")
    n.execute("SELECT count(ext_notify('shared_name', i::text)) FROM generate_series(1, 100) i")
    # once the listener of this database has read them (it may take a
    # moment on a busy machine), nothing is held
    got = wait_notifies(lh, 100, 10)
    usage = n.execute("SELECT ext_notification_queue_usage()").fetchone()[0]
    check("parked listener in another database holds no queue space", len(got) == 100 and usage == 0.0,
          (len(got), usage))
    lo.rollback()
    for c in (lo, lh, n, o):
        c.close()
    admin.execute("DROP DATABASE notify_ext_other")
    admin.close()


def test_queue_full():
    with disk_limit("0") as ok:
        check("notify_ext.queue_disk_limit = 0 (the ring only) is in effect", ok)
        queue_full()


def queue_full():
    # the half-full warning is given at most every 5 s, cluster-wide: leave
    # the one an earlier test (test_reliability.py fills the queue) caused behind
    time.sleep(5.1)
    settings = conn()
    qsize = settings.execute(
        "SELECT setting::bigint * 1024 FROM pg_settings WHERE name = 'notify_ext.queue_size'").fetchone()[0]
    per = 7990
    nhalf = int(qsize / 2 / (per + 30)) + 10      # just over half the queue
    listener = conn()
    listener.execute("SELECT ext_listen('full')")
    listener.autocommit = False
    listener.execute("SELECT 1")                  # parked in a transaction
    lpid = listener.info.backend_pid
    notices = []
    n = conn()
    # a Diagnostic is only valid inside the handler: copy what we check
    n.add_notice_handler(lambda d: notices.append(
        (d.severity_nonlocalized, d.message_primary, d.message_detail)))
    n.execute("SELECT count(ext_notify('full', lpad(i::text, %d, 'x'))) FROM generate_series(1, %d) i"
              % (per, nhalf))
    warn = [d for d in notices if d[0] == "WARNING"]
    check("half-full warning", len(warn) == 1 and "NOTIFY queue is" in warn[0][1], notices)
    check("warning names the parked listener's PID",
          len(warn) == 1 and ("PID %d " % lpid) in (warn[0][2] or ""), warn)
    usage = n.execute("SELECT ext_notification_queue_usage()").fetchone()[0]
    check("queue usage over one half", 0.5 <= usage < 1.0, usage)
    err = None
    try:
        n.execute("SELECT count(ext_notify('full', lpad(i::text, %d, 'y'))) FROM generate_series(1, %d) i"
                  % (per, nhalf))
    except psycopg.Error as e:
        err = e
    check("full queue fails the notifying commit with 54000",
          err is not None and err.sqlstate == "54000"
          and "too many notifications in the NOTIFY queue" in str(err), err)
    check("full-queue error names the listener",
          err is not None and ("PID %d " % lpid) in (err.diag.message_detail or ""),
          err and err.diag.message_detail)
    # the listener ends its transaction: it gets all of the first batch
    listener.commit()
    listener.autocommit = True
    got = wait_notifies(listener, nhalf + 1, 10)
    want = [str(i).rjust(per, "x") for i in range(1, nhalf + 1)]
    check("listener gets every committed notification in order, none of the failed",
          [g[1] for g in got] == want and all(g[2] == n.info.backend_pid for g in got),
          (len(got), len(want)))
    usage = n.execute("SELECT ext_notification_queue_usage()").fetchone()[0]
    check("queue empty again after the listener read", usage == 0.0, usage)
    n.execute("SELECT ext_notify('full', 'after')")
    got = wait_notifies(listener, 1)
    check("queue usable after being full", [g[1] for g in got] == ["after"], got)
    listener.close()
    n.close()
    settings.close()


def listener_rows(c, pid):
    return c.execute("SELECT count(*) FROM ext_listeners() WHERE pid = %s", (pid,)).fetchone()[0]


def wait_gone(c, pid, timeout=5.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if listener_rows(c, pid) == 0:
            return True
        time.sleep(0.05)
    return False


def test_listener_cleanup():
    admin = conn()
    l = conn()
    l.execute("SELECT ext_listen('gone1'), ext_listen('gone2')")
    pid = l.info.backend_pid
    check("listener table shows a listener", listener_rows(admin, pid) == 2)
    admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    check("terminated listener leaves no trace", wait_gone(admin, pid))
    # a client process that dies without saying goodbye
    code = ("import psycopg,sys,time,os;"
            "c=psycopg.connect(host=%r,port=%r,user=%r,dbname=%r,autocommit=True);"
            "c.execute(\"SELECT ext_listen('gone3')\");"
            "print(c.info.backend_pid,flush=True);time.sleep(60)") % (PGHOST, PGPORT, PGUSER, DB)
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    pid = int(p.stdout.readline())
    check("listener of the child process registered", listener_rows(admin, pid) == 1)
    p.kill()
    p.wait()
    check("vanished client leaves no trace", wait_gone(admin, pid))
    # notifying the departed listeners' channels still works and queues nothing
    admin.execute("SELECT ext_notify('gone1'), ext_notify('gone3')")
    usage = admin.execute("SELECT ext_notification_queue_usage()").fetchone()[0]
    check("no queue space held for departed listeners", usage == 0.0, usage)
    admin.close()


def test_client_encoding():
    l = conn(options="-c client_encoding=LATIN1")
    l.execute("SELECT ext_listen('enc')")
    n = conn()
    n.execute("SELECT ext_notify('enc', 'año')")
    n.execute("SELECT ext_notify('enc', 'price: €')")   # no € in LATIN1
    n.execute("SELECT ext_notify('enc', 'after')")
    got = []
    deadline = time.time() + 2
    while len(got) < 2 and time.time() < deadline:
        select.select([l.fileno()], [], [], 0.5)
        l.pgconn.consume_input()
        while True:
            x = l.pgconn.notifies()
            if x is None:
                break
            got.append(x.extra)
    check("payload converted to client encoding", got[:1] == ["año".encode("latin1")], got)
    check("unconvertible payload skipped, connection intact, next delivered",
          got[1:] == [b"after"], got)
    check("session still usable", l.execute("SELECT 1").fetchone()[0] == 1)
    l.close()
    n.close()


def main():
    for t in (test_wire_order, test_dropin_extended_protocol, test_only_interested_woken,
              test_database_local, test_queue_full,
              test_listener_cleanup, test_client_encoding):
        try:
            t()
        except Exception as e:     # a crash in a test is a failure, not a pass
            fail("%s raised %r" % (t.__name__, e))
    finish("session")


if __name__ == "__main__":
    main()
