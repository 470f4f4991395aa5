// SPDX-License-Identifier: MIT
/*
 * netdisk bench URL: a fixed queue depth of READ or WRITE requests for a
 * fixed time; reports IOPS, throughput and latency percentiles. Requests go
 * out as given (no client-side range check): the server's verdict counts.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "common.h"

static void bench_usage(FILE *f)
{
	fprintf(f,
		"usage: netdisk bench URL --key-file FILE [options]\n"
		"\n"
		"Keeps IODEPTH requests in flight for TIME seconds and reports IOPS,\n"
		"MB/s and latency percentiles. Write modes DESTROY the export's data.\n"
		"\n"
		"options:\n"
		ND_COMMON_USAGE
		"  --rw MODE         read, write, randread or randwrite (default randread)\n"
		"  --bs SIZE         request size, a multiple of 512 (default 4k)\n"
		"  --iodepth N       requests in flight, 1-1024 (default 16)\n"
		"  --time SEC        duration (default 10)\n"
		"  --offset SIZE     start of the region used (default 0)\n"
		"  --size SIZE       length of the region (default: to the export's end)\n"
		"  --json            machine-readable output\n");
}

/*
 * Log-linear latency histogram over nanoseconds: 64 sub-buckets per power
 * of two, so a percentile is within ~1.6% without storing every sample.
 */
#define SUB_BITS	6
#define SUB		(1u << SUB_BITS)
#define HIST_BUCKETS	((64 - SUB_BITS) * SUB + SUB)

static unsigned int hist_index(uint64_t v)
{
	unsigned int e;

	if (v < SUB)
		return (unsigned int)v;
	e = 63u - (unsigned int)__builtin_clzll(v);
	return (e - SUB_BITS + 1) * SUB +
	       (unsigned int)((v >> (e - SUB_BITS)) & (SUB - 1));
}

static uint64_t hist_value(unsigned int idx)
{
	unsigned int e, sub;
	uint64_t low, width;

	if (idx < SUB)
		return idx;
	e = idx / SUB + SUB_BITS - 1;
	sub = idx % SUB;
	low = (uint64_t)(SUB + sub) << (e - SUB_BITS);
	width = 1ull << (e - SUB_BITS);
	return low + width / 2;
}

enum mode { M_READ, M_WRITE, M_RANDREAD, M_RANDWRITE };
static const char *const mode_names[] = { "read", "write", "randread", "randwrite" };

struct breq {
	struct bench *b;
	uint8_t *buf;
	uint64_t t0;
};

struct bench {
	pthread_mutex_t m;
	pthread_cond_t cv;
	struct breq *reqs;
	unsigned int *freeq;
	unsigned int *batch;		/* main loop: the slots it took */
	unsigned int nfree;
	int err;			/* first failed status */
	/* Touched only by the completion callback until drained. */
	uint64_t hist[HIST_BUCKETS];
	uint64_t ios, lat_sum, lat_max;
};

static void bench_cb(void *arg, int status)
{
	struct breq *r = arg;
	struct bench *b = r->b;
	uint64_t lat = nd_now_ns() - r->t0;

	pthread_mutex_lock(&b->m);
	if (status && !b->err)
		b->err = status;
	if (!status) {
		b->hist[hist_index(lat)]++;
		b->ios++;
		b->lat_sum += lat;
		if (lat > b->lat_max)
			b->lat_max = lat;
	}
	b->freeq[b->nfree++] = (unsigned int)(r - b->reqs);
	pthread_cond_signal(&b->cv);
	pthread_mutex_unlock(&b->m);
}

/* Returns n unused request slots to the free queue. */
static void give_back(struct bench *b, const unsigned int *idx, unsigned int n)
{
	pthread_mutex_lock(&b->m);
	while (n--)
		b->freeq[b->nfree++] = *idx++;
	pthread_mutex_unlock(&b->m);
}

static double percentile_us(const struct bench *b, double p)
{
	double want = p * (double)b->ios;
	uint64_t target = (uint64_t)want, seen = 0;
	unsigned int i;

	if (!b->ios)
		return 0;
	if ((double)target < want || !target)
		target++;
	for (i = 0; i < HIST_BUCKETS; i++) {
		seen += b->hist[i];
		if (seen >= target)
			return (double)hist_value(i) / 1000.0;
	}
	return (double)b->lat_max / 1000.0;
}

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

int nd_cmd_bench(int argc, char **argv)
{
	enum {
		OPT_RW = ND_OPT_FIRST_PRIVATE, OPT_BS, OPT_IODEPTH, OPT_TIME,
		OPT_OFFSET, OPT_SIZE, OPT_JSON,
	};
	static const struct option lo[] = {
		ND_COMMON_LONGOPTS,
		{ "rw", required_argument, NULL, OPT_RW },
		{ "bs", required_argument, NULL, OPT_BS },
		{ "iodepth", required_argument, NULL, OPT_IODEPTH },
		{ "time", required_argument, NULL, OPT_TIME },
		{ "offset", required_argument, NULL, OPT_OFFSET },
		{ "size", required_argument, NULL, OPT_SIZE },
		{ "json", no_argument, NULL, OPT_JSON },
		{ NULL, 0, NULL, 0 },
	};
	struct nd_common_opts co = { 0 };
	struct nd_client *c = NULL;
	const struct nd_session_info *si;
	struct bench *b = NULL;
	struct nd_url u;
	enum mode mode = M_RANDREAD;
	uint64_t bs = 4096, region_off = 0, region_size = 0, nblocks, seq = 0;
	uint64_t rng, t_start, t_end, deadline, bytes;
	unsigned long iodepth = 16;
	int64_t time_ms = 10000;
	bool json = false, is_write, is_rand;
	char canon[400];
	double secs, iops, mbs;
	unsigned int i;
	int opt, rc;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", lo, NULL)) != -1) {
		rc = nd_common_opt(opt, optarg, &co);
		if (rc < 0)
			return ND_EXIT_USAGE;
		if (rc)
			continue;
		switch (opt) {
		case 'h':
			bench_usage(stdout);
			return ND_EXIT_OK;
		case OPT_RW:
			for (i = 0; i < 4; i++)
				if (!strcmp(optarg, mode_names[i]))
					break;
			if (i == 4) {
				nd_err("bench: invalid --rw '%s' (read, write, randread or randwrite)",
				       optarg);
				return ND_EXIT_USAGE;
			}
			mode = (enum mode)i;
			break;
		case OPT_BS:
			if (nd_parse_size(optarg, &bs) || !bs ||
			    bs % ND_SECTOR_SIZE || bs > ND_MAX_PAYLOAD) {
				nd_err("bench: invalid --bs '%s' (a multiple of 512, at most 16M)",
				       optarg);
				return ND_EXIT_USAGE;
			}
			break;
		case OPT_IODEPTH:
			if (nd_parse_uint(optarg, 1, 1024, &iodepth)) {
				nd_err("bench: invalid --iodepth '%s' (1-1024)", optarg);
				return ND_EXIT_USAGE;
			}
			break;
		case OPT_TIME:
			if (nd_parse_seconds(optarg, &time_ms) || time_ms < 1) {
				nd_err("bench: invalid --time '%s' (seconds, > 0)", optarg);
				return ND_EXIT_USAGE;
			}
			break;
		case OPT_OFFSET:
			if (nd_parse_size(optarg, &region_off) ||
			    region_off % ND_SECTOR_SIZE) {
				nd_err("bench: invalid --offset '%s' (a multiple of 512)",
				       optarg);
				return ND_EXIT_USAGE;
			}
			break;
		case OPT_SIZE:
			if (nd_parse_size(optarg, &region_size) || !region_size ||
			    region_size % ND_SECTOR_SIZE) {
				nd_err("bench: invalid --size '%s' (a non-zero multiple of 512)",
				       optarg);
				return ND_EXIT_USAGE;
			}
			break;
		case OPT_JSON:
			json = true;
			break;
		default:
			return nd_bad_option("bench", opt, argv);
		}
	}
	if (argc - optind != 1) {
		nd_err("bench: expected one URL (usage: netdisk bench URL --key-file FILE)");
		return ND_EXIT_USAGE;
	}
	is_write = mode == M_WRITE || mode == M_RANDWRITE;
	is_rand = mode == M_RANDREAD || mode == M_RANDWRITE;

	rc = nd_cli_connect(argv[optind], &co, is_write ? 0 : ND_CF_READ_ONLY,
			    (unsigned int)iodepth,
			    bs > ND_DEFAULT_PAYLOAD ? (uint32_t)bs : 0, &c, &u);
	if (rc)
		return rc;
	si = nd_client_info(c);
	nd_url_format(&u, canon, sizeof(canon));
	if (bs > si->max_payload) {
		nd_err("bench: --bs %" PRIu64 " is above the server's maximum request size %u",
		       bs, si->max_payload);
		rc = ND_EXIT_USAGE;
		goto out;
	}
	if (!region_size)
		region_size = region_off < si->size ? si->size - region_off : bs;
	nblocks = region_size / bs;
	if (!nblocks) {
		nd_err("bench: the region (%" PRIu64 " bytes) is smaller than --bs", region_size);
		rc = ND_EXIT_USAGE;
		goto out;
	}
	if (is_write)
		fprintf(stderr, "netdisk: warning: write benchmark overwrites data on %s\n",
			canon);

	b = calloc(1, sizeof(*b));
	if (!b) {
		nd_err("bench: out of memory");
		rc = ND_EXIT_FAIL;
		goto out;
	}
	pthread_mutex_init(&b->m, NULL);
	pthread_cond_init(&b->cv, NULL);
	b->reqs = calloc(iodepth, sizeof(*b->reqs));
	b->freeq = calloc(iodepth, sizeof(*b->freeq));
	b->batch = calloc(iodepth, sizeof(*b->batch));
	if (!b->reqs || !b->freeq || !b->batch) {
		nd_err("bench: out of memory");
		rc = ND_EXIT_FAIL;
		goto out;
	}
	for (i = 0; i < iodepth; i++) {
		b->reqs[i].b = b;
		b->reqs[i].buf = malloc(bs);
		if (!b->reqs[i].buf) {
			nd_err("bench: out of memory");
			rc = ND_EXIT_FAIL;
			goto out;
		}
		/* Writes send these bytes (then their ciphertext). */
		if (nd_random(b->reqs[i].buf, bs)) {
			nd_err("bench: cannot get random bytes");
			rc = ND_EXIT_FAIL;
			goto out;
		}
		b->freeq[b->nfree++] = i;
	}
	if (nd_random(&rng, sizeof(rng)) || !rng)
		rng = 0x9e3779b97f4a7c15ull;

	t_start = nd_now_ns();
	deadline = t_start + (uint64_t)time_ms * 1000000ull;
	/*
	 * Every request that completed since the last pass is resubmitted
	 * in one batch (one sendmsg): the queue depth stays the same.
	 */
	for (;;) {
		unsigned int n, k;
		uint64_t t0;
		int err;

		pthread_mutex_lock(&b->m);
		while (!b->nfree && !b->err)
			pthread_cond_wait(&b->cv, &b->m);
		err = b->err;
		n = b->nfree;
		memcpy(b->batch, b->freeq, n * sizeof(*b->batch));
		b->nfree = 0;
		pthread_mutex_unlock(&b->m);
		t0 = nd_now_ns();
		if (err || t0 >= deadline) {
			give_back(b, b->batch, n);
			break;
		}
		nd_client_plug(c);
		for (k = 0; k < n; k++) {
			struct breq *r = &b->reqs[b->batch[k]];
			uint64_t off;

			if (is_rand)
				off = region_off + (xorshift(&rng) % nblocks) * bs;
			else
				off = region_off + (seq++ % nblocks) * bs;
			r->t0 = t0;
			rc = nd_client_submit(c, is_write ? ND_OP_WRITE : ND_OP_READ,
					      0, off, (uint32_t)bs, r->buf,
					      bench_cb, r);
			if (rc) {
				pthread_mutex_lock(&b->m);
				if (!b->err)
					b->err = rc;
				pthread_mutex_unlock(&b->m);
				give_back(b, b->batch + k, n - k);
				break;
			}
		}
		nd_client_unplug(c);
		if (k < n)
			break;
	}
	nd_client_drain(c);
	t_end = nd_now_ns();

	if (b->err) {
		rc = nd_report_result(canon, b->err);
		goto out;
	}
	secs = (double)(t_end - t_start) / 1e9;
	bytes = b->ios * bs;
	iops = (double)b->ios / secs;
	mbs = (double)bytes / 1e6 / secs;
	if (json) {
		printf("{\"url\":\"%s\",\"rw\":\"%s\",\"bs\":%" PRIu64 ",\"iodepth\":%lu,"
		       "\"seconds\":%.3f,\"ios\":%" PRIu64 ",\"bytes\":%" PRIu64 ","
		       "\"iops\":%.1f,\"mb_per_s\":%.2f,"
		       "\"lat_us\":{\"mean\":%.1f,\"p50\":%.1f,\"p99\":%.1f,"
		       "\"p99_9\":%.1f,\"max\":%.1f}}\n",
		       canon, mode_names[mode], bs, iodepth, secs, b->ios, bytes,
		       iops, mbs,
		       b->ios ? (double)b->lat_sum / (double)b->ios / 1000.0 : 0.0,
		       percentile_us(b, 0.50), percentile_us(b, 0.99),
		       percentile_us(b, 0.999), (double)b->lat_max / 1000.0);
	} else {
		printf("%s: %s bs=%" PRIu64 " iodepth=%lu time=%.2fs\n", canon,
		       mode_names[mode], bs, iodepth, secs);
		printf("  IOPS:          %.0f\n", iops);
		printf("  throughput:    %.2f MB/s (%.2f MiB/s)\n", mbs,
		       (double)bytes / 1048576.0 / secs);
		printf("  latency (us):  mean %.1f  p50 %.1f  p99 %.1f  p99.9 %.1f  max %.1f\n",
		       b->ios ? (double)b->lat_sum / (double)b->ios / 1000.0 : 0.0,
		       percentile_us(b, 0.50), percentile_us(b, 0.99),
		       percentile_us(b, 0.999), (double)b->lat_max / 1000.0);
		printf("  requests:      %" PRIu64 " (%" PRIu64 " bytes)\n", b->ios, bytes);
	}
	if (fflush(stdout)) {
		nd_err("bench: cannot write to stdout");
		rc = ND_EXIT_FAIL;
		goto out;
	}
	rc = ND_EXIT_OK;
out:
	if (c) {
		int crc = nd_client_close(c);

		(void)crc;
	}
	if (b) {
		for (i = 0; b->reqs && i < iodepth; i++)
			free(b->reqs[i].buf);
		free(b->reqs);
		free(b->freeq);
		free(b->batch);
		pthread_mutex_destroy(&b->m);
		pthread_cond_destroy(&b->cv);
		free(b);
	}
	return rc;
}
