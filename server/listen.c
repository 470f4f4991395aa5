// SPDX-License-Identifier: MIT
/*
 * The listening sockets: one per configured address (listen = in
 * netdiskd.conf(5)), or one IPv6 socket taking IPv4 too when none is
 * given. Each is in the listener thread's epoll set.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

static int listen_on(const struct sockaddr *sa, socklen_t sl, bool dual,
		     char *err, size_t errlen)
{
	int one = 1, zero = 0;
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (dual)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	if (bind(fd, sa, sl) < 0 || listen(fd, 128) < 0) {
		snprintf(err, errlen, "cannot listen: %s", strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static int open_listener(struct nd_server *s, const char *addr,
			 uint16_t port, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int fd = -1;

	if (!addr || !*addr) {
		/* All addresses: one IPv6 socket that also takes IPv4. */
		struct sockaddr_in6 a6 = {
			.sin6_family = AF_INET6,
			.sin6_addr = IN6ADDR_ANY_INIT,
			.sin6_port = htons(port),
		};
		struct sockaddr_in a4 = {
			.sin_family = AF_INET,
			.sin_addr.s_addr = htonl(INADDR_ANY),
			.sin_port = htons(port),
		};

		fd = listen_on((struct sockaddr *)&a6, sizeof(a6), true, err,
			       errlen);
		if (fd < 0)
			fd = listen_on((struct sockaddr *)&a4, sizeof(a4),
				       false, err, errlen);
	} else {
		struct addrinfo hints = {
			.ai_family = AF_UNSPEC,
			.ai_socktype = SOCK_STREAM,
			.ai_flags = AI_PASSIVE | AI_NUMERICSERV,
		};
		struct addrinfo *res = NULL, *ai;
		char host[256], service[8];
		size_t n = strlen(addr);
		int rc;

		/* Accept "[::1]" as well as "::1". */
		if (n >= 2 && addr[0] == '[' && addr[n - 1] == ']')
			snprintf(host, sizeof(host), "%.*s", (int)(n - 2),
				 addr + 1);
		else
			snprintf(host, sizeof(host), "%s", addr);
		snprintf(service, sizeof(service), "%u", port);
		rc = getaddrinfo(host, service, &hints, &res);
		if (rc) {
			snprintf(err, errlen, "listen address %s: %s", addr,
				 gai_strerror(rc));
			return -1;
		}
		for (ai = res; ai && fd < 0; ai = ai->ai_next)
			fd = listen_on(ai->ai_addr, ai->ai_addrlen, false, err,
				       errlen);
		freeaddrinfo(res);
		if (fd < 0) {
			size_t l = strlen(err);

			snprintf(err + l, errlen - l, " (on %s port %u)", addr,
				 port);
			return -1;
		}
	}
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
		s->port = ntohs(ss.ss_family == AF_INET6 ?
				((struct sockaddr_in6 *)&ss)->sin6_port :
				((struct sockaddr_in *)&ss)->sin_port);
	else
		s->port = port;
	s->lfds[s->nlfds] = fd;
	if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0 ||
	    epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &(struct epoll_event){
			.events = EPOLLIN, .data.ptr = &s->lfds[s->nlfds] }) < 0) {
		snprintf(err, errlen, "epoll: %s", strerror(errno));
		close(fd);
		return -1;
	}
	s->nlfds++;
	return 0;
}

int nd_listen_open(struct nd_server *s, char *err, size_t errlen)
{
	const struct nd_config *cfg = &s->cfg;

	if (cfg->nlisten == 0)
		return open_listener(s, NULL, cfg->port, err, errlen);
	for (int i = 0; i < cfg->nlisten && i < ND_CFG_MAX_LISTEN; i++) {
		/* Port 0: the first address picks one, the others share it. */
		uint16_t port = i == 0 ? cfg->port : s->port;

		if (open_listener(s, cfg->listen[i], port, err, errlen) < 0)
			return -1;
	}
	return 0;
}

void nd_listen_close(struct nd_server *s)
{
	for (int i = 0; i < s->nlfds; i++)
		close(s->lfds[i]);	/* leaves the epoll set too */
	s->nlfds = 0;
}

