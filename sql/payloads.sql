--
-- notify_ext.max_payload_size: core's limit (8000) by default, settable by
-- superusers up to 256MB; every way in checks it with core's error; large
-- payloads arrive intact (a dblink connection listens).
--
SET client_min_messages TO warning;
CREATE EXTENSION IF NOT EXISTS notify_ext;
CREATE EXTENSION IF NOT EXISTS dblink;
RESET client_min_messages;

SELECT name, setting, unit, context, min_val, max_val
  FROM pg_settings WHERE name = 'notify_ext.max_payload_size';

-- the default is core's limit: 7999 bytes pass, 8000 do not
SELECT ext_notify('regress_payload', repeat('x', 7999));
SELECT ext_notify('regress_payload', repeat('x', 8000));
-- out of range
SET notify_ext.max_payload_size = 7999;
SET notify_ext.max_payload_size = '257MB';

-- only superusers may raise it
CREATE ROLE regress_payload_user;
SET ROLE regress_payload_user;
SET notify_ext.max_payload_size = '1MB';
RESET ROLE;
DROP ROLE regress_payload_user;

SELECT dblink_connect('pl',
  format('dbname=%s host=%s port=%s', current_database(),
         split_part(current_setting('unix_socket_directories'), ',', 1),
         current_setting('port')));
SELECT * FROM dblink('pl', $$SELECT ext_listen('regress_payload')$$) AS t(x text);

CREATE FUNCTION received() RETURNS TABLE (channel text, bytes int, md5 text)
LANGUAGE sql AS $$
  SELECT x FROM dblink('pl', 'SELECT 1') AS t(x int);  -- a query: it reads
  SELECT notify_name, octet_length(extra), md5(extra) FROM dblink_get_notify('pl');
$$;

-- 1MB and 8MB payloads, each larger than the drain's 64kB buffer, and a
-- small one after them, in one transaction
SET notify_ext.max_payload_size = '16MB';
SHOW notify_ext.max_payload_size;
BEGIN;
SELECT ext_notify('regress_payload', repeat('a', 1024 * 1024));
SELECT ext_notify('regress_payload', repeat('b', 8 * 1024 * 1024));
SELECT ext_notify('regress_payload', 'small after the big ones');
COMMIT;
SELECT channel, bytes, md5 = md5(CASE bytes WHEN 1048576 THEN repeat('a', 1048576)
                                            WHEN 8388608 THEN repeat('b', 8388608)
                                            ELSE 'small after the big ones' END) AS intact
  FROM received();
-- the limit applies: 16MB is one byte too many
SELECT ext_notify('regress_payload', repeat('c', 16 * 1024 * 1024));

-- drop-in mode: pg_notify() and NOTIFY get the same limit
SET notify_ext.intercept = on;
SELECT pg_notify('regress_payload', repeat('d', 100000));
DO $$ BEGIN EXECUTE format('NOTIFY regress_payload, %L', repeat('e', 200000)); END $$;
SELECT pg_notify('regress_payload', repeat('f', 16 * 1024 * 1024));
SET notify_ext.intercept = off;
SELECT channel, bytes FROM received();

-- ext_notify_trigger() sends the whole row while it fits under the limit
CREATE TABLE regress_payload_rows (id int PRIMARY KEY, doc text);
CREATE TRIGGER regress_payload_rows AFTER INSERT ON regress_payload_rows
  FOR EACH ROW EXECUTE FUNCTION ext_notify_trigger('regress_payload');
INSERT INTO regress_payload_rows VALUES (1, repeat('g', 20000));
SELECT channel, bytes > 20000 AS whole_row FROM received();
RESET notify_ext.max_payload_size;
INSERT INTO regress_payload_rows VALUES (2, repeat('h', 20000));
SELECT channel, bytes < 8000 AS key_only FROM received();

DROP TABLE regress_payload_rows;
DROP FUNCTION received();
SELECT dblink_disconnect('pl');
