#!/usr/bin/env bash
# The main job: a local PostgreSQL 15 with notify_ext preloaded, its data in
# ./pgdata of this checkout, and a short demonstration like the one in the
# PostgreSQL documentation.  The cluster keeps running afterwards.
#   scripts/demo.sh         set up (if needed), start, demonstrate
#   scripts/demo.sh stop    stop the cluster
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$NE_ROOT"
dir=$NE_ROOT/pgdata
port=${PORT:-5499}

if [ "${1:-}" = stop ]; then
	ne_stop_cluster "$dir"
	echo "stopped the cluster in $dir"
	exit 0
fi

ne_install_deps
ne_build_install

# the postgres user must be able to reach ./pgdata
if [ "$(id -u)" = 0 ]; then
	p=$NE_ROOT
	while [ "$p" != / ]; do
		if ! runuser -u postgres -- test -x "$p"; then
			echo "note: making $p traversable (o+x) so that the postgres user can reach $dir"
			chmod o+x "$p"
		fi
		p=$(dirname "$p")
	done
fi

ne_say "starting PostgreSQL with notify_ext preloaded in $dir (port $port)"
if [ -f "$dir/data/postmaster.pid" ] && ne_pguser "$NE_PGBIN/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
	ne_pguser "$NE_PGBIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
fi
ne_start_cluster "$dir" "$port" "shared_preload_libraries = 'notify_ext'"
psql -X -q -c "CREATE EXTENSION IF NOT EXISTS notify_ext"

ne_say "psql, as in the PostgreSQL documentation for NOTIFY"
cat <<'SQL' | psql -X -e
SELECT ext_listen('virtual');
SELECT ext_notify('virtual');
SELECT ext_notify('virtual', 'This is the payload');
SELECT ext_listen('foo');
SELECT ext_notify('virtual', 'This is the payload');
SELECT * FROM ext_listening_channels();
SQL

ne_say "an idle listener: it sends no query, and still receives at once"
/usr/bin/python3 - <<'PY'
import os, select, time, psycopg
l = psycopg.connect(autocommit=True)
l.execute("SELECT ext_listen('orders')")
n = psycopg.connect(autocommit=True)
for i in range(3):
    t0 = time.perf_counter()
    n.execute("SELECT ext_notify('orders', %s)", ("order %d paid" % (i + 1),))
    select.select([l.fileno()], [], [], 1.0)
    l.pgconn.consume_input()
    x = l.pgconn.notifies()
    print('listener (PID %d), idle, received "%s" on "%s" from PID %d after %.2f ms'
          % (l.info.backend_pid, x.extra.decode(), x.relname.decode(), x.be_pid,
             (time.perf_counter() - t0) * 1000))
PY

ne_say "drop-in mode: plain LISTEN / NOTIFY served by notify_ext"
cat <<'SQL' | psql -X -e
SET notify_ext.intercept = on;
LISTEN virtual;
NOTIFY virtual, 'sent with plain NOTIFY';
SELECT pg_notify('virtual', 'sent with pg_notify()');
SELECT notifications_committed FROM ext_notification_stats();
SQL

cat <<EOF2

The cluster is running. Connect with:
    psql -h $dir -p $port -U postgres
Stop it with:
    scripts/demo.sh stop
EOF2
