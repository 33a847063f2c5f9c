/* notify_ext--1.0.sql */

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
