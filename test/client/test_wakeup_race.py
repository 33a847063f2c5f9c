#!/usr/bin/python3
"""Regression test for D2: a lost wake-up when a listener slot changes owner.

gdb stops a publishing backend inside ne_signal_listeners() after it has
read the slot's owner and before it marks the slot signaled (the source line
marked NE_WAKE_WINDOW in src/deliver.c).  Meanwhile the listener that owned
the slot is terminated and a new backend, with the same BackendId, takes
the slot and listens.  Then the publisher goes on.  The new listener, idle
on its socket, must still be woken by the next notification: with the old
protocol the publisher's flag landed on the new owner's slot on behalf of the
dead pid, and the new listener was never signalled again.

Needs gdb (root, or ptrace permission over the server processes) and the
module's debug information (PGXS builds with -g).
"""
import os
import queue
import re
import shutil
import subprocess
import threading
import time

from _pg import conn, wait_notifies
from _tap import check, finish

# NE_WAKE_SRC: the deliver.c the installed module was built from (default: ours)
SRC = os.environ.get("NE_WAKE_SRC") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "src", "deliver.c")


def window_line():
    """The line after the NE_WAKE_WINDOW marker comment."""
    with open(SRC) as f:
        for i, line in enumerate(f, 1):
            if "NE_WAKE_WINDOW" in line:
                return i + 1
    return None


def backend_id(c):
    vxid = c.execute("SELECT virtualtransaction FROM pg_locks "
                     "WHERE pid = pg_backend_pid() LIMIT 1").fetchone()[0]
    return int(vxid.split("/")[0])


class Gdb:
    def __init__(self, pid):
        self.p = subprocess.Popen(["gdb", "-q", "-nx", "-p", str(pid)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, bufsize=1)
        self.lines = queue.Queue()
        self.log = []
        threading.Thread(target=self._reader, daemon=True).start()

    def _reader(self):
        for line in self.p.stdout:
            self.lines.put(line)

    def cmd(self, text):
        self.p.stdin.write(text + "\n")
        self.p.stdin.flush()

    def expect(self, pattern, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                line = self.lines.get(timeout=max(0.05, deadline - time.time()))
            except queue.Empty:
                continue
            self.log.append(line.rstrip())
            if re.search(pattern, line):
                return True
        return False

    def close(self):
        try:
            self.cmd("delete")
            self.cmd("detach")
            self.cmd("quit")
            self.p.wait(10)
        except Exception:  # noqa: BLE001 - never leave the backend stopped
            self.p.kill()


def one_round(rnd):
    mon = conn()
    l1 = conn()
    l1.execute("SELECT ext_listen('race')")
    bid = backend_id(l1)
    pub = conn()
    g = Gdb(pub.info.backend_pid)
    g.cmd("set pagination off")
    g.cmd("set confirm off")
    g.cmd("break deliver.c:%d" % window_line())
    if not g.expect(r"Breakpoint 1 at", 90):
        check("round %d: gdb set the breakpoint" % rnd, False, "\n".join(g.log[-20:]))
        g.close()
        return
    g.cmd("continue")
    done = threading.Event()
    threading.Thread(target=lambda: (pub.execute("SELECT ext_notify('race', 'one')"),
                                     done.set()), daemon=True).start()
    hit = g.expect(r"Breakpoint 1,", 60)
    check("round %d: the publisher stops between reading the slot and marking it" % rnd, hit,
          "\n".join(g.log[-20:]))
    if not hit:
        g.close()
        return
    # the listener leaves; a new backend takes the same slot and listens
    l1pid = l1.info.backend_pid
    mon.execute("SELECT pg_terminate_backend(%s)", (l1pid,))
    for _ in range(100):
        if mon.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s",
                       (l1pid,)).fetchone()[0] == 0:
            break
        time.sleep(0.05)
    spare = []
    l2 = None
    for _ in range(20):
        c = conn()
        if backend_id(c) == bid:
            l2 = c
            break
        spare.append(c)
    check("round %d: a new backend got the same BackendId (%d)" % (rnd, bid), l2 is not None)
    if l2 is None:
        g.close()
        return
    l2.execute("SELECT ext_listen('race')")
    g.close()                       # the publisher goes on
    done.wait(10)
    check("round %d: the publisher's commit finished" % rnd, done.is_set())
    # the new listener is idle on its socket: the next notification must reach it
    n = conn()
    n.execute("SELECT ext_notify('race', 'two')")
    got = wait_notifies(l2, 2, 3.0)
    check("round %d: the new idle listener is woken and gets only what followed its LISTEN" % rnd,
          [x[1] for x in got] == ["two"], got)
    for c in [n, l2, pub, mon] + spare:
        c.close()


def main():
    if shutil.which("gdb") is None:
        check("gdb is installed (package gdb)", False)
    elif window_line() is None:
        check("src/deliver.c has the NE_WAKE_WINDOW marker", False)
    else:
        for rnd in range(1, 4):
            one_round(rnd)
    finish("wake-up race")


if __name__ == "__main__":
    main()
