// SPDX-License-Identifier: MIT
/*
 * netdisk copy SRC DST: upload a local file/device to an export or download
 * an export to a local file/device, with several MiB of requests in flight.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "common.h"

#define DEFAULT_INFLIGHT	(8u << 20)
#define MAX_BUFS		256

static void copy_usage(FILE *f)
{
	fprintf(f,
		"usage: netdisk copy SRC DST --key-file FILE [options]\n"
		"\n"
		"Exactly one of SRC and DST is a netdisk:// URL, the other a local file\n"
		"or block device.\n"
		"  download (URL -> local): creates or truncates a local file to the\n"
		"    export's size (a block device must be at least that large).\n"
		"  upload (local -> URL): the local size must be a multiple of 512 and\n"
		"    at most the export's size; the rest of the export is left as is.\n"
		"\n"
		"options:\n"
		ND_COMMON_USAGE
		"  --bs SIZE         request size (default: the server's max payload)\n"
		"  --inflight SIZE   bytes in flight (default 8M)\n"
		"  -q, --quiet       no progress bar (shown only when stderr is a terminal)\n");
}

struct xbuf {
	struct xfer *x;
	uint8_t *data;
	uint64_t off;
	uint32_t len;		/* 0: holds no completed request */
	int status;
};

/* Buffers cycle: free/completed queue -> submitted -> callback -> queue. */
struct xfer {
	pthread_mutex_t m;
	pthread_cond_t cv;
	unsigned int nbuf;
	struct xbuf *bufs;
	unsigned int *q;
	unsigned int nq;
};

static void xfer_cb(void *arg, int status)
{
	struct xbuf *b = arg;
	struct xfer *x = b->x;

	pthread_mutex_lock(&x->m);
	b->status = status;
	x->q[x->nq++] = (unsigned int)(b - x->bufs);
	pthread_cond_signal(&x->cv);
	pthread_mutex_unlock(&x->m);
}

static struct xbuf *xfer_get(struct xfer *x)
{
	struct xbuf *b;

	pthread_mutex_lock(&x->m);
	while (!x->nq)
		pthread_cond_wait(&x->cv, &x->m);
	b = &x->bufs[x->q[--x->nq]];
	pthread_mutex_unlock(&x->m);
	return b;
}

static void xfer_put(struct xfer *x, struct xbuf *b)
{
	b->len = 0;
	pthread_mutex_lock(&x->m);
	x->q[x->nq++] = (unsigned int)(b - x->bufs);
	pthread_mutex_unlock(&x->m);
}

static int xfer_init(struct xfer *x, unsigned int nbuf, uint32_t bs)
{
	unsigned int i;

	memset(x, 0, sizeof(*x));
	pthread_mutex_init(&x->m, NULL);
	pthread_cond_init(&x->cv, NULL);
	x->bufs = calloc(nbuf, sizeof(*x->bufs));
	x->q = calloc(nbuf, sizeof(*x->q));
	if (!x->bufs || !x->q)
		return -1;
	x->nbuf = nbuf;
	for (i = 0; i < nbuf; i++) {
		x->bufs[i].x = x;
		x->bufs[i].data = malloc(bs);
		if (!x->bufs[i].data)
			return -1;
		x->q[x->nq++] = i;
	}
	return 0;
}

static void xfer_free(struct xfer *x)
{
	unsigned int i;

	for (i = 0; x->bufs && i < x->nbuf; i++)
		free(x->bufs[i].data);
	free(x->bufs);
	free(x->q);
	pthread_mutex_destroy(&x->m);
	pthread_cond_destroy(&x->cv);
}

struct progress {
	bool on;
	uint64_t total, start_ns, last_ns;
};

static void progress_show(struct progress *p, uint64_t done, bool final)
{
	uint64_t now = nd_now_ns();
	char a[32], b[32], r[32];
	double secs, rate;
	int pct, i;
	char bar[31];

	if (!p->on || (!final && now - p->last_ns < 200000000ull))
		return;
	p->last_ns = now;
	secs = (double)(now - p->start_ns) / 1e9;
	rate = secs > 0 ? (double)done / secs : 0;
	pct = p->total ? (int)(done * 100 / p->total) : 100;
	for (i = 0; i < 30; i++)
		bar[i] = i < pct * 30 / 100 ? '#' : '.';
	bar[30] = '\0';
	fprintf(stderr, "\r[%s] %3d%% %s / %s  %s/s   ", bar, pct,
		nd_human(done, a, sizeof(a)), nd_human(p->total, b, sizeof(b)),
		nd_human((uint64_t)rate, r, sizeof(r)));
	if (final)
		fputc('\n', stderr);
	fflush(stderr);
}

/* Ends the progress line before an error message. */
static void progress_break(struct progress *p)
{
	if (p->on && p->last_ns)
		fputc('\n', stderr);
	p->on = false;
}

static int pread_full(int fd, uint8_t *buf, size_t len, uint64_t off)
{
	while (len) {
		ssize_t n = pread(fd, buf, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;	/* file shrank under us */
			return -1;
		}
		buf += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static int pwrite_full(int fd, const uint8_t *buf, size_t len, uint64_t off)
{
	while (len) {
		ssize_t n = pwrite(fd, buf, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = ENOSPC;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

struct copy_job {
	struct nd_client *c;
	struct xfer x;
	struct progress prog;
	const char *local;
	const char *url;
	int fd;
	uint64_t size;		/* bytes to move */
	uint32_t bs;
	bool upload;
	int rc;			/* exit code of the first failure */
	uint64_t done;
};

/* Takes back one completed buffer; records the first failure. */
static void reap(struct copy_job *j, struct xbuf *b)
{
	if (!b->len)
		return;
	if (b->status) {
		if (!j->rc) {
			progress_break(&j->prog);
			j->rc = nd_report_result(j->url, b->status);
		}
	} else if (!j->upload && !j->rc &&
		   pwrite_full(j->fd, b->data, b->len, b->off)) {
		progress_break(&j->prog);
		nd_err("cannot write %s: %s", j->local, strerror(errno));
		j->rc = ND_EXIT_FAIL;
	} else {
		j->done += b->len;
	}
	b->len = 0;
	progress_show(&j->prog, j->done, false);
}

static void run_copy(struct copy_job *j)
{
	uint64_t off = 0;
	unsigned int i;

	while (off < j->size && !j->rc) {
		struct xbuf *b = xfer_get(&j->x);
		int rc;

		reap(j, b);
		if (j->rc) {
			xfer_put(&j->x, b);
			break;
		}
		b->off = off;
		b->len = j->size - off < j->bs ? (uint32_t)(j->size - off) : j->bs;
		if (j->upload && pread_full(j->fd, b->data, b->len, off)) {
			progress_break(&j->prog);
			nd_err("cannot read %s: %s", j->local, strerror(errno));
			j->rc = ND_EXIT_FAIL;
			xfer_put(&j->x, b);
			break;
		}
		rc = nd_client_submit(j->c, j->upload ? ND_OP_WRITE : ND_OP_READ,
				      0, off, b->len, b->data, xfer_cb, b);
		if (rc) {
			progress_break(&j->prog);
			j->rc = nd_report_result(j->url, rc);
			xfer_put(&j->x, b);
			break;
		}
		off += b->len;
	}
	/* Collect every buffer: all requests have completed afterwards. */
	for (i = 0; i < j->x.nbuf; i++)
		reap(j, xfer_get(&j->x));
}

static int open_local_for_download(struct copy_job *j, uint64_t export_size)
{
	struct stat st;
	bool blk;
	uint64_t dev_size;

	j->fd = open(j->local, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (j->fd < 0) {
		nd_err("cannot open %s: %s", j->local, strerror(errno));
		return ND_EXIT_FAIL;
	}
	if (fstat(j->fd, &st)) {
		nd_err("cannot stat %s: %s", j->local, strerror(errno));
		return ND_EXIT_FAIL;
	}
	if (S_ISREG(st.st_mode)) {
		/* Drop old contents so unwritten parts read back as zeros. */
		if (ftruncate(j->fd, 0) || ftruncate(j->fd, (off_t)export_size)) {
			nd_err("cannot resize %s to %llu bytes: %s", j->local,
			       (unsigned long long)export_size, strerror(errno));
			return ND_EXIT_FAIL;
		}
	} else if (S_ISBLK(st.st_mode)) {
		if (nd_fd_size(j->fd, &dev_size, &blk)) {
			nd_err("cannot get the size of %s: %s", j->local,
			       strerror(errno));
			return ND_EXIT_FAIL;
		}
		if (dev_size < export_size) {
			nd_err("%s is %llu bytes, smaller than the export (%llu bytes): out of range",
			       j->local, (unsigned long long)dev_size,
			       (unsigned long long)export_size);
			return ND_EXIT_RANGE;
		}
	}
	j->size = export_size;
	return 0;
}

static int open_local_for_upload(struct copy_job *j)
{
	bool blk;

	j->fd = open(j->local, O_RDONLY | O_CLOEXEC);
	if (j->fd < 0) {
		nd_err("cannot open %s: %s", j->local, strerror(errno));
		return ND_EXIT_FAIL;
	}
	if (nd_fd_size(j->fd, &j->size, &blk)) {
		nd_err("%s: cannot determine its size (%s); expected a regular file or block device",
		       j->local, strerror(errno));
		return ND_EXIT_FAIL;
	}
	if (j->size % ND_SECTOR_SIZE) {
		nd_err("%s is %llu bytes, not a multiple of %u: refusing an unaligned upload",
		       j->local, (unsigned long long)j->size, ND_SECTOR_SIZE);
		return ND_EXIT_USAGE;
	}
	return 0;
}

int nd_cmd_copy(int argc, char **argv)
{
	enum { OPT_BS = ND_OPT_FIRST_PRIVATE, OPT_INFLIGHT };
	static const struct option lo[] = {
		ND_COMMON_LONGOPTS,
		{ "bs", required_argument, NULL, OPT_BS },
		{ "inflight", required_argument, NULL, OPT_INFLIGHT },
		{ "quiet", no_argument, NULL, 'q' },
		{ NULL, 0, NULL, 0 },
	};
	struct nd_common_opts co = { 0 };
	struct copy_job j = { .fd = -1 };
	const struct nd_session_info *si;
	uint64_t bs = 0, inflight = DEFAULT_INFLIGHT, nbuf;
	bool quiet = false, src_url, dst_url;
	struct nd_url u;
	int opt, rc, crc;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":hq", lo, NULL)) != -1) {
		rc = nd_common_opt(opt, optarg, &co);
		if (rc < 0)
			return ND_EXIT_USAGE;
		if (rc)
			continue;
		switch (opt) {
		case 'h':
			copy_usage(stdout);
			return ND_EXIT_OK;
		case 'q':
			quiet = true;
			break;
		case OPT_BS:
			if (nd_parse_size(optarg, &bs) || !bs ||
			    bs % ND_SECTOR_SIZE || bs > ND_MAX_PAYLOAD) {
				nd_err("copy: invalid --bs '%s' (a multiple of 512, at most 16M)",
				       optarg);
				return ND_EXIT_USAGE;
			}
			break;
		case OPT_INFLIGHT:
			if (nd_parse_size(optarg, &inflight) || !inflight ||
			    inflight > (1ull << 30)) {
				nd_err("copy: invalid --inflight '%s' (1 byte to 1G)",
				       optarg);
				return ND_EXIT_USAGE;
			}
			break;
		default:
			return nd_bad_option("copy", opt, argv);
		}
	}
	if (argc - optind != 2) {
		nd_err("copy: expected SRC and DST (usage: netdisk copy SRC DST --key-file FILE)");
		return ND_EXIT_USAGE;
	}
	src_url = nd_url_is_url(argv[optind]);
	dst_url = nd_url_is_url(argv[optind + 1]);
	if (src_url == dst_url) {
		nd_err("copy: exactly one of SRC and DST must be a netdisk:// URL");
		return ND_EXIT_USAGE;
	}
	j.upload = dst_url;
	j.url = argv[optind + (j.upload ? 1 : 0)];
	j.local = argv[optind + (j.upload ? 0 : 1)];

	/* Check the local side before touching the network. */
	if (j.upload) {
		rc = open_local_for_upload(&j);
		if (rc)
			goto out;
	}

	rc = nd_cli_connect(j.url, &co, j.upload ? 0 : ND_CF_READ_ONLY,
			    MAX_BUFS + 1, bs > ND_DEFAULT_PAYLOAD ? (uint32_t)bs : 0,
			    &j.c, &u);
	if (rc)
		goto out;
	si = nd_client_info(j.c);
	if (!bs)
		bs = si->max_payload;
	if (bs > si->max_payload) {
		nd_err("copy: --bs %llu is above the server's maximum request size %u",
		       (unsigned long long)bs, si->max_payload);
		rc = ND_EXIT_USAGE;
		goto out;
	}
	j.bs = (uint32_t)bs;

	if (j.upload) {
		if (si->flags & ND_EXP_READ_ONLY) {
			nd_err("%s: export is read-only", j.url);
			rc = ND_EXIT_READ_ONLY;
			goto out;
		}
		if (j.size > si->size) {
			nd_err("%s is %llu bytes, larger than the export (%llu bytes): out of range",
			       j.local, (unsigned long long)j.size,
			       (unsigned long long)si->size);
			rc = ND_EXIT_RANGE;
			goto out;
		}
	} else {
		rc = open_local_for_download(&j, si->size);
		if (rc)
			goto out;
	}

	nbuf = (inflight + bs - 1) / bs;
	if (nbuf > MAX_BUFS)
		nbuf = MAX_BUFS;
	if (xfer_init(&j.x, (unsigned int)nbuf, j.bs)) {
		nd_err("copy: out of memory");
		rc = ND_EXIT_FAIL;
		goto out;
	}
	j.prog.on = !quiet && isatty(STDERR_FILENO);
	j.prog.total = j.size;
	j.prog.start_ns = nd_now_ns();

	run_copy(&j);
	rc = j.rc;
	if (!rc && j.upload && (si->flags & ND_EXP_FLUSH)) {
		crc = nd_client_flush(j.c);
		if (crc) {
			progress_break(&j.prog);
			rc = nd_report_result(j.url, crc);
		}
	}
	if (!rc && !j.upload && fdatasync(j.fd) && errno != EINVAL &&
	    errno != EROFS) {
		progress_break(&j.prog);
		nd_err("cannot sync %s: %s", j.local, strerror(errno));
		rc = ND_EXIT_FAIL;
	}
	if (!rc)
		progress_show(&j.prog, j.done, true);
out:
	if (j.c) {
		crc = nd_client_close(j.c);
		(void)crc;	/* every request already reported its result */
	}
	if (j.x.bufs || j.x.q)
		xfer_free(&j.x);
	if (j.fd >= 0 && close(j.fd) && !rc) {
		nd_err("cannot close %s: %s", j.local, strerror(errno));
		rc = ND_EXIT_FAIL;
	}
	return rc;
}
