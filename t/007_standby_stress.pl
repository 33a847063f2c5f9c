# Copyright (c) notify_ext contributors; see LICENSE
#
# t/007_standby_stress.pl: the stress checker (test/stress/stress_delivery.py)
# with half of its listeners on a hot standby.
#
# A primary (notify_ext.wal_log = on) and a streaming hot standby, both
# preloading notify_ext.  Each round, the checker's notifiers run on the
# primary (transactions of 1-5 notifications on random channels, savepoints
# rolled back, aborts, duplicates), and its listeners alternate between
# the primary and the standby, two neighbours with the same channels and
# patterns, one on each server; listeners on both sit in transactions now
# and then.  The checker (STRESS_STANDBY_HOST/PORT) proves for every
# listener, on either server: exactly the committed notifications of its
# channels and patterns, each once, a transaction's in order, each sender's
# transactions in order, the notifier's backend PID as sender (the
# primary's PIDs on the standby); all listeners of both servers agree on
# the order of the transactions they share; the standby's listeners
# received something.  At the end of the notifiers' phase it waits until
# the standby has replayed the primary's WAL, then the listeners wait idle
# 3 s more (a missing notification then is a lost wake-up).
#
# Rounds: STRESS_ROUNDS (default 3) rounds of STRESS_SECONDS (default 12)
# with 12, 18, 24, ... listeners, then one round with the standby
# restarted with a 64kB ring (notify_ext.queue_size; queue_disk_limit at its
# default) and listeners sitting in transactions up to 1 s: the standby's
# queue spills to disk during replay (checked: its
# notify_ext_queue.spilled_bytes grew), and nobody is skipped.  One TAP
# line per round, with the checker's summary.
#
# The checker is found in NE_SRCDIR/test/stress (scripts/test.sh copies it
# next to t/), else in the checkout this file is in.  Python: NE_PYTHON,
# default /usr/bin/python3 (with python3-psycopg).
#
# Run with "make installcheck" (PGXS prove_installcheck) or scripts/test.sh tap.

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $python = $ENV{NE_PYTHON} // '/usr/bin/python3';
my $srcdir = $ENV{NE_SRCDIR} // abs_path(dirname(abs_path(__FILE__)) . '/..');
my $checker = "$srcdir/test/stress/stress_delivery.py";
my $seconds = $ENV{STRESS_SECONDS} // 12;
my $rounds  = $ENV{STRESS_ROUNDS}  // 3;

plan skip_all => "no $checker (set NE_SRCDIR to the notify_ext checkout)"
  unless -r $checker;
plan skip_all => "$python cannot import psycopg (apt-get install python3-psycopg)"
  unless system($python, '-c', 'import psycopg') == 0;

my $primary = PostgreSQL::Test::Cluster->new('stress_primary');
$primary->init(allows_streaming => 1);
# (the standby inherits max_connections, which must be at least the primary's)
$primary->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = 'notify_ext'
notify_ext.wal_log = on
max_connections = 64
});
$primary->start;
$primary->safe_psql('postgres', 'CREATE EXTENSION notify_ext');
$primary->backup('base');

my $standby = PostgreSQL::Test::Cluster->new('stress_standby');
$standby->init_from_backup($primary, 'base', has_streaming => 1);
$standby->append_conf('postgresql.conf',
	"shared_preload_libraries = 'notify_ext'");
$standby->start;
$primary->wait_for_catchup($standby);

my $user = getpwuid($<);

# run the checker: (exit status, its output)
sub stress
{
	my ($listeners, %env) = @_;
	local %ENV = (
		%ENV,
		PGHOST              => $primary->host,
		PGPORT              => $primary->port,
		PGUSER              => $user,
		PGDATABASE          => 'postgres',
		STRESS_STANDBY_HOST => $standby->host,
		STRESS_STANDBY_PORT => $standby->port,
		%env);
	my $out = '';
	my @cmd = ($python, $checker, $seconds, 4, $listeners);
	note "running: @cmd";
	my $ok = eval {
		IPC::Run::run(\@cmd, '<', \undef, '>&', \$out,
			IPC::Run::timeout($seconds + 300));
	};
	my $rc = $@ ? "timed out or failed to run: $@" : $? >> 8;
	return ($rc, $out);
}

# one TAP line for a round: the checker's summary in its name, its whole
# output on failure
sub round_ok
{
	my ($name, $rc, $out) = @_;
	my $summary = join ' | ', map { s/^stress: //r } grep { $_ ne 'stress: ok' } ($out =~ /^(stress: .*)$/mg);
	ok($rc eq '0', "$name: " . ($summary || 'no summary'))
	  or diag("exit status $rc; the checker said:\n$out");
}

for my $round (1 .. $rounds)
{
	my $listeners = 6 + 6 * $round;
	my ($rc, $out) = stress($listeners);
	round_ok("round $round, $listeners listeners (half on the standby)", $rc, $out);
	$primary->wait_for_catchup($standby);
}

# ------------------------------- a 64kB ring on the standby: it spills to disk
$standby->append_conf('postgresql.conf', 'notify_ext.queue_size = 64kB');
$standby->restart;
$primary->wait_for_catchup($standby);
is($standby->safe_psql('postgres', 'SELECT ring_bytes FROM notify_ext_queue'),
	65536, 'the standby restarted with a 64kB ring');
my $spilled_before = $standby->safe_psql('postgres', 'SELECT spilled_bytes FROM notify_ext_queue');
{
	my ($rc, $out) = stress(12, STRESS_PARK => '1.0', STRESS_EXPECT_STANDBY_SPILL => '1');
	round_ok('64kB standby ring, 12 listeners sitting in transactions up to 1 s', $rc, $out);
}
my ($spilled, $skipped) = split /\|/, $standby->safe_psql('postgres',
	'SELECT spilled_bytes, listeners_skipped FROM notify_ext_queue');
cmp_ok($spilled - $spilled_before, '>', 0,
	'the standby\'s queue spilled to disk during replay (spilled_bytes grew by '
	  . ($spilled - $spilled_before) . ')');
is($skipped, 0, 'no standby listener was skipped (its disk tier had room)');
is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't',
	'the standby is still a standby');

$standby->stop;
$primary->stop;
for my $node ($primary, $standby)
{
	unlike(slurp_file($node->logfile),
		qr/PANIC:|TRAP:|terminated by signal|exited with exit code [2-9]|was terminated by exception|server process .* exited with|runtime error:/,
		$node->name . ': no crash in the server log');
}
done_testing();
