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
