// SPDX-License-Identifier: MIT
/* netdisk://HOST[:PORT][/EXPORT]: parsing, resolving, connecting. */
#include "url.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

bool nd_url_is_url(const char *s)
{
	return s && strncmp(s, ND_URL_SCHEME, strlen(ND_URL_SCHEME)) == 0;
}

static bool host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

int nd_url_parse(const char *s, struct nd_url *u, char *err, size_t errlen)
{
	const char *p, *h, *hend;
	size_t hlen;

	memset(u, 0, sizeof(*u));
	if (!nd_url_is_url(s))
		return fail(err, errlen, "'%s': not a netdisk:// URL", s);
	p = s + strlen(ND_URL_SCHEME);

	if (*p == '[') {
		struct in6_addr a6;

		h = p + 1;
		hend = strchr(h, ']');
		if (!hend)
			return fail(err, errlen, "'%s': missing ']' after IPv6 address", s);
		hlen = (size_t)(hend - h);
		if (hlen == 0 || hlen > ND_URL_HOST_MAX)
			return fail(err, errlen, "'%s': bad IPv6 address", s);
		memcpy(u->host, h, hlen);
		u->host[hlen] = '\0';
		if (inet_pton(AF_INET6, u->host, &a6) != 1)
			return fail(err, errlen, "'%s': bad IPv6 address '%s'", s,
				    u->host);
		p = hend + 1;
	} else {
		h = p;
		while (*p && *p != ':' && *p != '/') {
			if (!host_char(*p))
				return fail(err, errlen,
					    "'%s': invalid character '%c' in host",
					    s, *p);
			p++;
		}
		hlen = (size_t)(p - h);
		if (hlen == 0)
			return fail(err, errlen, "'%s': missing host", s);
		if (hlen > ND_URL_HOST_MAX)
			return fail(err, errlen, "'%s': host name too long", s);
		memcpy(u->host, h, hlen);
		u->host[hlen] = '\0';
	}

	u->port = ND_DEFAULT_PORT;
	if (*p == ':') {
		unsigned long port = 0;

		p++;
		if (*p < '0' || *p > '9')
			return fail(err, errlen, "'%s': missing or bad port", s);
		while (*p >= '0' && *p <= '9') {
			port = port * 10 + (unsigned long)(*p - '0');
			if (port > 65535)
				return fail(err, errlen, "'%s': port out of range", s);
			p++;
		}
		if (port == 0)
			return fail(err, errlen, "'%s': port out of range", s);
		u->port = (uint16_t)port;
	}

	strcpy(u->export_name, "default");
	if (*p == '/') {
		size_t elen;

		p++;
		elen = strlen(p);
		if (elen) {
			if (!nd_name_valid((const uint8_t *)p, elen))
				return fail(err, errlen,
					    "'%s': invalid export name (1-%d characters of A-Z a-z 0-9 . _ -)",
					    s, ND_NAME_MAX);
			memcpy(u->export_name, p, elen + 1);
		}
	} else if (*p) {
		return fail(err, errlen, "'%s': unexpected '%c' after host", s, *p);
	}
	return 0;
}

void nd_url_format(const struct nd_url *u, char *out, size_t outlen)
{
	bool v6 = strchr(u->host, ':') != NULL;

	snprintf(out, outlen, "%s%s%s%s:%u/%s", ND_URL_SCHEME, v6 ? "[" : "",
		 u->host, v6 ? "]" : "", u->port, u->export_name);
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Non-blocking connect bounded by timeout_ms; returns 0 or an errno. */
static int connect_timeout(int fd, const struct sockaddr *sa, socklen_t len,
			   int timeout_ms)
{
	int flags = fcntl(fd, F_GETFL);
	long long deadline = now_ms() + timeout_ms;
	int rc, soerr = 0;
	socklen_t sl = sizeof(soerr);

	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return errno;
	rc = connect(fd, sa, len);
	if (rc < 0 && errno != EINPROGRESS)
		return errno;
	if (rc < 0) {
		struct pollfd pfd = { .fd = fd, .events = POLLOUT };

		for (;;) {
			long long left = deadline - now_ms();

			if (left <= 0)
				return ETIMEDOUT;
			rc = poll(&pfd, 1, (int)left);
			if (rc > 0)
				break;
			if (rc == 0)
				return ETIMEDOUT;
			if (errno != EINTR)
				return errno;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
			return errno;
		if (soerr)
			return soerr;
	}
	if (fcntl(fd, F_SETFL, flags) < 0)
		return errno;
	return 0;
}

int nd_url_connect(const struct nd_url *u, int timeout_ms, char *err,
		   size_t errlen)
{
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_ADDRCONFIG | AI_NUMERICSERV,
	};
	struct addrinfo *res, *ai;
	char port[8];
	int rc, last = 0;

	snprintf(port, sizeof(port), "%u", u->port);
	rc = getaddrinfo(u->host, port, &hints, &res);
	if (rc == EAI_ADDRFAMILY || rc == EAI_NONAME || rc == EAI_NODATA) {
		/* AI_ADDRCONFIG hides ::1 and 127.0.0.1 on hosts with only lo. */
		hints.ai_flags = AI_NUMERICSERV;
		rc = getaddrinfo(u->host, port, &hints, &res);
	}
	if (rc)
		return fail(err, errlen, "cannot resolve '%s': %s", u->host,
			    rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));

	for (ai = res; ai; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
				ai->ai_protocol);
		int one = 1;

		if (fd < 0) {
			last = errno;
			continue;
		}
		last = connect_timeout(fd, ai->ai_addr, ai->ai_addrlen,
				       timeout_ms);
		if (last) {
			close(fd);
			continue;
		}
		/* Requests are latency-sensitive; records are written whole. */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		freeaddrinfo(res);
		return fd;
	}
	freeaddrinfo(res);
	return fail(err, errlen, "cannot connect to %s%s%s:%u: %s",
		    strchr(u->host, ':') ? "[" : "", u->host,
		    strchr(u->host, ':') ? "]" : "", u->port,
		    last ? strerror(last) : "no usable address");
}
