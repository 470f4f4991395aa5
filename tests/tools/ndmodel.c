// SPDX-License-Identifier: MIT
/*
 * ndmodel: random I/O against a read-write netdisk export, every read
 * checked against a model of what each 512-byte sector may hold, across
 * server crashes.
 *
 *   ndmodel fill FILE SIZE
 *   ndmodel run URL --key-file K [--identity NAME] [--seed N] [--ops N]
 *               [--queue N] [--hot BYTES] [--reconnect SEC] [-v]
 *   ndmodel op URL --key-file K [--identity NAME] [--fua]
 *               trim|zeroes|flush OFFSET LENGTH
 *
 * fill writes FILE (SIZE bytes) with the initial pattern the model starts
 * from; make the export from it (or a cow export's base).
 *
 * run connects (lib/client), reads the whole disk, then submits --ops
 * (default 5000) random READ, WRITE, TRIM, WRITE_ZEROES and FLUSH
 * requests, some WRITE/TRIM/WRITE_ZEROES with FUA, up to --queue (default
 * 16) at a time and never two at once on one sector. Half of them fall in
 * the first --hot bytes (default 1 MiB) so sectors are rewritten. Every
 * sector written carries its sector number, the seed and the request's
 * number, so a read tells which write it returns.
 *
 * The model, per sector: the set of values it may hold as of the last
 * durability point (a FLUSH that completed after the write completed, or
 * the write's own FUA) and the writes completed after it. Reads must
 * return the newest write. When the connection dies (the test kills the
 * server), every value written since the durability point, and each write
 * in flight, joins the set; ndmodel reconnects (for up to --reconnect
 * seconds, default 60), reads the whole disk and continues. A read of a
 * sector whose set has several values narrows it to the value read.
 * TRIM is modelled as reading zeros afterwards (true of netdisk's file
 * backend and of copy-on-write exports).
 *
 * op sends one TRIM, WRITE_ZEROES or FLUSH (the CLI has none of these):
 * exit 0 when it succeeded, 1 with one line naming the status otherwise.
 *
 * Exit: 0 every read allowed; 1 a read the model does not allow, or an
 * unexpected error status (each printed, up to 20); 2 usage; 3 cannot
 * connect or the export is unsuitable. The last line is a summary.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "nd_wire.h"
#include "url.h"

#define SEC		512u
#define V_BASE		0u		/* the fill pattern */
#define V_ZERO		0xfffffffeu	/* trimmed or written as zeroes */
#define V_NONE		0xffffffffu
#define V_GARBAGE	0xfffffffdu	/* matches no value ever written */
#define MAX_REPORTS	20
#define MAGIC		"NDMODEL1"

struct hent {
	uint32_t ver;
	uint64_t stamp;		/* completion number */
};

struct sector {
	uint32_t *dur;		/* values possible at the durability point */
	struct hent *hist;	/* completed since, oldest first */
	unsigned int ndur, capdur, nhist, caphist;
	uint32_t pending;	/* write in flight, or V_NONE */
	bool busy;		/* a request in flight covers it */
};

struct op {
	uint8_t type;
	uint8_t flags;
	uint64_t first;		/* sector */
	uint32_t n;		/* sectors */
	uint32_t id;		/* request number = version it writes */
	uint64_t flush_stamp;	/* FLUSH: completions before its submission */
	uint8_t *buf;
};

static struct {
	pthread_mutex_t m;
	pthread_cond_t cv;
	struct sector *s;
	uint64_t nsec;
	uint64_t seed;
	uint64_t stamp;
	unsigned int inflight;
	bool dead;
	unsigned int bad;
	uint64_t verified;
	bool verbose;
} M = { .m = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

static const char *const op_names[] = {
	"READ", "WRITE", "FLUSH", "DISCONNECT", "TRIM", "WRITE_ZEROES",
};

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n);
	if (!p) {
		fprintf(stderr, "ndmodel: out of memory\n");
		exit(3);
	}
	return p;
}

static uint64_t splitmix(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t rng_state;

static uint64_t rnd(uint64_t n)
{
	return n ? splitmix(&rng_state) % n : 0;
}

static void put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

/*
 * Version ver of sector s: "NDMODEL1", sector, seed (0 for the base),
 * version, then pseudo-random words from all three.
 */
static void pattern(uint8_t *p, uint64_t s, uint64_t seed, uint32_t ver)
{
	uint64_t x = s * 0x100000001b3ull ^ seed << 32 ^ ver;
	unsigned int i;

	if (ver == V_ZERO) {
		memset(p, 0, SEC);
		return;
	}
	memcpy(p, MAGIC, 8);
	put64(p + 8, s);
	put64(p + 16, seed);
	put64(p + 24, ver);
	for (i = 32; i < SEC; i += 8)
		put64(p + i, splitmix(&x));
}

/* Which value p holds for sector s: a version, V_ZERO or V_GARBAGE. */
static uint32_t identify(const uint8_t *p, uint64_t s, char *why, size_t len)
{
	static const uint8_t zero[SEC];
	uint8_t want[SEC];
	uint64_t seed, ver;

	if (!memcmp(p, zero, SEC))
		return V_ZERO;
	if (memcmp(p, MAGIC, 8)) {
		snprintf(why, len, "garbage (no pattern header)");
		return V_GARBAGE;
	}
	seed = get64(p + 16);
	ver = get64(p + 24);
	if (get64(p + 8) != s) {
		snprintf(why, len, "sector %" PRIu64 "'s data (version %" PRIu64
			 ")", get64(p + 8), ver);
		return V_GARBAGE;
	}
	if (ver >= V_GARBAGE || (seed != M.seed && (seed || ver))) {
		snprintf(why, len, "a header of seed %" PRIu64 " version %"
			 PRIu64, seed, ver);
		return V_GARBAGE;
	}
	pattern(want, s, seed, (uint32_t)ver);
	if (memcmp(p, want, SEC)) {
		snprintf(why, len, "version %" PRIu64 " torn", ver);
		return V_GARBAGE;
	}
	return (uint32_t)ver;
}

static void vname(uint32_t v, char *out, size_t len)
{
	if (v == V_BASE)
		snprintf(out, len, "base");
	else if (v == V_ZERO)
		snprintf(out, len, "zeros");
	else
		snprintf(out, len, "#%u", v);
}

static void report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void report(const char *fmt, ...)
{
	va_list ap;

	if (++M.bad > MAX_REPORTS)
		return;
	fprintf(stderr, "ndmodel: seed %" PRIu64 ": ", M.seed);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void dur_add(struct sector *s, uint32_t v)
{
	unsigned int i;

	for (i = 0; i < s->ndur; i++)
		if (s->dur[i] == v)
			return;
	if (s->ndur == s->capdur) {
		s->capdur = s->capdur ? 2 * s->capdur : 2;
		s->dur = xrealloc(s->dur, s->capdur * sizeof(*s->dur));
	}
	s->dur[s->ndur++] = v;
}

static void dur_set(struct sector *s, uint32_t v)
{
	s->ndur = 0;
	dur_add(s, v);
}

static void hist_push(struct sector *s, uint32_t v, uint64_t stamp)
{
	if (s->nhist == s->caphist) {
		s->caphist = s->caphist ? 2 * s->caphist : 4;
		s->hist = xrealloc(s->hist, s->caphist * sizeof(*s->hist));
	}
	s->hist[s->nhist].ver = v;
	s->hist[s->nhist].stamp = stamp;
	s->nhist++;
}

/* Checks what a READ (request id) returned for sector i. Under M.m. */
static void check_sector(uint64_t i, const uint8_t *data, uint32_t id)
{
	struct sector *s = &M.s[i];
	char why[96] = "", got[96], allowed[256] = "", one[24];
	uint32_t v = identify(data, i, why, sizeof(why));
	unsigned int k;
	size_t n;

	M.verified++;
	if (s->nhist) {
		if (v == s->hist[s->nhist - 1].ver)
			return;
		vname(s->hist[s->nhist - 1].ver, allowed, sizeof(allowed));
	} else {
		for (k = 0; k < s->ndur; k++) {
			if (s->dur[k] == v) {
				dur_set(s, v);
				return;
			}
		}
		for (k = 0; k < s->ndur; k++) {
			vname(s->dur[k], one, sizeof(one));
			n = strlen(allowed);
			snprintf(allowed + n, sizeof(allowed) - n, "%s%s",
				 k ? " " : "", one);
		}
	}
	if (v == V_GARBAGE)
		snprintf(got, sizeof(got), "%s", why);
	else
		vname(v, got, sizeof(got));
	report("sector %" PRIu64 " (byte %" PRIu64 "): read #%u returned %s; "
	       "the model allows {%s}", i, i * SEC, id, got, allowed);
}

/* A FLUSH submitted after completion number stamp has completed. */
static void apply_flush(uint64_t stamp)
{
	uint64_t i;

	for (i = 0; i < M.nsec; i++) {
		struct sector *s = &M.s[i];
		unsigned int k, last = 0;
		bool any = false;

		for (k = 0; k < s->nhist && s->hist[k].stamp <= stamp; k++) {
			last = k;
			any = true;
		}
		if (!any)
			continue;
		dur_set(s, s->hist[last].ver);
		memmove(s->hist, s->hist + last + 1,
			(s->nhist - last - 1) * sizeof(*s->hist));
		s->nhist -= last + 1;
	}
}

/* The connection died: whatever was not durable may or may not be. */
static void apply_crash(void)
{
	uint64_t i;
	unsigned int k;

	for (i = 0; i < M.nsec; i++) {
		struct sector *s = &M.s[i];

		for (k = 0; k < s->nhist; k++)
			dur_add(s, s->hist[k].ver);
		s->nhist = 0;
		if (s->pending != V_NONE)
			dur_add(s, s->pending);
		s->pending = V_NONE;
		s->busy = false;
	}
}

static void on_done(void *arg, int status)
{
	struct op *o = arg;
	bool fua = o->flags & ND_REQ_FUA;
	uint64_t i;

	pthread_mutex_lock(&M.m);
	if (M.verbose)
		fprintf(stderr, "ndmodel: #%u %s done: %d\n", o->id,
			op_names[o->type], status);
	if (status < 0) {
		/* Writes stay pending: apply_crash() settles them. */
		M.dead = true;
		if (o->type == ND_OP_READ)
			for (i = 0; i < o->n; i++)
				M.s[o->first + i].busy = false;
	} else if (status != ND_OK) {
		report("#%u %s at byte %" PRIu64 " length %u: status %d (%s)",
		       o->id, op_names[o->type], o->first * SEC, o->n * SEC,
		       status, nd_client_strerror(status));
		M.dead = true;	/* ends the run: nothing more is sure */
	} else if (o->type == ND_OP_READ) {
		for (i = 0; i < o->n; i++) {
			check_sector(o->first + i, o->buf + i * SEC, o->id);
			M.s[o->first + i].busy = false;
		}
	} else if (o->type == ND_OP_FLUSH) {
		apply_flush(o->flush_stamp);
	} else {
		uint32_t v = o->type == ND_OP_WRITE ? o->id : V_ZERO;
		uint64_t stamp = ++M.stamp;

		for (i = 0; i < o->n; i++) {
			struct sector *s = &M.s[o->first + i];

			s->pending = V_NONE;
			s->busy = false;
			if (fua) {
				dur_set(s, v);
				s->nhist = 0;
			} else {
				hist_push(s, v, stamp);
			}
		}
	}
	M.inflight--;
	pthread_cond_broadcast(&M.cv);
	pthread_mutex_unlock(&M.m);
	free(o->buf);
	free(o);
}

/* cmd_op's completion: the status into *arg. */
static void op_done(void *arg, int status)
{
	pthread_mutex_lock(&M.m);
	*(int *)arg = status;
	M.inflight = 0;
	pthread_cond_broadcast(&M.cv);
	pthread_mutex_unlock(&M.m);
}

struct conn {
	const struct nd_url *url;
	const uint8_t *key;
	struct nd_client_opts opts;
	int reconnect_s;
	struct nd_client *c;
	uint32_t exp_flags;
	uint32_t max_sec;	/* per READ/WRITE */
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Connects, retrying while the server is away or restarting. Exits on a
 * refusal that waiting does not cure. */
static void connect_retry(struct conn *k)
{
	double deadline = now_s() + k->reconnect_s;
	const struct nd_session_info *si;
	char err[256];
	uint16_t st;
	int rc;

	for (;;) {
		rc = nd_client_open(k->url, k->key, &k->opts, &k->c, &st, err,
				    sizeof(err));
		if (!rc)
			break;
		if ((rc == ND_CE_REFUSED && st != ND_ERR_BUSY &&
		     st != ND_ERR_SHUTDOWN) || rc == ND_CE_AUTH ||
		    now_s() > deadline) {
			fprintf(stderr, "ndmodel: seed %" PRIu64 ": connect: %s\n",
				M.seed, err);
			exit(3);
		}
		usleep(100 * 1000);
	}
	si = nd_client_info(k->c);
	if (si->size != M.nsec * SEC || (si->flags & ND_EXP_READ_ONLY)) {
		fprintf(stderr, "ndmodel: export: size %" PRIu64 "%s, expected "
			"%" PRIu64 " read-write\n", si->size,
			si->flags & ND_EXP_READ_ONLY ? " read-only" : "",
			M.nsec * SEC);
		exit(3);
	}
	k->exp_flags = si->flags;
	k->max_sec = si->max_payload / SEC;
	pthread_mutex_lock(&M.m);
	M.dead = false;
	pthread_mutex_unlock(&M.m);
}

/* Submits o (its sectors already marked busy). Under no lock. */
static void submit(struct conn *k, struct op *o)
{
	uint32_t len = o->type == ND_OP_FLUSH ? 0 : o->n * SEC;
	uint64_t off = o->type == ND_OP_FLUSH ? 0 : o->first * SEC;
	uint64_t i;

	if (M.verbose)
		fprintf(stderr, "ndmodel: #%u %s%s byte %" PRIu64 " len %u\n",
			o->id, op_names[o->type],
			o->flags & ND_REQ_FUA ? "+FUA" : "", off, len);
	if (!nd_client_submit(k->c, o->type, o->flags, off, len, o->buf,
			      on_done, o))
		return;
	/* Not sent: the connection is dead already. */
	pthread_mutex_lock(&M.m);
	M.dead = true;
	for (i = 0; o->type != ND_OP_FLUSH && i < o->n; i++) {
		M.s[o->first + i].busy = false;
		M.s[o->first + i].pending = V_NONE;
	}
	M.inflight--;
	pthread_cond_broadcast(&M.cv);
	pthread_mutex_unlock(&M.m);
	free(o->buf);
	free(o);
}

/* Under M.m: true and the range marked if no request covers it. */
static bool claim(const struct op *o)
{
	uint64_t i;

	for (i = 0; i < o->n; i++)
		if (M.s[o->first + i].busy)
			return false;
	for (i = 0; i < o->n; i++) {
		M.s[o->first + i].busy = true;
		if (o->type != ND_OP_READ)
			M.s[o->first + i].pending =
				o->type == ND_OP_WRITE ? o->id : V_ZERO;
	}
	return true;
}

static uint32_t next_id = 1;

static struct op *new_op(uint8_t type, uint8_t flags, uint64_t first,
			 uint32_t n)
{
	struct op *o = calloc(1, sizeof(*o));

	if (!o || next_id >= V_GARBAGE) {
		fprintf(stderr, "ndmodel: out of memory or request numbers\n");
		exit(3);
	}
	o->type = type;
	o->flags = flags;
	o->first = first;
	o->n = n;
	o->id = next_id++;
	if (type == ND_OP_READ || type == ND_OP_WRITE)
		o->buf = xrealloc(NULL, (size_t)n * SEC);
	if (type == ND_OP_WRITE)
		for (uint32_t i = 0; i < n; i++)
			pattern(o->buf + (size_t)i * SEC, first + i, M.seed,
				o->id);
	return o;
}

/* Waits until fewer than max requests are in flight. Under M.m. */
static void wait_below(unsigned int max)
{
	while (M.inflight >= max)
		pthread_cond_wait(&M.cv, &M.m);
}

/* Reads the whole disk; false if the connection died meanwhile. */
static bool verify_all(struct conn *k, unsigned int queue)
{
	uint64_t s = 0;
	uint32_t step = k->max_sec < 256 ? k->max_sec : 256;

	while (s < M.nsec) {
		uint32_t n = M.nsec - s < step ? (uint32_t)(M.nsec - s) : step;
		struct op *o = new_op(ND_OP_READ, 0, s, n);

		pthread_mutex_lock(&M.m);
		wait_below(queue);
		if (M.dead) {
			pthread_mutex_unlock(&M.m);
			free(o->buf);
			free(o);
			return false;
		}
		claim(o);	/* nothing else is in flight */
		M.inflight++;
		pthread_mutex_unlock(&M.m);
		submit(k, o);
		s += n;
	}
	pthread_mutex_lock(&M.m);
	wait_below(1);
	pthread_mutex_unlock(&M.m);
	return !M.dead;
}

struct mix {
	uint64_t hot;		/* sectors */
	uint64_t counts[ND_OP__COUNT];
	uint64_t fua;
};

/* A random request of a kind the export supports. */
static struct op *random_op(const struct conn *k, struct mix *mx)
{
	unsigned int r = (unsigned int)rnd(100);
	uint8_t type, flags = 0;
	uint64_t first, span;
	uint32_t n, max;

	if (r < 35)
		type = ND_OP_READ;
	else if (r < 72)
		type = ND_OP_WRITE;
	else if (r < 82 && (k->exp_flags & ND_EXP_TRIM))
		type = ND_OP_TRIM;
	else if (r < 92 && (k->exp_flags & ND_EXP_WRITE_ZEROES))
		type = ND_OP_WRITE_ZEROES;
	else if (k->exp_flags & ND_EXP_FLUSH)
		type = ND_OP_FLUSH;
	else
		type = ND_OP_WRITE;
	mx->counts[type]++;
	if (type == ND_OP_FLUSH)
		return new_op(type, 0, 0, 0);
	if (type != ND_OP_READ && (k->exp_flags & ND_EXP_FUA) && rnd(5) == 0) {
		flags = ND_REQ_FUA;
		mx->fua++;
	}

	r = (unsigned int)rnd(100);
	n = r < 50 ? 1 + (uint32_t)rnd(8) :
	    r < 85 ? 8 + (uint32_t)rnd(57) : 64 + (uint32_t)rnd(449);
	max = type == ND_OP_TRIM || type == ND_OP_WRITE_ZEROES ? 4096 :
								 k->max_sec;
	if (n > max)
		n = max;
	span = rnd(2) ? mx->hot : M.nsec;
	if (n > span)
		n = (uint32_t)span;
	first = rnd(span - n + 1);
	if (rnd(3) == 0)	/* whole 4 KiB clusters */
		first &= ~7ull;
	return new_op(type, flags, first, n);
}

static int usage(void)
{
	fprintf(stderr,
		"usage: ndmodel fill FILE SIZE\n"
		"       ndmodel run URL --key-file K [--identity NAME] [--seed N]\n"
		"                   [--ops N] [--queue N] [--hot BYTES] "
		"[--reconnect SEC] [-v]\n"
		"       ndmodel op URL --key-file K [--identity NAME] [--fua]\n"
		"                  trim|zeroes|flush OFFSET LENGTH\n");
	return 2;
}

static int cmd_fill(int argc, char **argv)
{
	uint8_t *buf;
	uint64_t size, s;
	char *end;
	FILE *f;

	if (argc != 4)
		return usage();
	size = strtoull(argv[3], &end, 0);
	if (*end || !size || size % SEC) {
		fprintf(stderr, "ndmodel: size must be a multiple of 512\n");
		return 2;
	}
	f = fopen(argv[2], "wb");
	if (!f) {
		fprintf(stderr, "ndmodel: %s: %s\n", argv[2], strerror(errno));
		return 3;
	}
	buf = xrealloc(NULL, SEC);
	for (s = 0; s < size / SEC; s++) {
		pattern(buf, s, 0, V_BASE);
		fwrite(buf, SEC, 1, f);
	}
	free(buf);
	if (fclose(f)) {
		fprintf(stderr, "ndmodel: %s: %s\n", argv[2], strerror(errno));
		return 3;
	}
	return 0;
}

/* Ends the current connection once nothing is in flight. */
static void settle(struct conn *k)
{
	pthread_mutex_lock(&M.m);
	wait_below(1);
	pthread_mutex_unlock(&M.m);
	nd_client_close(k->c);
	k->c = NULL;
}

/*
 * After a lost connection: let every request finish, widen the model,
 * reconnect and read the whole disk, again until a read gets through.
 * False if the run must end (a violation).
 */
static bool recover(struct conn *k, unsigned int queue,
		    unsigned long *reconnects)
{
	do {
		if (k->c)
			settle(k);
		if (M.bad)
			return false;
		apply_crash();
		(*reconnects)++;
		connect_retry(k);
	} while (!verify_all(k, queue));
	return true;
}

static int cmd_run(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "key-file", required_argument, NULL, 'k' },
		{ "identity", required_argument, NULL, 'i' },
		{ "seed", required_argument, NULL, 's' },
		{ "ops", required_argument, NULL, 'n' },
		{ "queue", required_argument, NULL, 'q' },
		{ "hot", required_argument, NULL, 'H' },
		{ "reconnect", required_argument, NULL, 'r' },
		{ "verbose", no_argument, NULL, 'v' },
		{ 0 },
	};
	struct conn k = { .reconnect_s = 60 };
	struct mix mx = { 0 };
	uint8_t key[ND_KEY_LEN];
	const char *key_file = NULL;
	unsigned long ops = 5000, queue = 16, done = 0, reconnects = 0;
	uint64_t hot = 1 << 20, i;
	struct nd_url url;
	char err[256];
	int c;

	M.seed = 1;
	optind = 2;
	while ((c = getopt_long(argc, argv, "v", lo, NULL)) != -1) {
		switch (c) {
		case 'k': key_file = optarg; break;
		case 'i': k.opts.identity = optarg; break;
		case 's': M.seed = strtoull(optarg, NULL, 0); break;
		case 'n': ops = strtoul(optarg, NULL, 0); break;
		case 'q': queue = strtoul(optarg, NULL, 0); break;
		case 'H': hot = strtoull(optarg, NULL, 0); break;
		case 'r': k.reconnect_s = atoi(optarg); break;
		case 'v': M.verbose = true; break;
		default: return usage();
		}
	}
	if (optind != argc - 1 || !key_file || !M.seed || M.seed >> 31 ||
	    !queue || queue > 64 || hot < SEC)
		return usage();
	if (nd_url_parse(argv[optind], &url, err, sizeof(err)) ||
	    nd_key_load(key_file, key, err, sizeof(err))) {
		fprintf(stderr, "ndmodel: %s\n", err);
		return 2;
	}
	rng_state = M.seed;
	k.url = &url;
	k.key = key;
	k.opts.max_inflight = (unsigned int)queue;
	k.opts.timeout_ms = 20000;

	/* The size comes from the first session. */
	M.nsec = 1;
	{
		struct nd_client *c0;
		uint16_t st;

		for (i = 0;; i++) {
			if (!nd_client_open(&url, key, &k.opts, &c0, &st, err,
					    sizeof(err)))
				break;
			if (i >= (uint64_t)k.reconnect_s * 10) {
				fprintf(stderr, "ndmodel: connect: %s\n", err);
				return 3;
			}
			usleep(100 * 1000);
		}
		M.nsec = nd_client_info(c0)->size / SEC;
		nd_client_close(c0);
	}
	M.s = calloc(M.nsec, sizeof(*M.s));
	if (!M.s)
		return 3;
	for (i = 0; i < M.nsec; i++) {
		M.s[i].pending = V_NONE;
		dur_add(&M.s[i], V_BASE);
	}
	mx.hot = hot / SEC < M.nsec ? hot / SEC : M.nsec;

	connect_retry(&k);
	if (!verify_all(&k, (unsigned int)queue) &&
	    !recover(&k, (unsigned int)queue, &reconnects))
		goto out;
	while (done < ops && !M.bad) {
		struct op *o = random_op(&k, &mx);

		pthread_mutex_lock(&M.m);
		wait_below((unsigned int)queue);
		while (!M.dead && o->type != ND_OP_FLUSH && !claim(o))
			pthread_cond_wait(&M.cv, &M.m);
		if (M.dead) {
			pthread_mutex_unlock(&M.m);
			free(o->buf);
			free(o);
			if (!recover(&k, (unsigned int)queue, &reconnects))
				break;
			continue;
		}
		o->flush_stamp = M.stamp;
		M.inflight++;
		pthread_mutex_unlock(&M.m);
		submit(&k, o);
		done++;
	}
	/* The end: everything settles, then one last look on a new session. */
	if (!M.bad) {
		bool died;

		settle(&k);
		died = M.dead;
		if (!died) {
			connect_retry(&k);
			died = !verify_all(&k, (unsigned int)queue);
		}
		if (died)
			recover(&k, (unsigned int)queue, &reconnects);
	}
out:
	if (k.c)
		settle(&k);
	printf("ndmodel: seed %" PRIu64 ": %lu requests (%" PRIu64 " read, %"
	       PRIu64 " write, %" PRIu64 " trim, %" PRIu64 " zeroes, %" PRIu64
	       " flush, %" PRIu64 " FUA), %lu reconnects, %" PRIu64
	       " sectors checked: %s\n", M.seed, done,
	       mx.counts[ND_OP_READ], mx.counts[ND_OP_WRITE],
	       mx.counts[ND_OP_TRIM], mx.counts[ND_OP_WRITE_ZEROES],
	       mx.counts[ND_OP_FLUSH], mx.fua, reconnects, M.verified,
	       M.bad ? "FAILED" : "ok");
	if (M.bad > MAX_REPORTS)
		fprintf(stderr, "ndmodel: %u more\n", M.bad - MAX_REPORTS);
	nd_wipe(key, sizeof(key));
	for (i = 0; i < M.nsec; i++) {
		free(M.s[i].dur);
		free(M.s[i].hist);
	}
	free(M.s);
	return M.bad ? 1 : 0;
}

static int cmd_op(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "key-file", required_argument, NULL, 'k' },
		{ "identity", required_argument, NULL, 'i' },
		{ "fua", no_argument, NULL, 'f' },
		{ 0 },
	};
	struct nd_client_opts opts = { .timeout_ms = 20000 };
	const char *key_file = NULL;
	uint8_t key[ND_KEY_LEN], type, flags = 0;
	struct nd_client *c;
	struct nd_url url;
	uint64_t off;
	uint32_t len;
	char err[256];
	int ch, rc, st = 0;

	optind = 2;
	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (ch) {
		case 'k': key_file = optarg; break;
		case 'i': opts.identity = optarg; break;
		case 'f': flags = ND_REQ_FUA; break;
		default: return usage();
		}
	}
	if (optind != argc - 4 || !key_file)
		return usage();
	if (!strcmp(argv[optind + 1], "trim"))
		type = ND_OP_TRIM;
	else if (!strcmp(argv[optind + 1], "zeroes"))
		type = ND_OP_WRITE_ZEROES;
	else if (!strcmp(argv[optind + 1], "flush"))
		type = ND_OP_FLUSH;
	else
		return usage();
	off = strtoull(argv[optind + 2], NULL, 0);
	len = (uint32_t)strtoul(argv[optind + 3], NULL, 0);
	if (nd_url_parse(argv[optind], &url, err, sizeof(err)) ||
	    nd_key_load(key_file, key, err, sizeof(err))) {
		fprintf(stderr, "ndmodel: %s\n", err);
		return 2;
	}
	rc = nd_client_open(&url, key, &opts, &c, NULL, err, sizeof(err));
	nd_wipe(key, sizeof(key));
	if (rc) {
		fprintf(stderr, "ndmodel: connect: %s\n", err);
		return 3;
	}
	pthread_mutex_lock(&M.m);
	M.inflight = 1;
	pthread_mutex_unlock(&M.m);
	rc = nd_client_submit(c, type, flags, off, len, NULL, op_done, &st);
	if (!rc) {
		pthread_mutex_lock(&M.m);
		wait_below(1);
		rc = st;
		pthread_mutex_unlock(&M.m);
	}
	nd_client_close(c);
	if (rc) {
		fprintf(stderr, "ndmodel: %s at %" PRIu64 " length %u: %s\n",
			argv[optind + 1], off, len, nd_client_strerror(rc));
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	if (argc >= 2 && !strcmp(argv[1], "fill"))
		return cmd_fill(argc, argv);
	if (argc >= 2 && !strcmp(argv[1], "run"))
		return cmd_run(argc, argv);
	if (argc >= 2 && !strcmp(argv[1], "op"))
		return cmd_op(argc, argv);
	return usage();
}
