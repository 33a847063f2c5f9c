#!/usr/bin/env bash
# The test command: installs what it needs, builds warning-free, installs,
# starts a throwaway cluster with notify_ext preloaded and runs every suite.
# Exits non-zero if any suite fails.  STRESS_SECONDS (default 20) sets the
# length of each stress round; STRESS_ROUNDS (default 3) their number.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$NE_ROOT"

ne_install_deps
ne_build_install

work=$(mktemp -d /tmp/notify_ext_test.XXXXXX)
chmod 755 "$work"
out=$work/out
mkdir -p "$out"
cleanup() {
	ne_stop_cluster "$work/noload"
	ne_stop_cluster "$work/main"
	if [ "${KEEP:-0}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

ne_say "starting a throwaway cluster in $work/main"
ne_start_cluster "$work/main" 5471 "shared_preload_libraries = 'notify_ext'"
psql -X -q -v ON_ERROR_STOP=1 -c "CREATE EXTENSION notify_ext"

PYTHON=/usr/bin/python3   # Debian's, with python3-psycopg
results=()
failed=0
record() {      # record NAME STATUS DETAIL
	results+=("$(printf '%-34s %-5s %s' "$1" "$2" "$3")")
	[ "$2" = ok ] || failed=1
}

# 1. pg_regress: sql/*.sql against expected/*.out
ne_say "pg_regress"
regress_tests=$(make -s --no-print-directory print-regress)
for f in sql/*.sql; do     # every file in sql/ must be in REGRESS
	t=$(basename "$f" .sql)
	[[ " $regress_tests " == *" $t "* ]] || ne_die "sql/$t.sql is not listed in the Makefile's REGRESS"
done
if /usr/lib/postgresql/15/lib/pgxs/src/test/regress/pg_regress \
	--inputdir=. --outputdir="$out/regress" --host="$PGHOST" --port="$PGPORT" \
	--user=postgres --dbname=contrib_regression $regress_tests; then
	record "pg_regress" ok "$(echo $regress_tests | wc -w) tests"
else
	cat "$out/regress/regression.diffs" || true
	record "pg_regress" FAIL "see diffs above"
fi

# 2. isolation specs, then their notification lines against core's
ne_say "isolation"
iso_tests=$(cd test/isolation/specs && ls ./*.spec | sed 's|^\./||; s|\.spec$||' | sort)
if /usr/lib/postgresql/15/lib/pgxs/src/test/isolation/pg_isolation_regress \
	--inputdir=test/isolation --outputdir="$out/isolation" --host="$PGHOST" \
	--port="$PGPORT" --user=postgres --dbname=isolation_regression $iso_tests; then
	record "isolation" ok "$(echo $iso_tests | wc -w) specs"
else
	cat "$out/isolation/regression.diffs" || true
	record "isolation" FAIL "see diffs above"
fi
refout=$(test/isolation/check-core-reference.sh 2>&1) || true
echo "$refout"
refline=$(echo "$refout" | tail -1)
if [[ $refline == "core reference:"* ]]; then
	record "isolation vs core" ok "${refline#core reference: }"
else
	record "isolation vs core" FAIL "$refline"
fi

# 3. pgTAP
ne_say "pgTAP"
psql -X -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE tap"
psql -X -q -v ON_ERROR_STOP=1 -d tap -c "CREATE EXTENSION pgtap" -c "CREATE EXTENSION notify_ext"
if taplog=$(pg_prove -d tap test/pgtap/*.sql 2>&1); then
	echo "$taplog"
	record "pgTAP" ok "$(echo "$taplog" | grep -oE 'Tests=[0-9]+' | tail -1)"
else
	echo "$taplog"
	record "pgTAP" FAIL "$(echo "$taplog" | tail -1)"
fi

# 4. real clients
ne_say "clients"
gcc -O2 -Wall -Wextra -o "$work/idle_listener" test/client/idle_listener.c \
	-I"$($PG_CONFIG --includedir)" -L"$($PG_CONFIG --libdir)" -lpq
for t in "$work/idle_listener" test/client/*.py test/client/*.sh; do
	name=client/$(basename "$t")
	case $t in *.py) cmd=("$PYTHON" "$t") ;; *) cmd=("$t") ;; esac
	if log=$("${cmd[@]}" 2>&1); then
		echo "$log" | tail -3
		record "$name" ok "$(echo "$log" | tail -1)"
	else
		echo "$log"
		record "$name" FAIL "$(echo "$log" | tail -1)"
	fi
done

# 5. Go lib/pq's notify_test.go, intercept on and off
ne_say "Go lib/pq"
if log=$(test/golang/run-lib-pq-tests.sh 2>&1); then
	echo "$log"
	record "lib/pq notify_test.go" ok "$(echo "$log" | grep -oE 'intercept=(on|off): [0-9]+ tests, [0-9]+ passed' | paste -sd';')"
else
	echo "$log"
	record "lib/pq notify_test.go" FAIL "see above"
fi

# 6. stress rounds
ne_say "stress"
rounds=${STRESS_ROUNDS:-3}
secs=${STRESS_SECONDS:-20}
stress_ok=1
for i in $(seq 1 "$rounds"); do
	if ! "$PYTHON" test/stress/stress_delivery.py "$secs" 4 $((6 + 3 * i)); then stress_ok=0; fi
done
[ $stress_ok = 1 ] && record "stress" ok "$rounds rounds of ${secs}s" || record "stress" FAIL "see above"

# 7. without shared_preload_libraries: a clear error with a hint
ne_say "not preloaded"
saved=("$PGHOST" "$PGPORT")
ne_start_cluster "$work/noload" 5472
msg=$(psql -X -d postgres -c "CREATE EXTENSION notify_ext" 2>&1 || true)
state=$(psql -X -qAt -d postgres -c "SELECT 1 FROM pg_extension WHERE extname = 'notify_ext'")
ne_stop_cluster "$work/noload"
export PGHOST=${saved[0]} PGPORT=${saved[1]}
echo "$msg"
if [[ $msg == *"notify_ext must be loaded via shared_preload_libraries"* &&
	$msg == *"HINT:  Add notify_ext to shared_preload_libraries in postgresql.conf"* && -z $state ]]; then
	record "not preloaded" ok "CREATE EXTENSION refused with hint"
else
	record "not preloaded" FAIL "unexpected: $msg"
fi

ne_say "summary"
printf '%s\n' "${results[@]}"
if [ $failed = 0 ]; then echo "ALL SUITES PASSED"; else echo "SOME SUITES FAILED"; fi
exit $failed
