#!/usr/bin/env bash
# Go lib/pq receives large payloads intact (test/golang/large_payloads/
# main.go): 1MB and 64MB payloads, autocommit and in one transaction with
# small ones, to a pq.Listener (UTF8, plain LISTEN in drop-in mode) and a
# pq.ListenerConn with client_encoding LATIN1; lengths and md5s compared
# with what the server computed.  Runs in its own database against
# PGHOST/PGPORT/PGUSER (a superuser: it raises notify_ext.max_payload_size
# and turns drop-in mode on for that database).  TAP lines.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
command -v go >/dev/null || { echo "go missing: apt-get install golang-go" >&2; exit 2; }
[ -d /usr/share/gocode/src/github.com/lib/pq ] || { echo "lib/pq sources missing: apt-get install golang-github-lib-pq-dev" >&2; exit 2; }
psql_q() { psql -X -v ON_ERROR_STOP=1 -qAt "$@"; }
psql_q -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS pqlarge WITH (FORCE)" \
	-c "CREATE DATABASE pqlarge TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'"
psql_q -d pqlarge -c "CREATE EXTENSION notify_ext"
psql_q -d postgres -c "ALTER DATABASE pqlarge SET notify_ext.intercept = on"
export GOPATH=/usr/share/gocode GO111MODULE=off PGDATABASE=pqlarge PGSSLMODE=disable
export GOCACHE=${GOCACHE:-${TMPDIR:-/tmp}/notify_ext-gocache}
status=0
(cd "$here/large_payloads" && go run main.go) || status=$?
psql_q -d postgres -c "DROP DATABASE pqlarge WITH (FORCE)"
exit $status
