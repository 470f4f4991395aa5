/* SPDX-License-Identifier: MIT */
/*
 * Copy-on-write overlays (docs/COW-FORMAT.md): a backend that layers one
 * identity's overlay file, DIR/IDENTITY.ndcow, over a read-only base
 * backend, nbdkit-filter style. cow.c is the data path, cow_admin.c the
 * file-level operations the administrator runs (list, reset, merge,
 * check), which need no running server: each takes the overlay's lock
 * itself, so it fails with "in use" while a server has the overlay open.
 */
#ifndef ND_SRV_COW_H
#define ND_SRV_COW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "backend.h"

#define ND_COW_SUFFIX		".ndcow"
#define ND_COW_CLUSTER_BITS	12	/* new overlays: 4 KiB clusters */

/* nd_cow_open's failures beyond -1. */
#define ND_COW_ERR		(-1)	/* one line in err: I/O, damaged, ... */
#define ND_COW_BASE_CHANGED	(-2)	/* made from another base (status 16) */
#define ND_COW_IN_USE		(-3)	/* another process holds its lock */

/*
 * The base of a copy-on-write export: an open read-only backend (its ops
 * are used for every read of the base) and the path it was opened from
 * (stat for the binding's size and mtime). dev and ino: st_dev and st_ino
 * of the file e has open (both 0: unknown); when known, a path that names
 * another file by now (the base replaced while open) is refused, since
 * its mtime is not that of the bytes e serves.
 */
struct nd_cow_base {
	const struct nd_export *e;	/* read_only, size, block_size, ops, h */
	const char *path;
	uint64_t dev, ino;
};

/*
 * Opens (creating on first use, with dir created 0700 if missing) the
 * overlay of identity in dir over base, and fills out as an export
 * backend: ops = the overlay's, h, size and block_size = the base's,
 * read_only = false, caps = FUA | TRIM | WRITE_ZEROES, id = the first 16
 * bytes of SHA-256("netdisk cow export id" || overlay uuid || u64 size),
 * so a reset overlay is another disk to the client. out->name is left to
 * the caller; out->writer NULL. Records the attach in the usage record.
 * Returns 0 or ND_COW_* with one line in err naming the overlay file.
 * Blocks on disk I/O (creation syncs; the binding reads 64 base blocks).
 */
int nd_cow_open(const struct nd_cow_base *base, const char *dir,
		const char *identity, struct nd_export *out, char *err,
		size_t errlen);

/*
 * Bytes of memory the open overlay behind an export's h holds (cluster
 * map and bookkeeping): independent of how much was written, at most
 * 1 MiB per 10 GiB of disk.
 */
size_t nd_cow_mem(const void *h);

/* What `netdiskd overlay list` shows of one overlay. */
struct nd_cow_info {
	char identity[ND_NAME_MAX + 1];
	uint64_t size;			/* of the disk */
	uint64_t allocated;		/* bytes the file occupies (st_blocks) */
	uint64_t data_bytes;		/* clusters held in the data area */
	uint64_t zero_bytes;		/* clusters that read as zeros */
	int64_t created;		/* Unix seconds */
	int64_t last_used;		/* Unix seconds; 0: unknown/never */
	uint64_t attaches;
};

/*
 * Reads the overlay's header, map and usage record without its lock (a
 * server may be writing it: the counts are then those of the last
 * commit). 0, or -1 with one line in err.
 */
int nd_cow_info(const char *dir, const char *identity,
		struct nd_cow_info *info, char *err, size_t errlen);

/*
 * Every DIR/NAME.ndcow whose NAME is a valid identity, sorted by name:
 * *out (free with free()), *n entries. A file that is not a readable
 * overlay is listed with size 0 and its error logged. 0, or -1 with one
 * line in err (dir unreadable; a missing dir is an empty list).
 */
int nd_cow_list(const char *dir, struct nd_cow_info **out, int *n,
		char *err, size_t errlen);

/*
 * Removes the overlay (next attach starts from the base again), durably
 * (directory synced). Takes the overlay's lock first: ND_COW_IN_USE while
 * a server has it open. 0 (also if there was none) or ND_COW_*.
 */
int nd_cow_reset(const char *dir, const char *identity, char *err,
		 size_t errlen);

/*
 * Writes what the identity reads (base where never written, its data,
 * zeros) to a new file out_path (must not exist; created 0600, sparse
 * where the disk reads zeros, synced, then renamed into place from
 * out_path.tmp). Takes the overlay's lock; refuses a changed base.
 * 0 or ND_COW_* with one line in err.
 */
int nd_cow_merge(const struct nd_cow_base *base, const char *dir,
		 const char *identity, const char *out_path, char *err,
		 size_t errlen);

/*
 * Checks the overlay's consistency: header and checksum, sizes, map
 * values (no 3, nothing past the end), file length, base binding. Writes
 * one line per finding and a summary line to report. Takes the lock.
 * 0: consistent; 1: findings (damaged or base changed); ND_COW_* when it
 * could not check (err).
 */
int nd_cow_check(const struct nd_cow_base *base, const char *dir,
		 const char *identity, FILE *report, char *err,
		 size_t errlen);

#endif /* ND_SRV_COW_H */
