--
-- Monitoring (version 1.1): the views notify_ext_queue, notify_ext_listeners
-- and notify_ext_channels, and their functions.  A second session (dblink)
-- listens and then stays in a transaction, so that what is queued for it
-- stays unread; this session never listens.
--
SET client_min_messages TO warning;
CREATE EXTENSION IF NOT EXISTS notify_ext;
CREATE EXTENSION IF NOT EXISTS dblink;
RESET client_min_messages;

SELECT extversion FROM pg_extension WHERE extname = 'notify_ext';

-- the columns of the views, and their types
SELECT c.relname, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod) AS type
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
 WHERE c.relname IN ('notify_ext_queue', 'notify_ext_listeners', 'notify_ext_channels')
   AND c.relkind = 'v' AND a.attnum > 0
 ORDER BY c.relname, a.attnum;

-- listeners of earlier tests may still be leaving: wait until none is left
DO $$
BEGIN
  FOR i IN 1..300 LOOP
    EXIT WHEN NOT EXISTS (SELECT FROM ext_listener_status());
    PERFORM pg_sleep(0.1);
  END LOOP;
END
$$;
SELECT count(*) AS listeners FROM notify_ext_listeners;

-- the queue is empty: nobody has anything unread
SELECT capacity_bytes = pg_size_bytes(current_setting('notify_ext.queue_size'))
         + pg_size_bytes(current_setting('notify_ext.queue_disk_limit')) AS capacity_ok,
       used_bytes, used_fraction, notifications_queued, batches_queued,
       head_position = tail_position AS empty, tail_holder_pid,
       queue_full_action = current_setting('notify_ext.queue_full_action') AS action_ok,
       coalesce(last_full_action IN ('error', 'skip', 'terminate'), true) AS last_action_ok,
       queue_full_count >= 0 AND listeners_skipped >= listeners_terminated
         AND listeners_terminated >= 0 AND notifications_skipped >= 0 AS counters_ok
  FROM notify_ext_queue;
SELECT notifications_committed AS committed_before FROM notify_ext_queue \gset

-- a session that listens on two channels
SELECT dblink_connect('mon',
  format('dbname=%s host=%s port=%s application_name=regress_mon_listener',
         current_database(),
         split_part(current_setting('unix_socket_directories'), ',', 1),
         current_setting('port')));
SELECT pid AS listener_pid FROM dblink('mon', 'SELECT pg_backend_pid()') AS t(pid int) \gset
SELECT * FROM dblink('mon', $$SELECT ext_listen('mon_a'), ext_listen('mon_b')$$)
  AS t(a text, b text);

SELECT pid = :listener_pid AS listener, database = current_database() AS this_db,
       usename = current_user AS usename_ok, application_name, state, channels,
       lag_bytes, lag_notifications, oldest_unread_at, oldest_unread_age,
       delivered, missed, times_skipped,
       listening_since BETWEEN now() - interval '5 minutes' AND clock_timestamp() AS since_ok
  FROM notify_ext_listeners;
SELECT database = current_database() AS this_db, channel, listeners, notifications_sent
  FROM notify_ext_channels ORDER BY channel;

-- it opens a transaction and stays in it: it receives nothing meanwhile
SELECT dblink_exec('mon', 'BEGIN');

-- two transactions notify it: 2 of the 3 notifications of the first are
-- for it (nobody listens on mon_other), and the one of the second
BEGIN;
SELECT ext_notify('mon_a', 'one'), ext_notify('mon_other', 'nobody'), ext_notify('mon_b', 'two');
COMMIT;
SELECT ext_notify('mon_a', 'three');
-- a notification nobody listens to is not queued at all
SELECT ext_notify('mon_nobody', 'four');

-- the queue holds both batches (4 notifications), held by the listener
SELECT used_bytes > 0 AS used, used_bytes = head_position - tail_position AS used_ok,
       used_fraction = used_bytes::float8 / capacity_bytes AS fraction_ok,
       notifications_queued, batches_queued,
       tail_holder_pid = :listener_pid AS held_by_listener,
       notifications_committed - :committed_before AS committed
  FROM notify_ext_queue;

-- its backlog: all of the queue, 3 notifications, none delivered yet
SELECT l.state, l.channels, l.lag_bytes > 0 AS lag, l.lag_bytes = q.used_bytes AS lag_is_queue,
       l.lag_notifications,
       l.oldest_unread_at BETWEEN l.listening_since AND clock_timestamp() AS oldest_ok,
       l.oldest_unread_age >= interval '0' AS age_ok, l.delivered
  FROM notify_ext_listeners l, notify_ext_queue q
 WHERE l.pid = :listener_pid;

-- the channels count what was queued on them while listened to
SELECT channel, listeners, notifications_sent
  FROM notify_ext_channels ORDER BY channel;

-- the listener ends its transaction: it receives the three, and the queue
-- is empty again
SELECT dblink_exec('mon', 'COMMIT');
SELECT notify_name, extra FROM dblink_get_notify('mon') ORDER BY extra;
SELECT state, lag_bytes, lag_notifications, oldest_unread_at, oldest_unread_age,
       delivered, missed, times_skipped
  FROM notify_ext_listeners WHERE pid = :listener_pid;
SELECT used_bytes, notifications_queued, batches_queued, tail_holder_pid
  FROM notify_ext_queue;

-- privileges: superusers and pg_monitor only, views and functions alike
CREATE ROLE regress_mon_plain;
CREATE ROLE regress_mon_monitor IN ROLE pg_monitor;
SELECT r.rolname, o.obj,
       CASE WHEN o.obj LIKE '%()' THEN has_function_privilege(r.rolname, o.obj, 'EXECUTE')
            ELSE has_table_privilege(r.rolname, o.obj, 'SELECT') END AS allowed
  FROM (VALUES ('regress_mon_plain'), ('regress_mon_monitor')) AS r(rolname),
       (VALUES ('notify_ext_queue'), ('notify_ext_listeners'), ('notify_ext_channels'),
               ('ext_queue_status()'), ('ext_listener_status()'), ('ext_channel_status()')) AS o(obj)
 ORDER BY 1, 2;

SET ROLE regress_mon_plain;
SELECT * FROM notify_ext_queue;
SELECT * FROM notify_ext_listeners;
SELECT * FROM notify_ext_channels;
SELECT * FROM ext_queue_status();
SELECT * FROM ext_listener_status();
SELECT * FROM ext_channel_status();
RESET ROLE;

-- pg_monitor sees the listener of the other session, with its
-- pg_stat_activity columns
SET ROLE regress_mon_monitor;
SELECT count(*) AS queue_rows FROM notify_ext_queue;
SELECT pid = :listener_pid AS listener, usename IS NOT NULL AS usename_shown,
       application_name, state, channels, delivered
  FROM notify_ext_listeners;
SELECT channel, listeners, notifications_sent FROM notify_ext_channels ORDER BY channel;
SELECT count(*) AS queue_rows FROM ext_queue_status();
RESET ROLE;

DROP ROLE regress_mon_plain;
DROP ROLE regress_mon_monitor;

-- it leaves one channel, then the other: the channel rows go
SELECT * FROM dblink('mon', $$SELECT ext_unlisten('mon_b')$$) AS t(a text);
SELECT channels FROM notify_ext_listeners WHERE pid = :listener_pid;
SELECT channel, listeners, notifications_sent FROM notify_ext_channels ORDER BY channel;
SELECT * FROM dblink('mon', $$SELECT ext_unlisten_all()$$) AS t(a text);
SELECT count(*) AS listeners FROM notify_ext_listeners;
SELECT count(*) AS channels FROM notify_ext_channels;
SELECT dblink_disconnect('mon');

