/*
 * large_recv.c: a libpq listener for test/client/test_large_payloads.py
 * (and nothing else).  It lives in test/client/helpers/ so that the client
 * suite does not build and run it as a test of its own:
 * test_large_payloads.py compiles it into a temporary directory (with
 * libpq and libcrypto, for MD5).
 *
 * usage: large_recv [-d CONNINFO] [-e CLIENT_ENCODING] -c CHANNEL [-c ...]
 *
 * Connects (conninfo or the PG* environment variables), sets the client
 * encoding if -e is given, runs SELECT ext_listen(CHANNEL) for each -c,
 * prints "ready <backend pid>" and then waits idle on its socket (poll,
 * PQconsumeInput, PQnotifies; it never sends a query by itself).  For each
 * notification, as it arrives, one line on stdout:
 *
 *   notify <channel> <sender pid> <payload bytes> <md5 of the payload bytes>
 *
 * and for each notice (NoticeResponse):
 *
 *   notice <sqlstate> <message>
 *
 * Commands, one a line on stdin:
 *
 *   sql <statement>   run it (what arrives meanwhile is printed first),
 *                     then "result <status> <first value or error>"
 *   quit              (or end of input) exit 0
 *
 * A lost connection prints "lost <message>" and exits 3.  Exit 2: it could
 * not start.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <openssl/evp.h>

static void
die(const char *what, PGconn *conn)
{
	fprintf(stderr, "large_recv: %s: %s\n", what,
			conn ? PQerrorMessage(conn) : strerror(errno));
	exit(2);
}

static void
on_notice(void *arg, const PGresult *res)
{
	const char *ss = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

	(void) arg;
	printf("notice %s %s\n", ss ? ss : "-", msg ? msg : "");
	fflush(stdout);
}

static void
md5_hex(const char *data, size_t len, char *out)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (!EVP_Digest(data, len, md, &mdlen, EVP_md5(), NULL))
	{
		strcpy(out, "md5-failed");
		return;
	}
	for (unsigned int i = 0; i < mdlen; i++)
		sprintf(out + 2 * i, "%02x", md[i]);
}

static void
print_notifies(PGconn *conn)
{
	PGnotify   *nt;

	while ((nt = PQnotifies(conn)) != NULL)
	{
		char		md[2 * EVP_MAX_MD_SIZE + 1];
		size_t		len = strlen(nt->extra);

		md5_hex(nt->extra, len, md);
		printf("notify %s %d %zu %s\n", nt->relname, nt->be_pid, len, md);
		PQfreemem(nt);
	}
	fflush(stdout);
}

static void
run_sql(PGconn *conn, const char *sql)
{
	PGresult   *res;
	ExecStatusType st;

	if (PQsetnonblocking(conn, 0) != 0)
		die("setnonblocking", conn);
	res = PQexec(conn, sql);
	print_notifies(conn);
	st = PQresultStatus(res);
	if (st == PGRES_TUPLES_OK && PQntuples(res) > 0 && PQnfields(res) > 0)
		printf("result %s %s\n", PQresStatus(st), PQgetvalue(res, 0, 0));
	else if (st == PGRES_FATAL_ERROR)
	{
		const char *ss = PQresultErrorField(res, PG_DIAG_SQLSTATE);

		printf("result %s %s %s", PQresStatus(st), ss ? ss : "-", PQerrorMessage(conn));
		if (PQstatus(conn) != CONNECTION_OK)
		{
			printf("lost %s", PQerrorMessage(conn));
			fflush(stdout);
			exit(3);
		}
	}
	else
		printf("result %s -\n", PQresStatus(st));
	fflush(stdout);
	PQclear(res);
	if (PQsetnonblocking(conn, 1) != 0)
		die("setnonblocking", conn);
}

int
main(int argc, char **argv)
{
	const char *conninfo = "";
	const char *encoding = NULL;
	const char *channels[16];
	int			nchannels = 0;
	PGconn	   *conn;
	char		line[8192];
	size_t		linelen = 0;
	int			opt;

	while ((opt = getopt(argc, argv, "d:e:c:")) != -1)
	{
		switch (opt)
		{
			case 'd': conninfo = optarg; break;
			case 'e': encoding = optarg; break;
			case 'c':
				if (nchannels < 16)
					channels[nchannels++] = optarg;
				break;
			default:
				fprintf(stderr, "large_recv: bad option\n");
				return 2;
		}
	}
	if (nchannels == 0)
	{
		fprintf(stderr, "large_recv: -c CHANNEL is required\n");
		return 2;
	}

	conn = PQconnectdb(conninfo);
	if (PQstatus(conn) != CONNECTION_OK)
		die("connect", conn);
	PQsetNoticeReceiver(conn, on_notice, NULL);
	if (encoding != NULL && PQsetClientEncoding(conn, encoding) != 0)
		die("client encoding", conn);
	for (int i = 0; i < nchannels; i++)
	{
		const char *params[1] = {channels[i]};
		PGresult   *res = PQexecParams(conn, "SELECT ext_listen($1)", 1, NULL,
									   params, NULL, NULL, 0);

		if (PQresultStatus(res) != PGRES_TUPLES_OK)
			die("listen", conn);
		PQclear(res);
	}
	if (PQsetnonblocking(conn, 1) != 0)
		die("setnonblocking", conn);
	printf("ready %d %s\n", PQbackendPID(conn), pg_encoding_to_char(PQclientEncoding(conn)));
	fflush(stdout);

	for (;;)
	{
		struct pollfd pfd[2] = {
			{.fd = PQsocket(conn),.events = POLLIN},
			{.fd = STDIN_FILENO,.events = POLLIN},
		};
		int			rc = poll(pfd, 2, 1000);

		if (rc < 0 && errno != EINTR)
			die("poll", NULL);
		if (rc <= 0)
			continue;
		if (pfd[0].revents)
		{
			if (!PQconsumeInput(conn))
			{
				printf("lost %s", PQerrorMessage(conn));
				fflush(stdout);
				return 3;
			}
			print_notifies(conn);
		}
		if (pfd[1].revents)
		{
			ssize_t		n = read(STDIN_FILENO, line + linelen, sizeof(line) - 1 - linelen);
			char	   *nl;

			if (n <= 0)
				break;
			linelen += n;
			line[linelen] = '\0';
			while ((nl = strchr(line, '\n')) != NULL)
			{
				*nl = '\0';
				if (strcmp(line, "quit") == 0)
				{
					PQfinish(conn);
					return 0;
				}
				if (strncmp(line, "sql ", 4) == 0)
					run_sql(conn, line + 4);
				else
				{
					printf("error unknown command\n");
					fflush(stdout);
				}
				linelen -= (nl + 1 - line);
				memmove(line, nl + 1, linelen + 1);
			}
			if (linelen >= sizeof(line) - 1)
				linelen = 0;	/* a line too long: dropped */
		}
	}
	PQfinish(conn);
	return 0;
}
