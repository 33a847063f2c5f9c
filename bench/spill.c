/*
 * spill.c -- libpq driver for bench/spill.sh: the spilled queue (issue 8)
 * of notify_ext against core LISTEN/NOTIFY.  One binary, three
 * subcommands; results are printed as key=value lines that spill.sh reads
 * with awk.  Times: CLOCK_REALTIME microseconds (*_us), so that the
 * processes of one case compare them.
 *
 *   listen -d CONNINFO -m core|ext -c CHANNEL -r READYFILE [-g GOFILE]
 *          [-o seq|big] [-w MAXSECONDS]
 *       LISTEN (core) or ext_listen (ext) on CHANNEL, then, with -g, park
 *       in a transaction (BEGIN; SELECT 1) and write READYFILE; wait until
 *       GOFILE exists, COMMIT (go_us: when it was sent) and read.  Without
 *       -g, write READYFILE and read at once.  Reads until a notification
 *       whose payload starts with "STOP", MAXSECONDS, or the connection is
 *       lost.  -o seq: payloads "<client>:<n>|...", each client's n must
 *       be 1, 2, 3, ... (nothing lost, duplicated or reordered); -o big:
 *       payloads "<n>|...", n = 1, 2, 3, ...  Prints received, order_ok,
 *       first_bad, stop_seen, go_us, first_us, last_us, gap_notices.
 *
 *   flood  -d CONNINFO -m core|ext -c CHANNEL [-k CLIENTS] [-t SECONDS]
 *          [-P PAYLOAD_BYTES] [-i SQL]
 *       CLIENTS threads, each on its own connection, commit back to back
 *       for SECONDS the one-round-trip simple query
 *          BEGIN; [SQL;] SELECT pg_notify|ext_notify(CHANNEL, '<client>:<n>|xxx...'); COMMIT
 *       (n counts the client's commits; a failed commit is rolled back and
 *       its n reused).  A monitor samples every 200 ms the size of the
 *       system's queue directory (pg_notify/ or pg_notify_ext/) and its
 *       queue usage.  Then sends "STOP <commits>" on CHANNEL.  Prints
 *       commits, failures (first_error), commits_per_s, mb_per_s (payload
 *       MB), commit latency p50/p99/max, dir_max_kb, usage_max.
 *
 *   big    -d CONNINFO -m core|ext -c CHANNEL -N COUNT [-P PAYLOAD_BYTES]
 *       One transaction of COUNT distinct notifications, payload
 *       "<n>|" padded with 'x' to PAYLOAD_BYTES, then "STOP".  Prints the
 *       time of the notify calls and of the COMMIT, the backend's memory
 *       contexts (sum of pg_backend_memory_contexts.total_bytes) before
 *       BEGIN and right before COMMIT, and its VmHWM before and after
 *       (/proc/<pid>/status).
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

static int64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void
sleep_us(int64_t us)
{
	struct timespec ts;

	if (us <= 0)
		return;
	ts.tv_sec = us / 1000000;
	ts.tv_nsec = (us % 1000000) * 1000;
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static void
die(const char *what, PGconn *conn)
{
	fprintf(stderr, "spill: %s: %s\n", what,
			conn ? PQerrorMessage(conn) : strerror(errno));
	exit(1);
}

static PGconn *
connect_or_die(const char *conninfo)
{
	PGconn	   *conn = PQconnectdb(conninfo);

	if (PQstatus(conn) != CONNECTION_OK)
		die("connect", conn);
	return conn;
}

static void
exec_or_die(PGconn *conn, const char *sql)
{
	PGresult   *res = PQexec(conn, sql);

	if (PQresultStatus(res) != PGRES_COMMAND_OK &&
		PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		fprintf(stderr, "spill: %s: %s", sql, PQerrorMessage(conn));
		exit(1);
	}
	PQclear(res);
}

static long
query_long(PGconn *conn, const char *sql)
{
	PGresult   *res = PQexec(conn, sql);
	long		v;

	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) < 1)
	{
		fprintf(stderr, "spill: %s: %s", sql, PQerrorMessage(conn));
		exit(1);
	}
	v = atol(PQgetvalue(res, 0, 0));
	PQclear(res);
	return v;
}

static const char *
notify_fn(const char *mode)
{
	if (strcmp(mode, "core") == 0)
		return "pg_notify";
	if (strcmp(mode, "ext") == 0)
		return "ext_notify";
	fprintf(stderr, "spill: mode must be core or ext, not %s\n", mode);
	exit(2);
}

static void
listen_on(PGconn *conn, const char *mode, const char *channel)
{
	char		sql[256];
	char	   *lit;

	if (strcmp(mode, "core") == 0)
	{
		lit = PQescapeIdentifier(conn, channel, strlen(channel));
		snprintf(sql, sizeof(sql), "LISTEN %s", lit);
	}
	else
	{
		lit = PQescapeLiteral(conn, channel, strlen(channel));
		snprintf(sql, sizeof(sql), "SELECT ext_listen(%s)", lit);
	}
	PQfreemem(lit);
	exec_or_die(conn, sql);
}

static long
proc_status_kb(int pid, const char *key)
{
	char		path[64];
	char		line[256];
	size_t		klen = strlen(key);
	long		val = -1;
	FILE	   *f;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f))
	{
		if (strncmp(line, key, klen) == 0 && line[klen] == ':')
		{
			val = strtol(line + klen + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return val;
}

static int
cmp_i64(const void *a, const void *b)
{
	int64_t		x = *(const int64_t *) a;
	int64_t		y = *(const int64_t *) b;

	return (x > y) - (x < y);
}

static void
write_file(const char *path, const char *text)
{
	char		tmp[4096];
	FILE	   *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (f == NULL)
		die(tmp, NULL);
	fputs(text, f);
	fclose(f);
	if (rename(tmp, path) != 0)
		die("rename", NULL);
}

/* ---------------------------------------------------------------- listen */

static long gap_notices = 0;

static void
listen_notice(void *arg, const PGresult *res)
{
	const char *ss = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	(void) arg;
	if (ss != NULL && strcmp(ss, "01N01") == 0)
		gap_notices++;
}

#define MAX_CLIENTS 256

static int
cmd_listen(int argc, char **argv)
{
	const char *conninfo = "",
			   *mode = "ext",
			   *channel = "spill",
			   *readyfile = NULL,
			   *gofile = NULL,
			   *order = "none";
	double		maxsec = 600;
	PGconn	   *conn;
	PGnotify   *nt;
	long		received = 0,
				last_seq[MAX_CLIENTS];
	int			order_ok = 1,
				stop_seen = 0,
				lost = 0,
				opt;
	char		first_bad[200] = "";
	char		ready[64];
	int64_t		go_us = 0,
				first_us = 0,
				last_us = 0,
				start;

	while ((opt = getopt(argc, argv, "d:m:c:r:g:o:w:")) != -1)
	{
		switch (opt)
		{
			case 'd': conninfo = optarg; break;
			case 'm': mode = optarg; break;
			case 'c': channel = optarg; break;
			case 'r': readyfile = optarg; break;
			case 'g': gofile = optarg; break;
			case 'o': order = optarg; break;
			case 'w': maxsec = atof(optarg); break;
			default: return 2;
		}
	}
	for (int i = 0; i < MAX_CLIENTS; i++)
		last_seq[i] = 0;
	conn = connect_or_die(conninfo);
	PQsetNoticeReceiver(conn, listen_notice, NULL);
	listen_on(conn, mode, channel);
	if (gofile != NULL)
	{
		exec_or_die(conn, "BEGIN");
		exec_or_die(conn, "SELECT 1");
	}
	snprintf(ready, sizeof(ready), "pid=%d\n", PQbackendPID(conn));
	if (readyfile != NULL)
		write_file(readyfile, ready);
	start = now_us();
	if (gofile != NULL)
	{
		struct stat st;

		while (stat(gofile, &st) != 0)
		{
			if (now_us() - start > (int64_t) (maxsec * 1e6))
				die("no go file", NULL);
			sleep_us(5000);
		}
		go_us = now_us();
		/* the notifications come with (or after) the COMMIT's result */
		exec_or_die(conn, "COMMIT");
	}
	if (PQsetnonblocking(conn, 1) != 0)
		die("setnonblocking", conn);

	while (!stop_seen)
	{
		struct pollfd pfd = {.fd = PQsocket(conn),.events = POLLIN};
		int			rc;

		/* what PQexec("COMMIT") has already read comes first */
		while ((nt = PQnotifies(conn)) != NULL)
		{
			int64_t		t = now_us();

			if (strncmp(nt->extra, "STOP", 4) == 0)
			{
				stop_seen = 1;
				PQfreemem(nt);
				break;
			}
			if (first_us == 0)
				first_us = t;
			last_us = t;
			received++;
			if (order_ok && strcmp(order, "seq") == 0)
			{
				long		c = -1,
							n = -1;

				if (sscanf(nt->extra, "%ld:%ld|", &c, &n) != 2 || c < 0 ||
					c >= MAX_CLIENTS || n != last_seq[c] + 1)
				{
					order_ok = 0;
					snprintf(first_bad, sizeof(first_bad), "after %ld: %.60s (client's last %ld)",
							 received, nt->extra, (c >= 0 && c < MAX_CLIENTS) ? last_seq[c] : -1);
				}
				else
					last_seq[c] = n;
			}
			else if (order_ok && strcmp(order, "big") == 0)
			{
				if (atol(nt->extra) != received)
				{
					order_ok = 0;
					snprintf(first_bad, sizeof(first_bad), "notification %ld: %.60s",
							 received, nt->extra);
				}
			}
			PQfreemem(nt);
		}
		if (stop_seen)
			break;
		if (now_us() - start > (int64_t) (maxsec * 1e6))
			break;
		rc = poll(&pfd, 1, 100);
		if (rc < 0 && errno != EINTR)
			die("poll", NULL);
		if (rc > 0 && !PQconsumeInput(conn))
		{
			fprintf(stderr, "spill: listener connection lost: %s", PQerrorMessage(conn));
			lost = 1;
			break;
		}
	}
	printf("received=%ld\n", received);
	printf("order_ok=%d\n", order_ok);
	printf("first_bad=%s\n", first_bad);
	printf("stop_seen=%d\n", stop_seen);
	printf("lost=%d\n", lost);
	printf("go_us=%" PRId64 "\n", go_us);
	printf("first_us=%" PRId64 "\n", first_us);
	printf("last_us=%" PRId64 "\n", last_us);
	printf("gap_notices=%ld\n", gap_notices);
	fflush(stdout);
	PQfinish(conn);
	return 0;
}

/* ----------------------------------------------------------------- flood */

typedef struct Client
{
	pthread_t	th;
	int			idx;
	PGconn	   *conn;
	long		commits,
				failures;
	int64_t    *lat;
	size_t		nlat,
				maxlat;
	char		first_error[200];
} Client;

static const char *fl_mode = "ext";
static const char *fl_channel = "spill";
static const char *fl_insert = NULL;
static int	fl_payload = 2000;
static int64_t fl_end_us;
static char *fl_pad;
static volatile int fl_done = 0;

static void
quiet_notice(void *arg, const PGresult *res)
{
	(void) arg;
	(void) res;
}

static void *
client_main(void *arg)
{
	Client	   *c = arg;
	size_t		cap = (size_t) fl_payload + 512;
	char	   *sql = malloc(cap);

	while (now_us() < fl_end_us)
	{
		char		head[48];
		int			hl = snprintf(head, sizeof(head), "%d:%ld|", c->idx, c->commits + 1);
		int			pad = fl_payload - hl;
		int64_t		s,
					e;
		PGresult   *res;
		ExecStatusType st;

		if (pad < 0)
			pad = 0;
		snprintf(sql, cap, "BEGIN; %s%sSELECT %s('%s', '%s%.*s'); COMMIT",
				 fl_insert ? fl_insert : "", fl_insert ? "; " : "",
				 notify_fn(fl_mode), fl_channel, head, pad, fl_pad);
		s = now_us();
		res = PQexec(c->conn, sql);
		e = now_us();
		st = PQresultStatus(res);
		if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
		{
			c->commits++;
			if (c->nlat == c->maxlat)
			{
				c->maxlat = c->maxlat ? 2 * c->maxlat : 65536;
				c->lat = realloc(c->lat, c->maxlat * sizeof(int64_t));
			}
			c->lat[c->nlat++] = e - s;
		}
		else
		{
			c->failures++;
			if (c->first_error[0] == '\0')
				snprintf(c->first_error, sizeof(c->first_error), "%s",
						 PQerrorMessage(c->conn));
			if (PQstatus(c->conn) != CONNECTION_OK)
			{
				PQclear(res);
				break;
			}
			if (PQtransactionStatus(c->conn) != PQTRANS_IDLE)
				PQclear(PQexec(c->conn, "ROLLBACK"));
		}
		PQclear(res);
	}
	free(sql);
	return NULL;
}

static int
cmd_flood(int argc, char **argv)
{
	const char *conninfo = "";
	int			k = 4,
				opt;
	double		secs = 5;
	Client	   *cs;
	PGconn	   *mon;
	const char *monsql;
	long		dir_max = 0;
	double		usage_max = 0;
	int64_t		t0,
				t1;
	long		commits = 0,
				failures = 0;
	int64_t    *all;
	size_t		nall = 0;
	char		first_error[200] = "";
	char		sql[256];

	while ((opt = getopt(argc, argv, "d:m:c:k:t:P:i:")) != -1)
	{
		switch (opt)
		{
			case 'd': conninfo = optarg; break;
			case 'm': fl_mode = optarg; break;
			case 'c': fl_channel = optarg; break;
			case 'k': k = atoi(optarg); break;
			case 't': secs = atof(optarg); break;
			case 'P': fl_payload = atoi(optarg); break;
			case 'i': fl_insert = optarg[0] ? optarg : NULL; break;
			default: return 2;
		}
	}
	if (k < 1 || k > MAX_CLIENTS)
		k = 4;
	fl_pad = malloc(fl_payload + 1);
	memset(fl_pad, 'x', fl_payload);
	fl_pad[fl_payload] = '\0';
	cs = calloc(k, sizeof(Client));
	for (int i = 0; i < k; i++)
	{
		cs[i].idx = i;
		cs[i].conn = connect_or_die(conninfo);
		PQsetNoticeReceiver(cs[i].conn, quiet_notice, NULL);
	}
	mon = connect_or_die(conninfo);
	if (strcmp(fl_mode, "core") == 0)
		monsql = "SELECT (SELECT coalesce(sum((pg_stat_file('pg_notify/' || f, true)).size), 0) "
			"FROM pg_ls_dir('pg_notify', true, false) f), pg_notification_queue_usage()";
	else
		monsql = "SELECT (SELECT coalesce(sum((pg_stat_file('pg_notify_ext/' || f, true)).size), 0) "
			"FROM pg_ls_dir('pg_notify_ext', true, false) f), ext_notification_queue_usage()";

	t0 = now_us();
	fl_end_us = t0 + (int64_t) (secs * 1e6);
	for (int i = 0; i < k; i++)
		if (pthread_create(&cs[i].th, NULL, client_main, &cs[i]) != 0)
			die("pthread_create", NULL);
	while (now_us() < fl_end_us + 100000)
	{
		PGresult   *res = PQexec(mon, monsql);

		if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
		{
			long		d = atol(PQgetvalue(res, 0, 0));
			double		u = atof(PQgetvalue(res, 0, 1));

			if (d > dir_max)
				dir_max = d;
			if (u > usage_max)
				usage_max = u;
		}
		PQclear(res);
		sleep_us(200000);
	}
	for (int i = 0; i < k; i++)
		pthread_join(cs[i].th, NULL);
	t1 = now_us();
	all = malloc(sizeof(int64_t) * 1);
	for (int i = 0; i < k; i++)
	{
		commits += cs[i].commits;
		failures += cs[i].failures;
		if (first_error[0] == '\0' && cs[i].first_error[0] != '\0')
			snprintf(first_error, sizeof(first_error), "%s", cs[i].first_error);
		all = realloc(all, sizeof(int64_t) * (nall + cs[i].nlat + 1));
		memcpy(all + nall, cs[i].lat, sizeof(int64_t) * cs[i].nlat);
		nall += cs[i].nlat;
	}
	qsort(all, nall, sizeof(int64_t), cmp_i64);
	for (char *p = first_error; *p; p++)
		if (*p == '\n')
			*p = ' ';

	snprintf(sql, sizeof(sql), "SELECT %s('%s', 'STOP %ld')", notify_fn(fl_mode), fl_channel, commits);
	exec_or_die(mon, sql);

	printf("clients=%d\n", k);
	printf("commits=%ld\n", commits);
	printf("failures=%ld\n", failures);
	printf("first_error=%s\n", first_error);
	printf("elapsed_s=%.3f\n", (t1 - t0) / 1e6);
	printf("commits_per_s=%.1f\n", commits / ((t1 - t0) / 1e6));
	printf("mb_per_s=%.2f\n", commits * (double) fl_payload / 1048576.0 / ((t1 - t0) / 1e6));
	printf("lat_p50_us=%" PRId64 "\n", nall ? all[nall / 2] : -1);
	printf("lat_p99_us=%" PRId64 "\n", nall ? all[(size_t) (nall * 0.99)] : -1);
	printf("lat_max_us=%" PRId64 "\n", nall ? all[nall - 1] : -1);
	printf("dir_max_kb=%ld\n", dir_max / 1024);
	printf("usage_max=%.6f\n", usage_max);
	printf("end_us=%" PRId64 "\n", t1);
	fflush(stdout);
	for (int i = 0; i < k; i++)
		PQfinish(cs[i].conn);
	PQfinish(mon);
	return 0;
}

/* ------------------------------------------------------------------- big */

static int
cmd_big(int argc, char **argv)
{
	const char *conninfo = "",
			   *mode = "ext",
			   *chan = "big";
	long		count = 1000000;
	int			payload = 150,
				opt,
				pid;
	PGconn	   *conn;
	char		sql[512];
	char	   *lit;
	int64_t		t0,
				tc,
				t1,
				t2;
	long		hwm0,
				ctx0,
				ctx1;
	const char *ctxsql = "SELECT sum(total_bytes) FROM pg_backend_memory_contexts";

	while ((opt = getopt(argc, argv, "d:m:c:N:P:")) != -1)
	{
		switch (opt)
		{
			case 'd': conninfo = optarg; break;
			case 'm': mode = optarg; break;
			case 'c': chan = optarg; break;
			case 'N': count = atol(optarg); break;
			case 'P': payload = atoi(optarg); break;
			default: return 2;
		}
	}
	conn = connect_or_die(conninfo);
	PQsetNoticeReceiver(conn, quiet_notice, NULL);
	pid = PQbackendPID(conn);
	exec_or_die(conn, "SELECT 1");
	ctx0 = query_long(conn, ctxsql);
	hwm0 = proc_status_kb(pid, "VmHWM");

	lit = PQescapeLiteral(conn, chan, strlen(chan));
	/* "<n>|xxx...": distinct payloads of PAYLOAD bytes (n up to 7 digits) */
	snprintf(sql, sizeof(sql),
			 "SELECT count(*) FROM (SELECT %s(%s, rpad(i || '|', %d, 'x')) "
			 "FROM generate_series(1, %ld) i) s",
			 notify_fn(mode), lit, payload, count);

	t0 = now_us();
	exec_or_die(conn, "BEGIN");
	exec_or_die(conn, sql);
	tc = now_us();
	ctx1 = query_long(conn, ctxsql);	/* what the pending notifies hold */
	t1 = now_us();
	exec_or_die(conn, "COMMIT");
	t2 = now_us();

	printf("pid=%d\n", pid);
	printf("notify_calls_us=%" PRId64 "\n", tc - t0);
	printf("commit_us=%" PRId64 "\n", t2 - t1);
	printf("commit_start_us=%" PRId64 "\n", t1);
	printf("commit_end_us=%" PRId64 "\n", t2);
	printf("ctx_before_kb=%ld\n", ctx0 / 1024);
	printf("ctx_precommit_kb=%ld\n", ctx1 / 1024);
	printf("hwm_before_kb=%ld\n", hwm0);
	printf("hwm_after_kb=%ld\n", proc_status_kb(pid, "VmHWM"));

	snprintf(sql, sizeof(sql), "SELECT %s(%s, 'STOP %ld')", notify_fn(mode), lit, count);
	exec_or_die(conn, sql);
	PQfreemem(lit);
	fflush(stdout);
	PQfinish(conn);
	return 0;
}

int
main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2)
	{
		fprintf(stderr, "usage: %s listen|flood|big [options]\n", argv[0]);
		return 2;
	}
	if (strcmp(argv[1], "listen") == 0)
		return cmd_listen(argc - 1, argv + 1);
	if (strcmp(argv[1], "flood") == 0)
		return cmd_flood(argc - 1, argv + 1);
	if (strcmp(argv[1], "big") == 0)
		return cmd_big(argc - 1, argv + 1);
	fprintf(stderr, "spill: unknown subcommand %s\n", argv[1]);
	return 2;
}
