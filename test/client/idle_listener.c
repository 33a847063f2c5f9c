/*
 * idle_listener.c: notify_ext seen by a plain libpq client.
 *
 * Connection A listens on "idle_chan" and then waits idle on its socket
 * with poll(), PQconsumeInput() and PQnotifies(), never sending a query
 * while it waits.  Connection B notifies.  Checked:
 *
 *   idle mode (A idle, not in a transaction)
 *     - an autocommit ext_notify() and a BEGIN/ext_notify/COMMIT each reach
 *       A within 1 s of B's call returning, with channel, payload and
 *       be_pid = B's backend PID; the latency is printed;
 *     - nothing arrives before B commits, nothing for another channel,
 *       nothing from a rolled-back transaction (300 ms waits), and the next
 *       notification A gets afterwards is the one sent next;
 *     - 500 notifications of one transaction all arrive, in order;
 *   transaction mode (A inside a transaction block)
 *     - nothing arrives while A is in the block (300 ms), and everything
 *       is there, in order, as soon as PQgetResult() has returned the
 *       COMMIT's result (before ReadyForQuery, as core does);
 *     - the same for the ROLLBACK of an aborted block (BEGIN; SELECT 1/0).
 *
 * usage: idle_listener [idle|xact|all] [conninfo]
 * The connection comes from conninfo or the PG* environment variables.
 * Prints TAP ("ok N - ...", "not ok N - ...", then "1..N"); exits 1 if
 * anything failed, timed out or did not match.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#define CHANNEL "idle_chan"
#define LIMIT_MS 1000.0			/* delivery deadline after B's call returned */
#define QUIET_MS 300.0			/* how long "nothing arrives" is watched */

static int	ntests = 0;
static int	nfailed = 0;
static int	sender_pid;

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static void
check(int ok, const char *fmt,...)
{
	va_list		ap;

	ntests++;
	if (!ok)
		nfailed++;
	printf("%s %d - ", ok ? "ok" : "not ok", ntests);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

static void
bail(const char *fmt,...)
{
	va_list		ap;

	printf("Bail out! ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	exit(1);
}

static PGconn *
connect_or_die(const char *conninfo, const char *name)
{
	PGconn	   *c = PQconnectdb(conninfo);

	if (PQstatus(c) != CONNECTION_OK)
		bail("connection %s failed: %s", name, PQerrorMessage(c));
	return c;
}

/* run a statement that must succeed (synchronously) */
static void
exec_ok(PGconn *c, const char *name, const char *sql)
{
	PGresult   *r = PQexec(c, sql);
	ExecStatusType st = PQresultStatus(r);

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		bail("%s: \"%s\" failed: %s", name, sql, PQerrorMessage(c));
	PQclear(r);
}

/* Fold the bytes waiting on A's socket into libpq; dies if A broke. */
static void
consume(PGconn *a)
{
	if (!PQconsumeInput(a))
		bail("listener connection broke: %s", PQerrorMessage(a));
}

/*
 * Wait idle, sending nothing, up to ms for one notification on A.
 */
static PGnotify *
wait_notify(PGconn *a, double ms)
{
	double		deadline = now_ms() + ms;

	for (;;)
	{
		PGnotify   *n;
		struct pollfd pfd;
		double		left;

		consume(a);
		if ((n = PQnotifies(a)) != NULL)
			return n;
		left = deadline - now_ms();
		if (left <= 0)
			return NULL;
		pfd.fd = PQsocket(a);
		pfd.events = POLLIN;
		pfd.revents = 0;
		if (poll(&pfd, 1, (int) left + 1) < 0 && errno != EINTR)
			bail("poll: %s", strerror(errno));
	}
}

static void
show(const char *what, PGnotify *n)
{
	printf("#   %s: channel \"%s\", payload \"%s\", PID %d\n",
		   what, n->relname, n->extra, n->be_pid);
}

/* does n carry CHANNEL, payload and B's PID?  Prints what differs. */
static int
matches(PGnotify *n, const char *payload)
{
	int			ok;

	if (n == NULL)
		return 0;
	ok = strcmp(n->relname, CHANNEL) == 0 && strcmp(n->extra, payload) == 0 &&
		n->be_pid == sender_pid;
	if (!ok)
	{
		show("got", n);
		printf("#   want: channel \"%s\", payload \"%s\", PID %d\n",
			   CHANNEL, payload, sender_pid);
	}
	return ok;
}

/*
 * B runs sql (asynchronously) while A waits idle on its socket; both
 * sockets are watched in one poll() loop, so the time A receives is taken
 * when it happens.  Returns what A received within LIMIT_MS of B's call
 * returning (NULL if nothing), with the latencies from B's send and from
 * B's return.
 */
static PGnotify *
notify_and_wait(PGconn *a, PGconn *b, const char *sql,
				double *from_send, double *from_return)
{
	double		t_send = now_ms();
	double		t_done = -1;
	double		t_recv = -1;
	int			b_busy = 1;
	PGnotify   *got = NULL;

	if (!PQsendQuery(b, sql))
		bail("notifier: cannot send \"%s\": %s", sql, PQerrorMessage(b));
	for (;;)
	{
		struct pollfd pfd[2];
		int			nfd = 0;
		double		deadline;
		double		left;

		if (got == NULL)
		{
			consume(a);
			if ((got = PQnotifies(a)) != NULL)
				t_recv = now_ms();
		}
		while (b_busy)
		{
			PGresult   *r;

			if (!PQconsumeInput(b))
				bail("notifier connection broke: %s", PQerrorMessage(b));
			if (PQisBusy(b))
				break;
			r = PQgetResult(b);
			if (r == NULL)
			{
				b_busy = 0;
				t_done = now_ms();
				break;
			}
			if (PQresultStatus(r) != PGRES_COMMAND_OK &&
				PQresultStatus(r) != PGRES_TUPLES_OK)
				bail("notifier: \"%s\" failed: %s", sql, PQresultErrorMessage(r));
			PQclear(r);
		}
		if (!b_busy && got != NULL)
			break;
		deadline = b_busy ? t_send + 10000.0 : t_done + LIMIT_MS;
		left = deadline - now_ms();
		if (left <= 0)
		{
			if (b_busy)
				bail("notifier: \"%s\" did not complete within 10 s", sql);
			break;
		}
		if (got == NULL)
		{
			pfd[nfd].fd = PQsocket(a);
			pfd[nfd].events = POLLIN;
			pfd[nfd].revents = 0;
			nfd++;
		}
		if (b_busy)
		{
			pfd[nfd].fd = PQsocket(b);
			pfd[nfd].events = POLLIN;
			pfd[nfd].revents = 0;
			nfd++;
		}
		if (poll(pfd, nfd, (int) left + 1) < 0 && errno != EINTR)
			bail("poll: %s", strerror(errno));
	}
	*from_send = got ? t_recv - t_send : -1;
	*from_return = got ? t_recv - t_done : -1;
	return got;
}

/* B sends, A idle must get exactly (CHANNEL, payload, B's PID) in time */
static void
expect_delivery(PGconn *a, PGconn *b, const char *sql, const char *payload,
				const char *what)
{
	double		from_send;
	double		from_return;
	PGnotify   *n = notify_and_wait(a, b, sql, &from_send, &from_return);

	if (n == NULL)
	{
		check(0, "%s: nothing received within %.0f ms of the notifier's call returning",
			  what, LIMIT_MS);
		return;
	}
	check(matches(n, payload), "%s", what);
	printf("#   latency: %.3f ms from the notifier sending its statement, "
		   "%.3f ms after its result came back (negative: before)\n",
		   from_send, from_return);
	PQfreemem(n);
}

static void
expect_nothing(PGconn *a, double ms, const char *what)
{
	PGnotify   *n = wait_notify(a, ms);

	check(n == NULL, "%s", what);
	if (n)
	{
		show("unexpected", n);
		PQfreemem(n);
	}
}

static void
idle_mode(PGconn *a, PGconn *b)
{
	PGnotify   *n;

	printf("# idle mode: the listener waits on its socket, sending nothing\n");
	expect_delivery(a, b, "SELECT ext_notify('" CHANNEL "', 'hello')", "hello",
					"idle listener gets an autocommit ext_notify");

	exec_ok(b, "notifier", "BEGIN");
	exec_ok(b, "notifier", "SELECT ext_notify('" CHANNEL "', 'tx')");
	expect_nothing(a, QUIET_MS, "nothing arrives before the notifier commits");
	expect_delivery(a, b, "COMMIT", "tx",
					"idle listener gets a transaction's notify at its COMMIT");

	exec_ok(b, "notifier", "SELECT ext_notify('other_chan', 'not for idle_chan')");
	expect_nothing(a, QUIET_MS, "a notify on another channel is not received");

	exec_ok(b, "notifier", "BEGIN");
	exec_ok(b, "notifier", "SELECT ext_notify('" CHANNEL "', 'rolled back')");
	exec_ok(b, "notifier", "ROLLBACK");
	expect_nothing(a, QUIET_MS, "a rolled-back notify is not received");

	/* the negatives were not merely late: the next one is the next one */
	expect_delivery(a, b, "SELECT ext_notify('" CHANNEL "', 'sentinel')", "sentinel",
					"the next notification received is the next one sent");

	/* a burst of one transaction, idle, complete and in order */
	exec_ok(b, "notifier",
			"SELECT count(ext_notify('" CHANNEL "', 'burst ' || i)) "
			"FROM generate_series(1, 500) AS i");
	{
		int			got = 0;
		int			inorder = 1;

		while (got < 500 && (n = wait_notify(a, LIMIT_MS)) != NULL)
		{
			char		want[32];

			snprintf(want, sizeof(want), "burst %d", got + 1);
			if (inorder && !matches(n, want))
				inorder = 0;
			got++;
			PQfreemem(n);
		}
		check(got == 500 && inorder,
			  "500 notifications of one transaction arrive idle, in order (got %d)", got);
	}
	expect_nothing(a, 200, "nothing more (no duplicates)");
}

/* send sql on A and read its results to the end; returns the last status */
static ExecStatusType
run_to_end(PGconn *a, const char *sql)
{
	PGresult   *r;
	ExecStatusType st = PGRES_EMPTY_QUERY;

	if (!PQsendQuery(a, sql))
		bail("listener: cannot send \"%s\": %s", sql, PQerrorMessage(a));
	while ((r = PQgetResult(a)) != NULL)
	{
		st = PQresultStatus(r);
		PQclear(r);
	}
	return st;
}

static void
xact_mode(PGconn *a, PGconn *b)
{
	PGnotify   *n1;
	PGnotify   *n2;
	PGnotify   *n3;
	ExecStatusType st;

	printf("# transaction mode: the listener is inside a transaction block\n");
	exec_ok(a, "listener", "BEGIN");
	exec_ok(a, "listener", "SELECT 1");
	exec_ok(b, "notifier", "SELECT ext_notify('" CHANNEL "', 'during block 1')");
	exec_ok(b, "notifier", "SELECT ext_notify('" CHANNEL "', 'during block 2')");
	expect_nothing(a, QUIET_MS, "nothing arrives while the listener is in a transaction");
	st = run_to_end(a, "COMMIT");
	/* no PQconsumeInput here: it must have come with the COMMIT's response */
	n1 = PQnotifies(a);
	n2 = n1 ? PQnotifies(a) : NULL;
	n3 = n2 ? PQnotifies(a) : NULL;
	check(st == PGRES_COMMAND_OK && matches(n1, "during block 1") &&
		  matches(n2, "during block 2") && n3 == NULL,
		  "both arrive, in order, with the listener's COMMIT response");
	if (n1 == NULL)
		printf("#   nothing was there when PQgetResult() returned\n");
	if (n3)
		show("unexpected third", n3);
	PQfreemem(n1);
	PQfreemem(n2);
	PQfreemem(n3);

	exec_ok(a, "listener", "BEGIN");
	st = run_to_end(a, "SELECT 1/0");
	check(st == PGRES_FATAL_ERROR, "the listener's block is aborted by an error");
	exec_ok(b, "notifier", "SELECT ext_notify('" CHANNEL "', 'during aborted block')");
	expect_nothing(a, QUIET_MS, "nothing arrives while the block is aborted");
	st = run_to_end(a, "ROLLBACK");
	n1 = PQnotifies(a);
	check(st == PGRES_COMMAND_OK && matches(n1, "during aborted block"),
		  "it arrives with the ROLLBACK response of the aborted block");
	if (n1 == NULL)
		printf("#   nothing was there when PQgetResult() returned\n");
	PQfreemem(n1);

	/* idle again afterwards */
	expect_delivery(a, b, "SELECT ext_notify('" CHANNEL "', 'idle again')", "idle again",
					"after the block, idle delivery works again");
	expect_nothing(a, 200, "nothing more (no duplicates)");
}

int
main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "all";
	const char *conninfo = argc > 2 ? argv[2] : "";
	PGconn	   *a;
	PGconn	   *b;

	if (strcmp(mode, "all") != 0 && strcmp(mode, "idle") != 0 && strcmp(mode, "xact") != 0)
	{
		fprintf(stderr, "usage: %s [idle|xact|all] [conninfo]\n", argv[0]);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	a = connect_or_die(conninfo, "A (listener)");
	b = connect_or_die(conninfo, "B (notifier)");
	sender_pid = PQbackendPID(b);
	printf("# listener PID %d, notifier PID %d\n", PQbackendPID(a), sender_pid);

	exec_ok(a, "listener", "SELECT ext_listen('" CHANNEL "')");

	if (strcmp(mode, "idle") == 0 || strcmp(mode, "all") == 0)
		idle_mode(a, b);
	if (strcmp(mode, "xact") == 0 || strcmp(mode, "all") == 0)
		xact_mode(a, b);

	PQfinish(a);
	PQfinish(b);
	printf("1..%d\n", ntests);
	printf("# idle_listener: %d passed, %d failed\n", ntests - nfailed, nfailed);
	return nfailed ? 1 : 0;
}
