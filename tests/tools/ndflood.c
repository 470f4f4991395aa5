// SPDX-License-Identifier: MIT
/*
 * ndflood: opens many connections to a netdiskd that never finish the
 * handshake, for tests of the server's pre-authentication limits.
 *
 *   ndflood --target HOST:PORT [--from ADDR[,ADDR...]] [--count N]
 *           [--rate PER_SEC] [--hold N]
 *
 * Connection i is made from source address i mod the --from list (default
 * the system's choice) and, by i mod 4, stays silent, sends 64 random
 * bytes, sends the first 20 bytes of a ClientHello, or sends a whole valid
 * ClientHello (identity and export "default") and then never the finish.
 * Connections stay open until the server closes them, or until N (--hold,
 * default 900) are open, when the oldest is closed. Rate default 200/s,
 * count default 1000. At the end it prints one line:
 *   ndflood: N connects, C closed by the server, F failed, peak open P
 * and exits 0 (2 on bad arguments); SIGTERM ends the flood early, with
 * the same line.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "netdisk_proto.h"

#define MAX_FROM	16

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int parse_hostport(const char *s, struct sockaddr_in *a)
{
	char host[64];
	const char *colon = strrchr(s, ':');

	if (!colon || colon - s >= (long)sizeof(host))
		return -1;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = 0;
	a->sin_family = AF_INET;
	a->sin_port = htons((uint16_t)atoi(colon + 1));
	return inet_pton(AF_INET, host, &a->sin_addr) == 1 ? 0 : -1;
}

static void send_some(int fd, int kind)
{
	struct nd_client_hello ch = {
		.version = ND_VERSION,
		.timestamp = (uint64_t)time(NULL),
		.identity_len = 7,
		.export_len = 7,
	};
	uint8_t buf[ND_CLIENT_HELLO_MAX];
	size_t len;

	switch (kind) {
	case 1:
		for (int i = 0; i < 64; i++)
			buf[i] = (uint8_t)rand();
		len = 64;
		break;
	case 2:
	case 3:
		memcpy(ch.identity, "default", 7);
		memcpy(ch.export_name, "default", 7);
		for (int i = 0; i < ND_RANDOM_LEN; i++)
			ch.random[i] = (uint8_t)rand();
		/* u = 9, the X25519 base point: a share the server accepts. */
		ch.share[0] = 9;
		len = nd_client_hello_encode(buf, &ch);
		if (kind == 2)
			len = 20;
		break;
	default:
		return;
	}
	if (send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
		/* The server may have dropped it already. */
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "target", required_argument, NULL, 't' },
		{ "from", required_argument, NULL, 'f' },
		{ "count", required_argument, NULL, 'n' },
		{ "rate", required_argument, NULL, 'r' },
		{ "hold", required_argument, NULL, 'H' },
		{ NULL, 0, NULL, 0 },
	};
	struct sockaddr_in target = { 0 }, from[MAX_FROM];
	int nfrom = 0, count = 1000, hold = 900, c;
	double rate = 200, t0;
	struct pollfd *open_fds;
	int nopen = 0, peak = 0, closed = 0, failed = 0, made = 0;
	struct rlimit rl;
	char *list, *tok;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			if (parse_hostport(optarg, &target) < 0) {
				fprintf(stderr, "ndflood: bad --target\n");
				return 2;
			}
			break;
		case 'f':
			list = strdup(optarg);
			for (tok = strtok(list, ","); tok && nfrom < MAX_FROM;
			     tok = strtok(NULL, ",")) {
				memset(&from[nfrom], 0, sizeof(from[0]));
				from[nfrom].sin_family = AF_INET;
				if (inet_pton(AF_INET, tok,
					      &from[nfrom].sin_addr) != 1) {
					fprintf(stderr, "ndflood: bad --from\n");
					return 2;
				}
				nfrom++;
			}
			free(list);
			break;
		case 'n':
			count = atoi(optarg);
			break;
		case 'r':
			rate = atof(optarg);
			break;
		case 'H':
			hold = atoi(optarg);
			break;
		default:
			return 2;
		}
	}
	if (!target.sin_port || count < 1 || rate <= 0 || hold < 1) {
		fprintf(stderr, "ndflood: --target HOST:PORT required\n");
		return 2;
	}
	/* Hold as many as asked: raise the soft descriptor limit. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
	    (rlim_t)hold + 16 > rl.rlim_cur)
		hold = (int)rl.rlim_cur - 16;
	open_fds = calloc((size_t)hold, sizeof(*open_fds));
	if (!open_fds)
		return 1;
	srand((unsigned int)getpid());
	signal(SIGTERM, on_term);

	t0 = now_s();
	for (int i = 0; i < count && !stop; i++) {
		struct timeval tv = { .tv_sec = 1 };
		double due = t0 + i / rate, wait;
		int fd, j, k;

		/* Note what the server closed meanwhile; drain what it sent. */
		poll(open_fds, (nfds_t)nopen, 0);
		for (j = k = 0; j < nopen; j++) {
			uint8_t b[512];

			if (open_fds[j].revents &&
			    read(open_fds[j].fd, b, sizeof(b)) <= 0) {
				close(open_fds[j].fd);
				closed++;
				continue;
			}
			open_fds[k++] = open_fds[j];
		}
		nopen = k;
		if (nopen == hold) {
			close(open_fds[0].fd);
			memmove(open_fds, open_fds + 1,
				(size_t)--nopen * sizeof(*open_fds));
		}

		wait = due - now_s();
		if (wait > 0)
			usleep((useconds_t)(wait * 1e6));
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			failed++;
			continue;
		}
		/* A full backlog must not stall the flood: 1 s per connect. */
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		if ((nfrom && bind(fd, (struct sockaddr *)&from[i % nfrom],
				   sizeof(from[0])) < 0) ||
		    connect(fd, (struct sockaddr *)&target,
			    sizeof(target)) < 0) {
			close(fd);
			failed++;
			continue;
		}
		made++;
		send_some(fd, i % 4);
		open_fds[nopen].fd = fd;
		open_fds[nopen].events = POLLIN;
		nopen++;
		if (nopen > peak)
			peak = nopen;
	}
	printf("ndflood: %d connects, %d closed by the server, %d failed, peak open %d, %.0f/s\n",
	       made, closed, failed, peak, made / (now_s() - t0));
	for (int j = 0; j < nopen; j++)
		close(open_fds[j].fd);
	free(open_fds);
	return 0;
}
