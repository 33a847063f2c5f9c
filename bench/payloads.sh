#!/usr/bin/env bash
# bench/payloads.sh [--quick] [--md FILE] [--port N] [--no-build] [--keep]
#
# Large payloads: commit throughput and delivery latency with 64kB and 1MB
# payloads, notify_ext against core's usual workaround, in one run on one
# throwaway cluster of its own, the cases interleaved within each
# repetition.  Core refuses payloads of 8000 bytes or more (checked at the
# start), so applications write the payload to a table, notify its id and
# have the listener read the row back.  Three systems, each an autocommit
# statement with the payload as a text parameter (bench/payloads.c):
#
#   workaround  WITH i AS (INSERT INTO pl_t (body) VALUES ($1) RETURNING id)
#               SELECT pg_notify('pl', i.id::text) FROM i; the listener,
#               on each notification, SELECT body FROM pl_t WHERE id = $1
#   notify_ext  SELECT ext_notify('pl', $1) (notify_ext.max_payload_size
#               raised by the notifying sessions)
#   ext + row   the workaround's INSERT and ext_notify('pl', $1): the row
#               is written as in the workaround, the payload still comes in
#               the notification (separates the write from the re-read)
#
# Each case: CLIENTS notifiers commit back to back (a warm-up, then the
# measured window): notifier commits/s, the listener's whole payloads/s, and
# how far behind it was when the window closed; then, after the listener
# has caught up, one notifier paced at RATE/s: latency from the notifier's
# call to the listener having the whole payload (for the workaround, the
# row's SELECT returned), p50 and p99.  One listener (libpq, idle on its
# socket between notifications).  Payloads: random printable ASCII with a
# header (phase, send time) the listener checks with the length.
#
# Prints the markdown section, and with --md writes it to FILE.  Installs
# what it needs with apt-get, builds and installs notify_ext
# (scripts/lib.sh) unless --no-build, compiles bench/payloads.c.  Default
# size about 3 minutes on 2 cores; --quick (CI smoke, the numbers mean
# nothing) about 20 s.
#
#   --quick     smoke size: 1 repetition, 0.3 s warm-up, 1 s measured, 1 s paced
#   --md FILE   write the markdown section to FILE
#   --port N    the cluster's port (default 5490)
#   --no-build  notify_ext is built and installed already (bench/run.sh)
#   --keep      leave the cluster running and the raw data in place
#
# Sizes from the environment: NE_PAYLOADS_REPS (3), NE_PAYLOADS_WARM (1),
# NE_PAYLOADS_T (4), NE_PAYLOADS_LAT_T (3) seconds, NE_PAYLOADS_RATE (40 per
# second), NE_PAYLOADS_CLIENTS (4), NE_PAYLOADS_SIZES ("65536 1048576" bytes).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")

. "$HERE/lib.sh"
ne_bench_options "${NE_PAYLOADS_PORT:-5490}" "$@"

if [ $QUICK = 1 ]; then
	REPS=1 WARM=0.3 T=1 LAT_T=1
else
	REPS=3 WARM=1 T=4 LAT_T=3
fi
REPS=${NE_PAYLOADS_REPS:-$REPS}
WARM=${NE_PAYLOADS_WARM:-$WARM}
T=${NE_PAYLOADS_T:-$T}
LAT_T=${NE_PAYLOADS_LAT_T:-$LAT_T}
RATE=${NE_PAYLOADS_RATE:-40}
CLIENTS=${NE_PAYLOADS_CLIENTS:-4}
SIZES=${NE_PAYLOADS_SIZES:-"65536 1048576"}
MODES="table ext ext_row"

START_EPOCH=$(date +%s)
log() { printf '[payloads %4ds] %s\n' $(( $(date +%s) - START_EPOCH )) "$*" >&2; }

# shellcheck source=../scripts/lib.sh
. "$ROOT/scripts/lib.sh"

ne_apt postgresql-15 postgresql-server-dev-15 libkrb5-dev libpq-dev gcc make
if [ $BUILD = 1 ]; then
	log "building and installing notify_ext"
	ne_build_install >/dev/null
fi
BUILD_COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$ROOT" diff --quiet HEAD -- src notify_ext--1.0.sql Makefile 2>/dev/null ||
	BUILD_COMMIT="$BUILD_COMMIT + uncommitted changes to the extension"

BINDIR=$("$PG_CONFIG" --bindir)
SO=$("$PG_CONFIG" --pkglibdir)/notify_ext.so
RUN=$(mktemp -d /tmp/ne_payloads.XXXXXX)
[ "$(id -u)" = 0 ] && chown postgres: "$RUN"
chmod 755 "$RUN"
DATA_DIR=$RUN/cluster
DRV=$RUN/payloads
gcc -O2 -Wall -pthread -I"$("$PG_CONFIG" --includedir)" -o "$DRV" "$HERE/payloads.c" \
	-L"$("$PG_CONFIG" --libdir)" -lpq

DRV_PID=""
cleanup() {
	if [ -n "$DRV_PID" ] && grep -q "$DRV" "/proc/$DRV_PID/cmdline" 2>/dev/null; then
		kill -TERM "$DRV_PID" 2>/dev/null || true
	fi
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
PSQL -d bench -c "CREATE EXTENSION notify_ext" -c "CREATE TABLE pl_t (id bigserial PRIMARY KEY, body text NOT NULL)"

# what core does with such a payload (the reason for the workaround)
CORE_SAYS=$(PSQL -d bench -c "SELECT pg_notify('pl', repeat('x', 65536))" 2>&1 || true)
CORE_SAYS=$(echo "$CORE_SAYS" | sed -n 's/^.*ERROR: *//p' | head -n 1)
log "core's pg_notify() with a 64kB payload: ${CORE_SAYS:-accepted?!}"


# between cases: no client backend left, both queues empty (core's tail
# moves on only when somebody notifies, hence the burst on a channel nobody
# listens to), the table emptied, a checkpoint (each case starts alike)
settle() {
	for _ in $(seq 1 200); do
		[ "$(PSQL -d postgres -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()")" = 0 ] && break
		sleep 0.05
	done
	PSQL -d bench -c "SELECT count(pg_notify('ne_payloads_drain', i::text)) FROM generate_series(1, 100) i" >/dev/null
	for _ in $(seq 1 100); do
		[ "$(PSQL -d bench -c "SELECT pg_notification_queue_usage() = 0 AND ext_notification_queue_usage() = 0")" = t ] && break
		sleep 0.05
	done
	PSQL -d bench -c "TRUNCATE pl_t" -c "CHECKPOINT" >/dev/null
}

RAW=$RUN/payloads.tsv
: >"$RAW"
KEYS=(commit_ps deliveries_ps delivered_mb_ps commit_p50_us commit_p99_us behind_at_end
	drain_s lat_p50_us lat_p99_us lat_n sat_lat_p50_us bad missing failed committed_total
	received_total first_error)
run_case() {	# REP SIZE MODE
	local rep=$1 size=$2 m=$3 out=$RUN/case.out k line
	settle
	"$DRV" -d "$CONN" -m "$m" -s "$size" -k "$CLIENTS" -W "$WARM" -t "$T" -r "$RATE" -T "$LAT_T" \
		>"$out" 2>"$RUN/case.err" &
	DRV_PID=$!
	if ! wait "$DRV_PID"; then
		DRV_PID=""
		cat "$RUN/case.err" >&2
		echo "payloads.sh: case $m $size failed" >&2
		return 1
	fi
	DRV_PID=""
	line="$rep	$size	$m"
	for k in "${KEYS[@]}"; do
		line="$line	$(kv "$out" "$k")"
	done
	echo "$line" >>"$RAW"
	log "   rep $rep  $size B  $m: $(kv "$out" commit_ps) commits/s, $(kv "$out" deliveries_ps) payloads/s received ($(kv "$out" delivered_mb_ps) MB/s), $(kv "$out" behind_at_end) behind at the end, paced latency p50 $(kv "$out" lat_p50_us) µs p99 $(kv "$out" lat_p99_us) µs$( [ "$(kv "$out" bad)$(kv "$out" missing)$(kv "$out" failed)" != 000 ] && echo ", BAD $(kv "$out" bad) MISSING $(kv "$out" missing) FAILED $(kv "$out" failed) $(kv "$out" first_error)" || true)"
}

# How busy the machine was with other work (as in bench/stuck.sh): CPU time
# of the whole machine minus that of this cluster's processes and of this
# script and its children
POSTMASTER_PID=$(head -1 "$DATA_DIR/data/postmaster.pid")
cpu_snapshot() {
	echo "$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat) $(proc_jiffies "$POSTMASTER_PID" $$) $(awk '{ printf "%d", $1 * 100 }' /proc/uptime)"
}
CPU_MARK=$(cpu_snapshot)

log "large payloads: sizes $SIZES bytes, $CLIENTS notifying clients, ${WARM}s warm-up + ${T}s measured, then ${LAT_T}s paced at ${RATE}/s, x $REPS reps"
for rep in $(seq 1 "$REPS"); do
	for size in $SIZES; do
		for m in $MODES; do
			run_case "$rep" "$size" "$m"
		done
	done
done
ELAPSED=$(( $(date +%s) - START_EPOCH ))
OTHER_CPU=$(awk -v a="$CPU_MARK" -v b="$(cpu_snapshot)" -v n="$(nproc)" -v hz="$(getconf CLK_TCK)" 'BEGIN {
	split(a, x, " "); split(b, y, " ")
	wall = (y[3] - x[3]) / 100 * hz * n
	o = (y[1] - x[1]) - (y[2] - x[2])
	if (o < 0) o = 0
	printf "%.0f", (wall > 0 ? 100 * o / wall : 0) }')

# ------------------------------------------------------------------ report
# RAW columns: 1 rep, 2 size, 3 mode, then KEYS in order: 4 commit_ps,
# 5 deliveries_ps, 6 delivered_mb_ps, 7 commit_p50_us, 8 commit_p99_us,
# 9 behind_at_end, 10 drain_s, 11 lat_p50_us, 12 lat_p99_us, 13 lat_n,
# 14 sat_lat_p50_us, 15 bad, 16 missing, 17 failed, 18 committed_total,
# 19 received_total, 20 first_error
med() {	# CONDITION COLUMN -> median over the repetitions
	awk -F'\t' "($1) { a[++k] = \$$2 + 0 }
	END {
		if (k == 0) { print \"nan\"; exit }
		for (i = 2; i <= k; i++) { x = a[i]; j = i - 1; while (j > 0 && a[j] > x) { a[j + 1] = a[j]; j-- } a[j + 1] = x }
		print (k % 2) ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
	}" "$RAW"
}
pr() {	# NUM-CONDITION DEN-CONDITION COLUMN -> "median min max" of per-rep ratios
	awk -F'\t' "($1) { n[\$1] = \$$3 } ($2) { d[\$1] = \$$3 }
	END {
		for (r in n) if ((r in d) && d[r] + 0 > 0) a[++k] = n[r] / d[r]
		if (k == 0) { print \"nan nan nan\"; exit }
		for (i = 2; i <= k; i++) { x = a[i]; j = i - 1; while (j > 0 && a[j] > x) { a[j + 1] = a[j]; j-- } a[j + 1] = x }
		print ((k % 2) ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2), a[1], a[k]
	}" "$RAW"
}
sum() { awk -F'\t' "($1) { s += \$$2 } END { print s + 0 }" "$RAW"; }
fr() {
	awk -v s="$1" 'BEGIN { split(s, a, " ")
		if (a[1] == "nan") print "n/a"
		else if (sprintf("%.2f", a[2]) == sprintf("%.2f", a[3])) printf "%.2f", a[1]
		else printf "%.2f (%.2f–%.2f)", a[1], a[2], a[3] }'
}
f0() { awk -v a="$1" 'BEGIN { if (a == "nan" || a == "" || a < 0) print "n/a"; else printf "%.0f", a }'; }
f1() { awk -v a="$1" 'BEGIN { if (a == "nan" || a == "" || a < 0) print "n/a"; else printf "%.1f", a }'; }
ms() { awk -v a="$1" 'BEGIN { if (a == "nan" || a == "" || a < 0) print "n/a"; else if (a < 10000) printf "%.2f", a / 1000; else printf "%.1f", a / 1000 }'; }
hsize() { awk -v b="$1" 'BEGIN { if (b >= 1048576 && b % 1048576 == 0) printf "%dMB", b / 1048576; else if (b >= 1024 && b % 1024 == 0) printf "%dkB", b / 1024; else printf "%d B", b }'; }

SEC=$RUN/payloads.md
{
	echo "### 13. Large payloads: commit throughput and delivery latency, notify_ext vs core's table-and-id workaround"
	echo
	echo "Generated by \`bench/payloads.sh$([ $QUICK = 1 ] && echo " --quick" || true)\` on $(date -u '+%Y-%m-%d %H:%M UTC') in ${ELAPSED} s$([ $QUICK = 1 ] && echo " (smoke size: the numbers mean nothing)" || true); notify_ext from commit $BUILD_COMMIT ($SO_NOTE), notify_ext.queue_size $(PSQL -d bench -c 'SHOW notify_ext.queue_size'); a cluster of its own: $(printf '`%s`, ' "${CONF[@]}" | sed 's/, $//'), else initdb's defaults."
	echo "Core refuses such payloads (\`pg_notify('pl', repeat('x', 65536))\`: *${CORE_SAYS:-accepted}*), so applications"
	echo "write the payload to a table, notify its id and have the listener read the row back. Each notifier runs"
	echo "one autocommit statement per payload (random printable ASCII, a text parameter; bench/payloads.c):"
	echo
	echo "- **workaround** (core): \`WITH i AS (INSERT INTO pl_t (body) VALUES (\$1) RETURNING id) SELECT pg_notify('pl', i.id::text) FROM i\`;"
	echo "  the listener, on each notification, \`SELECT body FROM pl_t WHERE id = \$1\` on its own connection;"
	echo "- **notify_ext**: \`SELECT ext_notify('pl', \$1)\` (the notifying sessions raise \`notify_ext.max_payload_size\`);"
	echo "  the listener has the payload in the notification;"
	echo "- **ext + row**: the workaround's INSERT and \`ext_notify('pl', \$1)\` in one statement: the row is written"
	echo "  (WAL, flushed at commit) as in the workaround, the payload still comes in the notification."
	echo
	echo "$CLIENTS clients commit back to back (${WARM} s warm-up, ${T} s measured): commits/s, and the one listener's whole"
	echo "payloads/s (and MB/s) in the same window; *behind* = payloads committed but not yet received when the window"
	echo "closed (the listener could not keep up: the queue holds them). Then, the listener caught up, one notifier paced at"
	echo "${RATE}/s for ${LAT_T} s: latency from the notifier's call to the listener having the whole payload (ms). Statement ="
	echo "the notifier's call, p50, during the back-to-back window. ext/workaround = ratio to the workaround with the"
	echo "same payload in the same repetition (median of $REPS, range in parentheses): for commits/s higher is better,"
	echo "for latency lower."
	echo
	echo "| payload | system | commits/s | ext/workaround | statement p50 ms | listener payloads/s | MB/s | behind at end | latency p50 ms | p99 ms | p50 ext/workaround |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	for size in $SIZES; do
		for m in $MODES; do
			c="\$2 == $size && \$3 == \"$m\""
			w="\$2 == $size && \$3 == \"table\""
			name=$(case $m in table) echo "workaround (core)" ;; ext) echo "notify_ext" ;; ext_row) echo "ext + row" ;; esac)
			r1=""; r2=""
			if [ "$m" != table ]; then
				r1=$(fr "$(pr "$c" "$w" 4)")
				r2=$(fr "$(pr "$c" "$w" 11)")
			fi
			echo "| $(hsize "$size") | $name | $(f0 "$(med "$c" 4)") | $r1 | $(ms "$(med "$c" 7)") | $(f0 "$(med "$c" 5)") | $(f0 "$(med "$c" 6)") | $(f0 "$(med "$c" 9)") | $(ms "$(med "$c" 11)") | $(ms "$(med "$c" 12)") | $r2 |"
		done
	done
	echo
	bad=$(sum 'true' 15); miss=$(sum 'true' 16); fail=$(sum 'true' 17)
	lost=$(awk -F'\t' '$18 != $19 { n++ } END { print n + 0 }' "$RAW")
	if [ "$bad$miss$fail$lost" = 0000 ]; then
		echo "Every payload committed was received whole (length and header checked), in every case."
	else
		echo "**Problems:** $bad payloads received with a wrong length or header, $miss rows not found by the re-read, $fail notifying statements failed ($(awk -F'\t' '$20 != "" { print $20; exit }' "$RAW")), $lost case(s) where fewer payloads were received than committed."
	fi
	echo
	echo "Other processes on the machine used $OTHER_CPU% of its CPU time during this workload."
	echo
} >"$SEC"

cat "$SEC"
if [ -n "$MD" ]; then
	cp "$SEC" "$MD"
	log "wrote $MD"
fi
log "large payloads: done in ${ELAPSED} s"
