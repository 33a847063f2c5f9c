--
-- notify_ext: a transaction whose notifications cannot fit in the queue
-- fails at COMMIT with core's error, and leaves the queue usable.
-- (Assumes the default notify_ext.queue_size of 16MB.)
--
SET client_min_messages TO warning;
CREATE EXTENSION IF NOT EXISTS notify_ext;
RESET client_min_messages;

-- somebody must listen, otherwise nothing is queued at all
SELECT ext_listen('regress_full');

BEGIN;
SELECT count(ext_notify('regress_full', lpad(i::text, 7990, 'x')))
  FROM generate_series(1, 2200) AS i;
-- (the detail gives byte counts that depend on max_connections)
\set VERBOSITY terse
COMMIT;
\set VERBOSITY default

-- the failed commit rolled back; the queue is empty and still works
SELECT ext_notification_queue_usage();
SELECT * FROM ext_listening_channels();

-- notifications on channels nobody listens to are never queued, however
-- many there are
SELECT ext_unlisten('regress_full');
SELECT ext_listen('regress_full_other');
BEGIN;
SELECT count(ext_notify('regress_full_nobody', lpad(i::text, 7990, 'x')))
  FROM generate_series(1, 2200) AS i;
COMMIT;
SELECT ext_notification_queue_usage();
SELECT ext_unlisten_all();
