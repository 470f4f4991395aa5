// SPDX-License-Identifier: MIT
/*
 * netdiskd core: the listener thread's event loop (accept, handshakes,
 * reloads, reaping), worker pool, lifecycle and shutdown.
 * The threading model is explained in docs/DESIGN.md, "Server".
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "log.h"

int64_t nd_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct timespec nd_abstime_in_ms(int64_t ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	return ts;
}

int nd_thread_start(pthread_t *t, size_t stack, void *(*fn)(void *),
		    void *arg)
{
	pthread_attr_t attr;
	int rc;

#if defined(__SANITIZE_ADDRESS__)
	stack *= 8;	/* ASan's redzones need far more stack */
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
	stack *= 8;
#endif
#endif
	if (pthread_attr_init(&attr))
		return -1;
	pthread_attr_setstacksize(&attr, stack);
	rc = pthread_create(t, &attr, fn, arg);
	pthread_attr_destroy(&attr);
	return rc ? -1 : 0;
}

/* ---- worker pool ---- */

int nd_server_default_workers(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	if (n < 2)
		n = 2;
	if (n > ND_SRV_MAX_WORKERS)
		n = ND_SRV_MAX_WORKERS;
	return (int)n;
}

void nd_work_submit(struct nd_server *s, struct nd_req *q)
{
	q->next = NULL;
	pthread_mutex_lock(&s->wq_lock);
	if (s->wq_tail)
		s->wq_tail->next = q;
	else
		s->wq_head = q;
	s->wq_tail = q;
	/* Wake one worker only if one is waiting; busy ones loop back. */
	if (s->wq_idle > 0)
		pthread_cond_signal(&s->wq_cond);
	pthread_mutex_unlock(&s->wq_lock);
}

struct nd_req *nd_work_cancel(struct nd_server *s, struct nd_conn *c)
{
	struct nd_req *list = NULL, **tail = &list, **pp, *q;

	pthread_mutex_lock(&s->wq_lock);
	s->wq_tail = NULL;
	for (pp = &s->wq_head; (q = *pp);) {
		if (q->c == c) {
			*pp = q->next;
			q->next = NULL;
			*tail = q;
			tail = &q->next;
		} else {
			s->wq_tail = q;
			pp = &q->next;
		}
	}
	pthread_mutex_unlock(&s->wq_lock);
	return list;
}

static uint16_t errno_status(int rc)
{
	if (rc == -ENOSPC || rc == -EDQUOT)
		return ND_ERR_NOSPC;
	return ND_ERR_IO;
}

static void execute(struct nd_server *s, struct nd_req *q)
{
	const struct nd_export *e = &q->c->sess->exp->e;
	const struct nd_request *r = &q->r;
	bool fua = r->flags & ND_REQ_FUA;
	const char *what = NULL;
	int rc = 0;

	switch (r->op) {
	case ND_OP_READ:
		rc = e->ops->pread(e->h, q->buf, r->length, r->offset);
		what = "read";
		if (rc == 0)
			q->data_len = r->length;
		break;
	case ND_OP_WRITE:
		rc = e->ops->pwrite(e->h, q->buf + ND_REQ_HDR_LEN, r->length,
				    r->offset, fua);
		what = "write";
		break;
	case ND_OP_FLUSH:
		/*
		 * A read-only session wrote nothing, so it has nothing to
		 * make durable; syncing the file could only take a write-back
		 * error away from the writer it belongs to.
		 */
		if (!q->c->read_only)
			rc = e->ops->flush(e->h);
		what = "flush";
		break;
	case ND_OP_TRIM:
		rc = e->ops->trim(e->h, r->length, r->offset);
		if (rc == 0 && fua)
			rc = e->ops->flush(e->h);
		what = "trim";
		break;
	case ND_OP_WRITE_ZEROES:
		rc = e->ops->write_zeroes(e->h, r->length, r->offset, fua);
		what = "write-zeroes";
		break;
	default:
		rc = -EINVAL;
		break;
	}
	if (rc < 0) {
		q->status = errno_status(rc);
		nd_warn("export '%s': %s of %u bytes at %llu failed: %s",
			e->name, what ? what : "request", r->length,
			(unsigned long long)r->offset, strerror(-rc));
	} else {
		q->status = ND_OK;
	}
}

void *nd_worker_main(void *arg)
{
	struct nd_server *s = arg;

	pthread_mutex_lock(&s->wq_lock);
	for (;;) {
		struct nd_req *q;

		while (!s->wq_head && !s->wq_stop) {
			s->wq_idle++;
			pthread_cond_wait(&s->wq_cond, &s->wq_lock);
			s->wq_idle--;
		}
		q = s->wq_head;
		if (!q)
			break;
		s->wq_head = q->next;
		if (!s->wq_head)
			s->wq_tail = NULL;
		pthread_mutex_unlock(&s->wq_lock);

		execute(s, q);
		nd_conn_reply(q->c, q);

		pthread_mutex_lock(&s->wq_lock);
	}
	pthread_mutex_unlock(&s->wq_lock);
	return NULL;
}

/* ---- lifecycle ---- */

/* Settings of cfg the server keeps for its lifetime (reload: restart). */
static void take_settings(struct nd_server *s, const struct nd_server_config *o)
{
	const struct nd_config *cfg = &s->cfg;

	s->grace_ms = cfg->grace_s < 0 ? 0 : cfg->grace_s * 1000;
	s->max_payload = cfg->max_payload ? cfg->max_payload :
			 ND_DEFAULT_PAYLOAD;
	if (s->max_payload > ND_MAX_PAYLOAD)
		s->max_payload = ND_MAX_PAYLOAD;
	s->max_payload -= s->max_payload % ND_MIN_PAYLOAD;
	if (s->max_payload < ND_MIN_PAYLOAD)
		s->max_payload = ND_MIN_PAYLOAD;
	s->handshake_timeout_ms = o->handshake_timeout_ms > 0 ?
		o->handshake_timeout_ms : ND_HANDSHAKE_TIMEOUT * 1000;
	s->max_conns = o->max_conns > 0 ? o->max_conns : ND_SRV_MAX_CONNS;
	s->drain_ms = o->drain_ms > 0 ? o->drain_ms : ND_SRV_DRAIN_MS;
	s->max_pending = o->max_pending > 0 ? o->max_pending :
			 ND_SRV_MAX_PENDING;
	s->max_pending_src = o->max_pending_src > 0 ? o->max_pending_src :
			     ND_SRV_MAX_PENDING_SRC;
	nd_log_level = cfg->log_level;
}

static int start_workers(struct nd_server *s, char *err, size_t errlen)
{
	int n = s->cfg.workers > 0 ? s->cfg.workers :
		nd_server_default_workers();

	if (n > ND_SRV_MAX_WORKERS)
		n = ND_SRV_MAX_WORKERS;
	s->workers = calloc((size_t)n, sizeof(*s->workers));
	if (!s->workers) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (int i = 0; i < n; i++) {
		if (nd_thread_start(&s->workers[i], ND_SRV_WORKER_STACK,
				    nd_worker_main, s) < 0) {
			snprintf(err, errlen, "cannot start worker threads");
			return -1;
		}
		s->nworkers = i + 1;
	}
	return 0;
}

struct nd_server *nd_server_create(const struct nd_server_config *opts,
				   struct nd_config *cfg, char *err,
				   size_t errlen)
{
	static const struct nd_server_config none;
	struct nd_server *s = calloc(1, sizeof(*s));

	if (!s) {
		snprintf(err, errlen, "out of memory");
		nd_config_free(cfg);
		return NULL;
	}
	s->cfg = *cfg;
	memset(cfg, 0, sizeof(*cfg));	/* the server owns its contents now */
	s->epfd = -1;
	s->stop_pipe[0] = s->stop_pipe[1] = -1;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	pthread_mutex_init(&s->sess_lock, NULL);
	pthread_cond_init(&s->sess_cond, NULL);
	pthread_mutex_init(&s->wq_lock, NULL);
	pthread_cond_init(&s->wq_cond, NULL);
	take_settings(s, opts ? opts : &none);

	if (nd_exps_create(s, err, errlen) < 0)
		goto fail;
	if (pipe2(s->stop_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		goto fail;
	}
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (s->epfd < 0 ||
	    epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->stop_pipe[0],
		      &(struct epoll_event){ .events = EPOLLIN,
					     .data.ptr = s->stop_pipe }) < 0) {
		snprintf(err, errlen, "epoll: %s", strerror(errno));
		goto fail;
	}
	if (nd_listen_open(s, err, errlen) < 0)
		goto fail;
	if (nd_hs_init(s, s->max_pending, s->max_pending_src) < 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (start_workers(s, err, errlen) < 0)
		goto fail;
	return s;
fail:
	nd_server_destroy(s);
	return NULL;
}

uint16_t nd_server_port(const struct nd_server *s)
{
	return s->port;
}

static void wake(struct nd_server *s, char what)
{
	if (write(s->stop_pipe[1], &what, 1) < 0) {
		/* Pipe full: the listener has wake-ups to read already. */
	}
}

void nd_server_stop(struct nd_server *s)
{
	wake(s, ND_SRV_WAKE_STOP);
}

void nd_server_reload(struct nd_server *s)
{
	wake(s, ND_SRV_WAKE_RELOAD);
}

void nd_server_reload_count(struct nd_server *s, unsigned long *applied,
			    unsigned long *rejected)
{
	*applied = __atomic_load_n(&s->reloads_applied, __ATOMIC_ACQUIRE);
	*rejected = __atomic_load_n(&s->reloads_rejected, __ATOMIC_ACQUIRE);
}

/*
 * What the stop pipe asks for: stop wins; a reload is applied once for
 * any number of requests read together. A full pipe only loses reload
 * bytes behind others, which ask for the same.
 */
static void read_wakeups(struct nd_server *s, bool *stop, bool *reload)
{
	char buf[64];
	ssize_t n;

	while ((n = read(s->stop_pipe[0], buf, sizeof(buf))) > 0)
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] == ND_SRV_WAKE_RELOAD)
				*reload = true;
			else
				*stop = true;
		}
}

/* Joins finished connection threads. */
static void reap(struct nd_server *s)
{
	struct nd_conn *list, *c;

	pthread_mutex_lock(&s->lock);
	list = s->zombies;
	s->zombies = NULL;
	pthread_mutex_unlock(&s->lock);
	while ((c = list)) {
		list = c->next;
		pthread_join(c->rx_thread, NULL);
		nd_conn_destroy(c);
	}
}

/*
 * Takes what the backlog holds, a bounded batch per wake-up. Each new
 * socket starts as a pending handshake: no thread, no buffer.
 */
static void accept_batch(struct nd_server *s, int lfd)
{
	static int64_t last_warn;

	for (int i = 0; i < 64; i++) {
		struct sockaddr_storage from;
		socklen_t fl = sizeof(from);
		int fd = accept4(lfd, (struct sockaddr *)&from, &fl,
				 SOCK_CLOEXEC | SOCK_NONBLOCK);

		if (fd >= 0) {
			nd_hs_add(s, fd, &from);
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if (errno != EMFILE && errno != ENFILE && errno != ENOMEM &&
		    errno != ENOBUFS)
			return;
		/* A pending handshake's descriptor is worth less than a new one. */
		if (nd_hs_evict_oldest(s))
			continue;
		if (nd_now_ms() - last_warn > 10000) {
			nd_warn("accept: %s", strerror(errno));
			last_warn = nd_now_ms();
		}
		usleep(100000);	/* don't spin on a full fd table */
		return;
	}
}

/* Waits until no connection is left, or until deadline (ms, 0: forever). */
static bool wait_conns(struct nd_server *s, int64_t deadline)
{
	bool done;

	pthread_mutex_lock(&s->lock);
	while (s->nconns > 0) {
		if (deadline) {
			int64_t left = deadline - nd_now_ms();
			struct timespec ts;

			if (left <= 0)
				break;
			ts = nd_abstime_in_ms(left);
			pthread_cond_timedwait(&s->cond, &s->lock, &ts);
		} else {
			pthread_cond_wait(&s->cond, &s->lock);
		}
	}
	done = s->nconns == 0;
	pthread_mutex_unlock(&s->lock);
	return done;
}

static void shutdown_conns(struct nd_server *s, int how)
{
	pthread_mutex_lock(&s->lock);
	for (struct nd_conn *c = s->conns; c; c = c->next)
		if (c->fd >= 0)
			shutdown(c->fd, how);
	pthread_mutex_unlock(&s->lock);
}

/* Which listening socket an event is for; -1: none. */
static int listener_of(const struct nd_server *s, const void *ptr)
{
	for (int i = 0; i < s->nlfds; i++)
		if (ptr == &s->lfds[i])
			return i;
	return -1;
}

int nd_server_run(struct nd_server *s)
{
	int n;

	for (;;) {
		struct epoll_event ev[64];
		bool stop = false, reload = false;
		int r = epoll_wait(s->epfd, ev, 64, nd_hs_timeout_ms(s, 1000));

		if (r < 0 && errno != EINTR) {
			nd_err("epoll_wait: %s", strerror(errno));
			break;
		}
		for (int i = 0; i < r; i++) {
			int l = listener_of(s, ev[i].data.ptr);

			if (l >= 0)
				accept_batch(s, s->lfds[l]);
			else if (ev[i].data.ptr == s->stop_pipe)
				read_wakeups(s, &stop, &reload);
			else
				nd_hs_input(s, ev[i].data.ptr);
		}
		if (stop)
			break;
		/* Between handshake steps: none sees half a configuration. */
		if (reload)
			nd_reload_apply(s);
		nd_hs_expire(s);
		reap(s);
		nd_session_expire(s, false);
	}
	nd_hs_close_all(s);

	pthread_mutex_lock(&s->lock);
	n = s->nconns;
	pthread_mutex_unlock(&s->lock);
	nd_info("shutting down: %d connection%s open", n, n == 1 ? "" : "s");
	nd_listen_close(s);
	__atomic_store_n(&s->stopping, true, __ATOMIC_RELAXED);
	/* Connections waiting for a fence give up (nd_session_ready). */
	pthread_mutex_lock(&s->sess_lock);
	pthread_cond_broadcast(&s->sess_cond);
	pthread_mutex_unlock(&s->sess_lock);
	/*
	 * Stop reading requests; each connection then finishes what it has
	 * accepted, sends the replies and closes. A client that does not read
	 * its replies is cut off after drain_ms.
	 */
	shutdown_conns(s, SHUT_RD);
	if (!wait_conns(s, nd_now_ms() + s->drain_ms)) {
		nd_warn("shutdown: cutting off connections that do not drain");
		shutdown_conns(s, SHUT_RDWR);
		wait_conns(s, 0);
	}
	reap(s);
	nd_info("shutdown complete");
	return 0;
}

void nd_server_destroy(struct nd_server *s)
{
	if (!s)
		return;
	/* Connections only exist inside nd_server_run, which drained them. */
	reap(s);
	pthread_mutex_lock(&s->wq_lock);
	s->wq_stop = true;
	pthread_cond_broadcast(&s->wq_cond);
	pthread_mutex_unlock(&s->wq_lock);
	for (int i = 0; i < s->nworkers; i++)
		pthread_join(s->workers[i], NULL);
	free(s->workers);
	nd_session_expire(s, true);
	nd_exps_destroy(s);
	nd_config_free(&s->cfg);
	nd_hs_destroy(s);
	nd_listen_close(s);
	if (s->epfd >= 0)
		close(s->epfd);
	if (s->stop_pipe[0] >= 0)
		close(s->stop_pipe[0]);
	if (s->stop_pipe[1] >= 0)
		close(s->stop_pipe[1]);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->sess_lock);
	pthread_cond_destroy(&s->sess_cond);
	pthread_mutex_destroy(&s->wq_lock);
	pthread_cond_destroy(&s->wq_cond);
	free(s);
}
