/* SPDX-License-Identifier: MIT */
/*
 * Export backends, nbdkit-style: an export is a handle plus a table of
 * operations, so backends other than a file or block device (memory,
 * copy-on-write overlay, ...) can be added without touching the server.
 */
#ifndef ND_SRV_BACKEND_H
#define ND_SRV_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "netdisk_proto.h"

/*
 * All I/O calls may run concurrently from several worker threads on the
 * same handle. They transfer everything or fail, and return 0 or a
 * negative errno. Offsets and lengths are already range-checked.
 *
 * Durability: flush, and pwrite/write_zeroes with fua, promise that every
 * write acknowledged before them is on stable storage. Once a backend has
 * lost acknowledged data (a write-back error), every later flush and fua
 * write must fail until it is closed: the loss concerns writes whose
 * replies went out long before, maybe on another connection or in an
 * earlier session of the same client, and one success would declare them
 * durable.
 */
struct nd_backend_ops {
	const char *name;
	int (*pread)(void *h, void *buf, uint32_t len, uint64_t off);
	/*
	 * Optional: pread only if it needs no disk I/O (page-cache hit);
	 * -EAGAIN otherwise. Called on the receiver thread, must not block.
	 */
	int (*pread_nowait)(void *h, void *buf, uint32_t len, uint64_t off);
	/* fua: data must be durable before returning. */
	int (*pwrite)(void *h, const void *buf, uint32_t len, uint64_t off,
		      bool fua);
	/*
	 * Optional: pwrite only if it cannot wait on a disk (memory-backed
	 * file, or a buffered write the kernel accepts with RWF_NOWAIT);
	 * -EAGAIN otherwise, also on any error or a partial write: the caller
	 * then redoes the whole write with pwrite, which reports the error.
	 * Called on the receiver thread, must not block.
	 */
	int (*pwrite_nowait)(void *h, const void *buf, uint32_t len,
			     uint64_t off, bool fua);
	int (*flush)(void *h);
	/*
	 * Optional: called only when caps advertises them. After trim the
	 * range reads zeroes (files and devices that zero on discard) or
	 * unspecified data (other devices, as the protocol allows).
	 */
	int (*trim)(void *h, uint32_t len, uint64_t off);
	int (*write_zeroes)(void *h, uint32_t len, uint64_t off, bool fua);
	void (*close)(void *h);
};

struct nd_session;

struct nd_export {
	char name[ND_NAME_MAX + 1];
	const struct nd_backend_ops *ops;
	void *h;
	uint64_t size;			/* bytes, multiple of block_size */
	uint32_t block_size;		/* logical block size */
	bool read_only;
	/* ND_EXP_FUA/TRIM/WRITE_ZEROES the backend supports (read-write). */
	uint32_t caps;
	uint8_t id[ND_EXPORT_ID_LEN];	/* stable identity of the data */
	/* Session holding the write lock; protected by the session lock. */
	struct nd_session *writer;
};

/*
 * Opens PATH (regular file or block device) as export backend. On failure
 * returns -1 with a one-line reason in err.
 */
int nd_file_open(struct nd_export *e, const char *path, bool read_only,
		 char *err, size_t errlen);

/*
 * How the server opens an export's backend (export.c): nd_file_open.
 * Tests put a backend of their own in front of the file (a disk that
 * hangs).
 */
extern int (*nd_backend_open)(struct nd_export *e, const char *path,
			      bool read_only, char *err, size_t errlen);

/* Closes the backend of e (safe if it never opened). */
void nd_export_close(struct nd_export *e);

#endif /* ND_SRV_BACKEND_H */
