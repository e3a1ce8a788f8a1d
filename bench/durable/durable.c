/*
 * durable.so: an LD_PRELOAD shim that makes a program's file writes
 * durable before it goes on, the rule Medimint's C-STORE answers by: every
 * close() or fclose() of a regular file opened for writing fsyncs the
 * file, then its directory. scripts/bench-system.sh runs dcmtk's storescp under it as the
 * baseline that pays for durability, beside the plain storescp (which
 * leaves its files in the page cache).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int (*real_close)(int);
static int (*real_fclose)(FILE *);

static void make_durable(int fd)
{
	if (!real_close)
		real_close = dlsym(RTLD_NEXT, "close");
	struct stat st;
	int fl = fcntl(fd, F_GETFL);
	if (fl != -1 && (fl & O_ACCMODE) != O_RDONLY && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
		char link[64], path[PATH_MAX];
		snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
		ssize_t n = readlink(link, path, sizeof path - 1);
		fsync(fd);
		if (n > 0) {
			path[n] = 0;
			int d = open(dirname(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (d >= 0) {
				fsync(d);
				real_close(d);
			}
		}
	}
}

int close(int fd)
{
	make_durable(fd);
	return real_close(fd);
}

int fclose(FILE *f)
{
	if (!real_fclose)
		real_fclose = dlsym(RTLD_NEXT, "fclose");
	if (f && fflush(f) == 0)
		make_durable(fileno(f));
	return real_fclose(f);
}
