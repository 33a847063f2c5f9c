#!/usr/bin/env bash
# bench/flush.sh [--quick] [--md FILE] [--plot FILE] [--port N] [--no-build] [--keep]
#
# Commit throughput on a disk whose flush takes milliseconds, emulated: the
# workload of bench/run.sh section 1 (pgbench -M prepared, `BEGIN; INSERT
# one row; notify; COMMIT`) at 1, 4, 16 and 64 clients, with every
# fsync()/fdatasync() of the server delayed by 0, 1 and 5 ms by an
# LD_PRELOAD shim (bench/fsync_delay.c, compiled here with cc; the delay is
# NE_FSYNC_DELAY_US in the postmaster's environment, set when pg_ctl starts
# it, so the cluster restarts once per delay).  PostgreSQL 15 flushes WAL
# with fdatasync() on Linux (wal_sync_method's default); the shim delays
# fsync() too (wal_sync_method = fsync, checkpoints).  Three systems in one
# run, interleaved within each repetition: core (pg_notify, one core LISTEN
# listener draining), notify_ext (ext_notify, one ext_listen listener
# draining) and the physical limit: the same transaction with a no-op
# statement (`SELECT 1`) in place of the notify, so that the round trip
# stays (an idle ext_listen listener is connected there too).
# track_wal_io_timing is on: pg_stat_wal gives the WAL flushes of each run
# and their average time, which shows the delay in effect and how many
# commits each flush carried (group commit).
#
# Prints the markdown section (a table of medians and ratios), and with
# --md writes it to FILE; writes the plot (throughput vs clients, a panel
# per delay) to --plot FILE (default bench/flush.png; with --quick, none
# unless --plot is given).  bench/run.sh calls this with --md and --plot
# and bench/report.sh puts the section into results.md.  Installs what it
# needs with apt-get, builds and installs notify_ext (scripts/lib.sh)
# unless --no-build, compiles bench/fsync_delay.c and bench/listener.c.
# Default size about 5 minutes on 2 cores; --quick (CI smoke, the numbers
# mean nothing) about 20 s.
#
#   --quick     smoke size: 1 repetition of 1 s, 4 and 64 clients, 0 and 5 ms
#   --md FILE   write the markdown section to FILE
#   --plot FILE write the PNG there
#   --port N    the cluster's port (default 5600)
#   --no-build  notify_ext is built and installed already (bench/run.sh)
#   --keep      leave the cluster running and the raw data in place
#
# Sizes from the environment: NE_FLUSH_REPS, NE_FLUSH_T (seconds per
# pgbench run), NE_FLUSH_CLIENTS ("1 4 16 64"), NE_FLUSH_DELAYS (ms, "0 1
# 5"), NE_FLUSH_SYNC_METHOD (a wal_sync_method: fdatasync, fsync).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
# bench/lib.sh: kv, alive, proc_jiffies
. "$HERE/lib.sh"

QUICK=0
MD=""
PLOT=""
PLOT_SET=0
PORT=${NE_FLUSH_PORT:-5600}
BUILD=1
KEEP=0
while [ $# -gt 0 ]; do
	case $1 in
		--quick) QUICK=1 ;;
		--md) MD=$2; shift ;;
		--plot) PLOT=$2; PLOT_SET=1; shift ;;
		--port) PORT=$2; shift ;;
		--no-build) BUILD=0 ;;
		--keep) KEEP=1 ;;
		-h|--help) sed -n '2,43p' "$0"; exit 0 ;;
		*) echo "flush.sh: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done

if [ $QUICK = 1 ]; then
	REPS=1 T=1 CLIENTS="4 64" DELAYS="0 5"
else
	REPS=2 T=3 CLIENTS="1 4 16 64" DELAYS="0 1 5"
fi
REPS=${NE_FLUSH_REPS:-$REPS}
T=${NE_FLUSH_T:-$T}
CLIENTS=${NE_FLUSH_CLIENTS:-$CLIENTS}
DELAYS=${NE_FLUSH_DELAYS:-$DELAYS}
SYSTEMS="core ext noop"
[ $PLOT_SET = 1 ] || { [ $QUICK = 1 ] || PLOT=$HERE/flush.png; }

START_EPOCH=$(date +%s)
log() { printf '[flush %4ds] %s\n' $(( $(date +%s) - START_EPOCH )) "$*" >&2; }

# shellcheck source=../scripts/lib.sh
. "$ROOT/scripts/lib.sh"

ne_apt postgresql-15 postgresql-contrib postgresql-server-dev-15 libkrb5-dev libpq-dev gcc make gnuplot-nox
if [ $BUILD = 1 ]; then
	log "building and installing notify_ext"
	ne_build_install >/dev/null
fi
BUILD_COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$ROOT" diff --quiet HEAD -- src notify_ext--1.1.sql Makefile 2>/dev/null ||
	BUILD_COMMIT="$BUILD_COMMIT + uncommitted changes to the extension"

BINDIR=$("$PG_CONFIG" --bindir)
SO=$("$PG_CONFIG" --pkglibdir)/notify_ext.so
RUN=$(mktemp -d /tmp/ne_flush.XXXXXX)
[ "$(id -u)" = 0 ] && chown postgres: "$RUN"
chmod 755 "$RUN"
DATA_DIR=$RUN/cluster
NB=$RUN/nebench
SHIM=$RUN/fsync_delay.so
cc -O2 -Wall -Wextra -shared -fPIC -o "$SHIM" "$HERE/fsync_delay.c" -ldl
chmod 755 "$SHIM"
gcc -O2 -Wall -I"$("$PG_CONFIG" --includedir)" -o "$NB" "$HERE/listener.c" \
	-L"$("$PG_CONFIG" --libdir)" -lpq

BG_PIDS=()
cleanup() {
	local p
	for p in "${BG_PIDS[@]:-}"; do
		[ -n "$p" ] && grep -q nebench "/proc/$p/cmdline" 2>/dev/null &&
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
	"max_connections = 120"
	"synchronous_commit = on"
	"fsync = on"
	"track_wal_io_timing = on"
	"autovacuum = off"
	"checkpoint_timeout = 30min"
	"max_wal_size = 4GB"
)
[ -z "${NE_FLUSH_SYNC_METHOD:-}" ] || CONF+=("wal_sync_method = $NE_FLUSH_SYNC_METHOD")
SOCK=""
PSQL() { "$BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -At -h "$SOCK" -p "$PORT" -U postgres "$@"; }

# start (or restart) the cluster with the shim and DELAY ms in the
# postmaster's environment, and check that the postmaster has both
start_with_delay() {	# DELAY_MS
	local us=$(( $1 * 1000 )) pm
	ne_stop_cluster "$DATA_DIR" >/dev/null || true
	LD_PRELOAD=$SHIM NE_FSYNC_DELAY_US=$us ne_start_cluster "$DATA_DIR" "$PORT" "${CONF[@]}" >/dev/null
	SOCK=$PGHOST
	pm=$(head -1 "$DATA_DIR/data/postmaster.pid")
	POSTMASTER_PID=$pm
	if ! grep -q "$SHIM" "/proc/$pm/maps" ||
		! tr '\0' '\n' <"/proc/$pm/environ" | grep -qx "NE_FSYNC_DELAY_US=$us"; then
		echo "flush.sh: the postmaster ($pm) has not loaded $SHIM with NE_FSYNC_DELAY_US=$us" >&2
		return 1
	fi
}

log "starting cluster in $DATA_DIR on port $PORT"
mkdir -p "$DATA_DIR"
start_with_delay 0
CONN="host=$SOCK port=$PORT user=postgres dbname=bench"
PSQL -d postgres -c "CREATE DATABASE bench"
PSQL -d bench -c "CREATE EXTENSION notify_ext" -c "CREATE TABLE bench_t (client int, payload text)"
# the module the postmaster loaded is the installed file of its start
SO_NOTE="the installed notify_ext.so"
if [ -f "$ROOT/notify_ext.so" ]; then
	if cmp -s "$SO" "$ROOT/notify_ext.so"; then
		SO_NOTE="notify_ext.so = this checkout's build$([ $BUILD = 1 ] || echo ", not rebuilt by this run")"
	else
		SO_NOTE="the installed notify_ext.so, not this checkout's notify_ext.so"
	fi
fi
SYNC_METHOD=$(PSQL -d bench -c "SHOW wal_sync_method")

# the three transactions: bench/commit_core.sql and commit_ext.sql (as
# bench/run.sh section 1), and the no-op in place of the notify
cp "$HERE/commit_core.sql" "$RUN/commit_core.sql"
cp "$HERE/commit_ext.sql" "$RUN/commit_ext.sql"
cat >"$RUN/commit_noop.sql" <<'EOF'
-- bench/flush.sh, the physical limit: the same transaction, a no-op statement in place of the notify
BEGIN;
INSERT INTO bench_t VALUES (:client_id, 'x');
SELECT 1;
COMMIT;
EOF

# start_listener MODE CHANNEL -> LPID, once it listens
start_listener() {
	local i
	rm -f "$RUN/l.ready" "$RUN/l.out"
	"$NB" listen -d "$CONN" -m "$1" -c "$2" -r "$RUN/l.ready" -w 600 >"$RUN/l.out" 2>"$RUN/l.err" &
	LPID=$!
	BG_PIDS+=("$LPID")
	for i in $(seq 1 1200); do
		[ -f "$RUN/l.ready" ] && return 0
		alive "$LPID" || { cat "$RUN/l.err" >&2; return 1; }
		sleep 0.02
	done
	echo "flush.sh: listener not ready" >&2
	return 1
}
wait_listener() {	# PID SECONDS: wait for it to exit (it does on STOP), else TERM it
	local pid=$1 t=$2 i
	for i in $(seq 1 $((t * 50))); do
		alive "$pid" || break
		sleep 0.02
	done
	kill -TERM "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}
wait_backends() {	# until at most MAX client backends are left (this query's included)
	local i
	for i in $(seq 1 500); do
		[ "$(PSQL -d postgres -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'")" -le "$1" ] && return 0
		sleep 0.02
	done
}

# How busy the machine was with other work (as in bench/run.sh): CPU time
# of the whole machine minus that of this cluster's processes and of this
# script and its children.  The postmaster changes with each restart, so
# the sum is taken per delay.
cpu_snapshot() {
	echo "$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat) $(proc_jiffies "$POSTMASTER_PID" $$) $(awk '{ printf "%d", $1 * 100 }' /proc/uptime)"
}
OTHER_J=0 WALL_J=0
cpu_add() {	# MARK: add what others used since MARK to OTHER_J / WALL_J
	read -r o w < <(awk -v a="$1" -v b="$(cpu_snapshot)" -v n="$(nproc)" -v hz="$(getconf CLK_TCK)" 'BEGIN {
		split(a, x, " "); split(b, y, " ")
		wall = (y[3] - x[3]) / 100 * hz * n
		o = (y[1] - x[1]) - (y[2] - x[2]); if (o < 0) o = 0
		printf "%d %d\n", o, wall }')
	OTHER_J=$(( OTHER_J + o )); WALL_J=$(( WALL_J + w ))
}

notify_fn() { case $1 in core) echo pg_notify ;; *) echo ext_notify ;; esac; }
lmode() { case $1 in core) echo core ;; *) echo ext ;; esac; }

RAW=$RUN/flush.tsv
: >"$RAW"
# one run -> one line of RAW: delay rep clients system tps committed
# delivered wal_sync wal_sync_time_ms warnings
run_one() {	# DELAY REP CLIENTS SYSTEM
	local d=$1 rep=$2 c=$3 sys=$4 j out tps n got warn ws wt ch
	j=$(( c < 2 ? c : 2 ))
	ch=t_$sys
	start_listener "$(lmode "$sys")" "$ch"
	PSQL -d bench -c "SELECT pg_stat_reset_shared('wal')" >/dev/null
	if ! out=$("$BINDIR/pgbench" -n -M prepared -f "$RUN/commit_$sys.sql" -c "$c" -j "$j" \
		-T "$T" -h "$SOCK" -p "$PORT" -U postgres bench 2>&1); then
		echo "$out" >&2
		return 1
	fi
	tps=$(awk '/^tps = / { print $3; exit }' <<<"$out")
	n=$(awk -F': ' '/number of transactions actually processed/ { split($2, a, " "); print a[1] }' <<<"$out")
	warn=$(grep -c 'WARNING: *NOTIFY queue is' <<<"$out" || true)
	PSQL -d bench -c "SELECT $(notify_fn "$sys")('$ch', 'STOP')" >/dev/null
	wait_listener "$LPID" 60
	got=$(kv "$RUN/l.out" total)
	[ "$sys" != noop ] || got=-
	# pgbench's backends report their WAL statistics when they exit
	wait_backends 1
	read -r ws wt < <(PSQL -d bench -F ' ' -c "SELECT wal_sync, round(wal_sync_time::numeric, 3) FROM pg_stat_wal")
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$d" "$rep" "$c" "$sys" "$tps" "$n" "$got" "$ws" "$wt" "$warn" >>"$RAW"
	log "   delay ${d} ms  rep $rep  clients $c  $sys: $tps tps, committed $n, delivered $got, WAL flushes $ws ($(awk -v s="$ws" -v t="$wt" 'BEGIN { printf "%.2f", (s > 0 ? t / s : 0) }') ms each)"
}

log "flush latency: delays $DELAYS ms, clients $CLIENTS, ${T}s x $REPS reps, core/ext/noop interleaved"
for d in $DELAYS; do
	log "restarting with NE_FSYNC_DELAY_US=$((d * 1000))"
	start_with_delay "$d"
	mark=$(cpu_snapshot)
	for rep in $(seq 1 "$REPS"); do
		for c in $CLIENTS; do
			for sys in $SYSTEMS; do
				run_one "$d" "$rep" "$c" "$sys"
			done
		done
	done
	cpu_add "$mark"
done
ELAPSED=$(( $(date +%s) - START_EPOCH ))
# anything the server complained about (restarts included)
LOG_ERRORS=$(grep -cE '(ERROR|FATAL|PANIC):' "$DATA_DIR/log/postmaster.log" || true)
OTHER_CPU=$(awk -v o="$OTHER_J" -v w="$WALL_J" 'BEGIN { printf "%.0f", (w > 0 ? 100 * o / w : 0) }')

# ------------------------------------------------------------------ report
# RAW columns: 1 delay ms, 2 rep, 3 clients, 4 system, 5 tps, 6 committed,
# 7 delivered (- for noop), 8 WAL flushes, 9 their time ms, 10 warnings
stat3() {	# CONDITION COLUMN -> "median min max"
	awk -F'\t' "($1) { a[++k] = \$$2 + 0 }
	END {
		if (k == 0) { print \"nan nan nan\"; exit }
		for (i = 2; i <= k; i++) { x = a[i]; j = i - 1; while (j > 0 && a[j] > x) { a[j + 1] = a[j]; j-- } a[j + 1] = x }
		print ((k % 2) ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2), a[1], a[k]
	}" "$RAW"
}
med() { local s; s=$(stat3 "$@"); echo "${s%% *}"; }
pr() {	# NUM-CONDITION DEN-CONDITION -> "median min max" of per-rep tps ratios
	awk -F'\t' "($1) { n[\$2] = \$5 } ($2) { d[\$2] = \$5 }
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
# commits per WAL flush over all runs of a condition
cpf() { awk -F'\t' "($1) { n += \$6; f += \$8 } END { if (f > 0) printf \"%.1f\", n / f; else print \"n/a\" }" "$RAW"; }
# average WAL flush time over all runs of a condition (ms)
fms() { awk -F'\t' "($1) { t += \$9; f += \$8 } END { if (f > 0) printf \"%.2f\", t / f; else print \"n/a\" }" "$RAW"; }
delivered() {	# CONDITION -> yes / no (delivered of committed)
	awk -F'\t' "($1) { p += \$6; d += \$7; if (\$6 != \$7) bad++ } END {
		if (bad) printf \"no (%d of %d)\", d, p; else print \"yes\" }" "$RAW"
}

PNG_NOTE=""
if [ -n "$PLOT" ]; then
	: >"$RUN/flush.dat"
	for d in $DELAYS; do
		for c in $CLIENTS; do
			echo "$d $c $(stat3 "\$1 == $d && \$3 == $c && \$4 == \"noop\"" 5) $(stat3 "\$1 == $d && \$3 == $c && \$4 == \"core\"" 5) $(stat3 "\$1 == $d && \$3 == $c && \$4 == \"ext\"" 5)" >>"$RUN/flush.dat"
		done
	done
	nd=$(wc -w <<<"$DELAYS")
	xt=$(for c in $CLIENTS; do printf '"%s" %s, ' "$c" "$c"; done | sed 's/, $//')
	xmax=$(awk -v l="$CLIENTS" 'BEGIN { n = split(l, a, " "); print a[n] * 1.25 }')
	xmin=$(awk -v l="$CLIENTS" 'BEGIN { split(l, a, " "); print a[1] * 0.8 }')
	# one y scale for every panel, so that the panels compare
	ymax=$(awk '{ for (i = 3; i <= NF; i++) if ($i + 0 > m) m = $i + 0 } END { print (m > 0 ? m * 1.08 : 1) }' "$RUN/flush.dat")
	{
		echo "set terminal pngcairo size $((380 * nd + 60)),420 font \",10\" noenhanced"
		echo "set output \"$PLOT\""
		echo "set multiplot layout 1,$nd title \"Commit throughput: BEGIN; INSERT; notify; COMMIT, every fsync/fdatasync delayed by an LD_PRELOAD shim ($(nproc) cores)\""
		echo "set logscale x 2"
		echo "set xtics ($xt)"
		echo "set xrange [$xmin:$xmax]"
		echo "set yrange [0:$ymax]"
		echo "set grid"
				echo "set xlabel \"pgbench clients\""
		# the key in the last panel (the longest delay: its lines stay low)
		i=0
		for d in $DELAYS; do
			i=$((i + 1))
			echo "set title \"flush delay $d ms\""
			if [ $i = 1 ]; then
				echo "set ylabel \"transactions per second (median, min-max bars)\""
			else
				echo "unset ylabel"
			fi
			if [ $i = "$nd" ]; then
				echo "set key top left opaque box"
			else
				echo "unset key"
			fi
			# the limit last, dashed, so that it shows where notify_ext lies on it
			echo "plot \"$RUN/flush.dat\" using (\$1 == $d ? \$2 : 1/0):9:10:11 with yerrorlines lw 2 pt 5 lc rgb \"#009e73\" title \"notify_ext\", \\"
			echo "     \"\" using (\$1 == $d ? \$2 : 1/0):6:7:8 with yerrorlines lw 2 pt 9 lc rgb \"#d55e00\" title \"core NOTIFY\", \\"
			echo "     \"\" using (\$1 == $d ? \$2 : 1/0):3:4:5 with yerrorlines lw 2 dt 2 pt 7 ps 0.8 lc rgb \"gray30\" title \"no-op, no notify (limit)\""
		done
		echo "unset multiplot"
	} >"$RUN/flush.gp"
	if command -v gnuplot >/dev/null && gnuplot "$RUN/flush.gp"; then
		PNG_NOTE=$(basename "$PLOT")
		log "wrote $PLOT"
	else
		log "gnuplot failed: no plot"
	fi
fi

SEC=$RUN/flush.md
{
	echo "### 9. Commit throughput when a flush takes milliseconds: \`BEGIN; INSERT one row; notify; COMMIT\` (tps)"
	echo
	echo "Generated by \`bench/flush.sh$([ $QUICK = 1 ] && echo " --quick" || true)\` on $(date -u '+%Y-%m-%d %H:%M UTC') in ${ELAPSED} s$([ $QUICK = 1 ] && echo " (smoke size: the numbers mean nothing)" || true); notify_ext from commit $BUILD_COMMIT ($SO_NOTE); a cluster of its own: $(printf '`%s`, ' "${CONF[@]}" | sed 's/, $//'), else initdb's defaults (wal_sync_method $SYNC_METHOD)."
	echo
	echo "**The flush delay is emulated**, not a real slow disk: an LD_PRELOAD shim (\`bench/fsync_delay.c\`) loaded"
	echo "into the postmaster and so into every backend, the WAL writer and the checkpointer, sleeps the given"
	echo "time in every \`fsync()\` and \`fdatasync()\` before calling the real one (PostgreSQL 15 flushes WAL"
	echo "with \`fdatasync()\` here; this machine's own flush takes about $(fms '$1 == 0') ms). 0 ms is the shim loaded with no delay."
	echo "The cluster restarts once per delay. pgbench -M prepared, ${T} s per run, $REPS repetition(s) per delay,"
	echo "the three systems interleaved in each: core (\`pg_notify\`, one \`LISTEN\` listener draining), notify_ext"
	echo "(\`ext_notify\`, one \`ext_listen\` listener draining), and the physical limit: the same transaction with"
	echo "\`SELECT 1\` in place of the notify (same round trips; an idle listener connected). Ratios: medians of"
	echo "per-repetition ratios (range in parentheses). WAL flush: pg_stat_wal (\`track_wal_io_timing\`) over each"
	echo "run, average time of one flush (the delay plus the real one) and committed transactions per flush:"
	echo "1.0 means no group commit, every commit waits for a flush of its own."
	echo
	echo "| flush delay | clients | no-op | core | notify_ext | ext/core | ext/no-op | core/no-op | commits per WAL flush (no-op, core, ext) | WAL flush ms | all delivered (core, ext) |"
	echo "|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|"
	for d in $DELAYS; do
		for c in $CLIENTS; do
			cd_="\$1 == $d && \$3 == $c"
			rn="$cd_ && \$4 == \"noop\""; rc="$cd_ && \$4 == \"core\""; re="$cd_ && \$4 == \"ext\""
			echo "| $d ms | $c | $(f0 "$(med "$rn" 5)") | $(f0 "$(med "$rc" 5)") | $(f0 "$(med "$re" 5)") | $(fr "$(pr "$re" "$rc")") | $(fr "$(pr "$re" "$rn")") | $(fr "$(pr "$rc" "$rn")") | $(cpf "$rn"), $(cpf "$rc"), $(cpf "$re") | $(fms "$cd_") | $(delivered "$rc"), $(delivered "$re") |"
		done
	done
	echo
	w=$(awk -F'\t' '{ s += $10 } END { print s + 0 }' "$RAW")
	[ "$w" = 0 ] || { echo "\"NOTIFY queue is N% full\" warnings received by the clients: $w."; echo; }
	[ "$LOG_ERRORS" = 0 ] || { echo "The server logged $LOG_ERRORS ERROR/FATAL/PANIC lines during the run."; echo; }
	echo "Other processes on the machine used $OTHER_CPU% of its CPU time during this workload."
	echo
	if [ -n "$PNG_NOTE" ]; then
		echo "![commit throughput vs clients, per flush delay]($PNG_NOTE)"
		echo
	fi
} >"$SEC"

cat "$SEC"
if [ -n "$MD" ]; then
	cp "$SEC" "$MD"
	log "wrote $MD"
fi
log "flush latency: done in ${ELAPSED} s"
exit 0
