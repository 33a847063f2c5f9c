#!/usr/bin/env bash
#
# scripts/demo.sh: the main job.  Installs what is missing, builds and
# installs notify_ext, starts a local PostgreSQL 15 cluster of its own (data
# in DIR/data, socket in DIR, log in DIR/log; DIR: see below) with
# notify_ext preloaded, creates the extension in database
# postgres and shows it working: the LISTEN/NOTIFY example of the
# PostgreSQL documentation in psql, then an idle listener that receives
# from another session without sending a query.  The cluster keeps running.
#
#   scripts/demo.sh          set up (if needed), (re)start, demonstrate
#   scripts/demo.sh stop     stop the cluster
#   DEMO_PORT=5500 scripts/demo.sh   another port (default 5499)
#
# DIR: as root, /var/lib/postgresql/notify_ext-demo.  The server must run as
# the postgres user then, and that is its home directory (Debian keeps its
# own clusters there too), which it owns and reaches: wherever the checkout
# is (/root included), no directory's owner or mode is changed.  As another
# user, the server runs as that user, in ./pgdata of this checkout.
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$NE_ROOT"

if ne_is_root; then
	DIR=/var/lib/postgresql/notify_ext-demo
else
	DIR=$NE_ROOT/pgdata
fi
# where scripts/demo.sh kept its cluster before, as root too: stop stops it
OLD_DIR=$NE_ROOT/pgdata
PORT=${DEMO_PORT:-5499}

case ${1:-} in
stop)
	if [ -f "$DIR/data/postmaster.pid" ]; then
		ne_stop_cluster "$DIR"
		echo "stopped the notify_ext demo cluster in $DIR (its files stay there: rm -rf $DIR removes them)"
	else
		echo "the notify_ext demo cluster in $DIR is not running"
	fi
	if [ "$OLD_DIR" != "$DIR" ] && [ -f "$OLD_DIR/data/postmaster.pid" ]; then
		ne_stop_cluster "$OLD_DIR"
		echo "stopped the demo cluster an earlier scripts/demo.sh left in $OLD_DIR"
	fi
	exit 0
	;;
"") ;;
*)
	echo "usage: scripts/demo.sh [stop]" >&2
	exit 2
	;;
esac

ne_log "scripts/demo.sh: about 15 s once the packages are installed (installing them first: a few minutes)"
ne_say "dependencies"
# shellcheck disable=SC2119 # no extra packages
ne_install_deps

ne_say "build and install notify_ext"
ne_build_install

if [ "$OLD_DIR" != "$DIR" ] && [ -f "$OLD_DIR/data/postmaster.pid" ]; then
	ne_warn "an earlier scripts/demo.sh left a demo cluster running in $OLD_DIR: 'scripts/demo.sh stop' stops it too"
fi

# (re)start, so that a freshly installed notify_ext.so is the one loaded
ne_stop_cluster "$DIR"
if ne_is_root; then
	ne_say "PostgreSQL 15 with notify_ext preloaded, port $PORT, cluster in $DIR (the postgres user's home: the server runs as postgres)"
else
	ne_say "PostgreSQL 15 with notify_ext preloaded, port $PORT, cluster in $DIR"
fi
ne_start_cluster "$DIR" "$PORT"
psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "SET client_min_messages = warning" \
	-c "CREATE EXTENSION IF NOT EXISTS notify_ext"
psql -X -d postgres -c "SELECT name, setting, unit FROM pg_settings WHERE name LIKE 'notify_ext.%' ORDER BY 1"

ne_say "psql: the example of the PostgreSQL documentation (NOTIFY), with ext_listen / ext_notify"
psql -X -e -v ON_ERROR_STOP=1 -d postgres <<'SQL'
SELECT ext_listen('virtual');
SELECT ext_notify('virtual');
SELECT ext_notify('virtual', 'This is the payload');
BEGIN;
SELECT ext_notify('virtual', 'sent in a transaction: delivered at COMMIT');
SELECT ext_notify('virtual', 'sent in a transaction: delivered at COMMIT');
COMMIT;
SELECT * FROM ext_listening_channels();
SELECT ext_unlisten_all();
SQL

ne_say "an idle listener: another session notifies, the listener sends no query and still receives at once"
"$NE_PYTHON" - <<'PY'
import select
import subprocess
import time

import psycopg  # connection from PGHOST/PGPORT/PGUSER/PGDATABASE

listener = psycopg.connect(autocommit=True)
listener.execute("SELECT ext_listen('orders')")
print("listener: PID %d, listening on 'orders', now idle" % listener.info.backend_pid)
for i in (1, 2, 3):
    sql = "SELECT ext_notify('orders', 'order %d paid')" % i
    t0 = time.perf_counter()
    subprocess.run(["psql", "-X", "-q", "-d", "postgres", "-c", sql],
                   check=True, stdout=subprocess.DEVNULL)
    print("psql (another session): %s" % sql)
    n = None
    deadline = time.perf_counter() + 2.0
    while n is None and time.perf_counter() < deadline:
        select.select([listener.fileno()], [], [], max(0.0, deadline - time.perf_counter()))
        listener.pgconn.consume_input()
        n = listener.pgconn.notifies()
    if n is None:
        raise SystemExit("listener: nothing received within 2 s")
    print('listener: received "%s" on channel "%s" from PID %d, %.1f ms after psql started'
          % (n.extra.decode(), n.relname.decode(), n.be_pid, (time.perf_counter() - t0) * 1000))
listener.close()
PY

ne_say "drop-in mode: plain LISTEN / NOTIFY / pg_notify() served by notify_ext"
psql -X -e -v ON_ERROR_STOP=1 -d postgres <<'SQL'
SET notify_ext.intercept = on;
LISTEN virtual;
NOTIFY virtual, 'sent with plain NOTIFY';
SELECT pg_notify('virtual', 'sent with pg_notify()');
UNLISTEN *;
SQL

cat <<EOF

The notify_ext demo cluster is running (data in $DIR/data, log in $DIR/log).
Connect with:
    psql -h $DIR -p $PORT -U postgres
Stop it with:
    scripts/demo.sh stop
EOF
