#!/usr/bin/env bash
#
# scripts/demo.sh: the main job.  Installs what is missing, builds and
# installs notify_ext, starts a local PostgreSQL 15 whose cluster lives in
# ./pgdata of this checkout (data in pgdata/data, socket in pgdata, log in
# pgdata/log) with notify_ext preloaded, creates the extension in database
# postgres and shows it working: the LISTEN/NOTIFY example of the
# PostgreSQL documentation in psql, then an idle listener that receives
# from another session without sending a query.  The cluster keeps running.
#
#   scripts/demo.sh          set up (if needed), (re)start, demonstrate
#   scripts/demo.sh stop     stop the cluster
#   DEMO_PORT=5500 scripts/demo.sh   another port (default 5499)
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$NE_ROOT"

DIR=$NE_ROOT/pgdata
PORT=${DEMO_PORT:-5499}

case ${1:-} in
stop)
	if [ -f "$DIR/data/postmaster.pid" ]; then
		ne_stop_cluster "$DIR"
		echo "stopped the notify_ext demo cluster in $DIR"
	else
		echo "the notify_ext demo cluster in $DIR is not running"
	fi
	exit 0
	;;
"") ;;
*)
	echo "usage: scripts/demo.sh [stop]" >&2
	exit 2
	;;
esac

ne_say "dependencies"
# shellcheck disable=SC2119 # no extra packages
ne_install_deps

ne_say "build and install notify_ext"
ne_build_install

# The server runs as the postgres user when we are root: it must be able to
# reach ./pgdata through every parent directory of the checkout.
if ne_is_root; then
	mkdir -p "$DIR"
	chown postgres:postgres "$DIR"
	# each directory from / down to the checkout, outermost first
	p=""
	IFS=/ read -r -a parts <<<"${NE_ROOT#/}"
	for part in "${parts[@]}"; do
		p=$p/$part
		if ! runuser -u postgres -- test -x "$p"; then
			echo "note: the postgres user cannot enter $p: adding o+x (search only) so that it reaches $DIR"
			chmod o+x "$p"
		fi
	done
fi

# (re)start, so that a freshly installed notify_ext.so is the one loaded
ne_stop_cluster "$DIR"
ne_say "PostgreSQL 15 with notify_ext preloaded, cluster in $DIR, port $PORT"
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
