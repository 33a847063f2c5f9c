/*
 * idle_listener.c: a libpq client that listens and then waits idle on its
 * socket, sending nothing; another connection notifies.  Each notification
 * must arrive within 1 s with the right channel, payload and sender PID.
 * Also: nothing arrives for another channel or from a rolled-back
 * transaction, and a listener inside a transaction block receives only when
 * its COMMIT / ROLLBACK (also of an aborted block) completes.
 *
 * Connection from the PG* environment variables.  Exit 1 on any failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <time.h>

#include <libpq-fe.h>

static int	failures = 0;
static int	passed = 0;

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static void
check(int ok, const char *what)
{
	printf("%s - %s\n", ok ? "ok" : "not ok", what);
	if (ok)
		passed++;
	else
		failures++;
}

static void
exec_ok(PGconn *c, const char *sql)
{
	PGresult   *r = PQexec(c, sql);

	if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
	{
		fprintf(stderr, "query failed: %s: %s", sql, PQerrorMessage(c));
		exit(1);
	}
	PQclear(r);
}

/* wait idle (no query sent) up to timeout_ms for one notification */
static PGnotify *
wait_notify(PGconn *c, double timeout_ms)
{
	double		deadline = now_ms() + timeout_ms;

	for (;;)
	{
		PGnotify   *n;
		double		left;
		fd_set		fds;
		struct timeval tv;
		int			sock = PQsocket(c);

		PQconsumeInput(c);
		if ((n = PQnotifies(c)) != NULL)
			return n;
		left = deadline - now_ms();
		if (left <= 0)
			return NULL;
		FD_ZERO(&fds);
		FD_SET(sock, &fds);
		tv.tv_sec = (long) (left / 1000);
		tv.tv_usec = (long) ((left - tv.tv_sec * 1000.0) * 1000);
		if (select(sock + 1, &fds, NULL, NULL, &tv) < 0)
			return NULL;
	}
}

static void
expect(PGconn *l, int sender_pid, const char *payload, const char *what)
{
	double		t0 = now_ms();
	PGnotify   *n = wait_notify(l, 1000);
	char		msg[256];

	if (n == NULL)
	{
		snprintf(msg, sizeof(msg), "%s: no notification within 1 s", what);
		check(0, msg);
		return;
	}
	snprintf(msg, sizeof(msg), "%s (%.3f ms)", what, now_ms() - t0);
	check(strcmp(n->relname, "idle_chan") == 0 && strcmp(n->extra, payload) == 0 &&
		  n->be_pid == sender_pid, msg);
	if (strcmp(n->extra, payload) != 0)
		printf("   got payload \"%s\", want \"%s\"\n", n->extra, payload);
	PQfreemem(n);
}

static void
expect_nothing(PGconn *l, double ms, const char *what)
{
	PGnotify   *n = wait_notify(l, ms);

	check(n == NULL, what);
	if (n)
	{
		printf("   unexpected: \"%s\" \"%s\"\n", n->relname, n->extra);
		PQfreemem(n);
	}
}

int
main(void)
{
	PGconn	   *l = PQconnectdb("");
	PGconn	   *s = PQconnectdb("");
	int			spid;
	PGresult   *r;
	PGnotify   *n;

	if (PQstatus(l) != CONNECTION_OK || PQstatus(s) != CONNECTION_OK)
	{
		fprintf(stderr, "connection failed: %s%s", PQerrorMessage(l), PQerrorMessage(s));
		return 1;
	}
	spid = PQbackendPID(s);

	exec_ok(l, "SELECT ext_listen('idle_chan')");

	/* idle: autocommit notify, then a transaction */
	exec_ok(s, "SELECT ext_notify('idle_chan', 'hello')");
	expect(l, spid, "hello", "idle listener gets an autocommit notify");
	exec_ok(s, "BEGIN");
	exec_ok(s, "SELECT ext_notify('idle_chan', 'tx')");
	expect_nothing(l, 200, "nothing before the notifier commits");
	exec_ok(s, "COMMIT");
	expect(l, spid, "tx", "idle listener gets it at the notifier's commit");

	exec_ok(s, "SELECT ext_notify('other_chan', 'x')");
	expect_nothing(l, 300, "another channel is not received");
	exec_ok(s, "BEGIN; SELECT ext_notify('idle_chan', 'rolled back'); ROLLBACK");
	expect_nothing(l, 300, "a rolled-back notify is not received");

	/* a listener in a transaction block gets it when the block commits */
	exec_ok(l, "BEGIN");
	exec_ok(l, "SELECT 1");
	exec_ok(s, "SELECT ext_notify('idle_chan', 'during block')");
	expect_nothing(l, 300, "nothing while the listener is in a transaction");
	r = PQexec(l, "COMMIT");
	PQclear(r);
	n = PQnotifies(l);
	check(n != NULL && strcmp(n->extra, "during block") == 0 && n->be_pid == spid,
		  "delivered with the COMMIT's response");
	if (n)
		PQfreemem(n);

	/* ... and when an aborted block is rolled back */
	exec_ok(l, "BEGIN");
	r = PQexec(l, "SELECT 1/0");
	check(PQresultStatus(r) == PGRES_FATAL_ERROR, "block aborted");
	PQclear(r);
	exec_ok(s, "SELECT ext_notify('idle_chan', 'during aborted block')");
	expect_nothing(l, 300, "nothing while the block is aborted");
	r = PQexec(l, "ROLLBACK");
	PQclear(r);
	n = PQnotifies(l);
	check(n != NULL && strcmp(n->extra, "during aborted block") == 0,
		  "delivered with the ROLLBACK's response");
	if (n)
		PQfreemem(n);

	/* idle again: a burst arrives complete and in order */
	exec_ok(s, "SELECT ext_notify('idle_chan', 'burst ' || i) FROM generate_series(1, 500) i");
	{
		int			got = 0;
		int			inorder = 1;

		while ((n = wait_notify(l, 1000)) != NULL)
		{
			char		want[32];

			snprintf(want, sizeof(want), "burst %d", got + 1);
			if (strcmp(n->extra, want) != 0)
				inorder = 0;
			got++;
			PQfreemem(n);
			if (got == 500)
				break;
		}
		check(got == 500 && inorder, "500 notifications of one transaction, idle, in order");
	}

	PQfinish(l);
	PQfinish(s);
	printf("1..%d\n", passed + failures);
	if (failures)
	{
		printf("FAILED: %d of %d\n", failures, passed + failures);
		return 1;
	}
	printf("all %d idle-listener tests passed\n", passed);
	return 0;
}
