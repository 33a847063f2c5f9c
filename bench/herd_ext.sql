-- workload 2, notify_ext: autocommit notify on channel c
SELECT ext_notify('c', 'x');
