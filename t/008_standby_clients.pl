# Copyright (c) notify_ext contributors; see LICENSE
#
# t/008_standby_clients.pl: real client libraries listening on a hot
# standby, in drop-in mode, as unmodified applications would.
#
# A primary (notify_ext.wal_log = on) and a streaming hot standby, both
# preloading notify_ext.
#   - psycopg 3 (test/client/standby/standby_psycopg.py): drop-in mode from
#     the connection string (options='-c notify_ext.intercept=on') on both
#     servers; a plain LISTEN on the standby, then psycopg's blocking
#     notifies() generator, idle; pg_notify() and NOTIFY on the primary
#     arrive in order with the primary backend's PID, non-ASCII and empty
#     payloads intact, nothing of aborted or failed transactions or other
#     channels, and the listener sent no query meanwhile.
#   - Go lib/pq (test/golang/standby/main.go): drop-in mode from ALTER
#     DATABASE ... SET on the primary (replicated); a pq.Listener on the
#     standby receives pg_notify() and NOTIFY from the primary in order with
#     the right PID, before and after a pause, and again after its standby
#     backend is terminated and lib/pq reconnects by itself.
# Each client prints TAP; each of its lines becomes one here ("psycopg:
# ...", "Go lib/pq: ..."), so a failure names the step.  A client whose
# language is missing (no psycopg for NE_PYTHON, default /usr/bin/python3;
# no go, or no lib/pq in /usr/share/gocode) is skipped with the reason
# (scripts/test.sh installs both).  No delivery time is asserted.
#
# The clients are found in NE_SRCDIR/test/... (scripts/test.sh copies them
# next to t/), else in the checkout this file is in.
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
my $pyclient = "$srcdir/test/client/standby/standby_psycopg.py";
my $godir    = "$srcdir/test/golang/standby";
my $gopath   = '/usr/share/gocode';

my $primary = PostgreSQL::Test::Cluster->new('clients_primary');
$primary->init(allows_streaming => 1);
$primary->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = 'notify_ext'
notify_ext.wal_log = on
});
$primary->start;
$primary->safe_psql('postgres', 'CREATE EXTENSION notify_ext');
# the Go application's database: drop-in mode for every session of it
$primary->safe_psql('postgres', 'CREATE DATABASE goapp');
$primary->safe_psql('goapp', 'CREATE EXTENSION notify_ext');
$primary->safe_psql('postgres', 'ALTER DATABASE goapp SET notify_ext.intercept = on');
$primary->backup('base');

my $standby = PostgreSQL::Test::Cluster->new('clients_standby');
$standby->init_from_backup($primary, 'base', has_streaming => 1);
$standby->append_conf('postgresql.conf',
	"shared_preload_libraries = 'notify_ext'");
$standby->start;
$primary->wait_for_catchup($standby);

my $user = getpwuid($<);

# run a client printing TAP; each of its "ok"/"not ok" lines becomes one
# test here, prefixed with LABEL, plus one for its exit status
sub client_tap
{
	my ($label, $cmd, %env) = @_;
	local %ENV = (%ENV, %env);
	my $out = '';
	note "running: @$cmd";
	eval {
		IPC::Run::run($cmd, '<', \undef, '>&', \$out, IPC::Run::timeout(240));
	};
	my $rc = $@ ? "timed out or failed to run: $@" : $? >> 8;
	my $n = 0;
	for my $line (split /\n/, $out)
	{
		if ($line =~ /^(not )?ok\b\s*\d*\s*-?\s*(.*)$/)
		{
			ok(!defined $1, "$label: $2");
			$n++;
		}
		elsif ($line =~ /^Bail out!\s*(.*)$/)
		{
			fail("$label: bailed out: $1");
			$n++;
		}
		elsif ($line =~ /^#/)
		{
			note($line);
		}
	}
	ok($rc eq '0' && $n > 0, "$label: the client ran $n checks and exited 0")
	  or diag("exit status $rc; its output:\n$out");
}

# --------------------------------------------------------------- psycopg
SKIP:
{
	skip "$python cannot import psycopg (apt-get install python3-psycopg)", 1
	  unless system($python, '-c', 'import psycopg') == 0;
	skip "no $pyclient (set NE_SRCDIR to the notify_ext checkout)", 1
	  unless -r $pyclient;
	client_tap(
		'psycopg', [ $python, $pyclient ],
		PGHOST          => $primary->host,
		PGPORT          => $primary->port,
		PGUSER          => $user,
		PGDATABASE      => 'postgres',
		NE_STANDBY_HOST => $standby->host,
		NE_STANDBY_PORT => $standby->port);
}

# ------------------------------------------------------------ Go lib/pq
SKIP:
{
	my $go = (grep { -x "$_/go" } split /:/, $ENV{PATH})[0];
	skip 'no go in PATH (apt-get install golang-go)', 1 unless $go;
	skip "no lib/pq in $gopath (apt-get install golang-github-lib-pq-dev)", 1
	  unless -d "$gopath/src/github.com/lib/pq";
	skip "no $godir/main.go (set NE_SRCDIR to the notify_ext checkout)", 1
	  unless -r "$godir/main.go";
	my $dsn = sub {
		my ($node) = @_;
		return sprintf('host=%s port=%d user=%s dbname=goapp sslmode=disable',
			$node->host, $node->port, $user);
	};
	my $gocache = $ENV{GOCACHE} // "$PostgreSQL::Test::Utils::tmp_check/gocache";
	client_tap(
		'Go lib/pq',
		[ 'sh', '-c', 'cd "$1" && exec go run main.go', 'sh', $godir ],
		GOPATH         => $gopath,
		GO111MODULE    => 'off',
		GOCACHE        => $gocache,
		HOME           => $PostgreSQL::Test::Utils::tmp_check,
		NE_PRIMARY_DSN => $dsn->($primary),
		NE_STANDBY_DSN => $dsn->($standby));
}

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
