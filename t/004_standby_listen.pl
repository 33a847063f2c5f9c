# Copyright (c) notify_ext contributors; see LICENSE
#
# t/004_standby_listen.pl: listening on a hot standby, with the primary's
# notifications carried in the WAL (notify_ext.wal_log = on).
#
# A primary and a streaming hot standby, both preloading notify_ext.  A
# session on the standby listens (channels and a pattern); a session on the
# primary listens on the same.  A randomized workload on the primary
# (several channels, duplicates, savepoints rolled back, whole transactions
# aborted, transactions nobody on the primary listens to) must reach the
# standby listener exactly as it reaches the primary listener: the same
# notifications, with the same sender PIDs, in the same order, nothing of
# what was rolled back.  A new standby listener gets nothing committed
# before its LISTEN.  In drop-in mode a plain LISTEN on the standby
# receives pg_notify() calls made on the primary.  NOTIFY on the standby
# is still refused.  Without any record replayed yet, LISTEN on the standby
# says that notifications need notify_ext.wal_log on the primary.
#
# Run with "make installcheck" (PGXS prove_installcheck) or scripts/test.sh tap.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $primary = PostgreSQL::Test::Cluster->new('wal_primary');
$primary->init(allows_streaming => 1);
$primary->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = 'notify_ext'
notify_ext.wal_log = on
});
$primary->start;
$primary->safe_psql('postgres', 'CREATE EXTENSION notify_ext');
$primary->backup('base');

my $standby = PostgreSQL::Test::Cluster->new('wal_standby');
$standby->init_from_backup($primary, 'base', has_streaming => 1);
$standby->append_conf('postgresql.conf',
	"shared_preload_libraries = 'notify_ext'");
$standby->start;
$primary->wait_for_catchup($standby);

# the notification lines psql printed: [channel, payload, pid]
sub notifications
{
	my ($out) = @_;
	my @got;
	while ($out =~
		/Asynchronous notification "([^"]*)" with payload "([^"]*)" received from server process with PID (\d+)\./g)
	{
		push @got, "$1|$2|$3";
	}
	return \@got;
}

# ------------------------------------------- LISTEN before anything came
my $first = $standby->background_psql('postgres');
$first->query("SELECT ext_listen('early')");
like($first->{stderr},
	qr/NOTICE:  notify_ext: this standby has not replayed any notification from its primary since it started/,
	'LISTEN on a standby that has replayed no notification says so');
$first->{stderr} = '';

$primary->safe_psql('postgres', "SELECT ext_notify('early', 'hello')");
$primary->wait_for_catchup($standby);
is_deeply(
	[ map { (split /\|/)[1] } @{ notifications($first->query_safe('SELECT 1')) } ],
	['hello'], 'that standby session then receives a notification from the primary');
$first->quit;

# ------------------------------------------------ the randomized workload
my @channels = ('a', 'b', 'pat_x', 'pat_y', 'nobody');
my $on_standby = $standby->background_psql('postgres');
my $on_primary = $primary->background_psql('postgres');
for my $s ($on_standby, $on_primary)
{
	$s->query_safe(
		"SELECT ext_listen('a'), ext_listen('b'), ext_listen_pattern('pat\\_%')");
}
my ($rc, $nothing) = $on_standby->query('SELECT 1');
is_deeply(notifications($nothing), [],
	'a new standby listener gets nothing committed before its LISTEN');

srand(20261122);
my $script = '';
my $expected_tx = 0;
for my $t (1 .. 150)
{
	my $fate = rand();
	my @stmts;
	for my $i (1 .. 1 + int(rand(4)))
	{
		my $ch = $channels[ int(rand(@channels)) ];
		my $payload = rand() < 0.2 ? 'dup' : "t$t-$i";
		push @stmts, "SELECT ext_notify('$ch', '$payload');";
		if (rand() < 0.15)
		{
			push @stmts,
			  "SAVEPOINT s; SELECT ext_notify('$ch', 'rolledback-$t'); ROLLBACK TO s;";
		}
	}
	my $end = $fate < 0.1 ? 'ROLLBACK;' : 'COMMIT;';
	$expected_tx++ if $fate >= 0.1;
	$script .= "BEGIN;\n" . join("\n", @stmts) . "\n$end\n";
}
$primary->safe_psql('postgres', $script);
$primary->wait_for_catchup($standby);

my $got_primary = notifications($on_primary->query_safe('SELECT 1'));
my $got_standby = notifications($on_standby->query_safe('SELECT 1'));
cmp_ok(scalar(@$got_primary), '>', 100,
	'the primary listener received the workload (' . scalar(@$got_primary) . ' notifications)');
is(scalar(@$got_standby), scalar(@$got_primary),
	'the standby listener received as many');
is_deeply($got_standby, $got_primary,
	'the same notifications, senders and order on the standby as on the primary');
ok(!grep({ /rolledback|nobody/ } @$got_standby),
	'nothing rolled back, nothing on other channels');

# ------------------------------------------------------------ drop-in mode
my $dropin = $standby->background_psql('postgres');
$dropin->query_safe('SET notify_ext.intercept = on');
$dropin->query_safe('LISTEN dropin');
$primary->safe_psql('postgres',
	"SET notify_ext.intercept = on; SELECT pg_notify('dropin', 'via pg_notify'); NOTIFY dropin, 'via NOTIFY'");
$primary->wait_for_catchup($standby);
is_deeply(
	[ map { join '|', (split /\|/)[ 0, 1 ] } @{ notifications($dropin->query_safe('SELECT 1')) } ],
	[ 'dropin|via pg_notify', 'dropin|via NOTIFY' ],
	'drop-in mode: plain LISTEN on the standby receives pg_notify() and NOTIFY from the primary');

# ------------- nobody listens on the primary: only the WAL carries it
my $only = $standby->background_psql('postgres');
$only->query_safe("SELECT ext_listen('only_on_standby')");
my $head0 = $primary->safe_psql('postgres', 'SELECT head_position FROM notify_ext_queue');
$primary->safe_psql('postgres', "SELECT ext_notify('only_on_standby', 'through the WAL')");
$primary->wait_for_catchup($standby);
is_deeply(
	[ map { (split /\|/)[1] } @{ notifications($only->query_safe('SELECT 1')) } ],
	['through the WAL'], 'a notification nobody on the primary listens to reaches the standby listener');
is($primary->safe_psql('postgres', 'SELECT head_position FROM notify_ext_queue'), $head0,
	'... and was not put into the primary\'s queue');
$only->quit;

# ----------------------------------------------------- NOTIFY stays refused
my ($nrc, $nout, $nerr) = $standby->psql('postgres',
	"\\set VERBOSITY verbose\nSELECT ext_notify('a', 'x')");
like($nerr, qr/ERROR:  25006: cannot execute NOTIFY during recovery/,
	'NOTIFY on the standby is refused as in core');

$dropin->quit;
$on_standby->quit;
$on_primary->quit;
$standby->stop;
$primary->stop;
done_testing();
