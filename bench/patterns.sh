#!/usr/bin/env bash
# bench/patterns.sh [--quick] [--md FILE] [--port N] [--no-build] [--keep]
#
# What pattern subscriptions (ext_listen_pattern()) cost the notifiers:
# throughput of autocommit `SELECT ext_notify('c', 'x')` (pgbench -M
# prepared, 2 clients) while other sessions of the database hold 0, 100 or
# 1000 registered patterns, measured in one run on a throwaway cluster of
# its own, the cases interleaved within each repetition.  In every case one
# listener ext_listens `c` and reads at once.  The cases:
#
#   none          no pattern registered anywhere
#   nomatch-100   10 idle sessions with 10 patterns each  ('c.<s>.<k>.%'),
#   nomatch-1000  ... with 100 patterns each, none matching `c`: the
#                 publisher tests each pattern, nobody else is woken
#   channel-10    10 sessions ext_listen('c') and read (fan-out by channel,
#                 the reference for the next two)
#   match-100     10 sessions with 10 patterns each, all matching `c`
#   match-1000    ... with 100 each ('%%%c%%': <s> leading and <k>
#                 trailing %): each notification goes to all 10 sessions,
#                 once per session whatever the number of its patterns
#
# All patterns of a case are distinct (database, pattern) pairs, so 1000
# fill the table to within 24 of notify_ext.max_patterns' default (1024).
# The sessions are one libpq program (its C source is in this file, written
# out and compiled at the start) polling all its connections; it counts what each session got,
# so every case also checks delivery: the reader got every committed
# notification, each matching session got each exactly once, a
# non-matching session got none.
#
# Prints the markdown section (a table of medians and ratios), and with
# --md writes it to FILE; bench/run.sh calls this with --md and appends the
# section to results.md.  Installs what it needs with apt-get, builds and
# installs notify_ext (scripts/lib.sh) unless --no-build.  Default size
# about 2 minutes on 2 cores; --quick (CI smoke, the numbers mean nothing)
# about 10 s.
#
#   --quick     smoke size: 1 repetition, 1 s per case
#   --md FILE   write the markdown section to FILE
#   --port N    the cluster's port (default 5480)
#   --no-build  notify_ext is built and installed already (bench/run.sh)
#   --keep      leave the cluster running and the raw data in place
#
# Environment: NE_PATTERNS_REPS, NE_PATTERNS_T (seconds per case),
# NE_PATTERNS_CASES (a subset of the cases above, in that order),
# NE_BENCH_PGBIN (run PostgreSQL 15 from that bin directory, e.g. a private
# installation with its own share/ and lib/; with --no-build).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")

. "$HERE/lib.sh"
ne_bench_options "${NE_PATTERNS_PORT:-5480}" "$@"

if [ $QUICK = 1 ]; then
	REPS=1 T=1
else
	REPS=3 T=5
fi
REPS=${NE_PATTERNS_REPS:-$REPS}
T=${NE_PATTERNS_T:-$T}
CASES=${NE_PATTERNS_CASES:-"none nomatch-100 nomatch-1000 channel-10 match-100 match-1000"}
SESSIONS=10
CLIENTS=2

START_EPOCH=$(date +%s)
log() { printf '[patterns %4ds] %s\n' $(( $(date +%s) - START_EPOCH )) "$*" >&2; }

# shellcheck source=../scripts/lib.sh
. "$ROOT/scripts/lib.sh"
if [ -n "${NE_BENCH_PGBIN:-}" ]; then
	[ $BUILD = 0 ] || { echo "patterns.sh: NE_BENCH_PGBIN needs --no-build" >&2; exit 2; }
	NE_PGBIN=$NE_BENCH_PGBIN
	PG_CONFIG=$NE_PGBIN/pg_config
fi

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
RUN=$(mktemp -d /tmp/ne_patterns.XXXXXX)
[ "$(id -u)" = 0 ] && chown postgres: "$RUN"
chmod 755 "$RUN"
DATA_DIR=$RUN/cluster
DRV=$RUN/patl

# ------------------------------------------------------------ the sessions
# patl -d CONNINFO -k reader|channel|nomatch|match -n SESSIONS -p PATTERNS
#      -r READYFILE -w MAXSECONDS
# Opens SESSIONS connections; session s ext_listens 'c' (reader, channel) or
# registers PATTERNS patterns in one statement (nomatch: 'c.<s>.<k>.%';
# match: <s> '%', 'c', <k> '%'), checks ext_listening_patterns(), then
# writes READYFILE and drains every socket.  A payload "STOP" ends a
# session; the program exits when every session that listens to `c` has
# stopped (nomatch sessions never do: SIGTERM), on SIGTERM, or after
# MAXSECONDS, and prints total=, min=, max= (notifications per session,
# STOP not counted).
cat >"$RUN/patl.c" <<'PATL_C'
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

static volatile sig_atomic_t stop_requested = 0;

static void
on_signal(int sig)
{
	(void) sig;
	stop_requested = 1;
}

static double
mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
die(const char *what, PGconn *conn)
{
	fprintf(stderr, "patl: %s: %s\n", what, conn ? PQerrorMessage(conn) : "");
	exit(1);
}

static long
query_long(PGconn *conn, const char *sql)
{
	PGresult   *res = PQexec(conn, sql);
	long		v;

	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) < 1)
		die(sql, conn);
	v = atol(PQgetvalue(res, 0, 0));
	PQclear(res);
	return v;
}

int
main(int argc, char **argv)
{
	const char *conninfo = NULL, *kind = NULL, *readyfile = NULL;
	int			n = 1, per = 0, opt;
	double		maxsec = 600, t0;
	PGconn	  **conns;
	long	   *count;
	int		   *stopped;
	struct pollfd *pfd;
	int			need_stop;

	while ((opt = getopt(argc, argv, "d:k:n:p:r:w:")) != -1)
	{
		switch (opt)
		{
			case 'd': conninfo = optarg; break;
			case 'k': kind = optarg; break;
			case 'n': n = atoi(optarg); break;
			case 'p': per = atoi(optarg); break;
			case 'r': readyfile = optarg; break;
			case 'w': maxsec = atof(optarg); break;
			default: return 2;
		}
	}
	if (!conninfo || !kind || n < 1)
		return 2;
	need_stop = strcmp(kind, "nomatch") != 0;
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	conns = calloc(n, sizeof(PGconn *));
	count = calloc(n, sizeof(long));
	stopped = calloc(n, sizeof(int));
	pfd = calloc(n, sizeof(struct pollfd));
	for (int s = 0; s < n; s++)
	{
		char		sql[512];

		conns[s] = PQconnectdb(conninfo);
		if (PQstatus(conns[s]) != CONNECTION_OK)
			die("connect", conns[s]);
		if (strcmp(kind, "reader") == 0 || strcmp(kind, "channel") == 0)
		{
			if (query_long(conns[s], "SELECT count(ext_listen('c'))") != 1 ||
				query_long(conns[s], "SELECT count(*) FROM ext_listening_channels()") != 1)
				die("ext_listen('c')", conns[s]);
			continue;
		}
		snprintf(sql, sizeof(sql),
				 "SELECT count(ext_listen_pattern(%s)) FROM generate_series(0, %d) AS k",
				 strcmp(kind, "match") == 0
				 ? "repeat('%', $s$) || 'c' || repeat('%', k)"
				 : "format('c.%s.%s.%%', $s$, k)",
				 per - 1);
		/* $s$ -> the session number */
		{
			char		buf[512], num[16], *p;

			snprintf(num, sizeof(num), "%d", s);
			while ((p = strstr(sql, "$s$")) != NULL)
			{
				*p = '\0';
				snprintf(buf, sizeof(buf), "%s%s%s", sql, num, p + 3);
				strcpy(sql, buf);
			}
		}
		if (query_long(conns[s], sql) != per ||
			query_long(conns[s], "SELECT count(*) FROM ext_listening_patterns()") != per)
			die("ext_listen_pattern()", conns[s]);
	}
	if (readyfile)
	{
		FILE	   *f = fopen(readyfile, "w");

		if (!f)
			die("readyfile", NULL);
		fprintf(f, "ready\n");
		fclose(f);
	}
	t0 = mono_s();
	for (;;)
	{
		int			left = 0;

		for (int s = 0; s < n; s++)
			if (!stopped[s])
				left++;
		if ((need_stop && left == 0) || stop_requested || mono_s() - t0 > maxsec)
			break;
		for (int s = 0; s < n; s++)
		{
			pfd[s].fd = PQsocket(conns[s]);
			pfd[s].events = POLLIN;
			pfd[s].revents = 0;
		}
		if (poll(pfd, n, 100) < 0)
			continue;
		for (int s = 0; s < n; s++)
		{
			PGnotify   *nt;

			if (!(pfd[s].revents & (POLLIN | POLLERR | POLLHUP)))
				continue;
			if (!PQconsumeInput(conns[s]))
				die("read", conns[s]);
			while ((nt = PQnotifies(conns[s])) != NULL)
			{
				if (strcmp(nt->extra, "STOP") == 0)
					stopped[s] = 1;
				else
					count[s]++;
				PQfreemem(nt);
			}
		}
	}
	{
		long		total = 0, mn = -1, mx = 0;

		for (int s = 0; s < n; s++)
		{
			total += count[s];
			if (mn < 0 || count[s] < mn)
				mn = count[s];
			if (count[s] > mx)
				mx = count[s];
			PQfinish(conns[s]);
		}
		printf("total=%ld\nmin=%ld\nmax=%ld\nsessions=%d\n", total, mn, mx, n);
	}
	return 0;
}
PATL_C
gcc -O2 -Wall -I"$("$PG_CONFIG" --includedir)" -o "$DRV" "$RUN/patl.c" \
	-L"$("$PG_CONFIG" --libdir)" -lpq

BG_PIDS=()
cleanup() {
	local p
	for p in "${BG_PIDS[@]:-}"; do
		[ -n "$p" ] && grep -q patl "/proc/$p/cmdline" 2>/dev/null &&
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

PSQL -d postgres -c "CREATE DATABASE bench"
PSQL -d bench -c "CREATE EXTENSION notify_ext"
if [ "$(PSQL -d bench -c "SELECT count(*) FROM pg_proc WHERE proname = 'ext_listen_pattern'")" != 1 ]; then
	echo "patterns.sh: the installed notify_ext has no ext_listen_pattern() ($SO)" >&2
	exit 1
fi
MAXPAT=$(PSQL -d bench -c "SHOW notify_ext.max_patterns")
# the module the postmaster loaded is the installed file of its start
SO_NOTE="the installed notify_ext.so"
if [ -n "${NE_BENCH_PGBIN:-}" ]; then
	SO_NOTE="the notify_ext.so installed in $SO (NE_BENCH_PGBIN)"
elif [ -f "$ROOT/notify_ext.so" ]; then
	if cmp -s "$SO" "$ROOT/notify_ext.so"; then
		SO_NOTE="notify_ext.so = this checkout's build"
	else
		SO_NOTE="the installed notify_ext.so, not this checkout's notify_ext.so"
	fi
fi
echo "SELECT ext_notify('c', 'x');" >"$RUN/notify.sql"


# start_sessions NAME KIND SESSIONS PATTERNS -> LPID
start_sessions() {
	local name=$1 i
	rm -f "$RUN/$name.ready" "$RUN/$name.out"
	"$DRV" -d "$CONN" -k "$2" -n "$3" -p "$4" -r "$RUN/$name.ready" -w $((T + 300)) \
		>"$RUN/$name.out" 2>"$RUN/$name.err" &
	LPID=$!
	BG_PIDS+=("$LPID")
	for i in $(seq 1 1200); do
		[ -f "$RUN/$name.ready" ] && return 0
		alive "$LPID" || { cat "$RUN/$name.err" >&2; return 1; }
		sleep 0.05
	done
	echo "patterns.sh: sessions $name not ready" >&2
	return 1
}
# stop_sessions PID SECONDS: wait for it to exit (it does on STOP), else TERM it
stop_sessions() {
	local pid=$1 t=$2 i
	for i in $(seq 1 $((t * 20))); do
		alive "$pid" || break
		sleep 0.05
	done
	kill -TERM "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}
settle() {	# no client backend left but ours, the queue empty
	for _ in $(seq 1 200); do
		[ "$(PSQL -d postgres -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()")" = 0 ] && break
		sleep 0.05
	done
	for _ in $(seq 1 100); do
		[ "$(PSQL -d bench -c "SELECT ext_notification_queue_usage() = 0")" = t ] && return 0
		sleep 0.05
	done
}

# How busy the machine was with other work (as in bench/run.sh)
POSTMASTER_PID=$(head -1 "$DATA_DIR/data/postmaster.pid")
cpu_snapshot() {
	echo "$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat) $(proc_jiffies "$POSTMASTER_PID" $$) $(awk '{ printf "%d", $1 * 100 }' /proc/uptime)"
}
CPU_MARK=$(cpu_snapshot)

# case -> kind, patterns per session
case_kind() { case $1 in none) echo none ;; channel-*) echo channel ;; nomatch-*) echo nomatch ;; match-*) echo match ;; esac; }
case_per() { case $1 in *-100) echo 10 ;; *-1000) echo 100 ;; *) echo 0 ;; esac; }

RAW=$RUN/patterns.tsv
: >"$RAW"
run_case() {	# REP CASE
	local rep=$1 cs=$2 kind per out tps n rgot imin=- imax=- ipid="" rpid
	kind=$(case_kind "$cs"); per=$(case_per "$cs")
	settle
	if [ "$kind" != none ]; then
		start_sessions idle "$kind" "$SESSIONS" "$per"
		ipid=$LPID
	fi
	start_sessions reader reader 1 0
	rpid=$LPID
	if ! out=$("$BINDIR/pgbench" -n -M prepared -f "$RUN/notify.sql" -c "$CLIENTS" -j "$CLIENTS" \
		-T "$T" -h "$SOCK" -p "$PORT" -U postgres bench 2>&1); then
		echo "$out" >&2
		return 1
	fi
	tps=$(awk '/^tps = / { print $3; exit }' <<<"$out")
	n=$(awk -F': ' '/number of transactions actually processed/ { split($2, a, " "); print a[1] }' <<<"$out")
	PSQL -d bench -c "SELECT ext_notify('c', 'STOP')" >/dev/null
	stop_sessions "$rpid" 120
	rgot=$(kv "$RUN/reader.out" total)
	if [ -n "$ipid" ]; then
		# nomatch sessions never get the STOP: they end when TERMed
		if [ "$kind" = nomatch ]; then stop_sessions "$ipid" 0; else stop_sessions "$ipid" 120; fi
		imin=$(kv "$RUN/idle.out" min); imax=$(kv "$RUN/idle.out" max)
	fi
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$rep" "$cs" "$tps" "$n" "$rgot" "$imin" "$imax" >>"$RAW"
	log "   rep $rep  $cs: $tps tps, committed $n, reader got $rgot$([ -n "$ipid" ] && echo ", each of the $SESSIONS sessions got $imin..$imax" || true)"
}

log "patterns: $CLIENTS clients, ${T}s per case, cases: $CASES, x $REPS reps"
for rep in $(seq 1 "$REPS"); do
	for cs in $CASES; do
		run_case "$rep" "$cs"
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
# RAW columns: 1 rep, 2 case, 3 tps, 4 committed, 5 reader got, 6 min and
# 7 max per idle session
med() {	# CASE COLUMN -> median over the repetitions
	awk -F'\t' -v c="$1" "\$2 == c { a[++k] = \$$2 + 0 }
	END {
		if (k == 0) { print \"nan\"; exit }
		for (i = 2; i <= k; i++) { x = a[i]; j = i - 1; while (j > 0 && a[j] > x) { a[j + 1] = a[j]; j-- } a[j + 1] = x }
		print (k % 2) ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
	}" "$RAW"
}
pr() {	# NUM-CASE DEN-CASE -> "median min max" of per-rep tps ratios
	awk -F'\t' -v nc="$1" -v dc="$2" '$2 == nc { n[$1] = $3 } $2 == dc { d[$1] = $3 }
	END {
		for (r in n) if ((r in d) && d[r] + 0 > 0) a[++k] = n[r] / d[r]
		if (k == 0) { print "nan nan nan"; exit }
		for (i = 2; i <= k; i++) { x = a[i]; j = i - 1; while (j > 0 && a[j] > x) { a[j + 1] = a[j]; j-- } a[j + 1] = x }
		print ((k % 2) ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2), a[1], a[k]
	}' "$RAW"
}
fr() {
	awk -v s="$1" 'BEGIN { split(s, a, " ")
		if (a[1] == "nan") print "n/a"
		else if (sprintf("%.2f", a[2]) == sprintf("%.2f", a[3])) printf "%.2f", a[1]
		else printf "%.2f (%.2f–%.2f)", a[1], a[2], a[3] }'
}
f0() { awk -v a="$1" 'BEGIN { if (a == "nan" || a == "") print "n/a"; else printf "%.0f", a }'; }
# delivery check of a case over all its runs
delivered() {	# CASE KIND
	awk -F'\t' -v c="$1" -v k="$2" -v s="$SESSIONS" '$2 == c {
		runs++
		if ($5 != $4) bad++
		else if (k == "nomatch" && $7 != 0) bad++
		else if ((k == "match" || k == "channel") && ($6 != $4 || $7 != $4)) bad++
	} END {
		if (bad) { printf "NO (%d of %d runs)", bad, runs; exit }
		if (k == "none") printf "yes"
		else if (k == "nomatch") printf "yes; the %d sessions got none", s
		else printf "yes; each of the %d sessions got each once", s
	}' "$RAW"
}
SEC=$RUN/patterns.md
{
	echo "## Patterns"
	echo
	echo "### Publish cost of pattern subscriptions"
	echo
	echo "Generated by \`bench/patterns.sh$([ $QUICK = 1 ] && echo " --quick" || true)\` on $(date -u '+%Y-%m-%d %H:%M UTC') in ${ELAPSED} s$([ $QUICK = 1 ] && echo " (smoke size: the numbers mean nothing)" || true); notify_ext from commit $BUILD_COMMIT ($SO_NOTE), notify_ext.max_patterns $MAXPAT; a cluster of its own: $(printf '`%s`, ' "${CONF[@]}" | sed 's/, $//'), else initdb's defaults."
	echo "pgbench -M prepared, $CLIENTS clients, autocommit \`SELECT ext_notify('c', 'x')\`, ${T} s per case, $REPS repetition(s),"
	echo "the cases interleaved in each. One listener ext_listens \`c\` and reads at once. The patterns are registered by"
	echo "$SESSIONS other sessions of the same database: not matching \`c\` (\`c.<s>.<k>.%\`: idle, never woken) or all"
	echo "matching it (<s> \`%\`, \`c\`, <k> \`%\`: each notification goes to the $SESSIONS sessions, which read at once);"
	echo "every pattern a distinct (database, pattern) pair. channel fan-out = the same $SESSIONS sessions with"
	echo "\`ext_listen('c')\` instead of patterns. Ratios: medians of per-repetition tps ratios (range in parentheses)."
	echo
	echo "| patterns in the database | sessions woken per notify | tps | vs 0 patterns | vs channel fan-out | delivered |"
	echo "|---|---:|---:|---:|---:|---|"
	for cs in $CASES; do
		kind=$(case_kind "$cs"); per=$(case_per "$cs")
		case $kind in
			none) what="0"; woken=1 ;;
			nomatch) what="$((per * SESSIONS)), none matching ($SESSIONS sessions x $per)"; woken=1 ;;
			channel) what="0 ($SESSIONS sessions listen on \`c\`: channel fan-out)"; woken=$((SESSIONS + 1)) ;;
			match) what="$((per * SESSIONS)), all matching ($SESSIONS sessions x $per)"; woken=$((SESSIONS + 1)) ;;
		esac
		vs0=""; vsch=""
		[ "$cs" = none ] || vs0=$(fr "$(pr "$cs" none)")
		if [ "$kind" = match ] && [[ " $CASES " == *" channel-10 "* ]]; then vsch=$(fr "$(pr "$cs" channel-10)"); fi
		echo "| $what | $woken | $(f0 "$(med "$cs" 3)") | $vs0 | $vsch | $(delivered "$cs" "$kind") |"
	done
	echo
	echo "Other processes on the machine used $OTHER_CPU% of its CPU time during this workload."
	echo
} >"$SEC"

cat "$SEC"
if [ -n "$MD" ]; then
	cp "$SEC" "$MD"
	log "wrote $MD"
fi
log "patterns: done in ${ELAPSED} s"
exit 0
