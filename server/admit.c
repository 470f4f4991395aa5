// SPDX-License-Identifier: MIT
/*
 * After the key proof (handshake.c hands the authenticated socket over):
 * what the client gets, checked in docs/PROTOCOL.md §4 order: clock,
 * ClientFinish, the export list if asked for, then the export and this
 * identity's access to it, the connection limit and the session. Then the
 * connection with its threads, whose own thread sends the SessionInfo
 * (nd_hs_send_session_info). Refusals go in an authenticated SessionInfo.
 * Runs on the listener thread, so the configuration cannot change under
 * it (reload.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "log.h"

static int send_session_info(int fd, struct nd_crypto *crypto,
			     const struct nd_session_info *si)
{
	uint8_t buf[ND_SESSION_INFO_LEN];
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
	int rc;

	nd_session_info_encode(buf, si);
	rc = nd_send_record(fd, &crypto->tx, &iov, 1);
	nd_wipe(buf, sizeof(buf));	/* the token, if sealing failed */
	return rc;
}

/* SessionInfo carrying only an error status (after the key proof). */
static void send_session_status(int fd, struct nd_crypto *crypto,
				uint16_t status)
{
	struct nd_session_info si = { .status = status };

	(void)send_session_info(fd, crypto, &si);
}

/*
 * |ts - now| <= ND_CLOCK_SKEW_MAX, in unsigned arithmetic: the client's
 * timestamp is any 64-bit value, so a signed difference could overflow.
 */
static bool clock_close_enough(uint64_t ts, time_t now)
{
	uint64_t n = now < 0 ? 0 : (uint64_t)now;

	return ts >= n ? ts - n <= ND_CLOCK_SKEW_MAX :
			 n - ts <= ND_CLOCK_SKEW_MAX;
}

/*
 * Room for one more authenticated connection? Logged (at most every 10 s)
 * when not.
 */
static bool conn_room(struct nd_server *s)
{
	static int64_t last_full_warn;	/* listener thread only */
	int nconns;

	pthread_mutex_lock(&s->lock);
	nconns = s->nconns;
	pthread_mutex_unlock(&s->lock);
	if (nconns < s->max_conns)
		return true;
	if (nd_now_ms() - last_full_warn > 10000) {
		nd_warn("too many connections (%d), refusing new ones",
			s->max_conns);
		last_full_warn = nd_now_ms();
	}
	return false;
}

/* The socket and keys go to c, whose threads use it blocking. */
static void hand_over(const struct nd_admit *a, struct nd_conn *c,
		      struct nd_crypto *crypto)
{
	c->crypto = *crypto;
	nd_wipe(crypto, sizeof(*crypto));	/* moved: keys live in c */
	c->hs_deadline = a->deadline;
	fcntl(a->fd, F_SETFL, fcntl(a->fd, F_GETFL) & ~O_NONBLOCK);
}

/*
 * The ExportList of what the identity may use, built here (the listener
 * thread: the configuration cannot change under it) and sent by a
 * connection thread of its own, as it may not fit the socket buffer.
 */
static void list_exports(struct nd_server *s, const struct nd_admit *a,
			 struct nd_crypto *crypto)
{
	struct nd_conn *c = NULL;

	if (conn_room(s))
		c = nd_conn_create(s, a->fd, a->peer);
	if (c)
		c->list = nd_list_build(s, a->identity, &c->list_len);
	if (!c || !c->list) {
		if (c) {
			nd_err("client %s: out of memory, closing", a->peer);
			nd_conn_destroy(c);
		}
		nd_crypto_free(crypto);
		close(a->fd);
		return;
	}
	nd_info("client %s (identity '%s'): export list sent", a->peer,
		a->identity);
	hand_over(a, c, crypto);
	if (nd_conn_start(c) < 0) {
		nd_err("client %s: cannot start a connection thread, dropping connection",
		       c->peer);
		nd_crypto_free(&c->crypto);
		close(a->fd);
		nd_conn_destroy(c);
	}
}

/*
 * The reference nd_exp_lookup took on an overlay (a cow child): once the
 * session holds its own, or none does, which closes the overlay.
 */
static void lookup_done(struct nd_server *s, struct nd_exp *x)
{
	if (!x || !x->parent)
		return;
	pthread_mutex_lock(&s->sess_lock);
	nd_exp_put_locked(s, x);
	pthread_mutex_unlock(&s->sess_lock);
}

void nd_admit(struct nd_server *s, const struct nd_admit *a,
	      struct nd_crypto *crypto, const struct nd_client_finish *cf)
{
	const struct nd_client_hello *ch = &a->ch;
	struct nd_exp *x = NULL;
	struct nd_conn *c;
	uint16_t status;
	const char *why;
	uint32_t want;
	time_t now = time(NULL);
	int fd = a->fd;

	if (!clock_close_enough(ch->timestamp, now)) {
		nd_warn("client %s: clock skew too large (client timestamp %llu, server %lld)",
			a->peer, (unsigned long long)ch->timestamp,
			(long long)now);
		send_session_status(fd, crypto, ND_ERR_CLOCK_SKEW);
		goto refuse;
	}
	why = nd_client_finish_invalid(cf);
	if (why) {
		nd_warn("client %s: invalid client finish (%s: flags 0x%x, max payload %u, slot %u, epoch %u), refused",
			a->peer, why, cf->flags, cf->max_payload, cf->slot,
			cf->epoch);
		send_session_status(fd, crypto, ND_ERR_INVALID);
		goto refuse;
	}
	if (nd_ext_has(ch->ext, ch->ext_len, ND_EXT_LIST_EXPORTS)) {
		list_exports(s, a, crypto);
		return;
	}
	/* Only now: nothing unauthenticated learns which exports exist. */
	status = nd_exp_lookup(s, a->peer, a->identity, a->export_name, &x);
	if (status != ND_OK) {
		send_session_status(fd, crypto, status);
		goto refuse;
	}

	want = cf->max_payload ? cf->max_payload : ND_DEFAULT_PAYLOAD;
	if (want > s->max_payload)
		want = s->max_payload;
	want -= want % ND_MIN_PAYLOAD;

	if (!conn_room(s))
		goto refuse;
	c = nd_conn_create(s, fd, a->peer);
	if (!c) {
		nd_err("client %s: out of memory, closing", a->peer);
		goto refuse;
	}
	status = nd_session_attach(s, c, a->identity, x, cf);
	lookup_done(s, x);
	x = NULL;
	if (status != ND_OK) {
		nd_conn_destroy(c);
		send_session_status(fd, crypto, status);
		goto refuse;
	}
	c->max_payload = want;
	hand_over(a, c, crypto);
	if (nd_conn_start(c) < 0) {
		nd_err("client %s: cannot start a connection thread, dropping connection",
		       c->peer);
		nd_session_detach(s, c, c->sess_unknown);
		nd_crypto_free(&c->crypto);
		close(fd);
		nd_conn_destroy(c);
	}
	return;
refuse:
	lookup_done(s, x);
	nd_crypto_free(crypto);
	close(fd);
}

/* First record of a new connection, sent by its own thread. */
int nd_hs_send_session_info(struct nd_conn *c)
{
	const struct nd_export *e = &c->sess->exp->e;
	struct nd_session_info si = {
		.status = ND_OK,
		.flags = c->flags,
		.size = e->size,
		.block_size = e->block_size,
		.max_payload = c->max_payload,
	};
	int rc;

	memcpy(si.token, c->sess->token, ND_TOKEN_LEN);
	memcpy(si.export_id, e->id, ND_EXPORT_ID_LEN);
	/* A read-only connection in a writer's session may not write. */
	si.write_epoch = c->read_only ? 0 : c->sess->write_epoch;
	si.last_writer = c->sess->last_writer;
	rc = send_session_info(c->fd, &c->crypto, &si);
	nd_wipe(&si, sizeof(si));
	return rc;
}

void nd_hs_send_session_status(struct nd_conn *c, uint16_t status)
{
	send_session_status(c->fd, &c->crypto, status);
}
