#!/usr/bin/env bash
# bench/run.sh [--quick] [--out DIR] [--port N] [--keep]
#
# notify_ext against core LISTEN/NOTIFY (and, where it applies, the same
# transaction without a notification), side by side in one run on one
# throwaway cluster, the variants interleaved (core, ext, none, core, ...).
# Prints a table of medians and ratios, writes DIR/results.md and the plots
# DIR/throughput.png and DIR/herd.png (DIR: bench/ by default; with --quick
# a temporary directory, so a smoke run never overwrites the real results).
# Installs what it needs with apt-get (as root, or through sudo), builds and
# installs notify_ext (scripts/lib.sh), compiles bench/listener.c.  Last,
# bench/stuck.sh (a stuck listener, on its own cluster at port + 10) adds
# section 7, and bench/patterns.sh (pattern subscriptions, port + 20) the
# Patterns section at the end of results.md; bench/flush.sh (commit
# throughput with the server's flushes delayed by 0, 1 and 5 ms, port + 30;
# its plot DIR/flush.png), bench/fanout_scale.sh (10 to 500 listeners on one
# channel, port + 40) and bench/channels.sh (10,000 channels over 200
# sessions, port + 50) add sections 9, 10 and 11, bench/spill.sh (a parked
# listener while the queue spills, and a transaction of 1,000,000
# notifications, port + 60) section 12 and bench/payloads.sh (64kB and 1MB
# payloads against core's table-and-id workaround, port + 70) section 13,
# each on a cluster of its own, and bench/standby.sh (listeners on a hot
# standby: what notify_ext.wal_log costs, latency and fan-out to standby
# listeners; a primary at port + 80 and its standby at port + 81) section
# 14.  The default size takes about 38 minutes on 2 cores.
#
#   --quick   CI smoke size (about 3 minutes): checks that everything runs
#   --out     where results.md and the PNGs go
#   --port    the cluster's port (default 5460)
#   --keep    leave the cluster running and the raw data in place (printed)
#
# Sizes can be overridden from the environment: NE_BENCH_REPS (all), NE_BENCH_T
# (seconds per pgbench run), NE_BENCH_HERD ("0 100 300"), NE_BENCH_MEM_N.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
# bench/lib.sh: kv, alive, proc_jiffies
. "$HERE/lib.sh"

QUICK=0
OUT=""
PORT=${NE_BENCH_PORT:-5460}
KEEP=0
while [ $# -gt 0 ]; do
	case $1 in
		--quick) QUICK=1 ;;
		--out) OUT=$2; shift ;;
		--port) PORT=$2; shift ;;
		--keep) KEEP=1 ;;
		-h|--help) sed -n '2,20p' "$0"; exit 0 ;;
		*) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done

# ------------------------------------------------------------------ sizes
# REPS: commit throughput and herd; LREPS: latency, fan-out, big transactions
if [ $QUICK = 1 ]; then
	REPS=1 LREPS=1 T_COMMIT=1 CLIENTS="1 4 16" HERD="0 30" T_HERD=1
	T_LAT=1 LAT_RATE=500 LAT_HIGH_RATE=20000 LAT_SAT_CONNS=4 FAN_N=10 T_FAN=1
	BIG_N=10000 MEM_N=50000 MEM_WARM=2000
else
	REPS=5 LREPS=3 T_COMMIT=4 CLIENTS="1 4 16" HERD="0 100 300" T_HERD=6
	T_LAT=3 LAT_RATE=500 LAT_HIGH_RATE=20000 LAT_SAT_CONNS=4 FAN_N=50 T_FAN=4
	BIG_N=100000 MEM_N=1000000 MEM_WARM=20000
fi
REPS=${NE_BENCH_REPS:-$REPS}
LREPS=${NE_BENCH_REPS:-$LREPS}
T_COMMIT=${NE_BENCH_T:-$T_COMMIT}
HERD=${NE_BENCH_HERD:-$HERD}
MEM_N=${NE_BENCH_MEM_N:-$MEM_N}
if [ -z "$OUT" ]; then
	if [ $QUICK = 1 ]; then OUT=$(mktemp -d /tmp/ne_bench_quick.XXXXXX); else OUT=$HERE; fi
fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

START_EPOCH=$(date +%s)
log() { printf '[%4ds] %s\n' $(( $(date +%s) - START_EPOCH )) "$*" >&2; }

# ------------------------------------------------------- deps, build, cluster
# scripts/lib.sh: ne_apt, ne_build_install, ne_start_cluster, ne_stop_cluster
# shellcheck source=../scripts/lib.sh
. "$ROOT/scripts/lib.sh"

log "dependencies"
# the extension's build needs, plus pgbench (postgresql-15, also pulled in by
# postgresql-contrib), libpq for listener.c and gnuplot for the plots
ne_apt postgresql-15 postgresql-contrib postgresql-server-dev-15 libkrb5-dev \
	libpq-dev gcc make gnuplot-nox

log "building and installing notify_ext"
# the commit measured is the one built now (HEAD may move during the run)
BUILD_COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$ROOT" diff --quiet HEAD -- src notify_ext--1.0.sql Makefile 2>/dev/null ||
	BUILD_COMMIT="$BUILD_COMMIT + uncommitted changes to the extension"
ne_build_install >/dev/null

BINDIR=$("$PG_CONFIG" --bindir)
RUN=$(mktemp -d /tmp/ne_bench.XXXXXX)
[ "$(id -u)" = 0 ] && chown postgres: "$RUN"
chmod 755 "$RUN"
DATA_DIR=$RUN/cluster
NB=$RUN/nebench
gcc -O2 -Wall -I"$("$PG_CONFIG" --includedir)" -o "$NB" "$HERE/listener.c" \
	-L"$("$PG_CONFIG" --libdir)" -lpq

BG_PIDS=()
cleanup() {
	local p
	for p in "${BG_PIDS[@]:-}"; do
		# only our own listeners still running (a pid may have been reused)
		[ -n "$p" ] && grep -q nebench "/proc/$p/cmdline" 2>/dev/null &&
			kill -TERM "$p" 2>/dev/null || true
	done
	if [ $KEEP = 1 ]; then
		log "kept: cluster $DATA_DIR (port $PORT), raw data $RUN"
	else
		ne_stop_cluster "$DATA_DIR" || true
		rm -rf "$RUN"
	fi
}
trap cleanup EXIT

CONF=(
	"shared_preload_libraries = 'notify_ext'"
	"max_connections = 400"
	"synchronous_commit = on"
	"fsync = on"
	"autovacuum = off"
	"checkpoint_timeout = 30min"
	"max_wal_size = 4GB"
)
log "starting cluster in $DATA_DIR on port $PORT"
mkdir -p "$DATA_DIR"
ne_start_cluster "$DATA_DIR" "$PORT" "${CONF[@]}"

# ne_start_cluster exports PGHOST (the socket directory) and PGPORT
SOCK=$PGHOST
PGDATA_DIR=$DATA_DIR/data

CONN="host=$SOCK port=$PORT user=postgres dbname=bench"
PSQL() { "$BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -At -h "$SOCK" -p "$PORT" -U postgres "$@"; }

PSQL -d postgres -c "CREATE DATABASE bench"
PSQL -d bench -c "CREATE EXTENSION notify_ext" \
	-c "CREATE TABLE bench_t (client int, payload text)"

# ------------------------------------------------------------------ helpers

median() {	# numbers on stdin -> median
	sort -g | awk '{ a[NR] = $1 } END {
		if (NR == 0) { print "nan"; exit }
		if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# start_listener NAME ARGS...: background listener, waits until it listens
start_listener() {
	local name=$1 i
	shift
	rm -f "$RUN/$name.ready" "$RUN/$name.out"
	"$NB" listen -d "$CONN" -r "$RUN/$name.ready" "$@" >"$RUN/$name.out" 2>"$RUN/$name.err" &
	LPID=$!
	BG_PIDS+=("$LPID")
	for i in $(seq 1 1200); do
		[ -f "$RUN/$name.ready" ] && return 0
		alive "$LPID" || { cat "$RUN/$name.err" >&2; return 1; }
		sleep 0.05
	done
	echo "run.sh: listener $name not ready" >&2
	return 1
}

# wait_listener PID SECONDS: wait for it to exit (it does on STOP), else TERM it
wait_listener() {
	local pid=$1 t=$2 i
	for i in $(seq 1 $((t * 20))); do
		alive "$pid" || break
		sleep 0.05
	done
	kill -TERM "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

notify_fn() { if [ "$1" = core ]; then echo pg_notify; else echo ext_notify; fi; }

# pgbench SCRIPT CLIENTS SECONDS|-tN -> sets PGB_TPS, PGB_N, PGB_WARN (the
# "NOTIFY queue is N% full" warnings the clients got)
run_pgbench() {
	local script=$1 c=$2 dur=$3 j out
	j=$(( c < 2 ? c : 2 ))
	if [[ $dur == -t* ]]; then dur=(-t "${dur#-t}"); else dur=(-T "$dur"); fi
	if ! out=$("$BINDIR/pgbench" -n -M prepared -f "$HERE/$script" -c "$c" -j "$j" \
		"${dur[@]}" -h "$SOCK" -p "$PORT" -U postgres bench 2>&1); then
		echo "$out" >&2
		return 1
	fi
	PGB_TPS=$(awk '/^tps = / { print $3; exit }' <<<"$out")
	PGB_WARN=$(grep -c 'WARNING: *NOTIFY queue is' <<<"$out" || true)
	PGB_N=$(awk -F': ' '/number of transactions actually processed/ { split($2, a, " "); print a[1] }' <<<"$out")
}

# wait until only the expected number of client backends are left
wait_backends() {
	local max=$1 i n
	for i in $(seq 1 300); do
		n=$(PSQL -d postgres -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'")
		[ "$n" -le "$max" ] && return 0
		sleep 0.1
	done
}

# How busy the machine was with other work: CPU time of the whole machine
# (/proc/stat, steal included) minus the CPU time of this benchmark (the
# postmaster, this script, and their children, live or exited).  Shown with
# each table, because other load on 2 cores moves the numbers far more than
# most differences measured here.
POSTMASTER_PID=$(head -1 "$PGDATA_DIR/postmaster.pid")
cpu_snapshot() {	# -> "machine-busy ours uptime" in clock ticks
	local busy ours
	busy=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat)
	ours=$(proc_jiffies "$POSTMASTER_PID" $$)
	echo "$busy $ours $(awk '{ printf "%d", $1 * 100 }' /proc/uptime)"
}
declare -A OTHER_CPU
CPU_MARK=$(cpu_snapshot)
other_cpu_since_mark() {	# WORKLOAD: % of all CPUs used by others since the mark
	local now
	now=$(cpu_snapshot)
	OTHER_CPU[$1]=$(awk -v a="$CPU_MARK" -v b="$now" -v n="$(nproc)" -v hz="$(getconf CLK_TCK)" 'BEGIN {
		split(a, x, " "); split(b, y, " ")
		wall = (y[3] - x[3]) / 100 * hz * n
		o = (y[1] - x[1]) - (y[2] - x[2])
		if (o < 0) o = 0
		printf "%.0f", (wall > 0 ? 100 * o / wall : 0) }')
	CPU_MARK=$now
}

W1=$RUN/w1.tsv W2=$RUN/w2.tsv W3=$RUN/w3.tsv W4=$RUN/w4.tsv W5=$RUN/w5.tsv W6=$RUN/w6.tsv
: >"$W1"; : >"$W2"; : >"$W3"; : >"$W4"; : >"$W5"; : >"$W6"

CPU_MARK=$(cpu_snapshot)
# ---------------------------------------------- 1. commit throughput
log "1. commit throughput: clients $CLIENTS, ${T_COMMIT}s x $REPS reps, core/ext/none interleaved"
for rep in $(seq 1 "$REPS"); do
	for c in $CLIENTS; do
		for v in core ext none; do
			lmode=$v; [ $v = none ] && lmode=ext
			start_listener w1 -m "$lmode" -c "t_$v"
			run_pgbench "commit_$v.sql" "$c" "$T_COMMIT"
			PSQL -d bench -c "SELECT $(notify_fn "$lmode")('t_$v', 'STOP')" >/dev/null
			wait_listener "$LPID" 30
			got=$(kv "$RUN/w1.out" total)
			printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$c" "$v" "$rep" "$PGB_TPS" "$PGB_N" "$got" "$PGB_WARN" >>"$W1"
			log "   rep $rep  clients $c  $v: $PGB_TPS tps, delivered $got/$PGB_N"
		done
	done
done

other_cpu_since_mark 1

# ---------------------------------------------- 2. thundering herd
# Each repetition walks through the herd sizes, so that a size's loss is a
# ratio to the no-herd run of the same repetition, measured seconds earlier.
log "2. herd: 2 clients, idle listeners on other channels: $HERD, ${T_HERD}s x $REPS reps"
for rep in $(seq 1 "$REPS"); do
	for h in $HERD; do
		IDLE_PID=""
		if [ "$h" -gt 0 ]; then
			start_listener idle -n "$h" -m both -c "idle_%d"
			IDLE_PID=$LPID
		fi
		for v in core ext; do
			start_listener w2 -m "$v" -c c
			run_pgbench "herd_$v.sql" 2 "$T_HERD"
			PSQL -d bench -c "SELECT $(notify_fn $v)('c', 'STOP')" >/dev/null
			wait_listener "$LPID" 60
			got=$(kv "$RUN/w2.out" total)
			printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$h" "$v" "$rep" "$PGB_TPS" "$PGB_N" "$got" "$PGB_WARN" >>"$W2"
			log "   rep $rep  idle $h  $v: $PGB_TPS tps, delivered $got/$PGB_N"
		done
		if [ -n "$IDLE_PID" ]; then
			kill -TERM "$IDLE_PID" 2>/dev/null || true
			wait "$IDLE_PID" 2>/dev/null || true
			wait_backends 1
		fi
	done
done

other_cpu_since_mark 2

# ---------------------------------------------- 3. latency
log "3. latency: paced ${LAT_RATE}/s and ${LAT_HIGH_RATE}/s, saturated ($LAT_SAT_CONNS connections), ${T_LAT}s x $LREPS reps"
for rep in $(seq 1 "$LREPS"); do
	for load in low high sat; do
		for v in core ext; do
			case $load in
				low) nargs=(-R "$LAT_RATE") ;;
				high) nargs=(-R "$LAT_HIGH_RATE") ;;
				sat) nargs=(-k "$LAT_SAT_CONNS") ;;
			esac
			start_listener w3 -m "$v" -c lat -l -w $((T_LAT + 120))
			"$NB" notify -d "$CONN" -m "$v" -c lat -T -S -t "$T_LAT" "${nargs[@]}" \
				>"$RUN/w3n.out" 2>"$RUN/w3n.err" || true
			wait_listener "$LPID" 120
			warn=$(grep -c 'WARNING: *NOTIFY queue is' "$RUN/w3n.err" || true)
			printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$load" "$v" "$rep" \
				"$(kv "$RUN/w3n.out" rate)" "$(kv "$RUN/w3.out" lat_p50)" \
				"$(kv "$RUN/w3.out" lat_p99)" "$(kv "$RUN/w3.out" lat_max)" \
				"$(kv "$RUN/w3.out" total)" "$(kv "$RUN/w3n.out" ok)" \
				"$(kv "$RUN/w3n.out" errors)" "$(kv "$RUN/w3n.out" rtt_p999)" \
				"$(kv "$RUN/w3n.out" rtt_max)" "$warn" >>"$W3"
			log "   rep $rep  $load  $v: $(kv "$RUN/w3n.out" rate)/s p50 $(kv "$RUN/w3.out" lat_p50) p99 $(kv "$RUN/w3.out" lat_p99) max $(kv "$RUN/w3.out" lat_max) us; notify call max $(kv "$RUN/w3n.out" rtt_max) us; $warn queue warnings"
		done
	done
done

other_cpu_since_mark 3

# ---------------------------------------------- 4. fan-out
log "4. fan-out: 1 notifier, $FAN_N listeners on one channel, ${T_FAN}s x $LREPS reps"
for rep in $(seq 1 "$LREPS"); do
	for v in core ext; do
		start_listener w4 -n "$FAN_N" -m "$v" -c fan -w $((T_FAN + 120))
		"$NB" notify -d "$CONN" -m "$v" -c fan -S -t "$T_FAN" >"$RUN/w4n.out" 2>"$RUN/w4n.err" || true
		wait_listener "$LPID" 120
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$v" "$rep" \
			"$(kv "$RUN/w4.out" deliveries_per_s)" "$(kv "$RUN/w4n.out" ok)" \
			"$(kv "$RUN/w4.out" min_count)" "$(kv "$RUN/w4.out" max_count)" \
			"$(kv "$RUN/w4.out" complete)" "$(kv "$RUN/w4n.out" rate)" >>"$W4"
		log "   rep $rep  $v: $(kv "$RUN/w4.out" deliveries_per_s) deliveries/s, sent $(kv "$RUN/w4n.out" ok), per listener $(kv "$RUN/w4.out" min_count)..$(kv "$RUN/w4.out" max_count)"
		wait_backends 1
	done
done

other_cpu_since_mark 4

# ---------------------------------------------- 5. big transactions
log "5. big transactions: $BIG_N notifies in one transaction, distinct and identical, x $LREPS reps"
for rep in $(seq 1 "$LREPS"); do
	for kind in distinct same; do
		for v in core ext; do
			start_listener w5 -m "$v" -c big -w 300
			"$NB" big -d "$CONN" -m "$v" -c big -N "$BIG_N" -D "$kind" >"$RUN/w5n.out"
			wait_listener "$LPID" 300
			cs=$(kv "$RUN/w5n.out" commit_start_us)
			last=$(kv "$RUN/w5.out" last_us)
			printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$kind" "$v" "$rep" \
				"$(kv "$RUN/w5n.out" notify_calls_us)" "$(kv "$RUN/w5n.out" commit_us)" \
				"$(( last > 0 ? last - cs : -1 ))" "$(kv "$RUN/w5.out" total)" \
				"$(kv "$RUN/w5n.out" hwm_before_kb)" "$(kv "$RUN/w5n.out" hwm_after_kb)" \
				"$(kv "$RUN/w5n.out" anon_after_kb)" "$(kv "$RUN/w5n.out" ctx_before_kb)" \
				"$(kv "$RUN/w5n.out" ctx_precommit_kb)" >>"$W5"
			log "   rep $rep  $kind  $v: calls $(kv "$RUN/w5n.out" notify_calls_us)us commit $(kv "$RUN/w5n.out" commit_us)us delivered $(kv "$RUN/w5.out" total) in $(( last - cs ))us, memory contexts $(kv "$RUN/w5n.out" ctx_precommit_kb)kB, VmHWM $(kv "$RUN/w5n.out" hwm_after_kb)kB"
		done
	done
done

other_cpu_since_mark 5

# ---------------------------------------------- 6. memory
log "6. memory: $MEM_N notifications per system (10 per transaction, 2 clients), interleaved halves"
shm_ext() { PSQL -d bench -c "SELECT coalesce(sum(allocated_size), 0) FROM pg_shmem_allocations WHERE name LIKE 'notify_ext%'"; }
shm_core() { PSQL -d bench -c "SELECT coalesce(sum(allocated_size), 0) FROM pg_shmem_allocations WHERE name IN ('Async Queue Control', 'Notify')"; }
disk_core() { du -sk "$PGDATA_DIR/pg_notify" 2>/dev/null | awk '{ print $1 }'; }
status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null || echo -1; }
declare -A MPID LPIDS
for v in core ext; do
	start_listener "w6_$v" -m "$v" -c "mem_$v" -w 1200
	LPIDS[$v]=$LPID
	MPID[$v]=$(kv "$RUN/w6_$v.ready" pids)
done
per_client() { echo $(( $1 / 10 / 2 )); }
sample() {	# sample POINT NOTIFICATIONS
	local v
	for v in core ext; do
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$v" "$1" "$2" \
			"$(status_kb "${MPID[$v]}" RssAnon)" "$(status_kb "${MPID[$v]}" VmRSS)" \
			"$(status_kb "${MPID[$v]}" RssShmem)" \
			"$(if [ $v = core ]; then shm_core; else shm_ext; fi)" \
			"$(if [ $v = core ]; then disk_core; else echo 0; fi)" >>"$W6"
	done
}
for v in core ext; do run_pgbench "mem_$v.sql" 2 "-t$(per_client "$MEM_WARM")"; done
sample start 0
half=$(( MEM_N / 2 ))
for v in core ext; do run_pgbench "mem_$v.sql" 2 "-t$(per_client "$half")"; done
sample middle "$half"
log "   middle: $(awk -F'\t' '$2 == "middle" { printf "%s RssAnon %s kB; ", $1, $4 }' "$W6")"
for v in core ext; do run_pgbench "mem_$v.sql" 2 "-t$(per_client "$half")"; done
sample end "$MEM_N"
declare -A MEM_GOT
for v in core ext; do
	PSQL -d bench -c "SELECT $(notify_fn $v)('mem_$v', 'STOP')" >/dev/null
	wait_listener "${LPIDS[$v]}" 120
	MEM_GOT[$v]=$(kv "$RUN/w6_$v.out" total)
done
MEM_EXPECT=$(( ($(per_client "$MEM_WARM") + 2 * $(per_client "$half")) * 2 * 10 ))
log "   end: $(awk -F'\t' '$2 == "end" { printf "%s RssAnon %s kB; ", $1, $4 }' "$W6") delivered core ${MEM_GOT[core]}, ext ${MEM_GOT[ext]} of $MEM_EXPECT"

other_cpu_since_mark 6

# ---------------------------------------------- 7. stuck listener
# bench/stuck.sh, on a cluster of its own (it changes
# notify_ext.queue_full_action), 10 ports up; report.sh includes its section
STUCK_MD=$RUN/stuck.md
log "7. stuck listener: bench/stuck.sh$([ $QUICK = 1 ] && echo " --quick" || true) on port $((PORT + 10))"
"$HERE/stuck.sh" $([ $QUICK = 1 ] && echo --quick || true) $([ $KEEP = 1 ] && echo --keep || true) \
	--no-build --port $((PORT + 10)) --md "$STUCK_MD" >/dev/null

# ---------------------------------------------- 8. pattern subscriptions
# bench/patterns.sh, on a cluster of its own, 20 ports up; its section goes
# at the end of results.md
PATTERNS_MD=$RUN/patterns.md
log "8. pattern subscriptions: bench/patterns.sh$([ $QUICK = 1 ] && echo " --quick" || true) on port $((PORT + 20))"
"$HERE/patterns.sh" $([ $QUICK = 1 ] && echo --quick || true) $([ $KEEP = 1 ] && echo --keep || true) \
	--no-build --port $((PORT + 20)) --md "$PATTERNS_MD" >/dev/null

# ---------------------------------------------- 9. flush latency
# bench/flush.sh, on a cluster of its own (restarted with each flush delay),
# 30 ports up; report.sh includes its section, the plot goes to $OUT
FLUSH_MD=$RUN/flush.md
log "9. flush latency: bench/flush.sh$([ $QUICK = 1 ] && echo " --quick" || true) on port $((PORT + 30))"
"$HERE/flush.sh" $([ $QUICK = 1 ] && echo --quick || true) $([ $KEEP = 1 ] && echo --keep || true) \
	--no-build --port $((PORT + 30)) --md "$FLUSH_MD" --plot "$OUT/flush.png" >/dev/null

# ---------------------------------------------- 10. fan-out at scale
# bench/fanout_scale.sh, on a cluster of its own (max_connections for 500
# listeners), 40 ports up; report.sh includes its section
FANOUT_MD=$RUN/fanout.md
log "10. fan-out at scale: bench/fanout_scale.sh$([ $QUICK = 1 ] && echo " --quick" || true) on port $((PORT + 40))"
"$HERE/fanout_scale.sh" $([ $QUICK = 1 ] && echo --quick || true) $([ $KEEP = 1 ] && echo --keep || true) \
	--no-build --port $((PORT + 40)) --md "$FANOUT_MD" >/dev/null

# ---------------------------------------------- 11. many channels
# bench/channels.sh, on a cluster of its own (notify_ext.max_channels for
# 10,000 channels), 50 ports up; report.sh includes its section
CHANNELS_MD=$RUN/channels.md
log "11. many channels: bench/channels.sh$([ $QUICK = 1 ] && echo " --quick" || true) on port $((PORT + 50))"
"$HERE/channels.sh" $([ $QUICK = 1 ] && echo --quick || true) $([ $KEEP = 1 ] && echo --keep || true) \
	--no-build --port $((PORT + 50)) --md "$CHANNELS_MD" >/dev/null

# ---------------------------------------------- 12. spilled queue
# bench/spill.sh, on a cluster of its own, 60 ports up; report.sh includes
# its section
SPILL_MD=$RUN/spill.md
log "12. spilled queue: bench/spill.sh$([ $QUICK = 1 ] && echo " --quick" || true) on port $((PORT + 60))"
"$HERE/spill.sh" $([ $QUICK = 1 ] && echo --quick || true) $([ $KEEP = 1 ] && echo --keep || true) \
	--no-build --port $((PORT + 60)) --md "$SPILL_MD" >/dev/null

# ---------------------------------------------- 13. large payloads
# bench/payloads.sh, on a cluster of its own, 70 ports up; report.sh
# includes its section
PAYLOADS_MD=$RUN/payloads.md
log "13. large payloads: bench/payloads.sh$([ $QUICK = 1 ] && echo " --quick" || true) on port $((PORT + 70))"
"$HERE/payloads.sh" $([ $QUICK = 1 ] && echo --quick || true) $([ $KEEP = 1 ] && echo --keep || true) \
	--no-build --port $((PORT + 70)) --md "$PAYLOADS_MD" >/dev/null

# ---------------------------------------------- 14. listening on standbys
# bench/standby.sh, on a primary and a hot standby of its own, 80 ports up
# (the standby 81); report.sh includes its section
STANDBY_MD=$RUN/standby.md
log "14. listening on standbys: bench/standby.sh$([ $QUICK = 1 ] && echo " --quick" || true) on ports $((PORT + 80)) and $((PORT + 81))"
"$HERE/standby.sh" $([ $QUICK = 1 ] && echo --quick || true) $([ $KEEP = 1 ] && echo --keep || true) \
	--no-build --port $((PORT + 80)) --md "$STANDBY_MD" >/dev/null

# ---------------------------------------------- report
ELAPSED=$(( $(date +%s) - START_EPOCH ))
. "$HERE/report.sh"
if [ -s "$PATTERNS_MD" ]; then
	cat "$PATTERNS_MD" >>"$OUT/results.md"
	cat "$PATTERNS_MD"
fi
