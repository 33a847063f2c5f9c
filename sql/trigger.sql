--
-- ext_notify_trigger(): row and statement level, transition tables, the
-- oversize fallback.  A dblink connection listens; dblink_get_notify()
-- shows what it received (the timestamp, which varies, is checked to be a
-- recent timestamptz and then removed).
--
SET client_min_messages TO warning;
CREATE EXTENSION IF NOT EXISTS notify_ext;
CREATE EXTENSION IF NOT EXISTS dblink;
RESET client_min_messages;

SELECT dblink_connect('listener',
  format('dbname=%s host=%s port=%s', current_database(),
         split_part(current_setting('unix_socket_directories'), ',', 1),
         current_setting('port')));
SELECT * FROM dblink('listener', $$SELECT ext_listen('items'), ext_listen('items_stmt'), ext_listen('custom')$$)
  AS t(a text, b text, c text);

-- what the listener got since last time, in order, with the sender checked
CREATE FUNCTION received() RETURNS TABLE (channel text, from_me boolean, payload jsonb)
LANGUAGE sql AS $$
  SELECT x FROM dblink('listener', 'SELECT 1') AS t(x int);  -- a query: it reads
  SELECT notify_name, be_pid = pg_backend_pid(),
         CASE WHEN extra::jsonb ? 'timestamp'
              THEN (extra::jsonb - 'timestamp')
                   || jsonb_build_object('timestamp_ok',
                        (extra::jsonb ->> 'timestamp')::timestamptz
                          BETWEEN now() - interval '5 minutes' AND now())
              ELSE extra::jsonb END
    FROM dblink_get_notify('listener');
$$;

CREATE TABLE items (id int PRIMARY KEY, name text, note text);
CREATE TRIGGER items_row AFTER INSERT OR UPDATE OR DELETE ON items
  FOR EACH ROW EXECUTE FUNCTION ext_notify_trigger();
CREATE TRIGGER items_ins AFTER INSERT ON items REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION ext_notify_trigger('items_stmt');
CREATE TRIGGER items_del AFTER DELETE ON items REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION ext_notify_trigger('items_stmt');
CREATE TRIGGER items_upd AFTER UPDATE ON items
  FOR EACH STATEMENT EXECUTE FUNCTION ext_notify_trigger('items_stmt');

-- row level: one per row on the table's name; statement level: one per
-- statement, counting the transition table
INSERT INTO items VALUES (1, 'one', NULL), (2, 'two', 'x');
SELECT * FROM received();

-- UPDATE: record and old; no transition table: rows is null
UPDATE items SET name = 'uno' WHERE id = 1;
SELECT * FROM received();

-- a row too large for a payload: key-only form, and the write succeeds
UPDATE items SET note = repeat('n', 10000) WHERE id = 2;
SELECT * FROM received();
SELECT id, length(note) FROM items ORDER BY id;

-- DELETE: old only; the big row again in key form
DELETE FROM items;
SELECT * FROM received();

-- nothing for a rolled-back write, everything only once the write commits
BEGIN;
INSERT INTO items VALUES (3, 'three', NULL);
ROLLBACK;
SELECT * FROM received();
BEGIN;
INSERT INTO items VALUES (4, 'four', NULL);
SAVEPOINT s;
INSERT INTO items VALUES (5, 'five', NULL);
ROLLBACK TO s;
SELECT * FROM received();
COMMIT;
SELECT * FROM received();

-- channel from the argument; no key at all: the truncated form has null keys
CREATE TABLE nokey (v text);
CREATE TRIGGER nokey_row AFTER INSERT ON nokey
  FOR EACH ROW EXECUTE FUNCTION ext_notify_trigger('custom');
INSERT INTO nokey VALUES ('small'), (repeat('v', 9000));
SELECT * FROM received();

-- replica identity index instead of a primary key
CREATE TABLE ukey (code text NOT NULL, body text);
CREATE UNIQUE INDEX ukey_code ON ukey (code);
ALTER TABLE ukey REPLICA IDENTITY USING INDEX ukey_code;
CREATE TRIGGER ukey_row AFTER INSERT ON ukey
  FOR EACH ROW EXECUTE FUNCTION ext_notify_trigger('custom');
INSERT INTO ukey VALUES ('k1', repeat('b', 9000));
SELECT * FROM received();

-- TRUNCATE at statement level
CREATE TRIGGER items_trunc AFTER TRUNCATE ON items
  FOR EACH STATEMENT EXECUTE FUNCTION ext_notify_trigger('items_stmt');
TRUNCATE items;
SELECT * FROM received();

-- BEFORE ROW: the row goes through unchanged
CREATE TABLE before_t (id int PRIMARY KEY, v text);
CREATE TRIGGER before_row BEFORE INSERT OR UPDATE ON before_t
  FOR EACH ROW EXECUTE FUNCTION ext_notify_trigger('custom');
INSERT INTO before_t VALUES (1, 'a');
UPDATE before_t SET v = 'b';
SELECT * FROM before_t;
SELECT * FROM received();

-- errors
SELECT ext_notify_trigger();
CREATE TABLE badchan (id int);
CREATE TRIGGER badchan_row AFTER INSERT ON badchan
  FOR EACH ROW EXECUTE FUNCTION ext_notify_trigger('');
INSERT INTO badchan VALUES (1);

SELECT dblink_disconnect('listener');
DROP TABLE items, nokey, ukey, before_t, badchan;
DROP FUNCTION received();
