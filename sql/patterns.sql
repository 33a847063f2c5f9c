--
-- Pattern subscriptions: ext_listen_pattern() with LIKE syntax.  A dblink
-- connection listens; received() shows what it got since last time, in
-- order (a notification is printed once per delivery).
--
SET client_min_messages TO warning;
CREATE EXTENSION IF NOT EXISTS notify_ext;
CREATE EXTENSION IF NOT EXISTS dblink;
RESET client_min_messages;

SELECT dblink_connect('pl',
  format('dbname=%s host=%s port=%s', current_database(),
         split_part(current_setting('unix_socket_directories'), ',', 1),
         current_setting('port')));
CREATE FUNCTION received() RETURNS TABLE (channel text, payload text, from_me boolean)
LANGUAGE sql AS $$
  SELECT x FROM dblink('pl', 'SELECT 1') AS t(x int);  -- a query: it reads
  SELECT notify_name, extra, be_pid = pg_backend_pid() FROM dblink_get_notify('pl');
$$;
CREATE FUNCTION patterns() RETURNS SETOF text LANGUAGE sql AS $$
  SELECT p FROM dblink('pl', 'SELECT * FROM ext_listening_patterns()') AS t(p text);
$$;

SELECT dblink_exec('pl', $$DO $d$BEGIN PERFORM ext_listen_pattern('orders.%'), ext_listen('orders.new'); END $d$ $$);
SELECT * FROM patterns();
-- matched by the pattern and listened directly: delivered once
SELECT ext_notify('orders.new', 'once');
SELECT ext_notify('orders.old', 'via the pattern');
SELECT ext_notify('other', 'not matched');
SELECT * FROM received();

-- _ is one character (of the encoding), \ escapes, % may be empty
SELECT dblink_exec('pl', $$DO $d$BEGIN PERFORM ext_listen_pattern('a\_b'), ext_listen_pattern('x_z'), ext_listen_pattern('pre%fix'); END $d$ $$);
SELECT ext_notify('a_b', 'escaped underscore');
SELECT ext_notify('axb', 'not matched');
SELECT ext_notify('xéz', 'one multibyte character');
SELECT ext_notify('xz', 'not matched');
SELECT ext_notify('prefix', 'empty %');
SELECT ext_notify('pre-and-fix', 'long %');
SELECT ext_notify('prefixes', 'not matched');
SELECT * FROM received();

-- a channel matching two patterns and listened directly: once; duplicates
-- of one transaction folded as always
SELECT dblink_exec('pl', $$DO $d$BEGIN PERFORM ext_listen_pattern('orders.n%'); END $d$ $$);
BEGIN;
SELECT ext_notify('orders.new', 'still once');
SELECT ext_notify('orders.new', 'still once');
SELECT ext_notify('orders.nix', 'two patterns');
COMMIT;
SELECT * FROM received();

-- transactional: in effect at commit; rolled back, or in a rolled-back
-- savepoint, never happened
SELECT dblink_exec('pl', 'BEGIN');
SELECT dblink_exec('pl', $$DO $d$BEGIN PERFORM ext_listen_pattern('tx.%'); END $d$ $$);
SELECT ext_notify('tx.1', 'before the LISTEN committed: not delivered');
SELECT dblink_exec('pl', 'COMMIT');
SELECT ext_notify('tx.2', 'after commit');
SELECT dblink_exec('pl', $$BEGIN; DO $d$BEGIN PERFORM ext_listen_pattern('rb.%'); END $d$; ROLLBACK$$);
SELECT dblink_exec('pl', $$BEGIN; SAVEPOINT s; DO $d$BEGIN PERFORM ext_listen_pattern('sp.%'); END $d$; ROLLBACK TO s; COMMIT$$);
SELECT ext_notify('rb.1', 'rolled back: not delivered');
SELECT ext_notify('sp.1', 'rolled back savepoint: not delivered');
SELECT * FROM received();
SELECT * FROM patterns();

-- UNLISTEN of a pattern at commit (the listener receives nothing inside its
-- transaction, and at its end the UNLISTEN is in effect first, as in core);
-- of a pattern never listened: a no-op
SELECT dblink_exec('pl', 'BEGIN');
SELECT dblink_exec('pl', $$DO $d$BEGIN PERFORM ext_unlisten_pattern('tx.%'), ext_unlisten_pattern('never.listened'); END $d$ $$);
SELECT ext_notify('tx.3', 'arrives while the listener''s UNLISTEN is pending: not delivered, as in core');
SELECT dblink_exec('pl', 'COMMIT');
SELECT ext_notify('tx.4', 'after the UNLISTEN: not delivered');
SELECT * FROM received();

-- errors
SELECT ext_listen_pattern(NULL);
SELECT ext_listen_pattern('');
SELECT ext_listen_pattern(repeat('p', 128));
SELECT ext_listen_pattern('bad\');
SELECT ext_unlisten_pattern('');

-- UNLISTEN * and DISCARD ALL end patterns too, and the slot goes
SELECT dblink_exec('pl', $$DO $d$BEGIN PERFORM ext_unlisten_all(); END $d$ $$);
SELECT * FROM patterns();
SELECT dblink_exec('pl', $$DO $d$BEGIN PERFORM ext_listen_pattern('d.%'); END $d$ $$);
SELECT dblink_exec('pl', 'DISCARD ALL');
SELECT * FROM patterns();
SELECT ext_notify('d.1', 'not delivered');
SELECT * FROM received();
SELECT count(*) FROM ext_listeners() WHERE database = current_database();

SELECT dblink_disconnect('pl');
DROP FUNCTION received(), patterns();
