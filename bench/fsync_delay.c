/*
 * fsync_delay.c -- LD_PRELOAD shim for bench/flush.sh: emulates a disk
 * whose cache flush takes milliseconds.
 *
 * Every call of fsync() and fdatasync() in a process that preloads this
 * library first sleeps NE_FSYNC_DELAY_US microseconds (an environment
 * variable, read once when the library is loaded; absent, empty or 0: no
 * delay), then calls the real function and returns what it returned.
 *
 * PostgreSQL 15 on Linux flushes WAL with fdatasync() (wal_sync_method's
 * default there) or fsync() (wal_sync_method = fsync), and data files at
 * checkpoints with fsync().  open_datasync / open_sync (O_DSYNC writes) are
 * not covered, and sync_file_range() (pg_flush_data(): writeback hints) is
 * not a flush, so it is left alone.  The server's fork()ed children inherit
 * the preload from the postmaster, so setting LD_PRELOAD and
 * NE_FSYNC_DELAY_US in the environment of pg_ctl start is enough.
 *
 * The sleep is clock_nanosleep() on CLOCK_MONOTONIC to an absolute time,
 * resumed after signals (backends get SIGUSR1 for latches and
 * notifications), so every flush takes at least the delay.  errno is what
 * the real call left.
 *
 *   cc -O2 -Wall -Wextra -shared -fPIC -o fsync_delay.so fsync_delay.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

typedef int (*sync_fn) (int);

static long delay_us = 0;
static sync_fn real_fsync = NULL;
static sync_fn real_fdatasync = NULL;

__attribute__((constructor))
static void
fsync_delay_init(void)
{
	const char *s = getenv("NE_FSYNC_DELAY_US");

	if (s != NULL && *s != '\0')
	{
		long		v = strtol(s, NULL, 10);

		delay_us = v > 0 ? v : 0;
	}
	real_fsync = (sync_fn) dlsym(RTLD_NEXT, "fsync");
	real_fdatasync = (sync_fn) dlsym(RTLD_NEXT, "fdatasync");
}

static void
flush_delay(void)
{
	struct timespec until;
	int			saved = errno;

	if (delay_us <= 0)
		return;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += delay_us / 1000000;
	until.tv_nsec += (delay_us % 1000000) * 1000;
	if (until.tv_nsec >= 1000000000)
	{
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL) == EINTR)
		;
	errno = saved;
}

int
fsync(int fd)
{
	if (real_fsync == NULL)
		real_fsync = (sync_fn) dlsym(RTLD_NEXT, "fsync");
	flush_delay();
	return real_fsync(fd);
}

int
fdatasync(int fd)
{
	if (real_fdatasync == NULL)
		real_fdatasync = (sync_fn) dlsym(RTLD_NEXT, "fdatasync");
	flush_delay();
	return real_fdatasync(fd);
}
