"""notify_ext.queue_disk_limit for the client tests (the harness skips
files starting with an underscore).  Since issue 8 the queue spills to
disk beyond the ring: tests of what a full ring does run with
notify_ext.queue_disk_limit = 0 (the ring only, the old behaviour), set
with ALTER SYSTEM + pg_reload_conf() and always reset."""
import contextlib
import time

from _pg import conn


def set_disk_limit(value, timeout=10.0):
    """ALTER SYSTEM SET notify_ext.queue_disk_limit = value ('0', '4MB',
    ...; None: RESET to the default, 8GB), reload, and wait until a new
    session shows it.  True once it does."""
    c = conn()
    try:
        if value is None:
            c.execute("ALTER SYSTEM RESET notify_ext.queue_disk_limit")
        else:
            c.execute("ALTER SYSTEM SET notify_ext.queue_disk_limit = '%s'" % value)
        c.execute("SELECT pg_reload_conf()")
    finally:
        c.close()
    want = "8GB" if value is None else value
    deadline = time.time() + timeout
    while True:
        c = conn()
        try:
            if c.execute("SHOW notify_ext.queue_disk_limit").fetchone()[0] == want:
                return True
        finally:
            c.close()
        if time.time() > deadline:
            return False
        time.sleep(0.1)


@contextlib.contextmanager
def disk_limit(value):
    """with disk_limit('0') as ok: ... -- reset to the default afterwards."""
    ok = set_disk_limit(value)
    try:
        yield ok
    finally:
        set_disk_limit(None)
