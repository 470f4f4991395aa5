// SPDX-License-Identifier: MIT
/*
 * Sessions and the per-export write lock. A session is created by a
 * handshake without a token and joined by later connections presenting its
 * token (multi-queue). It outlives its last connection by the grace period
 * so a client can reconnect and keep the write lock.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	if (ss->flags & ND_EXP_EXCLUSIVE)
		return "read-only export";
	return "read-only";
}

static void session_free(struct nd_server *s, struct nd_session *ss)
{
	if (ss->writer && ss->exp->writer == ss)
		ss->exp->writer = NULL;
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

		if (ss->nconns == 0 && (all || now >= ss->expire_ms)) {
			*pp = ss->next;
			if (ss->writer && !all)
				nd_info("session %llu: grace period over, write lock on '%s' released",
					ss->id, ss->exp->name);
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
				      const char *identity)
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
	ss->exp = &s->exp;
	ss->nconns = 1;
	ss->next = s->sessions;
	s->sessions = ss;
	return ss;
}

struct nd_session_result nd_session_attach(struct nd_server *s,
					   const char *peer,
					   const char *identity,
					   const struct nd_client_finish *cf)
{
	const uint8_t *token = cf->token;
	uint32_t cf_flags = cf->flags;
	struct nd_session_result res = { ND_OK, NULL, 0, false };
	struct nd_export *e = &s->exp;
	struct nd_session *ss;

	pthread_mutex_lock(&s->sess_lock);
	expire_locked(s, false);

	if (!token_is_zero(token)) {
		for (ss = s->sessions; ss; ss = ss->next)
			if (nd_equal(ss->token, token, ND_TOKEN_LEN) &&
			    strcmp(ss->identity, identity) == 0)
				break;
		if (!ss) {
			nd_warn("client %s: unknown or expired session token",
				peer);
			res.status = ND_ERR_NO_SESSION;
			goto out;
		}
		ss->nconns++;
		res.flags = ss->flags;
		/*
		 * A connection asking for read-only access gets it, even in a
		 * writer's session: the token must not upgrade it. Not
		 * EXCLUSIVE either, as for a read-only session beside a writer.
		 */
		if ((cf_flags & ND_CF_READ_ONLY) &&
		    !(res.flags & ND_EXP_READ_ONLY))
			res.flags = ND_EXP_READ_ONLY | ND_EXP_FLUSH;
		nd_info("client %s: joined session %llu (%s%s, %d connection%s)",
			peer, ss->id, mode_str(ss),
			res.flags != ss->flags ? ", this connection read-only" :
			"", ss->nconns, ss->nconns == 1 ? "" : "s");
		res.sess = ss;
		goto out;
	}

	if (!e->read_only && !(cf_flags & ND_CF_READ_ONLY) && e->writer) {
		nd_warn("client %s: export '%s' busy: write lock held by session %llu",
			peer, e->name, e->writer->id);
		res.status = ND_ERR_BUSY;
		goto out;
	}
	ss = session_new(s, identity);
	if (!ss) {
		nd_err("client %s: cannot create session: out of memory or no randomness",
		       peer);
		res.status = ND_ERR_IO;
		goto out;
	}
	if (e->read_only) {
		/* Nobody can write: the client may cache freely. */
		ss->flags = ND_EXP_READ_ONLY | ND_EXP_FLUSH | ND_EXP_EXCLUSIVE;
	} else if (cf_flags & ND_CF_READ_ONLY) {
		ss->flags = ND_EXP_READ_ONLY | ND_EXP_FLUSH;
	} else {
		ss->flags = ND_EXP_FLUSH | ND_EXP_EXCLUSIVE | e->caps;
		ss->writer = true;
		ss->write_epoch = ++e->write_epoch_reserved;
		e->writer = ss;
	}
	nd_info("client %s: new session %llu on '%s' (%s)", peer, ss->id,
		e->name, mode_str(ss));
	res.sess = ss;
	res.flags = ss->flags;
	res.created = true;
out:
	pthread_mutex_unlock(&s->sess_lock);
	return res;
}

void nd_session_detach(struct nd_server *s, struct nd_session *ss,
		       bool clean)
{
	pthread_mutex_lock(&s->sess_lock);
	if (--ss->nconns == 0) {
		/*
		 * A DISCONNECT on the last connection means the client is
		 * done: end the session now rather than block the next
		 * writer for the grace period.
		 */
		ss->expire_ms = nd_now_ms() + (clean ? 0 : s->grace_ms);
		if (clean && ss->writer)
			nd_info("session %llu: closed by client, write lock on '%s' released",
				ss->id, ss->exp->name);
		else if (ss->writer && s->grace_ms > 0 &&
			 !__atomic_load_n(&s->stopping, __ATOMIC_RELAXED))
			nd_info("session %llu: last connection closed, write lock kept for %g s",
				ss->id, s->grace_ms / 1000.0);
		else
			nd_debug("session %llu: last connection closed", ss->id);
		if (clean) {
			ss->writer = false;
			if (ss->exp->writer == ss)
				ss->exp->writer = NULL;
		}
		if (clean || s->grace_ms == 0)
			expire_locked(s, false);
	}
	pthread_mutex_unlock(&s->sess_lock);
}
