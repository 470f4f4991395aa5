// SPDX-License-Identifier: MIT
/*
 * nd-fake-hello: a server without the key that answers a ClientHello with
 * one fixed ServerHello and closes, for the client's handshake checks. The
 * export name the client asks for picks the answer:
 *
 *   v1         what a protocol-1 server answers a version-2 client: 72
 *              bytes, version 1, status 9 (unsupported version)
 *   low-order  a version-2 ServerHello whose X25519 share is 0, a
 *              low-order point: the client must abort before any key proof
 *   (other)    closed without an answer
 *
 *   nd-fake-hello [--listen ADDR]   (default 127.0.0.1, a free port)
 *
 * Reads the ClientHello's fixed part and names, as a version-1 server does.
 * Prints "port N" once listening, then one line per connection; runs until
 * killed.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "netdisk_proto.h"

static int recv_all(int fd, uint8_t *p, size_t n)
{
	while (n) {
		ssize_t got = recv(fd, p, n, 0);

		if (got <= 0)
			return -1;
		p += got;
		n -= (size_t)got;
	}
	return 0;
}

static void answer(int fd, unsigned long n)
{
	struct nd_server_hello h = { .version = ND_VERSION };
	uint8_t ch[ND_CLIENT_HELLO_FIXED + 2 * ND_NAME_MAX];
	uint8_t sh[ND_SERVER_HELLO_LEN] = { 0 };
	struct timeval tv = { .tv_sec = 10 };
	size_t len = 0;
	char export[ND_NAME_MAX + 1] = "";
	unsigned int i;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (recv_all(fd, ch, ND_CLIENT_HELLO_FIXED) ||
	    ch[48] > ND_NAME_MAX || ch[49] > ND_NAME_MAX ||
	    recv_all(fd, ch + ND_CLIENT_HELLO_FIXED, ch[48] + ch[49])) {
		printf("nd-fake-hello: conn %lu: no client hello\n", n);
		return;
	}
	memcpy(export, ch + ND_CLIENT_HELLO_FIXED + ch[48], ch[49]);
	export[ch[49]] = '\0';
	if (!strcmp(export, "v1")) {
		nd_put32(sh, ND_MAGIC);
		nd_put16(sh + 4, 1);
		nd_put16(sh + 6, ND_ERR_VERSION);
		len = 72;
	} else if (!strcmp(export, "low-order")) {
		for (i = 0; i < ND_RANDOM_LEN; i++)
			h.random[i] = (uint8_t)rand();
		for (i = 0; i < ND_HASH_LEN; i++)
			h.verify[i] = (uint8_t)rand();
		/* h.share stays 0, a low-order point: dh would be 0. */
		nd_server_hello_encode(sh, &h);
		len = ND_SERVER_HELLO_LEN;
	}
	if (len && send(fd, sh, len, MSG_NOSIGNAL) == (ssize_t)len)
		printf("nd-fake-hello: conn %lu: export %s answered\n", n,
		       export);
	else
		printf("nd-fake-hello: conn %lu: export %s not answered\n", n,
		       export);
}

int main(int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	unsigned long n = 0;
	int lfd, one = 1;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (argc == 3 && !strcmp(argv[1], "--listen")) {
		if (inet_pton(AF_INET, argv[2], &a.sin_addr) != 1) {
			fprintf(stderr, "nd-fake-hello: bad --listen address\n");
			return 2;
		}
	} else if (argc != 1) {
		fprintf(stderr, "usage: nd-fake-hello [--listen ADDR]\n");
		return 2;
	}
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0 ||
	    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(lfd, (struct sockaddr *)&a, sizeof(a)) || listen(lfd, 16) ||
	    getsockname(lfd, (struct sockaddr *)&a, &alen)) {
		perror("nd-fake-hello");
		return 1;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("port %u\n", ntohs(a.sin_port));
	for (;;) {
		int fd = accept(lfd, NULL, NULL);

		if (fd < 0)
			continue;
		answer(fd, ++n);
		close(fd);
	}
}
