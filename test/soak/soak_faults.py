#!/usr/bin/python3
"""Fault soak of notify_ext with a checker: two databases, listeners that
come and go, sessions killed under them, and a full check at the end.

usage: soak_faults.py SECONDS
Connection from PGHOST/PGPORT/PGUSER; the first database is PGDATABASE
(default postgres), the second one (SOAK_DB2, default soak2) is created if
absent, and CREATE EXTENSION notify_ext is run in both.

Workers (processes), for SECONDS:
  - notifiers (SOAK_NOTIFIERS per database, default 3): transactions with
    several ext_notify() calls; savepoints released and rolled back (also
    after an error inside them); duplicates of (channel, payload) in a
    transaction, also across savepoints; ROLLBACK, errors followed by
    ROLLBACK or by a COMMIT (which rolls back), a deferred foreign key that
    fails the COMMIT itself, a deferred trigger that makes the COMMIT take
    50 ms (a target for the killer); now and then a big batch (hundreds to
    a few thousand notifications in one statement, more than one drain
    round of the listener).  Payloads run from a few
    bytes to 7999 bytes, with multibyte characters, and start with a
    unique id "<sender>.<txn>.<index>.<length>|" from which the checker
    regenerates the whole payload.  A notifier knows exactly what it
    committed (the COMMIT returned COMMIT) and what it rolled back; a COMMIT
    whose connection died is "unknown": allowed either way, all or nothing.
  - listeners (SOAK_LISTENERS per database, default 4): LISTEN, UNLISTEN,
    UNLISTEN *, re-LISTEN (no-op), LISTEN / UNLISTEN rolled back, sit in
    transaction blocks, reconnect now and then, and otherwise wait idle on
    the socket (select() + consume_input()) so that delivery to idle
    clients is what is exercised.  Each session records the client-side
    moments around every LISTEN/UNLISTEN commit and its last "sync" (the
    start of its last query that ended with ReadyForQuery idle: everything
    committed before that was delivered by then).
  - a killer: pg_terminate_backend() on random listeners (mostly) and
    notifiers (preferably in their COMMIT), pg_cancel_backend() on
    notifiers.  A killed listener's session ends; it reconnects as a new
    session.  The transaction being sent to it when it dies may arrive cut
    short: that one is exempt from all-or-nothing.

Then everything drains (notifiers stopped; listeners idle until 3 s pass
without a notification, at most 20 s) and the checker compares.  For a
session and a channel it listened to, with LISTEN committing between L0 and
L1 (client clock, CLOCK_MONOTONIC shared by all processes) and UNLISTEN
between U0 and U1, a transaction whose COMMIT ran from cs to ce is
  required  if cs > L1 and ce < min(U0, the session's last sync),
  forbidden if ce < L0 or cs > U1 (or after the session ended),
  allowed otherwise (the uncertain windows).
Properties, one TAP line each: no loss, no duplicates, no phantoms
(aborted, rolled back in a savepoint, corrupted payload, wrong sender pid),
database-local, listen windows, all-or-nothing per transaction and
channel, order inside a transaction (as sent, contiguous), each sender's
commit order, one order across sessions (the union of all sessions' orders
is acyclic, so any two sessions agree), real-time order (a transaction
whose COMMIT began after another's returned is delivered after it), idle
delivery (nothing inside a transaction block, no idle session left waiting
for a query), workers healthy, server alive.  Exits 1 on any failure.

Environment: SOAK_SEED (the run's random seed, printed), SOAK_NOTIFIERS,
SOAK_LISTENERS, SOAK_DB2, SOAK_KEEP=1 (keep the workers' raw records).
"""
import bisect
import collections
import multiprocessing as mp
import os
import pickle
import random
import select
import shutil
import sys
import tempfile
import time
import traceback
from array import array

import psycopg
from psycopg import pq

now = time.monotonic   # CLOCK_MONOTONIC: one clock for every process here

PGHOST = os.environ.get("PGHOST", "/tmp")
PGPORT = os.environ.get("PGPORT", "5432")
PGUSER = os.environ.get("PGUSER", "postgres")
DB1 = os.environ.get("PGDATABASE", "postgres")
DB2 = os.environ.get("SOAK_DB2", "soak2")
DBS = [DB1, DB2]
DBTAGS = ["a", "b"]     # sender names: a0, a1, ... (DB1), b0, ... (DB2)

# the same channel names in both databases (crossing databases would show);
# the last one nobody listens to (such batches are never queued)
CHANNELS = ["soak_a", "soak_b", "soak_c", "soak_d", "soak_" + "l" * 58, "soak_nobody"]
LISTENABLE = 5
assert all(len(c.encode()) < 64 for c in CHANNELS)

GID_MUL = 10_000_000    # transaction id = sender number * GID_MUL + txn seq
GRACE_IDLE = 3.0        # an idle session must be woken within this (seconds)
QUIET = 3.0             # drain: stop after this long without a notification
DRAIN_MAX = 20.0        # drain: at most this long
MODE_IDLE, MODE_QUERY, MODE_BLOCK, MODE_FINAL = 0, 1, 2, 3
MODE_NAMES = ["idle", "query", "block", "final"]

# ---------------------------------------------------------------- payloads
ALPH = "abcdefghijklmnopqrstuvwxyz0123456789 ÄéßΩж€中😀,;:-_ABCDEFGHIJKLMNOPQRSTUVWXYZ"
BIGSTR = ALPH * (8100 // len(ALPH) + 2)


def make_payload(sender, seq, idx, n):
    """The payload of notification idx of transaction seq of sender, about n
    bytes long (exactly n unless the header alone is longer), < 8000 bytes."""
    h = "%s.%d.%d.%d|" % (sender, seq, idx, n)
    r = n - len(h)
    if r <= 0:
        return h
    start = (seq * 131 + idx * 17) % len(ALPH)
    b = BIGSTR[start:start + r].encode()[:r].decode("utf-8", "ignore")
    return h + b + "." * (r - len(b.encode()))


def parse_payload(p):
    """(sender, seq, idx, n) or None"""
    try:
        head = p.split("|", 1)[0]
        s, q, i, n = head.split(".")
        return s, int(q), int(i), int(n)
    except (ValueError, IndexError):
        return None


def dsn(db, app):
    return dict(host=PGHOST, port=PGPORT, user=PGUSER, dbname=db, application_name=app,
                connect_timeout=10, options="-c statement_timeout=30s")


def connect(db, app):
    return psycopg.connect(**dsn(db, app), autocommit=True)


def dump(outdir, name, obj):
    tmp = os.path.join(outdir, name + ".tmp")
    with open(tmp, "wb") as f:
        pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)
    os.rename(tmp, os.path.join(outdir, name))


class Dead(Exception):
    """the session's connection is gone (killed)"""


# --------------------------------------------------------------- notifier
def lost(c, err=None):
    """the connection is gone (err: the error just raised, if any)"""
    if c is None or c.closed or c.broken or c.pgconn.status != pq.ConnStatus.OK:
        return True
    # a FATAL (terminated, shutdown) can come before libpq sees the socket close
    return err is not None and (err.sqlstate is None or err.sqlstate.startswith("57P"))


def close_quietly(c):
    if c is not None:
        try:
            c.close()
        except Exception:
            pass


EXPECTED_SQLSTATES = {
    "22012",    # division by zero: ours
    "23503",    # foreign key at COMMIT: ours
    "57014",    # canceled by the killer
    "54000",    # queue full at COMMIT (should not happen at this size, but legal)
}


def notifier(snum, sender, db, seed, t_end, outdir):
    rnd = random.Random(seed)
    rec = dict(kind="notifier", sender=sender, snum=snum, db=db, txns=[], errors=[],
               sessions=0, unexpected=collections.Counter())
    c = None
    seq = 0
    next_big = now() + rnd.expovariate(1 / 5.0)
    try:
        while now() < t_end:
            if lost(c):
                close_quietly(c)
                c = None
                try:
                    c = connect(db, "soak_n_" + sender)
                    c.execute("CREATE TEMP TABLE fkp (id int PRIMARY KEY)")
                    c.execute("CREATE TEMP TABLE fkc (p int REFERENCES fkp DEFERRABLE INITIALLY DEFERRED)")
                    # a COMMIT that takes 50 ms before it commits: a target for the killer
                    c.execute("CREATE TEMP TABLE slow (x int)")
                    c.execute("CREATE FUNCTION pg_temp.slow_trg() RETURNS trigger LANGUAGE plpgsql "
                              "AS 'BEGIN PERFORM pg_sleep(0.05); RETURN NULL; END'")
                    c.execute("CREATE CONSTRAINT TRIGGER slow_t AFTER INSERT ON slow DEFERRABLE "
                              "INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION pg_temp.slow_trg()")
                    rec["sessions"] += 1
                except psycopg.Error:
                    close_quietly(c)     # killed or canceled while setting up
                    c = None
                    time.sleep(0.1)
                    continue
            seq += 1
            big = now() >= next_big
            if big:
                next_big = now() + rnd.expovariate(1 / 5.0)
            t = run_txn(c, rnd, sender, snum, seq, big, rec)
            rec["txns"].append(t)
            if t[2].startswith("lost"):
                close_quietly(c)
                c = None
            if rnd.random() < 0.5:
                time.sleep(rnd.random() * 0.02)
    except Exception:
        rec["errors"].append("notifier %s: %s" % (sender, traceback.format_exc()))
    finally:
        if c is not None:
            try:
                c.close()
            except Exception:
                pass
        dump(outdir, "n_%s" % sender, rec)


def pick_len(rnd):
    r = rnd.random()
    if r < 0.55:
        return rnd.randint(1, 100)
    if r < 0.80:
        return rnd.randint(100, 1000)
    if r < 0.95:
        return rnd.randint(1000, 7000)
    return rnd.randint(7900, 7999)


def pick_channel(rnd):
    r = rnd.random()
    if r < 0.04:
        return 5                    # nobody listens
    if r < 0.14:
        return 4                    # the 63-byte name
    return rnd.randrange(4)


def run_txn(c, rnd, sender, snum, seq, big, rec):
    """One transaction; returns its record:
    [gid, outcome ('C' committed, 'A' aborted, 'U' unknown), why,
     cs, ce (commit call start and return), backend pid, kept, nsent, ndropped, ndups]
    kept: array of idx*8+ch, in the order they must be delivered."""
    gid = snum * GID_MUL + seq
    pid = c.info.backend_pid
    kept = []           # (idx, ch) in delivery order
    present = set()     # keys in kept
    payload_of = {}     # idx -> (n, ch list) sent so far
    sp_stack = []       # len(kept) at each open savepoint
    stats = dict(sent=0, dups=0)
    nidx = [0]
    stage = ["body"]

    def notify_many(items):
        """items: [(idx, ch, n)]: one statement for all (big batch) or one each"""
        if len(items) == 1:
            idx, ch, n = items[0]
            c.execute("SELECT ext_notify(%s, %s)", (CHANNELS[ch], make_payload(sender, seq, idx, n)))
        else:
            c.execute("SELECT count(ext_notify(ch, p)) FROM unnest(%s::text[], %s::text[]) AS t(ch, p)",
                      ([CHANNELS[ch] for _, ch, _ in items],
                       [make_payload(sender, seq, idx, n) for idx, _, n in items]))
        for idx, ch, n in items:
            stats["sent"] += 1
            if (idx, ch) in present:
                stats["dups"] += 1
            else:
                present.add((idx, ch))
                kept.append((idx, ch))

    def new_item(n=None):
        idx = nidx[0]
        nidx[0] += 1
        ch = pick_channel(rnd)
        n = pick_len(rnd) if n is None else n
        payload_of[idx] = n
        return (idx, ch, n)

    def dup_item():
        """an earlier (channel, payload) of this transaction: mostly one that
        is kept so far, else any (maybe dropped by a rolled-back savepoint)"""
        pool = kept if kept and rnd.random() < 0.7 else all_sent
        if not pool:
            return new_item()
        idx, ch = rnd.choice(pool)
        return (idx, ch, payload_of[idx])

    all_sent = []

    def send(items):
        notify_many(items)
        for idx, ch, _ in items:
            all_sent.append((idx, ch))

    def rollback_to():
        n = sp_stack.pop()
        c.execute("ROLLBACK TO SAVEPOINT s%d" % (len(sp_stack) + 1))
        c.execute("RELEASE SAVEPOINT s%d" % (len(sp_stack) + 1))
        for key in kept[n:]:
            present.discard(key)
        del kept[n:]

    fate = rnd.random()
    # C: commit, S: commit with a slow deferred trigger, R: rollback, E: error
    # then ROLLBACK, X: error then COMMIT (answers ROLLBACK), F: deferred
    # foreign key fails the COMMIT
    fate = ("C" if fate < 0.74 else "S" if fate < 0.78 else "R" if fate < 0.86 else "E" if fate < 0.92
            else "X" if fate < 0.96 else "F")
    why = fate
    cs = ce = None
    outcome = "A"
    try:
        c.execute("BEGIN")
        if fate == "F":
            c.execute("INSERT INTO fkc VALUES (-1)")
        elif fate == "S":
            c.execute("INSERT INTO slow VALUES (1)")
        if big:
            nbig = rnd.randint(200, 3000)
            items = []
            for _ in range(nbig):
                if items and rnd.random() < 0.05:
                    items.append(rnd.choice(items))                 # duplicate
                elif items and rnd.random() < 0.02:
                    idx, _, n = rnd.choice(items)
                    items.append((idx, pick_channel(rnd), n))       # same payload, other channel
                else:
                    items.append(new_item(rnd.randint(1, 300) if rnd.random() < 0.97 else pick_len(rnd)))
            in_sp = rnd.random() < 0.15
            if in_sp:
                sp_stack.append(len(kept))
                c.execute("SAVEPOINT s%d" % len(sp_stack))
            send(items)
            if in_sp:
                if rnd.random() < 0.5:
                    rollback_to()
                else:
                    sp_stack.pop()
                    c.execute("RELEASE SAVEPOINT s%d" % (len(sp_stack) + 1))
        nops = rnd.randint(1, 12)
        for _ in range(nops):
            r = rnd.random()
            if r < 0.55:
                send([new_item()])
            elif r < 0.65:
                send([dup_item()])
            elif r < 0.70 and payload_of:
                idx = rnd.choice(list(payload_of))
                send([(idx, pick_channel(rnd), payload_of[idx])])   # same payload, maybe other channel
            elif r < 0.80 and len(sp_stack) < 4:
                sp_stack.append(len(kept))
                c.execute("SAVEPOINT s%d" % len(sp_stack))
            elif r < 0.86 and sp_stack:
                sp_stack.pop()
                c.execute("RELEASE SAVEPOINT s%d" % (len(sp_stack) + 1))
            elif r < 0.93 and sp_stack:
                rollback_to()
            elif r < 0.96 and sp_stack:
                # an error inside the savepoint, then ROLLBACK TO it
                try:
                    c.execute("SELECT 1/0")
                except psycopg.errors.DivisionByZero:
                    pass
                rollback_to()
            else:
                send([new_item()])
        # close what is still open, randomly
        while sp_stack:
            if rnd.random() < 0.6:
                sp_stack.pop()
                c.execute("RELEASE SAVEPOINT s%d" % (len(sp_stack) + 1))
            else:
                rollback_to()
        if fate in ("E", "X"):
            try:
                c.execute("SELECT 1/0")
            except psycopg.errors.DivisionByZero:
                pass
        if fate == "R" or fate == "E":
            c.execute("ROLLBACK")
            outcome = "A"
        else:
            stage[0] = "commit"
            cs = now()
            cur = c.execute("COMMIT")
            ce = now()
            status = cur.statusmessage
            if fate == "X":
                if status != "ROLLBACK":
                    rec["errors"].append("%s txn %d: COMMIT after an error answered %r" % (sender, seq, status))
                outcome = "A"
            elif fate == "F":
                rec["errors"].append("%s txn %d: COMMIT with a failing deferred FK answered %r"
                                     % (sender, seq, status))
                outcome = "A"
            elif status == "COMMIT":
                outcome = "C"
            else:
                rec["errors"].append("%s txn %d: COMMIT answered %r" % (sender, seq, status))
                outcome = "A"
    except psycopg.Error as e:
        t_err = now()
        if lost(c, e):
            if stage[0] == "commit":
                outcome, why, ce = "U", "lost at COMMIT", t_err     # ce: an upper bound
            else:
                outcome, why = "A", "lost before COMMIT"
        else:
            outcome = "A"
            state = e.sqlstate or "?"
            why = "error %s%s" % (state, " at COMMIT" if stage[0] == "commit" else "")
            if state not in EXPECTED_SQLSTATES:
                rec["unexpected"][state] += 1
                if rec["unexpected"][state] <= 3:
                    rec["errors"].append("%s txn %d: unexpected error %s: %s" % (sender, seq, state, e))
            if fate == "F" and state == "23503":
                why = "F"
            try:
                if c.info.transaction_status != pq.TransactionStatus.IDLE:
                    c.execute("ROLLBACK")
            except psycopg.Error:
                pass
    packed = array("l", (idx * 8 + ch for idx, ch in kept)) if outcome != "A" else array("l")
    ndropped = len(set(all_sent) - set(kept))
    return [gid, outcome, why, cs, ce, pid, packed, stats["sent"], ndropped, stats["dups"]]


# --------------------------------------------------------------- listener
class Session:
    def __init__(self, lidx, db, dbtag, sid):
        self.lidx, self.db, self.dbtag, self.sid = lidx, db, dbtag, sid
        self.conn = None
        self.pid = None
        self.t_start = now()
        self.t_end = None
        self.end = None
        self.intervals = []          # [ch, L0, L1 or None, U0 or None, U1 or None]
        self.active = {}             # ch -> index in intervals
        self.last_sync = None
        self.codes = array("q")      # ((gid << 16 | idx) << 3 | ch) << 2 | mode
        self.times = array("d")      # receipt (idle) or query start (query modes)
        self.pids = array("l")       # the notifying backend's pid
        self.queries = []            # (q_start, idle_since or None, first, last delivery)
        self.anomalies = []          # undecodable, cross-database, corrupted payloads
        self.idle_since = None
        self.mode = MODE_QUERY
        self.q_start = None
        self.last_recv = None
        self.actions = collections.Counter()

    def record(self, channel, payload, pid, mode, t):
        self.last_recv = now()
        try:
            ch = CHANNELS.index(channel)
        except ValueError:
            self.anomalies.append(("phantom", "unknown channel %r" % channel[:80]))
            return
        parsed = parse_payload(payload)
        if parsed is None:
            self.anomalies.append(("phantom", "undecodable payload %r on %s" % (payload[:80], channel)))
            return
        sender, seq, idx, n = parsed
        if sender[:1] != self.dbtag:
            self.anomalies.append(("crossdb", "%s.%d.%d from database of %s delivered in %s"
                                   % (sender, seq, idx, sender, self.db)))
            return
        try:
            snum = SENDER_NUM[sender]
        except KeyError:
            self.anomalies.append(("phantom", "unknown sender in %r" % payload[:80]))
            return
        if payload != make_payload(sender, seq, idx, n):
            self.anomalies.append(("phantom", "corrupted payload of %s.%d.%d (%d bytes, %r...)"
                                   % (sender, seq, idx, len(payload.encode()), payload[:60])))
            return
        if not (0 <= idx < 65536 and 0 < seq < GID_MUL):
            self.anomalies.append(("phantom", "id out of range %r" % payload[:80]))
            return
        gid = snum * GID_MUL + seq
        self.codes.append((((gid << 16) | idx) << 3 | ch) << 2 | mode)
        self.times.append(t)
        self.pids.append(pid)

    def on_notify(self, n):
        # notifications psycopg reads during a query
        self.record(n.channel, n.payload, n.pid, self.mode, self.q_start)

    def drain_notifies(self):
        t = now()
        while True:
            try:
                x = self.conn.pgconn.notifies()
            except Exception:
                return
            if x is None:
                return
            self.record(x.relname.decode(), x.extra.decode(), x.be_pid, MODE_IDLE, t)

    def wait_idle(self, dur, stop_at=None):
        """Wait idle on the socket for dur seconds (or until stop_at() says
        so); raise Dead if the connection goes."""
        end = now() + dur
        if self.idle_since is None:
            self.idle_since = now()
        while True:
            # (always one look at the socket, even at the end: what is there
            # before the next query counts as received while idle)
            left = end - now()
            try:
                select.select([self.conn.fileno()], [], [], max(0.0, min(left, 0.25)))
                self.conn.pgconn.consume_input()
            except (psycopg.Error, OSError, ValueError):
                self.drain_notifies()
                raise Dead()
            self.drain_notifies()
            if self.conn.pgconn.status != pq.ConnStatus.OK:
                raise Dead()
            if end - now() <= 0 or (stop_at is not None and stop_at()):
                return

    def q(self, sql, params=None, mode=MODE_QUERY, expect_error=None):
        """Run a statement; notifications read meanwhile are recorded with
        mode.  Raises Dead if the connection goes."""
        self.mode = mode
        self.q_start = t0 = now()
        first = len(self.codes)
        idle_since = self.idle_since
        self.idle_since = None
        err = None
        try:
            self.conn.execute(sql, params)
        except psycopg.Error as e:
            if lost(self.conn, e):
                self.queries.append((t0, idle_since, first, len(self.codes)))
                raise Dead()
            err = e
        self.queries.append((t0, idle_since, first, len(self.codes)))
        if self.conn.info.transaction_status == pq.TransactionStatus.IDLE:
            self.last_sync = t0
            self.idle_since = now()
        if err is not None:
            if expect_error is None or not isinstance(err, expect_error):
                raise err
        return err


def listener(lidx, db, dbtag, seed, t_end, done_evt, outdir):
    rnd = random.Random(seed)
    rec = dict(kind="listener", lidx=lidx, db=db, sessions=[], errors=[], reconnects=0,
               killed=0, connect_failures=0)
    sid = 0
    s = None
    try:
        while now() < t_end:
            sid += 1
            s = Session(lidx, db, dbtag, "%s%d.%d" % (dbtag, lidx, sid))
            try:
                s.conn = connect(db, "soak_l_%s%d" % (dbtag, lidx))
            except psycopg.Error:
                rec["connect_failures"] += 1
                time.sleep(0.2)
                sid -= 1
                s = None
                continue
            s.pid = s.conn.info.backend_pid
            s.conn.add_notify_handler(s.on_notify)
            rec["sessions"].append(s)
            try:
                run_session(s, rnd, t_end, rec)
            except Dead:
                s.t_end = now()
                s.end = "killed"
                rec["killed"] += 1
                try:
                    s.conn.close()
                except Exception:
                    pass
                continue
            if s.end == "reconnect":
                rec["reconnects"] += 1
                continue
            break       # time is up and the session is alive: drain it
        if s is not None and s.end is None:
            final_drain(s, done_evt, t_end)
    except Exception:
        rec["errors"].append("listener %s%d: %s" % (dbtag, lidx, traceback.format_exc()))
        if s is not None and s.end is None:
            s.end = "error"
            s.t_end = now()
    finally:
        for x in rec["sessions"]:
            if x.conn is not None:
                try:
                    x.conn.close()
                except Exception:
                    pass
                x.conn = None
            if x.t_end is None:
                x.t_end = now()
        dump(outdir, "l_%s%d" % (dbtag, lidx), rec)


def final_drain(s, done_evt, t_end):
    """Idle until the notifiers are done and 3 s pass without a notification
    (at most DRAIN_MAX), then one last query: whatever it brings was left
    waiting for a query by an idle session."""
    try:
        s.wait_idle(t_end + 60 - now(), stop_at=done_evt.is_set)
        t_done = now()
        s.wait_idle(DRAIN_MAX, stop_at=lambda: now() - max(s.last_recv or 0, t_done) >= QUIET)
        s.q("SELECT 1", mode=MODE_FINAL)
        s.end = "final"
    except Dead:
        s.end = "killed"
    s.t_end = now()
    try:
        s.conn.close()
    except Exception:
        pass


def do_listen(s, chs, block=False, rollback=False):
    """LISTEN chs (autocommit, or in one block); rollback: in a block that is
    rolled back (an error first, sometimes)."""
    new = [ch for ch in dict.fromkeys(chs) if ch not in s.active]
    t0 = now()
    try:
        if block or rollback:
            s.q("BEGIN")
            for ch in chs:
                s.q("SELECT ext_listen(%s)", (CHANNELS[ch],), mode=MODE_BLOCK)
            if rollback:
                if len(chs) > 1:
                    s.q("SELECT 1/0", mode=MODE_BLOCK, expect_error=psycopg.errors.DivisionByZero)
                s.q("ROLLBACK")
            else:
                s.q("COMMIT")
        else:
            s.q("SELECT ext_listen(%s)", (CHANNELS[chs[0]],))
    except Dead:
        if not rollback:
            for ch in new:      # may or may not have committed
                s.intervals.append([ch, t0, None, None, None])
        raise
    t1 = now()
    if not rollback:
        for ch in new:
            s.active[ch] = len(s.intervals)
            s.intervals.append([ch, t0, t1, None, None])


def do_unlisten(s, chs, all_=False, rollback=False):
    targets = list(s.active) if all_ else [ch for ch in chs if ch in s.active]
    t0 = now()
    try:
        if rollback:
            s.q("BEGIN")
            for ch in chs:
                s.q("SELECT ext_unlisten(%s)", (CHANNELS[ch],), mode=MODE_BLOCK)
            s.q("ROLLBACK")
        elif all_:
            s.q("SELECT ext_unlisten_all()")
        else:
            s.q("SELECT ext_unlisten(%s)", (CHANNELS[chs[0]],))
    except Dead:
        if not rollback:
            for ch in targets:
                s.intervals[s.active[ch]][3] = t0
        raise
    t1 = now()
    if not rollback:
        for ch in targets:
            iv = s.intervals[s.active.pop(ch)]
            iv[3], iv[4] = t0, t1


def sit_in_block(s, rnd):
    """A transaction block: nothing may arrive until it ends."""
    s.q("BEGIN")
    s.q("SELECT 1", mode=MODE_BLOCK)
    time.sleep(rnd.random() * 0.3)
    if rnd.random() < 0.3:
        s.q("SELECT 1/0", mode=MODE_BLOCK, expect_error=psycopg.errors.DivisionByZero)
        time.sleep(rnd.random() * 0.1)
        s.q("SELECT 2", mode=MODE_BLOCK, expect_error=psycopg.errors.InFailedSqlTransaction)
        s.q("ROLLBACK")
    else:
        s.q("SELECT 2", mode=MODE_BLOCK)
        s.q("COMMIT" if rnd.random() < 0.7 else "ROLLBACK")


def run_session(s, rnd, t_end, rec):
    # initial channels
    chs = rnd.sample(range(LISTENABLE), rnd.randint(1, 4))
    if rnd.random() < 0.5:
        do_listen(s, chs, block=True)
    else:
        for ch in chs:
            do_listen(s, [ch])
    next_reconnect = now() + rnd.uniform(8, 25)
    while now() < t_end:
        r = rnd.random()
        dur = rnd.uniform(3, 6) if r < 0.08 else rnd.uniform(0.02, 0.8)
        s.wait_idle(min(dur, max(0.0, t_end - now())))
        if now() >= t_end:
            return
        if now() >= next_reconnect:
            s.q("SELECT 1")                  # the session's last sync
            s.end = "reconnect"
            s.t_end = now()
            s.conn.close()
            s.conn = None
            return
        inactive = [ch for ch in range(LISTENABLE) if ch not in s.active]
        r = rnd.random()
        if (r < 0.30 or not s.active) and inactive:
            s.actions["listen"] += 1
            do_listen(s, [rnd.choice(inactive)])
        elif r < 0.35 and len(inactive) >= 2:
            s.actions["listen block"] += 1
            do_listen(s, rnd.sample(inactive, 2), block=True)
        elif r < 0.40:
            s.actions["listen rolled back"] += 1
            do_listen(s, rnd.sample(range(LISTENABLE), rnd.randint(1, 2)), rollback=True)
        elif r < 0.45 and s.active:
            s.actions["re-listen"] += 1
            do_listen(s, [rnd.choice(list(s.active))])
        elif r < 0.65 and s.active:
            s.actions["unlisten"] += 1
            do_unlisten(s, [rnd.choice(list(s.active))])
        elif r < 0.68:
            s.actions["unlisten all"] += 1
            do_unlisten(s, [], all_=True)
        elif r < 0.72 and s.active:
            s.actions["unlisten rolled back"] += 1
            do_unlisten(s, [rnd.choice(list(s.active))], rollback=True)
        elif r < 0.74 and inactive:
            s.actions["unlisten not listened"] += 1
            do_unlisten(s, [rnd.choice(inactive)])
        elif r < 0.86:
            s.actions["block"] += 1
            sit_in_block(s, rnd)
        elif r < 0.90:
            s.actions["ping"] += 1
            s.q("SELECT 1")
        # else: just keep waiting


# ----------------------------------------------------------------- killer
def killer(seed, t_end, outdir):
    rnd = random.Random(seed)
    rec = dict(kind="killer", kills=[], errors=[])
    c = None
    try:
        while now() < t_end:
            time.sleep(min(rnd.uniform(0.2, 1.6), max(0.0, t_end - now())))
            if now() >= t_end:
                break
            try:
                if lost(c):
                    c = connect(DB1, "soak_killer")
                rows = c.execute("SELECT pid, application_name, state = 'active' AND query = 'COMMIT' "
                                 "FROM pg_stat_activity "
                                 "WHERE application_name LIKE 'soak\\_l\\_%%' "
                                 "OR application_name LIKE 'soak\\_n\\_%%'").fetchall()
                lis = [r[:2] for r in rows if r[1].startswith("soak_l_")]
                nots = [r[:2] for r in rows if r[1].startswith("soak_n_")]
                # notifiers caught in their COMMIT first: their outcome is unknown
                committing = [r[:2] for r in rows if r[1].startswith("soak_n_") and r[2]]
                if committing and rnd.random() < 0.7:
                    nots = committing
                r = rnd.random()
                if r < 0.65 and lis:
                    pid, app = rnd.choice(lis)
                    how = "terminate"
                elif r < 0.90 and nots:
                    pid, app = rnd.choice(nots)
                    how = "terminate"
                elif nots:
                    pid, app = rnd.choice(nots)
                    how = "cancel"
                else:
                    continue
                t0 = now()
                if how == "terminate":
                    ok = c.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,)).fetchone()[0]
                else:
                    ok = c.execute("SELECT pg_cancel_backend(%s)", (pid,)).fetchone()[0]
                rec["kills"].append((t0, now(), how, pid, app, ok))
            except psycopg.Error as e:
                rec["errors"].append("killer: %s" % e)
                c = None
                time.sleep(0.2)
    except Exception:
        rec["errors"].append("killer: %s" % traceback.format_exc())
    finally:
        if c is not None:
            try:
                c.close()
            except Exception:
                pass
        dump(outdir, "killer", rec)


# ---------------------------------------------------------------- checker
def unpack(code):
    mode = code & 3
    code >>= 2
    ch = code & 7
    code >>= 3
    idx = code & 0xFFFF
    return code >> 16, idx, ch, mode


class Checker:
    def __init__(self, txns, sessions, db_of_snum, name_of_snum):
        self.txns = txns                    # gid -> txn record
        self.sessions = sessions
        self.db_of = db_of_snum
        self.name_of = name_of_snum
        self.fail = collections.defaultdict(list)
        self.nfail = collections.Counter()
        self._kept_cache = {}

    def bad(self, prop, msg):
        self.nfail[prop] += 1
        if len(self.fail[prop]) < 8:
            self.fail[prop].append(msg)

    def tname(self, gid):
        return "%s txn %d" % (self.name_of[gid // GID_MUL], gid % GID_MUL)

    def kept_index(self, gid):
        """(sorted?, structure): key idx*8+ch -> delivery rank"""
        k = self._kept_cache.get(gid)
        if k is None:
            kept = self.txns[gid][6]
            if all(kept[i] < kept[i + 1] for i in range(len(kept) - 1)):
                k = (True, kept)
            else:
                k = (False, {key: i for i, key in enumerate(kept)})
            self._kept_cache[gid] = k
        return k

    def rank(self, gid, key):
        srt, st = self.kept_index(gid)
        if srt:
            i = bisect.bisect_left(st, key)
            return i if i < len(st) and st[i] == key else None
        return st.get(key)

    def run(self):
        txns = self.txns
        # resolve unknown outcomes: committed if anyone got any of it
        delivered_gids = set()
        for s in self.sessions:
            for code in s.codes:
                delivered_gids.add(code >> 21)
        self.unknown_committed = self.unknown_not = 0
        committed = {}
        for gid, t in txns.items():
            if t[1] == "C":
                committed[gid] = t
            elif t[1] == "U":
                if gid in delivered_gids:
                    committed[gid] = t
                    self.unknown_committed += 1
                else:
                    self.unknown_not += 1
        self.committed = committed
        # per (db, channel): committed transactions with entries on it, by cs
        per_ch = collections.defaultdict(list)
        self.ch_count = {}
        for gid, t in committed.items():
            cnt = collections.Counter(k & 7 for k in t[6])
            self.ch_count[gid] = cnt
            db = self.db_of[gid // GID_MUL]
            for ch, n in cnt.items():
                per_ch[(db, ch)].append((t[3], t[4], gid, n))
        for v in per_ch.values():
            v.sort()
        per_ch_cs = {k: [x[0] for x in v] for k, v in per_ch.items()}

        self.required = self.required_ok = self.optional_got = self.truncated = 0
        self.deliveries = collections.Counter()
        self.idle_lat = []
        edges = {}              # (gid_a, gid_b) -> session id, for the cycle report
        for s in self.sessions:
            self.check_session(s, per_ch, per_ch_cs, edges)
        # each sender's commit order, in the same graph
        by_sender = collections.defaultdict(list)
        for gid in committed:
            if gid in delivered_gids:
                by_sender[gid // GID_MUL].append(gid)
        for lst in by_sender.values():
            lst.sort()
            for a, b in zip(lst, lst[1:]):
                edges.setdefault((a, b), "commit order of " + self.name_of[a // GID_MUL])
        self.check_acyclic(edges)
        self.ntxn_edges = len(edges)

    def check_session(self, s, per_ch, per_ch_cs, edges):
        txns = self.txns
        sname = "session %s (pid %s, %s)" % (s.sid, s.pid, s.end)
        for kind, msg in s.anomalies:
            self.bad("phantom" if kind == "phantom" else "crossdb", "%s: %s" % (sname, msg))
        ivs = collections.defaultdict(list)
        for iv in s.intervals:
            ivs[iv[0]].append(iv)
        s_end = s.t_end
        got = collections.Counter()         # (gid, ch) -> count
        seen = set()
        done = set()                        # transactions whose run ended
        cur = None
        cur_rank = -1
        last_seq = {}
        max_cs = None
        max_cs_gid = None
        order = []
        queries = s.queries
        q_starts = [x[0] for x in queries]
        for i, code in enumerate(s.codes):
            gid, idx, ch, mode = unpack(code)
            key = idx * 8 + ch
            self.deliveries[MODE_NAMES[mode]] += 1
            if (gid, key) in seen:
                self.bad("dup", "%s got %s entry %d on %s twice" % (sname, self.tname(gid), idx, CHANNELS[ch]))
                continue
            seen.add((gid, key))
            t = txns.get(gid)
            if self.db_of.get(gid // GID_MUL) != s.db:
                self.bad("crossdb", "%s in %s got %s" % (sname, s.db, self.tname(gid)))
                continue
            if t is None or gid not in self.committed:
                self.bad("phantom", "%s got %s entry %d on %s: that transaction %s"
                         % (sname, self.tname(gid), idx, CHANNELS[ch],
                            "does not exist" if t is None else "did not commit (%s)" % t[2]))
                continue
            rk = self.rank(gid, key)
            if rk is None:
                self.bad("phantom", "%s got %s entry %d on %s, which was not committed "
                         "(rolled back in a savepoint or never sent)" % (sname, self.tname(gid), idx, CHANNELS[ch]))
                continue
            if s.pids[i] != t[5]:
                self.bad("phantom", "%s got %s entry %d with sender pid %d, the sender's was %d"
                         % (sname, self.tname(gid), idx, s.pids[i], t[5]))
            got[(gid, ch)] += 1
            cs, ce = t[3], t[4]
            # inside a listen window of its channel?
            ok = False
            for iv in ivs.get(ch, ()):
                a_end = iv[4] if iv[4] is not None else s_end
                if not (ce < iv[1] or cs > a_end):
                    ok = True
                    break
            if not ok:
                self.bad("window", "%s got %s on %s (commit %.3f-%.3f) outside its listen windows %s"
                         % (sname, self.tname(gid), CHANNELS[ch], cs, ce,
                            [tuple(None if x is None else round(x, 3) for x in iv[1:]) for iv in ivs.get(ch, ())]))
            # order
            if gid != cur:
                if gid in done:
                    self.bad("txorder", "%s: %s is not contiguous (resumes after %s)"
                             % (sname, self.tname(gid), self.tname(cur)))
                if cur is not None:
                    done.add(cur)
                    edges.setdefault((cur, gid), s.sid)
                snum, seq = gid // GID_MUL, gid % GID_MUL
                if last_seq.get(snum, 0) > seq:
                    self.bad("sender", "%s: %s after txn %d of the same sender"
                             % (sname, self.tname(gid), last_seq[snum]))
                last_seq[snum] = seq
                if max_cs is not None and max_cs > ce:
                    self.bad("realtime", "%s: %s (COMMIT returned at %.4f) delivered after %s "
                             "(COMMIT sent at %.4f)" % (sname, self.tname(gid), ce, self.tname(max_cs_gid), max_cs))
                if max_cs is None or cs > max_cs:
                    max_cs, max_cs_gid = cs, gid
                cur = gid
                cur_rank = -1
                order.append(gid)
            if rk <= cur_rank:
                self.bad("txorder", "%s: %s entry %d on %s out of the order sent"
                         % (sname, self.tname(gid), idx, CHANNELS[ch]))
            cur_rank = max(cur_rank, rk)
            # idle delivery
            tm = s.times[i]
            if mode == MODE_BLOCK:
                self.bad("idle", "%s got %s entry %d inside a transaction block" % (sname, self.tname(gid), idx))
            elif mode == MODE_FINAL:
                self.bad("idle", "%s: %s entry %d (COMMIT returned %.1f s earlier) reached the idle "
                         "session only with its final query" % (sname, self.tname(gid), idx, tm - ce))
            elif mode == MODE_IDLE:
                if len(self.idle_lat) < 200000:
                    self.idle_lat.append(tm - ce)
            elif mode == MODE_QUERY:
                qi = bisect.bisect_right(q_starts, tm) - 1
                if 0 <= qi and queries[qi][0] == tm and queries[qi][1] is not None:
                    idle_since = queries[qi][1]
                    if idle_since < ce and ce < tm - GRACE_IDLE:
                        self.bad("idle", "%s: %s entry %d, committed %.1f s before, reached the session "
                                 "(idle since before that) only with a query" % (sname, self.tname(gid), idx, tm - ce))
        # all or nothing, per transaction and channel; except the last
        # transaction of a killed session, which the kill may cut short (what
        # it got is a prefix: see the order inside a transaction)
        for (gid, ch), n in got.items():
            want = self.ch_count[gid][ch]
            if n != want and s.end == "killed" and gid == cur:
                self.truncated += 1
            elif n != want:
                self.bad("atomic", "%s got %d of the %d entries of %s on %s"
                         % (sname, n, want, self.tname(gid), CHANNELS[ch]))
        # no loss
        last_sync = s.last_sync if s.last_sync is not None else -1.0
        req_seen = set()
        for iv in s.intervals:
            ch, L0, L1, U0, U1 = iv
            if L1 is None:
                continue
            req_end = min(U0 if U0 is not None else float("inf"), last_sync)
            lst = per_ch.get((s.db, ch))
            if not lst:
                continue
            j = bisect.bisect_right(per_ch_cs[(s.db, ch)], L1)
            while j < len(lst) and lst[j][0] < req_end:
                cs, ce, gid, n = lst[j]
                j += 1
                if ce >= req_end or (gid, ch) in req_seen:
                    continue
                req_seen.add((gid, ch))
                self.required += n
                g = got.get((gid, ch), 0)
                self.required_ok += min(g, n)
                if g < n:
                    self.bad("loss", "%s missed %d of %d entries of %s on %s (COMMIT %.4f-%.4f; LISTEN "
                             "returned %.4f, required until %.4f)"
                             % (sname, n - g, n, self.tname(gid), CHANNELS[ch], cs, ce, L1, req_end))
        self.optional_got += sum(n for k, n in got.items() if k not in req_seen)

    def check_acyclic(self, edges):
        succ = collections.defaultdict(list)
        indeg = collections.Counter()
        nodes = set()
        for a, b in edges:
            succ[a].append(b)
            indeg[b] += 1
            nodes.add(a)
            nodes.add(b)
        stack = [n for n in nodes if indeg[n] == 0]
        seen = 0
        while stack:
            n = stack.pop()
            seen += 1
            for m in succ[n]:
                indeg[m] -= 1
                if indeg[m] == 0:
                    stack.append(m)
        self.order_nodes = len(nodes)
        if seen == len(nodes):
            return
        # a cycle: walk back along edges between the nodes left
        left = {n for n in nodes if indeg[n] > 0}
        pred = {}
        for a, b in edges:
            if a in left and b in left:
                pred.setdefault(b, a)
        n = next(iter(left))
        path = []
        visited = {}
        while n not in visited:
            visited[n] = len(path)
            path.append(n)
            n = pred[n]
        cyc = path[visited[n]:][::-1]
        desc = []
        for i, a in enumerate(cyc):
            b = cyc[(i + 1) % len(cyc)]
            desc.append("%s -> %s (%s)" % (self.tname(a), self.tname(b), edges.get((a, b), "?")))
        self.bad("xorder", "%d transactions in no common order; a cycle: %s"
                 % (len(left), "; ".join(desc[:6])))


# ------------------------------------------------------------------- main
SENDER_NUM = {}


def setup():
    with psycopg.connect(**dsn(DB1, "soak_main"), autocommit=True) as c:
        if c.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB2,)).fetchone() is None:
            c.execute('CREATE DATABASE "%s"' % DB2.replace('"', '""'))
    for db in DBS:
        with psycopg.connect(**dsn(db, "soak_main"), autocommit=True) as c:
            c.execute("SET client_min_messages = warning")
            c.execute("CREATE EXTENSION IF NOT EXISTS notify_ext")


def stats():
    try:
        with psycopg.connect(**dsn(DB1, "soak_main"), autocommit=True) as c:
            return c.execute("SELECT * FROM ext_notification_stats()").fetchone()
    except psycopg.Error as e:
        return "stats unavailable: %s" % e


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: soak_faults.py SECONDS")
    seconds = float(sys.argv[1])
    seed = int(os.environ.get("SOAK_SEED") or random.SystemRandom().randrange(1, 2 ** 31))
    nnot = int(os.environ.get("SOAK_NOTIFIERS", "3"))
    nlis = int(os.environ.get("SOAK_LISTENERS", "4"))
    print("soak: seed %d (SOAK_SEED=%d reproduces the plan; timing differs), %.0f s, "
          "databases %s and %s, %d notifiers and %d listeners in each"
          % (seed, seed, seconds, DB1, DB2, nnot, nlis), flush=True)
    setup()
    stats0 = stats()
    senders = []
    for d, tag in enumerate(DBTAGS):
        for i in range(nnot):
            senders.append(("%s%d" % (tag, i), DBS[d]))
    for n, (name, _) in enumerate(senders):
        SENDER_NUM[name] = n + 1
    outdir = tempfile.mkdtemp(prefix="soak_faults.")
    t_start = now()
    t_end = t_start + seconds
    done_evt = mp.Event()
    ctx_seed = random.Random(seed)
    listeners = []
    for d, tag in enumerate(DBTAGS):
        for i in range(nlis):
            p = mp.Process(target=listener, args=(i, DBS[d], tag, ctx_seed.randrange(2 ** 31), t_end,
                                                  done_evt, outdir), name="listener %s%d" % (tag, i))
            p.start()
            listeners.append(p)
    notifiers = []
    for name, db in senders:
        p = mp.Process(target=notifier, args=(SENDER_NUM[name], name, db, ctx_seed.randrange(2 ** 31),
                                              t_end, outdir), name="notifier " + name)
        p.start()
        notifiers.append(p)
    kp = mp.Process(target=killer, args=(ctx_seed.randrange(2 ** 31), t_end, outdir), name="killer")
    kp.start()

    health = []
    next_report = t_start + 15
    while now() < t_end:
        time.sleep(min(1.0, max(0.0, t_end - now())))
        if now() >= next_report and now() < t_end - 5:
            print("soak: %3.0f s, ext_notification_stats %s" % (now() - t_start, stats()), flush=True)
            next_report += 15 if seconds <= 120 else 60

    def join_all(procs, limit):
        for p in procs:
            p.join(max(0.1, limit - now()))
            if p.is_alive():
                health.append("%s did not finish in time: killed" % p.name)
                p.kill()
                p.join(5)
            elif p.exitcode != 0:
                health.append("%s exited with status %s" % (p.name, p.exitcode))
    join_all(notifiers + [kp], t_end + 35)
    t_drain = now()
    done_evt.set()
    join_all(listeners, t_drain + DRAIN_MAX + QUIET + 25)
    t_finish = now()
    print("soak: workers done after %.1f s (drain %.1f s); checking" % (t_finish - t_start, t_finish - t_drain),
          flush=True)

    # ---- load
    txns = {}
    sessions = []
    name_of = {n: name for name, n in SENDER_NUM.items()}
    db_of = {SENDER_NUM[name]: db for name, db in senders}
    nrecs = collections.Counter()
    kills = []
    reconnects = killed_listeners = notifier_sessions = 0
    actions = collections.Counter()
    why = collections.Counter()
    sent = dropped = dups = 0
    for f in sorted(os.listdir(outdir)):
        if f.endswith(".tmp"):
            continue
        with open(os.path.join(outdir, f), "rb") as fh:
            rec = pickle.load(fh)
        nrecs[rec["kind"]] += 1
        health.extend(rec["errors"])
        if rec["kind"] == "notifier":
            notifier_sessions += rec["sessions"]
            for t in rec["txns"]:
                txns[t[0]] = t
                why[(t[1], t[2])] += 1
                if t[1] != "A":
                    sent += len(t[6])
                dropped += t[8]
                dups += t[9]
        elif rec["kind"] == "listener":
            sessions.extend(rec["sessions"])
            reconnects += rec["reconnects"]
            killed_listeners += rec["killed"]
            for s in rec["sessions"]:
                actions.update(s.actions)
        else:
            kills = rec["kills"]
    if nrecs["notifier"] != len(notifiers):
        health.append("records of %d of %d notifiers" % (nrecs["notifier"], len(notifiers)))
    if nrecs["listener"] != len(listeners):
        health.append("records of %d of %d listeners" % (nrecs["listener"], len(listeners)))
    if nrecs["killer"] != 1:
        health.append("no record of the killer")

    ck = Checker(txns, sessions, db_of, name_of)
    t0 = now()
    ck.run()
    t_check = now() - t0

    n_c = sum(1 for t in txns.values() if t[1] == "C")
    n_a = sum(1 for t in txns.values() if t[1] == "A")
    n_u = sum(1 for t in txns.values() if t[1] == "U")
    big = sum(1 for t in txns.values() if len(t[6]) >= 200)
    maxlen = max((len(t[6]) for t in txns.values()), default=0)
    term = [k for k in kills if k[2] == "terminate"]
    print("soak: transactions: %d committed, %d aborted, %d unknown (lost at COMMIT: %d committed, "
          "%d not), %d big batches (largest %d notifications)"
          % (n_c, n_a, n_u, ck.unknown_committed, ck.unknown_not, big, maxlen))
    print("soak: aborted by cause: %s" % ", ".join(
        "%s %d" % (w, n) for (o, w), n in sorted(why.items(), key=lambda x: -x[1]) if o == "A"))
    print("soak: notifications: %d committed (outcome known or unknown), %d dropped by rolled-back "
          "savepoints, %d duplicates folded" % (sent, dropped, dups))
    print("soak: deliveries: %d (%s); required %d, delivered %d of them; %d more in uncertain windows; "
          "%d (transaction, channel) deliveries cut short by a kill"
          % (sum(ck.deliveries.values()), ", ".join("%s %d" % kv for kv in sorted(ck.deliveries.items())),
             ck.required, ck.required_ok, ck.optional_got, ck.truncated))
    if ck.idle_lat:
        lat = sorted(ck.idle_lat)
        print("soak: idle delivery latency after COMMIT returned: p50 %.1f ms, p99 %.1f ms, max %.1f ms"
              % (lat[len(lat) // 2] * 1000, lat[int(len(lat) * 0.99)] * 1000, lat[-1] * 1000))
    print("soak: kills: %d pg_terminate_backend (%d listeners, %d notifiers), %d pg_cancel_backend; "
          "listener sessions %d (%d killed, %d voluntary reconnects), notifier sessions %d"
          % (len(term), sum(1 for k in term if k[4].startswith("soak_l_")),
             sum(1 for k in term if k[4].startswith("soak_n_")), len(kills) - len(term),
             len(sessions), killed_listeners, reconnects, notifier_sessions))
    print("soak: listener actions: %s" % ", ".join("%s %d" % kv for kv in sorted(actions.items())))
    print("soak: %d transactions in the cross-session order graph; check took %.1f s; total %.1f s"
          % (ck.order_nodes, t_check, now() - t_start))
    stats1 = stats()
    if isinstance(stats0, tuple) and isinstance(stats1, tuple):
        kept_c = sum(len(t[6]) for t in txns.values() if t[1] == "C")
        kept_u = sum(len(t[6]) for t in txns.values() if t[1] == "U")
        print("soak: the server counted %d notifications committed during the run (ext_notification_stats; "
              "the notifiers: %d, plus up to %d of unknown outcome; other sessions of the cluster count too)"
              % (stats1[0] - stats0[0], kept_c, kept_u))

    alive = None
    try:
        with psycopg.connect(**dsn(DB2, "soak_main"), autocommit=True) as c:
            alive = c.execute("SELECT 'alive'").fetchone()[0]
    except psycopg.Error as e:
        alive = str(e)

    props = [
        ("health", "workers ran to the end without unexpected errors, within their time limits",
         health),
        ("loss", "no loss: every required notification reached every session that had to get it", None),
        ("dup", "no duplicates", None),
        ("phantom", "no phantoms: nothing aborted, rolled back in a savepoint, corrupted or "
         "with a wrong sender pid", None),
        ("crossdb", "database-local: nothing crossed databases", None),
        ("window", "nothing delivered outside a session's listen windows (rolled-back LISTEN "
         "and UNLISTEN included)", None),
        ("atomic", "all or nothing per transaction and channel (unknown COMMITs included)", None),
        ("txorder", "order inside a transaction: as sent, contiguous", None),
        ("sender", "each sender's transactions in its commit order", None),
        ("xorder", "sessions agree on the order of the transactions they share (one order for all)",
         None),
        ("realtime", "a transaction whose COMMIT began after another's returned is delivered after it",
         None),
        ("idle", "idle delivery: idle sessions woken without a query, nothing inside a block", None),
        ("alive", "the server accepts connections at the end", None),
    ]
    failed = 0
    for n, (key, desc, extra) in enumerate(props, 1):
        if key == "health":
            msgs, cnt = extra, len(extra)
        elif key == "alive":
            msgs, cnt = ([] if alive == "alive" else [alive]), (0 if alive == "alive" else 1)
        else:
            msgs, cnt = ck.fail.get(key, []), ck.nfail[key]
        if cnt == 0:
            print("ok %d - %s" % (n, desc))
        else:
            failed += 1
            print("not ok %d - %s (%d violations)" % (n, desc, cnt))
            for m in msgs[:8]:
                for line in str(m).rstrip().splitlines():
                    print("#   %s" % line)
    print("1..%d" % len(props))
    if os.environ.get("SOAK_KEEP") == "1":
        print("soak: raw records kept in %s" % outdir)
    else:
        shutil.rmtree(outdir, ignore_errors=True)
    if failed:
        print("soak: FAILED (%d of %d properties), seed %d" % (failed, len(props), seed))
        sys.exit(1)
    print("soak: ok, seed %d" % seed)


if __name__ == "__main__":
    main()
