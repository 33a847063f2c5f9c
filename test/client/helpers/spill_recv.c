/*
 * spill_recv.c: a fast libpq listener for test/client/test_spill.py (and
 * nothing else).  It lives in test/client/helpers/ so that the client suite
 * does not build and run it as a test of its own: test_spill.py compiles
 * it into a temporary directory.
 *
 * usage: spill_recv -c CHANNEL [-d CONNINFO] [-n COUNT] [-k trigger|prefix]
 *                   [-s FIRST] [-o OUTFILE] [-w SECONDS] [-q SECONDS]
 *
 * Connects (conninfo or the PG* environment variables), runs
 * SELECT ext_listen(CHANNEL), ext_listen('notify_ext.gap'), prints
 * "ready <backend pid>" on stdout and then waits idle on its socket (poll,
 * PQconsumeInput, PQnotifies; it never sends a query) until it has COUNT
 * notifications on CHANNEL, or -q SECONDS pass without any (default 20),
 * or -w SECONDS in all (default 300).  Then it prints key=value lines:
 *
 *   received=N          notifications on CHANNEL
 *   in_order=0|1        (-k trigger) the k-th notification's "record" has
 *                       "v": FIRST + k, for every k (FIRST: -s, default 1),
 *                       i.e. exactly the trigger's rows, in firing order
 *   first_bad=...       the first notification that broke it
 *   sender_pid=P        the first notification's sender, other_senders=N
 *                       notifications from any other PID
 *   gap_notifications=N notify_ext.gap notifications, gap_notices=N
 *                       WARNINGs with SQLSTATE 01N01, other_notices=N
 *   first_s / last_s    seconds from "ready" to the first / last receipt
 *   timed_out=0|1, lost=0|1 (the connection broke)
 *
 * -k prefix: each payload up to its first '|' (at most 200 bytes) is
 * written to OUTFILE, one a line, as "<channel>\t<pid>\t<prefix>"; the
 * caller checks the sequence.  Exit status 0 unless something failed to
 * run (the checks are the caller's).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

static long gap_notices = 0;
static long other_notices = 0;

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
on_notice(void *arg, const PGresult *res)
{
	const char *ss = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	(void) arg;
	if (ss != NULL && strcmp(ss, "01N01") == 0)
		gap_notices++;
	else
		other_notices++;
}

static void
die(const char *what, PGconn *conn)
{
	fprintf(stderr, "spill_recv: %s: %s\n", what,
			conn ? PQerrorMessage(conn) : strerror(errno));
	exit(2);
}

/* the "v" of the payload's "record" object, or -1 */
static long long
record_v(const char *payload)
{
	const char *r = strstr(payload, "\"record\": {");
	const char *v;
	const char *end;

	if (r == NULL)
		return -1;
	end = strchr(r, '}');
	v = strstr(r, "\"v\":");
	if (v == NULL || (end != NULL && v > end))
		return -1;
	return strtoll(v + 4, NULL, 10);
}

int
main(int argc, char **argv)
{
	const char *conninfo = "";
	const char *channel = NULL;
	const char *kind = "prefix";
	const char *outfile = NULL;
	long		count = -1;
	long long	first = 1;
	double		total_s = 300,
				quiet_s = 20;
	PGconn	   *conn;
	PGresult   *res;
	char	   *lit;
	char		sql[512];
	FILE	   *out = NULL;
	long		received = 0,
				gapn = 0;
	int			in_order = 1,
				timed_out = 0,
				lost = 0,
				opt;
	char		first_bad[256] = "";
	int			sender = 0;
	long		other_senders = 0;
	double		t0,
				tfirst = -1,
				tlast = -1,
				tprogress;

	while ((opt = getopt(argc, argv, "d:c:n:k:s:o:w:q:")) != -1)
	{
		switch (opt)
		{
			case 'd': conninfo = optarg; break;
			case 'c': channel = optarg; break;
			case 'n': count = atol(optarg); break;
			case 'k': kind = optarg; break;
			case 's': first = atoll(optarg); break;
			case 'o': outfile = optarg; break;
			case 'w': total_s = atof(optarg); break;
			case 'q': quiet_s = atof(optarg); break;
			default:
				fprintf(stderr, "spill_recv: bad option\n");
				return 2;
		}
	}
	if (channel == NULL)
	{
		fprintf(stderr, "spill_recv: -c CHANNEL is required\n");
		return 2;
	}
	if (outfile != NULL && (out = fopen(outfile, "w")) == NULL)
		die(outfile, NULL);

	conn = PQconnectdb(conninfo);
	if (PQstatus(conn) != CONNECTION_OK)
		die("connect", conn);
	PQsetNoticeReceiver(conn, on_notice, NULL);
	lit = PQescapeLiteral(conn, channel, strlen(channel));
	snprintf(sql, sizeof(sql), "SELECT ext_listen(%s), ext_listen('notify_ext.gap')", lit);
	PQfreemem(lit);
	res = PQexec(conn, sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		die("listen", conn);
	PQclear(res);
	if (PQsetnonblocking(conn, 1) != 0)
		die("setnonblocking", conn);
	printf("ready %d\n", PQbackendPID(conn));
	fflush(stdout);

	t0 = tprogress = now_s();
	while (count < 0 || received < count)
	{
		struct pollfd pfd = {.fd = PQsocket(conn),.events = POLLIN};
		PGnotify   *nt;
		double		t = now_s();
		int			rc;

		if (t - t0 > total_s || t - tprogress > quiet_s)
		{
			timed_out = count >= 0;
			break;
		}
		rc = poll(&pfd, 1, 100);
		if (rc < 0 && errno != EINTR)
			die("poll", NULL);
		if (rc <= 0)
			continue;
		if (!PQconsumeInput(conn))
		{
			fprintf(stderr, "spill_recv: connection lost: %s", PQerrorMessage(conn));
			lost = 1;
			break;
		}
		while ((nt = PQnotifies(conn)) != NULL)
		{
			t = now_s();
			tprogress = t;
			if (strcmp(nt->relname, "notify_ext.gap") == 0)
			{
				gapn++;
				PQfreemem(nt);
				continue;
			}
			if (strcmp(nt->relname, channel) != 0)
			{
				if (in_order && first_bad[0] == '\0')
					snprintf(first_bad, sizeof(first_bad), "channel %s", nt->relname);
				in_order = 0;
				PQfreemem(nt);
				continue;
			}
			if (tfirst < 0)
				tfirst = t;
			tlast = t;
			if (sender == 0)
				sender = nt->be_pid;
			else if (nt->be_pid != sender)
				other_senders++;
			if (strcmp(kind, "trigger") == 0)
			{
				long long	v = record_v(nt->extra);

				if (in_order && v != first + received)
				{
					in_order = 0;
					snprintf(first_bad, sizeof(first_bad),
							 "notification %ld has v=%lld, expected %lld: %.120s",
							 received + 1, v, first + received, nt->extra);
				}
			}
			else if (out != NULL)
			{
				const char *bar = strchr(nt->extra, '|');
				int			len = bar ? (int) (bar - nt->extra) : (int) strlen(nt->extra);

				if (len > 200)
					len = 200;
				fprintf(out, "%s\t%d\t%.*s\n", nt->relname, nt->be_pid, len, nt->extra);
			}
			received++;
			PQfreemem(nt);
		}
	}
	if (out != NULL && fclose(out) != 0)
		die(outfile, NULL);

	printf("received=%ld\n", received);
	printf("in_order=%d\n", in_order);
	printf("first_bad=%s\n", first_bad);
	printf("sender_pid=%d\n", sender);
	printf("other_senders=%ld\n", other_senders);
	printf("gap_notifications=%ld\n", gapn);
	printf("gap_notices=%ld\n", gap_notices);
	printf("other_notices=%ld\n", other_notices);
	printf("first_s=%.3f\n", tfirst < 0 ? -1.0 : tfirst - t0);
	printf("last_s=%.3f\n", tlast < 0 ? -1.0 : tlast - t0);
	printf("timed_out=%d\n", timed_out);
	printf("lost=%d\n", lost);
	fflush(stdout);
	PQfinish(conn);
	return 0;
}
