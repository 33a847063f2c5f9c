# Copyright (c) notify_ext contributors; see LICENSE
#
# t/006_standby_unresolved.pl: the primary crashes between a batch's WAL
# record and its transaction's commit record.
#
# A notifying transaction on the primary is held by gdb right after
# XLogInsert() wrote its notifications (at PRE_COMMIT, before its commit
# record): its notifications reach the standby, its commit record never
# does, because the primary is stopped with an immediate shutdown (the held
# backend is killed) and restarted.  The standby
# listener must never deliver that batch, and must not hang on it: what is
# notified after the restart arrives.  Skipped where gdb cannot attach.
#
# Run with "make installcheck" (PGXS prove_installcheck) or scripts/test.sh tap.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

if (system('gdb --version >/dev/null 2>&1') != 0)
{
	plan skip_all => 'gdb is not installed';
}

my $primary = PostgreSQL::Test::Cluster->new('u_primary');
$primary->init(allows_streaming => 1);
$primary->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = 'notify_ext'
notify_ext.wal_log = on
});
$primary->start;
$primary->safe_psql('postgres', 'CREATE EXTENSION notify_ext; CREATE TABLE t (x int)');
$primary->backup('base');

my $standby = PostgreSQL::Test::Cluster->new('u_standby');
$standby->init_from_backup($primary, 'base', has_streaming => 1);
$standby->append_conf('postgresql.conf',
	"shared_preload_libraries = 'notify_ext'");
$standby->start;
$primary->wait_for_catchup($standby);

my $listener = $standby->background_psql('postgres');
$listener->query("SELECT ext_listen('u')");
$listener->{stderr} = '';	# (the NOTICE: nothing replayed yet)

# the notifier, held by gdb right before its commit record
my $notifier = $primary->background_psql('postgres', on_error_stop => 0);
my $pid = $notifier->query_safe('SELECT pg_backend_pid()');
$notifier->query_safe('BEGIN');
$notifier->query_safe('INSERT INTO t VALUES (1)');
$notifier->query_safe("SELECT ext_notify('u', 'never committed')");

my $gdb_out = "$PostgreSQL::Test::Utils::tmp_check/gdb.out";
my $gdb = IPC::Run::start(
	[
		'gdb', '-p', $pid, '-batch', '-nx',
		# XLogInsert(rmid, info): notify_ext's records are rmid 213
		'-ex', 'break XLogInsert if $rdi == 213',
		'-ex', 'continue',
		'-ex', 'finish',
		'-ex', 'echo HELD\n',
		# long enough for the immediate shutdown below: its SIGKILL (after
		# 5 s) takes effect when gdb lets go, so no commit record follows
		'-ex', 'shell sleep 15'
	],
	'>', $gdb_out, '2>&1');
my $attached = 0;
for (1 .. 100)
{
	if (-s $gdb_out && slurp_file($gdb_out) =~ /Breakpoint 1 at/)
	{
		$attached = 1;
		last;
	}
	select(undef, undef, undef, 0.1);
}
if (!$attached)
{
	$gdb->kill_kill;
	diag(-s $gdb_out ? slurp_file($gdb_out) : 'no gdb output');
	plan skip_all => 'gdb cannot attach to a backend here';
}

$notifier->{stdin} .= "COMMIT;\n";
$notifier->{run}->pump_nb;
my $held = 0;
for (1 .. 300)
{
	if (slurp_file($gdb_out) =~ /HELD/)
	{
		$held = 1;
		last;
	}
	select(undef, undef, undef, 0.1);
}
ok($held, 'the notifier is held after writing its notifications to the WAL, before its commit record');

# flush the WAL up to here (another commit does) and let the standby replay it
$primary->safe_psql('postgres', 'INSERT INTO t VALUES (2)');
$primary->wait_for_catchup($standby);
is($standby->safe_psql('postgres', 'SELECT count(*) FROM t'),
	'1', 'the standby has replayed past the batch record (only the other insert is visible)');
is_deeply([ scalar($listener->query_safe('SELECT 1')) =~ /Asynchronous notification "u"/g ], [],
	'the standby listener receives nothing of the uncommitted batch');

# the primary crashes (immediate shutdown: the held notifier gets SIGKILL
# after 5 s) and comes back
$primary->stop('immediate');
$gdb->kill_kill;
$primary->start;
$primary->safe_psql('postgres', "SELECT ext_notify('u', 'after the crash')");
$primary->wait_for_catchup($standby);

my $got = '';
for (1 .. 100)
{
	$got .= $listener->query_safe('SELECT 1');
	last if $got =~ /after the crash/;
	select(undef, undef, undef, 0.1);
}
my @payloads = $got =~ /Asynchronous notification "u" with payload "([^"]*)"/g;
is_deeply(\@payloads, ['after the crash'],
	'the standby listener does not hang on the unresolved batch and never delivers it');

$listener->quit;
$standby->stop;
$primary->stop;
done_testing();
