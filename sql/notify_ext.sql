--
-- notify_ext: SQL interface and errors
--
-- (Notifications received by this session would print the sender's PID,
-- which varies; delivery itself is covered by the isolation specs and the
-- client tests.  Here the session never listens on a channel it notifies.)
--
CREATE EXTENSION notify_ext;

-- the installed surface
SELECT p.proname, pg_get_function_identity_arguments(p.oid) AS args,
       pg_get_function_result(p.oid) AS result, p.provolatile, p.proparallel,
       p.proisstrict
  FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.deptype = 'e'
  JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'notify_ext'
 ORDER BY 1;

SELECT name, setting, unit, context FROM pg_settings
 WHERE name LIKE 'notify_ext.%' ORDER BY 1;

-- valid calls
SELECT ext_notify('regress_chan');
SELECT ext_notify('regress_chan', NULL);
SELECT ext_notify('regress_chan', '');
SELECT ext_notify('regress_chan', 'payload');
SELECT ext_notify(repeat('c', 63), repeat('p', 7999));
SELECT ext_notify('ñandú', 'año');
SELECT ext_notification_queue_usage();

-- channel errors, for each entry point (core's messages and SQLSTATE 22023)
SELECT ext_notify(NULL);
SELECT ext_notify(NULL, 'payload');
SELECT ext_notify('');
SELECT ext_notify(repeat('c', 64));
SELECT ext_notify(repeat('ñ', 32));
SELECT ext_listen(NULL);
SELECT ext_listen('');
SELECT ext_listen(repeat('c', 64));
SELECT ext_unlisten(NULL);
SELECT ext_unlisten('');
SELECT ext_unlisten(repeat('c', 64));

-- payload errors
SELECT ext_notify('regress_chan', repeat('p', 8000));
SELECT ext_notify('regress_chan', repeat('é', 4000));

-- SQLSTATEs
DO $$
DECLARE
  calls text[] := ARRAY[
    'SELECT ext_notify(NULL)', 'SELECT ext_notify('''')',
    'SELECT ext_notify(repeat(''c'', 64))',
    'SELECT ext_notify(''c'', repeat(''p'', 8000))',
    'SELECT ext_listen(NULL)', 'SELECT ext_unlisten('''')'];
  c text;
BEGIN
  FOREACH c IN ARRAY calls LOOP
    BEGIN
      EXECUTE c;
      RAISE NOTICE '% succeeded', c;
    EXCEPTION WHEN OTHERS THEN
      RAISE NOTICE '%: % (%)', c, SQLERRM, SQLSTATE;
    END;
  END LOOP;
END $$;

-- LISTEN / UNLISTEN bookkeeping; all of it takes effect at commit
SELECT * FROM ext_listening_channels();
BEGIN;
SELECT ext_listen('regress_a');
SELECT * FROM ext_listening_channels();   -- not yet
COMMIT;
SELECT * FROM ext_listening_channels();
SELECT ext_listen('regress_b');
SELECT ext_listen('regress_a');            -- already listening: no-op
SELECT * FROM ext_listening_channels();

BEGIN;
SELECT ext_listen('regress_rolled_back');
ROLLBACK;
SELECT * FROM ext_listening_channels();

BEGIN;
SELECT ext_unlisten('regress_a');
SELECT * FROM ext_listening_channels();   -- still there until commit
ROLLBACK;
SELECT * FROM ext_listening_channels();

BEGIN;
SAVEPOINT s1;
SELECT ext_listen('regress_sp_dropped');
ROLLBACK TO s1;
SAVEPOINT s2;
SELECT ext_listen('regress_sp_kept');
RELEASE s2;
COMMIT;
SELECT * FROM ext_listening_channels();

-- the last action on a channel wins
BEGIN;
SELECT ext_listen('regress_c');
SELECT ext_unlisten('regress_c');
SELECT ext_unlisten('regress_b');
SELECT ext_listen('regress_b');
COMMIT;
SELECT * FROM ext_listening_channels();

SELECT ext_unlisten('regress_never_listened');
SELECT ext_unlisten('regress_a');
SELECT * FROM ext_listening_channels();

BEGIN;
SELECT ext_unlisten_all();
SELECT ext_listen('regress_after_all');
COMMIT;
SELECT * FROM ext_listening_channels();

-- the shared listener table shows this session's committed listens
SELECT pid = pg_backend_pid() AS me, database = current_database() AS here,
       channel
  FROM ext_listeners() ORDER BY channel;

SELECT ext_unlisten_all();
SELECT * FROM ext_listening_channels();
SELECT count(*) FROM ext_listeners();

-- DISCARD ALL ends every listen
SELECT ext_listen('regress_discard');
SELECT * FROM ext_listening_channels();
DISCARD ALL;
SELECT * FROM ext_listening_channels();
SELECT count(*) FROM ext_listeners();
BEGIN;
DISCARD ALL;    -- refused by core inside a block: nothing changes
ROLLBACK;

-- PREPARE TRANSACTION after notify / listen / unlisten is refused
BEGIN;
SELECT ext_notify('regress_chan', 'prepared');
PREPARE TRANSACTION 'regress_notify';
BEGIN;
SELECT ext_listen('regress_chan');
PREPARE TRANSACTION 'regress_listen';
BEGIN;
SELECT ext_unlisten_all();
PREPARE TRANSACTION 'regress_unlisten';
SELECT * FROM ext_listening_channels();
SELECT count(*) FROM pg_prepared_xacts;

-- a failed notify does not poison the transaction's other notifications
BEGIN;
SELECT ext_notify('regress_chan', 'kept');
SAVEPOINT s;
SELECT ext_notify('', 'bad');
ROLLBACK TO s;
SELECT ext_notify('regress_chan', 'kept too');
COMMIT;

SELECT ext_notification_queue_usage();
