#!/usr/bin/env bash
#
# test/valgrind/run.sh: valgrind memcheck of notify_ext in real backends.
#
# Starts a throwaway cluster of its own (scripts/lib.sh's ne_start_cluster:
# initdb, notify_ext preloaded, notify_ext.queue_size = 64kB), stops it and
# starts its postmaster again under valgrind memcheck, so that every backend
# (forked, not exec'd) runs under valgrind too, each logging to
# DIR/vg/vg.<pid>.log.  Runs test/valgrind/workload.py (a short workload
# through every path of notify_ext), stops the server, waits for valgrind to
# finish, and judges the logs with test/valgrind/check_logs.py: any memory
# error report (invalid read/write/free, use of uninitialised values,
# overlapping copies, ...) or definite leak with a frame in notify_ext.so
# fails; reports that do not involve notify_ext.so are PostgreSQL's (Debian's
# server is not built with USE_VALGRIND) and only counted.  TAP lines.
#
# No --error-exitcode: a backend exiting with a non-zero code other than 1
# makes the postmaster restart every backend, which would wreck the
# workload over a report in PostgreSQL's own code; the logs are judged
# instead.  Limits: palloc() hands out pieces of larger malloc()ed blocks,
# so memcheck sees a read past a small palloc'd chunk only if it leaves the
# block or uses bytes never written; reads past a big chunk (more than 8kB:
# a block of its own, like the delivery buffer) or past malloc()ed memory,
# and any decision on uninitialised memory, are seen.
#
# Uses the installed notify_ext (scripts/test.sh builds and installs it
# first; its suite "valgrind" runs this).  Takes 20 to 30 s on 2 cores.
# Environment:
#   NE_VALGRIND_PORT   the cluster's port (default 55470)
#   NE_VALGRIND_DIR    the cluster's directory (default: a mktemp directory,
#                      removed at the end unless KEEP=1)
#   NE_VG_WAIT         seconds the workload waits for a notification (60)
#   KEEP=1             keep the directory (valgrind logs in DIR/vg)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/lib.sh
. "$HERE/../../scripts/lib.sh"

PORT=${NE_VALGRIND_PORT:-55470}
if [ -n "${NE_VALGRIND_DIR:-}" ]; then
	DIR=$NE_VALGRIND_DIR
	OWN_DIR=0
else
	DIR=$(mktemp -d /tmp/ne_vg.XXXXXX)
	OWN_DIR=1
fi
mkdir -p "$DIR"
chmod 755 "$DIR"
DIR=$(cd "$DIR" && pwd)
VG=$DIR/vg
SO=$("$PG_CONFIG" --pkglibdir)/notify_ext.so
VGPID=""
START=$(date +%s)

n=0
nfail=0
tap() { # tap OK DESCRIPTION
	n=$((n + 1))
	if [ "$1" = 0 ]; then
		echo "ok - $2"
	else
		echo "not ok - $2"
		nfail=$((nfail + 1))
	fi
}

# stop the server (fast), then wait for valgrind to write its last words;
# on a hang, SIGQUIT and SIGKILL the postmaster we started
stop_server() {
	local pid
	[ -n "$VGPID" ] || return 0
	ne_stop_cluster "$DIR" >/dev/null 2>&1 || true
	for _ in $(seq 1 240); do
		kill -0 "$VGPID" 2>/dev/null || break
		sleep 0.5
	done
	if kill -0 "$VGPID" 2>/dev/null; then
		ne_warn "the postmaster under valgrind did not exit: SIGQUIT, then SIGKILL"
		pid=$(head -n 1 "$DIR/data/postmaster.pid" 2>/dev/null || true)
		if [ -n "$pid" ]; then
			kill -QUIT "$pid" 2>/dev/null || true
			sleep 10
			kill -KILL "$pid" 2>/dev/null || true
		fi
	fi
	wait "$VGPID" 2>/dev/null || true
	VGPID=""
}
cleanup() {
	stop_server
	if [ "$OWN_DIR" = 1 ] && [ "${KEEP:-0}" != 1 ]; then
		rm -rf "$DIR"
	elif [ "${KEEP:-0}" = 1 ]; then
		echo "# kept $DIR (valgrind logs in $VG)"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

command -v valgrind >/dev/null || ne_apt valgrind
[ -f "$SO" ] || ne_die "$SO is not installed (make install, or scripts/test.sh)"
echo "# valgrind memcheck of $SO ($(valgrind --version))${NE_SANITIZE:+, UBSan build}"

# initdb and the configuration through the library, then stop: the
# postmaster is started under valgrind below
ne_start_cluster "$DIR" "$PORT" \
	"notify_ext.queue_size = 64kB" \
	"shared_buffers = 16MB" \
	"max_connections = 30" \
	"autovacuum = off" \
	"jit = off" \
	"fsync = off" \
	"huge_pages = off" \
	"log_min_messages = warning" >"$DIR/start.log" 2>&1 || {
	cat "$DIR/start.log"
	ne_die "the cluster did not start without valgrind"
}
ne_stop_cluster "$DIR" >/dev/null
rm -rf "$VG"
mkdir -p "$VG"
if ne_is_root; then chown postgres:postgres "$VG"; fi

ne_pguser env ${NE_SANITIZE:+"UBSAN_OPTIONS=${UBSAN_OPTIONS:-$NE_UBSAN_OPTIONS}"} \
	valgrind --tool=memcheck --trace-children=yes --track-origins=no \
	--leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite \
	--num-callers=40 --read-inline-info=yes --fullpath-after= \
	--suppressions="$HERE/postgres.supp" --log-file="$VG/vg.%p.log" \
	"$NE_PGBIN/postgres" -D "$DIR/data" >>"$DIR/log/postmaster.log" 2>&1 &
VGPID=$!

up=1
for _ in $(seq 1 240); do
	if pg_isready -q -h "$DIR" -p "$PORT" -t 5; then
		up=0
		break
	fi
	kill -0 "$VGPID" 2>/dev/null || break
	sleep 0.5
done
tap "$up" "the server started under valgrind ($(($(date +%s) - START))s)"
if [ "$up" != 0 ]; then
	tail -n 30 "$DIR/log/postmaster.log" | sed 's/^/# /'
	echo "1..$n"
	exit 1
fi

# the workload (its own TAP lines), bounded: valgrind makes it slow
pidfile=$DIR/backend-pids
: >"$pidfile"
wl_rc=0
timeout -k 10 "${NE_VG_WORKLOAD_TIMEOUT:-600}" env PGHOST="$DIR" PGPORT="$PORT" \
	PGUSER=postgres PGDATABASE=postgres "$NE_PYTHON" "$HERE/workload.py" "$pidfile" \
	>"$DIR/workload.out" 2>&1 || wl_rc=$?
cat "$DIR/workload.out"
n=$((n + $(grep -cE '^(not )?ok\b' "$DIR/workload.out" || true)))
nfail=$((nfail + $(grep -cE '^not ok\b' "$DIR/workload.out" || true)))
tap "$wl_rc" "the workload finished (exit status $wl_rc, $(($(date +%s) - START))s)"

stop_server
tap 0 "the server stopped, valgrind finished ($(($(date +%s) - START))s)"

# crashes (a backend killed by a signal under valgrind), and UBSan reports
# of an NE_SANITIZE build, in the server log
bad=$(grep -nE 'PANIC:|TRAP:|terminated by signal|exited with exit code [2-9]|was terminated by exception|runtime error:|UndefinedBehaviorSanitizer' \
	"$DIR/log/postmaster.log" || true)
if [ -z "$bad" ]; then
	tap 0 "server log: no crash, no sanitizer report"
else
	tap 1 "server log: no crash, no sanitizer report"
	head -n 40 <<<"$bad" | sed 's/^/# /'
fi

# the valgrind logs
mapfile -t wl_pids < <(sort -u "$pidfile")
cl_rc=0
"$NE_PYTHON" "$HERE/check_logs.py" "$VG" "$SO" "${wl_pids[@]}" >"$DIR/check.out" 2>&1 || cl_rc=$?
cat "$DIR/check.out"
n=$((n + $(grep -cE '^(not )?ok\b' "$DIR/check.out" || true)))
nfail=$((nfail + $(grep -cE '^not ok\b' "$DIR/check.out" || true)))
if [ "$cl_rc" != 0 ] && ! grep -q '^not ok' "$DIR/check.out"; then
	tap 1 "check_logs.py ran (exit status $cl_rc)"
fi

echo "1..$n"
echo "# $((n - nfail)) of $n passed in $(($(date +%s) - START))s"
[ "$nfail" -eq 0 ]
