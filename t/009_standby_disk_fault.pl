# Copyright (c) notify_ext contributors; see LICENSE
#
# t/009_standby_disk_fault.pl: a standby whose disk fails while it replays
# notifications.
#
# A primary (notify_ext.wal_log = on) and a streaming hot standby whose
# processes run with t/fault_shim.c preloaded: while a flag file exists,
# writes to files under pg_notify_ext/ fail with ENOSPC.  The standby's
# ring is 64kB, so a transaction of 100 notifications of 1 kB is written
# straight to its disk tier when replayed.
#   - With the disk failing, replay does not stop (the standby keeps up
#     with the primary, no PANIC): the batch is dropped on the standby and
#     logged with the error; at its commit, the standby listeners it would
#     have reached get the gap signal (reason "not queued on standby", how
#     many each lost); a listener of other channels is told nothing.
#   - Once the disk works again, the same large transactions reach the
#     standby listeners whole and in order.
#   - The outcome of a replayed transaction is written into the header of
#     its batch in the spill file when its commit record is replayed.
#
# Run with "make installcheck" (PGXS prove_installcheck) or scripts/test.sh tap.

use strict;
use warnings;

use File::Basename qw(dirname);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

{
	no warnings 'redefine';
	*PostgreSQL::Test::BackgroundPsql::note = sub { };
}

# ------------------------------------------------------------- the shim
my $shim = "$PostgreSQL::Test::Utils::tmp_check/fault_shim.so";
my $src  = dirname(__FILE__) . '/fault_shim.c';
my ($stdout, $stderr);
my $built = IPC::Run::run [ 'cc', '-shared', '-fPIC', '-O2', '-o', $shim, $src, '-ldl' ],
  '>', \$stdout, '2>', \$stderr;
ok($built, 'built the fault shim') or diag($stderr);
my $flag = "$PostgreSQL::Test::Utils::tmp_check/standby_fault_flag";
unlink $flag;

# ------------------------------------------------------------------ setup
my $primary = PostgreSQL::Test::Cluster->new('df_primary');
$primary->init(allows_streaming => 1);
$primary->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = 'notify_ext'
notify_ext.wal_log = on
});
$primary->start;
$primary->safe_psql('postgres', 'CREATE EXTENSION notify_ext');
$primary->backup('base');

my $standby = PostgreSQL::Test::Cluster->new('df_standby');
$standby->init_from_backup($primary, 'base', has_streaming => 1);
$standby->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = 'notify_ext'
notify_ext.queue_size = 64kB
});
{
	local $ENV{LD_PRELOAD}    = $shim;
	local $ENV{NE_FAULT_FLAG} = $flag;
	$standby->start;
}
$primary->wait_for_catchup($standby);

sub payloads
{
	my ($out, $channel) = @_;
	return [ $out =~ /Asynchronous notification "\Q$channel\E" with payload "([^"]*)"/g ];
}

my $pad = 'x' x 1000;

# one transaction: 100 notifications of 1 kB on channel d, one on e
sub big_transaction
{
	my ($tag) = @_;
	$primary->safe_psql('postgres',
		"BEGIN;\n"
		  . join('', map { "SELECT ext_notify('d', '$tag" . sprintf('%03d', $_) . "$pad');\n" } 1 .. 100)
		  . "SELECT ext_notify('e', '$tag');\nCOMMIT;\n");
}

my $listener = $standby->background_psql('postgres');
$listener->query("SELECT ext_listen('d'), ext_listen('e'), ext_listen('notify_ext.gap')");
$listener->{stderr} = '';
my $other = $standby->background_psql('postgres');
$other->query("SELECT ext_listen('elsewhere')");
$other->{stderr} = '';

# ----------------------------------------------------- the disk fails
open(my $fh, '>', $flag) or die "cannot create $flag: $!";
close($fh);
big_transaction('lost');
$primary->safe_psql('postgres', "SELECT ext_notify('e', 'after')");
$primary->wait_for_catchup($standby);
pass('replay kept up with the primary while the standby could not write its spill files');
my $out = $listener->query('SELECT 1');
like($listener->{stderr},
	qr/WARNING:  notify_ext: 101 notifications committed on the primary were not delivered to this session because this standby could not queue them/,
	'the standby listener is told how many it lost');
like($out,
	qr/Asynchronous notification "notify_ext.gap" with payload "\{"missed": 101, "channels": \{"d": 100, "e": 1\}, "other_channels": 0, "reason": "not queued on standby"/,
	'... and gets the gap notification, with the count per channel');
is_deeply([ @{ payloads($out, 'd') }, @{ payloads($out, 'e') } ], ['after'],
	'... nothing of the dropped batch, then the next notification');
$other->query('SELECT 1');
is($other->{stderr}, '', 'a listener of other channels is told nothing');
like(slurp_file($standby->logfile),
	qr/WARNING:  notify_ext: a replayed batch of 101 notifications was not queued on this standby: could not (write|create) notify_ext spill file/,
	'the standby logs the batch it dropped, with the disk error');

# ----------------------------------------------------- the disk works again
unlink $flag;
$listener->{stderr} = '';
big_transaction('kept');
$primary->wait_for_catchup($standby);
$out = $listener->query('SELECT 1');
is_deeply(payloads($out, 'd'), [ map { 'kept' . sprintf('%03d', $_) . $pad } 1 .. 100 ],
	'once the disk works, a large transaction reaches the standby listener whole and in order');
is_deeply(payloads($out, 'e'), ['kept'], '... with its last notification on the other channel');
is($listener->{stderr}, '', '... and no gap');

# ------------------- the outcome is written into the spilled batch
# A transaction larger than the standby's ring is written straight to its
# disk tier, PENDING; when its commit record is replayed, the startup
# process writes COMMITTED into the batch's header in the spill file, so
# that readers do not depend on the clog (which may be truncated by the
# time a lagging listener gets there).  A listener parked in a transaction
# keeps the batch on disk meanwhile.
$listener->query_safe('BEGIN');
$listener->query_safe('SELECT 1');
my $pos = $standby->safe_psql('postgres', 'SELECT head_position FROM notify_ext_queue');
big_transaction('settled');
$primary->wait_for_catchup($standby);
my $seg = sprintf('%s/pg_notify_ext/%016X', $standby->data_dir, int($pos / 1048576));
open(my $sf, '<:raw', $seg) or die "cannot open $seg: $!";
seek($sf, $pos % 1048576, 0);
read($sf, my $word, 4) == 4 or die "cannot read the batch header in $seg";
close($sf);
is(unpack('L', $word), 2,
	'the startup process wrote COMMITTED into the header of a spilled replayed batch at its commit');
$out = $listener->query('COMMIT');
$out .= $listener->query('SELECT 1');
is_deeply(payloads($out, 'd'), [ map { 'settled' . sprintf('%03d', $_) . $pad } 1 .. 100 ],
	'... and the listener, once out of its transaction, receives it whole');

$listener->quit;
$other->quit;
unlike(slurp_file($standby->logfile),
	qr/PANIC:|TRAP:|terminated by signal|was terminated by exception/,
	'no crash on the standby');
$standby->stop;
$primary->stop;
done_testing();
