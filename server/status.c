// SPDX-License-Identifier: MIT
/*
 * nd_server_status: the server's state as text for the control socket,
 * one record per line (format in control.h and netdiskd(8) STATUS). Made
 * under sess_lock, so it is one consistent picture, in memory: a reader
 * that stalls holds up nobody.
 */
#include <stdio.h>
#include <stdlib.h>

#include "control.h"
#include "internal.h"

/*
 * A path as one field: blanks, control characters and backslashes as
 * \xHH, so a space in a file name cannot split (or forge) the record.
 */
static void put_field(FILE *out, const char *v)
{
	for (const unsigned char *p = (const unsigned char *)v; *p; p++)
		if (*p <= ' ' || *p == 0x7f || *p == '\\')
			fprintf(out, "\\x%02x", *p);
		else
			fputc(*p, out);
}

static void export_line_locked(struct nd_server *s, const struct nd_exp *x,
			       FILE *out)
{
	int n = 0;

	/* A cow export's sessions are those of its overlays. */
	for (const struct nd_session *ss = s->sessions; ss; ss = ss->next)
		if ((ss->exp == x || ss->exp->parent == x) && !ss->revoked)
			n++;
	/* size=0: not open (see the reload's error). */
	fprintf(out, "export %s path=", x->e.name);
	put_field(out, x->path);
	fprintf(out, " mode=%s size=%llu sessions=%d writer=",
		x->e.read_only && !x->cow_dir[0] ? "ro" : "rw",
		x->open ? (unsigned long long)x->e.size : 0ULL, n);
	if (x->e.writer)
		fprintf(out, "%llu", x->e.writer->id);
	else
		fprintf(out, "-");
	if (x->cow_dir[0]) {
		fprintf(out, " cow=");
		put_field(out, x->cow_dir);
	}
	fprintf(out, "\n");
}

static void session_line_locked(const struct nd_session *ss, int64_t now,
				FILE *out)
{
	const char *sep = "";

	fprintf(out, "session %llu identity=%s export=%s mode=%s conns=%d peers=",
		ss->id, ss->identity, ss->exp->e.name,
		ss->flags & ND_EXP_READ_ONLY ? "ro" : "rw", ss->nconns);
	for (int i = 0; i < ND_MAX_SLOTS; i++) {
		if (!ss->slots[i].conn)
			continue;
		fprintf(out, "%s%s", sep, ss->slots[i].conn->peer);
		sep = ",";
	}
	fprintf(out, "%s age=%lld requests=%llu read_bytes=%llu written_bytes=%llu\n",
		*sep ? "" : "-", (long long)(now - ss->created_ms) / 1000,
		(unsigned long long)__atomic_load_n(&ss->requests,
						    __ATOMIC_RELAXED),
		(unsigned long long)__atomic_load_n(&ss->read_bytes,
						    __ATOMIC_RELAXED),
		(unsigned long long)__atomic_load_n(&ss->written_bytes,
						    __ATOMIC_RELAXED));
}

void nd_server_status(struct nd_server *s, FILE *out)
{
	int64_t now = nd_now_ms();
	char *text = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&text, &len);

	if (!m) {
		fprintf(out, "error: out of memory\n");
		return;
	}
	pthread_mutex_lock(&s->sess_lock);
	for (int i = 0; i < s->cfg.nexports; i++)
		export_line_locked(s, s->exps[i], m);
	for (const struct nd_session *ss = s->sessions; ss; ss = ss->next)
		if (!ss->revoked)
			session_line_locked(ss, now, m);
	pthread_mutex_unlock(&s->sess_lock);
	if (fclose(m) == 0)
		fwrite(text, 1, len, out);
	else
		fprintf(out, "error: out of memory\n");
	free(text);
}
