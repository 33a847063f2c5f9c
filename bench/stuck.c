/*
 * stuck.c -- libpq driver for bench/stuck.sh: what one stuck listener costs
 * the notifiers.  One process, one case; the result is printed as key=value
 * lines that stuck.sh reads with awk.
 *
 *   stuck -d CONNINFO -m core|ext -c CHANNEL [-k CLIENTS] [-W WARMUP_S]
 *         [-X MAXWAIT_S] [-t SECONDS] [-P PAYLOAD_BYTES] [-i SQL]
 *         [-s none|xact|noread] [-a ACTION]
 *
 * Threads, each with its own connection:
 *   - CLIENTS notifiers, each committing back to back, until the window
 *     ends, the one-round-trip simple query
 *         BEGIN; [SQL;] SELECT pg_notify|ext_notify(CHANNEL, repeat('x', PAYLOAD)); COMMIT
 *     (SQL: -i, e.g. an INSERT) and counting its commits and its failures
 *     with SQLSTATE 54000 ("too many notifications in the NOTIFY queue")
 *     and the "NOTIFY queue is N% full" WARNINGs; any other error is
 *     counted apart (other_errors) and, if the connection is gone, ends
 *     that notifier (notifier_lost).  Only what completes in the measured
 *     window of SECONDS goes into the rates.  The window starts after
 *     WARMUP_S; with a stuck listener on notify_ext, also no earlier than
 *     0.5 s after the ring filled (the first 54000, a sample with the
 *     queue 95% full, or the stuck backend gone), and no later than
 *     WARMUP_S + MAXWAIT_S (default 10): window_start_s, filled_s;
 *   - a healthy listener on CHANNEL (LISTEN, or ext_listen), reading its
 *     socket at once: deliveries received in the window, and in all (it
 *     drains for up to 10 s after the notifiers stop), and any notify_ext
 *     gap WARNING (SQLSTATE 01N01) it gets, which would mean it was skipped;
 *   - unless -s none, the stuck listener, started first: it listens on
 *     CHANNEL, then either stays in an open transaction (xact: BEGIN;
 *     SELECT 1;) or never reads its socket again (noread), to the end;
 *   - a monitor sampling every 100 ms the queue usage of the system
 *     measured (pg_notification_queue_usage() or
 *     ext_notification_queue_usage()), core's pg_notify/ size, and whether
 *     the stuck listener's backend still exists.
 *
 * -a ACTION: the notify_ext.queue_full_action each notifier's backend must
 * see (checked with SHOW; exit 1 if not), so that a reload that has not
 * reached new backends yet cannot go unnoticed.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

static const char *conninfo = "";
static const char *mode = "ext";
static const char *channel = "stuck";
static const char *stuck_kind = "none";
static const char *want_action = NULL;
static int	clients = 4;
static double warm_s = 0;
static double meas_s = 5;
static double maxwait_s = 10;
static int	payload = 1000;
static const char *insert_sql = NULL;

static int64_t t0_us;			/* CLOCK_MONOTONIC at the start of the notifiers */

/*
 * The measured window, relative to t0_us.  With a stuck listener on
 * notify_ext, the warm-up lasts at least WARMUP_S and until 0.5 s after the
 * ring first filled (first 54000 failure, usage >= 95%, or the stuck
 * backend gone), at most WARMUP_S + MAXWAIT_S: until then win_start_us
 * holds that cap, which is later than any time already classified.
 */
static int64_t win_start_us,
			win_end_us,
			meas_us,
			warm_us;
static int64_t event_us = -1;	/* when the ring first filled; -1 not (yet) */
static int	adaptive = 0;
static pthread_mutex_t event_lock = PTHREAD_MUTEX_INITIALIZER;

#define EVENT_MARGIN_US 500000

static int64_t
win_start(void)
{
	return __atomic_load_n(&win_start_us, __ATOMIC_SEQ_CST);
}

static int64_t
win_end(void)
{
	return __atomic_load_n(&win_end_us, __ATOMIC_SEQ_CST);
}

static void
ring_filled(int64_t t)
{
	if (!adaptive)
		return;
	pthread_mutex_lock(&event_lock);
	if (event_us < 0)
	{
		int64_t		ws = t + EVENT_MARGIN_US;

		if (ws < warm_us)
			ws = warm_us;
		if (ws < win_start())	/* never later than the cap */
		{
			__atomic_store_n(&win_end_us, ws + meas_us, __ATOMIC_SEQ_CST);
			__atomic_store_n(&win_start_us, ws, __ATOMIC_SEQ_CST);
		}
		event_us = t;
	}
	pthread_mutex_unlock(&event_lock);
}
static volatile int notifiers_done = 0;
static volatile int all_done = 0;
static volatile int stuck_pid = 0;
static char *notify_sql;

static int64_t
mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t
rel_us(void)
{
	return mono_us() - t0_us;
}

static void
die(const char *what, PGconn *conn)
{
	fprintf(stderr, "stuck: %s: %s\n", what,
			conn ? PQerrorMessage(conn) : strerror(errno));
	exit(1);
}

static PGconn *
connect_or_die(void)
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
		fprintf(stderr, "stuck: %s: %s", sql, PQerrorMessage(conn));
		exit(1);
	}
	PQclear(res);
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

static int
cmp_i64(const void *a, const void *b)
{
	int64_t		x = *(const int64_t *) a;
	int64_t		y = *(const int64_t *) b;

	return (x > y) - (x < y);
}

static void
listen_on(PGconn *conn)
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

/* -------------------------------------------------------------- notifiers */

typedef struct Notifier
{
	pthread_t	th;
	PGconn	   *conn;
	long		commits,		/* in the window */
				failures,
				warm_commits,	/* before it */
				warm_failures,
				total_commits,	/* all, after the window too */
				other_errors;
	int			lost;
	int64_t		first_failure_us;	/* relative; -1 none */
	long		queue_warnings; /* "NOTIFY queue is N% full" WARNINGs received */
	int64_t    *lat;			/* commit round trips in the window, us */
	size_t		nlat,
				maxlat;
	char		other_msg[256];
} Notifier;

static void
notifier_notice(void *arg, const PGresult *res)
{
	Notifier   *nt = arg;
	const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

	if (msg != NULL && strstr(msg, "NOTIFY queue is") != NULL)
		nt->queue_warnings++;
}

static void *
notifier_main(void *arg)
{
	Notifier   *nt = arg;

	nt->first_failure_us = -1;
	for (;;)
	{
		int64_t		s = rel_us(),
					e;
		PGresult   *res;
		ExecStatusType st;

		if (s >= win_end())
			break;
		res = PQexec(nt->conn, notify_sql);
		e = rel_us();
		st = PQresultStatus(res);
		if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
		{
			nt->total_commits++;
			if (e < win_start())
				nt->warm_commits++;
			else if (e < win_end())
			{
				nt->commits++;
				if (nt->nlat == nt->maxlat)
				{
					nt->maxlat = nt->maxlat ? 2 * nt->maxlat : 65536;
					nt->lat = realloc(nt->lat, nt->maxlat * sizeof(int64_t));
				}
				nt->lat[nt->nlat++] = e - s;
			}
		}
		else
		{
			const char *ss = PQresultErrorField(res, PG_DIAG_SQLSTATE);

			if (ss != NULL && strcmp(ss, "54000") == 0)
			{
				if (nt->first_failure_us < 0)
				{
					nt->first_failure_us = e;
					ring_filled(e);
				}
				if (e < win_start())
					nt->warm_failures++;
				else if (e < win_end())
					nt->failures++;
			}
			else
			{
				nt->other_errors++;
				if (nt->other_msg[0] == '\0')
					snprintf(nt->other_msg, sizeof(nt->other_msg), "%s",
							 PQerrorMessage(nt->conn));
			}
			if (PQstatus(nt->conn) != CONNECTION_OK)
			{
				nt->lost = 1;
				PQclear(res);
				break;
			}
			if (PQtransactionStatus(nt->conn) != PQTRANS_IDLE)
				PQclear(PQexec(nt->conn, "ROLLBACK"));
		}
		PQclear(res);
	}
	return NULL;
}

/* ------------------------------------------------------- stuck listener */

static long stuck_missed = 0;	/* from notify_ext's gap WARNINGs (01N01) */

static void
stuck_notice(void *arg, const PGresult *res)
{
	const char *ss = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

	(void) arg;
	if (ss != NULL && strcmp(ss, "01N01") == 0 && msg != NULL)
		stuck_missed += atol(msg + strcspn(msg, "0123456789"));
}

static void
quiet_notice(void *arg, const PGresult *res)
{
	(void) arg;
	(void) res;
}

/* ------------------------------------------------------- healthy listener */

typedef struct Healthy
{
	pthread_t	th;
	PGconn	   *conn;
	long		window,			/* received in the window */
				total;
	long		gap_notices;
	int			lost;
	int64_t		last_us;
} Healthy;

static void
healthy_notice(void *arg, const PGresult *res)
{
	Healthy    *h = arg;
	const char *ss = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	if (ss != NULL && strcmp(ss, "01N01") == 0)
		h->gap_notices++;
}

static void *
healthy_main(void *arg)
{
	Healthy    *h = arg;
	struct pollfd pfd;

	pfd.fd = PQsocket(h->conn);
	pfd.events = POLLIN;
	for (;;)
	{
		PGnotify   *n;
		int			rc;

		if (all_done)
			break;
		rc = poll(&pfd, 1, 50);
		if (rc < 0 && errno != EINTR)
			die("poll", NULL);
		if (rc <= 0)
			continue;
		if (!PQconsumeInput(h->conn))
		{
			fprintf(stderr, "stuck: healthy listener lost: %s", PQerrorMessage(h->conn));
			h->lost = 1;
			break;
		}
		while ((n = PQnotifies(h->conn)) != NULL)
		{
			int64_t		t = rel_us();

			h->total++;
			if (t >= win_start() && t < win_end())
				h->window++;
			h->last_us = t;
			PQfreemem(n);
		}
	}
	return NULL;
}

/* ---------------------------------------------------------------- monitor */

typedef struct Monitor
{
	pthread_t	th;
	PGconn	   *conn;
	double		usage_max,
				usage_end,
				usage_win_min;	/* lowest sample in the window */
	int64_t		full_us;		/* first sample with usage >= 0.95; -1 none */
	long		pgnotify_kb_max;
	int64_t		stuck_gone_us;	/* first sample without the stuck backend; -1 */
	long		samples;
} Monitor;

static void *
monitor_main(void *arg)
{
	Monitor    *m = arg;
	char		sql[512];

	m->full_us = -1;
	m->stuck_gone_us = -1;
	m->usage_win_min = -1;
	snprintf(sql, sizeof(sql),
			 "SELECT %s, "
			 "(SELECT coalesce(sum((pg_stat_file('pg_notify/' || f)).size), 0) / 1024"
			 "   FROM pg_ls_dir('pg_notify') f)::bigint, "
			 "(SELECT count(*) FROM pg_stat_activity WHERE pid = $1)",
			 strcmp(mode, "core") == 0 ? "pg_notification_queue_usage()"
			 : "ext_notification_queue_usage()");
	while (!notifiers_done)
	{
		char		pidbuf[16];
		const char *params[1] = {pidbuf};
		PGresult   *res;
		int64_t		t = rel_us();

		snprintf(pidbuf, sizeof(pidbuf), "%d", stuck_pid);
		res = PQexecParams(m->conn, sql, 1, NULL, params, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_TUPLES_OK)
		{
			fprintf(stderr, "stuck: monitor: %s", PQerrorMessage(m->conn));
			PQclear(res);
			break;
		}
		{
			double		u = atof(PQgetvalue(res, 0, 0));
			long		kb = atol(PQgetvalue(res, 0, 1));
			int			there = atoi(PQgetvalue(res, 0, 2));

			m->samples++;
			if (u > m->usage_max)
				m->usage_max = u;
			m->usage_end = u;
			if (t >= win_start() && t < win_end() &&
				(m->usage_win_min < 0 || u < m->usage_win_min))
				m->usage_win_min = u;
			if (u >= 0.95 && m->full_us < 0)
			{
				m->full_us = t;
				ring_filled(t);
			}
			if (kb > m->pgnotify_kb_max)
				m->pgnotify_kb_max = kb;
			if (stuck_pid != 0 && !there && m->stuck_gone_us < 0)
			{
				m->stuck_gone_us = t;
				ring_filled(t);
			}
		}
		PQclear(res);
		sleep_us(100000);
	}
	return NULL;
}

/* ------------------------------------------------------------------- main */

static double
pct(int64_t *a, size_t n, double p)
{
	size_t		i;

	if (n == 0)
		return -1;
	i = (size_t) (p * (n - 1) + 0.5);
	return (double) a[i];
}

int
main(int argc, char **argv)
{
	int			opt;
	PGconn	   *stuck = NULL;
	Notifier   *ns;
	Healthy		h;
	Monitor		m;
	char	   *lit;
	char		action[64] = "";
	long		commits = 0,
				failures = 0,
				warm_commits = 0,
				warm_failures = 0,
				total_commits = 0,
				other_errors = 0,
				queue_warnings = 0;
	int			lost = 0;
	char		stuck_end[200] = "";
	int64_t		first_failure = -1;
	int64_t    *lat = NULL;
	size_t		nlat = 0;
	char		other_msg[256] = "";
	int64_t		drain_start;
	int64_t		notifiers_end_us;

	while ((opt = getopt(argc, argv, "d:m:c:k:W:X:t:P:s:a:i:")) != -1)
	{
		switch (opt)
		{
			case 'd': conninfo = optarg; break;
			case 'm': mode = optarg; break;
			case 'c': channel = optarg; break;
			case 'k': clients = atoi(optarg); break;
			case 'W': warm_s = atof(optarg); break;
			case 'X': maxwait_s = atof(optarg); break;
			case 't': meas_s = atof(optarg); break;
			case 'P': payload = atoi(optarg); break;
			case 's': stuck_kind = optarg; break;
			case 'a': want_action = optarg; break;
			case 'i': insert_sql = optarg; break;
			default: return 2;
		}
	}
	if (strcmp(mode, "core") != 0 && strcmp(mode, "ext") != 0)
	{
		fprintf(stderr, "stuck: -m core|ext\n");
		return 2;
	}
	if (strcmp(stuck_kind, "none") != 0 && strcmp(stuck_kind, "xact") != 0 &&
		strcmp(stuck_kind, "noread") != 0)
	{
		fprintf(stderr, "stuck: -s none|xact|noread\n");
		return 2;
	}
	if (clients < 1 || meas_s <= 0 || payload < 0 || payload > 7900)
	{
		fprintf(stderr, "stuck: bad -k, -t or -P\n");
		return 2;
	}
	warm_us = (int64_t) (warm_s * 1e6);
	meas_us = (int64_t) (meas_s * 1e6);
	adaptive = strcmp(mode, "ext") == 0 && strcmp(stuck_kind, "none") != 0;
	win_start_us = warm_us + (adaptive ? (int64_t) (maxwait_s * 1e6) : 0);
	win_end_us = win_start_us + meas_us;

	/* the stuck listener first, so that it holds everything sent after */
	if (strcmp(stuck_kind, "none") != 0)
	{
		stuck = connect_or_die();
		PQsetNoticeReceiver(stuck, stuck_notice, NULL);
		listen_on(stuck);
		stuck_pid = PQbackendPID(stuck);
		if (strcmp(stuck_kind, "xact") == 0)
		{
			exec_or_die(stuck, "BEGIN");
			exec_or_die(stuck, "SELECT 1");
		}
		/* noread: from here on nothing reads its socket */
	}

	memset(&h, 0, sizeof(h));
	h.conn = connect_or_die();
	PQsetNoticeReceiver(h.conn, healthy_notice, &h);
	listen_on(h.conn);
	if (PQsetnonblocking(h.conn, 1) != 0)
		die("setnonblocking", h.conn);

	memset(&m, 0, sizeof(m));
	m.conn = connect_or_die();
	PQsetNoticeReceiver(m.conn, quiet_notice, NULL);

	ns = calloc(clients, sizeof(Notifier));
	for (int i = 0; i < clients; i++)
	{
		char		sql[512];

		ns[i].conn = connect_or_die();
		PQsetNoticeReceiver(ns[i].conn, notifier_notice, &ns[i]);
		if (strcmp(mode, "ext") == 0)
		{
			PGresult   *res = PQexec(ns[i].conn, "SHOW notify_ext.queue_full_action");

			if (PQresultStatus(res) != PGRES_TUPLES_OK)
				die("SHOW notify_ext.queue_full_action", ns[i].conn);
			snprintf(action, sizeof(action), "%s", PQgetvalue(res, 0, 0));
			PQclear(res);
			if (want_action != NULL && strcmp(action, want_action) != 0)
			{
				fprintf(stderr, "stuck: notifier backend has queue_full_action %s, not %s\n",
						action, want_action);
				return 1;
			}
		}
		if (i == 0)
		{
			lit = PQescapeLiteral(ns[i].conn, channel, strlen(channel));
			snprintf(sql, sizeof(sql), "BEGIN; %s%sSELECT %s(%s, repeat('x', %d)); COMMIT",
					 insert_sql ? insert_sql : "", insert_sql ? "; " : "",
					 strcmp(mode, "core") == 0 ? "pg_notify" : "ext_notify", lit, payload);
			PQfreemem(lit);
			notify_sql = strdup(sql);
		}
	}

	t0_us = mono_us();
	if (pthread_create(&h.th, NULL, healthy_main, &h) != 0 ||
		pthread_create(&m.th, NULL, monitor_main, &m) != 0)
		die("pthread_create", NULL);
	for (int i = 0; i < clients; i++)
		if (pthread_create(&ns[i].th, NULL, notifier_main, &ns[i]) != 0)
			die("pthread_create", NULL);
	for (int i = 0; i < clients; i++)
	{
		pthread_join(ns[i].th, NULL);
		commits += ns[i].commits;
		failures += ns[i].failures;
		warm_commits += ns[i].warm_commits;
		warm_failures += ns[i].warm_failures;
		total_commits += ns[i].total_commits;
		other_errors += ns[i].other_errors;
		queue_warnings += ns[i].queue_warnings;
		lost += ns[i].lost;
		if (ns[i].first_failure_us >= 0 &&
			(first_failure < 0 || ns[i].first_failure_us < first_failure))
			first_failure = ns[i].first_failure_us;
		if (other_msg[0] == '\0')
			memcpy(other_msg, ns[i].other_msg, sizeof(other_msg));
		lat = realloc(lat, (nlat + ns[i].nlat + 1) * sizeof(int64_t));
		memcpy(lat + nlat, ns[i].lat, ns[i].nlat * sizeof(int64_t));
		nlat += ns[i].nlat;
	}
	notifiers_end_us = rel_us();
	notifiers_done = 1;
	pthread_join(m.th, NULL);

	/* let the healthy listener drain: up to 10 s, or 1 s without progress */
	drain_start = rel_us();
	{
		long		last = -1;
		int64_t		last_change = drain_start;

		while (!h.lost && h.total < total_commits && rel_us() - drain_start < 10000000)
		{
			if (h.total != last)
			{
				last = h.total;
				last_change = rel_us();
			}
			else if (rel_us() - last_change > 1000000)
				break;
			sleep_us(20000);
		}
	}
	all_done = 1;
	pthread_join(h.th, NULL);

	/* was the stuck listener still there at the end? */
	if (stuck != NULL && m.stuck_gone_us < 0)
	{
		char		sql[128];
		PGresult   *res;

		snprintf(sql, sizeof(sql), "SELECT count(*) FROM pg_stat_activity WHERE pid = %d", stuck_pid);
		res = PQexec(m.conn, sql);
		if (PQresultStatus(res) == PGRES_TUPLES_OK && atoi(PQgetvalue(res, 0, 0)) == 0)
			m.stuck_gone_us = rel_us();
		PQclear(res);
	}

	/*
	 * End the stuck listener: xact rolls back (and gets the gap WARNING
	 * under skip, or finds its session ended under terminate); a noread
	 * backend may be blocked writing to us, and closing the socket frees it.
	 */
	if (stuck != NULL)
	{
		if (strcmp(stuck_kind, "xact") == 0)
		{
			PGresult   *res = PQexec(stuck, "ROLLBACK");

			if (PQresultStatus(res) != PGRES_COMMAND_OK)
				snprintf(stuck_end, sizeof(stuck_end), "%s", PQerrorMessage(stuck));
			PQclear(res);
		}
		PQfinish(stuck);
	}
	for (char *c = stuck_end; *c; c++)
		if (*c == '\n' || *c == '\t')
			*c = ' ';

	qsort(lat, nlat, sizeof(int64_t), cmp_i64);
	printf("mode=%s\n", mode);
	printf("stuck=%s\n", stuck_kind);
	printf("action=%s\n", action[0] ? action : "-");
	printf("clients=%d\n", clients);
	printf("payload=%d\n", payload);
	printf("warm_s=%.3f\n", warm_s);
	printf("window_start_s=%.3f\n", win_start() / 1e6);
	printf("window_s=%.3f\n", meas_s);
	printf("filled_s=%.3f\n", event_us < 0 ? -1.0 : event_us / 1e6);
	printf("elapsed_s=%.3f\n", notifiers_end_us / 1e6);
	printf("commits=%ld\n", commits);
	printf("failures=%ld\n", failures);
	printf("commit_ps=%.1f\n", commits / meas_s);
	printf("fail_ps=%.1f\n", failures / meas_s);
	printf("warm_commits=%ld\n", warm_commits);
	printf("warm_failures=%ld\n", warm_failures);
	printf("total_commits=%ld\n", total_commits);
	printf("other_errors=%ld\n", other_errors);
	printf("notifier_lost=%d\n", lost);
	if (other_msg[0])
	{
		char	   *nl = strchr(other_msg, '\n');

		if (nl)
			*nl = '\0';
		printf("other_error_msg=%s\n", other_msg);
	}
	printf("first_failure_s=%.3f\n", first_failure < 0 ? -1.0 : first_failure / 1e6);
	printf("lat_p50_us=%.0f\n", pct(lat, nlat, 0.50));
	printf("lat_p99_us=%.0f\n", pct(lat, nlat, 0.99));
	printf("lat_max_us=%.0f\n", nlat ? (double) lat[nlat - 1] : -1.0);
	printf("delivered_window=%ld\n", h.window);
	printf("deliveries_ps=%.1f\n", h.window / meas_s);
	printf("delivered_total=%ld\n", h.total);
	printf("healthy_gap_notices=%ld\n", h.gap_notices);
	printf("healthy_lost=%d\n", h.lost);
	printf("usage_max=%.6f\n", m.usage_max);
	printf("usage_window_min=%.6f\n", m.usage_win_min);
	printf("usage_end=%.6f\n", m.usage_end);
	printf("full_s=%.3f\n", m.full_us < 0 ? -1.0 : m.full_us / 1e6);
	printf("pg_notify_kb_max=%ld\n", m.pgnotify_kb_max);
	printf("stuck_pid=%d\n", stuck_pid);
	printf("stuck_gone_s=%.3f\n", m.stuck_gone_us < 0 ? -1.0 : m.stuck_gone_us / 1e6);
	printf("stuck_missed=%ld\n", stuck_missed);
	printf("stuck_end=%s\n", stuck_end);
	printf("queue_warnings=%ld\n", queue_warnings);
	printf("monitor_samples=%ld\n", m.samples);
	fflush(stdout);

	PQfinish(h.conn);
	PQfinish(m.conn);
	for (int i = 0; i < clients; i++)
		PQfinish(ns[i].conn);
	return 0;
}
