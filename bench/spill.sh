#!/usr/bin/env bash
# bench/spill.sh [--quick] [--md FILE] [--port N] [--no-build] [--keep]
#
# The spilled queue (issue 8): notify_ext's ring spills to files in
# $PGDATA/pg_notify_ext/ when listeners need more than it holds, core
# LISTEN/NOTIFY writes everything to its SLRU (pg_notify/).  Measured in
# one run on one throwaway cluster of its own, core and notify_ext
# interleaved within each repetition; bench/spill.c is the driver.
#
#   (a) Notifier throughput while a listener is parked in a transaction.
#       CLIENTS connections commit `BEGIN; INSERT INTO spill_t VALUES (1);
#       SELECT pg_notify|ext_notify('spill', '<client>:<n>|' padded to
#       PAYLOAD bytes); COMMIT` back to back for T seconds (one round
#       trip each), with an idle listener reading the channel at once and,
#       in the "parked" case, a second listener that LISTENs and stays in an
#       open transaction (BEGIN; SELECT 1) meanwhile, so that everything
#       sent stays queued (notify_ext: the ring spills to disk; core: its
#       SLRU grows).  Then the parked listener COMMITs and reads it all:
#       time to drain = from its COMMIT to the last notification.  The
#       "none" case (no parked listener) is the baseline of each system.
#       Every listener must get every committed notification, each
#       client's in order (checked; a failure is said in the table).
#   (b) One transaction of BIG_N distinct notifications (payloads "<n>|"
#       padded with x to BIG_P bytes): time of the notify calls, of the
#       COMMIT, and until an idle listener has received the last one (from
#       the start of the COMMIT); the notifying backend's memory: the sum of
#       pg_backend_memory_contexts before BEGIN and right before COMMIT,
#       and VmHWM (/proc) before and after.  The listener checks that it
#       gets 1..BIG_N in order.
#
# Medians over the repetitions.  Prints the markdown section, and with --md
# writes it to FILE.  Installs what it needs with apt-get, builds and
# installs notify_ext (scripts/lib.sh) unless --no-build, compiles
# bench/spill.c.  Default size about 2 to 3 minutes on 2 cores; --quick
# (smoke: the numbers mean nothing) about 15 s.
#
#   --quick     1 repetition, 1 s per throughput case with 7000-byte
#               payloads (enough to spill), BIG_N = 50000
#   --md FILE   write the markdown section to FILE
#   --port N    the cluster's port (default 57480)
#   --no-build  notify_ext is built and installed already
#   --keep      leave the cluster running and the raw data in place
#
# Sizes from the environment: NE_SPILL_REPS (3), NE_SPILL_T (seconds, 8),
# NE_SPILL_CLIENTS (4), NE_SPILL_PAYLOAD (bytes, 4000), NE_SPILL_BIG_N
# (1000000), NE_SPILL_BIG_P (bytes, 150), NE_SPILL_INSERT=0 (no INSERT).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")

. "$HERE/lib.sh"
ne_bench_options "${NE_SPILL_PORT:-57480}" "$@"

if [ $QUICK = 1 ]; then
	REPS=1 T=1 BIG_N=50000 PAYLOAD=7000
else
	REPS=3 T=8 BIG_N=1000000 PAYLOAD=4000
fi
REPS=${NE_SPILL_REPS:-$REPS}
T=${NE_SPILL_T:-$T}
BIG_N=${NE_SPILL_BIG_N:-$BIG_N}
BIG_P=${NE_SPILL_BIG_P:-150}
CLIENTS=${NE_SPILL_CLIENTS:-4}
PAYLOAD=${NE_SPILL_PAYLOAD:-$PAYLOAD}
INSERT="INSERT INTO spill_t VALUES (1)"
[ "${NE_SPILL_INSERT:-1}" != 0 ] || INSERT=""

START_EPOCH=$(date +%s)
log() { printf '[spill %4ds] %s\n' $(( $(date +%s) - START_EPOCH )) "$*" >&2; }

# shellcheck source=../scripts/lib.sh
. "$ROOT/scripts/lib.sh"

ne_apt postgresql-15 postgresql-server-dev-15 libkrb5-dev libpq-dev gcc make
if [ $BUILD = 1 ]; then
	log "building and installing notify_ext"
	ne_build_install >/dev/null
fi
BUILD_COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$ROOT" diff --quiet HEAD -- src notify_ext--1.0.sql notify_ext--1.1.sql Makefile 2>/dev/null ||
	BUILD_COMMIT="$BUILD_COMMIT + uncommitted changes to the extension"

BINDIR=$("$PG_CONFIG" --bindir)
SO=$("$PG_CONFIG" --pkglibdir)/notify_ext.so
RUN=$(mktemp -d /tmp/ne_spill.XXXXXX)
[ "$(id -u)" = 0 ] && chown postgres: "$RUN"
chmod 755 "$RUN"
DATA_DIR=$RUN/cluster
DRV=$RUN/spill
gcc -O2 -Wall -Wextra -pthread -I"$("$PG_CONFIG" --includedir)" -o "$DRV" "$HERE/spill.c" \
	-L"$("$PG_CONFIG" --libdir)" -lpq

BG_PIDS=()
cleanup() {
	local p
	for p in "${BG_PIDS[@]:-}"; do
		# only our own driver processes still running (a pid may have been reused)
		[ -n "$p" ] && grep -q "$DRV" "/proc/$p/cmdline" 2>/dev/null &&
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

# the module the postmaster loaded is the installed file of its start; with
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

PSQL -d postgres -c "CREATE DATABASE bench"
PSQL -d bench -c "CREATE EXTENSION notify_ext" -c "CREATE TABLE spill_t (client int)"
RING=$(PSQL -d bench -c "SHOW notify_ext.queue_size")
DISKLIM=$(PSQL -d bench -c "SHOW notify_ext.queue_disk_limit")

spilled() { PSQL -d bench -c "SELECT spilled_bytes FROM notify_ext_queue"; }

# start_listener NAME ARGS...: a background listener, once it listens (LPID)
start_listener() {
	local name=$1
	shift
	rm -f "$RUN/$name.ready" "$RUN/$name.out"
	"$DRV" listen -d "$CONN" -r "$RUN/$name.ready" "$@" >"$RUN/$name.out" 2>"$RUN/$name.err" &
	LPID=$!
	BG_PIDS+=("$LPID")
	for _ in $(seq 1 1200); do
		[ -f "$RUN/$name.ready" ] && return 0
		alive "$LPID" || { cat "$RUN/$name.err" >&2; return 1; }
		sleep 0.05
	done
	echo "spill.sh: listener $name not ready" >&2
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

# between cases: no client backend left, both queues empty (core's tail
# moves on only when somebody notifies, hence the burst on a channel nobody
# listens to), no spill file left
settle() {
	for _ in $(seq 1 200); do
		[ "$(PSQL -d postgres -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()")" = 0 ] && break
		sleep 0.05
	done
	PSQL -d bench -c "SELECT count(pg_notify('ne_spill_drain', i::text)) FROM generate_series(1, 3000) i" >/dev/null
	for _ in $(seq 1 200); do
		[ "$(PSQL -d bench -c "SELECT pg_notification_queue_usage() = 0 AND ext_notification_queue_usage() = 0 AND disk_bytes = 0 FROM notify_ext_queue")" = t ] && return 0
		sleep 0.05
	done
	log "   (queues not empty before the next case: core $(PSQL -d bench -c 'SELECT pg_notification_queue_usage()'), ext $(PSQL -d bench -c 'SELECT used_bytes || $$ bytes, $$ || disk_bytes || $$ on disk$$ FROM notify_ext_queue'))"
}

RA=$RUN/flood.tsv
RB=$RUN/big.tsv
: >"$RA"
: >"$RB"

# (a) one case -> one line of RA
run_flood() {	# REP SYSTEM KIND
	local rep=$1 sys=$2 kind=$3 idle_pid park_pid="" a=() s0 s1 drain=-1 pr=-1 po=-1 ps=-1
	settle
	s0=$(spilled)
	start_listener idle -m "$sys" -c spill -o seq -w 600
	idle_pid=$LPID
	if [ "$kind" = parked ]; then
		rm -f "$RUN/go"
		start_listener parked -m "$sys" -c spill -o seq -g "$RUN/go" -w 600
		park_pid=$LPID
	fi
	[ -z "$INSERT" ] || a=(-i "$INSERT")
	"$DRV" flood -d "$CONN" -m "$sys" -c spill -k "$CLIENTS" -t "$T" -P "$PAYLOAD" "${a[@]}" \
		>"$RUN/flood.out" 2>"$RUN/flood.err" || { cat "$RUN/flood.err" >&2; return 1; }
	s1=$(spilled)
	if [ -n "$park_pid" ]; then
		touch "$RUN/go"
		wait_listener "$park_pid" 600
		drain=$(awk -v a="$(kv "$RUN/parked.out" go_us)" -v b="$(kv "$RUN/parked.out" last_us)" \
			'BEGIN { printf "%.3f", (b > a ? (b - a) / 1e6 : -1) }')
		pr=$(kv "$RUN/parked.out" received)
		po=$(kv "$RUN/parked.out" order_ok)
		ps=$(kv "$RUN/parked.out" stop_seen)
	fi
	wait_listener "$idle_pid" 120
	printf '%s\t' "$rep" "$sys" "$kind" \
		"$(kv "$RUN/flood.out" commits_per_s)" "$(kv "$RUN/flood.out" mb_per_s)" \
		"$(kv "$RUN/flood.out" lat_p50_us)" "$(kv "$RUN/flood.out" lat_p99_us)" \
		"$(kv "$RUN/flood.out" lat_max_us)" "$(kv "$RUN/flood.out" failures)" \
		"$(kv "$RUN/flood.out" dir_max_kb)" "$drain" "$(kv "$RUN/flood.out" commits)" \
		"$(kv "$RUN/idle.out" received)" "$(kv "$RUN/idle.out" order_ok)" "$pr" "$po" "$ps" \
		"$(( (s1 - s0) / 1024 ))" >>"$RA"
	printf '%s\n' "$(kv "$RUN/flood.out" usage_max)" >>"$RA"
	log "   rep $rep  $kind  $sys: $(kv "$RUN/flood.out" commits_per_s) commits/s ($(kv "$RUN/flood.out" mb_per_s) MB/s), p99 $(kv "$RUN/flood.out" lat_p99_us) us, max $(kv "$RUN/flood.out" lat_max_us) us, $(kv "$RUN/flood.out" failures) failed, queue dir max $(( $(kv "$RUN/flood.out" dir_max_kb) / 1024 )) MB$([ "$kind" = parked ] && echo ", parked listener drained $pr in $drain s" || true); idle listener got $(kv "$RUN/idle.out" received) of $(kv "$RUN/flood.out" commits)$([ -n "$(kv "$RUN/flood.out" first_error)" ] && echo "; first error: $(kv "$RUN/flood.out" first_error)" || true)"
}

# (b) one case -> one line of RB
run_big() {	# REP SYSTEM
	local rep=$1 sys=$2 lpid s0 s1 deliver
	settle
	s0=$(spilled)
	start_listener bigl -m "$sys" -c big -o big -w 600
	lpid=$LPID
	"$DRV" big -d "$CONN" -m "$sys" -c big -N "$BIG_N" -P "$BIG_P" >"$RUN/big.out" 2>"$RUN/big.err" ||
		{ cat "$RUN/big.err" >&2; return 1; }
	wait_listener "$lpid" 600
	s1=$(spilled)
	deliver=$(awk -v a="$(kv "$RUN/big.out" commit_start_us)" -v b="$(kv "$RUN/bigl.out" last_us)" \
		'BEGIN { printf "%.0f", (b > a ? b - a : -1) }')
	printf '%s\t' "$rep" "$sys" "$(kv "$RUN/big.out" notify_calls_us)" "$(kv "$RUN/big.out" commit_us)" \
		"$deliver" "$(kv "$RUN/bigl.out" received)" "$(kv "$RUN/bigl.out" order_ok)" \
		"$(kv "$RUN/big.out" ctx_before_kb)" "$(kv "$RUN/big.out" ctx_precommit_kb)" \
		"$(kv "$RUN/big.out" hwm_before_kb)" "$(kv "$RUN/big.out" hwm_after_kb)" >>"$RB"
	printf '%s\n' "$(( (s1 - s0) / 1024 ))" >>"$RB"
	log "   rep $rep  big  $sys: calls $(kv "$RUN/big.out" notify_calls_us) us, COMMIT $(kv "$RUN/big.out" commit_us) us, last received $deliver us after COMMIT began ($(kv "$RUN/bigl.out" received) of $BIG_N, in order: $(kv "$RUN/bigl.out" order_ok)), contexts $(kv "$RUN/big.out" ctx_before_kb) -> $(kv "$RUN/big.out" ctx_precommit_kb) kB, VmHWM $(kv "$RUN/big.out" hwm_before_kb) -> $(kv "$RUN/big.out" hwm_after_kb) kB"
}
log "(a) parked listener: $CLIENTS clients, payload $PAYLOAD bytes, ${T}s per case, x $REPS reps; (b) one transaction of $BIG_N notifications of $BIG_P bytes, x $REPS reps; ring $RING, disk limit $DISKLIM"
for rep in $(seq 1 "$REPS"); do
	for kind in none parked; do
		for sys in core ext; do
			run_flood "$rep" "$sys" "$kind"
		done
	done
	for sys in core ext; do
		run_big "$rep" "$sys"
	done
done
ELAPSED=$(( $(date +%s) - START_EPOCH ))

# ------------------------------------------------------------------ report
# RA columns: 1 rep, 2 system, 3 kind, 4 commits/s, 5 MB/s, 6 p50 us, 7 p99
# us, 8 max us, 9 failures, 10 queue dir max kB, 11 drain s, 12 commits,
# 13 idle received, 14 idle order, 15 parked received, 16 parked order,
# 17 parked STOP seen, 18 spilled kB, 19 usage max
# RB columns: 1 rep, 2 system, 3 calls us, 4 commit us, 5 deliver us,
# 6 received, 7 order, 8 ctx before kB, 9 ctx pre-commit kB, 10 VmHWM
# before kB, 11 VmHWM after kB, 12 spilled kB
med() {	# FILE CONDITION AWK-EXPRESSION -> median over the repetitions
	awk -F'\t' "($2) { a[++k] = $3 }
	END {
		if (k == 0) { print \"nan\"; exit }
		for (i = 2; i <= k; i++) { x = a[i]; j = i - 1; while (j > 0 && a[j] > x) { a[j + 1] = a[j]; j-- } a[j + 1] = x }
		print (k % 2) ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
	}" "$1"
}
cnt() { awk -F'\t' "($2) { n++ } END { print n + 0 }" "$1"; }	# FILE CONDITION
f0() { awk -v a="$1" 'BEGIN { if (a == "nan" || a == "" || a < 0) print "n/a"; else printf "%.0f", a }'; }
f1() { awk -v a="$1" 'BEGIN { if (a == "nan" || a == "" || a < 0) print "n/a"; else printf "%.1f", a }'; }
f2() { awk -v a="$1" 'BEGIN { if (a == "nan" || a == "" || a < 0) print "n/a"; else printf "%.2f", a }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "nan" || b == "nan" || b + 0 <= 0) print "n/a"; else printf "%.2f", a / b }'; }
mb() { awk -v a="$1" 'BEGIN { if (a == "nan" || a == "" || a < 0) print "n/a"; else if (a >= 10240) printf "%.0f MB", a / 1024; else printf "%.1f MB", a / 1024 }'; }

SEC=$RUN/spill.md
{
	echo "### 12. Spilled queue: a listener parked in a transaction, and $BIG_N notifications in one transaction"
	echo
	echo "Generated by \`bench/spill.sh$([ $QUICK = 1 ] && echo " --quick" || true)\` on $(date -u '+%Y-%m-%d %H:%M UTC') in ${ELAPSED} s$([ $QUICK = 1 ] && echo " (smoke size: the numbers mean nothing)" || true); notify_ext from commit $BUILD_COMMIT ($SO_NOTE), notify_ext.queue_size $RING, notify_ext.queue_disk_limit $DISKLIM; a cluster of its own: $(printf '`%s`, ' "${CONF[@]}" | sed 's/, $//'), else initdb's defaults. $REPS repetition(s), core and notify_ext interleaved in each; medians."
	echo
	echo "**(a) Notifiers while a listener is parked in a transaction.** $CLIENTS clients each commit \`BEGIN; ${INSERT:+$INSERT; }SELECT pg_notify|ext_notify('spill', <$PAYLOAD-byte payload>); COMMIT\`"
	echo "back to back for $T s (one round trip, bench/spill.c) while an idle listener reads the channel at once. *parked*: a second"
	echo "listener LISTENs and stays in an open transaction meanwhile, so everything sent stays queued: notify_ext spills its ring"
	echo "to \`pg_notify_ext/\`, core fills its SLRU \`pg_notify/\`. Queue on disk = the directory's largest size seen (sampled every"
	echo "200 ms). Then the parked listener COMMITs: drain = from its COMMIT to its last notification. Every listener must get"
	echo "every committed notification, each client's in order (checked)."
	echo
	echo "| listener | system | commits/s | ext/core | MB/s | commit p50 µs | p99 µs | max ms | failed | queue on disk | parked listener: drain s | drain MB/s | checks |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
	for kind in none parked; do
		for sys in core ext; do
			c="\$2 == \"$sys\" && \$3 == \"$kind\""
			cps=$(med "$RA" "$c" '$4')
			er=""
			[ "$sys" = core ] || er=$(ratio "$cps" "$(med "$RA" "\$2 == \"core\" && \$3 == \"$kind\"" '$4')")
			drain="-"; drate="-"
			if [ "$kind" = parked ]; then
				drain=$(f2 "$(med "$RA" "$c" '$11')")
				drate=$(f0 "$(med "$RA" "$c && \$11 > 0" "\$15 * $PAYLOAD / 1048576 / \$11")")
			fi
			bad=$(cnt "$RA" "$c && (\$13 != \$12 || \$14 != 1 || (\$3 == \"parked\" && (\$15 != \$12 || \$16 != 1 || \$17 != 1)))")
			fails=$(cnt "$RA" "$c && \$9 > 0")
			checks="ok"
			[ "$bad" = 0 ] || checks="a listener missed or misordered notifications in $bad run(s)"
			[ "$fails" = 0 ] || checks="$checks; commits failed in $fails run(s)"
			echo "| $kind | $([ "$sys" = core ] && echo core || echo notify_ext) | $(f0 "$cps") | ${er:-} | $(f1 "$(med "$RA" "$c" '$5')") | $(f0 "$(med "$RA" "$c" '$6')") | $(f0 "$(med "$RA" "$c" '$7')") | $(f1 "$(med "$RA" "$c" '$8 / 1000')") | $(f0 "$(med "$RA" "$c" '$9')") | $(mb "$(med "$RA" "$c" '$10')") | $drain | $drate | $checks |"
		done
	done
	echo
	echo "notify_ext wrote a median $(mb "$(med "$RA" '$2 == "ext" && $3 == "parked"' '$18')") to spill files per parked case ($(mb "$(med "$RA" '$2 == "ext" && $3 == "none"' '$18')") without a parked listener)."
	echo
	echo "**(b) One transaction of $BIG_N distinct notifications** (\`SELECT count(*) FROM (SELECT pg_notify|ext_notify('big', rpad(i || '|', $BIG_P, 'x')) FROM generate_series(1, $BIG_N) i) s\`"
	echo "in \`BEGIN; ... COMMIT\`), an idle listener on the channel. Received = from the start of the COMMIT until the listener"
	echo "has the last one (it checks 1..$BIG_N in order). Memory of the notifying backend: the sum of"
	echo "\`pg_backend_memory_contexts.total_bytes\` before BEGIN and right before COMMIT, and its VmHWM (peak RSS) before and after."
	echo
	echo "| system | notify calls s | COMMIT s | received s | memory contexts before → before COMMIT | VmHWM before → after | written to spill files | checks |"
	echo "|---|---:|---:|---:|---|---|---:|---|"
	for sys in core ext; do
		c="\$2 == \"$sys\""
		bad=$(cnt "$RB" "$c && (\$6 != $BIG_N || \$7 != 1)")
		checks="ok"
		[ "$bad" = 0 ] || checks="the listener missed or misordered notifications in $bad run(s)"
		sp="-"
		[ "$sys" = core ] || sp=$(mb "$(med "$RB" "$c" '$12')")
		echo "| $([ "$sys" = core ] && echo core || echo notify_ext) | $(f2 "$(med "$RB" "$c" '$3 / 1e6')") | $(f2 "$(med "$RB" "$c" '$4 / 1e6')") | $(f2 "$(med "$RB" "$c" '$5 / 1e6')") | $(mb "$(med "$RB" "$c" '$8')") → $(mb "$(med "$RB" "$c" '$9')") | $(mb "$(med "$RB" "$c" '$10')") → $(mb "$(med "$RB" "$c" '$11')") | $sp | $checks |"
	done
	echo
} >"$SEC"

cat "$SEC"
if [ -n "$MD" ]; then
	cp "$SEC" "$MD"
	log "wrote $MD"
fi
log "spill: done in ${ELAPSED} s"
