# Copyright (c) notify_ext contributors; see LICENSE
#
# t/002_spill_restart.pl: the spill files of the tiered queue (issue 8)
# across a restart and a crash restart.
#
# One cluster with notify_ext.queue_size = 1MB (the smallest ring, so it
# spills after a megabyte) and the default notify_ext.queue_disk_limit.
# Three rounds, each with a listener parked in a transaction while 4 MB of
# notifications are committed (so that they go to $PGDATA/pg_notify_ext/):
#
#   1. a restart (fast shutdown): afterwards pg_notify_ext/ is empty, and
#      LISTEN/NOTIFY works; a new listener on the same channel gets only
#      what is sent after the restart;
#   2. an immediate shutdown (the files are left behind), plus a stale
#      file planted while the server is down, then a start: the start
#      removes them all;
#   3. kill -9 of a backend (crash restart of the whole cluster): the
#      server comes back, pg_notify_ext/ has no stale file, a new listener
#      gets only new notifications, and a spill after the crash is
#      delivered whole and in order.
#
# Run with "make installcheck" (PGXS prove_installcheck) or scripts/test.sh tap.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $node = PostgreSQL::Test::Cluster->new('spill');
$node->init;
$node->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = 'notify_ext'
notify_ext.queue_size = 1MB
restart_after_crash = on
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION notify_ext');

my $spilldir = $node->data_dir . '/pg_notify_ext';
my $tmp      = PostgreSQL::Test::Utils::tempdir;
my $NB       = 10;     # batches of
my $PER      = 100;    # notifications of
my $SIZE     = 4000;   # bytes: 4 MB, four times the ring

# the files in pg_notify_ext/ (none if it does not exist)
sub spill_files
{
	opendir(my $dh, $spilldir) or return ();
	my @f = sort grep { !/^\.\.?$/ } readdir($dh);
	closedir($dh);
	return @f;
}

sub queue_col
{
	my ($col) = @_;
	return $node->safe_psql('postgres', "SELECT $col FROM notify_ext_queue");
}

# a listener on CHANNEL in a background psql whose query output (and so
# the notifications psql prints) goes to a file of its own
my $nlisteners = 0;

sub listener
{
	my ($channel) = @_;
	my $file = "$tmp/listener" . (++$nlisteners) . '.out';
	my $s    = $node->background_psql('postgres', on_error_stop => 0);
	$s->query_safe("\\o $file");
	$s->query_safe("SELECT ext_listen('$channel')");
	return { s => $s, file => $file, pid => $s->query_safe('SELECT pg_backend_pid()') };
}

# the notifications a listener has printed so far: [channel, payload, pid]
sub notifications
{
	my ($l) = @_;
	my @n;
	open(my $fh, '<', $l->{file}) or return ();
	while (my $line = <$fh>)
	{
		push @n, [ $1, $2, $3 ]
		  if $line =~
		  /^Asynchronous notification "([^"]*)" with payload "([^"]*)" received from server process with PID (\d+)\.$/;
	}
	close($fh);
	return @n;
}

# run queries in the listener until it has printed WANT notifications (or
# 60 s pass): psql prints what arrived at each command's end
sub collect
{
	my ($l, $want) = @_;
	my @n;
	for my $i (1 .. 600)
	{
		@n = notifications($l);
		last if @n >= $want;
		$l->{s}->query('SELECT 1');
		usleep(100_000) if $i > 1;
	}
	return @n;
}

# commit NB batches of PER notifications "b:i:xxx..." on CHANNEL
sub send_batches
{
	my ($channel) = @_;
	my $sql = '';
	for my $b (1 .. $NB)
	{
		$sql .=
		  "SELECT count(ext_notify('$channel', '$b:' || i || ':' || repeat('x', $SIZE))) FROM generate_series(1, $PER) i;\n";
	}
	$node->safe_psql('postgres', $sql);
	return map {
		my $b = $_;
		map { "$b:$_" } 1 .. $PER
	} 1 .. $NB;
}

sub keys_of
{
	return map { $_->[1] =~ /^(\d+:\d+):/ ? $1 : $_->[1] } @_;
}

# a parked listener on CHANNEL and 4 MB for it: the queue spills
sub spill
{
	my ($channel, $what) = @_;
	my $l = listener($channel);
	$l->{s}->query_safe('BEGIN');
	$l->{s}->query_safe('SELECT 1');
	my @sent = send_batches($channel);
	my @files = spill_files();
	ok(@files > 0, "$what: 4 MB for a parked listener: files in pg_notify_ext/ (" . scalar(@files) . ")");
	cmp_ok(queue_col('disk_bytes'), '>', 0, "$what: notify_ext_queue.disk_bytes > 0");
	return ($l, \@sent);
}

# a new listener on CHANNEL gets only what is sent after it listens
sub fresh_listener
{
	my ($channel, $what) = @_;
	my $l = listener($channel);
	$node->safe_psql('postgres',
		"SELECT ext_notify('$channel', 'new 1'); SELECT ext_notify('$channel', 'new 2')");
	# anything older would come first, in queue order
	my @n = collect($l, 2);
	is_deeply([ map { $_->[1] } @n ], [ 'new 1', 'new 2' ],
		"$what: a new listener on $channel gets only the new notifications");
	$l->{s}->quit;
	return;
}

sub quit_quietly
{
	my ($l) = @_;
	eval { $l->{s}->quit; };
	return;
}

# --------------------------------------------------- 1. restart (fast)
my ($l1, $sent1) = spill('r1', 'restart');
$node->restart;
quit_quietly($l1);
is_deeply([ spill_files() ], [], 'restart: pg_notify_ext/ is empty afterwards');
is(queue_col('disk_bytes || \' \' || used_bytes'), '0 0', 'restart: disk_bytes and used_bytes are 0');
fresh_listener('r1', 'restart');

# ------------------------------------- 2. immediate shutdown, then start
my ($l2, $sent2) = spill('r2', 'immediate stop');
$node->stop('immediate');
quit_quietly($l2);
my @left = spill_files();
ok(@left > 0, 'immediate stop: the spill files are left behind (' . scalar(@left) . ')');
mkdir($spilldir);
open(my $fh, '>', "$spilldir/stale_planted") or die "planting a file: $!";
print $fh 'x' x 8192;
close($fh);
$node->start;
is_deeply([ spill_files() ], [], 'start: every file in pg_notify_ext/ is removed, a planted one too');
fresh_listener('r2', 'after the immediate stop');

# ------------------------------------------------ 3. crash restart
my ($l3, $sent3) = spill('r3', 'crash');
my @before = spill_files();
my $victim = $node->background_psql('postgres', on_error_stop => 0);
my $vpid   = $victim->query_safe('SELECT pg_backend_pid()');
my $logpos = -s $node->logfile;
ok(kill('KILL', $vpid), "crash: kill -9 of backend $vpid");
# the postmaster ends every process and reinitializes shared memory (where
# the spill files are removed); then it accepts connections again
$logpos = $node->wait_for_log(
	qr/server process \(PID $vpid\) was terminated by signal 9.*all server processes terminated; reinitializing/s,
	$logpos);
ok($logpos > 0, 'crash: the postmaster restarted the cluster after the kill');
$node->poll_query_until('postgres', 'SELECT 1', '1')
  or die 'the server did not come back after the crash';
quit_quietly($victim);
quit_quietly($l3);
my @after = spill_files();
my %old = map { $_ => 1 } @before;
is_deeply([ grep { $old{$_} } @after ], [], 'crash: none of the files of before the crash is left');
is_deeply(\@after, [], 'crash: pg_notify_ext/ is empty');
is(queue_col('disk_bytes || \' \' || used_bytes'), '0 0', 'crash: disk_bytes and used_bytes are 0');
fresh_listener('r3', 'after the crash');

# a spill after the crash restart is delivered whole and in order
my ($l4, $sent4) = spill('r3', 'after the crash, spill again');
$l4->{s}->query_safe('COMMIT');
my @got = collect($l4, scalar(@$sent4));
my @k = keys_of(@got);
is(scalar(@k), scalar(@$sent4), 'after the crash: the parked listener receives all ' . scalar(@$sent4));
is_deeply(\@k, $sent4, '... in order, each once');
is(scalar(grep { $_->[1] =~ /^\d+:\d+:x{$SIZE}$/ } @got),
	scalar(@got), '... with whole payloads');
$l4->{s}->quit;
$node->poll_query_until('postgres',
	"SELECT used_bytes = 0 AND disk_bytes = 0 FROM notify_ext_queue")
  or diag('the queue did not empty');
# (the file of the segment the tail is in stays until the queue moves past it)
for (1 .. 100)
{
	last if spill_files() <= 1;
	usleep(100_000);
}
cmp_ok(scalar(spill_files()), '<=', 1,
	'after the crash: the spill files are removed once read (but the one the tail is in)');

$node->stop;
done_testing();
