#!/usr/bin/env bash
# bench/standby.sh [--quick] [--md FILE] [--port N] [--no-build] [--keep]
#
# Listening on standbys (notify_ext.wal_log): a primary and a streaming hot
# standby of its own (pg_basebackup -R, asynchronous), both preloading
# notify_ext, measured in one run, the variants interleaved within each
# repetition; bench/listener.c (nebench) listens and paces, pgbench commits.
#
#   (a) What notify_ext.wal_log = on costs the primary.  pgbench -M prepared
#       commits "notify only" (autocommit SELECT ext_notify('sb', $payload))
#       or "row + notify" (BEGIN; INSERT one row; notify; COMMIT, as
#       bench/commit_ext.sql) at 1 and 16 clients with a PAYLOAD-byte
#       payload, and notify only at 1 client with a BIG_PAYLOAD-byte one,
#       for T (T_BIG) seconds, under three variants: notify_ext with
#       wal_log off, with wal_log on (switched by ALTER SYSTEM and
#       pg_reload_conf() before the run, checked with SHOW in a new session
#       before and after it), and core's pg_notify(); notify only also with
#       wal_log on and the clients' synchronous_commit off.  One listener on the
#       channel in every variant: on the standby for notify_ext (with
#       wal_log off it gets nothing, as expected), on the primary for core
#       (core refuses LISTEN on a standby).  WAL bytes per notification =
#       pg_wal_lsn_diff of pg_current_wal_insert_lsn() around the run / the
#       transactions pgbench processed; commit records and notify_ext's
#       records (rmgr 213) per notification from pg_waldump --stats=record
#       over the same range; WAL flushes per notification from
#       pg_stat_wal.wal_sync.  The listener must get every notification
#       (notify_ext on, core) or none (notify_ext off).
#   (b) Delivery latency, wal_log on: one listener on the primary and one on
#       the standby listen on the same channel at once; one connection on
#       the primary notifies (autocommit, payload = CLOCK_REALTIME µs before
#       the call) paced at each rate of RATES for T_LAT seconds, its commits
#       synchronous (the default) or not (synchronous_commit off).  p50, p99,
#       max per listener; both must get every notification.
#   (c) Fan-out, wal_log on: FAN_N idle listeners on one channel, all on the
#       primary, half on the primary and half on the standby, or all on the
#       standby; one connection on the primary notifies as fast as it can
#       for T_FAN seconds, then (new listeners) paced at FAN_RATE per second
#       for T_FAN seconds, a rate every placement keeps up with.
#       Deliveries/s in total, the notifier's rate, p50 and p99 latency, and
#       the CPU time (utime + stime, from /proc) of each postmaster's
#       processes, exited ones included, per 1000 notifications.  Every
#       listener must get every notification.
#
# Medians over the repetitions; ratios are medians of per-repetition
# ratios with their range.  Both servers and every client share this
# machine's cores.  Prints the markdown section, and with --md writes it to
# FILE.  Installs what it needs with apt-get, builds and installs
# notify_ext (scripts/lib.sh) unless --no-build, compiles bench/listener.c.
# Default size about 6 to 7 minutes on 2 cores; --quick (CI smoke, the
# numbers mean nothing) under a minute.
#
#   --quick     1 repetition, 1 s per run, 20 fan-out listeners
#   --md FILE   write the markdown section to FILE
#   --port N    the primary's port (default 57540); the standby's is N + 1
#   --no-build  notify_ext is built and installed already (bench/run.sh)
#   --keep      leave both clusters running and the raw data in place
#
# Sizes from the environment: NE_STANDBY_REPS (3), NE_STANDBY_T (4 s),
# NE_STANDBY_T_BIG (2 s), NE_STANDBY_CLIENTS ("1 16"), NE_STANDBY_PAYLOAD
# (30 bytes), NE_STANDBY_BIG_PAYLOAD (1000 bytes), NE_STANDBY_RATES
# ("200 2000" per second), NE_STANDBY_T_LAT (5 s), NE_STANDBY_FAN_N (200),
# NE_STANDBY_T_FAN (5 s), NE_STANDBY_FAN_RATE (100 per second).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")

. "$HERE/lib.sh"
ne_bench_options "${NE_STANDBY_PORT:-57540}" "$@"
SPORT=$((PORT + 1))

if [ $QUICK = 1 ]; then
	REPS=1 T=1 T_BIG=1 T_LAT=1 FAN_N=20 T_FAN=1
else
	REPS=3 T=4 T_BIG=2 T_LAT=5 FAN_N=200 T_FAN=5
fi
REPS=${NE_STANDBY_REPS:-$REPS}
T=${NE_STANDBY_T:-$T}
T_BIG=${NE_STANDBY_T_BIG:-$T_BIG}
CLIENTS=${NE_STANDBY_CLIENTS:-"1 16"}
PAYLOAD=${NE_STANDBY_PAYLOAD:-30}
BIG_PAYLOAD=${NE_STANDBY_BIG_PAYLOAD:-1000}
RATES=${NE_STANDBY_RATES:-"200 2000"}
T_LAT=${NE_STANDBY_T_LAT:-$T_LAT}
FAN_N=${NE_STANDBY_FAN_N:-$FAN_N}
T_FAN=${NE_STANDBY_T_FAN:-$T_FAN}
FAN_RATE=${NE_STANDBY_FAN_RATE:-100}
[ "$FAN_N" -ge 2 ] || FAN_N=2
FAN_HALF=$((FAN_N / 2))

START_EPOCH=$(date +%s)
log() { printf '[standby %4ds] %s\n' $(( $(date +%s) - START_EPOCH )) "$*" >&2; }

# shellcheck source=../scripts/lib.sh
. "$ROOT/scripts/lib.sh"

ne_apt postgresql-15 postgresql-contrib postgresql-server-dev-15 libkrb5-dev libpq-dev gcc make
if [ $BUILD = 1 ]; then
	log "building and installing notify_ext"
	ne_build_install >/dev/null
fi
BUILD_COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$ROOT" diff --quiet HEAD -- src notify_ext--1.0.sql notify_ext--1.1.sql Makefile 2>/dev/null ||
	BUILD_COMMIT="$BUILD_COMMIT + uncommitted changes to the extension"

BINDIR=$("$PG_CONFIG" --bindir)
SO=$("$PG_CONFIG" --pkglibdir)/notify_ext.so
RUN=$(mktemp -d /tmp/ne_standby.XXXXXX)
[ "$(id -u)" = 0 ] && chown postgres: "$RUN"
chmod 755 "$RUN"
PDIR=$RUN/primary
SDIR=$RUN/standby
NB=$RUN/nebench
gcc -O2 -Wall -I"$("$PG_CONFIG" --includedir)" -o "$NB" "$HERE/listener.c" \
	-L"$("$PG_CONFIG" --libdir)" -lpq

BG_PIDS=()
cleanup() {
	local p
	for p in "${BG_PIDS[@]:-}"; do
		# only our own listeners still running (a pid may have been reused)
		[ -n "$p" ] && grep -q "$NB" "/proc/$p/cmdline" 2>/dev/null &&
			kill -TERM "$p" 2>/dev/null || true
	done
	if [ $KEEP = 1 ]; then
		log "kept: primary $PDIR (port $PORT), standby $SDIR (port $SPORT), raw data $RUN"
	else
		ne_stop_cluster "$SDIR" >/dev/null || true
		ne_stop_cluster "$PDIR" >/dev/null || true
		rm -rf "$RUN"
	fi
}
trap cleanup EXIT

CONF=(
	"shared_preload_libraries = 'notify_ext'"
	"max_connections = $((FAN_N + 100))"
	"synchronous_commit = on"
	"fsync = on"
	"autovacuum = off"
	"checkpoint_timeout = 30min"
	"max_wal_size = 4GB"
)
log "starting the primary in $PDIR on port $PORT"
ne_start_cluster "$PDIR" "$PORT" "${CONF[@]}" >/dev/null
PSOCK=$PGHOST
PCONN="host=$PSOCK port=$PORT user=postgres dbname=bench"
PSQL() { "$BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -At -h "$PSOCK" -p "$PORT" -U postgres "$@"; }
PSQL -d postgres -c "CREATE DATABASE bench"
PSQL -d bench -c "CREATE EXTENSION notify_ext" -c "CREATE TABLE sb_t (client int, payload text)"

# the standby: a base backup of the primary (-R: standby.signal and
# primary_conninfo), its own port and socket directory, hot_standby
log "base backup of the primary into $SDIR, standby on port $SPORT"
mkdir -p "$SDIR"
if [ "$(id -u)" = 0 ]; then chown postgres: "$SDIR"; fi
chmod 755 "$SDIR"
ne_pguser "$BINDIR/pg_basebackup" -D "$SDIR/data" -R -X stream -c fast \
	-h "$PSOCK" -p "$PORT" -U postgres >"$RUN/basebackup.log" 2>&1 ||
	{ cat "$RUN/basebackup.log" >&2; exit 1; }
{
	echo
	echo "# added by bench/standby.sh: the standby's own port and socket"
	echo "port = $SPORT"
	echo "unix_socket_directories = '$SDIR'"
	echo "hot_standby = on"
} >>"$SDIR/data/postgresql.conf"
ne_start_cluster "$SDIR" "$SPORT" >/dev/null
SSOCK=$PGHOST
SCONN="host=$SSOCK port=$SPORT user=postgres dbname=bench"
SPSQL() { "$BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -At -h "$SSOCK" -p "$SPORT" -U postgres "$@"; }
for i in $(seq 1 600); do
	[ "$(SPSQL -d postgres -c "SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'")" = 1 ] && break
	[ "$i" -lt 600 ] || { echo "standby.sh: the standby does not stream" >&2; exit 1; }
	sleep 0.05
done
[ "$(SPSQL -d postgres -c "SELECT pg_is_in_recovery()")" = t ] ||
	{ echo "standby.sh: the standby is not in recovery" >&2; exit 1; }
PM_P=$(head -1 "$PDIR/data/postmaster.pid")
PM_S=$(head -1 "$SDIR/data/postmaster.pid")

# the module each postmaster loaded is the installed file of its start; with
# a build, it must be this checkout's (somebody may install another)
SO_NOTE="the installed notify_ext.so"
if [ $BUILD = 1 ] || [ -f "$ROOT/notify_ext.so" ]; then
	if cmp -s "$SO" "$ROOT/notify_ext.so"; then
		SO_NOTE="notify_ext.so = this checkout's build"
		[ $BUILD = 1 ] || SO_NOTE="$SO_NOTE, not rebuilt by this run"
	else
		SO_NOTE="WARNING: the installed notify_ext.so is not this checkout's build"
		log "$SO_NOTE ($SO differs from $ROOT/notify_ext.so)"
	fi
fi
for pm in "$PM_P" "$PM_S"; do
	if grep -q 'notify_ext\.so (deleted)' "/proc/$pm/maps" 2>/dev/null; then
		SO_NOTE="$SO_NOTE; WARNING: notify_ext.so was replaced while the servers started"
		break
	fi
done
RING=$(PSQL -d bench -c "SHOW notify_ext.queue_size")

# ------------------------------------------------------------------ helpers

# start_listener NAME CONNINFO ARGS...: a background listener, once it
# listens (LPID)
start_listener() {
	local name=$1 conn=$2
	shift 2
	rm -f "$RUN/$name.ready" "$RUN/$name.out"
	"$NB" listen -d "$conn" -r "$RUN/$name.ready" "$@" >"$RUN/$name.out" 2>"$RUN/$name.err" &
	LPID=$!
	BG_PIDS+=("$LPID")
	for _ in $(seq 1 1200); do
		[ -f "$RUN/$name.ready" ] && return 0
		alive "$LPID" || { cat "$RUN/$name.err" >&2; return 1; }
		sleep 0.05
	done
	echo "standby.sh: listener $name not ready" >&2
	return 1
}

# wait_listener PID SECONDS: wait for it to exit (it does on STOP), else TERM it
wait_listener() {
	local pid=$1 t=$2
	for _ in $(seq 1 $((t * 20))); do
		alive "$pid" || break
		sleep 0.05
	done
	kill -TERM "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# no_sessions POSTMASTER [N]: wait until it has at most N (0) sessions in
# database bench (from the process titles, so that no query adds to its
# CPU time)
no_sessions() {
	for _ in $(seq 1 600); do
		[ "$(pgrep -c -P "$1" -f '^postgres: postgres bench ' || true)" -le "${2:-0}" ] && return 0
		sleep 0.05
	done
	log "   (sessions of postmaster $1 still there)"
}

# catch_up: wait until the standby has replayed what the primary has written
catch_up() {
	local target
	target=$(PSQL -d postgres -c "SELECT pg_current_wal_lsn()")
	for _ in $(seq 1 2400); do
		[ "$(SPSQL -d postgres -c "SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '$target') >= 0")" = t ] && return 0
		sleep 0.05
	done
	log "   (the standby did not replay up to $target in 120 s)"
}

# set_wal_log on|off: ALTER SYSTEM and reload on the primary, until a new
# session SHOWs it
set_wal_log() {
	[ "$(PSQL -d postgres -c "SHOW notify_ext.wal_log")" = "$1" ] && return 0
	PSQL -d postgres -c "ALTER SYSTEM SET notify_ext.wal_log = $1" -c "SELECT pg_reload_conf()" >/dev/null
	for _ in $(seq 1 200); do
		[ "$(PSQL -d postgres -c "SHOW notify_ext.wal_log")" = "$1" ] && return 0
		sleep 0.05
	done
	echo "standby.sh: notify_ext.wal_log did not become $1 after pg_reload_conf()" >&2
	return 1
}

# wait_delivered PSQL-FUNCTION N: wait (in one session, up to 300 s) until
# the listeners in database bench on that server have been sent N
# notifications in all (notify_ext_listeners.delivered)
wait_delivered() {
	"$1" -d bench -c "DO \$\$ DECLARE t0 timestamptz := clock_timestamp(); BEGIN
		LOOP
			EXIT WHEN (SELECT coalesce(sum(delivered), 0) FROM notify_ext_listeners WHERE database = 'bench') >= $2
				OR clock_timestamp() - t0 > interval '300 s';
			PERFORM pg_sleep(0.1);
		END LOOP; END \$\$" >/dev/null
}

HZ=$(getconf CLK_TCK)

# How busy the machine was with other work (as in bench/run.sh): CPU time of
# the whole machine minus that of both clusters and of this script and its
# children, as a share of all CPUs, per part
cpu_snapshot() {
	echo "$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat) $(proc_jiffies "$PM_P" "$PM_S" $$) $(awk '{ printf "%d", $1 * 100 }' /proc/uptime)"
}
declare -A OTHER_CPU
other_cpu_since_mark() {	# PART
	local now
	now=$(cpu_snapshot)
	OTHER_CPU[$1]=$(awk -v a="$CPU_MARK" -v b="$now" -v n="$(nproc)" -v hz="$HZ" 'BEGIN {
		split(a, x, " "); split(b, y, " ")
		wall = (y[3] - x[3]) / 100 * hz * n
		o = (y[1] - x[1]) - (y[2] - x[2])
		if (o < 0) o = 0
		printf "%.0f", (wall > 0 ? 100 * o / wall : 0) }')
	CPU_MARK=$now
}

# ------------------------------------------------------------ (a) WAL cost
# pgbench scripts: the payload is a text parameter (-M prepared, -D payload=)
printf '%s\n' "SELECT ext_notify('sb', :payload);" >"$RUN/notify_ext.sql"
printf '%s\n' "SELECT pg_notify('sb', :payload);" >"$RUN/notify_core.sql"
for s in ext core; do
	fn=ext_notify; [ $s = ext ] || fn=pg_notify
	printf '%s\n' "BEGIN;" "INSERT INTO sb_t VALUES (:client_id, 'x');" \
		"SELECT $fn('sb', :payload);" "COMMIT;" >"$RUN/row_$s.sql"
done
mkpayload() { head -c "$1" /dev/zero | tr '\0' x; }

# run_pgbench SCRIPT CLIENTS SECONDS PAYLOAD -> PGB_TPS, PGB_N
run_pgbench() {
	local j out
	j=$(( $2 < 2 ? $2 : 2 ))
	if ! out=$(PGOPTIONS=${PGB_OPTS:-} "$BINDIR/pgbench" -n -M prepared -f "$1" -c "$2" -j "$j" -T "$3" \
		-D "payload=$(mkpayload "$4")" -h "$PSOCK" -p "$PORT" -U postgres bench 2>&1); then
		echo "$out" >&2
		return 1
	fi
	PGB_TPS=$(awk '/^tps = / { print $3; exit }' <<<"$out")
	PGB_N=$(awk -F': ' '/number of transactions actually processed/ { split($2, a, " "); print a[1] }' <<<"$out")
}

# WAL records of the range: "commit-records notify_ext-records"
# (no WAL written: none)
waldump_counts() {	# START END BYTES-BETWEEN
	if [ "$3" = 0 ]; then
		echo 0 0
		return 0
	fi
	if ! "$BINDIR/pg_waldump" --stats=record -s "$1" -e "$2" -p "$PDIR/data/pg_wal" \
		>"$RUN/waldump.out" 2>"$RUN/waldump.err"; then
		log "   (pg_waldump -s $1 -e $2: $(head -c 300 "$RUN/waldump.err"))"
		echo nan nan
		return 0
	fi
	# N = the first number after the record type (a custom one's is
	# "custom213/UNKNOWN (0)", pg_waldump does not load notify_ext)
	awk 'function n() { for (i = 2; i <= NF; i++) if ($i ~ /^[0-9]+$/) return $i; return 0 }
		$1 ~ /^Transaction\/COMMIT/ { c += n() } $1 ~ /^custom213/ { e += n() }
		END { print c + 0, e + 0 }' "$RUN/waldump.out"
}

vname() { case $1 in off) echo "notify_ext, wal_log off" ;; on) echo "notify_ext, wal_log on" ;; async) echo "notify_ext, wal_log on, synchronous_commit off" ;; core) echo "core pg_notify()" ;; esac; }

RA=$RUN/a.tsv RB=$RUN/b.tsv RC=$RUN/c.tsv
: >"$RA"; : >"$RB"; : >"$RC"

run_a() {	# REP WORKLOAD(notify|row) CLIENTS PAYLOAD SECONDS VARIANT(off|on|async|core)
	local rep=$1 wl=$2 c=$3 p=$4 t=$5 v=$6 sys=ext conn=$SCONN lmode=ext fn=ext_notify
	local lpid lsn0 lsn1 flsn sync0 sync1 show0 show1 counts got stopped bytes
	if [ "$v" = core ]; then sys=core conn=$PCONN lmode=core fn=pg_notify; fi
	if [ "$v" = on ] || [ "$v" = async ]; then set_wal_log on; else set_wal_log off; fi
	# async: the clients set synchronous_commit = off (a commit does not
	# wait for its flush; the WAL writer flushes in the background)
	PGB_OPTS=""
	[ "$v" != async ] || PGB_OPTS="-c synchronous_commit=off"
	start_listener la "$conn" -m "$lmode" -c sb -w $((t + 300))
	lpid=$LPID
	IFS='|' read -r lsn0 sync0 show0 < <(PSQL -d postgres -c "SELECT pg_current_wal_insert_lsn(), (SELECT wal_sync FROM pg_stat_wal), current_setting('notify_ext.wal_log')")
	run_pgbench "$RUN/${wl}_$sys.sql" "$c" "$t" "$p"
	lsn1=$(PSQL -d postgres -c "SELECT pg_current_wal_insert_lsn()")
	# pgbench's sessions report their WAL statistics as they exit (before
	# their process is gone); core's notify-only commits do not wait for
	# their flush: pg_waldump reads up to the end of the run once the WAL
	# writer has flushed it
	no_sessions "$PM_P" "$([ "$v" = core ] && echo 1 || echo 0)"
	for _ in $(seq 1 100); do
		IFS='|' read -r flsn sync1 show1 bytes < <(PSQL -d postgres -c "SELECT CASE WHEN pg_current_wal_flush_lsn() >= '$lsn1' OR '$lsn1' = '$lsn0' THEN '$lsn1' END, (SELECT wal_sync FROM pg_stat_wal), current_setting('notify_ext.wal_log'), pg_wal_lsn_diff('$lsn1', '$lsn0')")
		[ -z "$flsn" ] || break
		sleep 0.05
	done
	PSQL -d bench -c "SELECT $fn('sb', 'STOP')" >/dev/null
	if [ "$v" = off ]; then
		# nothing reaches the standby, the STOP neither: once it has replayed
		# everything, the listener should have got nothing
		catch_up
		sleep 0.1
		kill -TERM "$lpid" 2>/dev/null || true
	fi
	wait_listener "$lpid" 300
	got=$(kv "$RUN/la.out" total)
	stopped=$(kv "$RUN/la.out" stopped)
	counts=$(waldump_counts "$lsn0" "${flsn:-$lsn1}" "$bytes")
	printf '%s\t' "$rep" "$wl" "$c" "$p" "$v" "$PGB_TPS" "$PGB_N" "$bytes" \
		"${counts% *}" "${counts#* }" "$((sync1 - sync0))" "$got" "$stopped" "$show0" >>"$RA"
	printf '%s\n' "$show1" >>"$RA"
	log "   rep $rep  $wl  $c client(s)  $p B  $(vname "$v"): $PGB_TPS tps, $(awk -v b="$bytes" -v n="$PGB_N" 'BEGIN { printf "%.1f", (n > 0 ? b / n : 0) }') WAL bytes/notification, commit records ${counts% *}, notify_ext records ${counts#* }, flushes $((sync1 - sync0)) for $PGB_N notifications; listener ($([ "$v" = core ] && echo primary || echo standby)) got $got"
	no_sessions "$PM_S"
}

CPU_MARK=$(cpu_snapshot)
log "(a) WAL cost: clients $CLIENTS, payload $PAYLOAD B, ${T}s per run, and notify only at 1 client with $BIG_PAYLOAD B, ${T_BIG}s; wal_log off / on / core interleaved, x $REPS reps"
# (the variants' order turns with each repetition, so that none is always
# measured first or right after a switch)
# (async, wal_log on with the clients' synchronous_commit off: notify only)
for rep in $(seq 1 "$REPS"); do
	case $(( (rep - 1) % 4 )) in
		0) ORDER="off on async core" ;;
		1) ORDER="on async core off" ;;
		2) ORDER="async core off on" ;;
		3) ORDER="core off on async" ;;
	esac
	for wl in notify row; do
		for c in $CLIENTS; do
			for v in $ORDER; do
				[ "$wl" = notify ] || [ "$v" != async ] || continue
				run_a "$rep" "$wl" "$c" "$PAYLOAD" "$T" "$v"
			done
		done
	done
	for v in $ORDER; do
		run_a "$rep" notify 1 "$BIG_PAYLOAD" "$T_BIG" "$v"
	done
done
other_cpu_since_mark a

# ---------------------------------------------------------- (b) latency
set_wal_log on
run_b() {	# REP RATE MODE(sync|async: the notifier's synchronous_commit on|off)
	local rep=$1 rate=$2 mode=$3 ppid spid nconn=$PCONN
	[ "$mode" = sync ] || nconn="$PCONN options='-c synchronous_commit=off'"
	start_listener lbp "$PCONN" -m ext -c lat -l -w $((T_LAT + 300))
	ppid=$LPID
	start_listener lbs "$SCONN" -m ext -c lat -l -w $((T_LAT + 300))
	spid=$LPID
	"$NB" notify -d "$nconn" -m ext -c lat -T -S -R "$rate" -t "$T_LAT" >"$RUN/lbn.out" 2>"$RUN/lbn.err" ||
		{ cat "$RUN/lbn.err" >&2; return 1; }
	wait_listener "$ppid" 300
	wait_listener "$spid" 300
	printf '%s\t' "$rep" "$rate" "$(kv "$RUN/lbn.out" ok)" "$(kv "$RUN/lbn.out" rate)" \
		"$(kv "$RUN/lbn.out" rtt_p50)" "$(kv "$RUN/lbn.out" rtt_p99)" >>"$RB"
	printf '%s\t' "$(kv "$RUN/lbp.out" total)" "$(kv "$RUN/lbp.out" complete)" \
		"$(kv "$RUN/lbp.out" lat_p50)" "$(kv "$RUN/lbp.out" lat_p99)" "$(kv "$RUN/lbp.out" lat_max)" \
		"$(kv "$RUN/lbs.out" total)" "$(kv "$RUN/lbs.out" complete)" \
		"$(kv "$RUN/lbs.out" lat_p50)" "$(kv "$RUN/lbs.out" lat_p99)" >>"$RB"
	printf '%s\t%s\n' "$(kv "$RUN/lbs.out" lat_max)" "$mode" >>"$RB"
	log "   rep $rep  ${rate}/s  $mode commit: sent $(kv "$RUN/lbn.out" ok) at $(kv "$RUN/lbn.out" rate)/s (call p50 $(kv "$RUN/lbn.out" rtt_p50) µs); primary listener got $(kv "$RUN/lbp.out" total), p50 $(kv "$RUN/lbp.out" lat_p50) p99 $(kv "$RUN/lbp.out" lat_p99) max $(kv "$RUN/lbp.out" lat_max) µs; standby listener got $(kv "$RUN/lbs.out" total), p50 $(kv "$RUN/lbs.out" lat_p50) p99 $(kv "$RUN/lbs.out" lat_p99) max $(kv "$RUN/lbs.out" lat_max) µs"
	no_sessions "$PM_P"
	no_sessions "$PM_S"
}
log "(b) latency, wal_log on: a listener on the primary and one on the standby, paced at $RATES per second, ${T_LAT}s x $REPS reps"
for rep in $(seq 1 "$REPS"); do
	for rate in $RATES; do
		for mode in sync async; do
			run_b "$rep" "$rate" "$mode"
		done
	done
done
other_cpu_since_mark b

# ---------------------------------------------------------- (c) fan-out
run_c() {	# REP VARIANT(primary|split|standby) MODE(sat|paced)
	local rep=$1 v=$2 mode=$3 np ns ppid="" spid="" cp0 cs0 cp1 cs1 lat_p="-" lat_s="-" f pace=() sent
	case $v in
		primary) np=$FAN_N ns=0 ;;
		split) np=$FAN_HALF ns=$((FAN_N - FAN_HALF)) ;;
		standby) np=0 ns=$FAN_N ;;
	esac
	rm -f "$RUN/lcp.out" "$RUN/lcs.out"
	if [ "$np" -gt 0 ]; then
		start_listener lcp "$PCONN" -n "$np" -m ext -c fan -l -s 2 -w $((T_FAN + 300))
		ppid=$LPID
	fi
	if [ "$ns" -gt 0 ]; then
		start_listener lcs "$SCONN" -n "$ns" -m ext -c fan -l -s 2 -w $((T_FAN + 300))
		spid=$LPID
	fi
	catch_up
	cp0=$(proc_jiffies "$PM_P")
	cs0=$(proc_jiffies "$PM_S")
	[ "$mode" = sat ] || pace=(-R "$FAN_RATE")
	"$NB" notify -d "$PCONN" -m ext -c fan -T -S -t "$T_FAN" "${pace[@]}" >"$RUN/lcn.out" 2>"$RUN/lcn.err" ||
		{ cat "$RUN/lcn.err" >&2; return 1; }
	# the listeners stop at the second STOP: once each server has sent
	# them everything and the first STOP, the CPU time is read, so that it
	# does not include their disconnection (about 5 ms of CPU a backend
	# here, core's the same: an exiting process's teardown)
	sent=$(kv "$RUN/lcn.out" ok)
	[ "$np" = 0 ] || wait_delivered PSQL $(( (sent + 1) * np ))
	[ "$ns" = 0 ] || wait_delivered SPSQL $(( (sent + 1) * ns ))
	cp1=$(proc_jiffies "$PM_P")
	cs1=$(proc_jiffies "$PM_S")
	PSQL -d bench -c "SELECT ext_notify('fan', 'STOP')" >/dev/null
	[ -z "$ppid" ] || wait_listener "$ppid" 300
	[ -z "$spid" ] || wait_listener "$spid" 300
	no_sessions "$PM_P"
	no_sessions "$PM_S"
	# deliveries: the sum over both listener processes, over the time from
	# the notifier's start to the last receipt anywhere
	local tot=0 last=0 ok=1 t0 x
	t0=$(kv "$RUN/lcn.out" t0_us)
	for f in lcp lcs; do
		[ -f "$RUN/$f.out" ] || continue
		x=$(kv "$RUN/$f.out" total)
		tot=$((tot + ${x:-0}))
		x=$(kv "$RUN/$f.out" last_us)
		x=${x:-0}
		[ "$x" -le "$last" ] || last=$x
		[ "$(kv "$RUN/$f.out" complete)" = 1 ] || ok=0
	done
	[ -z "$ppid" ] || lat_p="$(kv "$RUN/lcp.out" lat_p50)	$(kv "$RUN/lcp.out" lat_p99)"
	[ -z "$spid" ] || lat_s="$(kv "$RUN/lcs.out" lat_p50)	$(kv "$RUN/lcs.out" lat_p99)"
	[ -n "$ppid" ] || lat_p="-	-"
	[ -n "$spid" ] || lat_s="-	-"
	printf '%s\t' "$rep" "$v" "$np" "$ns" "$sent" "$(kv "$RUN/lcn.out" rate)" "$tot" "$ok" \
		"$(awk -v n="$tot" -v a="$t0" -v b="$last" 'BEGIN { printf "%.0f", (b > a ? n * 1e6 / (b - a) : -1) }')" \
		"$lat_p" "$lat_s" "$((cp1 - cp0))" "$((cs1 - cs0))" >>"$RC"
	printf '%s\n' "$mode" >>"$RC"
	log "   rep $rep  $mode  $v ($np on the primary, $ns on the standby): sent $sent at $(kv "$RUN/lcn.out" rate)/s, $tot deliveries of $((sent * FAN_N)) ($(tail -1 "$RC" | cut -f9)/s), p50/p99 $(echo "$lat_p" | tr '\t' /) / $(echo "$lat_s" | tr '\t' /) µs, CPU primary $(( (cp1 - cp0) * 1000 / HZ )) ms, standby $(( (cs1 - cs0) * 1000 / HZ )) ms"
}
log "(c) fan-out, wal_log on: $FAN_N listeners on the primary, split, or on the standby; one notifier as fast as it can, then paced at ${FAN_RATE}/s, ${T_FAN}s each x $REPS reps"
for rep in $(seq 1 "$REPS"); do
	for mode in sat paced; do
		for v in primary split standby; do
			run_c "$rep" "$v" "$mode"
		done
	done
done
other_cpu_since_mark c
set_wal_log off
ELAPSED=$(( $(date +%s) - START_EPOCH ))

# ------------------------------------------------------------------ report
# RA columns: 1 rep, 2 workload, 3 clients, 4 payload, 5 variant, 6 tps,
# 7 notifications (transactions processed), 8 WAL bytes, 9 commit records,
# 10 notify_ext records, 11 WAL flushes, 12 listener received, 13 listener
# stopped, 14 SHOW before, 15 SHOW after
# RB columns: 1 rep, 2 rate, 3 sent, 4 achieved rate, 5 call p50, 6 call p99,
# 7 primary received, 8 complete, 9 p50, 10 p99, 11 max, 12 standby
# received, 13 complete, 14 p50, 15 p99, 16 max, 17 the notifier's commit
# (sync, async)
# RC columns: 1 rep, 2 variant, 3 listeners on the primary, 4 on the
# standby, 5 sent, 6 rate, 7 deliveries, 8 complete, 9 deliveries/s,
# 10 p50 primary, 11 p99 primary, 12 p50 standby, 13 p99 standby (µs, "-"
# without listeners there), 14 primary CPU ticks, 15 standby CPU ticks,
# 16 mode (sat, paced)
med() {	# FILE CONDITION AWK-EXPRESSION -> median over the repetitions
	awk -F'\t' "($2) { a[++k] = $3 }
	END {
		if (k == 0) { print \"nan\"; exit }
		for (i = 2; i <= k; i++) { x = a[i]; j = i - 1; while (j > 0 && a[j] > x) { a[j + 1] = a[j]; j-- } a[j + 1] = x }
		print (k % 2) ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
	}" "$1"
}
# "median (min–max)" of the values a[1..k], for the END of an awk program
RANGE_AWK='if (k == 0) { print "n/a"; exit }
	for (i = 2; i <= k; i++) { x = a[i]; j = i - 1; while (j > 0 && a[j] > x) { a[j + 1] = a[j]; j-- } a[j + 1] = x }
	m = (k % 2) ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
	if (sprintf("%.2f", a[1]) == sprintf("%.2f", a[k])) printf "%.2f", m
	else printf "%.2f (%.2f–%.2f)", m, a[1], a[k]'
maxof() { awk -F'\t' "($2) { v = $3; if (!n++ || v > m) m = v } END { print (n ? m : \"nan\") }" "$1"; }
cnt() { awk -F'\t' "($2) { n++ } END { print n + 0 }" "$1"; }	# FILE CONDITION
# pratio FILE NUM-CONDITION DEN-CONDITION AWK-EXPRESSION -> "1.23
# (1.10–1.30)": median and range of the per-repetition ratios (column 1 =
# repetition)
pratio() {
	awk -F'\t' "($2) { n[\$1] = $4 } ($3) { d[\$1] = $4 }
	END { for (r in n) if ((r in d) && d[r] + 0 > 0) a[++k] = n[r] / d[r]; $RANGE_AWK }" "$1"
}
# rratio FILE CONDITION NUM-COLUMN DEN-COLUMN -> the same, of the ratio of
# two columns of each run
rratio() {
	awk -F'\t' "($2) && \$$4 + 0 > 0 { a[++k] = \$$3 / \$$4 } END { $RANGE_AWK }" "$1"
}
f0() { awk -v a="$1" 'BEGIN { if (a == "nan" || a == "" || a < 0) print "n/a"; else printf "%.0f", a }'; }
f1() { awk -v a="$1" 'BEGIN { if (a == "nan" || a == "" || a < 0) print "n/a"; else printf "%.1f", a }'; }
f2() { awk -v a="$1" 'BEGIN { if (a == "nan" || a == "" || a < 0) print "n/a"; else printf "%.2f", a }'; }

SEC=$RUN/standby.md
{
	echo "### 14. Listening on standbys: what \`notify_ext.wal_log\` costs, latency to a standby listener, fan-out over a primary and a standby"
	echo
	echo "Generated by \`bench/standby.sh$([ $QUICK = 1 ] && echo " --quick" || true)\` on $(date -u '+%Y-%m-%d %H:%M UTC') in ${ELAPSED} s$([ $QUICK = 1 ] && echo " (smoke size: the numbers mean nothing)" || true); notify_ext from commit $BUILD_COMMIT ($SO_NOTE), notify_ext.queue_size $RING; $(nproc) cores. A primary and a streaming hot standby of its own (\`pg_basebackup -R\`, asynchronous: the primary's commits do not wait for it), both on this machine and preloading notify_ext: $(printf '`%s`, ' "${CONF[@]}" | sed 's/, $//'), else initdb's defaults; the standby \`hot_standby = on\`. Clients on the same machine over Unix sockets (pgbench; bench/listener.c). $REPS repetition(s), the variants interleaved in each; medians, ratios as medians of per-repetition ratios (range in parentheses)."
	echo
	echo "**(a) What \`notify_ext.wal_log = on\` costs the primary.** pgbench -M prepared, ${T} s per run (${T_BIG} s with $BIG_PAYLOAD-byte payloads): *notify only* ="
	echo "autocommit \`SELECT ext_notify|pg_notify('sb', \$payload)\`, *row + notify* = \`BEGIN; INSERT one row; notify; COMMIT\`. wal_log is switched"
	echo "with \`ALTER SYSTEM\` and \`pg_reload_conf()\` before each run and checked with SHOW in a new session before and after it. One"
	echo "listener on the channel in every variant: for notify_ext on the standby (with wal_log off it receives nothing, and that is"
	echo "checked), for core on the primary (core refuses LISTEN on a standby). WAL bytes = \`pg_wal_lsn_diff\` of"
	echo "\`pg_current_wal_insert_lsn()\` around the run / notifications (pgbench's transactions); commit records and notify_ext's"
	echo "records (rmgr 213) from \`pg_waldump --stats=record\` over the run's WAL; flushes = \`pg_stat_wal.wal_sync\`."
	echo
	echo "| workload | clients | payload | variant | tps | on/off | on/core | WAL bytes / notification | commit records / notification | notify_ext records / notification | WAL flushes / notification | listener received |"
	echo "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|"
	cells=()
	for wl in notify row; do
		for c in $CLIENTS; do cells+=("$wl $c $PAYLOAD"); done
	done
	cells+=("notify 1 $BIG_PAYLOAD")
	for cell in "${cells[@]}"; do
		read -r wl c p <<<"$cell"
		base="\$2 == \"$wl\" && \$3 == $c && \$4 == $p"
		for v in off on async core; do
			cond="$base && \$5 == \"$v\""
			[ "$(cnt "$RA" "$cond")" != 0 ] || continue
			r1=""; r2=""
			if [ "$v" = on ] || [ "$v" = async ]; then
				r1=$(pratio "$RA" "$cond" "$base && \$5 == \"off\"" '$6')
				r2=$(pratio "$RA" "$cond" "$base && \$5 == \"core\"" '$6')
			fi
			n=$(cnt "$RA" "$cond")
			if [ "$v" = off ]; then
				bad=$(cnt "$RA" "$cond && \$12 != 0")
				recv="none, as expected"
				[ "$bad" = 0 ] || recv="**UNEXPECTED: received notifications in $bad of $n run(s)**"
			else
				bad=$(cnt "$RA" "$cond && (\$12 != \$7 || \$13 != 1)")
				recv="all ($([ "$v" = core ] && echo on the primary || echo on the standby))"
				[ "$bad" = 0 ] || recv="**NO: missed notifications in $bad of $n run(s)** ($(awk -F'\t' "$cond && (\$12 != \$7 || \$13 != 1) { printf \"%s%s of %s\", s, \$12, \$7; s = \", \" }" "$RA"))"
			fi
			want=$([ "$v" = on ] || [ "$v" = async ] && echo on || echo off)
			badshow=$(cnt "$RA" "$cond && (\$14 != \"$want\" || \$15 != \"$want\")")
			[ "$badshow" = 0 ] || recv="$recv; **SHOW notify_ext.wal_log was not $want in $badshow run(s)**"
			wlname=$([ "$wl" = notify ] && echo "notify only" || echo "row + notify")
			echo "| $wlname | $c | $p B | $(vname "$v") | $(f0 "$(med "$RA" "$cond" '$6')") | $r1 | $r2 | $(f1 "$(med "$RA" "$cond" '($7 > 0 ? $8 / $7 : -1)')") | $(f2 "$(med "$RA" "$cond" '($7 > 0 ? $9 / $7 : -1)')") | $(f2 "$(med "$RA" "$cond" '($7 > 0 ? $10 / $7 : -1)')") | $(f2 "$(med "$RA" "$cond" '($7 > 0 ? $11 / $7 : -1)')") | $recv |"
		done
	done
	echo
	echo "With wal_log off a notify-only transaction has no XID: it writes no WAL, no commit record, and waits for no flush"
	echo "(nobody listens on the primary, so it is not even queued there). With wal_log on it takes an XID, writes its"
	echo "notifications (one record of about the payload's size) and a commit record, and its COMMIT waits for the WAL flush"
	echo "like that of any transaction that wrote WAL. Core's NOTIFY takes an XID and writes a commit record too (it does not log"
	echo "the notification itself), but as the transaction wrote no WAL before that record PostgreSQL commits it asynchronously:"
	echo "COMMIT does not wait for the flush, the WAL writer flushes in the background (hence about 0 flushes per notification)."
	echo "With a row in the transaction the commit record and its flush are paid anyway; wal_log adds the notification's record."
	echo "*synchronous_commit off*: wal_log on, the pgbench sessions set \`synchronous_commit = off\` (PGOPTIONS): their COMMIT no"
	echo "longer waits for the flush, as core's notify-only commits; the WAL writer flushes in the background, and only then"
	echo "does the walsender send the records to the standby (see (b) for what that does to a standby listener's latency)."
	echo "At 1 client the notify-only runs that wait for no flush (wal_log off, core) are bound by the round trip between pgbench"
	echo "and its backend, which on a VM is shorter while some other process keeps the other CPU busy: core's runs have their"
	echo "listener on the primary, woken by every notification, notify_ext's on the standby. Those two rows do not compare"
	echo "notify_ext with core."
	echo
	echo "Other processes on the machine used ${OTHER_CPU[a]}% of its CPU time during (a)."
	echo
	echo "**(b) Delivery latency to a standby listener and to a primary listener** (wal_log on), both listening to the channel at"
	echo "once; one connection on the primary runs autocommit \`SELECT ext_notify('lat', <CLOCK_REALTIME µs>)\` paced at the rate for"
	echo "${T_LAT} s; latency = receipt - send time (same machine, µs). p50 and p99 are medians over the repetitions, max the worst run."
	echo "Call = the notifier's round trip (with a synchronous commit it includes the commit's flush). The notifier's commit:"
	echo "*synchronous* (the default, \`synchronous_commit = on\`) or *asynchronous* (its session sets \`synchronous_commit = off\`:"
	echo "COMMIT returns before the flush; the standby gets the records once the WAL writer has flushed them, every"
	echo "\`wal_writer_delay\` = 200 ms at the latest, sooner when other commits flush)."
	echo
	echo "| rate | notifier's commit | achieved /s | call p50 µs | primary listener p50 | p99 | max | standby listener p50 | p99 | max | standby/primary p50 | p99 | received by both |"
	echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
	for rate in $RATES; do
	for mode in sync async; do
		cond="\$2 == $rate && \$17 == \"$mode\""
		n=$(cnt "$RB" "$cond")
		bad=$(cnt "$RB" "$cond && (\$7 != \$3 || \$8 != 1 || \$12 != \$3 || \$13 != 1)")
		recv="all"
		[ "$bad" = 0 ] || recv="**NO in $bad of $n run(s)** ($(awk -F'\t' "$cond && (\$7 != \$3 || \$8 != 1 || \$12 != \$3 || \$13 != 1) { printf \"%sprimary %s, standby %s of %s\", s, \$7, \$12, \$3; s = \"; \" }" "$RB"))"
		echo "| ${rate}/s | $([ "$mode" = sync ] && echo synchronous || echo asynchronous) | $(f0 "$(med "$RB" "$cond" '$4')") | $(f0 "$(med "$RB" "$cond" '$5')") | $(f0 "$(med "$RB" "$cond" '$9')") | $(f0 "$(med "$RB" "$cond" '$10')") | $(f0 "$(maxof "$RB" "$cond" '$11')") | $(f0 "$(med "$RB" "$cond" '$14')") | $(f0 "$(med "$RB" "$cond" '$15')") | $(f0 "$(maxof "$RB" "$cond" '$16')") | $(rratio "$RB" "$cond" 14 9) | $(rratio "$RB" "$cond" 15 10) | $recv |"
	done
	done
	echo
	for rate in $RATES; do
		a=$(med "$RB" "\$2 == $rate && \$17 == \"sync\"" '$4')
		if awk -v a="$a" -v r="$rate" 'BEGIN { exit !(a != "nan" && a < 0.95 * r) }'; then
			echo "At ${rate}/s the notifier could not keep the pace ($(f0 "$a")/s): one connection, and each call waits for its commit's flush."
			echo
		fi
	done
	echo "Other processes on the machine used ${OTHER_CPU[b]}% of its CPU time during (b)."
	echo
	echo "**(c) Fan-out over a primary and a standby** (wal_log on): $FAN_N idle listeners on one channel, all on the primary, half"
	echo "on each, or all on the standby (one libpq process per server holds them, bench/listener.c); one connection on the primary"
	echo "runs autocommit \`SELECT ext_notify('fan', <CLOCK_REALTIME µs>)\` for ${T_FAN} s, as fast as it can (*saturated*), then, with"
	echo "new listeners, *paced* at ${FAN_RATE}/s. Deliveries/s = notifications received by all listeners together / (last receipt -"
	echo "notifier's start). Latency = receipt - send time, p50 / p99 over the listeners of each server. CPU = utime + stime (/proc) of"
	echo "each postmaster and all its processes, exited ones included (backends, walsender, startup process, walreceiver...), from"
	echo "the notifier's start until each server had sent every listener everything (\`notify_ext_listeners.delivered\`; the"
	echo "listeners' disconnection after that is not counted), per 1000 notifications sent; the clients' own CPU is not in it."
	echo "primary CPU vs all = the primary's CPU per notification / that with all listeners on the primary, same repetition."
	echo
	echo "| notifier | listeners (primary + standby) | notifies/s | deliveries/s | latency p50 / p99 ms: primary listeners | standby listeners | CPU ms / 1000 notifications: primary | standby | primary CPU vs all on the primary | every listener got every one |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"
	cpu_p="(\$5 > 0 ? \$14 * 1000 / $HZ / (\$5 / 1000) : -1)"
	cpu_s="(\$5 > 0 ? \$15 * 1000 / $HZ / (\$5 / 1000) : -1)"
	for mode in sat paced; do
		for v in primary split standby; do
			cond="\$16 == \"$mode\" && \$2 == \"$v\""
			n=$(cnt "$RC" "$cond")
			bad=$(cnt "$RC" "$cond && \$8 != 1")
			recv="yes"
			[ "$bad" = 0 ] || recv="**NO in $bad of $n run(s)** ($(awk -F'\t' -v n="$FAN_N" "$cond && \$8 != 1 { printf \"%s%s of %s deliveries\", s, \$7, \$5 * n; s = \"; \" }" "$RC"))"
			lp=$(awk -F'\t' "$cond { print \$3; exit }" "$RC")
			lsb=$(awk -F'\t' "$cond { print \$4; exit }" "$RC")
			pl="-"; sl="-"; rp=""
			[ "$lp" = 0 ] || pl="$(f1 "$(med "$RC" "$cond" '$10 / 1000')") / $(f1 "$(med "$RC" "$cond" '$11 / 1000')")"
			[ "$lsb" = 0 ] || sl="$(f1 "$(med "$RC" "$cond" '$12 / 1000')") / $(f1 "$(med "$RC" "$cond" '$13 / 1000')")"
			[ "$v" = primary ] || rp=$(pratio "$RC" "$cond" "\$16 == \"$mode\" && \$2 == \"primary\"" "$cpu_p")
			echo "| $([ "$mode" = sat ] && echo saturated || echo "paced ${FAN_RATE}/s") | $lp + $lsb | $(f0 "$(med "$RC" "$cond" '$6')") | $(f0 "$(med "$RC" "$cond" '$9')") | $pl | $sl | $(f0 "$(med "$RC" "$cond" "$cpu_p")") | $(f0 "$(med "$RC" "$cond" "$cpu_s")") | $rp | $recv |"
		done
	done
	echo
	echo "Saturated, the notifier's rate is what the machine allows with that placement: each notification wakes every listener"
	echo "(on the primary, as its commit returns; on the standby, as its commit record is replayed). Listeners that cannot keep up"
	echo "fall behind (their p99 is then that backlog) and read many notifications per wake-up, which costs less CPU per"
	echo "notification; the paced rows compare the placements at the same rate, which all of them keep up with. Both servers and"
	echo "all clients share this machine's $(nproc) cores, so here the standby's work still competes with the primary's; on a"
	echo "standby of its own it would not."
	echo
	echo "Other processes on the machine used ${OTHER_CPU[c]}% of its CPU time during (c)."
	echo
} >"$SEC"

cat "$SEC"
if [ -n "$MD" ]; then
	cp "$SEC" "$MD"
	log "wrote $MD"
fi
log "standby: done in ${ELAPSED} s"
