#!/usr/bin/python3
"""Large payloads (issue 11): notify_ext.max_payload_size raised to 128MB by
a superuser notifier; real clients receive 1MB and 64MB payloads intact.

Run with Debian's python3 and psycopg 3 against a cluster with notify_ext
preloaded and default settings, as a superuser, as root (it reads
/proc/<backend>/status and runs prlimit on backends); connection from
PGHOST/PGPORT/PGUSER/PGDATABASE.  TAP lines; exits 1 on any failure.
(Go lib/pq: test/golang/run-large-payloads.sh.)

  a. four idle listeners on one channel: libpq (helpers/large_recv.c,
     compiled here with libpq and libcrypto) and psycopg, each once with
     the database's encoding (UTF8) and once with client_encoding LATIN1.
     The notifier sends, autocommit, a 1MB and an exactly 64MB ASCII
     payload, then one transaction of small, 1MB non-ASCII, small, ~64MB
     non-ASCII, small, 1MB ASCII, small (non-ASCII: random characters of
     Latin-1, so representable in LATIN1).  Each listener must get exactly
     that sequence, in order, from the notifier's PID, each payload's
     length and MD5 equal to what the server computed when it sent it:
     md5(payload) for UTF8 listeners, md5(convert_to(payload, 'LATIN1'))
     for LATIN1 ones;
  b. memory is returned: each listener backend's RssAnon
     (/proc/<pid>/status) after all that is within RSS_SLACK of what it was
     before the first large payload;
  c. out of memory: a listener (a raw protocol client, so the wire order is
     seen) on the channel and on notify_ext.gap has its backend's address
     space limited (prlimit --as, soft limit, a little above its VmSize) so
     that a 64MB buffer cannot be had; a 64MB notification and then a small
     one: it gets a WARNING 01N01 "... out of memory for their payloads",
     the notify_ext.gap notification (sender PID 0, JSON "reason": "out of
     memory", "missed": 1, the channel), then the small notification, in
     that order, once (not again and again), and not the 64MB one; the
     server log has "notify_ext: out of memory for a notification of N
     bytes on channel ..." once per listener that missed it; the limits
     are lifted at once afterwards (prlimit as root, or as the server's OS
     user when root lacks CAP_SYS_RESOURCE, as in a container);
  d. out of memory while converting to the client encoding: the same with
     a LATIN1 listener (on the same two notifications) whose limit leaves
     room for the 64MB buffer but not for the conversion (core's conversion
     asks for 4x the payload): the notification must not be lost silently:
     the same gap signal, then the small one (or, should a conversion need
     less memory, the 64MB payload intact); after the limits are lifted,
     both sessions answer a query and receive a 1MB non-ASCII payload intact
     in their encodings, and nothing else: no late copy of what they were
     told they missed, no repeated gap signal.
"""
import hashlib
import json
import os
import re
import select
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _pg import PGHOST, PGPORT, PGUSER, DB, Raw, conn  # noqa: E402
from _tap import check, finish  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
MB = 1024 * 1024
CHAN = "lp_big"
OOM_CHAN = "lp_oom"
GAP = "notify_ext.gap"
RSS_SLACK = 8 * MB      # RssAnon may stay this much above its baseline
DEADLINE = 60           # seconds for everything of part a to arrive (5 s more each)
T0 = time.time()

# random printable ASCII, and random characters of Latin-1 (ASCII and
# U+00A0..U+00FF: all representable in LATIN1, half of them two bytes in UTF8)
ASCII_TBL = bytes(0x21 + b % 94 for b in range(256))
LATIN_CHARS = list(range(0x20, 0x7f)) + list(range(0xa0, 0x100))
LATIN_TBL = bytes(LATIN_CHARS[b % len(LATIN_CHARS)] for b in range(256))


def note(msg):
    print("# [%5.1f s] %s" % (time.time() - T0, msg), flush=True)


def ascii_payload(n):
    return os.urandom(n).translate(ASCII_TBL)


def latin_payload(nchars):
    """UTF8 bytes of nchars random Latin-1 characters."""
    return os.urandom(nchars).translate(LATIN_TBL).decode("latin-1").encode("utf-8")


def size(n):
    return "%.1f MB" % (n / MB) if n >= MB else "%d B" % n


# ------------------------------------------------------------ the notifier
SEND_SQL = ("SELECT octet_length(p), md5(p), octet_length(convert_to(p, 'LATIN1')), "
            "md5(convert_to(p, 'LATIN1')) "
            "FROM (SELECT convert_from(%b, 'UTF8') AS p) s, ext_notify(%s, s.p) n")


def send(notifier, channel, payload):
    """ext_notify(channel, payload) (payload: UTF8 bytes); returns what the
    server computed of it: {enc: (bytes, md5)} for UTF8 and LATIN1."""
    r = notifier.execute(SEND_SQL, (payload, channel)).fetchone()
    return {"UTF8": (r[0], r[1]), "LATIN1": (r[2], r[3])}


# ------------------------------------------------------------ listeners
class CListener:
    """helpers/large_recv.c in a subprocess."""

    def __init__(self, binary, channels, encoding=None):
        args = [binary]
        for c in channels:
            args += ["-c", c]
        if encoding:
            args += ["-e", encoding]
        self.p = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True,
                                  env=dict(os.environ, PGHOST=PGHOST, PGPORT=str(PGPORT),
                                           PGUSER=PGUSER, PGDATABASE=DB))
        self.fd = self.p.stdout.fileno()
        self.buf = ""
        line = self.readline(20)
        m = re.match(r"ready (\d+) (\S+)", line or "")
        if not m:
            raise RuntimeError("large_recv did not start: %r %r" % (line, self.p.stderr.read()[-500:]))
        self.pid = int(m.group(1))
        self.encoding = m.group(2)
        self.name = "libpq %s" % self.encoding

    def readline(self, timeout):
        """The next line of its output (unbuffered reads: select() must not
        miss lines a buffered reader holds), or None after timeout."""
        deadline = time.time() + timeout
        while "\n" not in self.buf:
            r, _, _ = select.select([self.fd], [], [], max(0.0, deadline - time.time()))
            if not r:
                return None
            d = os.read(self.fd, 65536)
            if not d:
                return None
            self.buf += d.decode("utf-8", "replace")
        line, self.buf = self.buf.split("\n", 1)
        return line

    def collect(self, n, deadline):
        """Up to n notifications: [(channel, pid, bytes, md5)]."""
        got = []
        while len(got) < n and time.time() < deadline:
            line = self.readline(max(0.0, deadline - time.time()))
            if not line:
                break
            f = line.split()
            if f[0] == "notify":
                got.append((f[1], int(f[2]), int(f[3]), f[4]))
            elif f[0] == "lost":
                break
        return got

    def query(self, sql):
        """Run sql on the listening connection: its "result ..." line."""
        self.p.stdin.write("sql %s\n" % sql)
        self.p.stdin.flush()
        deadline = time.time() + 10
        while time.time() < deadline:
            line = self.readline(max(0.0, deadline - time.time()))
            if line is None or line.startswith(("result", "lost")):
                return line
        return None

    def close(self):
        if self.p.poll() is None:
            try:
                self.p.stdin.write("quit\n")
                self.p.stdin.flush()
                self.p.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                self.p.kill()
                self.p.wait()


class PyListener:
    """A psycopg connection that listens and waits idle on its socket."""

    def __init__(self, channels, encoding=None):
        kw = {"client_encoding": encoding} if encoding else {}
        self.c = conn(**kw)
        for ch in channels:
            self.c.execute("SELECT ext_listen(%s)", (ch,))
        self.pid = self.c.info.backend_pid
        self.encoding = self.c.execute("SHOW client_encoding").fetchone()[0]
        self.name = "psycopg %s" % self.encoding
        self.pyenc = "latin-1" if self.encoding == "LATIN1" else "utf-8"

    def collect(self, n, deadline):
        got = []
        pg = self.c.pgconn
        while len(got) < n and time.time() < deadline:
            select.select([self.c.fileno()], [], [], max(0.0, min(1.0, deadline - time.time())))
            pg.consume_input()
            while True:
                x = pg.notifies()
                if x is None:
                    break
                got.append((x.relname.decode(self.pyenc), x.be_pid, len(x.extra),
                            hashlib.md5(x.extra).hexdigest()))
        return got

    def query(self, sql):
        try:
            return "result %s" % (self.c.execute(sql).fetchone()[0],)
        except Exception as e:  # noqa: BLE001
            return "error %r" % e

    def close(self):
        self.c.close()


def status_kb(pid, field):
    """A field of /proc/<pid>/status in kB, or None."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


# ------------------------------------------------------------ helpers
def build_recv(tmp):
    pgc = os.environ.get("PG_CONFIG") or shutil.which("pg_config") or \
        "/usr/lib/postgresql/15/bin/pg_config"
    try:
        inc = subprocess.check_output([pgc, "--includedir"], text=True).strip()
        lib = subprocess.check_output([pgc, "--libdir"], text=True).strip()
        out = os.path.join(tmp, "large_recv")
        r = subprocess.run([os.environ.get("CC", "cc"), "-std=gnu11", "-O2", "-Wall", "-Wextra",
                            "-Werror", "-I" + inc, "-o", out,
                            os.path.join(HERE, "helpers", "large_recv.c"), "-L" + lib,
                            "-lpq", "-lcrypto"], capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError) as e:
        check("helpers/large_recv.c compiles", False, repr(e))
        return None
    check("helpers/large_recv.c compiles (libpq, libcrypto)", r.returncode == 0, r.stderr[-2000:])
    return out if r.returncode == 0 else None


def server_log(admin, pid):
    """Path of the server log: pg_current_logfile(), else the backend's stderr."""
    f = admin.execute("SELECT pg_current_logfile()").fetchone()[0]
    if f:
        if not f.startswith("/"):
            f = os.path.join(admin.execute("SHOW data_directory").fetchone()[0], f)
        return f
    try:
        f = os.readlink("/proc/%d/fd/2" % pid)
        return f if f.startswith("/") and os.path.isfile(f) else None
    except OSError:
        return None


def log_size(path):
    try:
        return os.path.getsize(path)
    except (OSError, TypeError):
        return 0


def log_since(path, offset):
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")
    except (OSError, TypeError):
        return ""


def prlimit_as(pid, soft):
    """Set the soft RLIMIT_AS of pid (bytes, or 'unlimited'); its hard limit
    stays.  Root without CAP_SYS_RESOURCE (a container) may not change
    another user's process: then as the process's owner (runuser), who may
    move its soft limit anywhere up to the hard one."""
    hard = subprocess.run(["prlimit", "--pid", str(pid), "--as", "--raw", "--noheadings",
                           "-o", "HARD"], capture_output=True, text=True).stdout.strip()
    cmd = ["prlimit", "--pid", str(pid), "--as=%s:%s" % (soft, hard or "unlimited")]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0 and os.geteuid() == 0:
        try:
            import pwd
            owner = pwd.getpwuid(os.stat("/proc/%d" % pid).st_uid).pw_name
            r = subprocess.run(["runuser", "-u", owner, "--"] + cmd, capture_output=True,
                               text=True, cwd="/")
        except (OSError, KeyError) as e:
            return False, repr(e)
    return r.returncode == 0, r.stderr.strip()


class RawListener(Raw):
    """_pg.Raw with a deadline on reads and the messages it saw."""

    def __init__(self, channels, options=None, encoding="UTF8"):
        super().__init__(options=options)
        self.encoding = encoding
        self.s.settimeout(20)
        for ch in channels:
            seq, _ = self.query("SELECT ext_listen('%s')" % ch)
            if "E" in seq:
                raise RuntimeError("ext_listen failed")

    def read(self):
        """Raw.read with a bytearray (a 64MB message must not be built by
        concatenating 64kB pieces)."""
        if not isinstance(self.buf, bytearray):
            self.buf = bytearray(self.buf)
        while len(self.buf) < 5 or len(self.buf) < 1 + struct.unpack("!i", self.buf[1:5])[0]:
            d = self.s.recv(1 << 20)
            if not d:
                raise EOFError
            self.buf += d
        n = struct.unpack("!i", self.buf[1:5])[0]
        t, payload = chr(self.buf[0]), bytes(self.buf[5:1 + n])
        del self.buf[:1 + n]
        return t, payload

    def messages(self, until, timeout, cap=1000):
        """(type, payload) of what arrives until until(type, payload), timeout
        or cap messages."""
        out = []
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.s.settimeout(max(0.01, deadline - time.time()))
            try:
                t, p = self.read()
            except (socket.timeout, EOFError, OSError) as e:
                out.append(("!", repr(e).encode()))
                break
            out.append((t, p))
            if until(t, p) or len(out) >= cap:
                break
        return out


def parse_notify(p):
    pid = struct.unpack("!i", p[:4])[0]
    ch, rest = p[4:].split(b"\0", 1)
    return pid, ch.decode(), rest[:-1] if rest.endswith(b"\0") else rest


def parse_notice(p):
    fields = {}
    for part in p.split(b"\0"):
        if part:
            fields[chr(part[0])] = part[1:].decode("utf-8", "replace")
    return fields


def describe(msgs, limit=12):
    """The messages, shortly; at most limit of them, then how many more."""
    out = []
    if len(msgs) > limit:
        counts = {}
        for m in msgs:
            d = describe([m])
            counts[d] = counts.get(d, 0) + 1
        return describe(msgs[:limit], limit) + ", ... (%d messages in all: %s; the last: %s)" \
            % (len(msgs), "; ".join("%d x %s" % (n, d) for d, n in counts.items()),
               describe(msgs[-2:], limit))
    for t, p in msgs:
        if t == "A":
            pid, ch, pl = parse_notify(p)
            out.append("A(%s, pid %d, %s)" % (ch, pid, size(len(pl)) if len(pl) > 100 else pl[:100]))
        elif t in "NE":
            f = parse_notice(p)
            out.append("%s(%s %s)" % (t, f.get("C"), f.get("M")))
        else:
            out.append(t)
    return ", ".join(out)


# ------------------------------------------------------------ part a, b
def part_delivery(notifier, recv):
    listeners = []
    try:
        if recv:
            listeners.append(CListener(recv, [CHAN]))
            listeners.append(CListener(recv, [CHAN], "LATIN1"))
        listeners.append(PyListener([CHAN]))
        listeners.append(PyListener([CHAN], "LATIN1"))
        check("listeners have client encodings UTF8 and LATIN1 (database: UTF8)",
              sorted(set(l.encoding for l in listeners)) == ["LATIN1", "UTF8"]
              and notifier.execute("SELECT pg_encoding_to_char(encoding) FROM pg_database "
                                   "WHERE datname = current_database()").fetchone()[0] == "UTF8",
              repr([(l.name, l.encoding) for l in listeners]))

        # a warm-up notification, then the baselines
        send(notifier, CHAN, b"warm-up")
        for l in listeners:
            got = l.collect(1, time.time() + 10)
            if len(got) != 1:
                check("%s: the warm-up notification arrives" % l.name, False, repr(got))
        base = {l.pid: status_kb(l.pid, "RssAnon") for l in listeners}
        note("listener backends' RssAnon before (kB): %s"
             % ", ".join("%s %s" % (l.name, base[l.pid]) for l in listeners))

        npid = notifier.info.backend_pid
        sent = []       # (name, {enc: (bytes, md5)})
        t = time.time()
        for name, pl in (("1MB ASCII", ascii_payload(MB)),
                         ("64MB ASCII", ascii_payload(64 * MB))):
            sent.append((name, send(notifier, CHAN, pl)))
        note("sent 1MB and 64MB autocommit in %.1f s" % (time.time() - t))
        t = time.time()
        notifier.execute("BEGIN")
        for name, pl in (("small 1", b"small 1"),
                         ("1MB non-ASCII", latin_payload(700 * 1024)),
                         ("small 2", "small 2 \u00e9\u00e8\u00e0\u00fc\u00df".encode()),
                         ("64MB non-ASCII", latin_payload(44 * MB)),
                         ("small 3", b"small 3"),
                         ("1MB ASCII (2)", ascii_payload(MB)),
                         ("small 4", b"small 4")):
            sent.append((name, send(notifier, CHAN, pl)))
        notifier.execute("COMMIT")
        note("sent a transaction of 7 (%s) in %.1f s"
             % (", ".join(size(s["UTF8"][0]) for _, s in sent[2:]), time.time() - t))
        check("the notifier sent a 64MB payload (%d bytes) and a ~64MB non-ASCII one (%d bytes)"
              % (sent[1][1]["UTF8"][0], sent[5][1]["UTF8"][0]),
              sent[1][1]["UTF8"][0] == 64 * MB and sent[5][1]["UTF8"][0] > 60 * MB
              and sent[5][1]["LATIN1"][0] < sent[5][1]["UTF8"][0])

        deadline = time.time() + DEADLINE
        peak = {}
        for l in listeners:
            t = time.time()
            got = l.collect(len(sent), max(deadline, t + 5))
            note("%s: %d notifications in %.1f s" % (l.name, len(got), time.time() - t))
            peak[l.pid] = status_kb(l.pid, "VmHWM")
            want = [(CHAN, npid) + s[l.encoding] for _, s in sent]
            check("%s: %d notifications arrive, in order (%d)" % (l.name, len(want), len(got)),
                  [g[:2] for g in got] == [w[:2] for w in want] and len(got) == len(want),
                  repr([g[:3] for g in got]))
            for i, (name, s) in enumerate(sent):
                if s["UTF8"][0] < 100000:
                    continue
                g = got[i] if i < len(got) else None
                check("%s: #%d %s (%s in %s) intact: length and md5 as the server computed"
                      % (l.name, i + 1, name, size(s[l.encoding][0]), l.encoding),
                      g is not None and g[2:] == s[l.encoding],
                      "got %r, want %r" % (g, s[l.encoding]))
            smalls = [g for g, (_, s) in zip(got, sent) if s["UTF8"][0] < 100000]
            check("%s: the small ones intact too" % l.name,
                  len(smalls) == 4 and all(g[2:] == s[l.encoding]
                                           for g, (_, s) in zip(got, sent) if s["UTF8"][0] < 100000),
                  repr(smalls))
            r = l.query("SELECT 6 * 7")
            check("%s: its connection still answers a query (%s)" % (l.name, r),
                  r is not None and r.split()[-1] == "42")
        # part b: memory returned
        time.sleep(0.5)
        for l in listeners:
            after = status_kb(l.pid, "RssAnon")
            b = base[l.pid]
            check("%s: backend RssAnon back near its baseline after the 64MB payloads "
                  "(before %s kB, after %s kB; VmHWM %s kB; slack %d kB)"
                  % (l.name, b, after, peak.get(l.pid), RSS_SLACK // 1024),
                  b is not None and after is not None and after - b <= RSS_SLACK // 1024)
    finally:
        for l in listeners:
            l.close()


# ------------------------------------------------------------ part c, d
def part_oom(notifier, admin):
    a = RawListener([OOM_CHAN, GAP])
    b = RawListener([OOM_CHAN, GAP], options="-c client_encoding=LATIN1", encoding="LATIN1")
    limited = []
    try:
        vm_a, vm_b = status_kb(a.pid, "VmSize"), status_kb(b.pid, "VmSize")
        # a: room for 24MB more, not 64MB; b: room for the 64MB buffer and
        # ~100MB more, not for the 256MB the conversion to LATIN1 asks for
        lim_a = (vm_a + 24 * 1024) * 1024
        lim_b = (vm_b + 64 * 1024 + 100 * 1024) * 1024
        ok_a, err_a = prlimit_as(a.pid, lim_a)
        ok_b, err_b = prlimit_as(b.pid, lim_b)
        limited = [a.pid, b.pid]
        check("prlimit --as on the listeners' backends (VmSize %d kB -> limit %d kB; "
              "%d kB -> %d kB)" % (vm_a, lim_a // 1024, vm_b, lim_b // 1024),
              ok_a and ok_b, err_a + err_b)
        log = server_log(admin, a.pid)
        off = log_size(log)
        note("server log: %s (from offset %d)" % (log, off))
        npid = notifier.info.backend_pid

        big = send(notifier, OOM_CHAN, ascii_payload(64 * MB))
        send(notifier, OOM_CHAN, b"after the big one")

        def small_or_loop(t, p, seen=[0]):
            # stop at the small one, or when the gap signal repeats (a drain
            # that retries the allocation forever floods client and log)
            if t == "N" and parse_notice(p).get("C") == "01N01":
                seen[0] += 1
            return (t == "A" and parse_notify(p)[2] == b"after the big one") or seen[0] >= 3

        got_msgs = []
        for r in (a, b):
            got_msgs.append(r.messages(lambda t, p, seen=[0]: small_or_loop(t, p, seen), 20))
        # lift the limits at once (a drain stuck retrying stops spinning)
        for r in (a, b):
            ok, err = prlimit_as(r.pid, "unlimited")
            check("prlimit lifted on backend %d" % r.pid, ok, err)
        limited = []

        for (who, r), msgs in zip((("UTF8 listener, no room for the 64MB buffer", a),
                                   ("LATIN1 listener, no room for the conversion", b)), got_msgs):
            note("%s got: %s" % (who, describe(msgs)))
            kinds = []
            for t, p in msgs:
                if t == "N" and parse_notice(p).get("C") == "01N01":
                    kinds.append("warning")
                elif t == "A":
                    pid, ch, pl = parse_notify(p)
                    if ch == GAP:
                        kinds.append("gap")
                    elif ch == OOM_CHAN and pl == b"after the big one":
                        kinds.append("small")
                    elif ch == OOM_CHAN:
                        intact = (len(pl), hashlib.md5(pl).hexdigest()) == big[r.encoding]
                        kinds.append("big %s" % ("intact" if intact else "%d bytes, damaged" % len(pl)))
                elif t == "!":
                    kinds.append("error")
            warn = [parse_notice(p) for t, p in msgs
                    if t == "N" and parse_notice(p).get("C") == "01N01"]
            gaps = [parse_notify(p) for t, p in msgs if t == "A" and parse_notify(p)[1] == GAP]
            if r is a:
                check("%s: told once it missed the 64MB notification (WARNING 01N01, then the "
                      "notify_ext.gap notification), then the small one: %s" % (who, kinds),
                      kinds == ["warning", "gap", "small"], describe(msgs))
            else:
                # never lost silently: told, or (a conversion that needs less
                # memory) delivered intact
                check("%s: the 64MB notification is not lost silently: told once it missed it "
                      "(WARNING 01N01, then notify_ext.gap) or given it intact, then the small "
                      "one: %s" % (who, kinds),
                      kinds in (["warning", "gap", "small"], ["big intact", "small"]),
                      describe(msgs))
            if not warn and not gaps:
                continue
            check("%s: the WARNING says 1 notification was not delivered because the server "
                  "was out of memory" % who,
                  len(warn) >= 1 and warn[0].get("S") == "WARNING"
                  and "1 notifications were not delivered" in warn[0].get("M", "")
                  and "out of memory" in warn[0].get("M", ""), repr(warn[:1]))
            try:
                j = json.loads(gaps[0][2]) if gaps else None
            except ValueError:
                j = None
            check("%s: the gap notification: sender PID 0, JSON with reason \"out of memory\", "
                  "missed 1, channels {\"%s\": 1}" % (who, OOM_CHAN),
                  j is not None and gaps[0][0] == 0 and j.get("reason") == "out of memory"
                  and j.get("missed") == 1 and j.get("channels") == {OOM_CHAN: 1},
                  repr(gaps[:1]))

        text = log_since(log, off)
        m = re.findall(r'notify_ext: out of memory for a notification of (\d+) bytes '
                       r'on channel "%s"' % OOM_CHAN, text)
        check("the server log says: notify_ext: out of memory for a notification of N bytes "
              "on channel \"%s\" (N = %s), once per listener that missed it (%d lines)"
              % (OOM_CHAN, m[0] if m else None, len(m)),
              1 <= len(m) <= 2 and all(int(x) > 64 * MB for x in m),
              "log %s: %r" % (log, text[-1500:]))
        note("log lines since: %r" % [line[:200] for line in text.splitlines()
                                      if "notify_ext" in line][:4])

        # the limits lifted: the sessions go on, and what they were told
        # they missed does not come after all
        one_mb = send(notifier, OOM_CHAN, latin_payload(700 * 1024))
        for who, r, enc in (("UTF8 listener", a, "UTF8"), ("LATIN1 listener", b, "LATIN1")):
            msgs = r.messages(lambda t, p: t == "A" and parse_notify(p)[1] == OOM_CHAN
                              and len(parse_notify(p)[2]) == one_mb[enc][0], 10, 20000)
            got = [parse_notify(p) for t, p in msgs if t == "A"]
            last = got[-1] if got else None
            check("%s: afterwards a 1MB payload arrives intact (%s)" % (who, enc),
                  last is not None and last[:2] == (npid, OOM_CHAN)
                  and (len(last[2]), hashlib.md5(last[2]).hexdigest()) == one_mb[enc],
                  describe(msgs))
            check("%s: and nothing before it (no late copy of the missed one, no further "
                  "gap signal)" % who, len(msgs) == 1, describe(msgs))
            seq, _ = r.query("SELECT 1")
            check("%s: its connection still answers a query" % who,
                  "D" in seq and "E" not in seq, repr(seq))
    finally:
        for pid in limited:
            prlimit_as(pid, "unlimited")
        for r in (a, b):
            try:
                r.s.close()
            except OSError:
                pass


def main():
    tmp = tempfile.mkdtemp(prefix="ne_large_")
    admin = conn()
    notifier = conn()
    try:
        notifier.execute("SET notify_ext.max_payload_size = '128MB'")
        check("the notifier (superuser) sets notify_ext.max_payload_size = 128MB",
              notifier.execute("SHOW notify_ext.max_payload_size").fetchone()[0] == "128MB")
        recv = build_recv(tmp)
        part_delivery(notifier, recv)
        part_oom(notifier, admin)
    finally:
        notifier.close()
        admin.close()
        shutil.rmtree(tmp, ignore_errors=True)
    note("done")
    finish("large payload")


if __name__ == "__main__":
    main()
