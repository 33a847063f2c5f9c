#!/usr/bin/env bash
# bench/soak.sh [--port N] [--keep] [SECONDS]
#
# The full fault soak: test/soak/soak_faults.py for 10 minutes (SECONDS,
# default SOAK_SECONDS or 600) against a throwaway cluster of its own (a
# mktemp directory in /tmp, port 5470 by default, notify_ext preloaded,
# fsync and synchronous_commit on), then the cluster's log must show no
# crash, PANIC or assertion failure.  scripts/test.sh runs the same program
# for 75 s as its "soak" suite; this is the long version, to run by hand or
# nightly.  Notifiers and listeners in two databases (postgres and soak2),
# savepoints, aborts, duplicates, big batches, listeners that LISTEN and
# UNLISTEN over time, reconnect and are killed with pg_terminate_backend();
# at the end a checker looks for loss, duplicates, phantoms, crossing of
# databases, deliveries outside listen windows and order violations (see
# the program's docstring).  Takes about SECONDS + 1 minute.
#
# Installs what it needs with apt-get (as root, or through sudo), builds and
# installs notify_ext (scripts/lib.sh; NE_SKIP_BUILD=1 uses what is
# installed).  Exits non-zero if the soak or the log check fails.  The
# program's environment passes through: SOAK_SEED replays a run's random
# choices (timing differs), SOAK_NOTIFIERS / SOAK_LISTENERS (per database,
# default 3 and 4).
#
#   --port    the cluster's port (default NE_SOAK_PORT or 5470)
#   --keep    keep the cluster's directory (stopped) and the log: printed
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")

PORT=${NE_SOAK_PORT:-5470}
KEEP=0
DURATION=${SOAK_SECONDS:-600}
while [ $# -gt 0 ]; do
	case $1 in
		--port) PORT=$2; shift ;;
		--keep) KEEP=1 ;;
		-h|--help) sed -n '2,25p' "$0"; exit 0 ;;
		[0-9]*) DURATION=$1 ;;
		*) echo "soak.sh: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done

# shellcheck source=../scripts/lib.sh
. "$ROOT/scripts/lib.sh"

ne_say "dependencies"
ne_apt "postgresql-$NE_PG_MAJOR" "postgresql-server-dev-$NE_PG_MAJOR" libkrb5-dev gcc make python3-psycopg
if [ "${NE_SKIP_BUILD:-0}" != 1 ]; then
	ne_say "build and install"
	ne_build_install
fi

RUN=$(mktemp -d /tmp/ne_soak.XXXXXX)
chmod 755 "$RUN"
CLUSTER=$RUN/cluster
cleanup() {
	ne_stop_cluster "$CLUSTER" >/dev/null || true
	if [ "$KEEP" = 1 ]; then
		ne_log "kept: $RUN (server log $CLUSTER/log/postmaster.log, soak output $RUN/soak.log)"
	else
		rm -rf "$RUN"
	fi
}
trap cleanup EXIT

ne_say "starting a throwaway cluster in $CLUSTER (port $PORT)"
ne_start_cluster "$CLUSTER" "$PORT"

ne_say "soak: test/soak/soak_faults.py $DURATION"
rc=0
# bounded: the program's own limits are SECONDS + about 90 s at worst
timeout -k 30 $((DURATION + 600)) "$NE_PYTHON" "$ROOT/test/soak/soak_faults.py" "$DURATION" \
	</dev/null 2>&1 | tee "$RUN/soak.log" || rc=$?   # (pipefail: the program's status)

ne_say "server log: crashes, PANICs, assertion failures"
log=$CLUSTER/log/postmaster.log
bad=$(grep -nE 'PANIC:|TRAP:|terminated by signal|exited with exit code [2-9]|was terminated by exception|server process .* exited with' "$log" || true)
if [ -n "$bad" ]; then
	printf '%s\n' "$bad" | head -n 40
	echo "soak.sh: the server log shows a crash (lines above)"
	rc=1
else
	ne_log "clean"
fi

if [ "$rc" -eq 0 ]; then
	ne_say "soak.sh: passed ($DURATION s)"
else
	ne_say "soak.sh: FAILED (exit status $rc); the seed is printed at the top of the soak's output"
	tail -n 40 "$log" || true
fi
exit "$rc"
