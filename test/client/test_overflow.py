#!/usr/bin/python3
"""notify_ext.queue_full_action: what a full queue does to the listeners
that hold it (error | skip | terminate), and the gap signal.

Run with Debian's python3 and psycopg 3 against a cluster with notify_ext
preloaded and notify_ext.queue_size at its 16MB default (any size of a few
MB or more works: a 2 MB batch must fit);
connection from PGHOST/PGPORT/PGUSER/PGDATABASE, as a superuser.  It
switches the action with ALTER SYSTEM + pg_reload_conf() and always resets
it.  The queue is full when the ring is, so it runs with
notify_ext.queue_disk_limit = 0 (no spill to disk, the same ALTER SYSTEM
way, reset at the end), but for test 5.  Exits 1 on any failure.

One notifier commits 2 MB transactions of 260 notifications of ~7.9 kB
whose payloads carry (batch, index), on channels ovf_a, ovf_b and ten
ovf_c0..ovf_c9, so the test knows the exact sequence each listener should
see.  Two kinds of stuck listener hold the queue: a session parked in an
open transaction, and a client process stopped with SIGSTOP whose backend
blocks writing to it (ClientWrite).

  1. error: the notifying commits fail with 54000, as in core; afterwards
     the stuck listeners receive everything that committed.
  2. skip: over 5x the queue size of traffic no notifier fails; a healthy
     listener receives everything in order and no gap signal; each stuck
     listener (psycopg and raw parked ones, the stopped client, psql in
     drop-in mode) receives a prefix, then the gap (WARNING 01N01 notice,
     and the notify_ext.gap notification if it listens there), then a
     suffix, and delivered + missed == sent, channel by channel; then it
     receives new notifications normally.
  3. terminate: the commits succeed, the parked listener gets the FATAL
     57P01 message, the stopped client's backend goes away, the healthy
     listener loses nothing.
  4. the reserved channel notify_ext.gap: nobody can send on it (42501),
     by ext_notify(), NOTIFY or pg_notify() in drop-in mode.
  5. skip with a small disk tier (notify_ext.queue_disk_limit = 4MB): a
     parked listener is not skipped while the ring spills to disk, only
     once ring + disk are full; then it gets the gap in place, having kept
     more than the ring alone could hold.

The stopped client is this file run as a child process
(--stopped-listener).
"""
import json
import os
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _pg import DB, PGHOST, Raw  # noqa: E402

GAP = "notify_ext.gap"
GAP_MSG = re.compile(r"^notify_ext: (\d+) notifications were not delivered to this session "
                     r"because the NOTIFY queue was full and it had not read them$")
FATAL_MSG = ("terminating connection because it did not read its notifications "
             "and the NOTIFY queue was full")
PER_BATCH = 260
WIDE = ["ovf_a", "ovf_b"] + ["ovf_c%d" % k for k in range(10)]
AB = ["ovf_a", "ovf_b"]


def chan(i):
    """Channel of entry i (1-based) of a batch: the same CASE as BATCH_SQL."""
    if i % 5 == 0:
        return "ovf_c%d" % ((i // 5) % 10)
    if i % 4 == 0:
        return "ovf_b"
    return "ovf_a"


BATCH_SQL = ("SELECT count(ext_notify(CASE WHEN i %% 5 = 0 THEN 'ovf_c' || ((i / 5) %% 10) "
             "WHEN i %% 4 = 0 THEN 'ovf_b' ELSE 'ovf_a' END, "
             "format('%%s:%%s:', %s::int, i) || repeat('x', 7880))) "
             "FROM generate_series(1, %s) i")


def batch_seq(b, n=PER_BATCH):
    return [((b, i), chan(i)) for i in range(1, n + 1)]


# ------------------------------------------------------------ wire events
def payload_key(pl):
    parts = pl.split(":", 2)
    try:
        return (int(parts[0]), int(parts[1]))
    except (ValueError, IndexError):
        return pl[:40]


def to_event(t, p):
    """A protocol message as a compact event, or None for the others."""
    if t == "A":
        pid = struct.unpack("!i", p[:4])[0]
        ch, pl = p[4:].split(b"\0")[:2]
        ch = ch.decode(errors="replace")
        pl = pl.decode(errors="replace")
        if ch == GAP:
            try:
                obj = json.loads(pl)
            except ValueError:
                obj = {"unparsable": pl}
            return ["gapn", obj, pid]
        return ["n", ch, payload_key(pl), pid]
    if t in ("N", "E"):
        fields = {}
        for part in p.split(b"\0"):
            if part:
                fields[chr(part[0])] = part[1:].decode(errors="replace")
        return ["notice" if t == "N" else "error", fields]
    return None


def norm(ev):
    """Events read back from JSON: keys as tuples again."""
    if ev[0] == "n" and isinstance(ev[2], list):
        ev[2] = tuple(ev[2])
    return ev


def is_gap_notice(ev):
    return ev[0] == "notice" and ev[1].get("C") == "01N01"


def parse_detail(detail):
    """'Missed: "a": 3, "b": 5.' or '..., and K on other channels.'"""
    named = {m.group(1): int(m.group(2))
             for m in re.finditer(r'"((?:[^"\\]|\\.)*)": (\d+)', detail or "")}
    m = re.search(r"and (\d+) on other channels\.$", detail or "")
    return named, (int(m.group(1)) if m else 0)


def gap_of(ev):
    """(missed, {channel: n}, other) of a gap notice or gap notification."""
    if ev[0] == "gapn":
        o = ev[1]
        return (o.get("missed", -1), o.get("channels", {}), o.get("other_channels", -1))
    m = GAP_MSG.match(ev[1].get("M") or "")
    named, other = parse_detail(ev[1].get("D", ""))
    return (int(m.group(1)) if m else -1), named, other


def walk(events, seq, chans, use):
    """Check a listener's events against the sent sequence: every
    notification on its channels is delivered once, in order, or counted by
    the gap (use = "notice" or "gapn") at its place.  Returns a summary."""
    sl = [(k, ch) for k, ch in seq if ch in chans]
    p = 0
    res = {"expected": len(sl), "delivered": 0, "missed": 0, "gaps": 0, "problems": []}
    for ev in events:
        if ev[0] == "n":
            if ev[1] not in chans:
                res["problems"].append("notification on %s, not listened to" % ev[1])
            elif p < len(sl) and sl[p][0] == ev[2]:
                p += 1
                res["delivered"] += 1
            else:
                res["problems"].append("got %r at position %d, expected %r"
                                       % (ev[2], p, sl[p][0] if p < len(sl) else "nothing"))
                break
        elif (use == "notice" and is_gap_notice(ev)) or (use == "gapn" and ev[0] == "gapn"):
            missed, named, other = gap_of(ev)
            part = sl[p:p + missed]
            counts = Counter(ch for _, ch in part)
            if missed <= 0 or len(part) < missed:
                res["problems"].append("gap of %d at position %d of %d" % (missed, p, len(sl)))
                break
            want_named = min(8, len(counts))
            bad = {c: (n, counts.get(c)) for c, n in named.items() if counts.get(c) != n}
            rest = sum(n for c, n in counts.items() if c not in named)
            if bad or rest != other or len(named) != want_named:
                res["problems"].append("gap at %d: reported %r + %d other, the skipped part has %r"
                                       % (p, named, other, dict(counts)))
            p += missed
            res["missed"] += missed
            res["gaps"] += 1
    res["position"] = p
    res["ok"] = not res["problems"] and p == len(sl)
    return res


def read_events(r, stop=None, timeout=10.0, quiet=None):
    """Read events from a Raw client until stop(event) is true, `quiet`
    seconds pass without a message, `timeout` passes, or EOF."""
    events = []
    deadline = time.time() + timeout
    try:
        while True:
            left = deadline - time.time()
            if left <= 0:
                break
            r.s.settimeout(min(left, quiet) if quiet else left)
            try:
                t, p = r.read()
            except TimeoutError:
                break
            ev = to_event(t, p)
            if ev:
                events.append(ev)
                if stop and stop(ev):
                    break
    except (EOFError, ConnectionError):
        events.append(["eof"])
    finally:
        r.s.settimeout(None)
    return events


def query_events(r, sql, timeout=30.0):
    """Send a simple query on a Raw client; the events up to ReadyForQuery."""
    r.send("Q", sql.encode() + b"\0")
    events = []
    r.s.settimeout(timeout)
    try:
        while True:
            t, p = r.read()
            if t == "Z":
                break
            ev = to_event(t, p)
            if ev:
                events.append(ev)
    finally:
        r.s.settimeout(None)
    return events


def listen_sql(chans):
    return "SELECT " + ", ".join("ext_listen('%s')" % c for c in chans)


# ------------------------------------------------------ the stopped client
def child_main(argv):
    """--stopped-listener CHANNELS STOPKEY QUIET: listen, say "ready PID",
    wait for a line on stdin (the parent SIGSTOPs us meanwhile), then read
    everything until the notification STOPKEY, QUIET seconds of silence or
    EOF, and print the events as JSON."""
    chans = argv[0].split(",")
    stop_key = tuple(int(x) for x in argv[1].split(":"))
    quiet = float(argv[2])
    r = Raw(rcvbuf=4096)
    ev = query_events(r, listen_sql(chans))
    if any(e[0] == "error" for e in ev):
        print("listen failed %r" % ev, flush=True)
        sys.exit(1)
    print("ready %d" % r.pid, flush=True)
    sys.stdin.readline()
    events = read_events(r, stop=lambda e: e[0] == "n" and e[2] == stop_key,
                         timeout=60, quiet=quiet)
    print(json.dumps({"events": events}), flush=True)


class Child:
    """The stopped-client listener as a process of its own."""

    def __init__(self, chans, stop_key, quiet=3.0):
        self.p = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--stopped-listener", ",".join(chans),
             "%d:%d" % stop_key, str(quiet)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.backend = None
        ready, _, _ = select.select([self.p.stdout], [], [], 15)
        line = self.p.stdout.readline().decode() if ready else ""
        if not line.startswith("ready "):
            raise RuntimeError("the child listener did not start: %r" % line)
        self.backend = int(line.split()[1])
        os.kill(self.p.pid, signal.SIGSTOP)
        self.stopped = True

    def resume_and_collect(self, timeout=60):
        os.kill(self.p.pid, signal.SIGCONT)
        self.stopped = False
        self.p.stdin.write(b"go\n")
        self.p.stdin.flush()
        out, err = self.p.communicate(timeout=timeout)
        lines = out.decode(errors="replace").strip().splitlines()
        try:
            return [norm(e) for e in json.loads(lines[-1])["events"]]
        except (ValueError, IndexError, KeyError):
            raise RuntimeError("child output %r, stderr %r" % (out[-300:], err[-300:]))

    def kill(self):
        if self.p.poll() is None:
            try:
                os.kill(self.p.pid, signal.SIGCONT)
                self.p.kill()
            except ProcessLookupError:
                pass
        try:
            self.p.wait(10)
        except subprocess.TimeoutExpired:
            pass
        for f in (self.p.stdin, self.p.stdout, self.p.stderr):
            try:
                f.close()
            except OSError:
                pass


# the test process only from here on
if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "--stopped-listener":
    child_main(sys.argv[2:])
    sys.exit(0)

import psycopg  # noqa: E402

from _pg import conn, wait_notifies  # noqa: E402
from _queue_conf import set_disk_limit  # noqa: E402
from _tap import check, finish  # noqa: E402


class Watchdog(Exception):
    pass


def wait_for(pred, timeout=10.0, step=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


class Healthy(threading.Thread):
    """A listener that reads promptly (a raw client read by a thread)."""

    def __init__(self, chans):
        super().__init__(daemon=True)
        self.r = Raw()
        self.r.query(listen_sql(chans))
        self.events = []
        self.last = (0, 0)       # the newest (batch, index) received
        self.halt = False
        self.error = None
        self.start()

    def run(self):
        self.r.s.settimeout(0.2)
        try:
            while not self.halt:
                try:
                    t, p = self.r.read()
                except TimeoutError:
                    continue
                ev = to_event(t, p)
                if ev:
                    self.events.append(ev)
                    if ev[0] == "n" and isinstance(ev[2], tuple):
                        self.last = max(self.last, ev[2])
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = e

    def wait_key(self, key, timeout=20.0):
        return wait_for(lambda: self.last >= key, timeout, 0.01)

    def keep_up(self, b):
        """Before the notifier sends batch b + 1: wait (bounded) until this
        listener has read batch b - 1, so it never lags by more than two
        batches, whatever the machine's load: it reads promptly."""
        if b > 1:
            self.wait_key((b - 1, 1), 10.0)

    def stop(self):
        self.halt = True
        self.join(5)
        try:
            self.r.s.close()
        except OSError:
            pass


class ServerLog:
    """The main cluster's log, read through the server (superuser)."""

    def __init__(self, mon):
        self.mon = mon
        self.path = None
        cur = mon.execute("SELECT pg_current_logfile()").fetchone()[0]
        if cur:
            ddir = mon.execute("SHOW data_directory").fetchone()[0]
            cands = [cur if cur.startswith("/") else os.path.join(ddir, cur)]
        else:
            cands = [os.path.join(PGHOST, "log", "postmaster.log")] if PGHOST.startswith("/") else []
        for c in cands:
            if self.size(c) is not None:
                self.path = c
                break

    def size(self, path=None):
        row = self.mon.execute("SELECT (pg_stat_file(%s, true)).size", (path or self.path,)).fetchone()
        return row[0]

    def mark(self):
        return self.size() if self.path else 0

    def since(self, mark):
        if not self.path:
            return None
        end = self.size()
        data = self.mon.execute("SELECT pg_read_binary_file(%s, %s, %s)",
                                (self.path, mark, max(0, end - mark))).fetchone()[0]
        return bytes(data).decode(errors="replace")


class Env:
    """Everything a scenario opens, closed in any case."""

    def __init__(self):
        self.conns = []
        self.raws = []
        self.children = []
        self.procs = []
        self.threads = []

    def conn(self, **kw):
        c = conn(**kw)
        self.conns.append(c)
        return c

    def raw(self, **kw):
        r = Raw(**kw)
        self.raws.append(r)
        return r

    def child(self, *a, **kw):
        ch = Child(*a, **kw)
        self.children.append(ch)
        return ch

    def healthy(self, chans):
        h = Healthy(chans)
        self.threads.append(h)
        return h

    def close(self):
        for ch in self.children:
            ch.kill()
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                pass
        for h in self.threads:
            h.stop()
        for c in self.conns:
            try:
                c.close()
            except Exception:  # noqa: BLE001
                pass
        for r in self.raws:
            try:
                r.s.close()
            except OSError:
                pass


MON = None


def queue_bytes():
    return MON.execute("SELECT pg_size_bytes(current_setting('notify_ext.queue_size'))").fetchone()[0]


def batches_to_fill():
    """2 MB batches that fill the queue once (the next one does not fit)."""
    return int(queue_bytes() // (PER_BATCH * 7900)) + 1


def set_action(value):
    if value is None:
        MON.execute("ALTER SYSTEM RESET notify_ext.queue_full_action")
    else:
        MON.execute("ALTER SYSTEM SET notify_ext.queue_full_action = '%s'" % value)
    MON.execute("SELECT pg_reload_conf()")
    want = value or "error"

    def shown():
        c = conn()
        try:
            return c.execute("SHOW notify_ext.queue_full_action").fetchone()[0] == want
        finally:
            c.close()
    return wait_for(shown, 10, 0.1)


def queue_empty(timeout=15):
    return wait_for(lambda: MON.execute("SELECT ext_notification_queue_usage()").fetchone()[0] == 0,
                    timeout, 0.1)


def notifier(env):
    n = env.conn()
    n.add_notice_handler(lambda d: None)   # the "queue is x% full" warnings
    return n


def send_batch(n, b, count=PER_BATCH):
    n.execute(BATCH_SQL, (b, count))
    return batch_seq(b, count)


def backend_state(pid):
    return MON.execute("SELECT state, wait_event FROM pg_stat_activity WHERE pid = %s",
                       (pid,)).fetchone()


def parked_psycopg(env, chans):
    """A psycopg listener parked in an open transaction, collecting notices."""
    c = env.conn()
    # a Diagnostic reads its result lazily, and libpq frees a notice's
    # result when the handler returns: copy the fields now
    c.notices = []
    c.add_notice_handler(lambda d: c.notices.append(
        (d.sqlstate, d.severity, d.message_primary, d.message_detail, d.message_hint)))
    c.execute(listen_sql(chans))
    c.autocommit = False
    c.execute("SELECT 1")
    return c


def psycopg_events(c):
    """c.received as events (the notices are not in the stream)."""
    out = []
    for ch, pl, pid in c.received:
        if ch == GAP:
            try:
                out.append(["gapn", json.loads(pl), pid])
            except ValueError:
                out.append(["gapn", {"unparsable": pl}, pid])
        else:
            out.append(["n", ch, payload_key(pl), pid])
    return out


def short(res):
    return {k: res[k] for k in ("expected", "delivered", "missed", "gaps", "position")} | \
        {"problems": res["problems"][:3]}


def check_gapn_json(name, events):
    gs = [e for e in events if e[0] == "gapn"]
    good = all(
        e[2] == 0 and set(e[1]) == {"missed", "channels", "other_channels", "reason",
                                    "from_position", "to_position"}
        and e[1]["reason"] == "queue full" and isinstance(e[1]["missed"], int)
        and e[1]["from_position"] < e[1]["to_position"]
        and sum(e[1]["channels"].values()) + e[1]["other_channels"] == e[1]["missed"]
        for e in gs)
    check("%s: the notify_ext.gap payload is the documented JSON, from PID 0" % name,
          gs and good, gs[:2])


def check_notice_fields(name, notices):
    """notices: (sqlstate, severity, message, detail, hint) tuples."""
    good = notices and all(
        s == "01N01" and sev == "WARNING" and GAP_MSG.match(m or "")
        and (d or "").startswith("Missed: ") and "notify_ext.queue_full_action" in (h or "")
        and GAP in (h or "")
        for s, sev, m, d, h in notices)
    check("%s: the gap notice is a WARNING 01N01 with the documented message, detail and hint"
          % name, good, notices[:2])


def raw_notices(events):
    return [(e[1].get("C"), e[1].get("V") or e[1].get("S"), e[1].get("M"), e[1].get("D"),
             e[1].get("H")) for e in events if is_gap_notice(e)]


def check_notice_then_gapn(name, events):
    """In the wire order, every gap notification directly follows its notice."""
    ok = True
    for i, e in enumerate(events):
        if e[0] == "gapn":
            prev = events[i - 1] if i > 0 else None
            if not (prev and is_gap_notice(prev) and gap_of(prev) == gap_of(e)):
                ok = False
    n_notice = sum(1 for e in events if is_gap_notice(e))
    n_gapn = sum(1 for e in events if e[0] == "gapn")
    check("%s: each gap notice is followed at once by its notify_ext.gap notification (%d, %d)"
          % (name, n_notice, n_gapn), ok and n_notice == n_gapn and n_notice > 0)


# ---------------------------------------------------------------- 1. error
def test_error(env):
    if not set_action("error"):
        check("error: the setting is in effect", False)
        return
    nfill = batches_to_fill()
    parked = parked_psycopg(env, AB)
    child = env.child(AB, (0, 0), quiet=3.0)
    n = notifier(env)
    seq, err = [], None
    for b in range(1, 3 * nfill + 1):
        try:
            seq += send_batch(n, b)
        except psycopg.Error as e:
            err = e
            break
    check("error: a notifier fails with 54000 'too many notifications in the NOTIFY queue' "
          "after %d batches" % (len(seq) // PER_BATCH),
          err is not None and err.sqlstate == "54000"
          and "too many notifications in the NOTIFY queue" in str(err) and len(seq) > 0, err)
    st = backend_state(child.backend)
    check("error: the stopped client's backend is blocked in ClientWrite",
          st is not None and st[1] == "ClientWrite", st)
    check_views_stuck("error", parked, child, seq)
    parked.rollback()
    parked.autocommit = True
    res = walk(psycopg_events(parked), seq, AB, "gapn")
    check("error: after ROLLBACK the parked listener receives every committed notification",
          res["ok"] and res["gaps"] == 0, short(res))
    check("error: ... and no gap notice", parked.notices == [], parked.notices[:2])
    ev = child.resume_and_collect()
    res = walk(ev, seq, AB, "notice")
    check("error: the stopped client, resumed, receives every committed notification",
          res["ok"] and res["gaps"] == 0, short(res))
    check("error: ... and no gap notice", not any(e[0] in ("notice", "gapn") for e in ev),
          [e for e in ev if e[0] != "n"][:2])
    check("error: the queue empties", queue_empty())


def check_views_stuck(mode, parked, child, seq):
    """The monitoring views while a parked listener and a stopped client
    hold the queue: holder, state, lag."""
    rows = {r[0]: r for r in MON.execute(
        "SELECT pid, state, channels, lag_bytes, lag_notifications, "
        "oldest_unread_age IS NOT NULL, delivered, missed, times_skipped "
        "FROM notify_ext_listeners WHERE pid IN (%s, %s)",
        (parked.info.backend_pid, child.backend)).fetchall()}
    q = MON.execute("SELECT tail_holder_pid, used_bytes, queue_full_count, last_full_action "
                    "FROM notify_ext_queue").fetchone()
    pr = rows.get(parked.info.backend_pid)
    cr = rows.get(child.backend)
    mine = sum(1 for _, c in seq if c in AB)
    check("%s: notify_ext_queue names a stuck listener as the holder of the tail" % mode,
          q is not None and q[0] in (parked.info.backend_pid, child.backend) and q[1] > 0, q)
    check("%s: ... a commit found the queue full, action %s" % (mode, mode),
          q is not None and q[2] > 0 and q[3] == mode, q)
    nch = 2 if mode == "error" else 3      # skip: also notify_ext.gap
    check("%s: notify_ext_listeners: the parked listener is 'in transaction', %d channels, "
          "lagging by every notification on its channels (%d), none delivered" % (mode, nch, mine),
          pr is not None and pr[1] == "in transaction" and pr[2] == nch and pr[3] > 0
          and (mode != "error" or (pr[4] == mine and pr[6] == 0)) and pr[5], pr)
    check("%s: notify_ext_listeners: the stopped client's session is 'blocked sending'" % mode,
          cr is not None and cr[1] == "blocked sending" and cr[3] > 0, cr)
    if mode == "skip":
        check("skip: notify_ext_listeners counts what the stuck ones missed and their skips",
              pr is not None and cr is not None and pr[7] > 0 and pr[8] > 0
              and cr[7] > 0 and cr[8] > 0, (pr, cr))


# ----------------------------------------------------------------- 2. skip
def start_psql(env):
    exe = shutil.which("psql") or "/usr/lib/postgresql/15/bin/psql"
    if not os.path.exists(exe):
        return None
    out = tempfile.TemporaryFile()
    err = tempfile.TemporaryFile()
    p = subprocess.Popen([exe, "-X", "-d", DB], stdin=subprocess.PIPE, stdout=out, stderr=err,
                         env=dict(os.environ, PGAPPNAME="ovf_psql"))
    p.out, p.err = out, err
    env.procs.append(p)
    p.stdin.write(b"SET notify_ext.intercept = on;\nLISTEN ovf_a;\nBEGIN;\nSELECT 'parked';\n")
    p.stdin.flush()
    row = wait_for(lambda: MON.execute(
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'ovf_psql' "
        "AND state = 'idle in transaction'").fetchone(), 10)
    p.backend = row[0] if row else None
    return p


def test_skip(env, log):
    if not set_action("skip"):
        check("skip: the setting is in effect", False)
        return
    mark = log.mark()
    B = -(-5 * queue_bytes() // (PER_BATCH * 7900))   # 5x the queue size
    post = B + 1
    healthy = env.healthy(WIDE + [GAP])
    parked = parked_psycopg(env, AB + [GAP])
    wide = env.raw()
    query_events(wide, listen_sql(WIDE + [GAP]))
    query_events(wide, "BEGIN; SELECT 1")
    child = env.child(AB, (post, 4), quiet=5.0)
    psql = start_psql(env)
    check("skip: psql in drop-in mode listens, parked in a transaction",
          psql is None or psql.backend is not None)
    n = notifier(env)
    seq, errs = [], []
    t0 = time.time()
    for b in range(1, B + 1):
        try:
            seq += send_batch(n, b)
        except psycopg.Error as e:
            errs.append(e)
        healthy.keep_up(b)
    print("# skip: %d batches (%.0f MB) in %.1f s" % (B, B * PER_BATCH * 7900 / 1e6, time.time() - t0))
    check("skip: no notifying commit fails over %d batches (5x the queue)" % B, errs == [],
          [str(e) for e in errs[:2]])
    st = backend_state(child.backend)
    check("skip: the stopped client's backend is blocked in ClientWrite",
          st is not None and st[1] == "ClientWrite", st)
    check_views_stuck("skip", parked, child, seq)

    # the psycopg listener parked in a transaction: COMMIT, then the gap and the suffix
    parked.commit()
    parked.autocommit = True
    pev = psycopg_events(parked)
    parked.received = []
    res = walk(pev, seq, AB, "gapn")
    told = {"parked": res["missed"]}
    check("skip: parked psycopg listener: delivered + missed == sent, gap at its place (%d + %d == %d)"
          % (res["delivered"], res["missed"], res["expected"]),
          res["ok"] and res["gaps"] >= 1 and res["missed"] > 0, short(res))
    check("skip: ... the gap comes first (it read nothing before)",
          bool(pev) and pev[0][0] == "gapn", pev[:1])
    check_gapn_json("skip: parked psycopg listener", pev)
    notices = parked.notices
    check_notice_fields("skip: parked psycopg listener", notices)
    nmissed = [gap_of(["notice", {"M": m, "D": d}]) for _, _, m, d, _ in notices]
    gmissed = [gap_of(e) for e in pev if e[0] == "gapn"]
    check("skip: ... the notices report the same gaps as the notifications", nmissed == gmissed,
          (nmissed, gmissed))

    # the raw listener parked in a transaction, on 12 channels: exact wire order
    wev = query_events(wide, "COMMIT")
    res_n = walk(wev, seq, WIDE, "notice")
    res_g = walk(wev, seq, WIDE, "gapn")
    told["raw parked"] = res_n["missed"]
    check("skip: parked raw listener on 12 channels: delivered + missed == sent (%d + %d == %d)"
          % (res_n["delivered"], res_n["missed"], res_n["expected"]),
          res_n["ok"] and res_g["ok"] and res_n["missed"] > 0, (short(res_n), short(res_g)))
    check_notice_then_gapn("skip: parked raw listener", wev)
    gaps = [gap_of(e) for e in wev if e[0] == "gapn"]
    check("skip: ... more than 8 channels: 8 named, the rest as other_channels",
          gaps and all(len(g[1]) == 8 and g[2] > 0 for g in gaps)
          and all(e[1].get("D", "").endswith("on other channels.") for e in wev if is_gap_notice(e)),
          gaps[:1])
    check_notice_fields("skip: parked raw listener", raw_notices(wev))

    # psql in drop-in mode
    if psql is not None:
        psql.stdin.write(b"COMMIT;\n\\q\n")
        psql.stdin.close()
        try:
            psql.wait(30)
        except subprocess.TimeoutExpired:
            pass
        psql.out.seek(0)
        psql.err.seek(0)
        pout = psql.out.read().decode(errors="replace")
        perr = psql.err.read().decode(errors="replace")
        keys = [(int(m.group(1)), int(m.group(2))) for m in re.finditer(
            r'^Asynchronous notification "ovf_a" with payload "(\d+):(\d+):', pout, re.M)]
        m = re.search(r"^WARNING:  notify_ext: (\d+) notifications were not delivered to this "
                      r"session because the NOTIFY queue was full and it had not read them$", perr, re.M)
        missed = int(m.group(1)) if m else -1
        told["psql"] = missed
        sa = [k for k, ch in seq if ch == "ovf_a"]
        check("skip: psql prints the WARNING after COMMIT, with DETAIL and HINT",
              m is not None and ('DETAIL:  Missed: "ovf_a": %d.' % missed) in perr
              and "HINT:  " in perr and "notify_ext.queue_full_action" in perr, perr[:600])
        check("skip: psql: the notifications it prints are what follows the gap (%d + %d == %d)"
              % (len(keys), missed, len(sa)), missed > 0 and keys == sa[missed:],
              (len(keys), missed, len(sa), keys[:1], sa[missed:missed + 1]))
        check("skip: psql prints no notify_ext.gap notification", '"notify_ext.gap"' not in pout)
    else:
        check("skip: psql in drop-in mode # SKIP psql not found", True)

    # new notifications are received normally afterwards
    pseq = send_batch(n, post, 5)
    got = wait_notifies(parked, 4, 5)
    check("skip: the skipped psycopg listener then receives new notifications normally",
          [payload_key(g[1]) for g in got] == [k for k, ch in pseq if ch in AB], got)
    wev2 = read_events(wide, stop=lambda e: e[0] == "n" and e[2] == (post, 5), timeout=5)
    check("skip: ... and the raw one", [e[2] for e in wev2 if e[0] == "n"] == [k for k, _ in pseq]
          and len(wev2) == 5, wev2)
    allseq = seq + pseq
    healthy.wait_key((post, 5))
    hev = list(healthy.events)
    res = walk(hev, allseq, WIDE, "notice")
    check("skip: the healthy listener receives all %d notifications in order" % len(allseq),
          res["ok"] and res["delivered"] == len(allseq), short(res))
    check("skip: ... and no gap notice or notify_ext.gap notification",
          not any(e[0] in ("notice", "gapn", "error") for e in hev),
          [e for e in hev if e[0] != "n"][:2])

    # the stopped client: resumed, it reads all its backend sends
    cev = child.resume_and_collect()
    res = walk(cev, allseq, AB, "notice")
    told["stopped client"] = res["missed"]
    check("skip: stopped client: prefix, gap notice, suffix; delivered + missed == sent "
          "(%d + %d == %d)" % (res["delivered"], res["missed"], res["expected"]),
          res["ok"] and res["missed"] > 0, short(res))
    check_notice_fields("skip: stopped client", raw_notices(cev))
    check("skip: ... it does not listen on notify_ext.gap: no such notification",
          not any(e[0] == "gapn" for e in cev))
    check("skip: ... and it received notifications before the gap too (socket buffers)",
          bool(cev) and cev[0][0] == "n", cev[:1])
    check("skip: the queue empties", queue_empty())

    text = log.since(mark)
    if text is None:
        check("skip: server log # SKIP log file not found", True)
    else:
        pids = [("parked", parked.info.backend_pid), ("raw parked", wide.pid),
                ("stopped client", child.backend)] + ([("psql", psql.backend)] if psql else [])
        # the wording: "skipping the listener with PID n" (as specified) or
        # "moved the listener with PID n past m notifications it had not read"
        logged = {w: [int(x or -1) for x in re.findall(
            r"LOG:  notify_ext: the NOTIFY queue was full: (?:skipping|moved) the listener "
            r"with PID %d\b(?: past (\d+))?" % pid, text)] for w, pid in pids}
        check("skip: the server log names each skipped listener",
              all(logged[w] for w, _ in pids), {w: len(v) for w, v in logged.items()})
        counted = {w: sum(v) for w, v in logged.items() if v and -1 not in v}
        print("# skip: missed per listener, logged / told: %s"
              % {w: (counted.get(w), told.get(w)) for w, _ in pids})
        check("skip: ... and the counts it logs add up to what each session was told",
              all(counted[w] == told.get(w) for w in counted),
              {w: (counted[w], told.get(w)) for w in counted})
        check("skip: ... and not the healthy one",
              not re.search(r"the listener with PID %d\b" % healthy.r.pid, text))


# ------------------------------------------------------------ 3. terminate
def test_terminate(env, log):
    if not set_action("terminate"):
        check("terminate: the setting is in effect", False)
        return
    mark = log.mark()
    B = batches_to_fill() + 3
    last = [k for k, ch in batch_seq(B) if ch in AB][-1]
    healthy = env.healthy(AB)
    parked = parked_psycopg(env, AB + [GAP])
    rawp = env.raw()
    query_events(rawp, listen_sql(AB))
    query_events(rawp, "BEGIN; SELECT 1")
    child = env.child(AB, last, quiet=3.0)
    ppid = parked.info.backend_pid
    n = notifier(env)
    seq, errs = [], []
    for b in range(1, B + 1):
        try:
            seq += send_batch(n, b)
        except psycopg.Error as e:
            errs.append(e)
        healthy.keep_up(b)
    check("terminate: no notifying commit fails (%d batches)" % B, errs == [],
          [str(e) for e in errs[:2]])
    # the parked session: its client gets the FATAL
    readable, _, _ = select.select([parked.fileno()], [], [], 10)
    err = None
    try:
        parked.pgconn.consume_input()
    except psycopg.Error as e:
        err = e
    try:
        parked.execute("SELECT 1")
        err2 = None
    except psycopg.Error as e:
        err2 = e
    fatal = [d for d in parked.notices if d[1] == "FATAL"]
    texts = [str(err), str(err2)] + [d[2] or "" for d in fatal]
    check("terminate: the parked listener's connection is closed (OperationalError on next use)",
          bool(readable) and isinstance(err2, psycopg.OperationalError), (readable, err2))
    check("terminate: ... with the documented FATAL message",
          any(FATAL_MSG in t for t in texts), texts)
    # libpq hands psycopg the FATAL as the error text of consume_input (no
    # SQLSTATE there): a raw client parked the same way shows the fields
    rev = read_events(rawp, timeout=5)
    rerr = [e[1] for e in rev if e[0] == "error"]
    check("terminate: a raw parked listener gets ErrorResponse FATAL 57P01 with that message, "
          "then EOF",
          len(rerr) == 1 and rerr[0].get("V") == "FATAL" and rerr[0].get("C") == "57P01"
          and rerr[0].get("M") == FATAL_MSG and rev[-1][0] == "eof", rev[-3:])
    gone = wait_for(lambda: backend_state(child.backend) is None, 5, 0.1)
    check("terminate: the stopped client's backend leaves pg_stat_activity within 5 s",
          gone, backend_state(child.backend))
    healthy.wait_key(last)
    hev = list(healthy.events)
    res = walk(hev, seq, AB, "notice")
    check("terminate: the healthy listener loses nothing (%d notifications)" % len(seq),
          res["ok"] and res["missed"] == 0 and not any(e[0] != "n" for e in hev), short(res))
    cev = child.resume_and_collect()
    res = walk([e for e in cev if e[0] == "n"], seq, AB, "notice")
    check("terminate: the stopped client, resumed, gets a prefix without duplicates, then EOF",
          not res["problems"] and cev and cev[-1][0] == "eof" and res["delivered"] < len(
              [1 for _, ch in seq if ch in AB]), (short(res), cev[-2:]))
    rows = MON.execute("SELECT count(*) FROM ext_listeners() WHERE pid IN (%s, %s, %s)",
                       (ppid, rawp.pid, child.backend)).fetchone()[0]
    check("terminate: the ended sessions leave no listener rows", rows == 0, rows)
    check("terminate: the queue empties", queue_empty())
    text = log.since(mark)
    if text is None:
        check("terminate: server log # SKIP log file not found", True)
    else:
        lines = [ln for ln in text.splitlines() if "[%d]" % child.backend in ln and FATAL_MSG in ln]
        check("terminate: the server log has the blocked backend's FATAL", bool(lines))
        check("terminate: the server log names each terminated listener",
              all(re.search(r"the listener with PID %d\b" % p, text)
                  for p in (ppid, rawp.pid, child.backend)))


# ------------------------------------------- 5. skip with a disk tier
def test_skip_disk(env):
    if not set_disk_limit("4MB"):
        check("skip+disk: queue_disk_limit = 4MB is in effect", False)
        return
    try:
        if not set_action("skip"):
            check("skip+disk: the setting is in effect", False)
            return
        q0 = MON.execute("SELECT listeners_skipped, ring_bytes, disk_limit_bytes "
                         "FROM notify_ext_queue").fetchone()
        ring, disk = q0[1], q0[2]
        per = PER_BATCH * 7908                      # a batch's payload bytes
        fit_ring = ring // per                      # what the ring alone holds
        over = (ring + disk) // per + 3             # past ring + disk
        parked = parked_psycopg(env, AB + [GAP])
        n = notifier(env)
        seq, errs = [], []
        for b in range(1, fit_ring + 2):
            try:
                seq += send_batch(n, b)
            except psycopg.Error as e:
                errs.append(e)
        q1 = MON.execute("SELECT listeners_skipped, disk_bytes FROM notify_ext_queue").fetchone()
        check("skip+disk: %d batches, more than the ring (%.1f MB): no failure, no skip, spilled "
              "to disk" % (fit_ring + 1, (fit_ring + 1) * per / 1048576),
              errs == [] and q1[0] == q0[0] and q1[1] > 0, (errs[:1], q0, q1))
        for b in range(fit_ring + 2, over + 1):
            try:
                seq += send_batch(n, b)
            except psycopg.Error as e:
                errs.append(e)
        q2 = MON.execute("SELECT listeners_skipped, disk_bytes FROM notify_ext_queue").fetchone()
        check("skip+disk: %d batches, more than ring + disk (%.1f MB): no failure, the parked "
              "listener skipped" % (over, over * per / 1048576),
              errs == [] and q2[0] > q0[0], (errs[:1], q0, q2))
        parked.commit()
        parked.autocommit = True
        pev = psycopg_events(parked)
        res = walk(pev, seq, AB, "gapn")
        check("skip+disk: after COMMIT the parked listener: delivered + missed == sent, gap in "
              "place (%d + %d == %d)" % (res["delivered"], res["missed"], res["expected"]),
              res["ok"] and res["gaps"] >= 1 and res["missed"] > 0, short(res))
        batches = {e[2][0] for e in pev if e[0] == "n" and isinstance(e[2], tuple)}
        kept = len(batches) * per
        check("skip+disk: ... it kept more than the ring alone holds (%d batches, %.1f MB)"
              % (len(batches), kept / 1048576), kept > ring, (sorted(batches), ring))
        check_gapn_json("skip+disk: parked listener", pev)
        check("skip+disk: the queue empties", queue_empty())
    finally:
        set_action("error")
        check("skip+disk: queue_disk_limit back to 0", set_disk_limit("0"))


# ----------------------------------------------------- 4. reserved channel
def test_reserved(env):
    c = env.conn()
    c.execute(listen_sql([GAP]))     # listening is allowed

    def err_of(sql):
        try:
            c.execute(sql)
        except psycopg.Error as e:
            return e
        return None
    e = err_of("SELECT ext_notify('notify_ext.gap', 'x')")
    check("reserved: ext_notify('notify_ext.gap', 'x') fails with 42501",
          e is not None and e.sqlstate == "42501", e)
    c.execute("SET notify_ext.intercept = on")
    e = err_of('NOTIFY "notify_ext.gap"')
    check("reserved: NOTIFY \"notify_ext.gap\" in drop-in mode fails with 42501",
          e is not None and e.sqlstate == "42501", e)
    e = err_of("SELECT pg_notify('notify_ext.gap', 'x')")
    check("reserved: pg_notify('notify_ext.gap', 'x') in drop-in mode fails with 42501",
          e is not None and e.sqlstate == "42501", e)
    e = err_of("SELECT ext_notify('notify_ext.gapx', 'x')")
    check("reserved: only that exact name is reserved", e is None, e)
    got = wait_notifies(c, 1, 0.5)
    check("reserved: nothing arrives on notify_ext.gap", got == [], got)


def main():
    global MON

    def alarm(signum, frame):
        raise Watchdog("the test ran over 170 s")
    signal.signal(signal.SIGALRM, alarm)
    signal.alarm(170)
    t_all = time.time()
    MON = conn()
    try:
        try:
            v = MON.execute("SHOW notify_ext.queue_full_action").fetchone()[0]
        except psycopg.Error as e:
            v = e
        check("notify_ext.queue_full_action exists and is 'error' by default", v == "error", v)
        if v != "error":
            finish("overflow")
            return
        check("the queue is empty at the start", queue_empty())
        check("notify_ext.queue_disk_limit = 0 (the ring only) for these tests",
              set_disk_limit("0"))
        log = ServerLog(MON)
        for name, t in (("error", lambda e: test_error(e)), ("skip", lambda e: test_skip(e, log)),
                        ("terminate", lambda e: test_terminate(e, log)),
                        ("reserved", lambda e: test_reserved(e)),
                        ("skip+disk", lambda e: test_skip_disk(e))):
            t0 = time.time()
            env = Env()
            try:
                t(env)
            except Watchdog:
                check("%s ran to the end" % name, False, "watchdog")
                raise
            except Exception as e:  # noqa: BLE001 - a crash of one test is one failure
                check("%s ran to the end" % name, False, repr(e))
            finally:
                env.close()
            queue_empty()
            print("# %s: %.1f s" % (name, time.time() - t0))
    except Watchdog:
        pass
    finally:
        signal.alarm(0)
        ok = set_action(None)
        check("queue_full_action reset to its default", ok)
        check("queue_disk_limit reset to its default", set_disk_limit(None))
        MON.close()
        print("# total: %.1f s" % (time.time() - t_all))
    finish("overflow")


if __name__ == "__main__":
    main()
