--
-- notify_ext: drop-in mode (notify_ext.intercept)
--
-- Each committed notification that notify_ext carries bumps
-- ext_notification_stats().notifications_committed; counted() returns how
-- many it carried since the previous call, so every intercepted form can be
-- checked without printing PIDs.  (Delivery itself: isolation spec dropin.)
--
SET client_min_messages TO warning;
CREATE EXTENSION IF NOT EXISTS notify_ext;
RESET client_min_messages;

CREATE TABLE regress_counted (n bigint);
INSERT INTO regress_counted SELECT notifications_committed FROM ext_notification_stats();
CREATE FUNCTION counted() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE now bigint; prev bigint;
BEGIN
  SELECT notifications_committed INTO now FROM ext_notification_stats();
  SELECT n INTO prev FROM regress_counted;
  UPDATE regress_counted SET n = now;
  RETURN now - prev;
END $$;

SHOW notify_ext.intercept;
-- superuser-only setting
CREATE ROLE regress_intercept_user;
SET ROLE regress_intercept_user;
SET notify_ext.intercept = on;
RESET ROLE;
DROP ROLE regress_intercept_user;

-- off: core serves everything, notify_ext sees nothing
NOTIFY regress_i;
SELECT pg_notify('regress_i', 'core');
SELECT counted();

SET notify_ext.intercept = on;

-- statements
NOTIFY regress_i;
NOTIFY regress_i, 'payload';
BEGIN;
NOTIFY regress_i, 'dup';
NOTIFY regress_i, 'dup';
COMMIT;
BEGIN;
NOTIFY regress_i, 'rolled back';
ROLLBACK;
BEGIN READ ONLY;
NOTIFY regress_i, 'read-only transaction';
COMMIT;
SELECT counted();

-- functions, wherever they appear
SELECT pg_notify('regress_i', 'function');
SELECT pg_notify('regress_i', NULL);
PREPARE regress_p(text) AS SELECT pg_notify('regress_i', $1);
EXECUTE regress_p('prepared 1');
EXECUTE regress_p('prepared 2');
DO $$ BEGIN PERFORM pg_notify('regress_i', 'plpgsql perform'); END $$;
CREATE FUNCTION regress_plpgsql(p text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE x text;
BEGIN
  PERFORM pg_notify('regress_i', p);
  x := pg_notify('regress_i', p || ' (expression)')::text;
  EXECUTE 'SELECT pg_notify($1, $2)' USING 'regress_i', p || ' (dynamic)';
END $$;
SELECT regress_plpgsql('plpgsql function');
CREATE FUNCTION regress_sqlf(p text) RETURNS void LANGUAGE sql
  AS $$ SELECT pg_notify('regress_i', p) $$;          -- inlinable
SELECT regress_sqlf('sql function');
CREATE FUNCTION regress_sqlatomic(p text) RETURNS void LANGUAGE sql
  BEGIN ATOMIC SELECT pg_notify('regress_i', p); END;
SELECT regress_sqlatomic('sql standard body');
CREATE VIEW regress_v AS SELECT pg_notify('regress_i', 'view')::text AS n;
SELECT * FROM regress_v;
SELECT counted();

-- triggers and rules
CREATE TABLE regress_t (id int);
CREATE FUNCTION regress_trig() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('regress_i', TG_OP || ' ' || TG_LEVEL);
  RETURN NULL;
END $$;
CREATE TRIGGER regress_row AFTER INSERT ON regress_t
  FOR EACH ROW EXECUTE FUNCTION regress_trig();
CREATE TRIGGER regress_stmt AFTER INSERT ON regress_t
  FOR EACH STATEMENT EXECUTE FUNCTION regress_trig();
INSERT INTO regress_t VALUES (1), (2);     -- "INSERT ROW" once (dedupe) + "INSERT STATEMENT"
SELECT counted();
CREATE TABLE regress_r (id int);
CREATE RULE regress_rule_notify AS ON INSERT TO regress_r DO ALSO NOTIFY regress_i, 'rule';
CREATE RULE regress_rule_fn AS ON UPDATE TO regress_r
  DO ALSO SELECT pg_notify('regress_i', 'rule function ' || new.id);
INSERT INTO regress_r VALUES (1);
UPDATE regress_r SET id = 2;
SELECT counted();

-- listening
LISTEN regress_a;
LISTEN "Regress_B";
LISTEN regress_a;
SELECT * FROM pg_listening_channels();
SELECT * FROM ext_listening_channels();
SET notify_ext.intercept = off;
SELECT * FROM pg_listening_channels();     -- core's own list is empty
UNLISTEN *;                                -- core's UNLISTEN * leaves ours
SELECT * FROM ext_listening_channels();
SET notify_ext.intercept = on;
UNLISTEN regress_a;
SELECT * FROM pg_listening_channels();
BEGIN;
UNLISTEN *;
SELECT * FROM pg_listening_channels();     -- until commit
COMMIT;
SELECT * FROM pg_listening_channels();
SELECT pg_notification_queue_usage();

-- errors, as core words them
SELECT pg_notify('', 'x');
SELECT pg_notify(NULL, 'x');
\set VERBOSITY terse
DO $$ BEGIN EXECUTE format('NOTIFY regress_i, %L', repeat('x', 8000)); END $$;
\set VERBOSITY default
SELECT pg_notify('regress_i', repeat('x', 8000));
BEGIN;
LISTEN regress_prepare;
PREPARE TRANSACTION 'regress_intercept';
BEGIN;
NOTIFY regress_prepare;
PREPARE TRANSACTION 'regress_intercept';
SELECT counted();

-- a plan made in one mode is not reused in the other
EXECUTE regress_p('prepared, intercept on');
SET notify_ext.intercept = off;
EXECUTE regress_p('prepared, intercept off');
SELECT counted();

DROP TABLE regress_t, regress_r, regress_counted;
DROP VIEW regress_v;
DROP FUNCTION regress_trig(), regress_plpgsql(text), regress_sqlf(text),
  regress_sqlatomic(text), counted();
DEALLOCATE regress_p;
