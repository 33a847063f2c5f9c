#!/usr/bin/python3
"""Concurrency stress test of notify_ext delivery.

Several notifier processes run transactions of 1-5 notifications on random
channels, some with savepoints rolled back, some aborted whole.  Listener
processes listen on different channel sets, some of them (also, or only)
through patterns (ext_listen_pattern(), SQL LIKE syntax: % _ and backslash
escapes), overlapping so that one channel reaches a listener through
several patterns and its own LISTEN; they sit in transactions now and then.
At the end every listener must have received exactly the committed
notifications of its channels and of the channels its patterns match (the
checker does its own LIKE matching), each once, with the order of each
transaction kept, each sender's transactions in order, and every pair of
listeners must agree on the order of the transactions they both saw.

Every delivered notification must also carry its notifier's backend PID,
the same for every listener.  Once the notifiers are done, listeners keep
waiting idle for 3 s (without sending anything): whatever is missing then
was a lost wake-up.

usage: stress_delivery.py [seconds] [notifiers] [listeners]
Connection from PGHOST/PGPORT/PGUSER/PGDATABASE.  Exits 1 on failure.
STRESS_PARK: the longest a listener sits in a transaction, in seconds
(default 0.05); with a longer one on a small ring the queue spills to disk
all the time.  STRESS_EXPECT_SPILL=1: fail unless the queue spilled to
disk during the run (notify_ext_queue.spilled_bytes grew).

Standbys: with STRESS_STANDBY_HOST and/or STRESS_STANDBY_PORT set (the
others as for the primary), PGHOST/PGPORT is a primary with
notify_ext.wal_log = on and STRESS_STANDBY_* a hot standby of it.  The
notifiers run on the primary; listeners alternate between the primary
(even ones) and the standby (odd ones), and two neighbours take the same
listener set (listener i: LISTENER_SETS[(i // 2) % len]), so every set of
the round is listened to on both servers; listeners on both sit in
transactions now and then.  The same checks apply to every listener,
wherever it is, and across the servers (order, sender PIDs); the standby's
listeners must have received something.  Before the listeners' idle 3 s
the checker waits until the standby has replayed the primary's WAL up to
where it was when the notifiers ended (STRESS_STANDBY_WAIT seconds at most,
default 120).  STRESS_EXPECT_STANDBY_SPILL=1: fail unless the standby's
queue spilled to disk (its notify_ext_queue.spilled_bytes grew).
"""
import json
import multiprocessing as mp
import os
import random
import re
import select
import sys
import time

import psycopg

PARK = float(os.environ.get("STRESS_PARK", "0.05"))
DSN = dict(host=os.environ.get("PGHOST", "/tmp"), port=os.environ.get("PGPORT", "5432"),
           user=os.environ.get("PGUSER", "postgres"), dbname=os.environ.get("PGDATABASE", "postgres"))
# a hot standby of that primary (STRESS_STANDBY_HOST / STRESS_STANDBY_PORT), or None
STANDBY_DSN = None
if os.environ.get("STRESS_STANDBY_HOST") or os.environ.get("STRESS_STANDBY_PORT"):
    STANDBY_DSN = dict(DSN, host=os.environ.get("STRESS_STANDBY_HOST", DSN["host"]),
                       port=os.environ.get("STRESS_STANDBY_PORT", DSN["port"]))
STANDBY_WAIT = float(os.environ.get("STRESS_STANDBY_WAIT", "120"))
CHANNELS = ["sa", "sb", "sc", "chan_1", "chan_12", "chanX1", "chanX2"]
# what each listener listens to: channels (ext_listen) and patterns
# (ext_listen_pattern); listener i takes LISTENER_SETS[i % len]; the pattern
# sets alternate with the channel-only ones, so every round (9 listeners or
# more) has some of each
LISTENER_SETS = [
    dict(channels=["sa"], patterns=[]),
    dict(channels=[], patterns=["s%"]),                         # sa sb sc
    dict(channels=["sb"], patterns=[]),
    dict(channels=[], patterns=["chan_1%"]),                    # chan_1 chan_12 chanX1
    dict(channels=["sa", "sb"], patterns=[]),
    dict(channels=[], patterns=["chan\\_1%"]),                  # chan_1 chan_12 (escaped _)
    dict(channels=["sa", "sb", "sc"], patterns=[]),
    dict(channels=["sa", "chan_1"], patterns=["_a", "s%", "%1"]),  # several ways to sa, chan_1
    dict(channels=["sc"], patterns=[]),
    dict(channels=[], patterns=["_han_2", "%X%"]),              # chanX2; chanX1 chanX2
    dict(channels=["nobody_sends_here"], patterns=[]),
    dict(channels=["chanX2"], patterns=["nomatch%", "s", "chan\\%"]),  # chanX2 only
]


def like(name, pattern):
    """SQL LIKE of a channel name (what the server does: % any string, _ one
    character, a backslash makes the next character literal)."""
    rx = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            i += 1
            rx.append(re.escape(pattern[i]))
        elif ch == "%":
            rx.append(".*")
        elif ch == "_":
            rx.append(".")
        else:
            rx.append(re.escape(ch))
        i += 1
    return re.fullmatch("".join(rx), name, re.DOTALL) is not None


def listens(spec, channel):
    return channel in spec["channels"] or any(like(channel, p) for p in spec["patterns"])


def like_selftest():
    cases = [("chan_1", "chan_1%", True), ("chanX1", "chan_1%", True), ("chanX1", "chan\\_1%", False),
             ("chan_12", "chan\\_1%", True), ("chanX2", "_han_2", True), ("chan_12", "_han_2", False),
             ("sa", "s%", True), ("s", "s%", True), ("s", "s_", False), ("sa", "s", False),
             ("a%b", "a\\%b", True), ("axb", "a\\%b", False), ("a\\b", "a\\\\b", True),
             ("chanX2", "chan\\%", False), ("chan%", "chan\\%", True), ("ü1", "_1", True)]
    for name, pattern, want in cases:
        assert like(name, pattern) == want, (name, pattern, want)


def notifier(idx, seconds, out):
    rnd = random.Random(idx * 7919)
    c = psycopg.connect(**DSN, autocommit=True)
    committed = []
    full = 0
    deadline = time.time() + seconds
    tx = 0
    while time.time() < deadline:
        tx += 1
        n = rnd.randint(1, 5)
        msgs = []
        fate = rnd.random()
        try:
            with c.transaction(force_rollback=(fate < 0.15)):
                for i in range(n):
                    ch = rnd.choice(CHANNELS)
                    payload = "%d:%d:%d" % (idx, tx, i)
                    if rnd.random() < 0.2:
                        # a savepoint that is rolled back: dropped
                        try:
                            with c.transaction():
                                c.execute("SELECT ext_notify(%s, %s)", (ch, payload + ":dropped"))
                                raise RuntimeError("rollback savepoint")
                        except RuntimeError:
                            pass
                    c.execute("SELECT ext_notify(%s, %s)", (ch, payload))
                    if rnd.random() < 0.2:
                        c.execute("SELECT ext_notify(%s, %s)", (ch, payload))   # duplicate: folded
                    msgs.append((ch, payload))
        except psycopg.errors.ProgramLimitExceeded:
            # queue full at COMMIT (small queues): the transaction rolled back
            full += 1
            continue
        if fate >= 0.15:
            committed.append(msgs)
    pid = c.info.backend_pid
    c.close()
    out.put(("notifier", idx, committed, full, pid))


def listener(idx, spec, seconds, ready, done, out, server="primary"):
    rnd = random.Random(idx * 104729)
    c = psycopg.connect(**(STANDBY_DSN if server == "standby" else DSN), autocommit=True)
    got = []
    c.add_notify_handler(lambda n: got.append((n.channel, n.payload, n.pid)))
    for ch in spec["channels"]:
        c.execute("SELECT ext_listen(%s)", (ch,))
    for p in spec["patterns"]:
        c.execute("SELECT ext_listen_pattern(%s)", (p,))
    ready.put(idx)
    busy_until = time.time() + seconds
    # once the notifiers are done (and a standby has replayed their WAL:
    # main sets done), only wait idle for 3 s: whatever is missing then was
    # a lost wake-up.  (A cap, in case main never says.)
    deadline = None
    cap = busy_until + STANDBY_WAIT + 120
    while True:
        now = time.time()
        if deadline is None and (done.is_set() or now >= cap):
            deadline = max(now, busy_until) + 3
        if deadline is not None and now >= deadline:
            break
        r = rnd.random()
        if r < 0.05 and time.time() < busy_until:
            # sit in a transaction for a moment: nothing arrives until it ends
            c.autocommit = False
            c.execute("SELECT 1")
            before = len(got)
            time.sleep(rnd.random() * PARK)
            c.execute("SELECT 2")
            if len(got) != before:
                out.put(("error", idx, "notification delivered inside a transaction"))
            c.commit()
            c.autocommit = True
        else:
            select.select([c.fileno()], [], [], 0.02)
            c.pgconn.consume_input()
            while True:
                n = c.pgconn.notifies()
                if n is None:
                    break
                got.append((n.relname.decode(), n.extra.decode(), n.be_pid))
    c.close()
    out.put(("listener", idx, spec, got, server))


def verify(committed, received, pids=None):
    """received: (listener index, spec, [(channel, payload, pid)], [server]);
    pids: {notifier index: its backend PID}, if known."""
    errors = []
    # committed[(sender, tx)] = list of (channel, payload)
    for (lidx, spec, got, *_) in received:
        want = set()
        for msgs in committed.values():
            for ch, p in msgs:
                if listens(spec, ch):
                    want.add((ch, p))
        have = [(ch, p) for ch, p, _ in got]
        if len(have) != len(set(have)):
            errors.append("listener %d got duplicates" % lidx)
        extra = set(have) - want
        missing = want - set(have)
        if extra:
            errors.append("listener %d got %d unexpected, e.g. %s" % (lidx, len(extra), sorted(extra)[:3]))
        if missing:
            errors.append("listener %d missed %d, e.g. %s" % (lidx, len(missing), sorted(missing)[:3]))
        # per-sender transaction order and in-transaction order
        last = {}
        for ch, p in have:
            s, tx, i = (int(x) for x in p.split(":")[:3])
            if (s in last) and (tx, i) < last[s]:
                errors.append("listener %d: order broken for sender %d at %s" % (lidx, s, p))
                break
            last[s] = (tx, i)
    # sender PIDs: the notifier's backend, the same for every listener
    # (a standby's listeners get the primary's PIDs)
    first_pid = {}
    for (lidx, spec, got, *where) in received:
        bad = 0
        for ch, p, pid in got:
            s = int(p.split(":")[0])
            seen = first_pid.setdefault((ch, p), (pid, lidx))
            if (pids is not None and pids.get(s) != pid) or seen[0] != pid:
                if not bad:
                    errors.append("listener %d%s: %s %s came with sender PID %d, notifier %d's backend is %s, "
                                  "listener %d got it with PID %d"
                                  % (lidx, " (%s)" % where[0] if where else "", ch, p, pid, s,
                                     pids.get(s) if pids is not None else "?", seen[1], seen[0]))
                bad += 1
        if bad > 1:
            errors.append("listener %d: %d notifications with a wrong sender PID in all" % (lidx, bad))
    # all listeners agree on the order of transactions they share
    orders = []
    for (lidx, spec, got, *_) in received:
        seq = []
        for ch, p, _ in got:
            key = tuple(p.split(":")[:2])
            if not seq or seq[-1] != key:
                seq.append(key)
        orders.append((lidx, seq))
    for a in range(len(orders)):
        for b in range(a + 1, len(orders)):
            la, sa = orders[a]
            lb, sb = orders[b]
            common = set(sa) & set(sb)
            fa = [k for k in sa if k in common]
            fb = [k for k in sb if k in common]
            if fa != fb:
                errors.append("listeners %d and %d disagree on transaction order" % (la, lb))
    return errors


def wait_for_replay():
    """Wait until the standby has replayed the primary's WAL up to the
    primary's current write position; (seconds it took, error or None)."""
    t0 = time.time()
    with psycopg.connect(**DSN, autocommit=True) as p, psycopg.connect(**STANDBY_DSN, autocommit=True) as s:
        target = p.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
        while True:
            replayed = s.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn, pg_last_wal_replay_lsn()",
                                 (target,)).fetchone()
            if replayed[0]:
                return time.time() - t0, None
            if time.time() - t0 > STANDBY_WAIT:
                return time.time() - t0, ("the standby did not replay the primary's WAL up to %s within %.0f s "
                                          "(replayed up to %s)" % (target, STANDBY_WAIT, replayed[1]))
            time.sleep(0.05)


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 10
    nnot = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    nlis = int(sys.argv[3]) if len(sys.argv) > 3 else len(LISTENER_SETS)
    like_selftest()
    spilled_q = "SELECT spilled_bytes FROM notify_ext_queue"
    with psycopg.connect(**DSN, autocommit=True) as mon:
        spilled_before = mon.execute(spilled_q).fetchone()[0]
    if STANDBY_DSN:
        with psycopg.connect(**STANDBY_DSN, autocommit=True) as mon:
            if not mon.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                print("FAIL: STRESS_STANDBY_* (%s:%s) is not a standby" % (STANDBY_DSN["host"], STANDBY_DSN["port"]))
                sys.exit(1)
            standby_spilled_before = mon.execute(spilled_q).fetchone()[0]
    out = mp.Queue()
    ready = mp.Queue()
    done = mp.Event()
    listeners = []
    for i in range(nlis):
        if STANDBY_DSN:
            # neighbours share a set, one on each server
            spec = LISTENER_SETS[(i // 2) % len(LISTENER_SETS)]
            server = "standby" if i % 2 else "primary"
        else:
            spec = LISTENER_SETS[i % len(LISTENER_SETS)]
            server = "primary"
        p = mp.Process(target=listener, args=(i, spec, seconds, ready, done, out, server))
        p.start()
        listeners.append(p)
    for _ in range(nlis):
        ready.get(timeout=30)
    notifiers = [mp.Process(target=notifier, args=(i, seconds, out)) for i in range(nnot)]
    for p in notifiers:
        p.start()
    committed = {}
    received = []
    errors = []
    queue_full = 0
    pids = {}
    replay_wait = None
    for _ in range(nnot + nlis):
        msg = out.get(timeout=seconds + STANDBY_WAIT + 60)
        while msg[0] == "error":
            errors.append("listener %d: %s" % (msg[1], msg[2]))
            msg = out.get(timeout=seconds + STANDBY_WAIT + 60)
        if msg[0] == "notifier":
            for t, msgs in enumerate(msg[2]):
                committed[(msg[1], t)] = msgs
            queue_full += msg[3]
            pids[msg[1]] = msg[4]
            if len(pids) == nnot:
                # every notifier is done: let the standby replay it all,
                # then the listeners' idle wait begins
                if STANDBY_DSN:
                    replay_wait, err = wait_for_replay()
                    if err:
                        errors.append(err)
                done.set()
        else:
            received.append(msg[1:])
    for p in notifiers + listeners:
        p.join()
    errors += verify(committed, received, pids)
    total_sent = sum(len(m) for m in committed.values())
    total_recv = sum(len(r[2]) for r in received)
    npat = sum(1 for r in received if r[1]["patterns"])
    via_pattern = sum(1 for _, spec, g, *_ in received for ch, _, _ in g if ch not in spec["channels"])
    with psycopg.connect(**DSN, autocommit=True) as mon:
        spilled = mon.execute(spilled_q).fetchone()[0] - spilled_before
    print("stress: %d notifiers, %d listeners (%d with patterns), %.0f s: %d committed transactions, "
          "%d notifications, %d deliveries (%d through patterns only), %d commits refused with a full queue, "
          "%d bytes spilled to disk"
          % (nnot, nlis, npat, seconds, len(committed), total_sent, total_recv, via_pattern, queue_full, spilled))
    if os.environ.get("STRESS_EXPECT_SPILL") == "1" and spilled == 0:
        errors.append("the queue never spilled to disk: the disk tier was not exercised")
    if STANDBY_DSN:
        with psycopg.connect(**STANDBY_DSN, autocommit=True) as mon:
            standby_spilled = mon.execute(spilled_q).fetchone()[0] - standby_spilled_before
            skipped = mon.execute("SELECT listeners_skipped, notifications_skipped FROM notify_ext_queue").fetchone()
        per = {}
        for _, _, g, server in received:
            n, d = per.get(server, (0, 0))
            per[server] = (n + 1, d + len(g))
        print("stress: primary: %d listeners, %d deliveries; standby: %d listeners, %d deliveries, "
              "%d bytes spilled to disk on the standby (listeners skipped there since it started: %d, "
              "notifications they missed: %d); the standby replayed the primary's WAL %.2f s after the "
              "notifiers ended"
              % (per.get("primary", (0, 0)) + per.get("standby", (0, 0)) + (standby_spilled,) + tuple(skipped)
                 + (replay_wait if replay_wait is not None else float("nan"),)))
        if per.get("standby", (0, 0))[0] and per["standby"][1] == 0:
            errors.append("the standby's listeners received nothing")
        if os.environ.get("STRESS_EXPECT_STANDBY_SPILL") == "1" and standby_spilled == 0:
            errors.append("the standby's queue never spilled to disk: its disk tier was not exercised")
    if errors:
        for e in errors[:20]:
            print("FAIL:", e)
        sys.exit(1)
    print("stress: ok")


if __name__ == "__main__":
    main()
