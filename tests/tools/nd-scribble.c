// SPDX-License-Identifier: MIT
/*
 * nd-scribble: O_DIRECT I/O on a buffer that another thread keeps
 * overwriting, for tests of what a block driver keeps of the caller's pages.
 *
 *   nd-scribble read|write DEV BLOCK PASSES
 *
 * Opens DEV with O_DIRECT and, PASSES times, reads (or writes) the whole
 * device in BLOCK-byte requests from one page-aligned buffer, while a second
 * thread rewrites that buffer with changing bytes the whole time. Only the
 * kernel and the scribbler touch the buffer: what a write sends is whatever
 * the buffer held when the driver copied it. Prints "N reads" or "N writes";
 * exits 1 with a message on any error or short transfer, 2 on bad usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

struct scribbler {
	unsigned char *buf;
	size_t len;
	atomic_bool stop;
};

static void *scribble(void *arg)
{
	struct scribbler *s = arg;
	unsigned char v = 0;

	while (!atomic_load_explicit(&s->stop, memory_order_relaxed))
		memset(s->buf, 0xa5 ^ v++, s->len);
	return NULL;
}

static int parse_size(const char *arg, unsigned long long *out)
{
	char *end;

	errno = 0;
	*out = strtoull(arg, &end, 10);
	return errno || end == arg || *end || !*out ? -1 : 0;
}

int main(int argc, char **argv)
{
	unsigned long long block, passes, n = 0, p;
	struct scribbler s = { .stop = false };
	pthread_t thread;
	int fd, write_mode, err;
	off_t size, off;

	if (argc != 5 || (strcmp(argv[1], "read") && strcmp(argv[1], "write")) ||
	    parse_size(argv[3], &block) || block % 4096 || block > (1u << 30) ||
	    parse_size(argv[4], &passes)) {
		fprintf(stderr, "usage: nd-scribble read|write DEV BLOCK PASSES "
			"(BLOCK a multiple of 4096)\n");
		return 2;
	}
	write_mode = !strcmp(argv[1], "write");
	fd = open(argv[2], (write_mode ? O_WRONLY : O_RDONLY) | O_DIRECT);
	if (fd < 0) {
		fprintf(stderr, "nd-scribble: %s: %s\n", argv[2], strerror(errno));
		return 1;
	}
	size = lseek(fd, 0, SEEK_END);
	if (size < (off_t)block) {
		fprintf(stderr, "nd-scribble: %s: size %lld is less than one block\n",
			argv[2], (long long)size);
		return 1;
	}
	s.len = block;
	s.buf = aligned_alloc(4096, block);
	if (!s.buf) {
		fprintf(stderr, "nd-scribble: out of memory\n");
		return 1;
	}
	memset(s.buf, 0, block);
	err = pthread_create(&thread, NULL, scribble, &s);
	if (err) {
		fprintf(stderr, "nd-scribble: pthread_create: %s\n", strerror(err));
		return 1;
	}
	for (p = 0; p < passes; p++) {
		for (off = 0; off + (off_t)block <= size; off += block, n++) {
			ssize_t r = write_mode ? pwrite(fd, s.buf, block, off) :
						 pread(fd, s.buf, block, off);

			if (r == (ssize_t)block)
				continue;
			fprintf(stderr, "nd-scribble: %s at %lld: %s\n", argv[1],
				(long long)off, r < 0 ? strerror(errno) : "short");
			return 1;
		}
	}
	atomic_store(&s.stop, true);
	pthread_join(thread, NULL);
	if (write_mode && fsync(fd)) {
		fprintf(stderr, "nd-scribble: fsync: %s\n", strerror(errno));
		return 1;
	}
	printf("%llu %s\n", n, write_mode ? "writes" : "reads");
	free(s.buf);
	close(fd);
	return 0;
}
