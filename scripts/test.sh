#!/usr/bin/env bash
#
# scripts/test.sh [SUITE...]: the test command.
#
# Installs what is missing (apt-get), builds notify_ext (any compiler
# warning fails), installs it, starts a throwaway cluster with notify_ext
# preloaded in a mktemp directory, runs every suite, prints a summary and
# exits non-zero if anything failed.  Suites, and the files they pick up:
#
#   regress    pg_regress: the Makefile's REGRESS order, then any other sql/*.sql
#   isolation  pg_isolation_regress: test/isolation/specs/*.spec, then
#              test/isolation/check-core-reference.sh (if present)
#   pgtap      pg_prove: test/pgtap/*.sql
#   client     test/client/*.c (built with test/client/Makefile), *.py, *.sh
#   golang     test/golang/*.sh
#   nopreload  a second cluster without shared_preload_libraries, where
#              CREATE EXTENSION must fail with SQLSTATE 55000 and a hint
#   tap        t/*.pl: PostgreSQL's TAP framework (PostgreSQL::Test::Cluster)
#              for multi-server tests (standbys, ...), each file making its
#              own clusters; prove -v per file (as postgres when root), as
#              PGXS's "make installcheck" would run them
#   stress     test/stress/*.sh (executable ones) and *.py
#   soak       test/soak/soak_faults.py for SOAK_SECONDS: notifiers and listeners
#              in two databases, savepoints, aborts, big batches, listeners
#              killed and reconnecting; a checker (loss, duplicates, phantoms,
#              order, listen windows).  bench/soak.sh runs it for 10 minutes
#   valgrind   test/valgrind/run.sh: a cluster of its own whose postmaster
#              and backends run under valgrind memcheck, a short workload;
#              fails on any error report with a frame in notify_ext.so
#   model      test/model/run.sh: Spin checks test/model/wakeup.pml (wake-up protocol)
#   upgrade    test/upgrade/run.sh: CREATE EXTENSION notify_ext VERSION '1.0' +
#              ALTER EXTENSION UPDATE must give what a fresh CREATE EXTENSION
#              gives (member objects, definitions, ACLs; pg_dump)
#   serverlog  the main cluster's log has no crash, PANIC or assertion failure
#   ubsan      (only with NE_SANITIZE=undefined) no UBSan report ("runtime
#              error:") in any server log of the run (every log/ directory
#              under the mktemp directory): one test, "ubsan: no reports"
#
# With SUITE arguments only those run (serverlog, and ubsan, always).
# Programs print TAP lines ("ok ...", "not ok ...") or "N passed, M failed"
# lines and are counted by them; otherwise a program is one test, judged by
# its exit status.  Environment:
#   KEEP=1              keep the temporary directory (clusters stopped)
#   NE_SKIP_DEPS=1      do not check/install packages
#   NE_SKIP_BUILD=1     do not build and install (use what is installed)
#   NE_TEST_PORT        port of the main cluster (default 55432, 55442 with
#                       NE_SANITIZE; +1 nopreload, +2 small queue, +3 valgrind)
#   NE_SANITIZE=undefined  build and install notify_ext with UBSan (see
#                       scripts/lib.sh; it stays installed: the next normal
#                       build replaces it) and check the server logs
#   NE_SUITE_TIMEOUT    seconds per program (default 900)
#   STRESS_SECONDS      length of one stress round of a *.py (default 20;
#                       also t/007_standby_stress.pl's rounds, default 12)
#   STRESS_ROUNDS       rounds per stress *.py (default 3, more listeners each;
#                       also t/007's, plus its small-ring round)
#   SOAK_SECONDS        length of the soak suite's run (default 75, plus up to
#                       ~30 s of drain and check; bench/soak.sh: 600)
#   NE_SUMMARY_FILE     also write the closing "N passed, M failed" line there
#
# Progress: a line when each suite and program starts (with its usual
# length) and when each suite ends (with its time); the summary has a time
# column.  A full run takes about 7.5 minutes on 2 cores once the packages
# are installed (SUITE_ABOUT below); the closing line is always
# "total: N passed, M failed".
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$NE_ROOT"

ALL_SUITES=(regress isolation pgtap client golang nopreload tap stress soak valgrind model upgrade)
if [ $# -gt 0 ]; then
	for s in "$@"; do
		[[ " ${ALL_SUITES[*]} " == *" $s "* ]] ||
			ne_die "unknown suite '$s' (suites: ${ALL_SUITES[*]})"
	done
	SELECTED=" $* "
else
	SELECTED=" ${ALL_SUITES[*]} "
fi
selected() { [[ $SELECTED == *" $1 "* ]]; }

if [ -n "$NE_SANITIZE" ]; then
	PORT=${NE_TEST_PORT:-55442} # not the normal run's ports
else
	PORT=${NE_TEST_PORT:-55432}
fi
SUITE_TIMEOUT=${NE_SUITE_TIMEOUT:-900}
# t/007_standby_stress.pl reads STRESS_SECONDS and STRESS_ROUNDS only if
# they were given (its defaults: 12 s, 3 rounds)
TAP_STRESS_SECONDS=${STRESS_SECONDS:-12}
TAP_STRESS_ROUNDS=${STRESS_ROUNDS:-3}
STRESS_SECONDS=${STRESS_SECONDS:-20}
STRESS_ROUNDS=${STRESS_ROUNDS:-3}
RUN_T0=$SECONDS

# how long each suite usually takes, in seconds (measured on 2 cores, the
# default STRESS_* and SOAK_SECONDS); only for the progress lines.  tap:
# t/007's rounds (each its seconds + 6), the rest about 50 s
declare -A SUITE_ABOUT=(
	[regress]=5 [isolation]=10 [pgtap]=5 [client]=120 [golang]=15 [nopreload]=5
	[tap]=$((50 + (TAP_STRESS_SECONDS + 6) * (TAP_STRESS_ROUNDS + 1))) [stress]=$(((STRESS_SECONDS + 5) * (STRESS_ROUNDS + 1) + 5))
	[soak]=$((${SOAK_SECONDS:-75} + 10)) [valgrind]=15 [model]=10 [upgrade]=5
)
BUILD_ABOUT=10 # build and install, start the cluster

# fmt_time SECONDS: "42 s", "3m05s"
fmt_time() {
	if [ "$1" -lt 60 ]; then
		echo "$1 s"
	else
		printf '%dm%02ds\n' $(($1 / 60)) $(($1 % 60))
	fi
}

# ------------------------------------------------------------ bookkeeping
ROWS=()        # "name|tests|failed|seconds|note"
TOTAL_RUN=0
TOTAL_FAILED=0
ROW_T0=$SECONDS # start of what the next record() reports

# record NAME TESTS FAILED [NOTE]: its time is since ROW_T0
record() {
	ROWS+=("$1|$2|$3|$((SECONDS - ROW_T0))|${4:-}")
	ROW_T0=$SECONDS
	TOTAL_RUN=$((TOTAL_RUN + $2))
	TOTAL_FAILED=$((TOTAL_FAILED + $3))
	if [ "$3" -eq 0 ]; then
		ne_log "$1: $2 tests, all passed${4:+ ($4)}"
	else
		ne_log "$1: $2 tests, $3 FAILED${4:+ ($4)}"
	fi
}

summary() {
	local row name n f t note status
	ne_say "summary"
	printf '%-38s %6s %7s %7s  %s\n' suite tests failed time result
	for row in "${ROWS[@]}"; do
		IFS='|' read -r name n f t note <<<"$row"
		if [ "$f" -eq 0 ]; then status=ok; else status=FAILED; fi
		printf '%-38s %6d %7d %7s  %s%s\n' "$name" "$n" "$f" "$(fmt_time "$t")" "$status" "${note:+ ($note)}"
	done
	echo
	echo "time: $(fmt_time $((SECONDS - RUN_T0))) (the whole run)"
	local line="total: $((TOTAL_RUN - TOTAL_FAILED)) passed, $TOTAL_FAILED failed"
	[ -z "${NE_SUMMARY_FILE:-}" ] || echo "$line" >"$NE_SUMMARY_FILE"
	echo "$line"
}

# run_logged LOG CMD...: run CMD (bounded by SUITE_TIMEOUT), its output
# shown and kept in LOG; returns CMD's exit status (124: timed out).
run_logged() {
	local log=$1 rc
	shift
	set +e
	timeout -k 30 "$SUITE_TIMEOUT" "$@" </dev/null 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	set -e
	if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		echo "TIMEOUT: '$*' did not finish within ${SUITE_TIMEOUT}s" | tee -a "$log"
	fi
	return "$rc"
}

# count_program NAME LOG RC: record a program's result from its output:
# TAP lines if any, else "N passed, M failed" lines (summed), else one
# test judged by RC.  A non-zero RC without any counted failure is one.
count_program() {
	local name=$1 log=$2 rc=$3 n f note=""
	n=$(grep -cE '^(not )?ok\b' "$log" || true)
	f=$(grep -cE '^not ok\b' "$log" || true)
	if [ "$n" -eq 0 ]; then
		read -r n f < <({ grep -oE '\b[0-9]+ passed, [0-9]+ failed\b' "$log" || true; } |
			awk '{ p += $1; q += $3 } END { print p + q + 0, q + 0 }')
	fi
	if [ "$n" -eq 0 ]; then
		n=1
		if [ "$rc" -eq 0 ]; then f=0; else f=1; fi
	elif [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		n=$((n + 1))
		f=1
	fi
	[ "$rc" -eq 0 ] || note="exit status $rc"
	record "$name" "$n" "$f" "$note"
}

# run_program NAME CMD...: run_logged + count_program
run_program() {
	local name=$1 log rc=0
	shift
	log=$OUT/$(echo "$name" | tr '/ ' '__').log
	# ABOUT (set by the caller, optional): how long it usually takes
	ne_say "$name${ABOUT:+ (about $ABOUT)}"
	ROW_T0=$SECONDS
	run_logged "$log" "$@" || rc=$?
	count_program "$name" "$log" "$rc"
}

# count pg_regress / pg_isolation_regress result lines
count_regress() {
	local name=$1 log=$2 rc=$3 n f note=""
	n=$(grep -cE '\.\.\. +(ok|FAILED|failed)' "$log" || true)
	f=$(grep -cE '\.\.\. +(FAILED|failed)' "$log" || true)
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		n=$((n + 1))
		f=1
		note="exit status $rc"
	fi
	record "$name" "$n" "$f" "$note"
}

psql_q() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }

# a database set up the way pg_regress does it (it does not with --use-existing)
fresh_db() {
	local db=$1
	psql_q -d postgres -c "SET client_min_messages = warning" \
		-c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" \
		-c "CREATE DATABASE \"$db\" TEMPLATE = template0"
	psql_q -d postgres \
		-c "ALTER DATABASE \"$db\" SET lc_messages TO 'C'" \
		-c "ALTER DATABASE \"$db\" SET lc_monetary TO 'C'" \
		-c "ALTER DATABASE \"$db\" SET lc_numeric TO 'C'" \
		-c "ALTER DATABASE \"$db\" SET lc_time TO 'C'" \
		-c "ALTER DATABASE \"$db\" SET bytea_output TO 'hex'" \
		-c "ALTER DATABASE \"$db\" SET timezone_abbreviations TO 'Default'"
}

# ------------------------------------------------------- deps, build, cluster
about=$BUILD_ABOUT
for s in "${ALL_SUITES[@]}"; do
	! selected "$s" || about=$((about + SUITE_ABOUT[$s]))
done
full=$BUILD_ABOUT
for s in "${ALL_SUITES[@]}"; do
	full=$((full + SUITE_ABOUT[$s]))
done
if [ $# -gt 0 ]; then
	ne_log "scripts/test.sh $*: usually about $(fmt_time "$about") (a full run: about $(fmt_time "$full")), plus a few minutes if packages are missing"
else
	ne_log "scripts/test.sh: every suite, usually about $(fmt_time "$about"), plus a few minutes if packages are missing"
fi
extra_pkgs=()
if selected golang && compgen -G "test/golang/*.sh" >/dev/null; then
	extra_pkgs+=(golang-go golang-github-lib-pq-dev) # test/golang/run-lib-pq-tests.sh
fi
if selected model && [ -f test/model/run.sh ]; then
	extra_pkgs+=(spin) # test/model/run.sh: the Spin model checker
fi
if selected tap && compgen -G "t/*.pl" >/dev/null; then
	extra_pkgs+=(libipc-run-perl) # PostgreSQL::Test::Cluster needs IPC::Run
	# t/007 (the stress checker) and t/008 (psycopg, Go lib/pq) on a standby
	extra_pkgs+=(python3-psycopg golang-go golang-github-lib-pq-dev)
fi
if selected valgrind && [ -f test/valgrind/run.sh ]; then
	extra_pkgs+=(valgrind) # test/valgrind/run.sh
fi
if [ -n "$NE_SANITIZE" ]; then
	extra_pkgs+=(libubsan1) # the runtime notify_ext.so links with (gcc pulls it in too)
fi
if [ "${NE_SKIP_DEPS:-0}" != 1 ]; then
	ne_say "dependencies"
	ne_install_deps "${extra_pkgs[@]}"
fi

WORK=$(mktemp -d /tmp/notify_ext_test.XXXXXX)
chmod 755 "$WORK"
OUT=$WORK/out
mkdir -p "$OUT"
MAIN=$WORK/main
NOLOAD=$WORK/nopreload
SMALLQ=$WORK/smallqueue
SERVERLOGS=()
# on any exit: stop the clusters, remove the directory (quietly: the
# summary's closing line stays the last line of the output)
cleanup() {
	ne_stop_cluster "$NOLOAD" >/dev/null
	ne_stop_cluster "$SMALLQ" >/dev/null
	ne_stop_cluster "$WORK/valgrind" >/dev/null
	ne_stop_cluster "$MAIN" >/dev/null
	[ "${KEEP:-0}" = 1 ] || rm -rf "$WORK"
}
trap cleanup EXIT

if [ "${NE_SKIP_BUILD:-0}" != 1 ]; then
	ne_say "build and install"
	ROW_T0=$SECONDS
	if (ne_build_install); then
		record build 1 0 "warning-free"
	else
		record build 1 1 "see the build output above"
		summary
		exit 1
	fi
fi

ne_say "starting a throwaway cluster in $MAIN"
ne_start_cluster "$MAIN" "$PORT"
psql_q -d postgres -c "CREATE EXTENSION IF NOT EXISTS notify_ext"
MAIN_ENV=("PGHOST=$PGHOST" "PGPORT=$PGPORT" "PGUSER=$PGUSER" "PGDATABASE=$PGDATABASE")

# ------------------------------------------------------------- pg_regress
suite_regress() {
	local tests=() t f rc=0
	# the Makefile's REGRESS gives the order; other sql/*.sql follow, sorted
	read -r -a tests < <(make -s --no-print-directory print-regress 2>/dev/null || true)
	for f in sql/*.sql; do
		[ -e "$f" ] || continue
		t=$(basename "$f" .sql)
		if [[ " ${tests[*]} " != *" $t "* ]]; then
			[ ${#tests[@]} -eq 0 ] || ne_warn "sql/$t.sql is not in the Makefile's REGRESS: run last"
			tests+=("$t")
		fi
	done
	ne_say "pg_regress (${tests[*]:-none})"
	if [ ${#tests[@]} -eq 0 ]; then
		record pg_regress 0 0 "no sql/*.sql"
		return
	fi
	fresh_db contrib_regression
	run_logged "$OUT/regress.log" "$NE_PG_REGRESS" --inputdir=. --outputdir="$OUT/regress" \
		--use-existing --dbname=contrib_regression \
		--host="$PGHOST" --port="$PGPORT" --user="$PGUSER" "${tests[@]}" || rc=$?
	if [ "$rc" -ne 0 ] && [ -s "$OUT/regress/regression.diffs" ]; then
		ne_say "pg_regress: regression.diffs"
		cat "$OUT/regress/regression.diffs"
	fi
	count_regress pg_regress "$OUT/regress.log" "$rc"
}

# -------------------------------------------------------------- isolation
suite_isolation() {
	local specs=() f rc=0
	for f in test/isolation/specs/*.spec; do
		[ -e "$f" ] && specs+=("$(basename "$f" .spec)")
	done
	ne_say "isolation (${#specs[@]} specs)"
	if [ ${#specs[@]} -eq 0 ]; then
		record isolation 0 0 "no specs"
		return
	fi
	fresh_db isolation_regression
	run_logged "$OUT/isolation.log" "$NE_PG_ISOLATION_REGRESS" --inputdir=test/isolation \
		--outputdir="$OUT/isolation" --use-existing --dbname=isolation_regression \
		--host="$PGHOST" --port="$PGPORT" --user="$PGUSER" "${specs[@]}" || rc=$?
	if [ "$rc" -ne 0 ] && [ -s "$OUT/isolation/regression.diffs" ]; then
		ne_say "isolation: regression.diffs"
		cat "$OUT/isolation/regression.diffs"
	fi
	count_regress isolation "$OUT/isolation.log" "$rc"
	if [ -f test/isolation/check-core-reference.sh ]; then
		run_program "isolation/check-core-reference.sh" bash test/isolation/check-core-reference.sh
	fi
}

# ------------------------------------------------------------------ pgTAP
suite_pgtap() {
	local files=() f rc=0 n failed note=""
	for f in test/pgtap/*.sql; do
		[ -e "$f" ] && files+=("$f")
	done
	ne_say "pgTAP (${#files[@]} files)"
	if [ ${#files[@]} -eq 0 ]; then
		record pgTAP 0 0 "no test/pgtap/*.sql"
		return
	fi
	psql_q -d postgres -c "SET client_min_messages = warning" \
		-c "DROP DATABASE IF EXISTS tap WITH (FORCE)" -c "CREATE DATABASE tap"
	psql_q -d tap -c "CREATE EXTENSION pgtap" -c "CREATE EXTENSION notify_ext"
	run_logged "$OUT/pgtap.log" pg_prove --host "$PGHOST" --port "$PGPORT" \
		--username "$PGUSER" --dbname tap "${files[@]}" || rc=$?
	# (grep finding nothing is no error here)
	n=$({ grep -oE 'Tests=[0-9]+' "$OUT/pgtap.log" || true; } | tail -n 1 | cut -d= -f2)
	failed=$({ grep -oE 'Failed [0-9]+/[0-9]+ subtests' "$OUT/pgtap.log" || true; } |
		awk '{ split($2, a, "/"); s += a[1] } END { print s + 0 }')
	n=${n:-0}
	if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
		n=$((n + 1))
		failed=1
		note="exit status $rc"
	fi
	record pgTAP "$n" "$failed" "$note"
}

# ------------------------------------------------------------ real clients
suite_client() {
	local f p bin=$OUT/client-bin rc=0
	if compgen -G "test/client/*.c" >/dev/null; then
		ne_say "client: building test/client/*.c"
		if make -s -C test/client OUT="$bin" PG_CONFIG="$PG_CONFIG" >"$OUT/client-build.log" 2>&1; then
			:
		else
			cat "$OUT/client-build.log"
			record "client/build" 1 1 "test/client/*.c did not compile"
			rc=1
		fi
		if [ "$rc" -eq 0 ]; then
			for f in test/client/*.c; do
				p=$(basename "$f" .c)
				run_program "client/$p" env "${MAIN_ENV[@]}" "$bin/$p"
			done
		fi
	fi
	for f in test/client/*.py; do
		[ -e "$f" ] || continue
		[[ $(basename "$f") == _* ]] && continue
		run_program "client/$(basename "$f")" env "${MAIN_ENV[@]}" "$NE_PYTHON" "$f"
	done
	for f in test/client/*.sh; do
		[ -x "$f" ] || continue
		run_program "client/$(basename "$f")" env "${MAIN_ENV[@]}" "$f"
	done
}

# -------------------------------------------------------------------- Go
# Go's build cache lives in the run's directory, removed with it
suite_golang() {
	local f
	for f in test/golang/*.sh; do
		[ -x "$f" ] || continue
		run_program "golang/$(basename "$f")" env "${MAIN_ENV[@]}" GOCACHE="$WORK/gocache" "$f"
	done
}

# ------------------------------------------- without shared_preload_libraries
suite_nopreload() {
	local out created alive rc=0 n=0 failed=0
	local conn=("PGHOST=$NOLOAD" "PGPORT=$((PORT + 1))")
	ne_say "nopreload: CREATE EXTENSION in a cluster without shared_preload_libraries"
	if ! (ne_start_cluster "$NOLOAD" "$((PORT + 1))" "shared_preload_libraries = ''") \
		>"$OUT/nopreload-start.log" 2>&1; then
		cat "$OUT/nopreload-start.log"
		record nopreload 1 1 "the second cluster did not start"
		return
	fi
	out=$(env "${conn[@]}" psql -X -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -d postgres \
		-c "CREATE EXTENSION notify_ext" 2>&1) || rc=$?
	created=$(env "${conn[@]}" psql -X -qAt -d postgres \
		-c "SELECT count(*) FROM pg_extension WHERE extname = 'notify_ext'" 2>&1 || true)
	alive=$(env "${conn[@]}" psql -X -qAt -d postgres -c "SELECT 'alive'" 2>&1 || true)
	ne_stop_cluster "$NOLOAD"
	printf 'psql said:\n%s\n' "$out"
	# tap DESCRIPTION CMD...: one TAP line for CMD's success
	tap() {
		local desc=$1
		shift
		n=$((n + 1))
		if "$@"; then
			echo "ok $n - $desc"
		else
			echo "not ok $n - $desc"
			failed=$((failed + 1))
		fi
	}
	tap "CREATE EXTENSION notify_ext fails (psql exit status $rc)" test "$rc" -ne 0
	tap "with SQLSTATE 55000" grep -qE '^ERROR: +55000: ' <<<"$out"
	tap "the error names shared_preload_libraries" grep -qE '^ERROR: .*shared_preload_libraries' <<<"$out"
	tap "a HINT mentions shared_preload_libraries" grep -qE '^HINT: .*shared_preload_libraries' <<<"$out"
	tap "the extension was not created (pg_extension count: $created)" test "$created" = 0
	tap "the server still accepts connections" test "$alive" = alive
	record nopreload "$n" "$failed"
}

# ----------------------------------------------------------------- stress
suite_stress() {
	local f i
	for f in test/stress/*.sh; do
		[ -x "$f" ] || continue
		run_program "stress/$(basename "$f")" env "${MAIN_ENV[@]}" "$f"
	done
	for f in test/stress/*.py; do
		[ -e "$f" ] || continue
		[[ $(basename "$f") == _* ]] && continue
		# usage: SCRIPT [seconds] [notifiers] [listeners]; more listeners each round
		for i in $(seq 1 "$STRESS_ROUNDS"); do
			ABOUT="$((STRESS_SECONDS + 5)) s" run_program "stress/$(basename "$f") round $i" env "${MAIN_ENV[@]}" \
				"$NE_PYTHON" "$f" "$STRESS_SECONDS" 4 $((6 + 3 * i))
		done
	done
	# once more on a cluster with the smallest queue (64kB): the ring wraps
	# every few hundred batches, and with listeners parked longer it spills
	# to disk constantly (the disk tier under concurrency)
	ne_say "stress: a cluster with notify_ext.queue_size = 64kB"
	if ! (ne_start_cluster "$SMALLQ" "$((PORT + 2))" "shared_preload_libraries = 'notify_ext'" \
		"notify_ext.queue_size = 64kB") >"$OUT/smallq-start.log" 2>&1; then
		cat "$OUT/smallq-start.log"
		record "stress small queue" 1 1 "the cluster did not start"
		return
	fi
	env PGHOST="$SMALLQ" PGPORT=$((PORT + 2)) psql -X -q -d postgres -c "CREATE EXTENSION notify_ext"
	for f in test/stress/*.py; do
		[ -e "$f" ] || continue
		[[ $(basename "$f") == _* ]] && continue
		# listeners sit in transactions up to 1 s: the queue spills all the time
		ABOUT="$((STRESS_SECONDS + 5)) s" run_program "stress/$(basename "$f") 64kB queue" env PGHOST="$SMALLQ" PGPORT=$((PORT + 2)) \
			PGUSER=postgres PGDATABASE=postgres STRESS_PARK=1.0 STRESS_EXPECT_SPILL=1 \
			"$NE_PYTHON" "$f" "$STRESS_SECONDS" 4 9
	done
	SERVERLOGS+=("$SMALLQ/log/postmaster.log")
	ne_stop_cluster "$SMALLQ"
}

# ---------------------------------------------------------------- valgrind
# its cluster lives in $WORK/valgrind, so the ubsan check below sees its log.
# As root, valgrind runs as postgres and reads test/valgrind/postgres.supp:
# if postgres cannot read the checkout (one in /root, mode 700), run.sh runs
# from a copy in $WORK (no directory's permissions are changed)
suite_valgrind() {
	local run=test/valgrind/run.sh
	if ne_is_root && ! ne_pguser test -r "$NE_ROOT/test/valgrind/postgres.supp"; then
		mkdir -p "$WORK/src/test" "$WORK/src/scripts"
		cp -R test/valgrind "$WORK/src/test/"
		cp scripts/lib.sh "$WORK/src/scripts/"
		run=$WORK/src/test/valgrind/run.sh
		ne_log "the postgres user cannot read $NE_ROOT: running a copy of test/valgrind in $WORK/src"
	fi
	run_program "valgrind/run.sh" env NE_VALGRIND_DIR="$WORK/valgrind" \
		NE_VALGRIND_PORT=$((PORT + 3)) "$run"
}

# -------------------------------------------------- TAP (PostgreSQL::Test)
# t/*.pl with PGXS's src/test/perl (PostgreSQL::Test::Cluster): each file
# makes its own clusters (data under $WORK/tap/tmp_check, Unix sockets in
# /tmp, free ports picked by Cluster.pm).  initdb refuses root, so as root
# prove runs as postgres, in a copy of t/ that postgres owns.  The command
# is PGXS's prove_installcheck ("make installcheck"), one prove -v per file
# so that each "ok N" line is counted; KEEP=1 also keeps the data
# directories (PG_TEST_NOCLEAN).  Logs: $WORK/tap/tmp_check/log.  The
# programs some files run (t/007: test/stress, t/008: test/client/standby,
# test/golang/standby; they look in t/../test) are copied along, so that
# postgres can read them wherever the checkout is; Go's build cache goes
# to tmp_check.
suite_tap() {
	local dir=$WORK/tap f name failed_before pid as=() env=()
	if ! compgen -G "t/*.pl" >/dev/null; then
		record tap 0 0 "no t/*.pl"
		return
	fi
	mkdir -p "$dir/test/client" "$dir/test/golang"
	cp -R t "$dir/"
	cp -R test/stress "$dir/test/"
	[ ! -d test/client/standby ] || cp -R test/client/standby "$dir/test/client/"
	[ ! -d test/golang/standby ] || cp -R test/golang/standby "$dir/test/golang/"
	if ne_is_root; then
		chown -R postgres:postgres "$dir"
		as=(runuser -u postgres --)
	fi
	env=("TESTDIR=$dir" "PATH=$NE_PGBIN:$PATH" "PG_REGRESS=$NE_PG_REGRESS" "PG_CONFIG=$PG_CONFIG"
		"NE_PYTHON=$NE_PYTHON")
	[ "${KEEP:-0}" != 1 ] || env+=(PG_TEST_NOCLEAN=1)
	[ -z "${NE_SANITIZE:-}" ] || env+=("UBSAN_OPTIONS=${UBSAN_OPTIONS:-${NE_UBSAN_OPTIONS:-}}")
	for f in "$dir"/t/*.pl; do
		name=$(basename "$f" .pl)
		failed_before=$TOTAL_FAILED
		# (prove's own closing "ok" for the file is no test: renamed, so
		# that only the test script's "ok N" lines are counted)
		run_program "tap/$name.pl" "${as[@]}" env -C "$dir" "${env[@]}" \
			bash -c 'set -o pipefail; "$@" 2>&1 | sed -u "s/^ok\$/prove: file ok/"' prove \
			prove -v -I "$NE_PGXS_DIR/src/test/perl" -I "$dir" "t/$name.pl"
		if [ "$TOTAL_FAILED" -ne "$failed_before" ]; then
			ne_say "tap/$name.pl: end of $dir/tmp_check/log/regress_log_$name"
			tail -n 80 "$dir/tmp_check/log/regress_log_$name" 2>/dev/null || true
			ne_log "server logs: $dir/tmp_check/log/${name}_*.log (KEEP=1 keeps them)"
		fi
		# a prove that was killed (timeout) leaves its servers running
		for pid in "$dir"/tmp_check/t_"${name}"_*_data/pgdata/postmaster.pid; do
			[ -f "$pid" ] || continue
			ne_pguser "$NE_PGBIN/pg_ctl" -D "$(dirname "$pid")" -m immediate -w stop >/dev/null 2>&1 || true
		done
	done
}

# ------------------------------------------------------------------- soak
# the fault soak on the main cluster (it creates its second database, soak2)
suite_soak() {
	ABOUT="$(fmt_time $((${SOAK_SECONDS:-75} + 10)))" run_program "soak/soak_faults.py" env "${MAIN_ENV[@]}" "$NE_PYTHON" test/soak/soak_faults.py "${SOAK_SECONDS:-75}"
}

# ------------------------------------------------------------------ model
# the Spin model of the wake-up protocol (no cluster needed)
suite_model() {
	run_program "model/run.sh" test/model/run.sh
}

# ---------------------------------------------------------------- upgrade
# 1.0 updated to the default version equals a fresh install (two databases
# of the main cluster, dropped afterwards)
suite_upgrade() {
	run_program "upgrade/run.sh" env "${MAIN_ENV[@]}" test/upgrade/run.sh
}

# --------------------------------------------------------------- serverlog
suite_serverlog() {
	local log=$MAIN/log/postmaster.log bad
	ne_say "serverlog: crashes, PANICs, assertion failures in $log ${SERVERLOGS[*]}"
	bad=$(grep -nE 'PANIC:|TRAP:|terminated by signal|exited with exit code [2-9]|was terminated by exception|server process .* exited with' "$log" "${SERVERLOGS[@]}" || true)
	if [ -z "$bad" ]; then
		record serverlog 1 0 "clean"
	else
		printf '%s\n' "$bad" | head -n 40
		record serverlog 1 1 "see the lines above"
	fi
}

for s in "${ALL_SUITES[@]}"; do
	if selected "$s"; then
		t0=$SECONDS
		failed_before=$TOTAL_FAILED
		ne_say "suite $s: starting (about $(fmt_time "${SUITE_ABOUT[$s]}"))"
		ROW_T0=$SECONDS
		"suite_$s"
		if [ "$TOTAL_FAILED" -eq "$failed_before" ]; then
			ne_log "suite $s: done in $(fmt_time $((SECONDS - t0)))"
		else
			ne_log "suite $s: done in $(fmt_time $((SECONDS - t0))), $((TOTAL_FAILED - failed_before)) FAILED"
		fi
	fi
done
ROW_T0=$SECONDS
suite_serverlog

if [ "$TOTAL_FAILED" -ne 0 ]; then
	ne_say "last lines of the server log ($MAIN/log/postmaster.log)"
	tail -n 60 "$MAIN/log/postmaster.log" || true
fi
ne_stop_cluster "$MAIN"
# ------------------------------------------------------------------ ubsan
# NE_SANITIZE: UBSan writes its reports to the server's stderr, i.e. the
# server log; every log of every cluster of the run (all under $WORK, in a
# log/ directory: main, nopreload, smallqueue, valgrind, TAP tests' ones)
# is scanned, now that the clusters are stopped
if [ -n "$NE_SANITIZE" ]; then
	ne_say "ubsan: UBSan reports in the server logs"
	ROW_T0=$SECONDS
	mapfile -t ubsan_logs < <(find "$WORK" -path "$OUT" -prune -o -type f -path '*/log/*' -print | sort)
	printf '%s\n' "${ubsan_logs[@]}"
	# reports: "runtime error:" lines, and any other UBSan line but the SUMMARY one
	ubsan_n=$(cat /dev/null "${ubsan_logs[@]}" | grep -E 'runtime error:|UndefinedBehaviorSanitizer' |
		grep -cv '^SUMMARY: UndefinedBehaviorSanitizer' || true)
	if [ "${#ubsan_logs[@]}" -eq 0 ]; then
		record "ubsan: no reports" 1 1 "no server log found under $WORK"
	elif [ "$ubsan_n" -eq 0 ]; then
		record "ubsan: no reports" 1 0 "${#ubsan_logs[@]} logs"
	else
		# the reports: "runtime error:" lines, notes with their memory dumps,
		# stack frames ("#N 0x..."), other UBSan lines (first 400 lines)
		awk '/runtime error:|UndefinedBehaviorSanitizer|: note: |^ +#[0-9]+ 0x|^ [0-9a-f][0-9a-f] |^ +\^ *$/ {
				print FILENAME ": " $0
				if (++n >= 400) exit
			}' "${ubsan_logs[@]}"
		record "ubsan: no reports" 1 1 "$ubsan_n UBSan reports in the server logs, above"
	fi
fi
[ "${KEEP:-0}" != 1 ] || ne_log "keeping $WORK (KEEP=1): server log in $MAIN/log, results in $OUT"
summary
[ "$TOTAL_FAILED" -eq 0 ]
