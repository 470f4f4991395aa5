/* SPDX-License-Identifier: GPL-2.0 */
/*
 * netdisk.ko internals: one struct per concern, shared by the small files
 * of the module (see docs/DESIGN.md, "Kernel module").
 */
#ifndef ND_KERNEL_NETDISK_H
#define ND_KERNEL_NETDISK_H

#include <linux/blk-mq.h>
#include <linux/kthread.h>
#include <linux/mutex.h>
#include <linux/net.h>
#include <linux/scatterlist.h>
#include <linux/spinlock.h>
#include <linux/types.h>
#include <linux/workqueue.h>

#include "compat.h"
#include "../include/netdisk_proto.h"
#include "../include/netdisk_ioctl.h"

#define ND_PART_SHIFT		4	/* 16 minors per disk: 15 partitions */
#define ND_MAX_DEVICES		(1 << (MINORBITS - ND_PART_SHIFT))
#define ND_QUEUE_DEPTH		128
#define ND_MAX_CONNECTIONS	16	/* one per hardware queue */
#define ND_DEFAULT_CONNECTIONS	4	/* at most; fewer on fewer CPUs */
#define ND_CONNECT_TIMEOUT_MS	10000
#define ND_IO_TIMEOUT_S		30
#define ND_RECONNECT_MAX_S	86400
#define ND_BACKOFF_MIN_MS	100
#define ND_BACKOFF_MAX_MS	5000
#define ND_DISPLAY_LEN		ND_ATTACH_DISPLAY_MAX
#define ND_MAX_RANGE		(1u << 31)	/* TRIM, WRITE_ZEROES bytes */

/* ---- crypto.c: key schedule and record layer ---- */

/*
 * One direction of the record layer. The AEAD holds key_gen; the traffic
 * secret of that generation is kept to derive the next one, the key is not.
 */
struct nd_dir {
	struct crypto_aead *aead;
	struct aead_request *req;
	struct crypto_shash *hmac;	/* HKDF-Expand of the key ladder */
	u8 traffic[ND_KEY_LEN];		/* traffic secret of generation gen */
	u8 iv[ND_IV_LEN];
	u8 nonce[ND_IV_LEN];
	u64 gen;			/* key generation: seq / ND_REKEY_RECORDS */
	u64 seq;			/* next record number */
	bool broken;			/* a key step failed: no more records */
};

int nd_sha256(const u8 *a, size_t alen, const u8 *b, size_t blen,
	      u8 out[ND_HASH_LEN]);
int nd_hmac(const u8 *key, size_t klen, const u8 *data, size_t dlen,
	    u8 out[ND_HASH_LEN]);
int nd_x25519_public(u8 share[ND_SHARE_LEN], const u8 secret[ND_SHARE_LEN]);
int nd_x25519_keypair(u8 secret[ND_SHARE_LEN], u8 share[ND_SHARE_LEN]);
bool __must_check nd_x25519(u8 dh[ND_SHARE_LEN], const u8 secret[ND_SHARE_LEN],
			    const u8 peer[ND_SHARE_LEN]);
int nd_derive(const u8 psk[ND_KEY_LEN], const u8 dh[ND_SHARE_LEN],
	      const u8 crand[ND_RANDOM_LEN], const u8 srand[ND_RANDOM_LEN],
	      const u8 th[ND_HASH_LEN], u8 prk[ND_HASH_LEN],
	      u8 okm[ND_OKM_LEN]);
/* traffic: the direction's traffic secret of generation 0 (from OKM). */
int nd_dir_init(struct nd_dir *d, const u8 traffic[ND_KEY_LEN],
		const u8 iv[ND_IV_LEN], u64 seq);
void nd_dir_free(struct nd_dir *d);
/* The AES key of d's current generation (for the self-test). */
int nd_dir_key(struct nd_dir *d, u8 key[ND_KEY_LEN]);
/*
 * rec is [u32 length][body][tag] and sg maps at least that much of it.
 * nd_seal writes the length, encrypts body_len bytes of body in place and
 * appends the tag. nd_open checks and decrypts a record whose length field
 * (ciphertext + tag) is rec_len, in place; -EBADMSG if it is not authentic.
 */
int nd_seal(struct nd_dir *d, struct scatterlist *sg, u8 *rec, u32 body_len);
int nd_open(struct nd_dir *d, struct scatterlist *sg, u32 rec_len);

/* selftest.c */
int nd_selftest(void);

/* ---- conn.c: one TCP connection and its record streams ---- */

/* A virtually contiguous buffer and a scatterlist over its pages. */
struct nd_buf {
	u8 *data;
	size_t size;
	struct sg_table sgt;
};

enum {
	ND_CONN_DEAD,		/* no more I/O: requests fail with EIO */
	ND_CONN_CLOSING,	/* detach in progress: no log line on death */
	ND_CONN_RECONNECTING,	/* broken: requests are held, worker retries */
};

struct nd_device;
struct nd_conn_params;

struct nd_conn {
	struct nd_device *dev;
	unsigned int qid;		/* the blk-mq hardware queue it serves */
	struct socket *sock;
	unsigned long flags;		/* ND_CONN_* */
	struct nd_dir tx, rx;
	u32 max_payload;

	/* Requests waiting for the sender, in arrival order. */
	spinlock_t queue_lock;
	struct list_head queue;
	struct work_struct tx_work;
	struct mutex tx_lock;		/* tx state, tx_buf, socket writes */
	struct nd_buf tx_buf;

	struct task_struct *rx_thread;
	struct nd_buf rx_buf;
	/*
	 * Bumped when a receiver starts (tx_lock held, no receiver running):
	 * a reply is accepted only for a request sent in this generation.
	 */
	u32 gen;

	/* Reconnection. */
	struct mutex sock_lock;		/* publishing vs. shutting down sock */
	struct delayed_work reconnect_work;
	unsigned long reconnect_since;	/* jiffies: when the link broke */
	unsigned int backoff_ms;
	bool quiet;			/* retry: no repeated connect errors */
	/*
	 * ClientFinish epoch of the slot (qid): bumped before every handshake
	 * attempt, so the server can fence this connection's predecessors.
	 */
	u32 epoch;
};

struct nd_conn_params {
	struct sockaddr_storage addr;
	int addr_len;
	unsigned int connect_timeout_ms;
	u32 flags;			/* ND_CF_* */
	u32 max_payload;
	u8 identity[ND_NAME_MAX];
	u8 identity_len;
	u8 export_name[ND_NAME_MAX];
	u8 export_len;
	u8 psk[ND_KEY_LEN];
	u8 token[ND_TOKEN_LEN];		/* session to join; zero: a new one */
	/* ClientFinish resume_writer, resume_own of a new session; 0: none. */
	u64 resume_writer;
	u64 resume_own;
};

struct nd_conn *nd_conn_create(struct nd_device *dev, unsigned int qid);
struct nd_hs_result;
void nd_conn_connect(struct nd_conn *c, const struct nd_conn_params *p,
		     struct nd_hs_result *r);
int nd_conn_start(struct nd_conn *c);
void nd_conn_kill(struct nd_conn *c, const char *why);
void nd_conn_fail(struct nd_conn *c, const char *why);
bool nd_conn_mark_dead(struct nd_conn *c);
void nd_conn_shutdown(struct nd_conn *c);
bool nd_conn_reconnecting(struct nd_conn *c);
void nd_conn_close(struct nd_conn *c, bool graceful);
void nd_conn_free(struct nd_conn *c);
bool nd_conn_queue(struct nd_conn *c, struct request *rq);
bool nd_conn_dead(struct nd_conn *c);
int nd_sock_send(struct socket *sock, const void *buf, size_t len);
int nd_sock_recv(struct socket *sock, void *buf, size_t len);
int nd_sock_recv_until(struct socket *sock, void *buf, size_t len,
		       const unsigned long *deadline);
int nd_buf_alloc(struct nd_buf *b, size_t size);
void nd_buf_free(struct nd_buf *b);

/* ---- handshake.c ---- */

struct nd_hs_result {
	u32 result;			/* ND_ATTACH_* */
	u32 server_status;
	int err;			/* negative errno */
	struct nd_session_info info;
};

void nd_handshake(struct nd_conn *c, const struct nd_conn_params *p,
		  struct nd_hs_result *r);

/* ---- blk.c: the block device ---- */

/* Per-request driver data (blk-mq PDU). */
struct nd_cmd {
	spinlock_t lock;		/* inflight, cookie vs. completion */
	struct list_head list;		/* on nd_conn.queue (its queue_lock) */
	u32 cookie;			/* generation: upper half of the handle */
	u32 sent_gen;			/* nd_conn.gen when sent; 0: unsent */
	bool inflight;			/* ours to complete */
	unsigned long queued_at;	/* jiffies: for nd_timeout's give-up */
	blk_status_t status;
	u64 cache_seq;			/* cache.c: when a miss or write began */
	/* cache.c: copies of the WRITE data last sent, by page (page->lru) */
	struct list_head cache_pages;
};

enum nd_state {
	ND_STATE_ATTACHING,
	ND_STATE_CONNECTED,
	ND_STATE_DEAD,
	ND_STATE_DETACHING,
};

struct nd_device {
	int index;
	char name[DISK_NAME_LEN];	/* "netdiskN", for logs */
	enum nd_state state;		/* under nd_devs_lock */
	struct gendisk *disk;
	struct blk_mq_tag_set tag_set;
	struct nd_conn **conns;		/* one per hardware queue */
	unsigned int nr_conns;
	/*
	 * Connection parameters with the PSK and the session token, kept for
	 * reconnecting (wiped when the device is freed). session_lock
	 * serialises reconnect handshakes, so one connection starting a new
	 * session is seen by the others, which then join it.
	 */
	struct nd_conn_params *params;
	struct mutex session_lock;

	char server[ND_DISPLAY_LEN];
	char export_name[ND_NAME_MAX + 1];
	char identity[ND_NAME_MAX + 1];
	struct nd_session_info info;
	bool read_only;
	unsigned int io_timeout_s;
	/*
	 * 0: fail at once; ND_RECONNECT_FOREVER: no limit (root devices).
	 * Written through sysfs at any time (a shutdown bounds a root
	 * device's): read with nd_dev_reconnect_timeout, once per decision.
	 */
	unsigned int reconnect_timeout_s;
	struct net *net;		/* the attaching task's: reconnects */
	/*
	 * Per device, so that neither a reconnect blocked in connect nor a
	 * sender blocked on a stalled socket holds up another device's I/O
	 * (each has its own rescuer under memory pressure).
	 */
	struct workqueue_struct *tx_wq;		/* senders */
	struct workqueue_struct *reconnect_wq;

	struct nd_cache *cache;		/* NULL: no --cache-size */

	atomic64_t reconnects, discards;
	atomic64_t reads, writes, flushes, read_bytes, write_bytes, errors;
};

extern const struct attribute_group *nd_disk_groups[];

static inline unsigned int nd_dev_reconnect_timeout(const struct nd_device *dev)
{
	return READ_ONCE(dev->reconnect_timeout_s);
}

int nd_blk_init_disk(struct nd_device *dev);
/* Fails with EIO the requests still in flight of c's queue (NULL: all). */
void nd_blk_fail_all(struct nd_device *dev, struct nd_conn *c);
/* Claims cmd (in flight on c) with status, unlinked from c's queue. */
bool nd_cmd_claim(struct nd_conn *c, struct nd_cmd *cmd, blk_status_t status);
int nd_blk_complete_reply(struct nd_device *dev, unsigned int qid,
			  const struct nd_reply *rep, const u8 *data);
/* Builds the request record for rq into the tx buffer; body length or <0. */
int nd_blk_build(struct nd_device *dev, struct request *rq, u8 *body);

/* ---- cache.c: client cache (--cache-size) ---- */

struct nd_cache;
struct nd_cache_stats {
	u64 size, used, hits, misses, evictions;	/* bytes, pages */
};

int nd_cache_check_size(u64 size);
struct nd_cache *nd_cache_create(u64 size, const char *name);
void nd_cache_free(struct nd_cache *c);
/*
 * queue_rq, request started: true if rq (a read) was copied from the
 * cache, the caller then ends it. A miss or a write is prepared for
 * nd_cache_complete, which every request so prepared must reach.
 */
bool nd_cache_queue(struct nd_cache *c, struct request *rq, bool hits_ok);
void nd_cache_complete(struct nd_cache *c, struct request *rq,
		       blk_status_t status);
/*
 * The receiver, for a READ it claimed with an OK reply, before completing
 * it: caches the pages rq covers entirely from data, the decrypted reply.
 */
void nd_cache_fill_read(struct nd_cache *c, struct request *rq,
			const u8 *data);
/*
 * The sender, tx_lock held, before sealing body (the plaintext request of
 * len bytes it built for cmd): a WRITE's pages are copied and kept on cmd,
 * replacing an earlier send's, for nd_cache_complete to insert if this
 * send is acknowledged. c NULL: no cache, nothing to do.
 */
void nd_cache_stage_write(struct nd_cache *c, struct nd_cmd *cmd,
			  const u8 *body, int len);
/* Forgets every page (the export may have changed); NULL is a no-op. */
void nd_cache_drop(struct nd_cache *c);
void nd_cache_stats(struct nd_cache *c, struct nd_cache_stats *s);

/* ---- dev.c: device lifetime ---- */

extern int nd_major;

int nd_dev_attach(struct nd_attach *a);
int nd_dev_detach(u32 index, bool force);
void nd_dev_detach_all(void);
void nd_dev_fail(struct nd_device *dev, const char *why);
const char *nd_state_name(struct nd_device *dev);

/* ---- ctl.c ---- */

int nd_ctl_init(void);
void nd_ctl_exit(void);

#endif /* ND_KERNEL_NETDISK_H */
