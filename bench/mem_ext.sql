-- workload 6, notify_ext: ten distinct notifications per transaction
SELECT count(*) FROM (SELECT ext_notify('mem_ext', :client_id || '-' || i) FROM generate_series(1, 10) i) s;
