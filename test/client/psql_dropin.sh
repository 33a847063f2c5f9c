#!/usr/bin/env bash
# psql with plain LISTEN / NOTIFY / pg_notify() and an unmodified PL/pgSQL
# trigger recipe: the output with notify_ext.intercept = on must be the same
# as core's (intercept off), PIDs aside, and must contain the notifications.
# Uses the running cluster (PGHOST/PGPORT/PGUSER).
set -euo pipefail
db=notify_ext_psql
psql -X -qAt -v ON_ERROR_STOP=1 -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
psql -X -qAt -v ON_ERROR_STOP=1 -d $db -c "CREATE EXTENSION notify_ext"

script=$(mktemp)
cat >"$script" <<'SQL'
LISTEN virtual;
NOTIFY virtual;
NOTIFY virtual, 'This is the payload';
SELECT pg_notify('virtual', 'from pg_notify');
BEGIN;
NOTIFY virtual, 'in a transaction';
NOTIFY virtual, 'in a transaction';
NOTIFY virtual, 'second';
COMMIT;
UNLISTEN virtual;
NOTIFY virtual, 'not received';
SELECT pg_listening_channels();

-- the common PL/pgSQL recipe, unmodified
CREATE TABLE users (id int PRIMARY KEY, name text);
CREATE FUNCTION users_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('users', json_build_object(
      'table', TG_TABLE_NAME, 'action', TG_OP,
      'data', row_to_json(CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END))::text);
  RETURN NULL;
END $$;
CREATE TRIGGER users_notify AFTER INSERT OR UPDATE OR DELETE ON users
  FOR EACH ROW EXECUTE FUNCTION users_notify();
LISTEN users;
INSERT INTO users VALUES (1, 'ann');
UPDATE users SET name = 'bob' WHERE id = 1;
DELETE FROM users;
UNLISTEN *;
DROP TABLE users;
DROP FUNCTION users_notify();
SQL

run() {
	psql -X -d $db -c "SET notify_ext.intercept = $1" -f "$script" 2>&1 |
		sed -E 's/PID [0-9]+/PID N/'
}
counter() { psql -X -qAt -d $db -c "SELECT notifications_committed FROM ext_notification_stats()"; }

c0=$(counter); core=$(run off); c1=$(counter); ext=$(run on); c2=$(counter)
psql -X -qAt -d postgres -c "DROP DATABASE $db WITH (FORCE)"
rm -f "$script"

status=0
n=$(printf '%s\n' "$ext" | grep -c '^Asynchronous notification' || true)
if [ "$core" != "$ext" ]; then
	echo "FAIL: psql output differs between core and notify_ext:"
	diff <(printf '%s\n' "$core") <(printf '%s\n' "$ext") || true
	status=1
fi
[ "$n" -eq 8 ] || { echo "FAIL: expected 8 notifications, got $n"; printf '%s\n' "$ext"; status=1; }
[ "$c1" -eq "$c0" ] || { echo "FAIL: intercept off went through notify_ext ($c0 -> $c1)"; status=1; }
[ "$c2" -gt "$c1" ] || { echo "FAIL: intercept on did not go through notify_ext ($c1 -> $c2)"; status=1; }
[ $status -eq 0 ] && echo "psql drop-in: $n notification lines identical to core's; notify_ext counted $((c2 - c1)) notifications"
exit $status
