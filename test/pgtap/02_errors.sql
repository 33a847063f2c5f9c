-- Every argument error, with core's message and SQLSTATE.
BEGIN;
SELECT plan(28);

SELECT throws_ok($$SELECT ext_notify(NULL)$$, '22023', 'channel name cannot be empty', 'ext_notify: NULL channel');
SELECT throws_ok($$SELECT ext_notify('')$$, '22023', 'channel name cannot be empty', 'ext_notify: empty channel');
SELECT throws_ok($$SELECT ext_notify(repeat('c', 64))$$, '22023', 'channel name too long', 'ext_notify: 64-byte channel');
SELECT throws_ok($$SELECT ext_notify(repeat('é', 32))$$, '22023', 'channel name too long', 'ext_notify: 64 bytes in 32 characters');
SELECT lives_ok($$SELECT ext_notify(repeat('c', 63))$$, 'ext_notify: 63-byte channel');

SELECT throws_ok($$SELECT ext_listen(NULL)$$, '22023', 'channel name cannot be empty', 'ext_listen: NULL channel');
SELECT throws_ok($$SELECT ext_listen('')$$, '22023', 'channel name cannot be empty', 'ext_listen: empty channel');
SELECT throws_ok($$SELECT ext_listen(repeat('c', 64))$$, '22023', 'channel name too long', 'ext_listen: 64-byte channel');
SELECT lives_ok($$SELECT ext_listen(repeat('c', 63))$$, 'ext_listen: 63-byte channel');

SELECT throws_ok($$SELECT ext_unlisten(NULL)$$, '22023', 'channel name cannot be empty', 'ext_unlisten: NULL channel');
SELECT throws_ok($$SELECT ext_unlisten('')$$, '22023', 'channel name cannot be empty', 'ext_unlisten: empty channel');
SELECT throws_ok($$SELECT ext_unlisten(repeat('c', 64))$$, '22023', 'channel name too long', 'ext_unlisten: 64-byte channel');

SELECT throws_ok($$SELECT ext_notify('c', repeat('p', 8000))$$, '22023', 'payload string too long', 'payload of 8000 bytes');
SELECT throws_ok($$SELECT ext_notify('c', repeat('€', 2667))$$, '22023', 'payload string too long', 'payload of 8001 bytes in 2667 characters');
SELECT lives_ok($$SELECT ext_notify('c', repeat('p', 7999))$$, 'payload of 7999 bytes');
SELECT lives_ok($$SELECT ext_notify('c', NULL)$$, 'NULL payload');

-- the reserved channel of the gap signal: nobody sends on it, anyone may listen
SELECT throws_ok($$SELECT ext_notify('notify_ext.gap', 'x')$$, '42501', 'channel "notify_ext.gap" is reserved for notify_ext''s gap signal', 'ext_notify on notify_ext.gap');
SELECT lives_ok($$SELECT ext_listen('notify_ext.gap')$$, 'ext_listen on notify_ext.gap');
-- notify_ext.queue_full_action
SELECT is((SELECT context FROM pg_settings WHERE name = 'notify_ext.queue_full_action'), 'sighup', 'queue_full_action is sighup-level');
SELECT is((SELECT boot_val FROM pg_settings WHERE name = 'notify_ext.queue_full_action'), 'error', 'queue_full_action defaults to error (core''s behaviour)');
SELECT is((SELECT enumvals FROM pg_settings WHERE name = 'notify_ext.queue_full_action'), '{error,skip,terminate}'::text[], 'queue_full_action: error, skip, terminate');

-- drop-in mode: the same errors through core's entry points
SET LOCAL notify_ext.intercept = on;
SELECT throws_ok($$SELECT pg_notify('', 'x')$$, '22023', 'channel name cannot be empty', 'pg_notify under intercept: empty channel');
SELECT throws_ok($$SELECT pg_notify('c', repeat('p', 8000))$$, '22023', 'payload string too long', 'pg_notify under intercept: payload too long');
SELECT lives_ok($$NOTIFY tap_chan, 'ok'$$, 'NOTIFY under intercept');
SELECT throws_ok($$NOTIFY "notify_ext.gap"$$, '42501', NULL, 'NOTIFY on notify_ext.gap under intercept');
RESET notify_ext.intercept;

-- the trigger function outside a trigger
SELECT throws_ok($$SELECT ext_notify_trigger()$$, '39P01', 'ext_notify_trigger: not called by trigger manager', 'ext_notify_trigger outside a trigger');

-- the transaction is still fine after all these errors in subtransactions
SELECT lives_ok($$SELECT ext_notify('c', 'still fine')$$, 'transaction usable after errors');
SELECT is((SELECT count(*)::int FROM ext_listening_channels()), 0, 'no listen has taken effect inside the transaction');

SELECT * FROM finish();
ROLLBACK;
