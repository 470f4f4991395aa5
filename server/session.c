// SPDX-License-Identifier: MIT
/*
 * Sessions and the per-export write lock. A session is created by a
 * handshake without a token and joined by later connections presenting its
 * token (multi-queue). It outlives its last connection by the grace period
 * so a client can reconnect and keep the write lock.
 *
 * Each connection holds a slot of its session. A connection with a newer
 * epoch for a slot fences the slot's current one (slot_take_locked) and gets
 * its SessionInfo only once that one has finished every request it
 * started (nd_session_ready, on the new connection's own thread, so no
 * other handshake waits). A session ends only when its last connection
 * has, so its write lock is never released under a running request.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "internal.h"
#include "log.h"

static bool token_is_zero(const uint8_t t[ND_TOKEN_LEN])
{
	uint8_t acc = 0;

	for (int i = 0; i < ND_TOKEN_LEN; i++)
		acc |= t[i];
	return acc == 0;
}

static const char *mode_str(const struct nd_session *ss)
{
	if (ss->writer)
		return "read-write, exclusive";
	if (ss->exp->parent)
		return "read-only, exclusive";
	if (ss->flags & ND_EXP_EXCLUSIVE)
		return "read-only export";
	return "read-only";
}

static void session_free(struct nd_server *s, struct nd_session *ss)
{
	if (ss->writer && ss->exp->e.writer == ss)
		ss->exp->e.writer = NULL;
	nd_exp_put_locked(s, ss->exp);
	nd_wipe(ss->token, sizeof(ss->token));
	free(ss);
}

/* Drops sessions whose grace period is over (or every idle one if all). */
static void expire_locked(struct nd_server *s, bool all)
{
	int64_t now = nd_now_ms();
	struct nd_session **pp = &s->sessions;

	while (*pp) {
		struct nd_session *ss = *pp;

		if (ss->nconns == 0 &&
		    (all || ss->revoked || now >= ss->expire_ms)) {
			*pp = ss->next;
			if (ss->writer && ss->revoked)
				nd_info("session %llu: ended (revoked), write lock on '%s' released",
					ss->id, ss->exp->e.name);
			else if (ss->writer && !all)
				nd_info("session %llu: grace period over, write lock on '%s' released",
					ss->id, ss->exp->e.name);
			else
				nd_debug("session %llu: expired", ss->id);
			session_free(s, ss);
		} else {
			pp = &ss->next;
		}
	}
}

void nd_session_expire(struct nd_server *s, bool all)
{
	pthread_mutex_lock(&s->sess_lock);
	expire_locked(s, all);
	pthread_mutex_unlock(&s->sess_lock);
}

static struct nd_session *session_new(struct nd_server *s,
				      const char *identity, struct nd_exp *x)
{
	struct nd_session *ss = calloc(1, sizeof(*ss));

	if (!ss)
		return NULL;
	/* A token must never be all zero: that means "new session". */
	do {
		if (nd_random(ss->token, sizeof(ss->token)) < 0) {
			free(ss);
			return NULL;
		}
	} while (token_is_zero(ss->token));
	ss->id = ++s->last_session_id;
	snprintf(ss->identity, sizeof(ss->identity), "%s", identity);
	ss->exp = x;
	x->refs++;
	ss->created_ms = nd_now_ms();
	ss->next = s->sessions;
	s->sessions = ss;
	return ss;
}

/*
 * c takes its slot in ss: a newer epoch than the slot's, so the slot's
 * connection is cut off now (no more requests read, no replies) and c
 * waits for it to finish (nd_session_ready). sess_lock held.
 */
static void slot_take_locked(struct nd_server *s, struct nd_session *ss,
			     struct nd_conn *c)
{
	struct nd_slot *sl = &ss->slots[c->slot];
	struct nd_conn *old = sl->conn;

	if (old) {
		bool serving;

		pthread_mutex_lock(&old->lock);
		old->fenced = true;
		old->dead = true;
		serving = old->serving;
		pthread_cond_broadcast(&old->rx_cond);
		pthread_mutex_unlock(&old->lock);
		/*
		 * Both directions: its receiver stops at once, and a sender
		 * blocked on a client that stopped reading fails instead of
		 * holding the fence up. Its fd stays open until it detaches.
		 * One still waiting for its own fence answers superseded.
		 */
		if (serving) {
			shutdown(old->fd, SHUT_RDWR);
			nd_conn_drop_queued(old);
		}
		sl->draining++;
		/* It may itself be waiting in nd_session_ready. */
		pthread_cond_broadcast(&s->sess_cond);
		nd_info("client %s: session %llu slot %u: replaces connection %s (epoch %u -> %u), fencing it",
			c->peer, ss->id, c->slot, old->peer, sl->epoch,
			c->epoch);
	}
	sl->epoch = c->epoch;
	sl->conn = c;
	ss->nconns++;
	c->sess = ss;
}

static uint16_t join_locked(struct nd_server *s, struct nd_conn *c,
			    const char *identity, struct nd_exp *x,
			    const struct nd_client_finish *cf)
{
	struct nd_session *ss;

	/* A session is joined by its token, identity and export only. */
	for (ss = s->sessions; ss; ss = ss->next)
		if (nd_equal(ss->token, cf->token, ND_TOKEN_LEN) &&
		    strcmp(ss->identity, identity) == 0 && ss->exp == x &&
		    !ss->revoked)
			break;
	if (!ss) {
		nd_warn("client %s: unknown or expired session token",
			c->peer);
		return ND_ERR_NO_SESSION;
	}
	if (cf->epoch <= ss->slots[cf->slot].epoch) {
		nd_warn("client %s: session %llu slot %u: epoch %u not above %u, superseded",
			c->peer, ss->id, cf->slot, cf->epoch,
			ss->slots[cf->slot].epoch);
		return ND_ERR_SUPERSEDED;
	}
	c->flags = ss->flags;
	/*
	 * A connection asking for read-only access gets it, even in a
	 * writer's session: the token must not upgrade it. Not EXCLUSIVE
	 * either, as for a read-only session beside a writer.
	 */
	if ((cf->flags & ND_CF_READ_ONLY) && !(c->flags & ND_EXP_READ_ONLY))
		c->flags = ND_EXP_READ_ONLY | ND_EXP_FLUSH;
	slot_take_locked(s, ss, c);
	nd_info("client %s: joined session %llu (%s%s, slot %u, %d connection%s)",
		c->peer, ss->id, mode_str(ss),
		c->flags != ss->flags ? ", this connection read-only" : "",
		c->slot, ss->nconns, ss->nconns == 1 ? "" : "s");
	return ND_OK;
}

/*
 * An overlay (x a cow child) has one session at a time, read-only or
 * not, and none while an overlay command holds the identity: true and
 * logged if c must wait.
 */
static bool cow_busy_locked(struct nd_server *s, struct nd_conn *c,
			    const char *identity, struct nd_exp *x)
{
	if (nd_exp_cow_held_locked(x->parent, identity)) {
		nd_warn("client %s: export '%s' busy: an overlay command is working on the overlay of '%s'",
			c->peer, x->e.name, identity);
		return true;
	}
	for (struct nd_session *ss = s->sessions; ss; ss = ss->next)
		if (ss->exp == x) {
			nd_warn("client %s: export '%s' busy: identity '%s' has session %llu on its overlay (one session per identity)",
				c->peer, x->e.name, identity, ss->id);
			return true;
		}
	return false;
}

static uint16_t create_locked(struct nd_server *s, struct nd_conn *c,
			      const char *identity, struct nd_exp *x,
			      const struct nd_client_finish *cf)
{
	struct nd_export *e = &x->e;
	struct nd_wstate *ws = &x->ws;
	bool resume = cf->resume_writer || cf->resume_own;
	struct nd_session *ss;

	if (x->parent && cow_busy_locked(s, c, identity, x))
		return ND_ERR_BUSY;
	if (!e->read_only && !(cf->flags & ND_CF_READ_ONLY) && e->writer) {
		nd_warn("client %s: export '%s' busy: write lock held by session %llu",
			c->peer, e->name, e->writer->id);
		return ND_ERR_BUSY;
	}
	/*
	 * The client's previous session wrote the export, or began when its
	 * last writer had: anything else means another writer came between
	 * (a read-only export records none: written stays 0).
	 */
	if (resume && ws->written != cf->resume_writer &&
	    ws->written != cf->resume_own) {
		nd_warn("client %s (identity '%s'): export '%s' was written by write epoch %llu since this client's session (epoch %llu, last writer then %llu): refused, written by another client",
			c->peer, identity, e->name,
			(unsigned long long)ws->written,
			(unsigned long long)cf->resume_own,
			(unsigned long long)cf->resume_writer);
		return ND_ERR_WRITTEN;
	}
	ss = session_new(s, identity, x);
	if (!ss) {
		nd_err("client %s: cannot create session: out of memory or no randomness",
		       c->peer);
		return ND_ERR_IO;
	}
	ss->last_writer = ws->written;
	if (e->read_only) {
		/* Nobody can write: the client may cache freely. */
		ss->flags = ND_EXP_READ_ONLY | ND_EXP_FLUSH | ND_EXP_EXCLUSIVE;
	} else if (cf->flags & ND_CF_READ_ONLY) {
		ss->flags = ND_EXP_READ_ONLY | ND_EXP_FLUSH;
		/* An overlay's only session: nobody else writes it. */
		if (x->parent)
			ss->flags |= ND_EXP_EXCLUSIVE;
	} else {
		ss->flags = ND_EXP_FLUSH | ND_EXP_EXCLUSIVE | e->caps;
		ss->writer = true;
		e->writer = ss;
		/* Stored by nd_session_ready before the SessionInfo. */
		ss->write_epoch = ++ws->reserved;
		c->store_epoch = true;
	}
	c->flags = ss->flags;
	c->sess_unknown = true;
	slot_take_locked(s, ss, c);
	if (ss->writer)
		nd_info("client %s: new session %llu of '%s' on '%s' (%s, write epoch %llu, last writer %llu)",
			c->peer, ss->id, identity, e->name, mode_str(ss),
			(unsigned long long)ss->write_epoch,
			(unsigned long long)ss->last_writer);
	else
		nd_info("client %s: new session %llu of '%s' on '%s' (%s)",
			c->peer, ss->id, identity, e->name, mode_str(ss));
	return ND_OK;
}

uint16_t nd_session_attach(struct nd_server *s, struct nd_conn *c,
			   const char *identity, struct nd_exp *x,
			   const struct nd_client_finish *cf)
{
	uint16_t status;

	c->slot = cf->slot;
	c->epoch = cf->epoch;
	pthread_mutex_lock(&s->sess_lock);
	expire_locked(s, false);
	if (token_is_zero(cf->token))
		status = create_locked(s, c, identity, x, cf);
	else
		status = join_locked(s, c, identity, x, cf);
	pthread_mutex_unlock(&s->sess_lock);
	if (status == ND_OK)
		c->read_only = c->flags & ND_EXP_READ_ONLY;
	return status;
}

uint16_t nd_session_ready(struct nd_server *s, struct nd_conn *c)
{
	struct nd_session *ss = c->sess;
	struct nd_slot *sl = &ss->slots[c->slot];
	uint16_t status = ND_OK;

	pthread_mutex_lock(&s->sess_lock);
	if (sl->draining && !c->fenced)
		nd_debug("client %s: waiting for the connection it replaces to finish its requests",
			 c->peer);
	/*
	 * Only this slot's older connections count: a newer one would have
	 * fenced c. Bounded by c's handshake deadline: a request that never
	 * finishes (a hung disk) keeps the slot fenced, and c is closed like
	 * any handshake that takes too long; the client retries.
	 */
	while (sl->draining && !c->fenced && !ss->revoked &&
	       !__atomic_load_n(&s->stopping, __ATOMIC_RELAXED)) {
		int64_t left = c->hs_deadline - nd_now_ms();
		struct timespec ts;

		if (left <= 0)
			break;
		ts = nd_abstime_in_ms(left);
		pthread_cond_timedwait(&s->sess_cond, &s->sess_lock, &ts);
	}
	if (c->fenced) {
		status = ND_ERR_SUPERSEDED;
	} else if (ss->revoked) {
		status = ND_SESSION_CLOSE;
	} else if (sl->draining) {
		nd_warn("client %s: session %llu slot %u: the connection it replaces still has requests running at the handshake timeout, closing",
			c->peer, ss->id, c->slot);
		status = ND_SESSION_CLOSE;
	}
	pthread_mutex_unlock(&s->sess_lock);
	if (status != ND_OK || !c->store_epoch)
		return status;

	pthread_mutex_lock(&ss->exp->state_lock);
	if (nd_state_store_locked(s, ss->exp) < 0) {
		nd_err("client %s: write epoch %llu of session %llu not stored, refused",
		       c->peer, (unsigned long long)ss->write_epoch, ss->id);
		status = ND_ERR_IO;
	}
	pthread_mutex_unlock(&ss->exp->state_lock);
	return status;
}

int nd_session_first_write(struct nd_server *s, struct nd_session *ss)
{
	struct nd_exp *x = ss->exp;
	int rc = 0;

	if (!ss->write_epoch || __atomic_load_n(&ss->wrote, __ATOMIC_ACQUIRE))
		return 0;
	/* Other first writes of the session wait here until it is stored. */
	pthread_mutex_lock(&x->state_lock);
	if (!ss->wrote) {
		uint64_t prev;

		pthread_mutex_lock(&s->sess_lock);
		prev = x->ws.written;
		x->ws.written = ss->write_epoch;
		pthread_mutex_unlock(&s->sess_lock);
		rc = nd_state_store_locked(s, x);
		if (rc == 0) {
			__atomic_store_n(&ss->wrote, true, __ATOMIC_RELEASE);
		} else {
			pthread_mutex_lock(&s->sess_lock);
			x->ws.written = prev;
			pthread_mutex_unlock(&s->sess_lock);
			nd_err("session %llu: write epoch not stored, its write refused",
			       ss->id);
		}
	}
	pthread_mutex_unlock(&x->state_lock);
	return rc;
}

void nd_session_detach(struct nd_server *s, struct nd_conn *c, bool clean)
{
	struct nd_session *ss = c->sess;
	struct nd_slot *sl = &ss->slots[c->slot];
	const struct nd_export *e = &ss->exp->e;

	/*
	 * An overlay is closed under sess_lock when its session ends, and
	 * closing commits its map: committed here, outside the lock, by
	 * every connection that goes (all of a session's may go at once,
	 * each seeing the others), that final commit finds nothing left to
	 * sync and holds nobody up. A commit with nothing new costs nothing.
	 */
	if (ss->exp->parent && e->ops->flush(e->h) < 0)
		nd_debug("client %s: commit of the overlay of '%s' at detach failed",
			 c->peer, ss->identity);
	pthread_mutex_lock(&s->sess_lock);
	if (sl->conn == c)
		sl->conn = NULL;
	if (c->fenced) {
		/* Its requests have all finished: the slot's new one may go. */
		sl->draining--;
		pthread_cond_broadcast(&s->sess_cond);
	}
	if (--ss->nconns == 0) {
		/*
		 * A DISCONNECT on the last connection means the client is
		 * done: end the session now rather than block the next
		 * writer for the grace period.
		 */
		/* A revoked session ends now, like a clean one. */
		clean = clean || ss->revoked;
		ss->expire_ms = nd_now_ms() + (clean ? 0 : s->grace_ms);
		if (ss->revoked && ss->writer)
			nd_info("session %llu: ended (revoked), write lock on '%s' released",
				ss->id, ss->exp->e.name);
		else if (clean && ss->writer)
			nd_info("session %llu: closed by client, write lock on '%s' released",
				ss->id, ss->exp->e.name);
		else if (ss->writer && s->grace_ms > 0 &&
			 !__atomic_load_n(&s->stopping, __ATOMIC_RELAXED))
			nd_info("session %llu: last connection closed, write lock kept for %g s",
				ss->id, s->grace_ms / 1000.0);
		else
			nd_debug("session %llu: last connection closed", ss->id);
		if (clean) {
			ss->writer = false;
			if (ss->exp->e.writer == ss)
				ss->exp->e.writer = NULL;
		}
		if (clean || s->grace_ms == 0)
			expire_locked(s, false);
	}
	pthread_mutex_unlock(&s->sess_lock);
}

void nd_session_revoke_locked(struct nd_server *s, struct nd_session *ss,
			      const char *why)
{
	if (ss->revoked)
		return;
	ss->revoked = true;
	nd_info("session %llu (identity '%s', export '%s'): closed %s",
		ss->id, ss->identity, ss->exp->e.name, why);
	for (int i = 0; i < ND_MAX_SLOTS; i++) {
		struct nd_conn *c = ss->slots[i].conn;

		if (!c)
			continue;
		/* As a fence: nothing more read, nothing more answered. */
		pthread_mutex_lock(&c->lock);
		c->dead = true;
		pthread_cond_broadcast(&c->rx_cond);
		pthread_mutex_unlock(&c->lock);
		shutdown(c->fd, SHUT_RDWR);
		nd_conn_drop_queued(c);
	}
	/* One waiting for its slot's fence gives up (nd_session_ready). */
	pthread_cond_broadcast(&s->sess_cond);
}
