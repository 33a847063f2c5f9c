#!/usr/bin/env bash
# bench/channels.sh [--quick] [--md FILE] [--port N] [--no-build] [--keep]
#
# Many channels: 10,000 listened channels spread over 200 sessions (50
# each: session s listens on ch_<50s> .. ch_<50s+49>), and notifiers on
# random channels among them, core LISTEN/NOTIFY against notify_ext in one
# run on a throwaway cluster of its own, the systems interleaved within
# each repetition.  The sessions are real connections, one backend each,
# held by one libpq process (bench/multilisten.c) that polls every socket
# and reads at once.  The notifiers: pgbench -M prepared, 2 clients,
# autocommit `SELECT pg_notify|ext_notify('ch_' || random(0, 9999), 'x')`,
# so each notification is for exactly one session.
#
# Measured per case: notifies/s; every notification received exactly once
# (received by the sessions = committed; for notify_ext, also = the
# `delivered` counters of notify_ext_listeners); and what the notifies cost
# the 200 listening backends, from /proc of those backends over the run
# (from just before pgbench to the end of the drain): their voluntary
# context switches, i.e. how many times they went to sleep after being
# woken (an idle backend sleeps in the kernel until a signal or its client
# wakes it; the client sends them nothing here), and their CPU time.  Core
# PostgreSQL 15 signals every listening backend of the database at each
# notifying commit (async.c, SignalBackends), whatever the channel;
# notify_ext signals the backends that listen on a channel the transaction
# notified, once until they have read.  Wake-ups per notify = context
# switches / notifications committed: a backend signalled again before it
# has gone back to sleep wakes once, so this counts wake-ups, not signals.
# A notification's own delivery costs its one session a wake-up too.
#
# Prints the markdown section (a table of medians and ratios), and with
# --md writes it to FILE; bench/run.sh calls this with --md and
# bench/report.sh puts the section into results.md.  Installs what it needs
# with apt-get, builds and installs notify_ext (scripts/lib.sh) unless
# --no-build, compiles bench/multilisten.c.  Default size about 1.5 minutes
# on 2 cores; --quick (CI smoke, the numbers mean nothing) about 15 s.
#
#   --quick     smoke size: 1 repetition of 1 s
#   --md FILE   write the markdown section to FILE
#   --port N    the cluster's port (default 5620)
#   --no-build  notify_ext is built and installed already (bench/run.sh)
#   --keep      leave the cluster running and the raw data in place
#
# Sizes from the environment: NE_CHANNELS_REPS, NE_CHANNELS_T (seconds per
# pgbench run), NE_CHANNELS_SESSIONS (200), NE_CHANNELS_PER (channels per
# session, 50), NE_CHANNELS_CLIENTS (pgbench clients, 2).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")

. "$HERE/lib.sh"
ne_bench_options "${NE_CHANNELS_PORT:-5620}" "$@"

if [ $QUICK = 1 ]; then
	REPS=1 T=1
else
	REPS=3 T=5
fi
REPS=${NE_CHANNELS_REPS:-$REPS}
T=${NE_CHANNELS_T:-$T}
SESSIONS=${NE_CHANNELS_SESSIONS:-200}
PER=${NE_CHANNELS_PER:-50}
CLIENTS=${NE_CHANNELS_CLIENTS:-2}
NCH=$((SESSIONS * PER))

START_EPOCH=$(date +%s)
log() { printf '[channels %4ds] %s\n' $(( $(date +%s) - START_EPOCH )) "$*" >&2; }

# shellcheck source=../scripts/lib.sh
. "$ROOT/scripts/lib.sh"

ne_apt postgresql-15 postgresql-contrib postgresql-server-dev-15 libkrb5-dev libpq-dev gcc make
if [ $BUILD = 1 ]; then
	log "building and installing notify_ext"
	ne_build_install >/dev/null
fi
BUILD_COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$ROOT" diff --quiet HEAD -- src notify_ext--1.1.sql Makefile 2>/dev/null ||
	BUILD_COMMIT="$BUILD_COMMIT + uncommitted changes to the extension"

BINDIR=$("$PG_CONFIG" --bindir)
SO=$("$PG_CONFIG" --pkglibdir)/notify_ext.so
RUN=$(mktemp -d /tmp/ne_channels.XXXXXX)
[ "$(id -u)" = 0 ] && chown postgres: "$RUN"
chmod 755 "$RUN"
DATA_DIR=$RUN/cluster
ML=$RUN/multilisten
gcc -O2 -Wall -Wextra -I"$("$PG_CONFIG" --includedir)" -o "$ML" "$HERE/multilisten.c" \
	-L"$("$PG_CONFIG" --libdir)" -lpq
[ "$(ulimit -n)" -ge $((SESSIONS + 64)) ] || ulimit -n $((SESSIONS + 64))

BG_PIDS=()
cleanup() {
	local p
	for p in "${BG_PIDS[@]:-}"; do
		[ -n "$p" ] && grep -q multilisten "/proc/$p/cmdline" 2>/dev/null &&
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

# notify_ext.max_channels: every channel listened to, with room
MAXCH=$(( (NCH + 1024 + 1023) / 1024 * 1024 ))
[ "$MAXCH" -ge 4096 ] || MAXCH=4096
CONF=(
	"shared_preload_libraries = 'notify_ext'"
	"max_connections = $((SESSIONS + CLIENTS + 40))"
	"notify_ext.max_channels = $MAXCH"
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
for sys in core ext; do
	fn=$([ $sys = core ] && echo pg_notify || echo ext_notify)
	printf '%s\n' "\\set ch random(0, $((NCH - 1)))" "SELECT $fn('ch_' || :ch, 'x');" >"$RUN/notify_$sys.sql"
done

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
# the listening backends, summed: "voluntary nonvoluntary cpu-ns" (context
# switches from /proc/PID/status; time on CPU from /proc/PID/schedstat, in
# ns: /proc/PID/stat's clock ticks are rounded down per process, and 200
# backends' few ms each would sum to nothing)
backends_snapshot() {	# PIDS (comma-separated)
	local files=() stats=() p
	for p in ${1//,/ }; do files+=("/proc/$p/status"); stats+=("/proc/$p/schedstat"); done
	echo "$(awk '/^voluntary_ctxt_switches:/ { v += $2 } /^nonvoluntary_ctxt_switches:/ { n += $2 } END { print v + 0, n + 0 }' "${files[@]}") $(awk '{ s += $1 } END { printf "%.0f\n", s }' "${stats[@]}")"
}

# How busy the machine was with other work (as in bench/run.sh)
POSTMASTER_PID=$(head -1 "$DATA_DIR/data/postmaster.pid")
cpu_snapshot() {
	echo "$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat) $(proc_jiffies "$POSTMASTER_PID" $$) $(awk '{ printf "%d", $1 * 100 }' /proc/uptime)"
}
CPU_MARK=$(cpu_snapshot)
HZ=$(getconf CLK_TCK)

RAW=$RUN/channels.tsv
: >"$RAW"
run_case() {	# REP SYSTEM
	local rep=$1 sys=$2 out=$RUN/ml.out mpid pids fn pgout tps n got vdel=- s0 s1 t0 t1 setup
	fn=$([ $sys = core ] && echo pg_notify || echo ext_notify)
	settle
	rm -f "$RUN/ml.ready" "$out"
	t0=$(date +%s.%N)
	# two phases: the notifies end the first; the second never ends, so
	# the sessions stay until they are counted (then SIGTERM)
	"$ML" -d "$CONN" -m "$sys" -n "$SESSIONS" -k "$PER" -c "ch_%d" -p 2 -r "$RUN/ml.ready" \
		-w $((T + 600)) >"$out" 2>"$RUN/ml.err" &
	mpid=$!
	BG_PIDS+=("$mpid")
	for _ in $(seq 1 2400); do
		[ -f "$RUN/ml.ready" ] && break
		alive "$mpid" || { cat "$RUN/ml.err" >&2; return 1; }
		sleep 0.05
	done
	[ -f "$RUN/ml.ready" ] || { echo "channels.sh: sessions not ready" >&2; return 1; }
	setup=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
	pids=$(kv "$RUN/ml.ready" pids)
	s0=$(backends_snapshot "$pids")
	t0=$(date +%s.%N)
	if ! pgout=$("$BINDIR/pgbench" -n -M prepared -f "$RUN/notify_$sys.sql" -c "$CLIENTS" -j "$CLIENTS" \
		-T "$T" -h "$SOCK" -p "$PORT" -U postgres bench 2>&1); then
		echo "$pgout" >&2
		return 1
	fi
	tps=$(awk '/^tps = / { print $3; exit }' <<<"$pgout")
	n=$(awk -F': ' '/number of transactions actually processed/ { split($2, a, " "); print a[1] }' <<<"$pgout")
	# one STOP per session, on its first channel, in one transaction
	PSQL -d bench -c "SELECT count($fn('ch_' || (s * $PER), 'STOP')) FROM generate_series(0, $((SESSIONS - 1))) s" >/dev/null
	for _ in $(seq 1 6000); do
		[ "$(kv "$out" p1_done)" = 1 ] && break
		alive "$mpid" || break
		sleep 0.05
	done
	t1=$(date +%s.%N)
	s1=$(backends_snapshot "$pids")
	got=$(kv "$out" p1_total)
	if [ $sys = ext ]; then
		vdel=$(PSQL -d bench -c "SELECT coalesce(sum(delivered), 0) FROM notify_ext_listeners WHERE pid IN ($pids)")
		vdel=$((vdel - SESSIONS))	# the STOPs
	fi
	kill -TERM "$mpid" 2>/dev/null || true
	wait "$mpid" 2>/dev/null || true
	read -r v0 nv0 c0 <<<"$s0"
	read -r v1 nv1 c1 <<<"$s1"
	printf '%s\t' "$rep" "$sys" "$tps" "$n" "${got:-0}" "$vdel" "$((v1 - v0))" "$((nv1 - nv0))" "$((c1 - c0))" \
		"$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')" "$setup" >>"$RAW"
	printf '%s\n' "$(kv "$out" p1_done)" >>"$RAW"
	log "   rep $rep  $sys: $tps notifies/s, committed $n, received $got$([ $sys = ext ] && echo " (notify_ext_listeners: $vdel)" || true); listening backends: $((v1 - v0)) voluntary context switches ($(awk -v a=$((v1 - v0)) -v n="$n" 'BEGIN { printf "%.2f", (n > 0 ? a / n : 0) }') per notify), CPU $(( (c1 - c0) / 1000000 )) ms; sessions set up in $setup s"
}

log "channels: $NCH channels over $SESSIONS sessions ($PER each), $CLIENTS pgbench clients notifying random ones, ${T}s x $REPS reps"
for rep in $(seq 1 "$REPS"); do
	for sys in core ext; do
		run_case "$rep" "$sys"
	done
done
ELAPSED=$(( $(date +%s) - START_EPOCH ))
LOG_ERRORS=$(grep -cE '(ERROR|FATAL|PANIC):' "$DATA_DIR/log/postmaster.log" || true)
OTHER_CPU=$(awk -v a="$CPU_MARK" -v b="$(cpu_snapshot)" -v n="$(nproc)" -v hz="$HZ" 'BEGIN {
	split(a, x, " "); split(b, y, " ")
	wall = (y[3] - x[3]) / 100 * hz * n
	o = (y[1] - x[1]) - (y[2] - x[2])
	if (o < 0) o = 0
	printf "%.0f", (wall > 0 ? 100 * o / wall : 0) }')

# ------------------------------------------------------------------ report
# RAW columns: 1 rep, 2 system, 3 tps, 4 committed, 5 received, 6
# notify_ext_listeners delivered (- for core), 7 voluntary and 8
# nonvoluntary context switches of the listening backends, 9 their CPU
# ns, 10 seconds from pgbench's start to the end of the drain, 11
# sessions' setup s, 12 drained (1)
med() {	# CONDITION AWK-EXPRESSION -> median over the repetitions
	awk -F'\t' "($1) { a[++k] = $2 }
	END {
		if (k == 0) { print \"nan\"; exit }
		for (i = 2; i <= k; i++) { x = a[i]; j = i - 1; while (j > 0 && a[j] > x) { a[j + 1] = a[j]; j-- } a[j + 1] = x }
		print (k % 2) ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
	}" "$RAW"
}
pr() {	# NUM-CONDITION DEN-CONDITION AWK-EXPRESSION -> "median min max" of per-rep ratios
	awk -F'\t' "($1) { n[\$1] = $3 } ($2) { d[\$1] = $3 }
	END {
		for (r in n) if ((r in d) && d[r] + 0 > 0) a[++k] = n[r] / d[r]
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
f2() { awk -v a="$1" 'BEGIN { if (a == "nan" || a == "") print "n/a"; else if (a >= 10) printf "%.0f", a; else printf "%.2f", a }'; }
delivered() {	# SYSTEM
	awk -F'\t' -v s="$1" '$2 == s {
		runs++
		if ($5 != $4 || $12 != 1 || (s == "ext" && $6 != $4)) bad++
		c += $4; g += $5
	} END {
		if (bad) printf "NO (%d runs: received %d of %d)", bad, g, c
		else if (s == "ext") printf "yes (%d runs; = notify_ext_listeners.delivered)", runs
		else printf "yes (%d runs)", runs
	}' "$RAW"
}

SEC=$RUN/channels.md
CE='$2 == "ext"'
CC='$2 == "core"'
{
	echo "### 11. Many channels: $NCH listened channels over $SESSIONS sessions, notifies on random ones"
	echo
	echo "Generated by \`bench/channels.sh$([ $QUICK = 1 ] && echo " --quick" || true)\` on $(date -u '+%Y-%m-%d %H:%M UTC') in ${ELAPSED} s$([ $QUICK = 1 ] && echo " (smoke size: the numbers mean nothing)" || true); notify_ext from commit $BUILD_COMMIT ($SO_NOTE); a cluster of its own: $(printf '`%s`, ' "${CONF[@]}" | sed 's/, $//'), else initdb's defaults."
	echo "$SESSIONS sessions (connections held by one libpq process, \`bench/multilisten.c\`, which polls them all and reads"
	echo "at once) listen on $PER channels each (\`LISTEN\` or \`ext_listen\`; session s on \`ch_<${PER}s>\` to \`ch_<${PER}s+$((PER - 1))>\`)."
	echo "pgbench -M prepared, $CLIENTS clients, ${T} s, autocommit \`SELECT pg_notify|ext_notify('ch_' || <random 0..$((NCH - 1))>, 'x')\`:"
	echo "each notification is for exactly one session. $REPS repetition(s), core and notify_ext interleaved in each; medians,"
	echo "ratios are medians of per-repetition ratios (range in parentheses)."
	echo
	echo "Wake-ups are measured on the $SESSIONS listening backends themselves, from /proc over the run (pgbench's start"
	echo "to the end of the drain): voluntary context switches, i.e. how often a backend went back to sleep after"
	echo "being woken (idle backends sleep in the kernel until a signal wakes them; their client sends them nothing"
	echo "here), and their time on CPU (/proc/PID/schedstat). Core PostgreSQL 15 signals every listening backend of the database at each"
	echo "notifying commit, whatever its channel (\`SignalBackends()\` in async.c: $SESSIONS signals per notify here);"
	echo "notify_ext signals only the backends listening on a channel the transaction notified (1 here). A backend"
	echo "signalled again before it is back asleep wakes once, so the column counts wake-ups, not signals; the"
	echo "one session a notification is for wakes to deliver it in both systems. The final STOP notifications"
	echo "(one per session, in one transaction) are in the counts, not in the number of notifies."
	echo
	echo "| system | notifies/s | ext/core | listening backends woken per notify | their CPU per notify | their CPU, % of one core | every notification received once |"
	echo "|---|---:|---:|---:|---:|---:|---|"
	for sys in core ext; do
		c="\$2 == \"$sys\""
		rt=""
		[ $sys = core ] || rt=$(fr "$(pr "$CE" "$CC" '$3')")
		echo "| $([ $sys = core ] && echo core || echo notify_ext) | $(f0 "$(med "$c" '$3')") | $rt | $(f2 "$(med "$c" '($4 > 0 ? $7 / $4 : 0)')") | $(f2 "$(med "$c" '($4 > 0 ? $9 / 1000 / $4 : 0)')") µs | $(f0 "$(med "$c" '($10 > 0 ? 100 * $9 / 1e9 / $10 : 0)')")% | $(delivered "$sys") |"
	done
	echo
	echo "Sessions' setup (connect, listen on $PER channels each, check): core $(med "$CC" '$11') s, notify_ext $(med "$CE" '$11') s (medians)."
	echo
	[ "$LOG_ERRORS" = 0 ] || { echo "The server logged $LOG_ERRORS ERROR/FATAL/PANIC lines during the run."; echo; }
	echo "Other processes on the machine used $OTHER_CPU% of its CPU time during this workload."
	echo
} >"$SEC"

cat "$SEC"
if [ -n "$MD" ]; then
	cp "$SEC" "$MD"
	log "wrote $MD"
fi
log "channels: done in ${ELAPSED} s"
exit 0
