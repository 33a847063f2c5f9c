#!/usr/bin/python3
"""Judge the valgrind memcheck logs of test/valgrind/run.sh; TAP lines.

usage: check_logs.py VGDIR SO [PID...]

VGDIR holds one log per process (vg.<pid>.log, valgrind --log-file=...%p),
SO is the notify_ext.so the server loaded, PIDs are backends the workload
used (each must have a log: they really ran under valgrind).

A report is a paragraph of a log (between "==pid== " blank lines) with at
least one stack frame.  It is notify_ext's when any of its frames (the
error's stack, and the allocation or free stacks it quotes) is in SO:
"(in .../notify_ext.so)", or a function that SO defines (nm) with a source
location rather than another object.  Memory errors of notify_ext fail,
and so do definite leaks allocated through it.  Everything else is
PostgreSQL's or libc's business (Debian's server is not built for valgrind,
so it has some): counted and summarised, not failed.
"""
import collections
import glob
import os
import re
import subprocess
import sys

vgdir, so = sys.argv[1], sys.argv[2]
want_pids = [int(p) for p in sys.argv[3:]]

failures = 0
ntests = 0


def tap(ok, desc, diag=()):
    global failures, ntests
    ntests += 1
    print("%s - %s" % ("ok" if ok else "not ok", desc))
    if not ok:
        failures += 1
    for line in diag:
        print("# " + line)


# functions notify_ext.so defines (static ones too: PGXS does not strip)
try:
    out = subprocess.run(["nm", "--defined-only", so], capture_output=True,
                         text=True, check=True).stdout
    our_funcs = {f[2] for f in (l.split() for l in out.splitlines())
                 if len(f) == 3 and f[1] in "tTwW"}
except (OSError, subprocess.CalledProcessError) as e:
    print("# nm %s failed (%s): matching on the object name only" % (so, e))
    our_funcs = set()
so_base = os.path.basename(so)

FRAME = re.compile(r"^\s+(?:at|by) 0x[0-9A-Fa-f]+: (\S+) \((.*)\)\s*$")
NOT_REPORTS = ("Memcheck, a memory error detector", "Copyright (C)", "Using Valgrind",
               "Command:", "Parent PID:", "HEAP SUMMARY:", "LEAK SUMMARY:",
               "ERROR SUMMARY:", "Reachable blocks", "To see them", "For lists of",
               "For counts of", "Use --track-origins", "All heap blocks were freed",
               "Rerun with", "Warning:", "More than")


def is_ours(frame_fn, where):
    if where.startswith("in "):             # no debug info: "(in /path/object)"
        return os.path.basename(where[3:]) == so_base
    return frame_fn in our_funcs             # "(file.c:123)": a source location


def kind_of(first):
    """A short name for a report's first line (for the summary of others)."""
    k = re.sub(r"0x[0-9A-Fa-f]+", "ADDR", first)
    k = re.sub(r"[0-9][0-9,]* (\(.*?\) )?bytes in [0-9,]+ blocks", "N bytes in M blocks", k)
    k = re.sub(r" in loss record [0-9,]+ of [0-9,]+", "", k)
    return k


logs = sorted(glob.glob(os.path.join(vgdir, "vg.*.log")))
ours = []                                   # (log, lines)
others = collections.Counter()
incomplete = []
pids = set()
for log in logs:
    m = re.search(r"vg\.(\d+)\.log$", log)
    pid = int(m.group(1)) if m else -1
    pids.add(pid)
    with open(log, errors="replace") as f:
        text = f.read()
    if "ERROR SUMMARY:" not in text:
        incomplete.append(os.path.basename(log))
    para = []
    for raw in text.splitlines() + ["==0== "]:
        mm = re.match(r"^==\d+== ?(.*)$", raw)
        line = mm.group(1) if mm else raw
        if line.strip():
            para.append(line)
            continue
        if para:
            first = para[0].strip()
            frames = [FRAME.match(l) for l in para]
            frames = [fr for fr in frames if fr]
            if frames and not first.startswith(NOT_REPORTS):
                if "indirectly lost" in first or "possibly lost" in first \
                        or "still reachable" in first:
                    pass                    # only definite leaks are reported
                elif any(is_ours(fr.group(1), fr.group(2)) for fr in frames):
                    ours.append((os.path.basename(log), para))
                else:
                    others[kind_of(first)] += 1
        para = []

tap(len(logs) >= 2 and not incomplete,
    "valgrind logs of %d processes, each complete (an ERROR SUMMARY line)" % len(logs),
    ["no ERROR SUMMARY (process killed?): " + ", ".join(incomplete)] if incomplete else
    ["no valgrind logs in " + vgdir] if len(logs) < 2 else [])
missing = [p for p in want_pids if p not in pids]
tap(want_pids and not missing,
    "the workload's %d backends ran under valgrind" % len(want_pids),
    ["no valgrind log for backend PID %s" % ", ".join(map(str, missing))] if missing else
    ["the workload reported no backend PIDs"] if not want_pids else [])

errs = [(log, p) for log, p in ours if " lost " not in p[0]]
leaks = [(log, p) for log, p in ours if " lost " in p[0]]
nothers = sum(others.values())
diag = []
for log, p in errs[:20]:
    diag.append("--- %s" % log)
    diag.extend(p[:40])
tap(not errs, "valgrind: no memory error in notify_ext.so (%d reports) "
    "[%d reports not involving notify_ext.so ignored]" % (len(errs), nothers), diag)
diag = []
for log, p in leaks[:20]:
    diag.append("--- %s" % log)
    diag.extend(p[:40])
tap(not leaks, "valgrind: no definite leak in notify_ext.so (%d reports)" % len(leaks), diag)

if others:
    print("# ignored (no frame in %s), by kind:" % so_base)
    for k, n in others.most_common(15):
        print("#   %4d  %s" % (n, k))
print("valgrind logs: %d processes, %d notify_ext reports, %d other reports"
      % (len(logs), len(ours), nothers))
sys.exit(1 if failures else 0)
