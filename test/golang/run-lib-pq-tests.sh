#!/usr/bin/env bash
# Runs Go lib/pq's own LISTEN/NOTIFY tests (notify_test.go from Debian's
# golang-github-lib-pq-dev, unmodified, GOPATH mode) against the running
# cluster (PGHOST/PGPORT/PGUSER), twice:
#   1. with notify_ext.intercept = on in database pqgotest: must pass, and
#      notify_ext's committed-notification counter must grow (so the traffic
#      went through notify_ext, not core);
#   2. with intercept off: must pass too (the harness is sound on core), and
#      the counter must not move.
set -euo pipefail

pkgdir=/usr/share/gocode/src/github.com/lib/pq
[ -f "$pkgdir/notify_test.go" ] || { echo "lib/pq sources missing: apt-get install golang-github-lib-pq-dev" >&2; exit 2; }
command -v go >/dev/null || { echo "go missing: apt-get install golang-go" >&2; exit 2; }

# exactly the tests of notify_test.go
tests=$(grep -oE '^func (Test[A-Za-z0-9_]+)' "$pkgdir/notify_test.go" | awk '{print $2}' | paste -sd'|')
ntests=$(grep -cE '^func Test' "$pkgdir/notify_test.go")
run="^(${tests})\$"

psql_q() { psql -X -v ON_ERROR_STOP=1 -qAt "$@"; }
psql_q -d postgres -c "DROP DATABASE IF EXISTS pqgotest WITH (FORCE)" -c "CREATE DATABASE pqgotest"
psql_q -d pqgotest -c "CREATE EXTENSION notify_ext"
counter() { psql_q -d pqgotest -c "SELECT notifications_committed FROM ext_notification_stats()"; }

export GOPATH=/usr/share/gocode GO111MODULE=off PGDATABASE=pqgotest PGSSLMODE=disable
export GOCACHE=${GOCACHE:-${TMPDIR:-/tmp}/notify_ext-gocache}
status=0
for mode in on off; do
	if [ "$mode" = on ]; then
		psql_q -d postgres -c "ALTER DATABASE pqgotest SET notify_ext.intercept = on"
	else
		psql_q -d postgres -c "ALTER DATABASE pqgotest RESET notify_ext.intercept"
	fi
	before=$(counter)
	log=$(mktemp)
	if go test github.com/lib/pq -count=1 -v -run "$run" >"$log" 2>&1; then ok=1; else ok=0; fi
	after=$(counter)
	passed=$(grep -c -- '^--- PASS' "$log" || true)
	failed=$(grep -c -- '^--- FAIL' "$log" || true)
	skipped=$(grep -c -- '^--- SKIP' "$log" || true)
	echo "lib/pq notify_test.go, intercept=$mode: $ntests tests, $passed passed, $failed failed, $skipped skipped; notify_ext notifications committed: $before -> $after"
	if [ "$ok" != 1 ] || [ "$failed" != 0 ] || [ "$passed" != "$ntests" ]; then
		cat "$log"; status=1
	fi
	if [ "$mode" = on ] && [ "$after" -le "$before" ]; then
		echo "FAIL: with intercept on, no notification went through notify_ext"; status=1
	fi
	if [ "$mode" = off ] && [ "$after" -ne "$before" ]; then
		echo "FAIL: with intercept off, notifications went through notify_ext"; status=1
	fi
	rm -f "$log"
done
psql_q -d postgres -c "DROP DATABASE pqgotest WITH (FORCE)"
exit $status
