/* SPDX-License-Identifier: (GPL-2.0 WITH Linux-syscall-note) OR MIT */
/*
 * netdisk.ko control interface: ioctls on /dev/netdisk-control.
 *
 * Shared by the kernel module and the netdisk CLI. Fixed-size structs with
 * explicit padding and only __u8/__u32/__u64 fields, so 32-bit userspace on
 * a 64-bit kernel sees the same layout. Reserved fields must be zero: a
 * later version gives them a meaning without breaking this ABI.
 *
 * Devices are listed through sysfs: /sys/block/netdiskN/netdisk/{server,
 * export, identity, state, read_only, reads, writes, flushes, read_bytes,
 * write_bytes, errors, discards, connections, reconnects,
 * reconnect_timeout, cache_size, cache_used, cache_hits, cache_misses,
 * cache_evictions}; reads and read_bytes count reads sent to the server,
 * cache hits and misses count pages; state is attaching, connected, reconnecting, dead or
 * detaching; the size is /sys/block/netdiskN/size (sectors).
 */
#ifndef NETDISK_IOCTL_H
#define NETDISK_IOCTL_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define ND_CTL_NAME		"netdisk-control"
#define ND_CTL_PATH		"/dev/netdisk-control"
#define ND_DISK_PREFIX		"netdisk"	/* /dev/netdiskN */

#define ND_ATTACH_ADDR_MAX	128	/* sockaddr_in or sockaddr_in6 */
#define ND_ATTACH_DISPLAY_MAX	128	/* "host:port", NUL-terminated */
#define ND_ATTACH_NAME_MAX	72	/* 64 + NUL, padded to 8 */

/* nd_attach.flags */
#define ND_ATTACH_READ_ONLY	0x1u	/* ask the server for read-only access */
/*
 * reconnect_timeout_s is set. Without this flag (older CLIs) the driver
 * does not reconnect: a broken connection fails I/O at once.
 */
#define ND_ATTACH_RECONNECT	0x2u
/* reconnect_timeout_s: hold I/O and reconnect without a time limit. */
#define ND_RECONNECT_FOREVER	0xffffffffu
#define ND_ATTACH_FLAGS_ALL	(ND_ATTACH_READ_ONLY | ND_ATTACH_RECONNECT)

/* nd_attach_out.result: what went wrong, for the CLI's one-line message. */
enum nd_attach_result {
	ND_ATTACH_OK = 0,
	ND_ATTACH_CONNECT = 1,	/* cannot connect; errno_val says why */
	ND_ATTACH_AUTH = 2,	/* server could not prove the key: wrong key */
	ND_ATTACH_REFUSED = 3,	/* server answered server_status (busy, ...) */
	ND_ATTACH_PROTO = 4,	/* malformed handshake: not a netdisk server? */
	ND_ATTACH_LOST = 5,	/* connection closed or timed out in handshake */
	ND_ATTACH_LOCAL = 6,	/* local failure; errno_val says why */
	/* cache_size asked for, but others may write the export (a read-only
	 * session on a read-write export): the cache could go stale. */
	ND_ATTACH_CACHE_REFUSED = 7,
};

struct nd_attach_out {
	__u32 index;		/* N of /dev/netdiskN */
	__u32 result;		/* enum nd_attach_result */
	__u32 server_status;	/* ND_ERR_* when result is ND_ATTACH_REFUSED */
	__u32 errno_val;	/* positive errno for CONNECT and LOCAL */
	__u64 size;		/* export size in bytes */
	__u32 block_size;
	__u32 export_flags;	/* ND_EXP_* */
	__u32 max_payload;
	__u32 reserved[7];
};

struct nd_attach {
	/* in */
	__u8 addr[ND_ATTACH_ADDR_MAX];	/* struct sockaddr_in / _in6 */
	__u32 addr_len;
	__u32 flags;			/* ND_ATTACH_* */
	char display[ND_ATTACH_DISPLAY_MAX];	/* "host:port", for sysfs/logs */
	char identity[ND_ATTACH_NAME_MAX];	/* NUL-terminated; "" = default */
	char export_name[ND_ATTACH_NAME_MAX];	/* NUL-terminated; "" = default */
	__u8 key[32];			/* PSK; wiped by the kernel after use */
	__u32 connect_timeout_ms;	/* 0: 10 s */
	__u32 io_timeout_s;		/* request timeout; 0: 30 s */
	__u32 max_payload;		/* 0: 1 MiB; else 4 KiB..16 MiB, 4 KiB steps */
	/* TCP connections (one per blk-mq hardware queue), 1..16;
	 * 0: min(online CPUs, 4). */
	__u32 nr_connections;
	/*
	 * Bytes of client cache, rounded down to pages; 0: none. Allowed only
	 * when the session gets ND_EXP_EXCLUSIVE (else result
	 * ND_ATTACH_CACHE_REFUSED); under a page or over RAM: EINVAL, ENOMEM.
	 */
	__u64 cache_size;
	/*
	 * With ND_ATTACH_RECONNECT: a broken connection is re-established
	 * (I/O held) for up to this many seconds before I/O fails with EIO;
	 * 0 fails at once. At most 86400. Must be 0 without the flag.
	 */
	__u32 reconnect_timeout_s;
	/* Reserved for later options; today they must be 0. */
	__u32 reserved[15];
	/* out (copied back even when the ioctl fails) */
	struct nd_attach_out out;
};

/* nd_detach.flags */
#define ND_DETACH_FORCE		0x1u	/* even if open: fail I/O with EIO */
#define ND_DETACH_FLAGS_ALL	ND_DETACH_FORCE

struct nd_detach {
	__u32 index;
	__u32 flags;			/* ND_DETACH_* */
	__u32 reserved[6];
};

#define ND_IOCTL_MAGIC		0xDE
/* 0, or -1 with errno; the result is in out either way. */
#define ND_IOC_ATTACH		_IOWR(ND_IOCTL_MAGIC, 0x01, struct nd_attach)
/* 0, or -1 with errno ENOENT (no such device), EBUSY (open, not forced). */
#define ND_IOC_DETACH		_IOW(ND_IOCTL_MAGIC, 0x02, struct nd_detach)

#endif /* NETDISK_IOCTL_H */
