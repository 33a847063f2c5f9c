#!/usr/bin/env bash
# bench/stuck.sh [--quick] [--md FILE] [--port N] [--no-build] [--keep]
#
# "Stuck listener": what one listener that does not read costs the
# notifiers, in core LISTEN/NOTIFY and in notify_ext under each
# notify_ext.queue_full_action (error, skip, terminate), measured in one run
# on one throwaway cluster of its own, the cases interleaved within each
# repetition.  bench/stuck.c runs one case: 4 notifying clients committing
# `BEGIN; INSERT INTO stuck_t VALUES (1); SELECT pg_notify|ext_notify('stuck',
# repeat('x', 2000)); COMMIT` back to back (failures with SQLSTATE 54000
# counted), a healthy listener reading the channel at once, and the stuck
# listener, which listens on the channel and then stays in an open
# transaction (xact) or never reads its socket again (noread).  Each case: a warm-up (3 s; with a stuck listener
# on notify_ext, until 0.5 s after its ring, notify_ext.queue_size, filled
# if that is later, at most 10 s more), then the measured window (6 s).
#
# Prints the markdown section (a table of medians and ratios), and with
# --md writes it to FILE; bench/run.sh calls this with --md and
# bench/report.sh puts the section into results.md.  Installs what it needs
# with apt-get, builds and installs notify_ext (scripts/lib.sh) unless
# --no-build, compiles bench/stuck.c.  Default size about 5 minutes on 2
# cores; --quick (CI smoke, the numbers mean nothing) about 15 s.
#
#   --quick     smoke size: 1 repetition, 0.5 s warm-up + 0.8 s per case,
#               4000-byte payloads, only the in-transaction stuck listener
#   --md FILE   write the markdown section to FILE
#   --port N    the cluster's port (default 5470)
#   --no-build  notify_ext is built and installed already (bench/run.sh)
#   --keep      leave the cluster running and the raw data in place
#
# Sizes from the environment: NE_STUCK_REPS, NE_STUCK_WARM, NE_STUCK_MAXWAIT
# and NE_STUCK_T (seconds), NE_STUCK_KINDS ("xact noread"), NE_STUCK_CLIENTS (4),
# NE_STUCK_PAYLOAD (bytes, 2000), NE_STUCK_INSERT=0 (no INSERT).
#
# Why the INSERT: with bare notifying transactions, 4 clients on 2 cores
# outrun a listener that reads at once (notify_ext: about 32000 commits/s
# of 1000-byte payloads, and the healthy listener fell up to 85% of the
# ring behind without any stuck listener), so under skip and terminate the
# healthy listener was itself skipped or ended, and the numbers measured
# that instead.  A row written with each notification
# is also the common use.  The payload is sized so that the ring fills in
# about 1.5 s at the rates of a 2-core machine.
#
# The cluster runs with notify_ext.queue_disk_limit = 0: the queue is the
# ring only, so it fills and queue_full_action is what is measured (with
# the default disk tier, 8GB, the ring would spill to pg_notify_ext/ for
# minutes first; bench/spill.sh measures that).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")

. "$HERE/lib.sh"
ne_bench_options "${NE_STUCK_PORT:-5470}" "$@"

if [ $QUICK = 1 ]; then
	REPS=1 WARM=0.5 MAXWAIT=1.5 T=0.8 KINDS="xact" PAYLOAD=4000
else
	REPS=3 WARM=3 MAXWAIT=10 T=6 KINDS="xact noread" PAYLOAD=2000
fi
REPS=${NE_STUCK_REPS:-$REPS}
WARM=${NE_STUCK_WARM:-$WARM}
MAXWAIT=${NE_STUCK_MAXWAIT:-$MAXWAIT}
T=${NE_STUCK_T:-$T}
KINDS=${NE_STUCK_KINDS:-$KINDS}
CLIENTS=${NE_STUCK_CLIENTS:-4}
PAYLOAD=${NE_STUCK_PAYLOAD:-$PAYLOAD}
INSERT="INSERT INTO stuck_t VALUES (1)"
[ "${NE_STUCK_INSERT:-1}" != 0 ] || INSERT=""
ACTIONS="error skip terminate"

START_EPOCH=$(date +%s)
log() { printf '[stuck %4ds] %s\n' $(( $(date +%s) - START_EPOCH )) "$*" >&2; }

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
RUN=$(mktemp -d /tmp/ne_stuck.XXXXXX)
[ "$(id -u)" = 0 ] && chown postgres: "$RUN"
chmod 755 "$RUN"
DATA_DIR=$RUN/cluster
DRV=$RUN/stuck
gcc -O2 -Wall -pthread -I"$("$PG_CONFIG" --includedir)" -o "$DRV" "$HERE/stuck.c" \
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
	"notify_ext.queue_disk_limit = 0"
)
log "starting cluster in $DATA_DIR on port $PORT"
ne_start_cluster "$DATA_DIR" "$PORT" "${CONF[@]}" >/dev/null
SOCK=$PGHOST
PGLOG=$DATA_DIR/log/postmaster.log
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
PSQL -d bench -c "CREATE EXTENSION notify_ext" -c "CREATE TABLE stuck_t (client int)"


set_action() {	# ACTION: reload, and wait until a new backend sees it
	PSQL -d bench -c "ALTER SYSTEM SET notify_ext.queue_full_action = '$1'" -c "SELECT pg_reload_conf()" >/dev/null
	for _ in $(seq 1 100); do
		[ "$(PSQL -d bench -c 'SHOW notify_ext.queue_full_action')" = "$1" ] && return 0
		sleep 0.05
	done
	echo "stuck.sh: notify_ext.queue_full_action did not become $1" >&2
	return 1
}

# between cases: no client backend left, both queues empty (core's tail
# moves on only when somebody notifies, hence the burst on a channel nobody
# listens to)
settle() {
	for _ in $(seq 1 200); do
		[ "$(PSQL -d postgres -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()")" = 0 ] && break
		sleep 0.05
	done
	PSQL -d bench -c "SELECT count(pg_notify('ne_stuck_drain', i::text)) FROM generate_series(1, 3000) i" >/dev/null
	for _ in $(seq 1 100); do
		[ "$(PSQL -d bench -c "SELECT pg_notification_queue_usage() = 0 AND ext_notification_queue_usage() = 0")" = t ] && return 0
		sleep 0.05
	done
	log "   (queues not empty before the next case: core $(PSQL -d bench -c 'SELECT pg_notification_queue_usage()'), ext $(PSQL -d bench -c 'SELECT ext_notification_queue_usage()'))"
}

RAW=$RUN/stuck.tsv
: >"$RAW"
# one case -> one line of RAW
run_case() {	# REP KIND SYSTEM ACTION
	local rep=$1 kind=$2 sys=$3 act=$4 out=$RUN/case.out a=() ev logb
	settle
	if [ "$sys" = ext ]; then set_action "$act"; a=(-a "$act"); fi
	[ -z "$INSERT" ] || a+=(-i "$INSERT")
	: >"$PGLOG"	# the server appends (O_APPEND): per-case log volume and events
	"$DRV" -d "$CONN" -m "$sys" -c stuck -k "$CLIENTS" -W "$WARM" -X "$MAXWAIT" -t "$T" -P "$PAYLOAD" \
		-s "$kind" "${a[@]}" >"$out" 2>"$RUN/case.err" &
	DRV_PID=$!
	if ! wait "$DRV_PID"; then
		DRV_PID=""
		cat "$RUN/case.err" >&2
		echo "stuck.sh: case $kind $sys $act failed" >&2
		return 1
	fi
	DRV_PID=""
	ev=$(grep -c 'notify_ext: the NOTIFY queue was full' "$PGLOG" || true)
	logb=$(stat -c %s "$PGLOG")
	printf '%s\t' "$rep" "$kind" "$sys" "$act" \
		"$(kv "$out" commit_ps)" "$(kv "$out" fail_ps)" "$(kv "$out" deliveries_ps)" \
		"$(kv "$out" lat_p99_us)" "$(kv "$out" usage_max)" "$(kv "$out" usage_end)" \
		"$(kv "$out" pg_notify_kb_max)" "$(kv "$out" first_failure_s)" "$(kv "$out" full_s)" \
		"$(kv "$out" stuck_gone_s)" "$ev" "$logb" "$(kv "$out" other_errors)" \
		"$(kv "$out" healthy_gap_notices)" "$(kv "$out" healthy_lost)" "$(kv "$out" stuck_missed)" \
		"$(kv "$out" delivered_total)" "$(kv "$out" total_commits)" "$(kv "$out" lat_p50_us)" \
		"$(kv "$out" queue_warnings)" >>"$RAW"
	printf '%s\t' "$(kv "$out" notifier_lost)" "$(kv "$out" filled_s)" "$(kv "$out" window_start_s)" >>"$RAW"
	printf '%s\n' "$(kv "$out" elapsed_s)" >>"$RAW"
	log "   rep $rep  $kind  $sys${act:+ $act}: $(kv "$out" commit_ps) commits/s, $(kv "$out" fail_ps) failed/s, $(kv "$out" deliveries_ps) deliveries/s, queue max $(kv "$out" usage_max), window from $(kv "$out" window_start_s) s$( [ "$(kv "$out" stuck_gone_s)" != -1.000 ] && echo ", stuck listener gone at $(kv "$out" stuck_gone_s) s" || true)$( [ "$(kv "$out" other_errors)" != 0 ] && echo ", OTHER ERRORS $(kv "$out" other_errors): $(kv "$out" other_error_msg)" || true)"
}

# How busy the machine was with other work (as in bench/run.sh): CPU time
# of the whole machine minus that of this cluster's processes and of this
# script and its children
POSTMASTER_PID=$(head -1 "$DATA_DIR/data/postmaster.pid")
cpu_snapshot() {
	echo "$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat) $(proc_jiffies "$POSTMASTER_PID" $$) $(awk '{ printf "%d", $1 * 100 }' /proc/uptime)"
}
CPU_MARK=$(cpu_snapshot)

log "stuck listener: $CLIENTS notifying clients, payload $PAYLOAD bytes, ${WARM}s warm-up + ${T}s measured, stuck kinds: $KINDS, x $REPS reps"
for rep in $(seq 1 "$REPS"); do
	run_case "$rep" none core ""
	run_case "$rep" none ext error
	for kind in $KINDS; do
		run_case "$rep" "$kind" core ""
		for act in $ACTIONS; do
			run_case "$rep" "$kind" ext "$act"
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
# RAW columns: 1 rep, 2 kind, 3 system, 4 action, 5 commits/s, 6 failed/s,
# 7 deliveries/s, 8 commit p99 us, 9 usage max, 10 usage at window end,
# 11 pg_notify/ kB max, 12 first 54000 s, 13 usage >= 95% s, 14 stuck
# backend gone s, 15 queue-full LOG events, 16 log bytes, 17 other errors,
# 18 healthy gap notices, 19 healthy lost, 20 stuck missed, 21 delivered
# total, 22 committed total, 23 commit p50 us, 24 queue warnings, 25 notifier
# lost, 26 ring filled s (-1: not, or not looked for), 27 window start s,
# 28 notifiers' run s
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
medx() {	# CONDITION AWK-EXPRESSION -> median over the repetitions
	awk -F'\t' "($1) { a[++k] = $2 }
	END {
		if (k == 0) { print \"nan\"; exit }
		for (i = 2; i <= k; i++) { x = a[i]; j = i - 1; while (j > 0 && a[j] > x) { a[j + 1] = a[j]; j-- } a[j + 1] = x }
		print (k % 2) ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
	}" "$RAW"
}
fr() {
	awk -v s="$1" 'BEGIN { split(s, a, " ")
		if (a[1] == "nan") print "n/a"
		else if (sprintf("%.2f", a[2]) == sprintf("%.2f", a[3])) printf "%.2f", a[1]
		else printf "%.2f (%.2f–%.2f)", a[1], a[2], a[3] }'
}
f0() { awk -v a="$1" 'BEGIN { if (a == "nan" || a == "" || a < 0) print "n/a"; else printf "%.0f", a }'; }
pct() {	# fraction -> percent, with as many decimals as a small one needs
	awk -v a="$1" 'BEGIN { a *= 100; if (a >= 10 || a == 0) printf "%.0f%%", a; else if (a >= 1) printf "%.1f%%", a; else printf "%.2f%%", a }'
}
secs() { awk -v a="$1" 'BEGIN { printf "%.1f", a }'; }

SEC=$RUN/stuck.md
{
	echo "### 7. Stuck listener: what one listener that does not read costs the notifiers"
	echo
	echo "Generated by \`bench/stuck.sh$([ $QUICK = 1 ] && echo " --quick" || true)\` on $(date -u '+%Y-%m-%d %H:%M UTC') in ${ELAPSED} s$([ $QUICK = 1 ] && echo " (smoke size: the numbers mean nothing)" || true); notify_ext from commit $BUILD_COMMIT ($SO_NOTE), notify_ext.queue_size $(PSQL -d bench -c 'SHOW notify_ext.queue_size'); a cluster of its own: $(printf '`%s`, ' "${CONF[@]}" | sed 's/, $//'), else initdb's defaults."
	echo "$CLIENTS clients each commit \`BEGIN; ${INSERT:+$INSERT; }SELECT pg_notify|ext_notify('stuck', repeat('x', $PAYLOAD)); COMMIT\` back to back"
	echo "(one round trip, bench/stuck.c): a warm-up of ${WARM} s, with a stuck listener on notify_ext until 0.5 s after its"
	echo "ring filled if that is later (at most $MAXWAIT s more), then ${T} s measured;"
	echo "$REPS repetition(s), the cases interleaved in each. A healthy listener (libpq, reading at once) LISTENs on the"
	echo "same channel. The stuck listener LISTENs there before the notifiers start, then either stays in an open"
	echo "transaction (\`BEGIN; SELECT 1;\`, *in transaction*) or never reads its socket again (*not reading*),"
	echo "to the end. Failed = commits that failed with SQLSTATE 54000. vs no stuck = commits/s / the same system's"
	echo "without a stuck listener in the same repetition; ext/core = commits/s / core's with the same stuck listener"
	echo "(medians of per-repetition ratios, range in parentheses). Queue = the system's queue usage"
	echo "(pg_notification_queue_usage() or ext_notification_queue_usage()), highest / at the window's end."
	echo "Log = the server log's growth per second over the case (warm-up included)."
	echo
	echo "| stuck listener | system | queue_full_action | commits/s | failed commits/s | deliveries/s | vs no stuck | ext/core | commit p99 µs | queue max / end | log | what happened |"
	echo "|---|---|---|---:|---:|---:|---:|---:|---:|---|---:|---|"
	for kind in none $KINDS; do
		for sys in core ext; do
			if [ "$sys" = core ] || [ "$kind" = none ]; then acts=("-"); else read -ra acts <<<"$ACTIONS"; fi
			for act in "${acts[@]}"; do
				if [ "$sys" = core ]; then ca="\$3 == \"core\""; else ca="\$3 == \"ext\""; fi
				[ "$kind" = none ] || [ "$sys" = core ] || ca="$ca && \$4 == \"$act\""
				c="\$2 == \"$kind\" && $ca"
				kname=$(case $kind in none) echo none ;; xact) echo "in transaction" ;; noread) echo "not reading" ;; esac)
				sname=$([ "$sys" = core ] && echo core || echo notify_ext)
				aname=$act
				[ "$sys" = core ] && aname="-"
				[ "$sys" = ext ] && [ "$kind" = none ] && aname="any (ran with error)"
				vs=""; ec=""
				if [ "$kind" != none ]; then
					vs=$(fr "$(pr "$c" "\$2 == \"none\" && \$3 == \"$sys\"" 5)")
					[ "$sys" = ext ] && ec=$(fr "$(pr "$c" "\$2 == \"$kind\" && \$3 == \"core\"" 5)")
				elif [ "$sys" = ext ]; then
					ec=$(fr "$(pr "$c" "\$2 == \"none\" && \$3 == \"core\"" 5)")
				fi
				umax=$(med "$c" 9); uend=$(med "$c" 10)
				q="$(pct "$umax") / $(pct "$uend")"
				logps=$(awk -v v="$(medx "$c" '$16 / ($28 > 0 ? $28 : 1)')" 'BEGIN { v /= 1048576; if (v >= 1) printf "%.0f MB/s", v; else printf "%.0f kB/s", v * 1024 }')
				# what happened
				note=()
				if [ "$sys" = core ] && [ "$kind" != none ]; then
					mb=$(awk -v k="$(med "$c" 11)" 'BEGIN { printf "%.0f", k / 1024 }')
					full=$(f0 "$(medx "$c" '($9 > 0 ? $28 / $9 / 60 : -1)')")
					note+=("no failure; pg_notify/ grew to $mb MB in $(secs "$(med "$c" 28)") s: at this rate (straight line) core's 8GB queue is full after about $full min")
				fi
				if [ "$sys" = ext ] && [ "$kind" != none ]; then
					ff=$(med "$c" 12); fu=$(med "$c" 26); gone=$(med "$c" 14); ev=$(med "$c" 15)
					case $act in
						error) note+=("first failure after $(secs "$ff") s; from then on every notifying commit fails") ;;
						skip)
							note+=("ring full after $(secs "$fu") s; from then on the stuck listener was moved on $(f0 "$(medx "$c" '$15 / ($28 - ($26 > 0 ? $26 : 0))')") times/s (a LOG line each)")
							[ "$kind" = xact ] && note+=("at its ROLLBACK it was told it missed $(f0 "$(med "$c" 20)") notifications")
							;;
						terminate)
							if awk -v g="$gone" 'BEGIN { exit !(g >= 0) }'; then
								note+=("the stuck session was ended $(secs "$gone") s after the start ($(f0 "$ev") LOG lines)")
							else
								note+=("the stuck session was NOT ended")
							fi
							;;
					esac
				fi
				oe=$(sum "$c" 17); hg=$(sum "$c" 18); hl=$(sum "$c" 19); nl=$(sum "$c" 25)
				nf=$(awk -F'\t' "($c) && \$26 < 0 { n++ } END { print n + 0 }" "$RAW")
				[ "$sys" = core ] || [ "$kind" = none ] || [ "$nf" = 0 ] || note+=("the ring did NOT fill within $(awk -v w="$WARM" -v x="$MAXWAIT" 'BEGIN { print w + x }') s in $nf run(s)")
				[ "$oe" = 0 ] || note+=("$oe other errors")
				[ "$nl" = 0 ] || note+=("$nl notifier connections lost")
				[ "$hg" = 0 ] || note+=("the HEALTHY listener was skipped $hg times")
				[ "$hl" = 0 ] || note+=("the HEALTHY listener's session was ended")
				miss=$(awk -F'\t' "($c) && \$21 != \$22 { n++ } END { print n + 0 }" "$RAW")
				[ "$miss" = 0 ] || note+=("healthy listener got fewer than committed in $miss run(s)")
				[ ${#note[@]} -gt 0 ] || note=("-")
				notes=$(printf '%s; ' "${note[@]}")
				echo "| $kname | $sname | $aname | $(f0 "$(med "$c" 5)") | $(f0 "$(med "$c" 6)") | $(f0 "$(med "$c" 7)") | ${vs:-} | ${ec:-} | $(f0 "$(med "$c" 8)") | $q | $logps | ${notes%; } |"
			done
		done
	done
	echo
	w=$(sum 'true' 24)
	[ "$w" = 0 ] || { echo "\"NOTIFY queue is N% full\" warnings received by the notifying clients: $w."; echo; }
	echo "Other processes on the machine used $OTHER_CPU% of its CPU time during this workload."
	echo
} >"$SEC"

cat "$SEC"
if [ -n "$MD" ]; then
	cp "$SEC" "$MD"
	log "wrote $MD"
fi
log "stuck listener: done in ${ELAPSED} s"
