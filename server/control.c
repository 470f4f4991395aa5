// SPDX-License-Identifier: MIT
/*
 * netdiskd's control socket (control.h): a Unix stream socket of mode 0600
 * and one thread that answers one command per connection, one connection
 * at a time. Only the server's user (and root) can connect, and every
 * connection has a deadline, so serving them in turn is enough: a client
 * that stalls delays the next by at most ND_CTL_DEADLINE_MS. Only the
 * administrator's own overlay commands take longer (a merge copies a
 * whole disk), and the next command waits for them.
 *
 * The answer is built in memory before a byte is sent, so the server's
 * locks taken by nd_server_status are never held while a client is slow
 * to read.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "control.h"
#include "log.h"

/* Time one connection may take, command and answer, on either side. */
#define ND_CTL_DEADLINE_MS	5000
/* The client's limit for one answer. */
#define ND_CTL_ANSWER_MAX	(64u << 20)

struct nd_control {
	struct nd_server *srv;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int fd;				/* listening socket */
	int wake[2];			/* nd_control_stop writes here */
	dev_t dev;			/* of the socket we bound, so stop */
	ino_t ino;			/* removes ours and nobody else's */
	pthread_t thread;
};

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for events on fd until the deadline; 1 ready, 0 timed out. */
static int wait_fd(int fd, short events, long long deadline)
{
	struct pollfd p = { .fd = fd, .events = events };
	long long left;
	int rc;

	for (;;) {
		left = deadline - now_ms();
		if (left <= 0)
			return 0;
		rc = poll(&p, 1, (int)(left > INT_MAX ? INT_MAX : left));
		if (rc > 0)
			return 1;
		if (rc == 0)
			return 0;
		if (errno != EINTR)
			return -1;
	}
}

/* Sends all of buf before the deadline; -1 if the peer went away or stalled. */
static int send_all(int fd, const char *buf, size_t len, long long deadline)
{
	ssize_t n;

	while (len) {
		if (wait_fd(fd, POLLOUT, deadline) <= 0)
			return -1;
		n = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Reads one command: up to the newline or the client's end of sending.
 * 0 with the command in cmd, -1 if it is too long, never ends or is not
 * text (the connection is then answered with an error or dropped).
 */
static int read_command(int fd, char *cmd, size_t len, long long deadline)
{
	size_t have = 0;
	char *nl;
	ssize_t n;

	for (;;) {
		if (wait_fd(fd, POLLIN, deadline) <= 0)
			return -1;
		n = recv(fd, cmd + have, len - 1 - have, MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -1;
		}
		cmd[have + (size_t)n] = '\0';
		if (memchr(cmd + have, '\0', (size_t)n))
			return -1;
		have += (size_t)n;
		nl = strchr(cmd, '\n');
		if (nl) {
			*nl = '\0';
			return 0;
		}
		if (n == 0)
			return have ? 0 : -1;
		if (have == len - 1)
			return -1;
	}
}

/* The answer to one command, built in memory. NULL if out of memory. */
static char *answer(struct nd_control *ctl, const char *cmd, size_t *len)
{
	char *buf = NULL;
	FILE *f;

	f = open_memstream(&buf, len);
	if (!f)
		return NULL;
	if (!strcmp(cmd, "status"))
		nd_server_status(ctl->srv, f);
	else if (!strncmp(cmd, "overlay", 7))
		nd_server_overlay(ctl->srv, cmd, f);
	else
		fputs("error: unknown command\n", f);
	if (fclose(f)) {
		free(buf);
		return NULL;
	}
	return buf;
}

static void serve_one(struct nd_control *ctl, int fd)
{
	long long deadline = now_ms() + ND_CTL_DEADLINE_MS;
	char cmd[ND_CTL_CMD_MAX];
	char *buf;
	size_t len = 0;

	if (read_command(fd, cmd, sizeof(cmd), deadline) < 0) {
		send_all(fd, "error: bad command\n", 19, deadline);
		return;
	}
	buf = answer(ctl, cmd, &len);
	/* A merge may have taken minutes: the client waited, so may we. */
	deadline = now_ms() + ND_CTL_DEADLINE_MS;
	if (!buf) {
		send_all(fd, "error: out of memory\n", 21, deadline);
		return;
	}
	if (send_all(fd, buf, len, deadline) < 0)
		nd_debug("control: client gone before the answer to '%s' was sent",
			 cmd);
	free(buf);
}

static void *control_main(void *arg)
{
	struct nd_control *ctl = arg;
	struct pollfd p[2] = {
		{ .fd = ctl->fd, .events = POLLIN },
		{ .fd = ctl->wake[0], .events = POLLIN },
	};
	int fd;

	for (;;) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			nd_err("control: poll: %s", strerror(errno));
			return NULL;
		}
		if (p[1].revents)
			return NULL;
		if (!(p[0].revents & POLLIN))
			continue;
		fd = accept4(ctl->fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				nd_warn("control: accept: %s", strerror(errno));
				poll(NULL, 0, 100);	/* let descriptors free up */
			}
			continue;
		}
		serve_one(ctl, fd);
		close(fd);
	}
}

/* mkdir -p of path's directory, new ones 0755. */
static int make_parent(const char *path, char *err, size_t errlen)
{
	char dir[PATH_MAX];
	char *p, c;

	snprintf(dir, sizeof(dir), "%s", path);
	p = strrchr(dir, '/');
	if (!p || p == dir)
		return 0;
	*p = '\0';
	for (p = dir + 1; ; p++) {
		if (*p && *p != '/')
			continue;
		c = *p;
		*p = '\0';
		if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
			snprintf(err, errlen, "control socket %s: cannot create %s: %s",
				 path, dir, strerror(errno));
			return -1;
		}
		*p = c;
		if (!c)
			return 0;
	}
}

/*
 * Is a server answering at path? 1 yes, 0 no (nothing there, or a socket
 * nobody listens on: stale), -1 something else is there (err set).
 */
static int probe_live(const struct sockaddr_un *sa, const char *path,
		      char *err, size_t errlen)
{
	struct stat st;
	int fd, rc;

	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "control socket %s: %s", path,
			 strerror(errno));
		return -1;
	}
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "control socket %s: exists and is not a socket",
			 path);
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(err, errlen, "control socket: %s", strerror(errno));
		return -1;
	}
	rc = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
	/* EAGAIN: a live server whose backlog is full. */
	if (rc == 0 || errno == EAGAIN || errno == EINPROGRESS) {
		close(fd);
		snprintf(err, errlen, "control socket %s: another netdiskd is listening there",
			 path);
		return 1;
	}
	rc = errno;
	close(fd);
	if (rc == ECONNREFUSED || rc == ENOENT)
		return 0;
	snprintf(err, errlen, "control socket %s: %s", path, strerror(rc));
	return -1;
}

/*
 * Binds a socket of mode 0600 at path. It is bound in a fresh private
 * directory next to path, given its mode and renamed into place, so it is
 * never reachable with the umask's mode and a stale one is replaced in one
 * step.
 */
static int bind_private(struct nd_control *ctl, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char tmpdir[sizeof(sa.sun_path) - 2];	/* + "/s" */
	struct stat st;
	int n, rc = -1;

	n = snprintf(tmpdir, sizeof(tmpdir), "%s.XXXXXX", ctl->path);
	if (n < 0 || (size_t)n >= sizeof(tmpdir)) {
		snprintf(err, errlen, "control socket %s: path too long (at most %zu bytes)",
			 ctl->path, sizeof(sa.sun_path) - 10);
		return -1;
	}
	if (!mkdtemp(tmpdir)) {
		snprintf(err, errlen, "control socket %s: cannot create a directory next to it: %s",
			 ctl->path, strerror(errno));
		return -1;
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/s", tmpdir);
	if (bind(ctl->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    chmod(sa.sun_path, 0600) < 0 || stat(sa.sun_path, &st) < 0) {
		snprintf(err, errlen, "control socket %s: %s", ctl->path,
			 strerror(errno));
		goto out;
	}
	if (rename(sa.sun_path, ctl->path) < 0) {
		snprintf(err, errlen, "control socket %s: %s", ctl->path,
			 strerror(errno));
		goto out;
	}
	ctl->dev = st.st_dev;
	ctl->ino = st.st_ino;
	rc = 0;
out:
	unlink(sa.sun_path);
	rmdir(tmpdir);
	return rc;
}

struct nd_control *nd_control_start(struct nd_server *s, const char *path,
				     char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct nd_control *ctl;
	sigset_t all, old;
	int rc;

	if (!path || !*path) {
		snprintf(err, errlen, "control socket: empty path");
		return NULL;
	}
	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "control socket %s: path too long (at most %zu bytes)",
			 path, sizeof(sa.sun_path) - 1);
		return NULL;
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	ctl = calloc(1, sizeof(*ctl));
	if (!ctl) {
		snprintf(err, errlen, "control socket: out of memory");
		return NULL;
	}
	ctl->srv = s;
	ctl->fd = -1;
	ctl->wake[0] = ctl->wake[1] = -1;
	snprintf(ctl->path, sizeof(ctl->path), "%s", path);

	if (make_parent(path, err, errlen) < 0)
		goto fail;
	if (probe_live(&sa, path, err, errlen) != 0)
		goto fail;
	ctl->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (ctl->fd < 0 || pipe2(ctl->wake, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "control socket: %s", strerror(errno));
		goto fail;
	}
	if (bind_private(ctl, err, errlen) < 0)
		goto fail;
	if (listen(ctl->fd, 64) < 0) {
		snprintf(err, errlen, "control socket %s: listen: %s", path,
			 strerror(errno));
		goto fail_unlink;
	}

	/* Signals are for the main thread (SIGHUP, SIGTERM). */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&ctl->thread, NULL, control_main, ctl);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		snprintf(err, errlen, "control socket: cannot create its thread: %s",
			 strerror(rc));
		goto fail_unlink;
	}
	return ctl;

fail_unlink:
	unlink(path);
fail:
	if (ctl->fd >= 0)
		close(ctl->fd);
	if (ctl->wake[0] >= 0) {
		close(ctl->wake[0]);
		close(ctl->wake[1]);
	}
	free(ctl);
	return NULL;
}

void nd_control_stop(struct nd_control *ctl)
{
	struct stat st;

	if (!ctl)
		return;
	while (write(ctl->wake[1], "x", 1) < 0 && errno == EINTR)
		;
	pthread_join(ctl->thread, NULL);
	/* Another server may have taken the path over since: leave it be. */
	if (lstat(ctl->path, &st) == 0 && st.st_dev == ctl->dev &&
	    st.st_ino == ctl->ino)
		unlink(ctl->path);
	close(ctl->fd);
	close(ctl->wake[0]);
	close(ctl->wake[1]);
	free(ctl);
}

/* ---------------------------------------------------------------- client */

/*
 * Reads the whole answer into memory, waiting up to wait_ms for it (< 0:
 * no limit); NULL with err set.
 */
static char *read_answer(int fd, const char *path, int wait_ms, size_t *len,
			 char *err, size_t errlen)
{
	long long deadline = wait_ms < 0 ? LLONG_MAX : now_ms() + wait_ms;
	size_t cap = 4096, have = 0;
	char *buf = malloc(cap), *grown;
	ssize_t n;

	if (!buf) {
		snprintf(err, errlen, "%s: out of memory", path);
		return NULL;
	}
	for (;;) {
		if (have == cap) {
			if (cap >= ND_CTL_ANSWER_MAX) {
				snprintf(err, errlen, "%s: answer too long", path);
				goto fail;
			}
			grown = realloc(buf, cap * 2);
			if (!grown) {
				snprintf(err, errlen, "%s: out of memory", path);
				goto fail;
			}
			buf = grown;
			cap *= 2;
		}
		if (wait_fd(fd, POLLIN, deadline) <= 0) {
			snprintf(err, errlen, "%s: no answer from netdiskd", path);
			goto fail;
		}
		n = recv(fd, buf + have, cap - have, MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		have += (size_t)n;
	}
	*len = have;
	return buf;
fail:
	free(buf);
	return NULL;
}

/*
 * Sends cmd, copies the answer to out. verbatim: also an "error: "
 * answer, which otherwise becomes err. 0, -1 (err) or ND_CTL_NO_SERVER.
 */
static int query(const char *path, const char *cmd, FILE *out, int wait_ms,
		 bool verbatim, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	long long deadline = now_ms() + ND_CTL_DEADLINE_MS;
	char line[ND_CTL_CMD_MAX];
	size_t len = 0, n;
	char *buf = NULL;
	int fd, rc = -1;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "cannot connect to %s: path too long",
			 path);
		return -1;
	}
	n = (size_t)snprintf(line, sizeof(line), "%s\n", cmd);
	if (n >= sizeof(line) || strchr(cmd, '\n')) {
		snprintf(err, errlen, "%s: invalid command", path);
		return -1;
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "cannot connect to %s: %s", path,
			 strerror(errno));
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;

		snprintf(err, errlen, "cannot connect to %s: %s%s", path,
			 strerror(e),
			 e == ENOENT || e == ECONNREFUSED ?
			 " (is netdiskd running?)" :
			 e == EACCES ? " (run as the server's user or root)" : "");
		if (e == ENOENT || e == ECONNREFUSED)
			rc = ND_CTL_NO_SERVER;
		goto out;
	}
	if (send_all(fd, line, n, deadline) < 0) {
		snprintf(err, errlen, "%s: cannot send the command (netdiskd closed the connection or is stuck)",
			 path);
		goto out;
	}
	shutdown(fd, SHUT_WR);
	buf = read_answer(fd, path, wait_ms, &len, err, errlen);
	if (!buf)
		goto out;
	if (!verbatim && len >= 7 && !memcmp(buf, "error: ", 7)) {
		const char *nl = memchr(buf + 7, '\n', len - 7);

		n = nl ? (size_t)(nl - buf - 7) : len - 7;
		snprintf(err, errlen, "%s: netdiskd: %.*s", path,
			 (int)(n > 200 ? 200 : n), buf + 7);
		goto out;
	}
	if (len && fwrite(buf, 1, len, out) != len) {
		snprintf(err, errlen, "cannot write the answer: %s",
			 strerror(errno));
		goto out;
	}
	rc = 0;
out:
	free(buf);
	close(fd);
	return rc;
}

int nd_control_query(const char *path, const char *cmd, FILE *out,
		     char *err, size_t errlen)
{
	int rc = query(path, cmd, out, 2 * ND_CTL_DEADLINE_MS, false, err,
		       errlen);

	return rc < 0 ? -1 : 0;
}

int nd_control_ask(const char *path, const char *cmd, FILE *out,
		   int wait_ms, char *err, size_t errlen)
{
	return query(path, cmd, out, wait_ms, true, err, errlen);
}
