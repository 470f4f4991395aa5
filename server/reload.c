// SPDX-License-Identifier: MIT
/*
 * Reload (SIGHUP, nd_server_reload): the listener thread loads the
 * configuration file anew and switches to it whole or not at all. Run
 * between two turns of its event loop, so no handshake sees half of it.
 *
 *   load → open the added and changed exports (any failure: reject, the
 *   old configuration stays) → swap configuration and export table under
 *   sess_lock, revoking the sessions the change concerns → drop the
 *   pending handshakes that proved a key that changed → open the exports
 *   that take over a file a replaced export still held.
 *
 * An export is "changed" when its path, read-only or cow setting is; the new
 * one is a new struct nd_exp (new file, new lock), the old one lives until
 * its revoked sessions have ended. When both are the same file, the new
 * one can only lock it once the old one let go: it is opened last, waiting
 * for that at most the shutdown drain time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "log.h"

static void reject(struct nd_server *s, const char *why)
{
	nd_err("reload of %s rejected: %s; the old configuration stays in force",
	       s->cfg.file[0] ? s->cfg.file : "the configuration", why);
	__atomic_add_fetch(&s->reloads_rejected, 1, __ATOMIC_RELEASE);
}

static bool same_key(const uint8_t *a, const uint8_t *b)
{
	if (!a || !b)
		return a == b;
	return nd_equal(a, b, ND_KEY_LEN);
}

static bool same_listen(const struct nd_config *a, const struct nd_config *b)
{
	if (a->nlisten != b->nlisten || a->port != b->port)
		return false;
	for (int i = 0; i < a->nlisten; i++)
		if (strcmp(a->listen[i], b->listen[i]))
			return false;
	return true;
}

/*
 * [server] settings other than log-level and the keys stay as they are
 * until a restart: next gets the values in force, and a warning.
 */
static void keep_restart_settings(struct nd_config *next,
				  struct nd_config *cur)
{
	const char *changed[8];
	char line[256] = "";
	int n = 0;

	if (!same_listen(next, cur)) {
		char *l[ND_CFG_MAX_LISTEN];
		int nl = next->nlisten;

		/* Swapped: each config frees its own strings. */
		memcpy(l, next->listen, sizeof(l));
		memcpy(next->listen, cur->listen, sizeof(l));
		memcpy(cur->listen, l, sizeof(l));
		next->nlisten = cur->nlisten;
		cur->nlisten = nl;
		next->port = cur->port;
		changed[n++] = "listen/port";
	}
	if (next->workers != cur->workers) {
		next->workers = cur->workers;
		changed[n++] = "workers";
	}
	if (next->grace_s != cur->grace_s) {
		next->grace_s = cur->grace_s;
		changed[n++] = "grace";
	}
	if (next->max_payload != cur->max_payload) {
		next->max_payload = cur->max_payload;
		changed[n++] = "max-payload";
	}
	if (strcmp(next->state_dir, cur->state_dir)) {
		memcpy(next->state_dir, cur->state_dir, sizeof(cur->state_dir));
		changed[n++] = "state-dir";
	}
	if (strcmp(next->control, cur->control)) {
		memcpy(next->control, cur->control, sizeof(cur->control));
		changed[n++] = "control";
	}
	if (!n)
		return;
	for (int i = 0; i < n; i++)
		snprintf(line + strlen(line), sizeof(line) - strlen(line),
			 "%s%s", i ? ", " : "", changed[i]);
	nd_warn("reload: [server] %s changed: takes effect at restart", line);
}

/* The export of the table serving the same export as ce, or NULL. */
static struct nd_exp *kept(struct nd_server *s, const struct nd_cfg_export *ce)
{
	const struct nd_cfg_export *oce = nd_config_export(&s->cfg, ce->name);
	struct nd_exp *x;

	if (!oce)
		return NULL;
	x = s->exps[oce - s->cfg.exports];
	return x->open && nd_exp_serves(x, ce) ? x : NULL;
}

/* Does an export of the table that next does not keep hold this file? */
static bool held_by_retiring(struct nd_server *s, struct nd_exp **next_exps,
			     int n, const char *path)
{
	for (int i = 0; i < s->cfg.nexports; i++) {
		struct nd_exp *x = s->exps[i];
		bool keeps = false;

		for (int j = 0; j < n && !keeps; j++)
			keeps = next_exps[j] == x;
		if (!keeps && nd_exp_same_file(x, path))
			return true;
	}
	return false;
}

/*
 * The export table for next: kept exports shared (a reference more),
 * others new and opened, except those whose file a retiring export holds
 * (deferred[i]). -1 with err: everything new closed again.
 */
static int build_table(struct nd_server *s, const struct nd_config *next,
		       struct nd_exp **exps, bool *deferred, char *err,
		       size_t errlen)
{
	int i, n = next->nexports;

	for (i = 0; i < n; i++)
		exps[i] = kept(s, &next->exports[i]);
	for (i = 0; i < n; i++) {
		if (exps[i])
			continue;
		exps[i] = nd_exp_new(&next->exports[i]);
		if (!exps[i]) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		deferred[i] = held_by_retiring(s, exps, n,
					       next->exports[i].path);
		if (deferred[i])
			continue;
		if (nd_exp_open(exps[i], s->cfg.state_dir, err, errlen) < 0)
			goto fail;
		exps[i]->open = true;	/* nobody else sees it yet */
	}
	pthread_mutex_lock(&s->sess_lock);
	for (i = 0; i < n; i++)
		if (exps[i] == kept(s, &next->exports[i]))
			exps[i]->refs++;
	pthread_mutex_unlock(&s->sess_lock);
	return 0;
fail:
	for (i = 0; i < n; i++)
		if (exps[i] && exps[i] != kept(s, &next->exports[i]))
			nd_exp_free(exps[i]);
	return -1;
}

/* Why the new configuration ends ss, or NULL; sess_lock held. */
static const char *affected(struct nd_server *s, const struct nd_config *old,
			    const struct nd_session *ss)
{
	/* A session of an overlay belongs to the overlay's cow export. */
	const struct nd_exp *x = ss->exp->parent ? ss->exp->parent : ss->exp;
	const struct nd_cfg_export *ce;
	int i;

	for (i = 0; i < s->cfg.nexports; i++)
		if (s->exps[i] == x)
			break;
	if (i == s->cfg.nexports)
		return "by the reload: its export was removed or changed";
	if (!same_key(nd_config_key(old, ss->identity),
		      nd_config_key(&s->cfg, ss->identity)))
		return "by the reload: its identity's key was removed or changed";
	ce = &s->cfg.exports[i];
	if (!nd_config_allows(ce, ss->identity))
		return "by the reload: its identity may no longer use the export";
	return NULL;
}

/* Swaps in next and its table; returns how many sessions were revoked. */
static int swap_locked(struct nd_server *s, struct nd_config *next,
		       struct nd_exp **exps, struct nd_config *old,
		       struct nd_exp ***old_exps)
{
	int revoked = 0;

	*old = s->cfg;
	*old_exps = s->exps;
	s->cfg = *next;
	memset(next, 0, sizeof(*next));
	s->exps = exps;
	for (struct nd_session *ss = s->sessions; ss; ss = ss->next) {
		const char *why = ss->revoked ? NULL : affected(s, old, ss);

		if (why) {
			nd_session_revoke_locked(s, ss, why);
			revoked++;
		}
	}
	for (int i = 0; i < old->nexports; i++)
		nd_exp_put_locked(s, (*old_exps)[i]);
	return revoked;
}

/*
 * Opens an export whose file a replaced export held, once that one has
 * closed it (its sessions are ending). Not opened in time: the export
 * refuses clients (I/O error) until the next reload.
 */
static void open_deferred(struct nd_server *s, struct nd_exp *x)
{
	int64_t deadline = nd_now_ms() + s->drain_ms;
	char err[512];

	/* Until x->open is set, nobody else reads its backend fields. */
	while (nd_exp_open(x, s->cfg.state_dir, err, sizeof(err)) < 0) {
		int64_t left = deadline - nd_now_ms();
		struct timespec ts;

		if (left <= 0) {
			nd_err("reload: %s; it stays closed until the next reload",
			       err);
			return;
		}
		ts = nd_abstime_in_ms(left < 100 ? left : 100);
		pthread_mutex_lock(&s->sess_lock);
		pthread_cond_timedwait(&s->sess_cond, &s->sess_lock, &ts);
		pthread_mutex_unlock(&s->sess_lock);
	}
	pthread_mutex_lock(&s->sess_lock);
	x->open = true;
	pthread_mutex_unlock(&s->sess_lock);
}

void nd_reload_apply(struct nd_server *s)
{
	struct nd_config next, old;
	struct nd_exp **exps = NULL, **old_exps;
	bool *deferred = NULL;
	char err[512];
	int n, revoked;

	if (!s->cfg.file[0]) {
		reject(s, "started without a configuration file");
		return;
	}
	nd_info("reloading %s", s->cfg.file);
	if (nd_config_load(s->cfg.file, &next, err, sizeof(err)) < 0) {
		reject(s, err);
		return;
	}
	n = next.nexports;
	exps = calloc(n ? (size_t)n : 1, sizeof(*exps));
	deferred = calloc(n ? (size_t)n : 1, sizeof(*deferred));
	if (!exps || !deferred) {
		snprintf(err, sizeof(err), "out of memory");
		goto fail;
	}
	if (build_table(s, &next, exps, deferred, err, sizeof(err)) < 0)
		goto fail;
	keep_restart_settings(&next, &s->cfg);

	pthread_mutex_lock(&s->sess_lock);
	revoked = swap_locked(s, &next, exps, &old, &old_exps);
	pthread_mutex_unlock(&s->sess_lock);
	nd_log_level = s->cfg.log_level;
	nd_session_expire(s, false);	/* the idle revoked ones */
	nd_hs_rekey(s, &old);
	nd_config_free(&old);
	free(old_exps);
	for (int i = 0; i < n; i++)
		if (deferred[i])
			open_deferred(s, exps[i]);
	free(deferred);
	nd_info("reload of %s applied: %d export%s, %d identit%s, %d session%s closed",
		s->cfg.file, s->cfg.nexports, s->cfg.nexports == 1 ? "" : "s",
		s->cfg.nids, s->cfg.nids == 1 ? "y" : "ies", revoked,
		revoked == 1 ? "" : "s");
	__atomic_add_fetch(&s->reloads_applied, 1, __ATOMIC_RELEASE);
	return;
fail:
	free(exps);
	free(deferred);
	nd_config_free(&next);
	reject(s, err);
}
