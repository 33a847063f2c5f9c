-- workload 1, the physical limit: the same transaction without a notification
BEGIN;
INSERT INTO bench_t VALUES (:client_id, 'x');
COMMIT;
