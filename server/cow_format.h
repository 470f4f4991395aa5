/* SPDX-License-Identifier: MIT */
/*
 * The overlay file format of docs/COW-FORMAT.md, shared by the data path
 * (cow.c) and the administrator's operations (cow_admin.c): the header,
 * the usage record, the cluster map's encoding and checks, the base
 * binding, and opening an overlay file under its lock.
 */
#ifndef ND_SRV_COW_FORMAT_H
#define ND_SRV_COW_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cow.h"

#define COW_MAGIC		"NDCOW\r\n\x1a"
#define COW_VERSION		1
#define COW_HDR_LEN		4096u
#define COW_MAP_OFFSET		8192u
#define COW_PAGE		4096u	/* map pages: unit of a commit */
#define COW_DATA_ALIGN		(1u << 20)
#define COW_MIN_CLUSTER_BITS	9
#define COW_MAX_CLUSTER_BITS	20
/* Readers' limits: keep every offset of the file below 2^63. */
#define COW_MAX_SIZE		(1ull << 56)
#define COW_MAX_DATA_OFFSET	(1ull << 62)
#define COW_SUM_OFF		480u
/* Own 4 KiB block: its unsynced rewrite can never tear the header. */
#define COW_USAGE_OFF		4096u
#define COW_USAGE_LEN		512u
#define COW_USAGE_SUM_OFF	480u	/* within the usage record */
#define COW_SAMPLES		64
#define COW_SAMPLE_LEN		4096u

/* Map values (2 bits per cluster). */
#define COW_BASE		0u
#define COW_DATA		1u
#define COW_ZERO		2u
#define COW_BAD			3u

struct cow_hdr {
	uint32_t version;
	uint32_t incompat;
	uint32_t compat;
	uint32_t cluster_bits;
	uint64_t size;
	uint64_t map_offset;
	uint64_t map_len;
	uint64_t data_offset;
	uint8_t uuid[16];
	int64_t created;
	uint64_t base_size;
	uint64_t base_mtime_ns;
	uint8_t binding[32];
	/* derived from the above */
	uint64_t nclusters;
	uint32_t cluster_size;
};

struct cow_usage {
	int64_t last;			/* Unix seconds; 0: never */
	uint64_t attaches;
};

static inline void cow_put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline void cow_put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint32_t cow_get32(const uint8_t *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static inline uint64_t cow_get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* ceil(ncl / 4) rounded up to a multiple of COW_PAGE. */
uint64_t cow_map_len(uint64_t nclusters);

/*
 * Fills the layout fields of a new overlay's header for a disk of size
 * bytes (cluster_bits, size, map_offset, map_len, data_offset, derived).
 */
void cow_layout(struct cow_hdr *h, uint64_t size, uint32_t cluster_bits);

/* Header bytes 0..4095 with checksum and an empty usage record. */
void cow_hdr_encode(const struct cow_hdr *h, uint8_t buf[COW_HDR_LEN]);

/*
 * Parses and checks a header against every rule of the format except the
 * file's length: 0, or -1 with the reason in why ("bad magic", ...).
 */
int cow_hdr_decode(const uint8_t buf[COW_HDR_LEN], struct cow_hdr *h,
		   char *why, size_t whylen);

/* An invalid record reads as never used (all zero). */
void cow_usage_decode(const uint8_t rec[COW_USAGE_LEN], struct cow_usage *u);
void cow_usage_encode(const struct cow_usage *u, uint8_t rec[COW_USAGE_LEN]);

/*
 * The base's identity as the binding sees it: size, mtime (0 for a block
 * device) and binding hash (64 sample blocks read through the base's
 * backend). 0, or -1 with one line in err.
 */
int cow_base_bind(const struct nd_cow_base *b, uint64_t *size,
		  uint64_t *mtime_ns, uint8_t binding[32], char *err,
		  size_t errlen);

/*
 * Does the header's binding match base? 0: yes; 1: the base changed (why
 * says how); -1: could not tell (why).
 */
int cow_base_check(const struct cow_hdr *h, const struct nd_cow_base *b,
		   char *why, size_t whylen);

/* Map statistics of one map image (on-disk byte order). */
struct cow_map_stats {
	uint64_t data;			/* clusters with value 1 */
	uint64_t zero;			/* value 2 */
	uint64_t bad;			/* value 3 */
	uint64_t first_bad;		/* cluster of the first 3 */
	uint64_t past_end;		/* non-zero entries at/after nclusters */
	uint64_t last_data;		/* highest cluster with 1, +1 (0: none) */
};

void cow_map_scan(const uint8_t *map, uint64_t map_len, uint64_t nclusters,
		  struct cow_map_stats *st);

/* DIR/IDENTITY.ndcow (plus suffix); -1 if identity is invalid or too long. */
int cow_path(char *out, size_t outlen, const char *dir, const char *identity,
	     const char *suffix);

/*
 * Opens path read-write (O_NOFOLLOW, a regular file) and takes its
 * exclusive OFD lock, making sure path still names the locked file (a
 * reset may have unlinked it meanwhile). 0 and *fd; -ENOENT if there is
 * no such file; ND_COW_IN_USE or ND_COW_ERR with one line in err.
 */
int cow_open_locked(const char *path, int *fd, char *err, size_t errlen);

/* Whole-buffer I/O; 0, -errno, or -ENODATA at end of file. */
int cow_pread_all(int fd, void *buf, size_t len, uint64_t off);
int cow_pwrite_all(int fd, const void *buf, size_t len, uint64_t off);

/* fsync of the directory holding path (or of dir itself). 0 or -errno. */
int cow_sync_parent(const char *path);

/*
 * Reads and checks header and map of an open overlay: *h, and the map in
 * a new buffer *map (map_len bytes, free()) if map is not NULL. Checks
 * the file's length and, with map, its entries (no 3, nothing past the
 * end). 0, or -1 with one line in err naming path.
 */
int cow_load(int fd, const char *path, struct cow_hdr *h, uint8_t **map,
	     char *err, size_t errlen);

#endif /* ND_SRV_COW_FORMAT_H */
