#!/usr/bin/env bash
# bench/fanout_scale.sh [--quick] [--md FILE] [--port N] [--no-build] [--keep]
#
# Fan-out at scale: one notifier, 10, 100 and 500 listening sessions on
# one channel, core LISTEN/NOTIFY against notify_ext in one run on a
# throwaway cluster of its own, the systems interleaved within each
# repetition.  The listeners are real connections, one backend each, all
# held by one libpq process (bench/multilisten.c) that waits on every
# socket with poll() and reads each notification as it arrives.  The
# notifier is `bench/listener.c notify`: autocommit `SELECT
# pg_notify|ext_notify('fan', <payload>)` on one connection, the payload
# the CLOCK_REALTIME microseconds taken just before the query is sent, so
# the listener process (same machine, same clock) gets the latency of each
# delivery.  Two phases per case, on the same listeners:
#
#   saturated  the notifier sends as fast as the server answers, for T_SAT
#              seconds: deliveries/s = notifications received by all
#              listeners together / (last receipt - first send); latency
#              includes the backlog the listeners build up
#   paced      RATE notifies per second (20) for T_PACED seconds, well
#              below what either system carries with 500 listeners: the
#              latency of a delivery when nothing queues up (the rate the
#              notifier kept is shown)
#
# Every listener must get every notification of both phases.
#
# Prints the markdown section (a table of medians and ratios), and with
# --md writes it to FILE; bench/run.sh calls this with --md and
# bench/report.sh puts the section into results.md.  Installs what it needs
# with apt-get, builds and installs notify_ext (scripts/lib.sh) unless
# --no-build, compiles bench/multilisten.c and bench/listener.c.  Default
# size about 4 minutes on 2 cores; --quick (CI smoke, the numbers mean
# nothing) about 20 s.
#
#   --quick     smoke size: 1 repetition, 10 and 100 listeners, 1 s phases
#   --md FILE   write the markdown section to FILE
#   --port N    the cluster's port (default 5610)
#   --no-build  notify_ext is built and installed already (bench/run.sh)
#   --keep      leave the cluster running and the raw data in place
#
# Sizes from the environment: NE_FANOUT_REPS, NE_FANOUT_LISTENERS ("10 100
# 500"), NE_FANOUT_T_SAT and NE_FANOUT_T_PACED (seconds), NE_FANOUT_RATE
# (paced notifies per second, 20).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")

. "$HERE/lib.sh"
ne_bench_options "${NE_FANOUT_PORT:-5610}" "$@"

if [ $QUICK = 1 ]; then
	REPS=1 LISTENERS="10 100" T_SAT=1 T_PACED=1
else
	REPS=3 LISTENERS="10 100 500" T_SAT=4 T_PACED=5
fi
REPS=${NE_FANOUT_REPS:-$REPS}
LISTENERS=${NE_FANOUT_LISTENERS:-$LISTENERS}
T_SAT=${NE_FANOUT_T_SAT:-$T_SAT}
T_PACED=${NE_FANOUT_T_PACED:-$T_PACED}
RATE=${NE_FANOUT_RATE:-20}
NMAX=$(awk -v l="$LISTENERS" 'BEGIN { n = split(l, a, " "); m = 0; for (i = 1; i <= n; i++) if (a[i] + 0 > m) m = a[i] + 0; print m }')
# how long a phase may take to drain before the case counts as failed
DRAIN_MAX=180

START_EPOCH=$(date +%s)
log() { printf '[fanout %4ds] %s\n' $(( $(date +%s) - START_EPOCH )) "$*" >&2; }

# shellcheck source=../scripts/lib.sh
. "$ROOT/scripts/lib.sh"

ne_apt postgresql-15 postgresql-server-dev-15 libkrb5-dev libpq-dev gcc make
if [ $BUILD = 1 ]; then
	log "building and installing notify_ext"
	ne_build_install >/dev/null
fi
BUILD_COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$ROOT" diff --quiet HEAD -- src notify_ext--1.1.sql Makefile 2>/dev/null ||
	BUILD_COMMIT="$BUILD_COMMIT + uncommitted changes to the extension"

BINDIR=$("$PG_CONFIG" --bindir)
SO=$("$PG_CONFIG" --pkglibdir)/notify_ext.so
RUN=$(mktemp -d /tmp/ne_fanout.XXXXXX)
[ "$(id -u)" = 0 ] && chown postgres: "$RUN"
chmod 755 "$RUN"
DATA_DIR=$RUN/cluster
NB=$RUN/nebench
ML=$RUN/multilisten
gcc -O2 -Wall -I"$("$PG_CONFIG" --includedir)" -o "$NB" "$HERE/listener.c" \
	-L"$("$PG_CONFIG" --libdir)" -lpq
gcc -O2 -Wall -Wextra -I"$("$PG_CONFIG" --includedir)" -o "$ML" "$HERE/multilisten.c" \
	-L"$("$PG_CONFIG" --libdir)" -lpq
# one process holds NMAX sockets
[ "$(ulimit -n)" -ge $((NMAX + 64)) ] || ulimit -n $((NMAX + 64))

BG_PIDS=()
cleanup() {
	local p
	for p in "${BG_PIDS[@]:-}"; do
		[ -n "$p" ] && grep -qE 'multilisten|nebench' "/proc/$p/cmdline" 2>/dev/null &&
			kill -TERM "$p" 2>/dev/null || true
	done
	if [ $KEEP = 1 ]; then
		log "kept: cluster $DATA_DIR (port $PORT), raw data $RUN"
	else
		ne_stop_cluster "$DATA_DIR" >/dev/null || true
		rm -rf "$RUN"
	fi
}
trap cleanup EXIT

CONF=(
	"shared_preload_libraries = 'notify_ext'"
	"max_connections = $((NMAX + 50))"
	"synchronous_commit = on"
	"fsync = on"
	"autovacuum = off"
	"checkpoint_timeout = 30min"
	"max_wal_size = 4GB"
)
log "starting cluster in $DATA_DIR on port $PORT"
ne_start_cluster "$DATA_DIR" "$PORT" "${CONF[@]}" >/dev/null
SOCK=$PGHOST
CONN="host=$SOCK port=$PORT user=postgres dbname=bench"
PSQL() { "$BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -At -h "$SOCK" -p "$PORT" -U postgres "$@"; }
PSQL -d postgres -c "CREATE DATABASE bench"
PSQL -d bench -c "CREATE EXTENSION notify_ext"
SO_NOTE="the installed notify_ext.so"
if [ -f "$ROOT/notify_ext.so" ]; then
	if cmp -s "$SO" "$ROOT/notify_ext.so"; then
		SO_NOTE="notify_ext.so = this checkout's build$([ $BUILD = 1 ] || echo ", not rebuilt by this run")"
	else
		SO_NOTE="the installed notify_ext.so, not this checkout's notify_ext.so"
	fi
fi

num() { local v; v=$(kv "$1" "$2"); echo "${v:-0}"; }
jiffies() { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $12 + $13 }'; }
uptime_cs() { awk '{ printf "%d", $1 * 100 }' /proc/uptime; }
settle() {	# no client backend left but ours, both queues empty
	for _ in $(seq 1 600); do
		[ "$(PSQL -d postgres -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()")" = 0 ] && break
		sleep 0.05
	done
	for _ in $(seq 1 100); do
		[ "$(PSQL -d bench -c "SELECT pg_notification_queue_usage() = 0 AND ext_notification_queue_usage() = 0")" = t ] && return 0
		sleep 0.05
	done
}
# wait_key FILE KEY PID SECONDS: until FILE has KEY=1 (0: the process gave up)
wait_key() {
	for _ in $(seq 1 $(($4 * 20))); do
		[ "$(kv "$1" "$2")" = 1 ] && return 0
		[ "$(kv "$1" "$2")" = 0 ] && return 1
		alive "$3" || { [ "$(kv "$1" "$2")" = 1 ]; return; }
		sleep 0.05
	done
	return 1
}

# How busy the machine was with other work (as in bench/run.sh)
POSTMASTER_PID=$(head -1 "$DATA_DIR/data/postmaster.pid")
cpu_snapshot() {
	echo "$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat) $(proc_jiffies "$POSTMASTER_PID" $$) $(uptime_cs)"
}
CPU_MARK=$(cpu_snapshot)

RAW=$RUN/fanout.tsv
: >"$RAW"
# one case -> one line of RAW (columns: see the report below)
run_case() {	# REP LISTENERS SYSTEM
	local rep=$1 n=$2 sys=$3 out=$RUN/ml.out mpid ok=1 j0 u0 j1 u1 ccpu
	settle
	rm -f "$RUN/ml.ready" "$out"
	"$ML" -d "$CONN" -m "$sys" -n "$n" -c fan -p 2 -l -r "$RUN/ml.ready" \
		-w $((T_SAT + T_PACED + 2 * DRAIN_MAX + 120)) >"$out" 2>"$RUN/ml.err" &
	mpid=$!
	BG_PIDS+=("$mpid")
	for _ in $(seq 1 2400); do
		[ -f "$RUN/ml.ready" ] && break
		alive "$mpid" || { cat "$RUN/ml.err" >&2; return 1; }
		sleep 0.05
	done
	[ -f "$RUN/ml.ready" ] || { echo "fanout_scale.sh: $n listeners not ready" >&2; return 1; }
	# saturated
	j0=$(jiffies "$mpid"); u0=$(uptime_cs)
	"$NB" notify -d "$CONN" -m "$sys" -c fan -T -S -t "$T_SAT" >"$RUN/n1.out" 2>"$RUN/n1.err" || true
	wait_key "$out" p1_done "$mpid" "$DRAIN_MAX" || ok=0
	j1=$(jiffies "$mpid"); u1=$(uptime_cs)
	ccpu=$(awk -v j="$((j1 - j0))" -v u="$((u1 - u0))" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.0f", (u > 0 ? 100 * (j / hz) / (u / 100) : 0) }')
	# paced
	if [ $ok = 1 ]; then
		"$NB" notify -d "$CONN" -m "$sys" -c fan -T -S -R "$RATE" -t "$T_PACED" >"$RUN/n2.out" 2>"$RUN/n2.err" || true
		wait_key "$out" p2_done "$mpid" "$DRAIN_MAX" || ok=0
	else
		: >"$RUN/n2.out"
	fi
	kill -TERM "$mpid" 2>/dev/null || true
	wait "$mpid" 2>/dev/null || true
	printf '%s\t' "$rep" "$n" "$sys" \
		"$(kv "$RUN/n1.out" rate)" "$(kv "$RUN/n1.out" ok)" "$(kv "$out" p1_deliveries_per_s)" \
		"$(kv "$out" p1_lat_p50)" "$(kv "$out" p1_lat_p99)" "$(kv "$out" p1_lat_max)" "$(kv "$out" p1_complete)" \
		"$(kv "$RUN/n2.out" rate)" "$(kv "$RUN/n2.out" ok)" "$(kv "$out" p2_deliveries_per_s)" \
		"$(kv "$out" p2_lat_p50)" "$(kv "$out" p2_lat_p99)" "$(kv "$out" p2_lat_max)" "$(kv "$out" p2_complete)" \
		"$(( $(num "$RUN/n1.out" errors) + $(num "$RUN/n2.out" errors) ))" "$ccpu" \
		"$(kv "$out" p1_total)" "$(kv "$out" p2_total)" "$(kv "$out" lost)" >>"$RAW"
	printf '%s\n' "$ok" >>"$RAW"
	log "   rep $rep  $n listeners  $sys: saturated $(kv "$RUN/n1.out" rate) notifies/s, $(kv "$out" p1_deliveries_per_s) deliveries/s, p99 $(kv "$out" p1_lat_p99) us (listener process CPU $ccpu%); paced ${RATE}/s: p50 $(kv "$out" p2_lat_p50) p99 $(kv "$out" p2_lat_p99) max $(kv "$out" p2_lat_max) us; complete $(kv "$out" p1_complete)/$(kv "$out" p2_complete)$([ $ok = 1 ] || echo ", NOT DRAINED within $DRAIN_MAX s")"
}

log "fan-out: 1 notifier, listeners $LISTENERS on one channel, saturated ${T_SAT}s + paced ${RATE}/s ${T_PACED}s, x $REPS reps"
for rep in $(seq 1 "$REPS"); do
	for n in $LISTENERS; do
		for sys in core ext; do
			run_case "$rep" "$n" "$sys"
		done
	done
done
ELAPSED=$(( $(date +%s) - START_EPOCH ))
LOG_ERRORS=$(grep -cE '(ERROR|FATAL|PANIC):' "$DATA_DIR/log/postmaster.log" || true)
OTHER_CPU=$(awk -v a="$CPU_MARK" -v b="$(cpu_snapshot)" -v n="$(nproc)" -v hz="$(getconf CLK_TCK)" 'BEGIN {
	split(a, x, " "); split(b, y, " ")
	wall = (y[3] - x[3]) / 100 * hz * n
	o = (y[1] - x[1]) - (y[2] - x[2])
	if (o < 0) o = 0
	printf "%.0f", (wall > 0 ? 100 * o / wall : 0) }')

# ------------------------------------------------------------------ report
# RAW columns: 1 rep, 2 listeners, 3 system, saturated: 4 notifies/s,
# 5 sent, 6 deliveries/s, 7 p50, 8 p99, 9 max us, 10 complete; paced: 11
# notifies/s, 12 sent, 13 deliveries/s, 14 p50, 15 p99, 16 max us, 17
# complete; 18 notifier errors, 19 listener process CPU % (saturated), 20
# and 21 received in each phase, 22 connections lost, 23 drained in time
med() {	# CONDITION COLUMN -> median over the repetitions
	awk -F'\t' "($1) && \$$2 != \"\" { a[++k] = \$$2 + 0 }
	END {
		if (k == 0) { print \"nan\"; exit }
		for (i = 2; i <= k; i++) { x = a[i]; j = i - 1; while (j > 0 && a[j] > x) { a[j + 1] = a[j]; j-- } a[j + 1] = x }
		print (k % 2) ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
	}" "$RAW"
}
maxof() { awk -F'\t' "($1) { if (!n++ || \$$2 + 0 > m) m = \$$2 + 0 } END { print (n ? m : \"nan\") }" "$RAW"; }
pr() {	# NUM-CONDITION DEN-CONDITION COLUMN -> "median min max" of per-rep ratios
	awk -F'\t' "($1) { n[\$1] = \$$3 } ($2) { d[\$1] = \$$3 }
	END {
		for (r in n) if ((r in d) && d[r] + 0 > 0 && n[r] != \"\") a[++k] = n[r] / d[r]
		if (k == 0) { print \"nan nan nan\"; exit }
		for (i = 2; i <= k; i++) { x = a[i]; j = i - 1; while (j > 0 && a[j] > x) { a[j + 1] = a[j]; j-- } a[j + 1] = x }
		print ((k % 2) ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2), a[1], a[k]
	}" "$RAW"
}
fr() {
	awk -v s="$1" 'BEGIN { split(s, a, " ")
		if (a[1] == "nan") print "n/a"
		else if (sprintf("%.2f", a[2]) == sprintf("%.2f", a[3])) printf "%.2f", a[1]
		else printf "%.2f (%.2f–%.2f)", a[1], a[2], a[3] }'
}
f0() { awk -v a="$1" 'BEGIN { if (a == "nan" || a == "") print "n/a"; else printf "%.0f", a }'; }
# latency in ms when large
lat() { awk -v a="$1" 'BEGIN { if (a == "nan" || a == "") print "n/a"; else if (a >= 10000) printf "%.0f ms", a / 1000; else printf "%.0f µs", a }'; }
complete() {	# CONDITION -> yes (n of n runs) / no
	awk -F'\t' "($1) { n++; if (\$10 == 1 && \$17 == 1 && \$22 == 0 && \$23 == 1) ok++ } END {
		if (ok == n) printf \"yes (%d of %d runs)\", n, n; else printf \"NO (%d of %d runs)\", ok, n }" "$RAW"
}

SEC=$RUN/fanout.md
{
	echo "### 10. Fan-out at scale: one notifier, 10 to $NMAX listeners on one channel"
	echo
	echo "Generated by \`bench/fanout_scale.sh$([ $QUICK = 1 ] && echo " --quick" || true)\` on $(date -u '+%Y-%m-%d %H:%M UTC') in ${ELAPSED} s$([ $QUICK = 1 ] && echo " (smoke size: the numbers mean nothing)" || true); notify_ext from commit $BUILD_COMMIT ($SO_NOTE); a cluster of its own: $(printf '`%s`, ' "${CONF[@]}" | sed 's/, $//'), else initdb's defaults."
	echo "Each listener is a connection of its own (a backend each) that LISTENs or ext_listens \`fan\`; all of them"
	echo "are held by one libpq process (\`bench/multilisten.c\`) that polls every socket and reads each notification"
	echo "at once. One notifier connection sends autocommit \`pg_notify\`/\`ext_notify\` on \`fan\`, the payload being the"
	echo "time just before the query is sent (same machine, same clock); latency = that to the listener process's"
	echo "receipt. Saturated: the notifier sends as fast as the server answers for ${T_SAT} s; deliveries/s = all"
	echo "notifications received by all listeners / (last receipt - first send), so the time the listeners take to"
	echo "drain their backlog counts; its latency includes that backlog. Paced: ${RATE} notifies/s for ${T_PACED} s on"
	echo "the same listeners (sent/s: the rate the notifier kept; one notify at a time). $REPS repetition(s), core and notify_ext interleaved in each; medians; ratios are medians"
	echo "of per-repetition ratios (range in parentheses). Client CPU = the listener process's CPU time / wall time"
	echo "in the saturated phase (100% = the one-threaded client was the limit)."
	echo
	echo "| listeners | system | saturated: notifies/s | deliveries/s | ext/core | p50 | p99 | client CPU | paced ${RATE}/s: sent/s | p50 | p99 | max | p99 ext/core | every listener got every one |"
	echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
	for n in $LISTENERS; do
		for sys in core ext; do
			c="\$2 == $n && \$3 == \"$sys\""
			cc="\$2 == $n && \$3 == \"core\""
			rd=""; rl=""
			if [ $sys = ext ]; then rd=$(fr "$(pr "$c" "$cc" 6)"); rl=$(fr "$(pr "$c" "$cc" 15)"); fi
			echo "| $n | $([ $sys = core ] && echo core || echo notify_ext) | $(f0 "$(med "$c" 4)") | $(f0 "$(med "$c" 6)") | $rd | $(lat "$(med "$c" 7)") | $(lat "$(med "$c" 8)") | $(f0 "$(med "$c" 19)")% | $(f0 "$(med "$c" 11)") | $(lat "$(med "$c" 14)") | $(lat "$(med "$c" 15)") | $(lat "$(maxof "$c" 16)") | $rl | $(complete "$c") |"
		done
	done
	echo
	e=$(awk -F'\t' '{ s += $18 } END { print s + 0 }' "$RAW")
	[ "$e" = 0 ] || { echo "Notify calls that failed: $e."; echo; }
	[ "$LOG_ERRORS" = 0 ] || { echo "The server logged $LOG_ERRORS ERROR/FATAL/PANIC lines during the run."; echo; }
	echo "Other processes on the machine used $OTHER_CPU% of its CPU time during this workload."
	echo
} >"$SEC"

cat "$SEC"
if [ -n "$MD" ]; then
	cp "$SEC" "$MD"
	log "wrote $MD"
fi
log "fan-out at scale: done in ${ELAPSED} s"
exit 0
