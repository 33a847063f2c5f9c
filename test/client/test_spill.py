#!/usr/bin/python3
"""The tiered queue (issue 8): the shared-memory ring spills to files in
$PGDATA/pg_notify_ext/ up to notify_ext.queue_disk_limit.

Run with Debian's python3 and psycopg 3 against a cluster with notify_ext
preloaded and the default notify_ext.queue_size (16MB) and
notify_ext.queue_disk_limit (8GB); connection from
PGHOST/PGPORT/PGUSER/PGDATABASE, as a superuser (and as root or the
server's OS user for e and g, which touch the spill files).  It changes
notify_ext.queue_disk_limit with ALTER SYSTEM + pg_reload_conf() and
always resets it.  TAP lines; exits 1 on any failure.

  a. one transaction of 1,000,000 distinct notifications from a row
     trigger (ext_notify_trigger() on a bulk UPDATE, ~190 MB of queue, 12x
     the ring): it commits and an idle listener (the libpq program
     helpers/spill_recv.c, compiled here) receives all of them in firing
     order; a2: a 17.6 MB batch of ext_notify() calls (bigger than the
     ring) commits and is received whole, in order;
  b. a listener parked in a transaction while two notifiers commit 5x the
     ring (4 kB payloads): no commit fails (max commit latency printed),
     spill files exist and disk_bytes > 0 meanwhile, an idle listener
     gets everything in order, the parked one gets the same sequence
     after its COMMIT, then the files are removed (disk_bytes 0; at most
     the one segment file the tail is in is left);
  c. queue_disk_limit = 4MB: with a parked listener a notifying commit
     fails only once ring + disk are full, with 54000, core's message and
     the parked PID in the DETAIL; after ROLLBACK the listener gets every
     committed notification and the queue is empty and usable again;
  d. queue_disk_limit = 0: the ring-only behaviour: a batch bigger than the
     ring fails, and with a parked listener the error comes as soon as the
     16MB ring is full; nothing is written to disk;
  e. read error: spill files truncated to 0 bytes under a parked listener:
     at its COMMIT a WARNING 01N01 "notify_ext: ... could not be read", a
     notify_ext.gap notification with "reason": "read error" (as the README
     says), a server log line; the session stays usable and receives later
     notifications;
  f. ext_notification_queue_usage() and notify_ext_queue agree:
     capacity_bytes = ring_bytes + disk_limit_bytes, used_fraction =
     used_bytes / capacity_bytes (checked idle and while spilled);
  g. write error: with pg_notify_ext/ read-only (no new spill file can be
     created) a commit that must spill fails with an ERROR before commit;
     nothing of it is delivered, nothing else is lost, and once the
     directory is writable again the queue spills and delivers as before.
"""
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import psycopg  # noqa: E402

from _pg import DB, PGHOST, PGPORT, PGUSER, conn, wait_notifies  # noqa: E402
from _queue_conf import set_disk_limit  # noqa: E402
from _tap import check, finish  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
MB = 1024 * 1024
GAP = "notify_ext.gap"
QUEUE_FULL = "too many notifications in the NOTIFY queue"
DIR = "pg_notify_ext"
MON = None
TMP = None


class Watchdog(Exception):
    pass


# ------------------------------------------------------------ helpers
def wait_for(pred, timeout=10.0, step=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


def one(sql, args=None):
    return MON.execute(sql, args).fetchone()


def status():
    """notify_ext_queue as a dict."""
    cur = MON.execute("SELECT * FROM notify_ext_queue")
    row = cur.fetchone()
    return dict(zip([d.name for d in cur.description], row))


def usage():
    return one("SELECT ext_notification_queue_usage()")[0]


def spill_files():
    """[(name, size)] of the files in $PGDATA/pg_notify_ext (none if absent)."""
    return MON.execute(
        "SELECT f, (pg_stat_file(%s || '/' || f, true)).size FROM pg_ls_dir(%s, true, false) f "
        "ORDER BY f", (DIR, DIR)).fetchall()


def queue_idle(timeout=20):
    """Wait until nothing is queued and nothing is on disk (up to timeout),
    and the spill files are removed (up to 5 s more): all but at most one,
    the segment the tail is in, which stays until the queue moves past it;
    True, or the last (used_bytes, disk_bytes, files) seen."""
    last = [None]

    def idle(files):
        s = status()
        f = spill_files() if files else []
        last[0] = (s["used_bytes"], s.get("disk_bytes"), f[:3])
        return s["used_bytes"] == 0 and s.get("disk_bytes") == 0 and len(f) <= 1
    ok = wait_for(lambda: idle(False), timeout, 0.1) and wait_for(lambda: idle(True), 5, 0.1)
    return True if ok else last[0]


class Env:
    """The connections and processes a case opens, closed in any case."""

    def __init__(self):
        self.conns = []
        self.procs = []

    def conn(self):
        c = conn()
        c.notices = []
        c.add_notice_handler(lambda d: c.notices.append(
            (d.sqlstate, d.severity_nonlocalized, d.message_primary, d.message_detail)))
        self.conns.append(c)
        return c

    def parked(self, chans):
        """A listener parked in an open transaction."""
        c = self.conn()
        c.execute("SELECT " + ", ".join("ext_listen('%s')" % ch for ch in chans))
        c.autocommit = False
        c.execute("SELECT 1")
        return c

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            try:
                p.communicate(timeout=10)
            except (subprocess.TimeoutExpired, ValueError, OSError):
                pass
        for c in self.conns:
            try:
                c.close()
            except Exception:  # noqa: BLE001
                pass


# --------------------------------------------------- the libpq receiver
RECV = None


def build_recv():
    """Compile helpers/spill_recv.c into the temporary directory."""
    global RECV
    pgc = os.environ.get("PG_CONFIG") or shutil.which("pg_config") or \
        "/usr/lib/postgresql/15/bin/pg_config"
    try:
        inc = subprocess.check_output([pgc, "--includedir"], text=True).strip()
        lib = subprocess.check_output([pgc, "--libdir"], text=True).strip()
        out = os.path.join(TMP, "spill_recv")
        r = subprocess.run([os.environ.get("CC", "cc"), "-std=gnu11", "-O2", "-Wall", "-Wextra",
                            "-Werror", "-I" + inc, "-o", out,
                            os.path.join(HERE, "helpers", "spill_recv.c"), "-L" + lib, "-lpq"],
                           capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError) as e:
        check("helpers/spill_recv.c compiles", False, repr(e))
        return False
    check("helpers/spill_recv.c compiles", r.returncode == 0, r.stderr[-2000:])
    if r.returncode == 0:
        RECV = out
    return r.returncode == 0


def start_recv(env, *args):
    """Start spill_recv with ARGS; returns (process, backend pid)."""
    p = subprocess.Popen([RECV] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=dict(os.environ, PGHOST=PGHOST, PGPORT=str(PGPORT),
                                             PGUSER=PGUSER, PGDATABASE=DB))
    env.procs.append(p)
    ready, _, _ = select.select([p.stdout], [], [], 20)
    line = p.stdout.readline() if ready else ""
    if not line.startswith("ready "):
        raise RuntimeError("spill_recv did not start: %r %r" % (line, p.stderr.read()[-500:]
                                                                 if p.poll() is not None else ""))
    return p, int(line.split()[1])


def finish_recv(p, timeout):
    out, err = p.communicate(timeout=timeout)
    kv = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    kv["stderr"] = err[-500:]
    return kv


# ------------------------------------------------------- notifying
def batch_sql(chan, tag, b, count, size):
    """One statement: count notifications "tag:b:i|xxx..." of size bytes."""
    return ("SELECT count(ext_notify('%s', format('%%s:%%s:%%s|', '%s', %d, i) || repeat('x', %d))) "
            "FROM generate_series(1, %d) i" % (chan, tag, b, size, count))


def batch_keys(tag, b, count):
    return ["%s:%d:%d" % (tag, b, i) for i in range(1, count + 1)]


def key_of(payload):
    return payload.split("|", 1)[0]


PER_BATCH = 260          # ~2 MB transactions, as in test_overflow.py
BIG = 7900


def send_until_error(n, chan, limit):
    """Commit 2 MB batches until one fails; returns (error, keys committed,
    batches committed)."""
    keys = []
    for b in range(1, limit + 1):
        try:
            n.execute(batch_sql(chan, "f", b, PER_BATCH, BIG))
        except psycopg.Error as e:
            return e, keys, b - 1
        keys += batch_keys("f", b, PER_BATCH)
    return None, keys, limit


def received_keys(c, n, timeout, chan):
    got = wait_notifies(c, n, timeout)
    return [key_of(pl) for ch, pl, _ in got if ch == chan], got


# --------------------------------------------------------- f. (idle part)
def test_columns_idle(env):
    s = status()
    want = {"ring_bytes", "disk_limit_bytes", "disk_bytes", "spilled_bytes", "spill_read_errors"}
    check("f: notify_ext_queue has the columns ring_bytes, disk_limit_bytes, disk_bytes, "
          "spilled_bytes, spill_read_errors", want <= set(s), sorted(set(s)))
    if not want <= set(s):
        return
    cols = list(s)
    check("f: ... at the end, in that order", cols[-5:] == ["ring_bytes", "disk_limit_bytes",
                                                             "disk_bytes", "spilled_bytes",
                                                             "spill_read_errors"], cols[-6:])
    ring = one("SELECT pg_size_bytes(current_setting('notify_ext.queue_size'))")[0]
    limit = one("SELECT pg_size_bytes(current_setting('notify_ext.queue_disk_limit'))")[0]
    check("f: ring_bytes = notify_ext.queue_size (%d)" % ring, s["ring_bytes"] == ring, s)
    check("f: disk_limit_bytes = notify_ext.queue_disk_limit, 8GB by default",
          s["disk_limit_bytes"] == limit == 8192 * MB, (s["disk_limit_bytes"], limit))
    check("f: capacity_bytes = ring_bytes + disk_limit_bytes",
          s["capacity_bytes"] == s["ring_bytes"] + s["disk_limit_bytes"], s)
    check("f: idle: used 0, disk_bytes 0, usage 0 (and no spill file but the tail's segment)",
          s["used_bytes"] == 0 and s["disk_bytes"] == 0 and len(spill_files()) <= 1 and usage() == 0,
          (s, spill_files()))
    r = MON.execute("SELECT * FROM ext_queue_status()")
    check("f: ext_queue_status() has the same columns as the view",
          [d.name for d in r.description] == cols, [d.name for d in r.description])
    r.fetchall()
    st = one("SELECT context, unit, boot_val FROM pg_settings "
             "WHERE name = 'notify_ext.queue_disk_limit'")
    check("f: notify_ext.queue_disk_limit: sighup, MB, default 8GB", st == ("sighup", "MB", "8192"), st)


def check_consistent(what, expect_spilled):
    """f. while a parked listener holds the queue (nothing moving)."""
    s = status()
    u = usage()
    check("%s: capacity_bytes = ring_bytes + disk_limit_bytes" % what,
          s["capacity_bytes"] == s["ring_bytes"] + s["disk_limit_bytes"], s)
    frac = s["used_bytes"] / s["capacity_bytes"] if s["capacity_bytes"] else -1
    check("%s: used_fraction = used_bytes / capacity_bytes = ext_notification_queue_usage() (%.6f)"
          % (what, frac), abs(s["used_fraction"] - frac) < 1e-9 and abs(u - frac) < 1e-9,
          (s["used_fraction"], frac, u))
    if expect_spilled:
        check("%s: used_bytes - disk_bytes <= ring_bytes, 0 < disk_bytes <= spilled_bytes, "
              "disk_bytes <= disk_limit_bytes" % what,
              0 < s["disk_bytes"] <= s["spilled_bytes"] and s["disk_bytes"] <= s["disk_limit_bytes"]
              and s["used_bytes"] - s["disk_bytes"] <= s["ring_bytes"], s)
    return s


# ------------------------------------------------------------- a. 1M rows
def test_million(env):
    N = int(os.environ.get("NE_SPILL_ROWS", "1000000"))
    w = env.conn()
    w.execute("DROP TABLE IF EXISTS spill_rows")
    w.execute("DROP SEQUENCE IF EXISTS spill_rows_seq")
    w.execute("CREATE UNLOGGED TABLE spill_rows (id int PRIMARY KEY, v bigint)")
    w.execute("CREATE SEQUENCE spill_rows_seq")
    w.execute("INSERT INTO spill_rows SELECT i FROM generate_series(1, %d) i" % N)
    w.execute("CREATE TRIGGER spill_rows_notify AFTER UPDATE ON spill_rows FOR EACH ROW "
              "EXECUTE FUNCTION ext_notify_trigger('spill_rows')")
    before = status()
    p, _ = start_recv(env, "-c", "spill_rows", "-n", str(N), "-k", "trigger", "-s", "1",
                      "-q", "60", "-w", "240")
    err = None
    t0 = time.time()
    try:
        # v = nextval(): the k-th row the UPDATE changes (and the k-th AFTER
        # ROW event) carries v = k, whatever the physical order of the rows
        w.execute("UPDATE spill_rows SET v = nextval('spill_rows_seq')")
    except psycopg.Error as e:
        err = e
    t1 = time.time()
    after = status()
    kv = finish_recv(p, 300)
    t2 = time.time()
    print("# a: UPDATE of %d rows with the trigger (commit included) %.1f s, last notification "
          "received %.1f s later; %s MB written to spill files"
          % (N, t1 - t0, t2 - t1, "%.0f" % ((after.get("spilled_bytes", 0) - before.get("spilled_bytes", 0)) / MB)
             if "spilled_bytes" in after else "?"))
    check("a: one transaction of %d trigger notifications commits" % N, err is None, err)
    check("a: the listener receives all %d (got %s)" % (N, kv.get("received")),
          kv.get("received") == str(N) and kv.get("timed_out") == "0" and kv.get("lost") == "0", kv)
    check("a: ... in firing order, each once (record.v = 1, 2, ..., %d)" % N,
          kv.get("in_order") == "1" and kv.get("received") == str(N), kv.get("first_bad"))
    check("a: ... all from the notifier's backend, no gap signal",
          kv.get("sender_pid") == str(w.info.backend_pid) and kv.get("other_senders") == "0"
          and kv.get("gap_notifications") == "0" and kv.get("gap_notices") == "0", kv)
    if "spilled_bytes" in after:
        check("a: the batch went to disk (spilled_bytes grew by more than the ring)",
              after["spilled_bytes"] - before["spilled_bytes"] > after["ring_bytes"],
              (before["spilled_bytes"], after["spilled_bytes"]))
    idle = queue_idle(30)
    check("a: afterwards the queue is empty and the spill files are gone", idle is True, idle)
    w.execute("DROP TABLE spill_rows")
    w.execute("DROP SEQUENCE spill_rows_seq")


def test_big_batch(env):
    """a2: ext_notify() batch bigger than the ring."""
    ring = status()["ring_bytes"]
    n_big = ring // 7990 + 100          # 2200 with 16MB
    lst = env.conn()
    lst.execute("SELECT ext_listen('spill_big')")
    n = env.conn()
    err = None
    try:
        n.execute("SELECT count(ext_notify('spill_big', i || '|' || repeat('x', 7980))) "
                  "FROM generate_series(1, %d) i" % n_big)
    except psycopg.Error as e:
        err = e
    check("a2: a transaction of %d notifications of 8 kB (%.1f MB, more than the %d MB ring) commits"
          % (n_big, n_big * 7990 / MB, ring // MB), err is None, err)
    got, raw = received_keys(lst, n_big, 30, "spill_big")
    check("a2: ... and is received whole, in order",
          got == [str(i) for i in range(1, n_big + 1)], (len(got), got[:2], got[-2:]))
    idle = queue_idle()
    check("a2: afterwards the queue is empty and the spill files are gone", idle is True, idle)


# ----------------------------------------------------- b. parked listener
class Notifier(threading.Thread):
    def __init__(self, tag, txns, per, size, chan):
        super().__init__(daemon=True)
        self.c = conn()
        self.c.add_notice_handler(lambda d: None)
        self.tag, self.txns, self.per, self.size, self.chan = tag, txns, per, size, chan
        self.lat = []
        self.errors = []
        self.committed = []      # keys, in commit order

    def run(self):
        for t in range(1, self.txns + 1):
            t0 = time.time()
            try:
                self.c.execute(batch_sql(self.chan, self.tag, t, self.per, self.size))
            except Exception as e:  # noqa: BLE001 - reported by the test
                self.errors.append(e)
                continue
            self.lat.append(time.time() - t0)
            self.committed.append(batch_keys(self.tag, t, self.per))

    def close(self):
        self.c.close()


def seq_problems(seq, txns_by_tag):
    """seq: the keys a listener received.  Each notifier's transactions
    must appear whole, in its commit order, nothing else, nothing twice."""
    probs = []
    if len(seq) != len(set(seq)):
        probs.append("duplicates")
    for tag, txns in txns_by_tag.items():
        want = [k for t in txns for k in t]
        mine = [k for k in seq if k.split(":", 1)[0] == tag]
        if mine != want:
            i = next((j for j, (a, b) in enumerate(zip(mine, want)) if a != b), min(len(mine), len(want)))
            probs.append("notifier %s: %d of %d, first difference at %d: %r vs %r"
                         % (tag, len(mine), len(want), i, mine[i:i + 1], want[i:i + 1]))
    total = sum(len(t) for txns in txns_by_tag.values() for t in txns)
    if len(seq) != total:
        probs.append("%d received, %d sent" % (len(seq), total))
    return probs


def test_parked(env):
    ring = status()["ring_bytes"]
    per, size = 40, 4000
    txns = int(5 * ring // (2 * per * size)) + 1      # two notifiers: 5x the ring in all
    total = 2 * txns * per
    parked = env.parked(["spill_b"])
    active, _ = start_recv(env, "-c", "spill_b", "-n", str(total), "-k", "prefix",
                           "-o", os.path.join(TMP, "active.txt"), "-q", "60", "-w", "240")
    before = status()
    ns = [Notifier(tag, txns, per, size, "spill_b") for tag in ("n1", "n2")]
    t0 = time.time()
    for n in ns:
        n.start()
    for n in ns:
        n.join(180)
    dt = time.time() - t0
    lat = sorted(x for n in ns for x in n.lat)
    errs = [e for n in ns for e in n.errors]
    mb = total * size / MB
    print("# b: 2 notifiers committed %d transactions of %d x %d bytes (%.0f MB) in %.2f s; "
          "commit latency median %.1f ms, p99 %.1f ms, max %.1f ms"
          % (len(lat), per, size, mb, dt, 1000 * lat[len(lat) // 2] if lat else -1,
             1000 * lat[int(len(lat) * 0.99)] if lat else -1, 1000 * lat[-1] if lat else -1))
    check("b: no notifying commit fails over %.0f MB (5x the ring) with a listener parked" % mb,
          errs == [] and len(lat) == 2 * txns, [str(e) for e in errs[:2]])
    kv = finish_recv(active, 120)
    txns_by_tag = {n.tag: n.committed for n in ns}
    try:
        with open(os.path.join(TMP, "active.txt")) as f:
            aseq = [line.rstrip("\n").split("\t")[2] for line in f]
    except OSError as e:
        aseq = []
        kv["file"] = repr(e)
    probs = seq_problems(aseq, txns_by_tag)
    check("b: the idle listener receives all %d notifications, each transaction whole and in "
          "each notifier's commit order" % total, not probs and kv.get("gap_notices") == "0",
          (probs[:3], kv))
    # the parked listener still holds it all
    files = spill_files()
    s = check_consistent("f: while spilled", True)
    print("# b: meanwhile %d spill files (%.1f MB), disk_bytes %.1f MB"
          % (len(files), sum(x[1] for x in files) / MB, s["disk_bytes"] / MB))
    check("b: meanwhile the parked listener holds it all: used_bytes >= what was sent (%.0f MB), "
          "disk_bytes > 0, files in pg_notify_ext/" % mb,
          s["used_bytes"] >= total * size and s["disk_bytes"] > 0 and len(files) > 0, (s, files[:3]))
    check("b: spilled_bytes grew", s["spilled_bytes"] > before["spilled_bytes"],
          (before["spilled_bytes"], s["spilled_bytes"]))
    lr = one("SELECT state, lag_bytes, lag_notifications FROM notify_ext_listeners WHERE pid = %s",
             (parked.info.backend_pid,))
    check("b: notify_ext_listeners: the parked listener is 'in transaction', lagging by all %d"
          % total, lr is not None and lr[0] == "in transaction" and lr[2] == total, lr)
    # the parked listener commits: everything, in the same order
    t1 = time.time()
    parked.commit()
    parked.autocommit = True
    got, raw = received_keys(parked, total, 60, "spill_b")
    t2 = time.time()
    print("# b: the parked listener received %d notifications in %.1f s after its COMMIT"
          % (len(got), t2 - t1))
    check("b: after COMMIT the parked listener receives all %d, in the same order as the idle "
          "one" % total, got == aseq and len(got) == total,
          (len(got), seq_problems(got, txns_by_tag)[:3]))
    check("b: ... and no gap notice", not any(n[0] == "01N01" for n in parked.notices),
          parked.notices[:2])
    idle = queue_idle(30)
    check("b: then the spill files are removed: disk_bytes 0, usage 0, pg_notify_ext/ empty "
          "but for the segment the tail is in",
          idle is True, idle)
    for n in ns:
        n.close()


# -------------------------------------------------- c. disk limit reached
def test_limit(env):
    if not set_disk_limit("4MB"):
        check("c: queue_disk_limit = 4MB is in effect", False)
        return
    s0 = status()
    check("c: disk_limit_bytes = 4MB, capacity_bytes = ring + 4MB",
          s0["disk_limit_bytes"] == 4 * MB and s0["capacity_bytes"] == s0["ring_bytes"] + 4 * MB, s0)
    parked = env.parked(["spill_c"])
    n = env.conn()
    err, keys, nb = send_until_error(n, "spill_c", 30)
    per_batch = PER_BATCH * (BIG + 8)
    sent = nb * per_batch
    s = status()
    print("# c: %d batches (%.1f MB) committed before the failure; disk_bytes %.1f MB"
          % (nb, sent / MB, s["disk_bytes"] / MB))
    check("c: a notifying commit fails with SQLSTATE 54000 and core's message",
          err is not None and err.sqlstate == "54000" and err.diag.message_primary == QUEUE_FULL, err)
    detail = (err.diag.message_detail or "") if err else ""
    check("c: ... the DETAIL names the parked listener's PID %d" % parked.info.backend_pid,
          re.search(r"\bPID %d\b" % parked.info.backend_pid, detail) is not None, detail)
    check("c: ... only once more than the ring was queued, and no more than ring + disk limit "
          "(%.1f MB)" % (sent / MB),
          s0["ring_bytes"] < sent <= s0["ring_bytes"] + 4 * MB, (nb, sent))
    check("c: disk_bytes > 0 and <= the 4MB limit", 0 < s["disk_bytes"] <= 4 * MB, s)
    check("c: queue_full_count grew, last_full_action error",
          s["queue_full_count"] > s0["queue_full_count"] and s["last_full_action"] == "error", s)
    check_consistent("f: at the disk limit", True)
    parked.rollback()
    parked.autocommit = True
    got, raw = received_keys(parked, len(keys), 30, "spill_c")
    check("c: after ROLLBACK the parked listener receives the %d committed notifications, in order"
          % len(keys), got == keys and len(keys) > 0, (len(got), len(keys)))
    idle = queue_idle()
    check("c: the queue empties: usage 0, disk_bytes 0, the spill files removed", idle is True, idle)
    n.execute("SELECT ext_notify('spill_c', 'after')")
    got = wait_notifies(parked, 1, 5)
    check("c: and works again", [g[1] for g in got] == ["after"], got)


# ------------------------------------------------------ d. no disk at all
def test_no_disk(env):
    if not set_disk_limit("0"):
        check("d: queue_disk_limit = 0 is in effect", False)
        return
    s0 = status()
    check("d: disk_limit_bytes 0, capacity_bytes = ring_bytes",
          s0["disk_limit_bytes"] == 0 and s0["capacity_bytes"] == s0["ring_bytes"], s0)
    ring = s0["ring_bytes"]
    lst = env.conn()
    lst.execute("SELECT ext_listen('spill_d')")
    n = env.conn()
    err = None
    try:
        n.execute("SELECT count(ext_notify('spill_d', i || '|' || repeat('x', 7980))) "
                  "FROM generate_series(1, %d) i" % (ring // 7990 + 100))
    except psycopg.Error as e:
        err = e
    check("d: a batch bigger than the ring fails at COMMIT with 54000",
          err is not None and err.sqlstate == "54000" and err.diag.message_primary == QUEUE_FULL, err)
    got = wait_notifies(lst, 1, 0.5)
    check("d: ... and nothing of it is delivered", got == [], got[:2])
    lst.close()         # (it would not read what follows, and hold the queue too)
    parked = env.parked(["spill_d"])
    err, keys, nb = send_until_error(n, "spill_d", 30)
    per_batch = PER_BATCH * (BIG + 8)
    s = status()
    print("# d: %d batches (%.1f MB) committed before the ring-full failure" % (nb, nb * per_batch / MB))
    check("d: with a parked listener a commit fails with 54000 naming it",
          err is not None and err.sqlstate == "54000"
          and re.search(r"\bPID %d\b" % parked.info.backend_pid, err.diag.message_detail or ""),
          err and (err, err.diag.message_detail))
    check("d: ... as soon as the ring is full (%d batches fit, %.1f MB)" % (nb, nb * per_batch / MB),
          nb * per_batch <= ring < (nb + 1) * (per_batch + PER_BATCH * 64), nb)
    check("d: nothing went to disk (disk_bytes 0, spilled_bytes unchanged, no file)",
          s["disk_bytes"] == 0 and s["spilled_bytes"] == s0["spilled_bytes"] and spill_files() == [],
          (s, spill_files()))
    check_consistent("f: ring only", False)
    parked.rollback()
    parked.autocommit = True
    got, raw = received_keys(parked, len(keys), 30, "spill_d")
    check("d: after ROLLBACK the parked listener receives the %d committed ones, in order" % len(keys),
          got == keys and len(keys) > 0, (len(got), len(keys)))
    idle = queue_idle()
    check("d: the queue empties", idle is True, idle)


# ------------------------------------------------------- e. read errors
class ServerLog:
    """The cluster's log, read through the server."""

    def __init__(self):
        self.path = None
        cur = one("SELECT pg_current_logfile()")[0]
        cands = []
        if cur:
            ddir = one("SHOW data_directory")[0]
            cands.append(cur if cur.startswith("/") else os.path.join(ddir, cur))
        elif PGHOST.startswith("/"):
            cands.append(os.path.join(PGHOST, "log", "postmaster.log"))
        for c in cands:
            if self.size(c) is not None:
                self.path = c
                break

    def size(self, path=None):
        return one("SELECT (pg_stat_file(%s, true)).size", (path or self.path,))[0]

    def mark(self):
        return self.size() if self.path else 0

    def since(self, mark):
        if not self.path:
            return None
        end = self.size()
        data = one("SELECT pg_read_binary_file(%s, %s, %s)", (self.path, mark, max(0, end - mark)))[0]
        return bytes(data).decode(errors="replace")


def test_read_error(env, log):
    ddir = one("SHOW data_directory")[0]
    spill = os.path.join(ddir, DIR)
    parked = env.parked(["spill_e", GAP])
    n = env.conn()
    keys = []
    ring = status()["ring_bytes"]
    nb = int(1.5 * ring // (PER_BATCH * BIG)) + 1       # 1.5x the ring: a third or more on disk
    for b in range(1, nb + 1):
        n.execute(batch_sql("spill_e", "e", b, PER_BATCH, BIG))
        keys += batch_keys("e", b, PER_BATCH)
    s0 = status()
    files = spill_files()
    check("e: %d MB sent to a parked listener: spill files exist" % (nb * PER_BATCH * BIG // MB),
          len(files) > 0 and s0["disk_bytes"] > 0, (files, s0["disk_bytes"]))
    if not files:
        return
    if not os.access(spill, os.W_OK):
        check("e: read error # SKIP %s is not writable by this user" % spill, True)
        return
    mark = log.mark()
    for name, _ in files:
        os.truncate(os.path.join(spill, name), 0)
    parked.commit()
    parked.autocommit = True
    # everything that comes, until 1.5 s of silence
    got = wait_notifies(parked, len(keys) + 1, 3)
    while True:
        more = wait_notifies(parked, 1, 1.5)
        if not more:
            break
        got += more
    warn = [x for x in parked.notices if x[0] == "01N01"]
    check("e: the listener gets a WARNING with SQLSTATE 01N01, 'notify_ext: ...could not be read'",
          any(x[1] == "WARNING" and (x[2] or "").startswith("notify_ext: ") and "could not be read" in (x[2] or "")
              for x in warn), parked.notices[:3])
    print("# e: the warning: %r" % (warn[:1],))
    gaps = []
    for ch, pl, pid in got:
        if ch == GAP:
            try:
                gaps.append(json.loads(pl))
            except ValueError:
                gaps.append({"unparsable": pl})
    # (the README's wording: "reason": "read error", "missed": null)
    check("e: ... and a notify_ext.gap notification from PID 0 whose JSON has \"reason\": "
          "\"read error\" and \"missed\": null",
          any(g.get("reason") == "read error" and "missed" in g and g["missed"] is None for g in gaps)
          and all(pid == 0 for ch, _, pid in got if ch == GAP), gaps[:2])
    print("# e: the gap notification: %r" % (gaps[:1],))
    recv = [key_of(pl) for ch, pl, _ in got if ch == "spill_e"]
    pos = {k: i for i, k in enumerate(keys)}
    idx = [pos.get(k, -1) for k in recv]
    check("e: what it receives is in order, without duplicates or strangers, and not what was "
          "lost (%d of %d)" % (len(recv), len(keys)),
          -1 not in idx and idx == sorted(set(idx)) and len(recv) < len(keys), (len(recv), idx[:3]))
    err = None
    try:
        parked.execute("SELECT 1")
    except psycopg.Error as e:
        err = e
    check("e: the connection stays usable", err is None and not parked.closed, err)
    n.execute("SELECT ext_notify('spill_e', 'after')")
    got = wait_notifies(parked, 1, 5)
    check("e: later notifications arrive", [(g[0], g[1]) for g in got] == [("spill_e", "after")], got)
    s = status()
    check("e: spill_read_errors grew", s["spill_read_errors"] > s0["spill_read_errors"],
          (s0["spill_read_errors"], s["spill_read_errors"]))
    text = log.since(mark)
    if text is None:
        check("e: server log # SKIP log file not found", True)
    else:
        lines = [ln for ln in text.splitlines()
                 if re.search(r"\b(LOG|WARNING):  ", ln) and ("pg_notify_ext" in ln or "notify_ext" in ln)
                 and re.search(r"could not|read", ln)]
        check("e: the server log has a LOG/WARNING line about it", bool(lines), text[-800:])
        print("# e: logged: %s" % (lines[:2],))
    idle = queue_idle()
    check("e: afterwards the queue is empty and the spill files are gone", idle is True, idle)


# ------------------------------------------------- g. write errors
def test_write_error(env):
    """A spill that cannot be written (pg_notify_ext/ made read-only, so
    that no new segment file can be created) fails the notifying commit
    with an ERROR before commit; nothing of it is delivered, nothing else
    is lost, and the queue works again once the directory is writable."""
    ddir = one("SHOW data_directory")[0]
    spill = os.path.join(ddir, DIR)
    try:
        mode = os.stat(spill).st_mode & 0o7777
    except OSError as e:
        check("g: write error # SKIP cannot stat %s: %s" % (spill, e), True)
        return
    if os.geteuid() != 0 and os.stat(spill).st_uid != os.geteuid():
        check("g: write error # SKIP %s belongs to another user" % spill, True)
        return
    parked = env.parked(["spill_g"])
    n = env.conn()
    os.chmod(spill, 0o500)
    try:
        err, keys, nb = send_until_error(n, "spill_g", 30)
    finally:
        os.chmod(spill, mode)
    print("# g: %d batches (%.1f MB) committed, then: %s" % (nb, nb * PER_BATCH * BIG / MB,
                                                          err and err.diag.message_primary))
    check("g: with pg_notify_ext/ read-only, a commit that must spill fails with an ERROR "
          "'could not ... notify_ext spill file' (not 54000)",
          err is not None and err.sqlstate not in (None, "54000")
          and err.diag.severity_nonlocalized == "ERROR"
          and re.match(r"could not \w+ notify_ext spill file", err.diag.message_primary or ""),
          err and (err.sqlstate, str(err)))
    check("g: ... once the ring is full, not before (%d batches fit)" % nb,
          nb * PER_BATCH * BIG > status()["ring_bytes"] * 0.8, nb)
    try:
        r = n.execute("SELECT 1").fetchone()[0]
    except psycopg.Error as e:
        r = e
    check("g: the notifier's session is usable afterwards", r == 1, r)
    parked.rollback()
    parked.autocommit = True
    got, raw = received_keys(parked, len(keys), 30, "spill_g")
    extra = wait_notifies(parked, 1, 0.5)
    check("g: the parked listener gets exactly the %d committed notifications, in order, nothing of "
          "the failed transaction" % len(keys), got == keys and len(keys) > 0 and extra == [],
          (len(got), len(keys), extra[:1]))
    more = []
    for b in range(1, 12):       # 22 MB: it spills again
        try:
            n.execute(batch_sql("spill_g", "h", b, PER_BATCH, BIG))
        except psycopg.Error as e:
            more.append(e)
            break
    check("g: with the directory writable again, 22 MB for it commit (after its ROLLBACK it reads "
          "at once)", more == [], more)
    got, raw = received_keys(parked, 11 * PER_BATCH, 30, "spill_g")
    check("g: ... and arrive", got == [k for b in range(1, 12) for k in batch_keys("h", b, PER_BATCH)],
          len(got))
    idle = queue_idle()
    check("g: the queue empties", idle is True, idle)


# -------------------------------------------------------------------- main
def main():
    global MON, TMP

    def alarm(signum, frame):
        raise Watchdog("the test ran over 270 s")
    signal.signal(signal.SIGALRM, alarm)
    signal.alarm(270)
    t_all = time.time()
    TMP = tempfile.mkdtemp(prefix="ne_spill.")
    MON = conn()
    MON.add_notice_handler(lambda d: None)
    try:
        try:
            lim = MON.execute("SHOW notify_ext.queue_disk_limit").fetchone()[0]
        except psycopg.Error as e:
            lim = e
        check("notify_ext.queue_disk_limit exists and is 8GB (the default)", lim == "8GB", lim)
        cases = []
        if lim == "8GB":
            check("the queue is empty at the start", queue_idle() is True)
            built = build_recv()
            log = ServerLog()
            cases = [("f", test_columns_idle), ("a", test_million if built else None),
                     ("a2", test_big_batch), ("b", test_parked if built else None),
                     ("c", test_limit), ("d", test_no_disk),
                     ("e", lambda e: test_read_error(e, log)), ("g", test_write_error)]
        for name, t in cases:
            if t is None:
                check("%s # SKIP helpers/spill_recv.c did not compile" % name, True)
                continue
            t0 = time.time()
            env = Env()
            try:
                t(env)
            except Watchdog:
                check("%s ran to the end" % name, False, "watchdog")
                raise
            except Exception as e:  # noqa: BLE001 - a crash of one case is one failure
                check("%s ran to the end" % name, False, repr(e))
            finally:
                env.close()
                if name in ("c", "d"):
                    check("%s: queue_disk_limit reset to its default" % name, set_disk_limit(None))
            queue_idle(10)
            print("# %s: %.1f s" % (name, time.time() - t0))
    except Watchdog:
        pass
    finally:
        signal.alarm(0)
        try:
            set_disk_limit(None)
        except psycopg.Error as e:
            print("# could not reset notify_ext.queue_disk_limit: %s" % e)
        MON.close()
        shutil.rmtree(TMP, ignore_errors=True)
        print("# total: %.1f s" % (time.time() - t_all))
    finish("spill")


if __name__ == "__main__":
    main()
