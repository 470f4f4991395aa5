/* SPDX-License-Identifier: MIT */
/* netdiskd internals shared by server.c, handshake.c, conn.c and session.c. */
#ifndef ND_SRV_INTERNAL_H
#define ND_SRV_INTERNAL_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "backend.h"
#include "config.h"
#include "nd_wire.h"
#include "server.h"

/* Payload bytes a connection may have in flight before rx stops reading. */
#define ND_SRV_INFLIGHT_BYTES	(32u << 20)
/* Longest TRIM / WRITE_ZEROES (docs/PROTOCOL.md §3). */
#define ND_SRV_MAX_ZERO_LEN	(1u << 31)
/* Replies sealed and sent with one writev. */
#define ND_SRV_TX_BATCH		16
/*
 * Request buffers kept per connection for reuse: up to the in-flight limit
 * in number, ND_SRV_FREE_BYTES in buffer bytes (memory stays bounded).
 */
#define ND_SRV_FREE_REQS	ND_SRV_MAX_INFLIGHT
#define ND_SRV_FREE_BYTES	(8u << 20)
/* Socket receive buffer: several small records per read(). */
#define ND_SRV_RXBUF		(64 * 1024)
/*
 * Largest READ the receiver serves itself from the page cache (read and
 * sealed on the receiver, no worker hand-off: the default payload).
 */
#define ND_SRV_INLINE_MAX	(1024 * 1024)
/*
 * Largest WRITE the receiver stores itself when the backend can do it
 * without waiting (see DESIGN.md "Inline writes"); larger ones go to a
 * worker, whose copy then overlaps the receipt and opening of the next.
 */
#define ND_SRV_INLINE_WRITE_MAX	(1024 * 1024)
/*
 * The receiver sends its own replies (no hand-off) while they carry at
 * most this much data; a larger reply is sealed by the receiver and sent
 * by the sender thread, while the receiver reads the next request.
 */
#define ND_SRV_TX_CHUNK		(128 * 1024)
/*
 * While a connection waits for room (backpressure), how often its
 * receiver checks whether the client hung up.
 */
#define ND_SRV_HUP_CHECK_MS	250
/* How long shutdown waits for replies before cutting connections. */
#define ND_SRV_DRAIN_MS		10000

#define ND_SRV_CONN_STACK	(128 * 1024)
#define ND_SRV_WORKER_STACK	(256 * 1024)

struct nd_conn;

/*
 * Write epochs of a read-write export (PROTOCOL.md "No silent change of
 * writer"): reserved and written in memory (the server's sess_lock),
 * stored in the state file under the export's state_lock, which
 * serialises the stores.
 */
struct nd_wstate {
	bool enabled;			/* read-write export */
	char dir[PATH_MAX];
	char path[PATH_MAX];
	uint64_t reserved, written;
	/* What the file holds (state_lock). */
	uint64_t stored_reserved, stored_written;
};

/*
 * One export of the export table (export.c): its backend, file identity
 * and write-epoch state. Reference counted under sess_lock: the table
 * holds one reference while the export is in the configuration, each
 * session one; the file is closed (and its lock dropped) with the last,
 * so a removed export lives until its last session has ended.
 */
struct nd_exp {
	struct nd_export e;		/* name, backend, writer */
	char path[PATH_MAX];
	dev_t dev;			/* of path, to spot the same file */
	ino_t ino;
	bool open;			/* backend and state are open */
	int refs;
	struct nd_wstate ws;
	pthread_mutex_t state_lock;

	/*
	 * Copy-on-write (docs/COW-FORMAT.md). A cow export (cow_dir set) is
	 * the table's entry: e is its read-only base, sessions never hold
	 * it directly. Each identity with a session gets a child: an nd_exp
	 * whose e is the identity's overlay (cow.h) over the base, with its
	 * own writer and write-epoch state (keyed by the child's export id).
	 * Children are not in the table; they hold a reference to parent,
	 * sessions hold references to them, and the last one closes the
	 * overlay and unlinks the child from parent->children. All under
	 * sess_lock.
	 */
	char cow_dir[PATH_MAX];		/* "" : a plain export */
	struct nd_exp *parent;		/* of a child: its cow export */
	struct nd_exp *children;	/* of a cow export: open overlays */
	struct nd_exp *sibling;		/* next child of parent */
	char identity[ND_NAME_MAX + 1];	/* of a child */
	/* Identities an admin command holds (new sessions get busy). */
	char (*held)[ND_NAME_MAX + 1];
	int nheld;
};

/*
 * A connection slot of a session (PROTOCOL.md "Fenced reconnects"):
 * protected by the session lock.
 */
struct nd_slot {
	uint32_t epoch;			/* highest accepted; 0: none yet */
	struct nd_conn *conn;		/* the current connection, or NULL */
	int draining;			/* fenced connections not yet finished */
};

struct nd_session {
	struct nd_session *next;
	uint8_t token[ND_TOKEN_LEN];	/* secret: never logged */
	unsigned long long id;		/* names the session in log lines */
	char identity[ND_NAME_MAX + 1];
	struct nd_exp *exp;		/* holds a reference */
	uint32_t flags;			/* ND_EXP_* granted */
	bool writer;			/* holds exp's write lock */
	/* A reload took its export, key or access away: ends at once. */
	bool revoked;
	int64_t created_ms;		/* monotonic */
	/* Counters for the status (atomic; counted when a request arrives). */
	uint64_t requests, read_bytes, written_bytes;
	int nconns;
	int64_t expire_ms;		/* monotonic; meaningful if nconns == 0 */
	uint64_t write_epoch;		/* 0: the session may not write */
	uint64_t last_writer;		/* `written` when the session began */
	/* written == write_epoch is durable; set under state_lock. */
	bool wrote;
	struct nd_slot slots[ND_MAX_SLOTS];
};

struct nd_req {
	struct nd_req *next;
	struct nd_conn *c;
	struct nd_request r;
	uint16_t status;
	uint32_t data_len;		/* reply data (successful READ) */
	uint32_t charge;		/* bytes counted in inflight_bytes */
	uint8_t *buf;			/* READ data, or WRITE record body */
	size_t cap;
	uint8_t rec_hdr[ND_RECORD_HDR_LEN];
	uint8_t rhdr[ND_REPLY_HDR_LEN];
	uint8_t tag[ND_TAG_LEN];
};

struct nd_conn {
	struct nd_conn *next;		/* server's active or zombie list */
	struct nd_server *srv;
	int fd;				/* closed under srv->lock */
	pthread_t rx_thread;
	pthread_t tx_thread;
	bool tx_running;
	char peer[80];
	struct nd_crypto crypto;
	struct nd_session *sess;
	uint32_t flags;			/* ND_EXP_* granted */
	uint32_t max_payload;
	bool read_only;
	/*
	 * sess was created for this connection and its SessionInfo has not
	 * gone out: nobody knows the token, so nobody can resume it.
	 */
	bool sess_unknown;
	/* The write epoch reserved for sess must be stored before SessionInfo. */
	bool store_epoch;
	uint16_t slot;
	uint32_t epoch;
	/*
	 * A newer connection took the slot (under the session lock): no more
	 * requests are read, queued ones are dropped, no reply is sent.
	 */
	bool fenced;
	/* A list-exports answer to send instead of a SessionInfo (then close). */
	uint8_t *list;
	size_t list_len;
	/* Its SessionInfo OK is going out (c->lock): a fence cuts it off. */
	bool serving;
	int64_t hs_deadline;		/* monotonic: SessionInfo due by then */

	/*
	 * Owns crypto.tx: replies are sealed by the thread that produced
	 * them, and queued (or claimed for sending) before it is released,
	 * so the wire order is the sealing order. Taken before lock.
	 */
	pthread_mutex_t seal_lock;
	pthread_mutex_t lock;
	pthread_cond_t rx_cond;		/* rx: a slot freed / all done */
	pthread_cond_t tx_cond;		/* tx: a reply queued / stop */
	struct nd_req *txq_head, *txq_tail;
	int inflight;
	size_t inflight_bytes;
	bool tx_stop;
	bool tx_busy;			/* a thread is sending */
	bool dead;			/* send failed: drop further replies */
	struct nd_req *free_reqs;
	int nfree;
	size_t free_bytes;		/* buffer bytes in free_reqs */

	/* Receiver only. */
	uint8_t *rbuf;			/* ND_SRV_RXBUF bytes */
	size_t rpos, rlen;
};

struct nd_server {
	/*
	 * The configuration in force and its export table (exps[i] serves
	 * cfg.exports[i]). Replaced only by the listener thread (reload.c),
	 * under sess_lock: the listener reads them freely, others take
	 * sess_lock.
	 */
	struct nd_config cfg;
	struct nd_exp **exps;
	int grace_ms;
	uint32_t max_payload;
	int handshake_timeout_ms;
	int max_conns;
	int drain_ms;

	int lfds[ND_CFG_MAX_LISTEN];	/* listen.c */
	int nlfds;
	uint16_t port;
	int stop_pipe[2];		/* bytes: ND_SRV_WAKE_STOP/RELOAD */
	int epfd;			/* listeners, stop pipe, handshakes */
	/* Reloads applied and rejected (atomic). */
	unsigned long reloads_applied, reloads_rejected;

	/* Pending handshakes: only the listener thread touches hs. */
	struct nd_hs_pool *hs;
	int max_pending, max_pending_src;
	int npending;			/* atomic: for tests */

	pthread_mutex_t lock;		/* connection lists */
	pthread_cond_t cond;		/* a connection finished */
	struct nd_conn *conns;
	struct nd_conn *zombies;
	int nconns;
	bool stopping;

	/* Sessions, exports' writers, refs and write epochs, cfg and exps. */
	pthread_mutex_t sess_lock;
	/* A fenced connection finished; an export was closed. */
	pthread_cond_t sess_cond;
	struct nd_session *sessions;
	unsigned long long last_session_id;

	pthread_mutex_t wq_lock;
	pthread_cond_t wq_cond;
	struct nd_req *wq_head, *wq_tail;
	bool wq_stop;
	int wq_idle;			/* workers waiting on wq_cond */
	pthread_t *workers;
	int nworkers;
};

/* What a byte on stop_pipe asks the listener thread for. */
#define ND_SRV_WAKE_STOP	'S'
#define ND_SRV_WAKE_RELOAD	'R'

int64_t nd_now_ms(void);
/* CLOCK_REALTIME ms from now, for pthread_cond_timedwait. */
struct timespec nd_abstime_in_ms(int64_t ms);
int nd_thread_start(pthread_t *t, size_t stack, void *(*fn)(void *),
		    void *arg);

/* handshake.c: pending handshakes, run by the listener thread. */
struct nd_hs;
struct sockaddr_storage;
int nd_hs_init(struct nd_server *s, int max, int max_src);
void nd_hs_destroy(struct nd_server *s);
/* A freshly accepted non-blocking socket: starts its handshake. */
void nd_hs_add(struct nd_server *s, int fd,
	       const struct sockaddr_storage *from);
/* The socket of h is readable (or closed). */
void nd_hs_input(struct nd_server *s, struct nd_hs *h);
/* Drops the oldest pending handshake (of the busiest source); false: none. */
bool nd_hs_evict_oldest(struct nd_server *s);
/* How long the loop may sleep: up to max_ms, less if a deadline is due. */
int nd_hs_timeout_ms(struct nd_server *s, int max_ms);
/* Drops handshakes past their deadline; logs the failure summary. */
void nd_hs_expire(struct nd_server *s);
void nd_hs_close_all(struct nd_server *s);

/* admit.c: after the key proof, on the listener thread. */
struct nd_admit {
	int fd;				/* out of the epoll set, non-blocking */
	int64_t deadline;		/* of the handshake (monotonic) */
	char peer[64];
	struct nd_client_hello ch;
	char identity[ND_NAME_MAX + 1];
	char export_name[ND_NAME_MAX + 1];
};
/*
 * The authenticated client a gets the export list, a session (its
 * connection started) or a refusal. Takes a->fd and crypto.
 */
void nd_admit(struct nd_server *s, const struct nd_admit *a,
	      struct nd_crypto *crypto, const struct nd_client_finish *cf);
/* The connection's first record, from its own thread. 0 or -1 (errno). */
int nd_hs_send_session_info(struct nd_conn *c);
/* A SessionInfo carrying only an error status, from the connection's thread. */
void nd_hs_send_session_status(struct nd_conn *c, uint16_t status);

/* conn.c */
struct nd_conn *nd_conn_create(struct nd_server *s, int fd, const char *peer);
/* Registers c with the server and starts its thread; -1: not started. */
int nd_conn_start(struct nd_conn *c);
void nd_conn_destroy(struct nd_conn *c);
/* Marks c dead and drops its requests no worker has started. */
void nd_conn_drop_queued(struct nd_conn *c);
void *nd_conn_main(void *arg);
/* server.c: hand a request to the worker pool. */
void nd_work_submit(struct nd_server *s, struct nd_req *q);
/* server.c: takes c's requests no worker has started off the queue. */
struct nd_req *nd_work_cancel(struct nd_server *s, struct nd_conn *c);
void *nd_worker_main(void *arg);
/* conn.c: a finished request's reply goes to its connection's sender. */
void nd_conn_reply(struct nd_conn *c, struct nd_req *q);

/* session.c; all take sess_lock themselves. */
/*
 * Attaches c (created, not started) to a new or joined session as the
 * ClientFinish cf asks: sets c->sess, flags, read_only, slot, epoch and
 * sess_unknown, and fences the connection c replaces in its slot. Returns
 * ND_OK or the status to refuse c with (then c holds no session).
 */
uint16_t nd_session_attach(struct nd_server *s, struct nd_conn *c,
			   const char *identity, struct nd_exp *x,
			   const struct nd_client_finish *cf);
/* nd_session_ready: close without an answer, as on a handshake timeout. */
#define ND_SESSION_CLOSE	0xffff
/*
 * On c's own thread before its SessionInfo: waits until the connections
 * c's slot fenced have finished (until c's handshake deadline at most),
 * stores a new writable session's write epoch. ND_OK or the status to
 * refuse c with.
 */
uint16_t nd_session_ready(struct nd_server *s, struct nd_conn *c);
/*
 * Before the session's first WRITE, TRIM or WRITE_ZEROES runs: stores
 * written = its write epoch, once. 0, or -1 if that could not be stored.
 */
int nd_session_first_write(struct nd_server *s, struct nd_session *ss);
/*
 * c is over and all its requests have finished. clean: it ended with
 * DISCONNECT (or its session never reached the client).
 */
void nd_session_detach(struct nd_server *s, struct nd_conn *c, bool clean);
void nd_session_expire(struct nd_server *s, bool all);
/*
 * Ends ss (sess_lock held): not joinable any more, its connections are cut
 * off like a fenced one (nothing more read or answered, queued requests
 * dropped) and it ends, with its write lock, once their running requests
 * have finished; an idle one ends now.
 */
void nd_session_revoke_locked(struct nd_server *s, struct nd_session *ss,
			      const char *why);

/* state.c: the write-epoch state file of a read-write export. */
/* Loads (or creates) the state of x; -1 with a one-line reason. */
int nd_state_open(struct nd_exp *x, const char *dir, char *err,
		  size_t errlen);
/* Stores x's counters durably if they changed; x->state_lock held. */
int nd_state_store_locked(struct nd_server *s, struct nd_exp *x);

/* export.c: the export table. */
/* An export of ce, not opened yet (refs 1); NULL: out of memory. */
struct nd_exp *nd_exp_new(const struct nd_cfg_export *ce);
/*
 * Opens x's backend and write-epoch state; -1 with a one-line reason. The
 * caller sets x->open (under sess_lock once others may see x).
 */
int nd_exp_open(struct nd_exp *x, const char *state_dir, char *err,
		size_t errlen);
/* Drops a reference (sess_lock held); the last closes and frees x. */
void nd_exp_put_locked(struct nd_server *s, struct nd_exp *x);
/* Closes and frees an export nobody else references. */
void nd_exp_free(struct nd_exp *x);
/* Does x serve the export ce describes (same name, path and mode)? */
bool nd_exp_serves(const struct nd_exp *x, const struct nd_cfg_export *ce);
/* Is path the file x has open? */
bool nd_exp_same_file(const struct nd_exp *x, const char *path);
/*
 * The export a client named, if identity may use it: ND_OK and *out, or
 * ND_ERR_NO_EXPORT, ND_ERR_ACCESS, ND_ERR_IO (not open), each logged with
 * the peer. Listener thread. For a cow export *out is the identity's
 * child (opened, and its overlay created, if it has none: then also
 * ND_ERR_BASE_CHANGED, ND_ERR_BUSY while an admin command holds the
 * identity, ND_ERR_IO); a child no session ends up holding is closed.
 */
uint16_t nd_exp_lookup(struct nd_server *s, const char *peer,
		       const char *identity, const char *name,
		       struct nd_exp **out);
/*
 * Copy-on-write: an admin command (nd_server_overlay) holds identity on
 * the cow export x while it works on the overlay file: new sessions of
 * identity get busy until nd_exp_cow_unhold. If identity has a session:
 * without force fails ("identity 'ID' is attached; --force ends its
 * session"), with force revokes it (nd_session_revoke_locked) and waits
 * up to timeout_ms for its overlay to be closed. 0, or -1 with one line
 * in err (then nothing is held). Takes sess_lock.
 */
int nd_exp_cow_hold(struct nd_server *s, struct nd_exp *x,
		    const char *identity, bool force, int timeout_ms,
		    char *err, size_t errlen);
void nd_exp_cow_unhold(struct nd_server *s, struct nd_exp *x,
		       const char *identity);
/* The open child of cow export x for identity, or NULL; sess_lock held. */
struct nd_exp *nd_exp_cow_child_locked(struct nd_exp *x,
				       const char *identity);
/*
 * export_cow.c, for nd_exp_lookup: identity's child of cow export x, a
 * reference more (the caller drops it with nd_exp_put_locked once the
 * session holds its own), opened if it was not. ND_OK and *out, or
 * ND_ERR_BUSY / ND_ERR_BASE_CHANGED / ND_ERR_IO, logged with peer.
 */
uint16_t nd_exp_cow_child_get(struct nd_server *s, const char *peer,
			      const char *identity, struct nd_exp *x,
			      struct nd_exp **out);
/* Does an overlay command hold identity on x? sess_lock held. */
bool nd_exp_cow_held_locked(const struct nd_exp *x, const char *identity);
/* Has identity a child (a session) on x, or is it held? sess_lock held. */
bool nd_exp_cow_busy_locked(struct nd_exp *x, const char *identity);

/* Opens every export of s->cfg into s->exps; -1 with a one-line reason. */
int nd_exps_create(struct nd_server *s, char *err, size_t errlen);
/* Drops the table's references (s->exps freed). */
void nd_exps_destroy(struct nd_server *s);

/* list.c: the list-exports answer (PROTOCOL.md "Export list"). */
/*
 * The ExportList of the exports identity may use, in a new buffer
 * (*len bytes); NULL: out of memory. Listener thread.
 */
uint8_t *nd_list_build(struct nd_server *s, const char *identity,
		       size_t *len);

/* listen.c: the listening sockets. */
/* Binds every address of s->cfg (none: all, IPv6 and IPv4). */
int nd_listen_open(struct nd_server *s, char *err, size_t errlen);
void nd_listen_close(struct nd_server *s);

/* reload.c: the listener thread applies a new configuration file. */
void nd_reload_apply(struct nd_server *s);

/* handshake.c, at a reload (listener thread): */
/*
 * Drops the pending handshakes past their ServerHello whose identity's
 * key differs between old and s->cfg: they proved the old key.
 */
void nd_hs_rekey(struct nd_server *s, const struct nd_config *old);

#endif /* ND_SRV_INTERNAL_H */
