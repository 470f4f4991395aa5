// SPDX-License-Identifier: MIT
/*
 * The export table: one struct nd_exp per export of the configuration,
 * each with its backend (opened and OFD-locked by nd_file_open), its
 * write-epoch state and its writer. Sessions hold references, so an
 * export a reload removed stays open until its last session has ended.
 * Which export a client gets, if any, is decided here (nd_exp_lookup).
 *
 * A copy-on-write export's entry holds only its read-only base; each
 * identity with a session gets a child (its overlay, cow.h), created by
 * nd_exp_lookup and closed with the last reference (internal.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cow.h"
#include "internal.h"
#include "log.h"

int (*nd_backend_open)(struct nd_export *e, const char *path, bool read_only,
		       char *err, size_t errlen) = nd_file_open;

struct nd_exp *nd_exp_new(const struct nd_cfg_export *ce)
{
	struct nd_exp *x = calloc(1, sizeof(*x));

	if (!x)
		return NULL;
	snprintf(x->e.name, sizeof(x->e.name), "%s", ce->name);
	snprintf(x->path, sizeof(x->path), "%s", ce->path);
	x->e.read_only = ce->read_only || ce->cow_dir[0];
	snprintf(x->cow_dir, sizeof(x->cow_dir), "%s", ce->cow_dir);
	x->refs = 1;
	pthread_mutex_init(&x->state_lock, NULL);
	return x;
}

int nd_exp_open(struct nd_exp *x, const char *state_dir, char *err,
		size_t errlen)
{
	char why[256];
	struct stat st;

	if (nd_backend_open(&x->e, x->path, x->e.read_only, why,
			    sizeof(why)) < 0) {
		snprintf(err, errlen, "export '%s': %s", x->e.name, why);
		return -1;
	}
	if (stat(x->path, &st) == 0) {
		x->dev = st.st_dev;
		x->ino = st.st_ino;
	}
	/* The overlays have the write epochs; a missing dir fails now. */
	if (x->cow_dir[0]) {
		if (mkdir(x->cow_dir, 0700) < 0 && errno != EEXIST) {
			snprintf(err, errlen,
				 "export '%s': cow directory %s: cannot create it: %s",
				 x->e.name, x->cow_dir, strerror(errno));
			nd_export_close(&x->e);
			return -1;
		}
		return 0;
	}
	if (nd_state_open(x, state_dir, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "export '%s': %s", x->e.name, why);
		nd_export_close(&x->e);
		return -1;
	}
	return 0;
}

void nd_exp_free(struct nd_exp *x)
{
	if (!x)
		return;
	nd_export_close(&x->e);
	pthread_mutex_destroy(&x->state_lock);
	free(x->held);
	free(x);
}

/* Takes child x out of its parent's list; sess_lock held. */
static void child_unlink_locked(struct nd_exp *x)
{
	struct nd_exp **pp = &x->parent->children;

	while (*pp && *pp != x)
		pp = &(*pp)->sibling;
	if (*pp)
		*pp = x->sibling;
}

void nd_exp_put_locked(struct nd_server *s, struct nd_exp *x)
{
	struct nd_exp *parent = x->parent;

	if (--x->refs > 0)
		return;
	if (parent) {
		child_unlink_locked(x);
		if (x->open)
			nd_info("export '%s': overlay of '%s' closed",
				x->e.name, x->identity);
	} else if (x->open) {
		nd_info("export '%s': %s closed", x->e.name, x->path);
	}
	nd_exp_free(x);
	if (parent)
		nd_exp_put_locked(s, parent);
	/*
	 * A reload may wait for the file to take it over (reload.c), an
	 * overlay command for the overlay to be closed.
	 */
	pthread_cond_broadcast(&s->sess_cond);
}

bool nd_exp_serves(const struct nd_exp *x, const struct nd_cfg_export *ce)
{
	return strcmp(x->e.name, ce->name) == 0 &&
	       strcmp(x->path, ce->path) == 0 &&
	       strcmp(x->cow_dir, ce->cow_dir) == 0 &&
	       x->e.read_only == (ce->read_only || ce->cow_dir[0]);
}

bool nd_exp_same_file(const struct nd_exp *x, const char *path)
{
	struct stat st;

	if (strcmp(x->path, path) == 0)
		return true;
	return x->open && stat(path, &st) == 0 && st.st_dev == x->dev &&
	       st.st_ino == x->ino;
}

uint16_t nd_exp_lookup(struct nd_server *s, const char *peer,
		       const char *identity, const char *name,
		       struct nd_exp **out)
{
	const struct nd_cfg_export *ce = nd_config_export(&s->cfg, name);
	struct nd_exp *x;

	if (!ce) {
		nd_warn("client %s (identity '%s'): no such export '%s'", peer,
			identity, name);
		return ND_ERR_NO_EXPORT;
	}
	if (!nd_config_allows(ce, identity)) {
		nd_warn("client %s (identity '%s'): not allowed on export '%s', access denied",
			peer, identity, name);
		return ND_ERR_ACCESS;
	}
	x = s->exps[ce - s->cfg.exports];
	if (!x->open) {
		nd_warn("client %s (identity '%s'): export '%s' is not open (see the reload's error), refused",
			peer, identity, name);
		return ND_ERR_IO;
	}
	if (x->cow_dir[0])
		return nd_exp_cow_child_get(s, peer, identity, x, out);
	*out = x;
	return ND_OK;
}

int nd_exps_create(struct nd_server *s, char *err, size_t errlen)
{
	int n = s->cfg.nexports;

	s->exps = calloc(n ? (size_t)n : 1, sizeof(*s->exps));
	if (!s->exps) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (int i = 0; i < n; i++) {
		s->exps[i] = nd_exp_new(&s->cfg.exports[i]);
		if (!s->exps[i]) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		if (nd_exp_open(s->exps[i], s->cfg.state_dir, err, errlen) < 0)
			return -1;
		s->exps[i]->open = true;
	}
	return 0;
}

void nd_exps_destroy(struct nd_server *s)
{
	if (!s->exps)
		return;
	pthread_mutex_lock(&s->sess_lock);
	for (int i = 0; i < s->cfg.nexports; i++)
		if (s->exps[i])
			nd_exp_put_locked(s, s->exps[i]);
	pthread_mutex_unlock(&s->sess_lock);
	free(s->exps);
	s->exps = NULL;
}
