// SPDX-License-Identifier: MIT
/*
 * Copy-on-write exports in the export table (docs/COW-FORMAT.md). The
 * table's entry holds the read-only base; each identity with a session
 * gets a child nd_exp whose backend is the identity's overlay (cow.c) over
 * that base, with its own writer and write epochs (state file keyed by
 * the overlay's export id). A child lives while referenced: by the
 * sessions on it, and by the handshake that looked it up until its
 * session is made (admit.c). It is linked into its parent's list before
 * its overlay is opened, so an overlay command sees it at once.
 *
 * An overlay command (nd_server_overlay) holds the identity while it
 * works on the file: new sessions of that identity get busy meanwhile.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cow.h"
#include "internal.h"
#include "log.h"

/* The child of x for identity, open or being opened; sess_lock held. */
static struct nd_exp *child_find_locked(struct nd_exp *x,
					const char *identity)
{
	struct nd_exp *c;

	for (c = x->children; c; c = c->sibling)
		if (strcmp(c->identity, identity) == 0)
			return c;
	return NULL;
}

struct nd_exp *nd_exp_cow_child_locked(struct nd_exp *x,
				       const char *identity)
{
	struct nd_exp *c = child_find_locked(x, identity);

	return c && c->open ? c : NULL;
}

bool nd_exp_cow_held_locked(const struct nd_exp *x, const char *identity)
{
	for (int i = 0; i < x->nheld; i++)
		if (strcmp(x->held[i], identity) == 0)
			return true;
	return false;
}

bool nd_exp_cow_busy_locked(struct nd_exp *x, const char *identity)
{
	return child_find_locked(x, identity) ||
	       nd_exp_cow_held_locked(x, identity);
}

/* A child of x for identity, linked, not opened (refs 1); sess_lock held. */
static struct nd_exp *child_new_locked(struct nd_exp *x, const char *identity)
{
	struct nd_exp *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	memcpy(c->e.name, x->e.name, sizeof(c->e.name));
	memcpy(c->path, x->path, sizeof(c->path));
	snprintf(c->identity, sizeof(c->identity), "%s", identity);
	pthread_mutex_init(&c->state_lock, NULL);
	c->refs = 1;
	c->parent = x;
	x->refs++;
	c->sibling = x->children;
	x->children = c;
	return c;
}

/*
 * Opens child c's overlay and write-epoch state (blocking I/O; c is
 * nobody else's yet). ND_OK, or the status to refuse the client with,
 * logged.
 */
static uint16_t child_open(struct nd_server *s, const char *peer,
			   struct nd_exp *c)
{
	struct nd_exp *x = c->parent;
	struct nd_cow_base base = {
		.e = &x->e, .path = x->path, .dev = x->dev, .ino = x->ino,
	};
	char err[512];
	int rc;

	rc = nd_cow_open(&base, x->cow_dir, c->identity, &c->e, err,
			 sizeof(err));
	if (rc == ND_COW_BASE_CHANGED) {
		nd_err("client %s (identity '%s'): export '%s': %s; refused (base changed); `netdiskd overlay reset %s %s` starts the identity over from the current base",
		       peer, c->identity, x->e.name, err, x->e.name,
		       c->identity);
		return ND_ERR_BASE_CHANGED;
	}
	if (rc == ND_COW_IN_USE) {
		nd_warn("client %s (identity '%s'): export '%s': %s (another process has the overlay open), busy",
			peer, c->identity, x->e.name, err);
		return ND_ERR_BUSY;
	}
	if (rc < 0) {
		nd_err("client %s (identity '%s'): export '%s': %s, refused",
		       peer, c->identity, x->e.name, err);
		return ND_ERR_IO;
	}
	memcpy(c->e.name, x->e.name, sizeof(c->e.name));
	c->e.writer = NULL;
	if (nd_state_open(c, s->cfg.state_dir, err, sizeof(err)) < 0) {
		nd_err("client %s (identity '%s'): export '%s': overlay of '%s': %s, refused",
		       peer, c->identity, x->e.name, c->identity, err);
		nd_export_close(&c->e);
		return ND_ERR_IO;
	}
	nd_info("export '%s': overlay of '%s' opened (%s/%s%s)", x->e.name,
		c->identity, x->cow_dir, c->identity, ND_COW_SUFFIX);
	return ND_OK;
}

uint16_t nd_exp_cow_child_get(struct nd_server *s, const char *peer,
			      const char *identity, struct nd_exp *x,
			      struct nd_exp **out)
{
	struct nd_exp *c;
	uint16_t status;

	pthread_mutex_lock(&s->sess_lock);
	if (nd_exp_cow_held_locked(x, identity)) {
		pthread_mutex_unlock(&s->sess_lock);
		nd_warn("client %s (identity '%s'): export '%s': an overlay command is working on its overlay, busy",
			peer, identity, x->e.name);
		return ND_ERR_BUSY;
	}
	c = child_find_locked(x, identity);
	if (c) {
		/* Only this (the listener) thread opens children. */
		c->refs++;
		pthread_mutex_unlock(&s->sess_lock);
		*out = c;
		return ND_OK;
	}
	c = child_new_locked(x, identity);
	pthread_mutex_unlock(&s->sess_lock);
	if (!c) {
		nd_err("client %s: out of memory, refused", peer);
		return ND_ERR_IO;
	}
	status = child_open(s, peer, c);
	pthread_mutex_lock(&s->sess_lock);
	if (status == ND_OK)
		c->open = true;
	else
		nd_exp_put_locked(s, c);
	pthread_mutex_unlock(&s->sess_lock);
	if (status == ND_OK)
		*out = c;
	return status;
}

static int held_add_locked(struct nd_exp *x, const char *identity)
{
	char (*grown)[ND_NAME_MAX + 1];

	grown = realloc(x->held, (size_t)(x->nheld + 1) * sizeof(*grown));
	if (!grown)
		return -1;
	x->held = grown;
	snprintf(x->held[x->nheld], sizeof(x->held[0]), "%s", identity);
	x->nheld++;
	return 0;
}

static void held_remove_locked(struct nd_exp *x, const char *identity)
{
	for (int i = 0; i < x->nheld; i++) {
		if (strcmp(x->held[i], identity))
			continue;
		memmove(x->held[i], x->held[i + 1],
			(size_t)(x->nheld - i - 1) * sizeof(x->held[0]));
		x->nheld--;
		return;
	}
}

int nd_exp_cow_hold(struct nd_server *s, struct nd_exp *x,
		    const char *identity, bool force, int timeout_ms,
		    char *err, size_t errlen)
{
	int64_t deadline = nd_now_ms() + timeout_ms;
	struct nd_exp *c;
	int ended = 0;

	if (!x->cow_dir[0] || x->parent) {
		snprintf(err, errlen, "export '%s' is not a copy-on-write export",
			 x->e.name);
		return -1;
	}
	pthread_mutex_lock(&s->sess_lock);
	if (nd_exp_cow_held_locked(x, identity)) {
		pthread_mutex_unlock(&s->sess_lock);
		snprintf(err, errlen,
			 "identity '%s': another overlay command is working on its overlay",
			 identity);
		return -1;
	}
	c = child_find_locked(x, identity);
	if (c && !force) {
		pthread_mutex_unlock(&s->sess_lock);
		snprintf(err, errlen,
			 "identity '%s' is attached; --force ends its session",
			 identity);
		return -1;
	}
	if (held_add_locked(x, identity) < 0) {
		pthread_mutex_unlock(&s->sess_lock);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	/* From here no new session of identity starts (session.c). */
	for (struct nd_session *ss = s->sessions; c && ss; ss = ss->next)
		if (ss->exp == c && !ss->revoked) {
			nd_session_revoke_locked(s, ss,
				"by an overlay command (forced)");
			ended++;
		}
	pthread_mutex_unlock(&s->sess_lock);
	if (ended)
		nd_session_expire(s, false);	/* the idle ones end now */

	pthread_mutex_lock(&s->sess_lock);
	while ((c = child_find_locked(x, identity))) {
		int64_t left = deadline - nd_now_ms();
		struct timespec ts;

		if (left <= 0)
			break;
		ts = nd_abstime_in_ms(left);
		pthread_cond_timedwait(&s->sess_cond, &s->sess_lock, &ts);
	}
	if (c) {
		held_remove_locked(x, identity);
		pthread_mutex_unlock(&s->sess_lock);
		snprintf(err, errlen,
			 "identity '%s': its session did not end within %d ms",
			 identity, timeout_ms);
		return -1;
	}
	pthread_mutex_unlock(&s->sess_lock);
	return 0;
}

void nd_exp_cow_unhold(struct nd_server *s, struct nd_exp *x,
		       const char *identity)
{
	pthread_mutex_lock(&s->sess_lock);
	held_remove_locked(x, identity);
	pthread_mutex_unlock(&s->sess_lock);
}
