/* notify_ext--1.1.sql: version 1.1 = 1.0 (notify_ext--1.0.sql) + monitoring; keep it equal to 1.0 + notify_ext--1.0--1.1.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION notify_ext" to load this file. \quit

-- Fails (and so fails CREATE EXTENSION) unless the library was preloaded.
CREATE FUNCTION notify_ext_check_preloaded()
RETURNS void
AS 'MODULE_PATHNAME', 'notify_ext_check_preloaded'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

SELECT notify_ext_check_preloaded();
DROP FUNCTION notify_ext_check_preloaded();

CREATE FUNCTION ext_notify(channel text, payload text DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'ext_notify'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION ext_notify(text, text) IS
'send a notification on a channel at commit of the current transaction';

CREATE FUNCTION ext_listen(channel text)
RETURNS void
AS 'MODULE_PATHNAME', 'ext_listen'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION ext_listen(text) IS
'start listening on a channel at commit of the current transaction';

CREATE FUNCTION ext_unlisten(channel text)
RETURNS void
AS 'MODULE_PATHNAME', 'ext_unlisten'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION ext_unlisten(text) IS
'stop listening on a channel at commit of the current transaction';

CREATE FUNCTION ext_unlisten_all()
RETURNS void
AS 'MODULE_PATHNAME', 'ext_unlisten_all'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION ext_unlisten_all() IS
'stop listening on all channels at commit of the current transaction';

CREATE FUNCTION ext_listening_channels()
RETURNS SETOF text
AS 'MODULE_PATHNAME', 'ext_listening_channels'
LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED;

COMMENT ON FUNCTION ext_listening_channels() IS
'channels this session listens on (committed LISTENs only)';

CREATE FUNCTION ext_notification_queue_usage()
RETURNS double precision
AS 'MODULE_PATHNAME', 'ext_notification_queue_usage'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

COMMENT ON FUNCTION ext_notification_queue_usage() IS
'fraction (0 to 1) of the notify_ext queue occupied by notifications not yet read by all their listeners';

CREATE FUNCTION ext_listeners(OUT pid integer, OUT database text, OUT channel text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'ext_listeners'
LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED;

COMMENT ON FUNCTION ext_listeners() IS
'the shared listener table: every listening backend, database and channel';

REVOKE ALL ON FUNCTION ext_listeners() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ext_listeners() TO pg_monitor;

CREATE FUNCTION ext_notify_trigger()
RETURNS trigger
AS 'MODULE_PATHNAME', 'ext_notify_trigger'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION ext_notify_trigger() IS
'trigger function: notify a JSON description of each changed row (FOR EACH ROW) or statement (FOR EACH STATEMENT) on the channel given as first argument, else the table name';

CREATE FUNCTION ext_notification_stats(OUT notifications_committed bigint,
                                       OUT batches_queued bigint,
                                       OUT notifications_queued bigint)
RETURNS record
AS 'MODULE_PATHNAME', 'ext_notification_stats'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

COMMENT ON FUNCTION ext_notification_stats() IS
'counters since server start: notifications committed, and batches and notifications written to the queue (those with a listener)';

-- Monitoring (1.1): the queue, each listening session, each channel.
-- Readable by superusers and pg_monitor only (they show every database),
-- like ext_listeners().

CREATE FUNCTION ext_queue_status(OUT capacity_bytes bigint,
                                 OUT used_bytes bigint,
                                 OUT used_fraction double precision,
                                 OUT notifications_queued bigint,
                                 OUT batches_queued bigint,
                                 OUT head_position bigint,
                                 OUT tail_position bigint,
                                 OUT tail_holder_pid integer,
                                 OUT queue_full_count bigint,
                                 OUT queue_full_action text,
                                 OUT last_full_action text,
                                 OUT listeners_skipped bigint,
                                 OUT listeners_terminated bigint,
                                 OUT notifications_skipped bigint,
                                 OUT notifications_committed bigint,
                                 OUT ring_bytes bigint,
                                 OUT disk_limit_bytes bigint,
                                 OUT disk_bytes bigint,
                                 OUT spilled_bytes bigint,
                                 OUT spill_read_errors bigint)
RETURNS record
AS 'MODULE_PATHNAME', 'ext_queue_status'
LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED;

COMMENT ON FUNCTION ext_queue_status() IS
'the notify_ext queue: fill level (of shared memory plus disk), what is in it, who holds its tail, its disk part, and the queue-full counters since server start';

REVOKE ALL ON FUNCTION ext_queue_status() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ext_queue_status() TO pg_monitor;

CREATE FUNCTION ext_listener_status(OUT pid integer,
                                    OUT database text,
                                    OUT sending boolean,
                                    OUT channels integer,
                                    OUT lag_bytes bigint,
                                    OUT lag_notifications bigint,
                                    OUT oldest_unread_at timestamp with time zone,
                                    OUT delivered bigint,
                                    OUT missed bigint,
                                    OUT times_skipped bigint,
                                    OUT listening_since timestamp with time zone)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'ext_listener_status'
LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED;

COMMENT ON FUNCTION ext_listener_status() IS
'one row per listening session: its backlog in the queue and its delivery counters';

REVOKE ALL ON FUNCTION ext_listener_status() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ext_listener_status() TO pg_monitor;

CREATE FUNCTION ext_channel_status(OUT database text,
                                   OUT channel text,
                                   OUT listeners integer,
                                   OUT notifications_sent bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'ext_channel_status'
LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED;

COMMENT ON FUNCTION ext_channel_status() IS
'one row per (database, channel) listened to: its listeners, and the notifications queued on it while it had listeners';

REVOKE ALL ON FUNCTION ext_channel_status() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ext_channel_status() TO pg_monitor;

CREATE VIEW notify_ext_queue AS
  SELECT capacity_bytes, used_bytes, used_fraction,
         notifications_queued, batches_queued,
         head_position, tail_position, tail_holder_pid,
         queue_full_count, queue_full_action, last_full_action,
         listeners_skipped, listeners_terminated, notifications_skipped,
         notifications_committed,
         ring_bytes, disk_limit_bytes, disk_bytes, spilled_bytes,
         spill_read_errors
    FROM ext_queue_status();

COMMENT ON VIEW notify_ext_queue IS
'the notify_ext queue (one row): fill level, notifications and batches in it, the listener holding its tail, queue-full counters since server start';

REVOKE ALL ON notify_ext_queue FROM PUBLIC;
GRANT SELECT ON notify_ext_queue TO pg_monitor;

-- state: "blocked sending" (writing notifications to a client that does
-- not read them: only pg_terminate_backend() frees it), "sending", "in
-- transaction" (running a statement or in a transaction block: it receives
-- nothing until that ends), "idle"
CREATE VIEW notify_ext_listeners AS
  SELECT l.pid, l.database, a.usename, a.application_name,
         CASE WHEN l.sending AND a.wait_event = 'ClientWrite' THEN 'blocked sending'
              WHEN l.sending THEN 'sending'
              WHEN a.state LIKE 'idle in transaction%' OR a.state = 'active' THEN 'in transaction'
              ELSE 'idle'
         END AS state,
         l.channels, l.lag_bytes, l.lag_notifications, l.oldest_unread_at,
         clock_timestamp() - l.oldest_unread_at AS oldest_unread_age,
         l.delivered, l.missed, l.times_skipped, l.listening_since
    FROM ext_listener_status() l
    LEFT JOIN pg_stat_activity a ON a.pid = l.pid;

COMMENT ON VIEW notify_ext_listeners IS
'one row per listening session: who it is, its state, its backlog in the queue (bytes, notifications, age of the oldest), what it received and missed';

REVOKE ALL ON notify_ext_listeners FROM PUBLIC;
GRANT SELECT ON notify_ext_listeners TO pg_monitor;

CREATE VIEW notify_ext_channels AS
  SELECT database, channel, listeners, notifications_sent
    FROM ext_channel_status();

COMMENT ON VIEW notify_ext_channels IS
'one row per (database, channel) listened to: listeners, and notifications queued on it since it has had listeners (the count restarts when its last listener leaves)';

REVOKE ALL ON notify_ext_channels FROM PUBLIC;
GRANT SELECT ON notify_ext_channels TO pg_monitor;

-- pattern subscriptions (LIKE syntax over channel names)
CREATE FUNCTION ext_listen_pattern(pattern text)
RETURNS void
AS 'MODULE_PATHNAME', 'ext_listen_pattern'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION ext_listen_pattern(text) IS
'start listening, at commit, on every channel whose name matches a LIKE pattern (% any string, _ one character, \ escapes)';

CREATE FUNCTION ext_unlisten_pattern(pattern text)
RETURNS void
AS 'MODULE_PATHNAME', 'ext_unlisten_pattern'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION ext_unlisten_pattern(text) IS
'stop listening on a pattern at commit of the current transaction';

CREATE FUNCTION ext_listening_patterns()
RETURNS SETOF text
AS 'MODULE_PATHNAME', 'ext_listening_patterns'
LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED;

COMMENT ON FUNCTION ext_listening_patterns() IS
'patterns this session listens on (committed ones only), in LISTEN order';
