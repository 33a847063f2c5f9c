/*
 * multilisten.c -- many listening sessions in one libpq process, for
 * bench/fanout_scale.sh and bench/channels.sh.
 *
 *   multilisten -d CONNINFO -m core|ext -n CONNS [-k CHANNELS] [-c FMT]
 *               [-p PHASES] [-l] [-r READYFILE] [-w MAXSECONDS]
 *
 * Opens CONNS connections.  Connection i listens (core: LISTEN, ext:
 * ext_listen()) on CHANNELS channels, named FMT with "%d" replaced by
 * i * CHANNELS + j (j = 0 .. CHANNELS - 1); a FMT without "%d" gives every
 * connection the same channel (then CHANNELS must be 1).  Each connection
 * checks pg_listening_channels() / ext_listening_channels() afterwards.
 * Then READYFILE gets "pids=<backend pids, comma-separated>" and the
 * program waits on all sockets with poll() and reads every notification
 * as it arrives.
 *
 * A run is split into PHASES phases (default 1).  A notification whose
 * payload starts with "STOP" ends the current phase of the connection that
 * receives it ("STOP <sent> <t0_us>": how many notifications the notifier
 * sent in the phase and when it started, CLOCK_REALTIME us; both optional);
 * every other notification is counted in the connection's current phase,
 * and with -l its payload, the CLOCK_REALTIME us at which it was sent
 * (the notifier runs on the same machine), gives a latency sample.  Once
 * every connection has ended phase P, the program prints that phase's
 * results as key=value lines prefixed "pP_", the last one "pP_done=1"
 * (stdout is line-buffered, so a script can wait for it), and goes on.  It
 * exits after the last phase, on SIGTERM/SIGINT, or after MAXSECONDS; then
 * the phases not finished are printed as they are, with "pP_done=0".
 *
 * Per phase: total (notifications received by all connections), min/max
 * per connection, first_us/last_us (first and last receipt), stop_sent and
 * stop_t0 (from the STOP payload), complete (every connection got exactly
 * stop_sent), deliveries_per_s = total / (last receipt - stop_t0), and with
 * -l the latency percentiles in us (lat_p50, lat_p99, lat_p999, lat_max,
 * lat_n samples, bad_payloads).
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

#define MAX_PHASES 16

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
	fprintf(stderr, "multilisten: %s: %s\n", what,
			conn ? PQerrorMessage(conn) : strerror(errno));
	exit(1);
}

static void *
xrealloc(void *p, size_t n)
{
	void	   *q = realloc(p, n);

	if (q == NULL)
		die("out of memory", NULL);
	return q;
}

/* run a (possibly multi-statement) query; every result must succeed */
static void
exec_or_die(PGconn *conn, const char *sql)
{
	PGresult   *res;
	int			bad = 0;

	if (!PQsendQuery(conn, sql))
		die("send", conn);
	while ((res = PQgetResult(conn)) != NULL)
	{
		if (PQresultStatus(res) != PGRES_COMMAND_OK &&
			PQresultStatus(res) != PGRES_TUPLES_OK)
		{
			fprintf(stderr, "multilisten: query failed: %s", PQresultErrorMessage(res));
			bad = 1;
		}
		PQclear(res);
	}
	if (bad)
		exit(1);
}

static long
query_long(PGconn *conn, const char *sql)
{
	PGresult   *res = PQexec(conn, sql);
	long		v;

	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) < 1)
		die(sql, conn);
	v = atol(PQgetvalue(res, 0, 0));
	PQclear(res);
	return v;
}

static int
cmp_i64(const void *a, const void *b)
{
	int64_t		x = *(const int64_t *) a;
	int64_t		y = *(const int64_t *) b;

	return (x > y) - (x < y);
}

typedef struct Conn
{
	PGconn	   *conn;
	int			pid;
	int			phase;			/* phases ended so far */
	int			lost;
	long		count[MAX_PHASES];
} Conn;

typedef struct Phase
{
	int			ended;			/* connections that ended it */
	int64_t		first_us;
	int64_t		last_us;
	long		stop_sent;
	int64_t		stop_t0;
	int64_t    *lat;
	size_t		nlat;
	size_t		maxlat;
	long		bad_payloads;
} Phase;

/* a string buffer that grows */
typedef struct Buf
{
	char	   *s;
	size_t		len;
	size_t		cap;
} Buf;

static void
buf_add(Buf *b, const char *s)
{
	size_t		n = strlen(s);

	if (b->len + n + 1 > b->cap)
	{
		b->cap = (b->len + n + 1) * 2;
		b->s = xrealloc(b->s, b->cap);
	}
	memcpy(b->s + b->len, s, n + 1);
	b->len += n;
}

static void
print_phase(int p, Phase *ph, Conn *cs, int n, int latency, int done)
{
	long		total = 0,
				mn = -1,
				mx = 0;
	int			complete;

	for (int i = 0; i < n; i++)
	{
		long		c = cs[i].count[p];

		total += c;
		if (mn < 0 || c < mn)
			mn = c;
		if (c > mx)
			mx = c;
	}
	complete = ph->ended == n && ph->stop_sent >= 0 &&
		mn == ph->stop_sent && mx == ph->stop_sent;
	printf("p%d_conns=%d\n", p + 1, n);
	printf("p%d_ended=%d\n", p + 1, ph->ended);
	printf("p%d_total=%ld\n", p + 1, total);
	printf("p%d_min=%ld\n", p + 1, mn);
	printf("p%d_max=%ld\n", p + 1, mx);
	printf("p%d_first_us=%" PRId64 "\n", p + 1, ph->first_us);
	printf("p%d_last_us=%" PRId64 "\n", p + 1, ph->last_us);
	printf("p%d_stop_sent=%ld\n", p + 1, ph->stop_sent);
	printf("p%d_stop_t0=%" PRId64 "\n", p + 1, ph->stop_t0);
	printf("p%d_complete=%d\n", p + 1, complete);
	if (ph->stop_t0 > 0 && ph->last_us > ph->stop_t0)
		printf("p%d_deliveries_per_s=%.1f\n", p + 1,
			   (double) total * 1e6 / (double) (ph->last_us - ph->stop_t0));
	if (latency)
	{
		printf("p%d_bad_payloads=%ld\n", p + 1, ph->bad_payloads);
		printf("p%d_lat_n=%zu\n", p + 1, ph->nlat);
		if (ph->nlat > 0)
		{
			int64_t    *l = ph->lat;
			size_t		k = ph->nlat;

			qsort(l, k, sizeof(int64_t), cmp_i64);
			printf("p%d_lat_p50=%" PRId64 "\n", p + 1, l[k / 2]);
			printf("p%d_lat_p99=%" PRId64 "\n", p + 1, l[(size_t) ((k - 1) * 0.99)]);
			printf("p%d_lat_p999=%" PRId64 "\n", p + 1, l[(size_t) ((k - 1) * 0.999)]);
			printf("p%d_lat_max=%" PRId64 "\n", p + 1, l[k - 1]);
		}
	}
	printf("p%d_done=%d\n", p + 1, done);
	fflush(stdout);
}

int
main(int argc, char **argv)
{
	const char *conninfo = "";
	const char *mode = "ext";
	const char *fmt = "c";
	const char *readyfile = NULL;
	int			n = 1,
				k = 1,
				nphases = 1,
				latency = 0,
				opt,
				printed = 0,
				lost = 0;
	double		maxsec = 0;
	int			same_channel;
	Conn	   *cs;
	Phase		ph[MAX_PHASES];
	struct pollfd *pfds;
	struct sigaction sa;
	int64_t		start_mono;

	while ((opt = getopt(argc, argv, "d:m:n:k:c:p:lr:w:")) != -1)
	{
		switch (opt)
		{
			case 'd': conninfo = optarg; break;
			case 'm': mode = optarg; break;
			case 'n': n = atoi(optarg); break;
			case 'k': k = atoi(optarg); break;
			case 'c': fmt = optarg; break;
			case 'p': nphases = atoi(optarg); break;
			case 'l': latency = 1; break;
			case 'r': readyfile = optarg; break;
			case 'w': maxsec = atof(optarg); break;
			default: return 2;
		}
	}
	same_channel = strstr(fmt, "%d") == NULL;
	if (n < 1 || k < 1 || nphases < 1 || nphases > MAX_PHASES ||
		(same_channel && k != 1) ||
		(strcmp(mode, "core") != 0 && strcmp(mode, "ext") != 0))
	{
		fprintf(stderr, "multilisten: bad arguments\n");
		return 2;
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);

	memset(ph, 0, sizeof(ph));
	for (int p = 0; p < nphases; p++)
		ph[p].stop_sent = -1;
	cs = calloc(n, sizeof(Conn));
	pfds = calloc(n, sizeof(struct pollfd));
	if (cs == NULL || pfds == NULL)
		die("out of memory", NULL);

	for (int i = 0; i < n; i++)
	{
		Buf			sql = {NULL, 0, 0};
		char		check[128];

		cs[i].conn = PQconnectdb(conninfo);
		if (PQstatus(cs[i].conn) != CONNECTION_OK)
			die("connect", cs[i].conn);
		cs[i].pid = PQbackendPID(cs[i].conn);
		if (strcmp(mode, "ext") == 0)
			buf_add(&sql, "SELECT count(ext_listen(c)) FROM unnest(ARRAY[");
		for (int j = 0; j < k; j++)
		{
			char		chan[256];
			char	   *q;

			if (same_channel)
				snprintf(chan, sizeof(chan), "%s", fmt);
			else
				snprintf(chan, sizeof(chan), fmt, i * k + j);
			if (strcmp(mode, "core") == 0)
			{
				q = PQescapeIdentifier(cs[i].conn, chan, strlen(chan));
				buf_add(&sql, "LISTEN ");
				buf_add(&sql, q);
				buf_add(&sql, ";");
			}
			else
			{
				q = PQescapeLiteral(cs[i].conn, chan, strlen(chan));
				if (j > 0)
					buf_add(&sql, ",");
				buf_add(&sql, q);
			}
			PQfreemem(q);
		}
		if (strcmp(mode, "ext") == 0)
			buf_add(&sql, "]::text[]) AS c");
		exec_or_die(cs[i].conn, sql.s);
		free(sql.s);
		snprintf(check, sizeof(check), "SELECT count(*) FROM %s()",
				 strcmp(mode, "core") == 0 ? "pg_listening_channels" : "ext_listening_channels");
		if (query_long(cs[i].conn, check) != k)
		{
			fprintf(stderr, "multilisten: connection %d listens on %ld channels, not %d\n",
					i, query_long(cs[i].conn, check), k);
			return 1;
		}
		if (PQsetnonblocking(cs[i].conn, 1) != 0)
			die("setnonblocking", cs[i].conn);
		pfds[i].fd = PQsocket(cs[i].conn);
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
			fprintf(f, "%s%d", i ? "," : "", cs[i].pid);
		fprintf(f, "\n");
		fclose(f);
		if (rename(tmp, readyfile) != 0)
			die("rename ready file", NULL);
	}

	start_mono = mono_us();
	while (printed < nphases && !stop_requested)
	{
		int			rc = poll(pfds, n, 100);

		if (rc < 0 && errno != EINTR)
			die("poll", NULL);
		if (maxsec > 0 && mono_us() - start_mono > (int64_t) (maxsec * 1e6))
		{
			fprintf(stderr, "multilisten: timed out after %.0f s in phase %d\n",
					maxsec, printed + 1);
			break;
		}
		for (int i = 0; rc > 0 && i < n; i++)
		{
			PGnotify   *nt;

			if (pfds[i].revents == 0)
				continue;
			pfds[i].revents = 0;
			if (!PQconsumeInput(cs[i].conn))
			{
				fprintf(stderr, "multilisten: connection %d lost: %s", i,
						PQerrorMessage(cs[i].conn));
				pfds[i].fd = -1;
				cs[i].lost = 1;
				lost++;
				/* it ends every phase it had not ended */
				while (cs[i].phase < nphases)
					ph[cs[i].phase++].ended++;
				continue;
			}
			while ((nt = PQnotifies(cs[i].conn)) != NULL)
			{
				int64_t		t = now_us();
				int			p = cs[i].phase;

				if (p >= nphases)
				{
					/* after the last phase: not counted */
				}
				else if (strncmp(nt->extra, "STOP", 4) == 0)
				{
					long		ns = -1;
					long long	t0 = 0;

					if (sscanf(nt->extra + 4, "%ld %lld", &ns, &t0) >= 1)
					{
						ph[p].stop_sent = ns;
						if (t0 > 0)
							ph[p].stop_t0 = t0;
					}
					ph[p].ended++;
					cs[i].phase++;
				}
				else
				{
					cs[i].count[p]++;
					if (ph[p].first_us == 0 || t < ph[p].first_us)
						ph[p].first_us = t;
					if (t > ph[p].last_us)
						ph[p].last_us = t;
					if (latency)
					{
						char	   *end;
						long long	sent = strtoll(nt->extra, &end, 10);

						if (end == nt->extra || sent <= 0)
							ph[p].bad_payloads++;
						else
						{
							if (ph[p].nlat == ph[p].maxlat)
							{
								ph[p].maxlat = ph[p].maxlat ? ph[p].maxlat * 2 : 65536;
								ph[p].lat = xrealloc(ph[p].lat, ph[p].maxlat * sizeof(int64_t));
							}
							ph[p].lat[ph[p].nlat++] = t - sent;
						}
					}
				}
				PQfreemem(nt);
			}
		}
		while (printed < nphases && ph[printed].ended == n)
		{
			print_phase(printed, &ph[printed], cs, n, latency, 1);
			printed++;
		}
	}
	/* phases not finished (timeout, signal): what there is */
	for (int p = printed; p < nphases; p++)
	{
		print_phase(p, &ph[p], cs, n, latency, 0);
	}
	printf("lost=%d\n", lost);
	fflush(stdout);
	for (int i = 0; i < n; i++)
		PQfinish(cs[i].conn);
	return 0;
}
