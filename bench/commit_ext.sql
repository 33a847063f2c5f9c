-- workload 1, notify_ext: one row and one notification per transaction
BEGIN;
INSERT INTO bench_t VALUES (:client_id, 'x');
SELECT ext_notify('t_ext', 'x');
COMMIT;
