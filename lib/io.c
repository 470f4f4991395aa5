// SPDX-License-Identifier: MIT
/* Blocking socket helpers and the record send/receive path. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "nd_wire.h"

/* Reads up to len bytes, stopping early only at EOF. -1 on error. */
static ssize_t nd_read_some(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;
	size_t done = 0;

	while (done < len) {
		ssize_t n = read(fd, p + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

int nd_read_full(int fd, void *buf, size_t len)
{
	ssize_t n = nd_read_some(fd, buf, len);

	if (n < 0)
		return -1;
	if ((size_t)n < len) {
		errno = 0;
		return -1;
	}
	return 0;
}

/*
 * sendmsg with MSG_NOSIGNAL so a peer that went away is an error, not a
 * SIGPIPE; plain writev for non-sockets (pipes, files in tests and tools).
 */
static ssize_t nd_sendv_once(int fd, struct iovec *iov, int n, int flags)
{
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = (size_t)n };
	ssize_t r = sendmsg(fd, &msg, MSG_NOSIGNAL | flags);

	if (r < 0 && errno == ENOTSOCK)
		r = writev(fd, iov, n);
	return r;
}

int nd_sendv_full(int fd, struct iovec *iov, int n, int flags)
{
	while (n > 0) {
		int cnt = n > IOV_MAX ? IOV_MAX : n;
		ssize_t w;

		if (!iov->iov_len) {
			iov++;
			n--;
			continue;
		}
		w = nd_sendv_once(fd, iov, cnt, flags);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		if (w == 0) {
			errno = EPIPE;
			return -1;
		}
		/* Skip what was written; the iov array is consumed. */
		while (n > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (w) {
			iov->iov_base = (uint8_t *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

int nd_writev_full(int fd, struct iovec *iov, int n)
{
	return nd_sendv_full(fd, iov, n, 0);
}

int nd_write_full(int fd, const void *buf, size_t len)
{
	struct iovec v = { .iov_base = (void *)buf, .iov_len = len };

	return nd_writev_full(fd, &v, 1);
}

#define ND_SEND_STACK_IOV	16

int nd_send_record(int fd, struct nd_dir *d, const struct iovec *iov, int n)
{
	struct iovec stack[ND_SEND_STACK_IOV + 2], *v = stack;
	uint8_t hdr[ND_RECORD_HDR_LEN], tag[ND_TAG_LEN];
	int ret;

	if (n < 0 || n > INT_MAX - 2)
		return -1;
	if (nd_seal(d, hdr, iov, n, tag))
		return -1;
	if (n > ND_SEND_STACK_IOV) {
		v = calloc((size_t)n + 2, sizeof(*v));
		if (!v)
			return -1;
	}
	v[0].iov_base = hdr;
	v[0].iov_len = sizeof(hdr);
	if (n)
		memcpy(v + 1, iov, (size_t)n * sizeof(*v));
	v[n + 1].iov_base = tag;
	v[n + 1].iov_len = sizeof(tag);
	ret = nd_writev_full(fd, v, n + 2);
	if (v != stack)
		free(v);
	return ret;
}

long nd_recv_record(int fd, struct nd_dir *d, uint8_t *buf, size_t cap)
{
	uint8_t hdr[ND_RECORD_HDR_LEN];
	ssize_t got;
	uint32_t len;

	got = nd_read_some(fd, hdr, sizeof(hdr));
	if (got < 0)
		return ND_RECV_IO;
	if (got == 0)
		return ND_RECV_EOF;
	if ((size_t)got < sizeof(hdr)) {
		errno = 0;
		return ND_RECV_IO;
	}
	len = nd_get32(hdr);
	/* Decide from the header alone: never read a body we will not take. */
	if (len < ND_TAG_LEN || len > cap || !buf)
		return ND_RECV_TOO_BIG;
	if (nd_read_full(fd, buf, len))
		return ND_RECV_IO;
	if (nd_open(d, hdr, buf, len - ND_TAG_LEN, buf + len - ND_TAG_LEN))
		return ND_RECV_AUTH;
	return (long)(len - ND_TAG_LEN);
}
