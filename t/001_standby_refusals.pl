# Copyright (c) notify_ext contributors; see LICENSE
#
# t/001_standby_refusals.pl: NOTIFY on a hot standby.
#
# A primary and a streaming hot standby (made from a base backup), both with
# notify_ext preloaded.  On the standby every way in to NOTIFY (ext_notify,
# and with notify_ext.intercept = on pg_notify and NOTIFY) fails the way
# core's does: SQLSTATE 25006, "cannot execute NOTIFY during recovery".
# LISTEN (unlike core: t/004_standby_listen.pl) and UNLISTEN in every form
# are accepted.  On the primary LISTEN/NOTIFY works.
#
# Run with "make installcheck" (PGXS prove_installcheck) or scripts/test.sh tap.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# ------------------------------------------------------------------ setup
my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf',
	"shared_preload_libraries = 'notify_ext'");
$primary->start;
$primary->safe_psql('postgres', 'CREATE EXTENSION notify_ext');

my $backup_name = 'base';
$primary->backup($backup_name);

my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, $backup_name, has_streaming => 1);
# (postgresql.conf comes with the backup, shared_preload_libraries included;
# say it again so that the standby does not depend on that)
$standby->append_conf('postgresql.conf',
	"shared_preload_libraries = 'notify_ext'");
$standby->start;
$primary->wait_for_catchup($standby);

is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'),
	't', 'the standby is in recovery');
is( $standby->safe_psql(
		'postgres',
		"SELECT count(*) FROM pg_extension WHERE extname = 'notify_ext'"),
	'1',
	'CREATE EXTENSION notify_ext replicated to the standby');

# ---------------------------------------------------------------- helpers

# run SQL on NODE with verbose errors (SQLSTATE in the message); returns
# (psql exit status, stdout, stderr)
sub run_sql
{
	my ($node, $sql) = @_;
	my ($out, $err);
	my $rc = $node->psql(
		'postgres', $sql,
		stdout => \$out,
		stderr => \$err,
		on_error_stop => 1,
		extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	return ($rc, $out, $err);
}

# refused NODE, SQL, CMD, SETUP: SQL fails with 25006 "cannot execute CMD
# during recovery" (SETUP, e.g. a SET, runs first in the same session)
sub refused
{
	my ($node, $sql, $cmd, $setup) = @_;
	my $what = ($setup ? "$setup; " : '') . $sql;
	my ($rc, $out, $err) =
	  run_sql($node, ($setup ? "$setup;\n" : '') . "$sql;\n");
	isnt($rc, 0, "standby: $what fails");
	like(
		$err,
		qr/ERROR:\s+25006: cannot execute \Q$cmd\E during recovery/,
		"standby: $what: SQLSTATE 25006, \"cannot execute $cmd during recovery\""
	);
	return;
}

# accepted NODE, SQL, SETUP: SQL succeeds without any error
sub accepted
{
	my ($node, $sql, $setup) = @_;
	my $what = ($setup ? "$setup; " : '') . $sql;
	my ($rc, $out, $err) =
	  run_sql($node, ($setup ? "$setup;\n" : '') . "$sql;\n");
	is($rc, 0, "standby: $what is accepted");
	unlike($err, qr/ERROR/, "standby: $what: no error")
	  or diag("stderr: $err");
	return;
}

my $intercept = 'SET notify_ext.intercept = on';

# -------------------------------------------------- refused on the standby
refused($standby, "SELECT ext_notify('c', 'x')", 'NOTIFY');
refused($standby, "SELECT pg_notify('c', 'x')",  'NOTIFY', $intercept);
refused($standby, "NOTIFY c",                    'NOTIFY', $intercept);
refused($standby, "NOTIFY c, 'x'",               'NOTIFY', $intercept);

# the refused NOTIFYs left nothing behind
is($standby->safe_psql('postgres', 'SELECT ext_notification_queue_usage()'),
	'0', 'standby: nothing queued');

# ------------------------------------------------- accepted on the standby
# LISTEN too, unlike core: notifications come through the WAL
# (t/004_standby_listen.pl)
accepted($standby, "SELECT ext_listen('c')");
accepted($standby, "LISTEN c",                      $intercept);
accepted($standby, "SELECT ext_unlisten('c')");
accepted($standby, "SELECT ext_unlisten_all()");
accepted($standby, "UNLISTEN *",                    $intercept);
accepted($standby, "UNLISTEN c",                    $intercept);
accepted($standby, "SELECT ext_listening_channels()");

# ----------------------------------------------------- works on the primary

# one session: listen, then notify itself (separate transactions)
my ($rc, $out, $err) = run_sql($primary,
	"SELECT ext_listen('c');\nSELECT ext_notify('c', 'p');\n");
is($rc, 0, 'primary: ext_listen and ext_notify succeed');
like(
	$out,
	qr/Asynchronous notification "c" with payload "p" received from server process with PID \d+/,
	'primary: the session receives its own notification');

# two sessions: a background listener receives what another one sends
my $listener = $primary->background_psql('postgres');
$listener->query_safe("SELECT ext_listen('c2')");
is( $primary->safe_psql(
		'postgres', "SELECT count(*) FROM ext_listeners() WHERE channel = 'c2'"),
	'1',
	'primary: the background session is listed as a listener of c2');
$primary->safe_psql('postgres', "SELECT ext_notify('c2', 'from another')");

# psql prints notifications when it next talks to the server: poll with a
# trivial query until the notification shows up (or the timeout)
my $got = '';
my $deadline = time + $PostgreSQL::Test::Utils::timeout_default;
while (time < $deadline)
{
	$got .= $listener->query_safe('SELECT 1');
	last if $got =~ /Asynchronous notification "c2"/;
	select(undef, undef, undef, 0.1);
}
like(
	$got,
	qr/Asynchronous notification "c2" with payload "from another" received from server process with PID \d+/,
	'primary: a listening session receives a notification from another one');
$listener->quit;

# and with intercept on: core's own LISTEN / NOTIFY syntax
($rc, $out, $err) = run_sql($primary,
	"$intercept;\nLISTEN c3;\nNOTIFY c3, 'q';\nSELECT pg_notify('c3', 'r');\n");
is($rc, 0, 'primary: LISTEN, NOTIFY, pg_notify with intercept on succeed');
like($out, qr/Asynchronous notification "c3" with payload "q" received/,
	'primary: NOTIFY c3 (intercepted) is received');
like($out, qr/Asynchronous notification "c3" with payload "r" received/,
	'primary: pg_notify (intercepted) is received');

# ------------------------------------------------------------- afterwards
# the standby still replays (the refusals broke nothing) and is healthy
$primary->safe_psql('postgres', 'CREATE TABLE after_refusals (i int)');
$primary->wait_for_catchup($standby);
is( $standby->safe_psql(
		'postgres', "SELECT to_regclass('after_refusals') IS NOT NULL"),
	't',
	'standby: still replaying after the refusals');

$standby->stop;
$primary->stop;

# no crash, PANIC, assertion failure or UBSan report (scripts/test.sh with
# NE_SANITIZE=undefined) in either server log
for my $node ($primary, $standby)
{
	my $log = slurp_file($node->logfile);
	unlike(
		$log,
		qr/PANIC:|TRAP:|terminated by signal|was terminated by exception|runtime error:/,
		$node->name
		  . ': the server log has no crash, PANIC, assertion failure or UBSan report'
	);
}

done_testing();
