-- workload 1, core: one row and one notification per transaction
BEGIN;
INSERT INTO bench_t VALUES (:client_id, 'x');
SELECT pg_notify('t_core', 'x');
COMMIT;
