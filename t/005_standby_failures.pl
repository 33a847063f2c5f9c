# Copyright (c) notify_ext contributors; see LICENSE
#
# t/005_standby_failures.pl: standby listeners when things go wrong.
#
# A primary (notify_ext.wal_log = on), a streaming hot standby with a small
# queue kept in shared memory only (64kB, queue_disk_limit = 0), and a
# cascading standby of that standby.
#   - The standby's queue fills while one of its listeners sits in a
#     transaction: replay does not wait (the standby keeps up with the
#     primary), the laggard is skipped and told (the gap signal, whatever
#     notify_ext.queue_full_action says), another listener loses nothing.
#   - A batch too large for the standby's queue is dropped there; replay
#     goes on, and its listeners get the gap signal (reason "not queued on
#     standby") with what each lost, then what comes next.
#   - The cascading standby's listener receives what the primary sends.
#   - The standby restarts: its listeners (reconnected) receive what comes
#     afterwards.
#   - The primary crashes (immediate shutdown) and restarts: standby
#     listeners go on receiving.
#   - The standby is promoted: its sessions keep their LISTENs and receive
#     what is notified on it, now a primary.
#
# Run with "make installcheck" (PGXS prove_installcheck) or scripts/test.sh tap.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# BackgroundPsql notes every query's output; here that buries the results
{
	no warnings 'redefine';
	*PostgreSQL::Test::BackgroundPsql::note = sub { };
}

my $primary = PostgreSQL::Test::Cluster->new('f_primary');
$primary->init(allows_streaming => 1);
$primary->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = 'notify_ext'
notify_ext.wal_log = on
});
$primary->start;
$primary->safe_psql('postgres', 'CREATE EXTENSION notify_ext');
$primary->backup('base');

my $standby = PostgreSQL::Test::Cluster->new('f_standby');
$standby->init_from_backup($primary, 'base', has_streaming => 1);
$standby->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = 'notify_ext'
notify_ext.queue_size = 64kB
notify_ext.queue_disk_limit = 0
});
$standby->start;
$primary->wait_for_catchup($standby);

$standby->backup('cascade');
my $cascade = PostgreSQL::Test::Cluster->new('f_cascade');
$cascade->init_from_backup($standby, 'cascade', has_streaming => 1);
$cascade->start;
catchup();

sub payloads
{
	my ($out, $channel) = @_;
	return [ $out =~ /Asynchronous notification "\Q$channel\E" with payload "([^"]*)"/g ];
}

sub notify_range
{
	my ($channel, $from, $to, $pad) = @_;
	$primary->safe_psql('postgres', join '',
		map { "SELECT ext_notify('$channel', '" . sprintf('%06d', $_) . ($pad // '') . "');\n" }
		  $from .. $to);
}

# (a standby has no current WAL position of its own: wait for the primary's)
sub catchup
{
	$primary->wait_for_catchup($standby);
	$standby->wait_for_catchup($cascade, 'replay', $primary->lsn('insert'));
}

# ------------------------------------- a full standby queue never stops replay
my $parked = $standby->background_psql('postgres');
$parked->query("SELECT ext_listen('q'), ext_listen('notify_ext.gap')");
$parked->{stderr} = '';
my $healthy = $standby->background_psql('postgres');
$healthy->query("SELECT ext_listen('q')");
$healthy->{stderr} = '';
$parked->query_safe('BEGIN');
$parked->query_safe('SELECT 1');

my $pad = 'x' x 1000;
my $received = [];
for my $round (0 .. 3)
{
	# 50 kB a round: the healthy listener reads between rounds, the
	# parked one holds the 64kB ring
	notify_range('q', $round * 50 + 1, $round * 50 + 50, $pad);
	$primary->wait_for_catchup($standby);
	push @$received, @{ payloads(scalar($healthy->query('SELECT 1')), 'q') };
}
pass('replay kept up with the primary while a standby listener sat in a transaction (200 kB through a 64kB ring)');
is_deeply($received, [ map { sprintf('%06d', $_) . $pad } 1 .. 200 ],
	'the other standby listener received all 200, in order');
my $out = $parked->query('COMMIT');
$out .= $parked->query('SELECT 1');
like($parked->{stderr}, qr/WARNING:  notify_ext: \d+ notifications were not delivered to this session because the NOTIFY queue was full/,
	'the parked standby listener is told it was skipped');
like($parked->{stderr}, qr/HINT:  On a standby, WAL replay never waits for a listener/,
	'... with a hint that says why (replay never waits), not queue_full_action');
like($out, qr/Asynchronous notification "notify_ext.gap" with payload "\{"missed": \d+/,
	'... and gets the gap notification');
my $parked_got = payloads($out, 'q');
cmp_ok(scalar(@$parked_got), '<', 200, 'it missed some (received ' . scalar(@$parked_got) . ')');
$parked->{stderr} = '';
notify_range('q', 201, 201);
$primary->wait_for_catchup($standby);
is_deeply(payloads(scalar($parked->query('SELECT 1')), 'q'), ['000201'],
	'then it receives new notifications normally');
$parked->quit;
$healthy->quit;

# ------------------------------ a batch too large for the standby's queue
# 100 notifications of 1 kB in one transaction do not fit in the standby's
# 64kB ring with no disk tier: replay drops the batch on the standby and
# goes on; at its commit each listener it would have reached is told what
# it lost, and then receives what comes next.
my $big = $standby->background_psql('postgres');
$big->query("SELECT ext_listen('big'), ext_listen('notify_ext.gap')");
$big->{stderr} = '';
my $small = $standby->background_psql('postgres');
$small->query("SELECT ext_listen('small')");
$small->{stderr} = '';
my $bystander = $standby->background_psql('postgres');
$bystander->query("SELECT ext_listen('elsewhere')");
$bystander->{stderr} = '';
$primary->safe_psql('postgres',
	"BEGIN;\n"
	  . join('', map { "SELECT ext_notify('big', '" . sprintf('%06d', $_) . "$pad');\n" } 1 .. 100)
	  . "SELECT ext_notify('small', 'in the same transaction');\nCOMMIT;\n");
notify_range('big', 101, 101);
notify_range('small', 1, 1);
$primary->wait_for_catchup($standby);
my $bout = $big->query('SELECT 1');
like($big->{stderr},
	qr/WARNING:  notify_ext: 100 notifications committed on the primary were not delivered to this session because this standby could not queue them/,
	'a batch the standby could not queue: its listener is told how many it lost');
like($bout,
	qr/Asynchronous notification "notify_ext.gap" with payload "\{"missed": 100, "channels": \{"big": 100\}, "other_channels": 0, "reason": "not queued on standby"/,
	'... and gets the gap notification, reason "not queued on standby"');
is_deeply(payloads($bout, 'big'), ['000101'], '... then receives the next notification');
cmp_ok(index($bout, 'notify_ext.gap'), '<', index($bout, '"000101"'),
	'... after the gap signal');
my $sout = $small->query('SELECT 1');
like($small->{stderr}, qr/WARNING:  notify_ext: 1 notifications committed on the primary were not delivered/,
	'another listener of that batch is told of the one notification it lost');
is_deeply(payloads($sout, 'small'), ['000001'], '... and receives the next one');
$bystander->query('SELECT 1');
is($bystander->{stderr}, '', 'a listener of other channels is told nothing');
like(slurp_file($standby->logfile),
	qr/WARNING:  notify_ext: a replayed batch of 101 notifications \(\d+ bytes\) did not fit in the queue and was not queued on this standby/,
	'the standby logs the batch it could not queue');
$_->quit for ($big, $small, $bystander);

# --------------------------------------------------------- cascading standby
my $casc = $cascade->background_psql('postgres');
$casc->query("SELECT ext_listen('c')");
$casc->{stderr} = '';
notify_range('c', 1, 5);
catchup();
is_deeply(payloads(scalar($casc->query('SELECT 1')), 'c'), [ map { sprintf('%06d', $_) } 1 .. 5 ],
	'a cascading standby\'s listener receives what the primary sends');
$casc->quit;

# ------------------------------------------------------------ standby restart
$standby->restart;
$primary->wait_for_catchup($standby);
my $after = $standby->background_psql('postgres');
$after->query("SELECT ext_listen('r')");
$after->{stderr} = '';
notify_range('r', 1, 3);
$primary->wait_for_catchup($standby);
is_deeply(payloads(scalar($after->query('SELECT 1')), 'r'), [ map { sprintf('%06d', $_) } 1 .. 3 ],
	'after the standby restarts, its listeners receive what comes next');

# ------------------------------------------------ the primary crashes, restarts
$primary->stop('immediate');
$primary->start;
notify_range('r', 4, 6);
$primary->wait_for_catchup($standby);
is_deeply(payloads(scalar($after->query('SELECT 1')), 'r'), [ map { sprintf('%06d', $_) } 4 .. 6 ],
	'after the primary crashed and restarted, standby listeners go on receiving');

# ------------------------------------------------------------------ promotion
$cascade->stop;
$standby->promote;
$standby->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()')
  or die 'the standby was not promoted';
$standby->safe_psql('postgres', "SELECT ext_notify('r', 'on the new primary')");
is_deeply(payloads(scalar($after->query('SELECT 1')), 'r'), ['on the new primary'],
	'after promotion, the session keeps its LISTEN and receives what is notified on the new primary');
$after->quit;

for my $node ($primary, $standby)
{
	unlike(slurp_file($node->logfile),
		qr/PANIC:|TRAP:|terminated by signal|was terminated by exception|runtime error:/,
		$node->name . ': no crash in the server log (the immediate stop aside)');
}

$standby->stop;
$primary->stop;
done_testing();
