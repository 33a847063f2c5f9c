/*
 * payloads.c -- libpq driver for bench/payloads.sh: large payloads through
 * notify_ext against core's usual workaround.  One process, one case; the
 * result is printed as key=value lines that payloads.sh reads with awk.
 *
 *   payloads -d CONNINFO -m ext|ext_row|table -s PAYLOAD_BYTES [-k CLIENTS]
 *            [-W WARMUP_S] [-t SECONDS] [-r RATE] [-T LAT_SECONDS]
 *
 * Modes (what each notifying autocommit statement does; the payload, of
 * PAYLOAD_BYTES random printable ASCII, is a text parameter in each):
 *   ext      SELECT ext_notify('pl', $1): the payload travels in the
 *            notification (the session sets notify_ext.max_payload_size);
 *   ext_row  WITH i AS (INSERT INTO pl_t (body) VALUES ($1) RETURNING id)
 *            SELECT ext_notify('pl', $1) FROM i: the row is written as in
 *            the workaround, and the payload still travels in the
 *            notification (what a re-read costs, apart from the write);
 *   table    WITH i AS (INSERT INTO pl_t (body) VALUES ($1) RETURNING id)
 *            SELECT pg_notify('pl', i.id::text) FROM i: core's workaround,
 *            the id in a core notification, and the listener re-reads the
 *            row (SELECT body FROM pl_t WHERE id = $1) on the same
 *            connection it listens on.
 *
 * Each payload starts with a header "P<phase> S<send time, us>|": the
 * listener (a thread with its own connection, waiting idle on its socket)
 * takes its receipt time once it has the whole payload (for table, once the
 * SELECT returned it) and checks the length.  Phases:
 *   1. throughput: CLIENTS notifiers commit back to back for WARMUP_S +
 *      SECONDS; commits and receipts within the last SECONDS count
 *      (commit_ps, deliveries_ps, MB/s); the latency of those receipts is
 *      sat_lat_*; the notifiers' statement time is commit_p50/p99_us; the
 *      listener then drains (up to 30 s) and behind_at_end tells how many
 *      were still to be received when the window closed;
 *   2. latency: one notifier paced at RATE per second for LAT_SECONDS,
 *      the listener idle between: lat_p50/p99_us, from the notifier's call
 *      to the listener having the whole payload.
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
static int	payload = 65536;
static int	clients = 4;
static double warm_s = 1;
static double meas_s = 5;
static double rate = 40;
static double lat_s = 4;

static int64_t t0_us;
static int64_t win_start_us,
			win_end_us;

static volatile int phase = 0;	/* 1 throughput, 2 latency */
static volatile int stop_notifiers = 0;
static volatile int stop_listener = 0;

/* what the notifiers did (under lock) */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long committed[3];		/* per phase, in all */
static long committed_win;		/* phase 1, completed in the window */
static long failed;
static char first_error[256];
static int64_t *call_us;		/* phase 1 statement times in the window */
static size_t ncall,
			call_cap;

/* what the listener got (its thread only, read after join) */
static long received[3];
static long received_win;
static long bad;
static long missing;
static int64_t behind_at_end = -1;
static int64_t *lat[3];
static size_t nlat[3],
			lat_cap[3];
static double received_bytes_win;

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
	fprintf(stderr, "payloads: %s: %s\n", what,
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
		fprintf(stderr, "payloads: %s: %s", sql, PQerrorMessage(conn));
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
push(int64_t **arr, size_t *n, size_t *cap, int64_t v)
{
	if (*n == *cap)
	{
		*cap = *cap ? *cap * 2 : 4096;
		*arr = realloc(*arr, *cap * sizeof(int64_t));
		if (*arr == NULL)
			die("realloc", NULL);
	}
	(*arr)[(*n)++] = v;
}

static int64_t
pct(int64_t *a, size_t n, double p)
{
	if (n == 0)
		return -1;
	return a[(size_t) ((n - 1) * p)];
}

static const char *
notify_sql(void)
{
	if (strcmp(mode, "ext") == 0)
		return "SELECT ext_notify('pl', $1)";
	if (strcmp(mode, "ext_row") == 0)
		return "WITH i AS (INSERT INTO pl_t (body) VALUES ($1) RETURNING id) "
			"SELECT ext_notify('pl', $1) FROM i";
	return "WITH i AS (INSERT INTO pl_t (body) VALUES ($1) RETURNING id) "
		"SELECT pg_notify('pl', i.id::text) FROM i";
}

/* a payload buffer: random printable ASCII after a header written per call */
#define HDR_LEN 24				/* "P1 S0000000000000000|" + room */

static char *
make_payload(unsigned seed)
{
	char	   *buf = malloc(payload + 1);

	if (buf == NULL)
		die("malloc", NULL);
	for (int i = 0; i < payload; i++)
	{
		seed = seed * 1103515245 + 12345;
		buf[i] = 0x21 + (seed >> 16) % 94;
	}
	buf[payload] = '\0';
	return buf;
}

static void
stamp(char *buf, int ph, int64_t send_us)
{
	char		hdr[HDR_LEN + 1];

	snprintf(hdr, sizeof(hdr), "P%d S%016" PRId64 "|", ph, send_us);
	memcpy(buf, hdr, strlen(hdr));
}

/* one notifying statement; returns 1 if it committed */
static int
notify_once(PGconn *conn, char *buf, int ph, int64_t *t_send, int64_t *t_done)
{
	const char *params[1] = {buf};
	PGresult   *res;
	int			ok;

	*t_send = rel_us();
	stamp(buf, ph, *t_send);
	res = PQexecParams(conn, notify_sql(), 1, NULL, params, NULL, NULL, 0);
	*t_done = rel_us();
	ok = PQresultStatus(res) == PGRES_TUPLES_OK;
	if (!ok)
	{
		pthread_mutex_lock(&lock);
		failed++;
		if (first_error[0] == '\0')
		{
			snprintf(first_error, sizeof(first_error), "%s", PQerrorMessage(conn));
			for (char *c = first_error; *c; c++)
				if (*c == '\n' || *c == '\t')
					*c = ' ';
		}
		pthread_mutex_unlock(&lock);
		if (PQstatus(conn) != CONNECTION_OK)
			die("notifier connection lost", conn);
	}
	PQclear(res);
	return ok;
}

static PGconn *
notifier_conn(void)
{
	PGconn	   *conn = connect_or_die();

	if (strncmp(mode, "ext", 3) == 0)
		exec_or_die(conn, "SET notify_ext.max_payload_size = '16MB'");
	return conn;
}

static void *
notifier_main(void *arg)
{
	int			id = (int) (intptr_t) arg;
	PGconn	   *conn = notifier_conn();
	char	   *buf = make_payload(12345 + id);

	while (!stop_notifiers)
	{
		int64_t		ts,
					td;

		if (notify_once(conn, buf, 1, &ts, &td))
		{
			pthread_mutex_lock(&lock);
			committed[1]++;
			if (td >= win_start_us && td < win_end_us)
			{
				committed_win++;
				push(&call_us, &ncall, &call_cap, td - ts);
			}
			pthread_mutex_unlock(&lock);
		}
	}
	PQfinish(conn);
	free(buf);
	return NULL;
}

/* the listener: handle one received payload (the whole of it) */
static void
got_payload(const char *body, size_t len)
{
	int64_t		now = rel_us();
	int			ph;
	int64_t		sent;

	if (len != (size_t) payload || sscanf(body, "P%d S%" SCNd64 "|", &ph, &sent) != 2 ||
		ph < 1 || ph > 2)
	{
		__atomic_add_fetch(&bad, 1, __ATOMIC_SEQ_CST);
		return;
	}
	__atomic_add_fetch(&received[ph], 1, __ATOMIC_SEQ_CST);
	if (ph == 1 && now >= win_start_us && now < win_end_us)
	{
		received_win++;
		received_bytes_win += len;
	}
	if (ph == 1 && now >= win_end_us && behind_at_end < 0)
	{
		/* the first receipt after the window: what was still to come */
		pthread_mutex_lock(&lock);
		behind_at_end = committed[1] - received[1] + 1;
		pthread_mutex_unlock(&lock);
	}
	/* phase 1: only what was sent in the window; phase 2: all */
	if (ph == 2 || (sent >= win_start_us && sent < win_end_us))
		push(&lat[ph], &nlat[ph], &lat_cap[ph], now - sent);
}

static void *
listener_main(void *arg)
{
	PGconn	   *conn = (PGconn *) arg;
	int			table = strcmp(mode, "table") == 0;

	while (!stop_listener)
	{
		struct pollfd pfd = {.fd = PQsocket(conn),.events = POLLIN};
		PGnotify   *nt;
		int			rc = poll(&pfd, 1, 50);

		if (rc < 0 && errno != EINTR)
			die("poll", NULL);
		if (rc <= 0)
			continue;
		if (!PQconsumeInput(conn))
			die("listener connection lost", conn);
		while ((nt = PQnotifies(conn)) != NULL)
		{
			if (!table)
				got_payload(nt->extra, strlen(nt->extra));
			else
			{
				const char *params[1] = {nt->extra};
				PGresult   *res = PQexecParams(conn, "SELECT body FROM pl_t WHERE id = $1",
											   1, NULL, params, NULL, NULL, 0);

				if (PQresultStatus(res) != PGRES_TUPLES_OK)
					die("re-read", conn);
				if (PQntuples(res) != 1)
					__atomic_add_fetch(&missing, 1, __ATOMIC_SEQ_CST);
				else
					got_payload(PQgetvalue(res, 0, 0), PQgetlength(res, 0, 0));
				PQclear(res);
			}
			PQfreemem(nt);
		}
	}
	return NULL;
}

int
main(int argc, char **argv)
{
	int			opt;
	pthread_t  *nt,
				lt;
	PGconn	   *lconn;
	int64_t		t;
	long		want;
	double		drain_s;

	while ((opt = getopt(argc, argv, "d:m:s:k:W:t:r:T:")) != -1)
	{
		switch (opt)
		{
			case 'd': conninfo = optarg; break;
			case 'm': mode = optarg; break;
			case 's': payload = atoi(optarg); break;
			case 'k': clients = atoi(optarg); break;
			case 'W': warm_s = atof(optarg); break;
			case 't': meas_s = atof(optarg); break;
			case 'r': rate = atof(optarg); break;
			case 'T': lat_s = atof(optarg); break;
			default:
				fprintf(stderr, "payloads: bad option\n");
				return 2;
		}
	}
	if (strcmp(mode, "ext") != 0 && strcmp(mode, "ext_row") != 0 && strcmp(mode, "table") != 0)
	{
		fprintf(stderr, "payloads: -m ext|ext_row|table\n");
		return 2;
	}
	if (payload < HDR_LEN + 8)
	{
		fprintf(stderr, "payloads: -s must be at least %d\n", HDR_LEN + 8);
		return 2;
	}

	lconn = connect_or_die();
	if (strcmp(mode, "table") == 0)
		exec_or_die(lconn, "LISTEN pl");
	else
		exec_or_die(lconn, "SELECT ext_listen('pl')");
	if (PQsetnonblocking(lconn, 0) != 0)
		die("setnonblocking", lconn);

	t0_us = mono_us();
	win_start_us = (int64_t) (warm_s * 1e6);
	win_end_us = win_start_us + (int64_t) (meas_s * 1e6);
	if (pthread_create(&lt, NULL, listener_main, lconn) != 0)
		die("pthread_create", NULL);

	/* phase 1: throughput */
	phase = 1;
	nt = calloc(clients, sizeof(pthread_t));
	for (int i = 0; i < clients; i++)
		if (pthread_create(&nt[i], NULL, notifier_main, (void *) (intptr_t) i) != 0)
			die("pthread_create", NULL);
	sleep_us(win_end_us - rel_us());
	stop_notifiers = 1;
	for (int i = 0; i < clients; i++)
		pthread_join(nt[i], NULL);
	/* drain: the listener gets the rest (up to 30 s) */
	t = rel_us();
	want = committed[1];
	while (__atomic_load_n(&received[1], __ATOMIC_SEQ_CST) +
		   __atomic_load_n(&bad, __ATOMIC_SEQ_CST) +
		   __atomic_load_n(&missing, __ATOMIC_SEQ_CST) < want &&
		   rel_us() - t < 30 * 1000000)
		sleep_us(10000);
	drain_s = (rel_us() - t) / 1e6;

	/* phase 2: latency, one notifier paced at RATE */
	phase = 2;
	{
		PGconn	   *conn = notifier_conn();
		char	   *buf = make_payload(999);
		int64_t		start = rel_us();
		int64_t		step = (int64_t) (1e6 / rate);
		long		n = (long) (lat_s * rate);

		for (long i = 0; i < n; i++)
		{
			int64_t		ts,
						td;

			sleep_us(start + i * step - rel_us());
			if (notify_once(conn, buf, 2, &ts, &td))
				committed[2]++;
		}
		t = rel_us();
		while (__atomic_load_n(&received[2], __ATOMIC_SEQ_CST) < committed[2] &&
			   rel_us() - t < 10 * 1000000)
			sleep_us(5000);
		PQfinish(conn);
		free(buf);
	}
	stop_listener = 1;
	pthread_join(lt, NULL);
	PQfinish(lconn);

	for (int p = 1; p <= 2; p++)
		qsort(lat[p], nlat[p], sizeof(int64_t), cmp_i64);
	qsort(call_us, ncall, sizeof(int64_t), cmp_i64);

	printf("mode=%s\n", mode);
	printf("payload=%d\n", payload);
	printf("clients=%d\n", clients);
	printf("commits_win=%ld\n", committed_win);
	printf("commit_ps=%.1f\n", committed_win / meas_s);
	printf("deliveries_ps=%.1f\n", received_win / meas_s);
	printf("delivered_mb_ps=%.1f\n", received_bytes_win / meas_s / 1048576.0);
	printf("commit_p50_us=%" PRId64 "\n", pct(call_us, ncall, 0.5));
	printf("commit_p99_us=%" PRId64 "\n", pct(call_us, ncall, 0.99));
	printf("sat_lat_n=%zu\n", nlat[1]);
	printf("sat_lat_p50_us=%" PRId64 "\n", pct(lat[1], nlat[1], 0.5));
	printf("sat_lat_p99_us=%" PRId64 "\n", pct(lat[1], nlat[1], 0.99));
	printf("behind_at_end=%" PRId64 "\n", behind_at_end < 0 ? 0 : behind_at_end);
	printf("drain_s=%.2f\n", drain_s);
	printf("committed_total=%ld\n", committed[1] + committed[2]);
	printf("received_total=%ld\n", received[1] + received[2]);
	printf("lat_n=%zu\n", nlat[2]);
	printf("lat_p50_us=%" PRId64 "\n", pct(lat[2], nlat[2], 0.5));
	printf("lat_p99_us=%" PRId64 "\n", pct(lat[2], nlat[2], 0.99));
	printf("lat_max_us=%" PRId64 "\n", nlat[2] ? lat[2][nlat[2] - 1] : -1);
	printf("bad=%ld\n", bad);
	printf("missing=%ld\n", missing);
	printf("failed=%ld\n", failed);
	printf("first_error=%s\n", first_error);
	return 0;
}
