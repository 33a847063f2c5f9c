--
-- notify_ext: a transaction whose notifications do not fit in the
-- shared-memory queue (notify_ext.queue_size, 16MB by default) goes to
-- disk and commits, as in core; with notify_ext.queue_disk_limit = 0
-- (shared memory only) the same transaction fails at COMMIT with core's
-- error, and leaves the queue usable.
--
SET client_min_messages TO warning;
CREATE EXTENSION IF NOT EXISTS notify_ext;
CREATE EXTENSION IF NOT EXISTS dblink;
RESET client_min_messages;

SHOW notify_ext.queue_disk_limit;

-- somebody must listen, otherwise nothing is queued at all: a second
-- session, whose notifications dblink_get_notify() returns
SELECT dblink_connect('fl',
  format('dbname=%s host=%s port=%s application_name=regress_full_listener',
         current_database(),
         split_part(current_setting('unix_socket_directories'), ',', 1),
         current_setting('port')));
SELECT * FROM dblink('fl', $$SELECT ext_listen('regress_full')$$) AS t(x text);

-- 2200 notifications of 8000 bytes: 17.6MB, more than the ring
BEGIN;
SELECT count(ext_notify('regress_full', lpad(i::text, 7990, 'x')))
  FROM generate_series(1, 2200) AS i;
COMMIT;

-- they are on disk until the listener reads them
SELECT disk_bytes > ring_bytes AS on_disk, used_bytes = disk_bytes AS all_on_disk,
       notifications_queued, batches_queued
  FROM notify_ext_queue;
SELECT count(*) > 0 AS spill_files FROM pg_ls_dir('pg_notify_ext');

-- the listener gets all of them, in order, with its next query
SELECT * FROM dblink('fl', 'SELECT 1') AS t(x int);
SELECT count(*) AS received,
       bool_and(ltrim(extra, 'x')::int = ord) AS in_order,
       bool_and(length(extra) = 7990) AS intact
  FROM dblink_get_notify('fl') WITH ORDINALITY AS n(channel, pid, extra, ord);

-- read: the queue is empty again, its files removed (the one the tail is
-- in stays until the queue moves past it)
SELECT used_bytes, disk_bytes, notifications_queued FROM notify_ext_queue;
SELECT count(*) <= 1 AS spill_files_removed FROM pg_ls_dir('pg_notify_ext');

-- shared memory only: the same transaction fails with core's error
ALTER SYSTEM SET notify_ext.queue_disk_limit = 0;
SELECT pg_reload_conf();
SELECT pg_sleep(0.5);
SHOW notify_ext.queue_disk_limit;
BEGIN;
SELECT count(ext_notify('regress_full', lpad(i::text, 7990, 'x')))
  FROM generate_series(1, 2200) AS i;
-- (the detail gives byte counts that depend on max_connections)
\set VERBOSITY terse
COMMIT;
\set VERBOSITY default
ALTER SYSTEM RESET notify_ext.queue_disk_limit;
SELECT pg_reload_conf();
SELECT pg_sleep(0.5);
SHOW notify_ext.queue_disk_limit;

-- the failed commit rolled back; the queue is empty and still works
SELECT ext_notification_queue_usage();
SELECT ext_notify('regress_full', 'after');
SELECT * FROM dblink('fl', 'SELECT 1') AS t(x int);
SELECT channel, extra FROM dblink_get_notify('fl') AS n(channel, pid, extra);

-- notifications on channels nobody listens to are never queued, however
-- many there are
SELECT spilled_bytes AS spilled_before FROM notify_ext_queue \gset
BEGIN;
SELECT count(ext_notify('regress_full_nobody', lpad(i::text, 7990, 'x')))
  FROM generate_series(1, 2200) AS i;
COMMIT;
SELECT ext_notification_queue_usage();
SELECT spilled_bytes = :spilled_before AS nothing_spilled FROM notify_ext_queue;
SELECT dblink_disconnect('fl');
