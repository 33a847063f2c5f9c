/*
 * t/fault_shim.c: an LD_PRELOAD shim for t/003_spill_faults.pl.
 *
 * While the file named by $NE_FAULT_FLAG exists, writes (pwrite, write) to
 * files under a "pg_notify_ext" directory fail with ENOSPC, and reads
 * (pread, read) from them fail with EIO when the flag file contains "eio".
 * Every other file is left alone.  Built by the test with cc -shared.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

typedef ssize_t (*pwrite_fn) (int, const void *, size_t, off_t);
typedef ssize_t (*pread_fn) (int, void *, size_t, off_t);

/* 0: no fault; 1: writes fail (ENOSPC); 2: reads fail too (EIO) */
static int
fault_mode(int fd)
{
	const char *flag = getenv("NE_FAULT_FLAG");
	char		link[64];
	char		path[4096];
	char		buf[8] = {0};
	ssize_t		n;
	int			ffd;

	if (flag == NULL)
		return 0;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, path, sizeof(path) - 1);
	if (n <= 0)
		return 0;
	path[n] = '\0';
	if (strstr(path, "/pg_notify_ext/") == NULL)
		return 0;
	ffd = open(flag, O_RDONLY);
	if (ffd < 0)
		return 0;
	n = ((pread_fn) dlsym(RTLD_NEXT, "pread"))(ffd, buf, sizeof(buf) - 1, 0);
	close(ffd);
	return (n >= 3 && strncmp(buf, "eio", 3) == 0) ? 2 : 1;
}

ssize_t
pwrite(int fd, const void *buf, size_t count, off_t offset)
{
	static pwrite_fn real = NULL;

	if (real == NULL)
		real = (pwrite_fn) dlsym(RTLD_NEXT, "pwrite");
	if (fault_mode(fd) >= 1)
	{
		errno = ENOSPC;
		return -1;
	}
	return real(fd, buf, count, offset);
}

ssize_t
pwrite64(int fd, const void *buf, size_t count, off_t offset)
{
	return pwrite(fd, buf, count, offset);
}

ssize_t
pread(int fd, void *buf, size_t count, off_t offset)
{
	static pread_fn real = NULL;

	if (real == NULL)
		real = (pread_fn) dlsym(RTLD_NEXT, "pread");
	if (fault_mode(fd) == 2)
	{
		errno = EIO;
		return -1;
	}
	return real(fd, buf, count, offset);
}

ssize_t
pread64(int fd, void *buf, size_t count, off_t offset)
{
	return pread(fd, buf, count, offset);
}
