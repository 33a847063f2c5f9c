#!/usr/bin/env bash
# Go lib/pq as a drop-in client of the gap signal (test/golang/gap/main.go):
# a plain LISTEN session parked in a transaction is skipped under
# notify_ext.queue_full_action = skip; lib/pq's notice handler must get the
# 01N01 WARNING and its notification handler the notify_ext.gap JSON, in
# place.  Runs in its own database against PGHOST/PGPORT/PGUSER.  TAP lines.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
command -v go >/dev/null || { echo "go missing: apt-get install golang-go" >&2; exit 2; }
psql_q() { psql -X -v ON_ERROR_STOP=1 -qAt "$@"; }
psql_q -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS pqgap WITH (FORCE)" -c "CREATE DATABASE pqgap"
psql_q -d pqgap -c "CREATE EXTENSION notify_ext"
export GOPATH=/usr/share/gocode GO111MODULE=off PGDATABASE=pqgap PGSSLMODE=disable
export GOCACHE=${GOCACHE:-${TMPDIR:-/tmp}/notify_ext-gocache}
status=0
(cd "$here/gap" && go run main.go) || status=$?
psql_q -d postgres -c "DROP DATABASE pqgap WITH (FORCE)"
exit $status
