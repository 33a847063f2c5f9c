-- workload 2, core: autocommit notify on channel c
SELECT pg_notify('c', 'x');
