-- The installed surface of notify_ext: functions, views, signatures,
-- volatility, parallel safety, privileges, settings.
BEGIN;
SELECT plan(82);

SELECT has_extension('notify_ext');
SELECT is((SELECT extversion FROM pg_extension WHERE extname = 'notify_ext'), '1.1', 'version 1.1');

SELECT has_function('ext_notify', ARRAY['text', 'text']);
SELECT has_function('ext_listen', ARRAY['text']);
SELECT has_function('ext_unlisten', ARRAY['text']);
SELECT has_function('ext_unlisten_all', ARRAY[]::text[]);
SELECT has_function('ext_listening_channels', ARRAY[]::text[]);
SELECT has_function('ext_notification_queue_usage', ARRAY[]::text[]);
SELECT has_function('ext_notify_trigger', ARRAY[]::text[]);
SELECT has_function('ext_listeners', ARRAY[]::text[]);
SELECT has_function('ext_notification_stats', ARRAY[]::text[]);
SELECT has_function('ext_queue_status', ARRAY[]::text[]);
SELECT has_function('ext_listener_status', ARRAY[]::text[]);
SELECT has_function('ext_channel_status', ARRAY[]::text[]);
SELECT has_function('ext_listen_pattern', ARRAY['text']);
SELECT has_function('ext_unlisten_pattern', ARRAY['text']);
SELECT has_function('ext_listening_patterns', ARRAY[]::text[]);
SELECT function_returns('ext_listening_patterns', ARRAY[]::text[], 'setof text');

-- the monitoring views (1.1)
SELECT has_view('notify_ext_queue');
SELECT has_view('notify_ext_listeners');
SELECT has_view('notify_ext_channels');
SELECT columns_are('notify_ext_queue', ARRAY['capacity_bytes', 'used_bytes', 'used_fraction',
       'notifications_queued', 'batches_queued', 'head_position', 'tail_position',
       'tail_holder_pid', 'queue_full_count', 'queue_full_action', 'last_full_action',
       'listeners_skipped', 'listeners_terminated', 'notifications_skipped',
       'notifications_committed', 'ring_bytes', 'disk_limit_bytes', 'disk_bytes',
       'spilled_bytes', 'spill_read_errors']);
SELECT columns_are('notify_ext_listeners', ARRAY['pid', 'database', 'usename', 'application_name',
       'state', 'channels', 'lag_bytes', 'lag_notifications', 'oldest_unread_at',
       'oldest_unread_age', 'delivered', 'missed', 'times_skipped', 'listening_since']);
SELECT columns_are('notify_ext_channels', ARRAY['database', 'channel', 'listeners', 'notifications_sent']);

SELECT function_returns('ext_notify', ARRAY['text', 'text'], 'void');
SELECT function_returns('ext_listen', ARRAY['text'], 'void');
SELECT function_returns('ext_unlisten', ARRAY['text'], 'void');
SELECT function_returns('ext_unlisten_all', ARRAY[]::text[], 'void');
SELECT function_returns('ext_listening_channels', ARRAY[]::text[], 'setof text');
SELECT function_returns('ext_notification_queue_usage', ARRAY[]::text[], 'double precision');
SELECT function_returns('ext_notify_trigger', ARRAY[]::text[], 'trigger');

SELECT volatility_is('ext_notify', ARRAY['text', 'text'], 'volatile');
SELECT volatility_is('ext_listen', ARRAY['text'], 'volatile');
SELECT volatility_is('ext_unlisten', ARRAY['text'], 'volatile');
SELECT volatility_is('ext_unlisten_all', ARRAY[]::text[], 'volatile');
SELECT volatility_is('ext_listening_channels', ARRAY[]::text[], 'volatile');
SELECT volatility_is('ext_notification_queue_usage', ARRAY[]::text[], 'volatile');

-- the payload defaults to NULL (an empty payload), as in pg_notify's use
SELECT is((SELECT pg_get_function_arguments('ext_notify(text,text)'::regprocedure)),
          'channel text, payload text DEFAULT NULL::text', 'payload defaults to NULL');

-- no function that queues or listens may run in a parallel worker
SELECT is((SELECT count(*)::int FROM pg_proc
            WHERE proname IN ('ext_notify', 'ext_listen', 'ext_unlisten', 'ext_unlisten_all')
              AND proparallel <> 'u'), 0, 'queueing functions are PARALLEL UNSAFE');

-- privileges: the API is open to everybody, the listener table is not
CREATE ROLE tap_plain_user;
SELECT ok(has_function_privilege('tap_plain_user', 'ext_notify(text,text)', 'EXECUTE'), 'PUBLIC may ext_notify');
SELECT ok(has_function_privilege('tap_plain_user', 'ext_listen(text)', 'EXECUTE'), 'PUBLIC may ext_listen');
SELECT ok(has_function_privilege('tap_plain_user', 'ext_unlisten(text)', 'EXECUTE'), 'PUBLIC may ext_unlisten');
SELECT ok(has_function_privilege('tap_plain_user', 'ext_unlisten_all()', 'EXECUTE'), 'PUBLIC may ext_unlisten_all');
SELECT ok(has_function_privilege('tap_plain_user', 'ext_listening_channels()', 'EXECUTE'), 'PUBLIC may list its channels');
SELECT ok(has_function_privilege('tap_plain_user', 'ext_notification_queue_usage()', 'EXECUTE'), 'PUBLIC may read queue usage');
SELECT ok(NOT has_function_privilege('tap_plain_user', 'ext_listeners()', 'EXECUTE'), 'PUBLIC may not read the listener table');
SELECT ok(has_function_privilege('pg_monitor', 'ext_listeners()', 'EXECUTE'), 'pg_monitor may read the listener table');
SELECT ok(NOT has_function_privilege('tap_plain_user', 'ext_queue_status()', 'EXECUTE'), 'PUBLIC may not call ext_queue_status()');
SELECT ok(NOT has_function_privilege('tap_plain_user', 'ext_listener_status()', 'EXECUTE'), 'PUBLIC may not call ext_listener_status()');
SELECT ok(NOT has_function_privilege('tap_plain_user', 'ext_channel_status()', 'EXECUTE'), 'PUBLIC may not call ext_channel_status()');
SELECT ok(has_function_privilege('pg_monitor', 'ext_queue_status()', 'EXECUTE'), 'pg_monitor may call ext_queue_status()');
SELECT ok(has_function_privilege('pg_monitor', 'ext_listener_status()', 'EXECUTE'), 'pg_monitor may call ext_listener_status()');
SELECT ok(has_function_privilege('pg_monitor', 'ext_channel_status()', 'EXECUTE'), 'pg_monitor may call ext_channel_status()');
SELECT ok(NOT has_table_privilege('tap_plain_user', 'notify_ext_queue', 'SELECT'), 'PUBLIC may not read notify_ext_queue');
SELECT ok(NOT has_table_privilege('tap_plain_user', 'notify_ext_listeners', 'SELECT'), 'PUBLIC may not read notify_ext_listeners');
SELECT ok(NOT has_table_privilege('tap_plain_user', 'notify_ext_channels', 'SELECT'), 'PUBLIC may not read notify_ext_channels');
SELECT ok(has_table_privilege('pg_monitor', 'notify_ext_queue', 'SELECT'), 'pg_monitor may read notify_ext_queue');
SELECT ok(has_table_privilege('pg_monitor', 'notify_ext_listeners', 'SELECT'), 'pg_monitor may read notify_ext_listeners');
SELECT ok(has_table_privilege('pg_monitor', 'notify_ext_channels', 'SELECT'), 'pg_monitor may read notify_ext_channels');

-- the grant is to PUBLIC itself (grantee 0 in the ACL), not to some role
SELECT is((SELECT count(*)::int FROM pg_proc p,
                  aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
            WHERE p.oid IN ('ext_notify(text,text)'::regprocedure, 'ext_listen(text)'::regprocedure,
                            'ext_unlisten(text)'::regprocedure, 'ext_unlisten_all()'::regprocedure,
                            'ext_listening_channels()'::regprocedure,
                            'ext_notification_queue_usage()'::regprocedure)
              AND a.grantee = 0 AND a.privilege_type = 'EXECUTE'), 6,
          'EXECUTE on the six API functions is granted to PUBLIC');
SELECT is((SELECT count(*)::int FROM pg_proc p,
                  aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
            WHERE p.oid = 'ext_listeners()'::regprocedure AND a.grantee = 0), 0,
          'ext_listeners() is not granted to PUBLIC');
SELECT is((SELECT count(*)::int FROM pg_proc p,
                  aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
            WHERE p.oid IN ('ext_queue_status()'::regprocedure, 'ext_listener_status()'::regprocedure,
                            'ext_channel_status()'::regprocedure) AND a.grantee = 0), 0,
          'the monitoring functions are not granted to PUBLIC');
SELECT is((SELECT count(*)::int FROM pg_class c,
                  aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a
            WHERE c.oid IN ('notify_ext_queue'::regclass, 'notify_ext_listeners'::regclass,
                            'notify_ext_channels'::regclass) AND a.grantee = 0), 0,
          'the monitoring views are not granted to PUBLIC');
SELECT function_privs_are('public', 'ext_notify', ARRAY['text', 'text'], 'tap_plain_user', ARRAY['EXECUTE']);
SELECT function_privs_are('public', 'ext_listeners', ARRAY[]::name[], 'tap_plain_user', ARRAY[]::text[]);

-- NULL arguments reach the functions (and raise core's error), not STRICT
SELECT isnt_strict('public', 'ext_notify', ARRAY['text', 'text']);
SELECT isnt_strict('public', 'ext_listen', ARRAY['text']);
SELECT isnt_strict('public', 'ext_unlisten', ARRAY['text']);

-- a plain user can use it
SET ROLE tap_plain_user;
SELECT lives_ok($$SELECT ext_notify('tap_chan', 'from a plain user')$$, 'a plain user can notify');
SELECT lives_ok($$SELECT ext_listen('tap_chan')$$, 'a plain user can listen');
RESET ROLE;

-- settings
SELECT is((SELECT context FROM pg_settings WHERE name = 'notify_ext.queue_size'), 'postmaster', 'queue_size is postmaster-level');
SELECT is((SELECT unit FROM pg_settings WHERE name = 'notify_ext.queue_size'), 'kB', 'queue_size is a memory setting');
SELECT is((SELECT boot_val FROM pg_settings WHERE name = 'notify_ext.queue_size'), '16384', 'queue_size defaults to 16MB');
SELECT is((SELECT context FROM pg_settings WHERE name = 'notify_ext.max_channels'), 'postmaster', 'max_channels is postmaster-level');
SELECT is((SELECT boot_val FROM pg_settings WHERE name = 'notify_ext.max_channels'), '4096', 'max_channels defaults to 4096');
SELECT is((SELECT context FROM pg_settings WHERE name = 'notify_ext.max_patterns'), 'postmaster', 'max_patterns is postmaster-level');
SELECT is((SELECT boot_val FROM pg_settings WHERE name = 'notify_ext.max_patterns'), '1024', 'max_patterns defaults to 1024');
SELECT ok(has_function_privilege('tap_plain_user', 'ext_listen_pattern(text)', 'EXECUTE'), 'PUBLIC may ext_listen_pattern');
SELECT is((SELECT context FROM pg_settings WHERE name = 'notify_ext.intercept'), 'superuser', 'intercept: superusers only');
SELECT is((SELECT boot_val FROM pg_settings WHERE name = 'notify_ext.intercept'), 'off', 'intercept is off by default');

SELECT ok(ext_notification_queue_usage() BETWEEN 0 AND 1, 'queue usage is a fraction');
SELECT is((SELECT count(*)::int FROM notify_ext_queue), 1, 'notify_ext_queue has one row');

SELECT * FROM finish();
ROLLBACK;
