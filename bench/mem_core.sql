-- workload 6, core: ten distinct notifications per transaction
SELECT count(*) FROM (SELECT pg_notify('mem_core', :client_id || '-' || i) FROM generate_series(1, 10) i) s;
