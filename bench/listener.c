/*
 * listener.c -- libpq client for bench/run.sh: listeners, notifiers, probes.
 *
 * One binary, three subcommands; every result is printed as key=value lines
 * that run.sh reads with awk.  Times are CLOCK_REALTIME microseconds, so the
 * notifier and the listener processes (on the same machine) compare them.
 *
 *   listen  -d CONNINFO -m core|ext|both -c CHANNEL_FMT [-n CONNS] [-s STOPS]
 *           [-l] [-L RAWFILE] [-r READYFILE] [-w MAXSECONDS]
 *       Opens CONNS connections; connection i LISTENs (core), ext_listens
 *       (ext) or both, on the channel CHANNEL_FMT with "%d" replaced by i.
 *       Then waits on all sockets with poll() and drains them.  A payload
 *       "STOP <nsent> <t0_us>" ends a connection once it has seen STOPS of
 *       them; every other notification is counted (and with -l its payload,
 *       the send time in us, gives a latency sample).  Exits when every
 *       connection has stopped, on SIGTERM/SIGINT, or after MAXSECONDS, and
 *       prints counts, the first and last receipt time, latency percentiles.
 *       READYFILE gets "pids=<backend pids>" once every LISTEN has committed.
 *       RAWFILE (implies -l) gets one "receipt_us latency_us" line a sample.
 *
 *   notify  -d CONNINFO -m core|ext -c CHANNEL [-k CONNS] [-t SECONDS]
 *           [-N COUNT] [-R RATE] [-T] [-S]
 *       Autocommit "SELECT pg_notify($1,$2)" / "SELECT ext_notify($1,$2)" on
 *       CONNS connections for SECONDS (or COUNT notifications), as fast as
 *       the server answers, or paced at RATE per second in total.  With -T
 *       the payload is the CLOCK_REALTIME us taken just before the query is
 *       sent; otherwise a sequence number.  With -S it then sends
 *       "STOP <sent> <t0_us>" on the same channel.  Prints the rate and the
 *       round trip (send to result) percentiles of its notify queries.
 *
 *   big     -d CONNINFO -m core|ext -c CHANNEL -N COUNT -D distinct|same
 *       One transaction with COUNT notifies (distinct payloads, or all the
 *       same one, which dedupe leaves as one), then "STOP"; prints the time
 *       of the notify calls and of COMMIT, the backend's memory contexts
 *       (pg_backend_memory_contexts) before BEGIN and right before COMMIT,
 *       and its VmHWM/RssAnon before and after from /proc/<pid>/status.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

static volatile sig_atomic_t stop_requested = 0;

static void
on_signal(int sig)
{
	(void) sig;
	stop_requested = 1;
}

static int64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t
mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void
die(const char *what, PGconn *conn)
{
	fprintf(stderr, "listener: %s: %s\n", what,
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

/* the first column of the first row of a query, as a long */
static long
query_long(PGconn *conn, const char *sql)
{
	PGresult   *res = PQexec(conn, sql);
	long		v;

	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) < 1)
	{
		fprintf(stderr, "listener: %s: %s", sql, PQerrorMessage(conn));
		exit(1);
	}
	v = atol(PQgetvalue(res, 0, 0));
	PQclear(res);
	return v;
}

static void
exec_or_die(PGconn *conn, const char *sql)
{
	PGresult   *res = PQexec(conn, sql);

	if (PQresultStatus(res) != PGRES_COMMAND_OK &&
		PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		fprintf(stderr, "listener: %s: %s", sql, PQerrorMessage(conn));
		exit(1);
	}
	PQclear(res);
}

static const char *
notify_fn(const char *mode)
{
	if (strcmp(mode, "core") == 0)
		return "pg_notify";
	if (strcmp(mode, "ext") == 0)
		return "ext_notify";
	fprintf(stderr, "listener: mode must be core or ext, not %s\n", mode);
	exit(2);
}

/* the /proc/<pid>/status line "key:   N kB", in kB, or -1 */
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

/* ---------------------------------------------------------------- listen */

typedef struct Listener
{
	PGconn	   *conn;
	int			pid;
	long		count;
	int			stops;
	int			done;
	int64_t		last_us;
} Listener;

static int
cmd_listen(int argc, char **argv)
{
	const char *conninfo = "";
	const char *mode = "ext";
	const char *chanfmt = "c";
	const char *readyfile = NULL;
	const char *rawfile = NULL;
	int64_t    *recv = NULL;
	int			n = 1;
	int			stops_needed = 1;
	int			latency = 0;
	double		maxsec = 0;
	Listener   *ls;
	struct pollfd *pfds;
	int64_t    *lat = NULL;
	size_t		nlat = 0,
				maxlat = 0;
	int64_t		first_us = 0,
				last_us = 0,
				start_mono;
	long		stop_nsent = -1;
	int64_t		stop_t0 = 0;
	long		total = 0,
				minc = -1,
				maxc = 0,
				bad_payloads = 0;
	int			ndone = 0,
				timed_out = 0,
				lost = 0;
	int			opt;

	while ((opt = getopt(argc, argv, "d:m:c:n:s:lr:w:L:")) != -1)
	{
		switch (opt)
		{
			case 'd': conninfo = optarg; break;
			case 'm': mode = optarg; break;
			case 'c': chanfmt = optarg; break;
			case 'n': n = atoi(optarg); break;
			case 's': stops_needed = atoi(optarg); break;
			case 'l': latency = 1; break;
			case 'r': readyfile = optarg; break;
			case 'w': maxsec = atof(optarg); break;
			case 'L': rawfile = optarg; latency = 1; break;
			default: return 2;
		}
	}
	if (n < 1)
		n = 1;

	ls = calloc(n, sizeof(Listener));
	pfds = calloc(n, sizeof(struct pollfd));

	for (int i = 0; i < n; i++)
	{
		char		chan[128];
		char		sql[256];
		char	   *ident;

		snprintf(chan, sizeof(chan), chanfmt, i);
		ls[i].conn = connect_or_die(conninfo);
		ls[i].pid = PQbackendPID(ls[i].conn);
		if (strcmp(mode, "core") == 0 || strcmp(mode, "both") == 0)
		{
			ident = PQescapeIdentifier(ls[i].conn, chan, strlen(chan));
			snprintf(sql, sizeof(sql), "LISTEN %s", ident);
			PQfreemem(ident);
			exec_or_die(ls[i].conn, sql);
		}
		if (strcmp(mode, "ext") == 0 || strcmp(mode, "both") == 0)
		{
			ident = PQescapeLiteral(ls[i].conn, chan, strlen(chan));
			snprintf(sql, sizeof(sql), "SELECT ext_listen(%s)", ident);
			PQfreemem(ident);
			exec_or_die(ls[i].conn, sql);
		}
		if (PQsetnonblocking(ls[i].conn, 1) != 0)
			die("setnonblocking", ls[i].conn);
		pfds[i].fd = PQsocket(ls[i].conn);
		pfds[i].events = POLLIN;
	}

	if (readyfile)
	{
		char		tmp[4096];
		FILE	   *f;

		snprintf(tmp, sizeof(tmp), "%s.tmp", readyfile);
		f = fopen(tmp, "w");
		if (f == NULL)
			die("ready file", NULL);
		fprintf(f, "pids=");
		for (int i = 0; i < n; i++)
			fprintf(f, "%s%d", i ? "," : "", ls[i].pid);
		fprintf(f, "\n");
		fclose(f);
		if (rename(tmp, readyfile) != 0)
			die("rename ready file", NULL);
	}

	start_mono = mono_us();
	while (ndone < n && !stop_requested)
	{
		int			rc = poll(pfds, n, 100);

		if (rc < 0 && errno != EINTR)
			die("poll", NULL);
		if (maxsec > 0 && mono_us() - start_mono > (int64_t) (maxsec * 1e6))
		{
			timed_out = 1;
			break;
		}
		if (rc <= 0)
			continue;
		for (int i = 0; i < n; i++)
		{
			PGnotify   *nt;

			if (pfds[i].revents == 0)
				continue;
			pfds[i].revents = 0;
			if (!PQconsumeInput(ls[i].conn))
			{
				fprintf(stderr, "listener: connection %d lost: %s", i,
						PQerrorMessage(ls[i].conn));
				pfds[i].fd = -1;
				if (!ls[i].done)
				{
					ls[i].done = 1;
					ndone++;
				}
				lost++;
				continue;
			}
			while ((nt = PQnotifies(ls[i].conn)) != NULL)
			{
				int64_t		t = now_us();

				if (strncmp(nt->extra, "STOP", 4) == 0)
				{
					long		ns = -1;
					long long	t0 = 0;

					if (sscanf(nt->extra, "STOP %ld %lld", &ns, &t0) >= 1)
					{
						stop_nsent = ns;
						if (t0 > 0)
							stop_t0 = t0;
					}
					if (++ls[i].stops >= stops_needed && !ls[i].done)
					{
						ls[i].done = 1;
						ndone++;
					}
				}
				else
				{
					ls[i].count++;
					ls[i].last_us = t;
					if (first_us == 0)
						first_us = t;
					if (t > last_us)
						last_us = t;
					if (latency)
					{
						char	   *end;
						long long	sent = strtoll(nt->extra, &end, 10);

						if (end == nt->extra || sent <= 0)
							bad_payloads++;
						else
						{
							if (nlat == maxlat)
							{
								maxlat = maxlat ? maxlat * 2 : 65536;
								lat = realloc(lat, maxlat * sizeof(int64_t));
								recv = realloc(recv, maxlat * sizeof(int64_t));
							}
							recv[nlat] = t;
							lat[nlat++] = t - sent;
						}
					}
				}
				PQfreemem(nt);
			}
		}
	}

	for (int i = 0; i < n; i++)
	{
		total += ls[i].count;
		if (minc < 0 || ls[i].count < minc)
			minc = ls[i].count;
		if (ls[i].count > maxc)
			maxc = ls[i].count;
	}

	printf("conns=%d\n", n);
	printf("total=%ld\n", total);
	printf("min_count=%ld\n", minc);
	printf("max_count=%ld\n", maxc);
	printf("stopped=%d\n", ndone);
	printf("timed_out=%d\n", timed_out);
	printf("lost=%d\n", lost);
	printf("first_us=%" PRId64 "\n", first_us);
	printf("last_us=%" PRId64 "\n", last_us);
	printf("stop_nsent=%ld\n", stop_nsent);
	printf("stop_t0=%" PRId64 "\n", stop_t0);
	printf("complete=%d\n",
		   stop_nsent >= 0 && ndone == n && lost == 0 &&
		   minc == stop_nsent && maxc == stop_nsent);
	if (stop_t0 > 0 && last_us > stop_t0)
		printf("deliveries_per_s=%.1f\n",
			   (double) total * 1e6 / (double) (last_us - stop_t0));
	if (latency)
	{
		printf("bad_payloads=%ld\n", bad_payloads);
		printf("lat_n=%zu\n", nlat);
		if (rawfile != NULL)
		{
			FILE	   *f = fopen(rawfile, "w");

			if (f == NULL)
				die("raw latency file", NULL);
			for (size_t i = 0; i < nlat; i++)
				fprintf(f, "%" PRId64 " %" PRId64 "\n", recv[i], lat[i]);
			fclose(f);
		}
		if (nlat > 0)
		{
			double		sum = 0;

			qsort(lat, nlat, sizeof(int64_t), cmp_i64);
			for (size_t i = 0; i < nlat; i++)
				sum += (double) lat[i];
			printf("lat_p50=%" PRId64 "\n", lat[nlat / 2]);
			printf("lat_p90=%" PRId64 "\n", lat[(size_t) ((nlat - 1) * 0.90)]);
			printf("lat_p99=%" PRId64 "\n", lat[(size_t) ((nlat - 1) * 0.99)]);
			printf("lat_p999=%" PRId64 "\n", lat[(size_t) ((nlat - 1) * 0.999)]);
			printf("lat_max=%" PRId64 "\n", lat[nlat - 1]);
			printf("lat_mean=%.1f\n", sum / (double) nlat);
		}
	}
	fflush(stdout);
	for (int i = 0; i < n; i++)
		PQfinish(ls[i].conn);
	return 0;
}

/* ---------------------------------------------------------------- notify */

typedef struct Notifier
{
	PGconn	   *conn;
	int			busy;
	int64_t		sent_mono;		/* when the query in flight was sent */
} Notifier;

/* round trips (send to result) of the notifier's queries, in us */
static int64_t *rtt = NULL;
static size_t nrtt = 0,
			maxrtt = 0;

static void
send_notify(Notifier *nf, const char *chan, int timestamp, long seq)
{
	char		payload[32];
	const char *params[2];

	if (timestamp)
		snprintf(payload, sizeof(payload), "%" PRId64, now_us());
	else
		snprintf(payload, sizeof(payload), "%ld", seq);
	params[0] = chan;
	params[1] = payload;
	nf->sent_mono = mono_us();
	if (!PQsendQueryPrepared(nf->conn, "n", 2, params, NULL, NULL, 0))
		die("send", nf->conn);
	nf->busy = 1;
}

/* collect the results of one finished query; returns 1 if it succeeded */
static int
collect_result(Notifier *nf, long *errors)
{
	PGresult   *res;
	int			ok = 1;

	while ((res = PQgetResult(nf->conn)) != NULL)
	{
		if (PQresultStatus(res) != PGRES_TUPLES_OK)
		{
			if (*errors == 0)
				fprintf(stderr, "listener: notify failed: %s",
						PQresultErrorMessage(res));
			ok = 0;
		}
		PQclear(res);
	}
	if (nrtt == maxrtt)
	{
		maxrtt = maxrtt ? maxrtt * 2 : 65536;
		rtt = realloc(rtt, maxrtt * sizeof(int64_t));
	}
	rtt[nrtt++] = mono_us() - nf->sent_mono;
	nf->busy = 0;
	if (!ok)
		(*errors)++;
	return ok;
}

static int
cmd_notify(int argc, char **argv)
{
	const char *conninfo = "";
	const char *mode = "ext";
	const char *chan = "c";
	int			k = 1;
	double		seconds = 0;
	long		count = 0;
	double		rate = 0;
	int			timestamp = 0;
	int			send_stop = 0;
	Notifier   *nfs;
	struct pollfd *pfds;
	char		sql[128];
	long		sent = 0,
				ok = 0,
				errors = 0;
	int64_t		t0,
				m0,
				mend;
	int			opt;

	while ((opt = getopt(argc, argv, "d:m:c:k:t:N:R:TS")) != -1)
	{
		switch (opt)
		{
			case 'd': conninfo = optarg; break;
			case 'm': mode = optarg; break;
			case 'c': chan = optarg; break;
			case 'k': k = atoi(optarg); break;
			case 't': seconds = atof(optarg); break;
			case 'N': count = atol(optarg); break;
			case 'R': rate = atof(optarg); break;
			case 'T': timestamp = 1; break;
			case 'S': send_stop = 1; break;
			default: return 2;
		}
	}
	if (k < 1)
		k = 1;
	if (rate > 0)
		k = 1;					/* paced: one connection, one at a time */
	if (seconds <= 0 && count <= 0)
		seconds = 5;

	snprintf(sql, sizeof(sql), "SELECT %s($1, $2)", notify_fn(mode));
	nfs = calloc(k, sizeof(Notifier));
	pfds = calloc(k, sizeof(struct pollfd));
	for (int i = 0; i < k; i++)
	{
		PGresult   *res;

		nfs[i].conn = connect_or_die(conninfo);
		res = PQprepare(nfs[i].conn, "n", sql, 2, NULL);
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
			die("prepare", nfs[i].conn);
		PQclear(res);
		pfds[i].fd = PQsocket(nfs[i].conn);
		pfds[i].events = POLLIN;
	}

	t0 = now_us();
	m0 = mono_us();
	mend = seconds > 0 ? m0 + (int64_t) (seconds * 1e6) : INT64_MAX;

	if (rate > 0)
	{
		/* paced: the i-th notification is due at m0 + i/rate */
		double		interval = 1e6 / rate;

		while (!stop_requested && (count <= 0 || sent < count))
		{
			int64_t		due = m0 + (int64_t) (sent * interval);
			int64_t		m = mono_us();

			if (due >= mend)
				break;
			if (due > m)
			{
				struct timespec ts;

				ts.tv_sec = (due - m) / 1000000;
				ts.tv_nsec = ((due - m) % 1000000) * 1000;
				nanosleep(&ts, NULL);
			}
			send_notify(&nfs[0], chan, timestamp, sent);
			sent++;
			ok += collect_result(&nfs[0], &errors);
		}
	}
	else
	{
		/* saturated: every connection always has one query in flight */
		int			stopping = 0;
		int			inflight = 0;

		for (int i = 0; i < k && (count <= 0 || sent < count); i++)
		{
			send_notify(&nfs[i], chan, timestamp, sent++);
			inflight++;
		}
		while (inflight > 0)
		{
			int			rc = poll(pfds, k, 1000);

			if (rc < 0 && errno != EINTR)
				die("poll", NULL);
			if (stop_requested || mono_us() >= mend)
				stopping = 1;
			if (rc <= 0)
				continue;
			for (int i = 0; i < k; i++)
			{
				if (pfds[i].revents == 0)
					continue;
				pfds[i].revents = 0;
				if (!PQconsumeInput(nfs[i].conn))
					die("consume", nfs[i].conn);
				if (!nfs[i].busy || PQisBusy(nfs[i].conn))
					continue;
				ok += collect_result(&nfs[i], &errors);
				inflight--;
				if (!stopping && mono_us() >= mend)
					stopping = 1;
				if (!stopping && (count <= 0 || sent < count))
				{
					send_notify(&nfs[i], chan, timestamp, sent++);
					inflight++;
				}
			}
		}
	}

	{
		int64_t		elapsed = mono_us() - m0;

		printf("sent=%ld\n", sent);
		printf("ok=%ld\n", ok);
		printf("errors=%ld\n", errors);
		printf("t0_us=%" PRId64 "\n", t0);
		printf("elapsed_us=%" PRId64 "\n", elapsed);
		printf("rate=%.1f\n", elapsed > 0 ? (double) ok * 1e6 / elapsed : 0.0);
		if (nrtt > 0)
		{
			qsort(rtt, nrtt, sizeof(int64_t), cmp_i64);
			printf("rtt_p50=%" PRId64 "\n", rtt[nrtt / 2]);
			printf("rtt_p99=%" PRId64 "\n", rtt[(size_t) ((nrtt - 1) * 0.99)]);
			printf("rtt_p999=%" PRId64 "\n", rtt[(size_t) ((nrtt - 1) * 0.999)]);
			printf("rtt_max=%" PRId64 "\n", rtt[nrtt - 1]);
		}
	}

	if (send_stop)
	{
		char		payload[64];
		const char *params[2];
		PGresult   *res;

		snprintf(payload, sizeof(payload), "STOP %ld %" PRId64, ok, t0);
		params[0] = chan;
		params[1] = payload;
		res = PQexecPrepared(nfs[0].conn, "n", 2, params, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_TUPLES_OK)
			die("stop", nfs[0].conn);
		PQclear(res);
	}
	fflush(stdout);
	for (int i = 0; i < k; i++)
		PQfinish(nfs[i].conn);
	return errors > 0 ? 3 : 0;
}

/* ------------------------------------------------------------------- big */

static int
cmd_big(int argc, char **argv)
{
	const char *conninfo = "";
	const char *mode = "ext";
	const char *chan = "big";
	const char *kind = "distinct";
	long		count = 100000;
	PGconn	   *conn;
	int			pid;
	char		sql[512];
	char	   *lit;
	int64_t		t0,
				tc,
				t1,
				t2;
	long		hwm0,
				anon0,
				ctx0,
				ctx1;
	const char *ctxsql = "SELECT sum(total_bytes) FROM pg_backend_memory_contexts";
	int			opt;

	while ((opt = getopt(argc, argv, "d:m:c:N:D:")) != -1)
	{
		switch (opt)
		{
			case 'd': conninfo = optarg; break;
			case 'm': mode = optarg; break;
			case 'c': chan = optarg; break;
			case 'N': count = atol(optarg); break;
			case 'D': kind = optarg; break;
			default: return 2;
		}
	}

	conn = connect_or_die(conninfo);
	pid = PQbackendPID(conn);
	exec_or_die(conn, "SELECT 1");
	ctx0 = query_long(conn, ctxsql);
	hwm0 = proc_status_kb(pid, "VmHWM");
	anon0 = proc_status_kb(pid, "RssAnon");

	lit = PQescapeLiteral(conn, chan, strlen(chan));
	snprintf(sql, sizeof(sql),
			 "SELECT count(*) FROM (SELECT %s(%s, %s) FROM generate_series(1, %ld) i) s",
			 notify_fn(mode), lit,
			 strcmp(kind, "same") == 0 ? "'same'" : "i::text", count);

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
	printf("anon_before_kb=%ld\n", anon0);
	printf("anon_after_kb=%ld\n", proc_status_kb(pid, "RssAnon"));

	snprintf(sql, sizeof(sql), "SELECT %s(%s, 'STOP %ld %" PRId64 "')",
			 notify_fn(mode), lit,
			 strcmp(kind, "same") == 0 ? 1L : count, t1);
	exec_or_die(conn, sql);
	PQfreemem(lit);
	fflush(stdout);
	PQfinish(conn);
	return 0;
}

int
main(int argc, char **argv)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);

	if (argc < 2)
	{
		fprintf(stderr, "usage: %s listen|notify|big [options]\n", argv[0]);
		return 2;
	}
	if (strcmp(argv[1], "listen") == 0)
		return cmd_listen(argc - 1, argv + 1);
	if (strcmp(argv[1], "notify") == 0)
		return cmd_notify(argc - 1, argv + 1);
	if (strcmp(argv[1], "big") == 0)
		return cmd_big(argc - 1, argv + 1);
	fprintf(stderr, "listener: unknown subcommand %s\n", argv[1]);
	return 2;
}
