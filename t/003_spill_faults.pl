# Copyright (c) notify_ext contributors; see LICENSE
#
# t/003_spill_faults.pl: the disk tier when the disk fails, and a commit
# stalled with its batch PENDING while the queue spills past it.
#
# One server whose processes run with t/fault_shim.c preloaded (LD_PRELOAD):
# while a flag file exists, writes to files under pg_notify_ext/ fail with
# ENOSPC, and with "eio" in the flag, reads fail with EIO.  The ring is
# 64kB, so a listener parked in a transaction makes the queue spill at once.
#   - ENOSPC while spilling: the notifying commit fails cleanly (SQLSTATE
#     53100, before commit), nothing queued is damaged, the next commits
#     work once the disk has room, and the parked listener gets everything
#     committed, in order, and nothing of the failed transaction.
#   - EIO while a listener reads spilled data: the listener is told (a
#     WARNING with SQLSTATE 01N01 and a notification on notify_ext.gap with
#     "reason": "read error"), the server logs it, the connection goes on
#     and receives what is sent afterwards.
#   - A commit waiting for a synchronous standby that does not exist keeps
#     its batch PENDING; the queue spills past it (its state moves to its
#     slot), other listeners wait for it, and once the wait is cancelled its
#     notification arrives first, then the others, in order.
#
# Run with "make installcheck" (PGXS prove_installcheck) or scripts/test.sh tap.

use strict;
use warnings;

use File::Basename qw(dirname);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# ------------------------------------------------------------- the shim
my $shim = "$PostgreSQL::Test::Utils::tmp_check/fault_shim.so";
my $src  = dirname(__FILE__) . '/fault_shim.c';
my ($stdout, $stderr);
my $built = IPC::Run::run [ 'cc', '-shared', '-fPIC', '-O2', '-o', $shim, $src, '-ldl' ],
  '>', \$stdout, '2>', \$stderr;
ok($built, 'built the fault shim') or diag($stderr);
my $flag = "$PostgreSQL::Test::Utils::tmp_check/fault_flag";
unlink $flag;

# BackgroundPsql notes every query's output: here that is hundreds of
# 2kB notifications per query, which would bury the results
{
	no warnings 'redefine';
	*PostgreSQL::Test::BackgroundPsql::note = sub { };
}

# ------------------------------------------------------------------ setup
my $node = PostgreSQL::Test::Cluster->new('faults');
# (allows_streaming: with max_wal_senders = 0 a commit never waits for a
# synchronous standby)
$node->init(allows_streaming => 1);
$node->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = 'notify_ext'
notify_ext.queue_size = 64kB
});
{
	local $ENV{LD_PRELOAD}    = $shim;
	local $ENV{NE_FAULT_FLAG} = $flag;
	$node->start;
}
$node->safe_psql('postgres',
	'CREATE EXTENSION notify_ext; CREATE TABLE t (x int)');
my $datadir = $node->data_dir;

sub queue
{
	return $node->safe_psql('postgres',
		'SELECT used_bytes, disk_bytes, spill_read_errors FROM notify_ext_queue');
}

sub payload
{
	my ($i) = @_;
	return sprintf('%06d:', $i) . ('x' x 2000);
}

# notify one payload per transaction, from $from to $to
sub notify_range
{
	my ($from, $to) = @_;
	my $sql = join '',
	  map { "SELECT ext_notify('c', '" . payload($_) . "');\n" } $from .. $to;
	$node->safe_psql('postgres', $sql);
}

# the payload numbers in psql's "Asynchronous notification" lines
sub received
{
	my ($out) = @_;
	return [ $out =~ /Asynchronous notification "c" with payload "(\d{6}):x+"/g ];
}

# ------------------------------------------------------- ENOSPC on spill
my $parked = $node->background_psql('postgres');
$parked->query_safe("SELECT ext_listen('c')");
$parked->query_safe('BEGIN');
$parked->query_safe('SELECT 1');

notify_range(1, 100);    # 200kB: most of it spilled
my ($used, $disk) = split /\|/, queue();
cmp_ok($disk, '>', 0, "the queue spilled to disk ($disk of $used bytes)");

# the disk is "full": a notifying commit that needs room fails before commit
{
	open my $fh, '>', $flag or die;
	close $fh;
}
my ($rc, $out, $err) = $node->psql(
	'postgres',
	"\\set VERBOSITY verbose\nBEGIN; INSERT INTO t VALUES (1);\n"
	  . join('', map { "SELECT ext_notify('c', '" . payload($_) . "');\n" } 900 .. 950)
	  . "COMMIT;",
	on_error_stop => 1);
isnt($rc, 0, 'a commit that needs to spill fails while the disk is full');
like($err, qr/ERROR:\s+53100: could not write notify_ext spill file .*No space left on device/,
	'with SQLSTATE 53100 and the file in the message');
is($node->safe_psql('postgres', 'SELECT count(*) FROM t'),
	'0', 'the failed transaction did not commit');
my ($used2, $disk2) = split /\|/, queue();
is($used2, $used, 'nothing was queued by the failed commit');

# a commit that fits in the ring's free part still works meanwhile? The ring
# is full (parked listener): any notify needs room, so it fails too; plain
# work is untouched
is($node->safe_psql('postgres', 'INSERT INTO t VALUES (2); SELECT count(*) FROM t'),
	'1', 'transactions without notifications are unaffected');

unlink $flag;
notify_range(101, 150);
pass('notifying commits work again once the disk has room');

my $got = received($parked->query_safe('COMMIT'));
$got = [ @$got, @{ received($parked->query_safe('SELECT 1')) } ];
is(scalar(@$got), 150, 'the parked listener receives all 150 committed notifications');
is_deeply($got, [ map { sprintf('%06d', $_) } 1 .. 150 ],
	'in order, and none of the failed transaction');

# ------------------------------------------------------- EIO on read
$parked->query_safe("SELECT ext_listen('notify_ext.gap')");
$parked->query_safe('BEGIN');
$parked->query_safe('SELECT 1');
notify_range(201, 300);
($used, $disk) = split /\|/, queue();
cmp_ok($disk, '>', 0, 'spilled again');
{
	open my $fh, '>', $flag or die;
	print $fh "eio\n";
	close $fh;
}
my $log_offset = -s $node->logfile;
$out = $parked->query('COMMIT');
$out .= $parked->query('SELECT 1');
unlink $flag;
like($parked->{stderr}, qr/WARNING:.*notify_ext: notifications for this session were lost: the part of the NOTIFY queue spilled to disk could not be read/,
	'the listener gets a WARNING that spilled notifications could not be read');
$parked->{stderr} = '';
like($out, qr/Asynchronous notification "notify_ext.gap" with payload "\{"missed": null.*"reason": "read error"/,
	'and a notification on notify_ext.gap with reason "read error"');
ok($node->log_contains(qr/notify_ext: notifications spilled to disk could not be read: could not read file "pg_notify_ext\/[0-9A-F]+": Input\/output error/, $log_offset),
	'the server log says which file could not be read and why');
my @after = @{ received($out) };
cmp_ok(scalar(@after), '<', 100, 'what could not be read was not delivered (' . scalar(@after) . ' of 100 were, from the ring)');
is($node->safe_psql('postgres', 'SELECT spill_read_errors FROM notify_ext_queue'),
	'1', 'notify_ext_queue counts the read error');

notify_range(301, 305);
$got = received($parked->query_safe('SELECT 1'));
is_deeply($got, [ map { sprintf('%06d', $_) } 301 .. 305 ],
	'the connection goes on and receives what is sent afterwards');

# --------------------------------- a PENDING batch spilled (sync rep stall)
$node->safe_psql('postgres',
	"ALTER SYSTEM SET synchronous_standby_names = 'nobody'");
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
$node->poll_query_until('postgres',
	"SELECT current_setting('synchronous_standby_names') = 'nobody'")
  or die 'synchronous_standby_names was not reloaded';
my $active = $node->background_psql('postgres');
$active->query_safe("SELECT ext_listen('c')");

my $stalled = $node->background_psql('postgres');
$stalled->query_safe('SET synchronous_commit = on');
my $stalled_pid = $stalled->query_safe('SELECT pg_backend_pid()');
$stalled->query_safe('BEGIN');
$stalled->query_safe('INSERT INTO t VALUES (3)');
$stalled->query_safe("SELECT ext_notify('c', '" . payload(400) . "')");
# COMMIT waits for the missing synchronous standby, its batch PENDING
$stalled->query_until(qr/committing/, "\\echo committing\nCOMMIT;\n");
$node->poll_query_until('postgres',
	"SELECT wait_event = 'SyncRep' FROM pg_stat_activity WHERE pid = $stalled_pid")
  or die 'the commit does not wait for the synchronous standby';

$node->safe_psql('postgres', join '',
	map { "SET synchronous_commit = local; SELECT ext_notify('c', '" . payload($_) . "');\n" } 401 .. 500);
($used, $disk) = split /\|/, queue();
cmp_ok($disk, '>', 100 * 2000 - 65536,
	"the queue spilled past the PENDING batch ($disk bytes on disk)");
$got = received($active->query_safe('SELECT 1'));
is(scalar(@$got), 0, 'a listener receives nothing while the oldest batch is PENDING');

$node->safe_psql('postgres', "SELECT pg_cancel_backend($stalled_pid)");
# idle: its COMMIT, commit callbacks included, is over
$node->poll_query_until('postgres',
	"SELECT state = 'idle' FROM pg_stat_activity WHERE pid = $stalled_pid")
  or die 'the stalled commit did not end';
$got = received($active->query_safe('SELECT 1'));
is(scalar(@$got), 101, 'once the commit is through, all 101 arrive');
is_deeply($got, [ map { sprintf('%06d', $_) } 400 .. 500 ],
	'the stalled transaction first, then the others, in order');

$node->safe_psql('postgres', 'ALTER SYSTEM RESET synchronous_standby_names');
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
$stalled->quit;
$active->quit;
$parked->quit;

# everything read: the files are gone but the one the tail is in
$node->poll_query_until('postgres',
	"SELECT disk_bytes = 0 FROM notify_ext_queue");
cmp_ok(scalar(grep { !/^\./ } do { opendir my $d, "$datadir/pg_notify_ext" or die; readdir $d }),
	'<=', 1, 'spill files are removed once read');

$node->stop;
done_testing();
