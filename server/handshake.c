// SPDX-License-Identifier: MIT
/*
 * The server side of the handshake (docs/PROTOCOL.md §1), for every
 * connection between accept and SessionInfo, driven by the listener thread
 * over non-blocking sockets (nd_server_run's epoll loop). A pending
 * handshake holds no thread and no buffer beyond its small slot in a fixed
 * pool: the ClientHello as received, the ClientFinish record, and between
 * the two the record secrets and the expected client proof. The server's
 * ephemeral key lives only while the ServerHello is made (forward secrecy:
 * nothing in the pool reproduces a key once the slot is wiped). Once the
 * client has proven the key
 * the connection gets its threads and buffers (nd_conn_start), and its own
 * thread sends the SessionInfo (nd_hs_send_session_info).
 *
 * Budget (docs/DESIGN.md "Shutdown and limits"): at most max_pending
 * handshakes, and max_pending_src per source address (IPv4 address or IPv6
 * /64). A newcomer over budget evicts the oldest handshake of its own
 * source, or, when only the total is full, the oldest of the source with
 * the most pending: a flood then only recycles its own slots and cannot
 * lock out a client from another address.
 *
 * Steps: hs_read_client_hello → hs_send_server_hello → hs_check_client_finish
 * → nd_admit (admit.c). Nothing but the ServerHello leaves before the
 * client has proven the key; every refusal but the version (unknown export
 * included) goes in the authenticated SessionInfo.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "log.h"

#define ND_CH_IDENTITY_LEN_OFF	48
#define ND_CH_EXPORT_LEN_OFF	49
#define ND_CF_RECORD_LEN	(ND_RECORD_HDR_LEN + ND_CLIENT_FINISH_LEN + \
				 ND_TAG_LEN)
/* Failed handshakes logged one by one per interval; the rest are counted. */
#define ND_HS_LOG_BURST		5
#define ND_HS_LOG_INTERVAL_MS	10000

enum hs_step { HS_CLIENT_HELLO, HS_CLIENT_FINISH };
/* The ClientHello's parts, read one after the other. */
enum hs_hello_part { HS_CH_FIXED, HS_CH_NAMES, HS_CH_TAIL, HS_CH_EXT };

/* Why an unauthenticated handshake ended (the summary line's counters). */
enum hs_failure {
	HS_F_TIMEOUT,
	HS_F_EVICTED,
	HS_F_CLOSED,
	HS_F_MALFORMED,
	HS_F_REFUSED,		/* wrong version or export: a status was sent */
	HS_F_AUTH,
	HS_F__COUNT
};

static const char *const failure_names[HS_F__COUNT] = {
	"timed out", "evicted", "closed", "malformed", "refused",
	"authentication failed",
};

struct nd_hs {
	struct nd_hs *older, *newer;	/* age list; the free list uses newer */
	int fd;				/* -1: slot free */
	int src;			/* index in nd_hs_pool.src */
	enum hs_step step;
	enum hs_hello_part part;
	int64_t deadline;
	size_t have, need;		/* bytes of the current message */
	uint8_t hello[ND_CLIENT_HELLO_MAX];
	/*
	 * After the ServerHello: OKM with the finish keys zeroed (traffic
	 * secrets and IVs for nd_crypto_init) and the expected client_verify.
	 * Secret: wiped with the slot.
	 */
	uint8_t okm[ND_OKM_LEN];
	uint8_t client_verify[ND_HASH_LEN];
	uint8_t finish[ND_CF_RECORD_LEN];	/* decrypted in place: wiped */
	char peer[64];
};

/* A source address and how many pending handshakes it has. */
struct hs_source {
	uint8_t key[16];
	int n;				/* 0: entry free */
};

struct nd_hs_pool {
	struct nd_hs *slots;
	struct hs_source *src;		/* at most one per slot */
	struct nd_hs *free;
	struct nd_hs *oldest, *newest;
	int max, max_src;

	/* Rate-limited failure log. */
	int64_t log_since;
	int logged;
	unsigned long suppressed[HS_F__COUNT];
};

/* ---- budget ---- */

int nd_hs_init(struct nd_server *s, int max, int max_src)
{
	struct nd_hs_pool *p = calloc(1, sizeof(*p));

	if (!p)
		return -1;
	p->slots = calloc((size_t)max, sizeof(*p->slots));
	p->src = calloc((size_t)max, sizeof(*p->src));
	if (!p->slots || !p->src) {
		free(p->slots);
		free(p->src);
		free(p);
		return -1;
	}
	p->max = max;
	p->max_src = max_src < max ? max_src : max;
	for (int i = max - 1; i >= 0; i--) {
		p->slots[i].fd = -1;
		p->slots[i].newer = p->free;
		p->free = &p->slots[i];
	}
	p->log_since = nd_now_ms();
	s->hs = p;
	return 0;
}

void nd_hs_destroy(struct nd_server *s)
{
	struct nd_hs_pool *p = s->hs;

	if (!p)
		return;
	nd_hs_close_all(s);
	free(p->slots);
	free(p->src);
	free(p);
	s->hs = NULL;
}

/* IPv4 address (also v4-mapped), IPv6 /64: one budget per source. */
static void source_key(const struct sockaddr_storage *ss, uint8_t key[16])
{
	memset(key, 0, 16);
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const void *)ss;

		if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
			memcpy(key + 12, &a->sin6_addr.s6_addr[12], 4);
		} else {
			key[0] = 6;
			memcpy(key + 8, a->sin6_addr.s6_addr, 8);
		}
	} else if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const void *)ss;

		memcpy(key + 12, &a->sin_addr, 4);
	}
}

static void format_peer(const struct sockaddr_storage *ss, char *out,
			size_t n)
{
	char host[INET6_ADDRSTRLEN + 2] = "?";
	unsigned int port = 0;

	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const void *)ss;

		port = ntohs(a->sin6_port);
		if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
			inet_ntop(AF_INET, &a->sin6_addr.s6_addr[12], host,
				  sizeof(host));
		} else {
			host[0] = '[';
			inet_ntop(AF_INET6, &a->sin6_addr, host + 1,
				  sizeof(host) - 2);
			strcat(host, "]");
		}
	} else if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const void *)ss;

		port = ntohs(a->sin_port);
		inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
	}
	snprintf(out, n, "%s:%u", host, port);
}

static int source_get(struct nd_hs_pool *p, const uint8_t key[16])
{
	int free_idx = -1;

	for (int i = 0; i < p->max; i++) {
		if (p->src[i].n && memcmp(p->src[i].key, key, 16) == 0)
			return i;
		if (!p->src[i].n && free_idx < 0)
			free_idx = i;
	}
	/* A slot is free, so a source entry is too. */
	memcpy(p->src[free_idx].key, key, 16);
	return free_idx;
}

/*
 * The oldest pending handshake of source src, or with src -1 the oldest of
 * those whose source has the most pending.
 */
static struct nd_hs *oldest_of(struct nd_hs_pool *p, int src)
{
	struct nd_hs *h;
	int most = 0;

	if (src < 0)
		for (int i = 0; i < p->max; i++)
			if (p->src[i].n > most)
				most = p->src[i].n;
	for (h = p->oldest; h; h = h->newer)
		if (src < 0 ? p->src[h->src].n == most : h->src == src)
			return h;
	return NULL;
}

/* Frees h's slot; its fd has been closed or handed on. */
static void hs_release(struct nd_server *s, struct nd_hs *h)
{
	struct nd_hs_pool *p = s->hs;

	if (h->older)
		h->older->newer = h->newer;
	else
		p->oldest = h->newer;
	if (h->newer)
		h->newer->older = h->older;
	else
		p->newest = h->older;
	p->src[h->src].n--;
	nd_wipe(h->finish, sizeof(h->finish));
	nd_wipe(h->okm, sizeof(h->okm));
	nd_wipe(h->client_verify, sizeof(h->client_verify));
	h->fd = -1;
	h->older = NULL;
	h->newer = p->free;
	p->free = h;
	__atomic_sub_fetch(&s->npending, 1, __ATOMIC_RELAXED);
}

/* ---- rate-limited failure log ---- */

/*
 * Unauthenticated failures cost nothing to cause: the first few of each
 * interval are logged as they happen, the rest only counted in one summary
 * line at the end of the interval.
 */
__attribute__((format(printf, 4, 5)))
static void hs_fail(struct nd_server *s, struct nd_hs *h,
		    enum hs_failure why, const char *fmt, ...)
{
	struct nd_hs_pool *p = s->hs;

	if (p->logged < ND_HS_LOG_BURST) {
		char msg[256];
		va_list ap;

		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
		p->logged++;
		nd_log(why == HS_F_CLOSED ? ND_LOG_INFO : ND_LOG_WARN,
		       "client %s: %s", h->peer, msg);
	} else {
		p->suppressed[why]++;
	}
	close(h->fd);
	hs_release(s, h);
}

/* At the end of each interval (or at once with force). */
static void hs_log_summary(struct nd_server *s, int64_t now, bool force)
{
	struct nd_hs_pool *p = s->hs;
	unsigned long total = 0;
	char line[512];
	int n;

	if (!force && now - p->log_since < ND_HS_LOG_INTERVAL_MS)
		return;
	for (int i = 0; i < HS_F__COUNT; i++)
		total += p->suppressed[i];
	if (total) {
		n = snprintf(line, sizeof(line),
			     "%lu more failed handshakes in the last %lld s:",
			     total, (long long)(now - p->log_since) / 1000);
		for (int i = 0; i < HS_F__COUNT; i++)
			if (p->suppressed[i] && n < (int)sizeof(line))
				n += snprintf(line + n, sizeof(line) - n,
					      " %s %lu,", failure_names[i],
					      p->suppressed[i]);
		if (n > 0 && n < (int)sizeof(line) && line[n - 1] == ',')
			line[n - 1] = 0;
		nd_warn("%s (pending now %d)", line,
			__atomic_load_n(&s->npending, __ATOMIC_RELAXED));
	}
	memset(p->suppressed, 0, sizeof(p->suppressed));
	p->logged = 0;
	p->log_since = now;
}

static void hs_fail_io(struct nd_server *s, struct nd_hs *h, const char *what)
{
	if (errno == 0)
		hs_fail(s, h, HS_F_CLOSED, "closed during handshake (%s)",
			what);
	else
		hs_fail(s, h, HS_F_CLOSED, "handshake failed reading %s: %s",
			what, strerror(errno));
}

/* ---- socket I/O of a pending handshake (non-blocking) ---- */

/*
 * Reads what the current message still lacks into buf: 1 complete, 0 wait
 * for more, -1 failed (errno; 0 on EOF).
 */
static int hs_fill(struct nd_hs *h, uint8_t *buf)
{
	while (h->have < h->need) {
		ssize_t n = read(h->fd, buf + h->have, h->need - h->have);

		if (n > 0) {
			h->have += (size_t)n;
			continue;
		}
		if (n == 0) {
			errno = 0;
			return -1;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		return -1;
	}
	return 1;
}

/*
 * Small writes on a fresh socket fit its empty send buffer: anything short
 * of all of it is a failure, never a reason to wait.
 */
static int hs_write(int fd, const void *buf, size_t len)
{
	ssize_t n = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);

	if (n == (ssize_t)len)
		return 0;
	if (n >= 0)
		errno = EAGAIN;
	return -1;
}

/* The answer to another protocol version: version 2, status 9, zeros. */
static void send_hello_version(int fd)
{
	struct nd_server_hello h = { .version = ND_VERSION,
				     .status = ND_ERR_VERSION };
	uint8_t buf[ND_SERVER_HELLO_LEN];

	nd_server_hello_encode(buf, &h);
	(void)hs_write(fd, buf, sizeof(buf));
}

/* ---- the steps ---- */

enum hs_next {
	HS_WAIT,		/* more bytes to come */
	HS_DONE,		/* step complete, go on */
	HS_DROPPED,		/* failed: h is released */
};

/* The complete ClientHello in h->hello, decoded; identity/export as C strings. */
static size_t hello_decode(const struct nd_hs *h, struct nd_client_hello *ch,
			   char identity[ND_NAME_MAX + 1],
			   char export_name[ND_NAME_MAX + 1])
{
	size_t o = ND_CLIENT_HELLO_FIXED;

	o += (size_t)nd_client_hello_decode_fixed(h->hello, ch);
	nd_client_hello_decode_names(h->hello + ND_CLIENT_HELLO_FIXED, ch);
	nd_client_hello_decode_tail(h->hello + o, ch);
	o += ND_CLIENT_HELLO_TAIL;
	nd_client_hello_decode_ext(h->hello + o, ch);
	memcpy(identity, ch->identity, ch->identity_len);
	identity[ch->identity_len] = 0;
	memcpy(export_name, ch->export_name, ch->export_len);
	export_name[ch->export_len] = 0;
	return o + ch->ext_len;
}

static enum hs_next hs_malformed(struct nd_server *s, struct nd_hs *h,
				 const char *what)
{
	hs_fail(s, h, HS_F_MALFORMED, "%s, closing", what);
	return HS_DROPPED;
}

/*
 * Reads the ClientHello part by part: fixed part, names, share and ext_len,
 * extensions. A malformed one is closed without an answer; another version
 * gets the version answer (only the fixed part and names are read, which
 * every version shares).
 */
static enum hs_next hs_read_client_hello(struct nd_server *s, struct nd_hs *h)
{
	struct nd_client_hello ch;
	uint8_t *p = h->hello;
	int r, n;

	for (;;) {
		r = hs_fill(h, p);
		if (r == 0)
			return HS_WAIT;
		if (r < 0) {
			hs_fail_io(s, h, "client hello");
			return HS_DROPPED;
		}
		switch (h->part) {
		case HS_CH_FIXED:
			if (nd_get32(p) != ND_MAGIC)
				return hs_malformed(s, h,
					"not a netdisk client (bad magic)");
			n = nd_client_hello_decode_fixed(p, &ch);
			if (n < 0 && ch.version == ND_VERSION)
				return hs_malformed(s, h,
					"malformed client hello (name length)");
			if (n < 0) {
				/* Answer at once: the names cannot be read. */
				n = 0;
			}
			h->part = HS_CH_NAMES;
			h->need += (size_t)n;
			break;
		case HS_CH_NAMES:
			if (nd_get16(p + 4) != ND_VERSION) {
				send_hello_version(h->fd);
				hs_fail(s, h, HS_F_REFUSED,
					"unsupported protocol version %u",
					nd_get16(p + 4));
				return HS_DROPPED;
			}
			nd_client_hello_decode_fixed(p, &ch);
			if (nd_client_hello_decode_names(
				    p + ND_CLIENT_HELLO_FIXED, &ch) < 0)
				return hs_malformed(s, h,
					"invalid identity or export name");
			h->part = HS_CH_TAIL;
			h->need += ND_CLIENT_HELLO_TAIL;
			break;
		case HS_CH_TAIL:
			n = nd_client_hello_decode_tail(p + h->need -
							ND_CLIENT_HELLO_TAIL,
							&ch);
			if (n < 0)
				return hs_malformed(s, h,
					"client hello extension area over 512 bytes");
			h->part = HS_CH_EXT;
			h->need += (size_t)n;
			break;
		case HS_CH_EXT:
			n = ND_CLIENT_HELLO_FIXED + p[ND_CH_IDENTITY_LEN_OFF] +
			    p[ND_CH_EXPORT_LEN_OFF];
			ch.ext_len = nd_get16(p + n + ND_SHARE_LEN);
			/* Unknown extension types are ignored; framing counts. */
			if (nd_client_hello_decode_ext(p + n +
						       ND_CLIENT_HELLO_TAIL,
						       &ch) < 0)
				return hs_malformed(s, h,
					"client hello extensions badly framed");
			return HS_DONE;
		}
	}
}

/*
 * The log says whether the identity was unknown or its key wrong; the
 * wire never does. how: how it showed (the client gave up, or its proof
 * failed).
 */
static void hs_fail_auth(struct nd_server *s, struct nd_hs *h,
			 const char *how)
{
	struct nd_client_hello ch;
	char identity[ND_NAME_MAX + 1], export_name[ND_NAME_MAX + 1];

	hello_decode(h, &ch, identity, export_name);
	if (nd_config_key(&s->cfg, identity))
		hs_fail(s, h, HS_F_AUTH,
			"authentication failed (identity '%s': wrong key; %s)",
			identity, how);
	else
		hs_fail(s, h, HS_F_AUTH,
			"authentication failed (unknown identity '%s'; %s)",
			identity, how);
}

/*
 * ServerHello with a fresh key share and the server's key proof. The
 * ephemeral private key and dh are gone when this returns; what the
 * ClientFinish needs stays in h (record secrets, expected proof).
 */
static enum hs_next hs_send_server_hello(struct nd_server *s, struct nd_hs *h)
{
	uint8_t key[ND_KEY_LEN], eph[ND_SHARE_LEN], th[ND_HASH_LEN];
	uint8_t sh[ND_SERVER_HELLO_LEN];
	struct nd_server_hello shm = { .version = ND_VERSION };
	struct nd_client_hello ch;
	char identity[ND_NAME_MAX + 1], export_name[ND_NAME_MAX + 1];
	enum hs_next next = HS_DROPPED;
	size_t ch_len = hello_decode(h, &ch, identity, export_name);
	const uint8_t *psk = nd_config_key(&s->cfg, identity);

	/*
	 * The key is looked up by identity. An unknown identity gets a random
	 * key, so on the wire it looks exactly like a wrong key; the random
	 * bytes are drawn for every identity, so the work is the same too.
	 */
	if (nd_random(key, sizeof(key)) < 0)
		goto fail;
	if (psk)
		memcpy(key, psk, sizeof(key));
	if (nd_random(shm.random, sizeof(shm.random)) < 0 ||
	    nd_x25519_keygen(eph, shm.share) < 0) {
		nd_err("client %s: no randomness or X25519 key", h->peer);
		goto fail;
	}
	nd_server_hello_encode(sh, &shm);
	/*
	 * An OpenSSL failure (out of memory) costs this connection only, never
	 * the server and its sessions; nothing is sent without a real proof.
	 */
	if (nd_transcript_checked(h->hello, ch_len, sh, th) < 0) {
		nd_err("client %s: SHA-256 failed, closing", h->peer);
		goto fail;
	}
	/* Wipes eph. Fails on a low-order client share (dh all zero). */
	if (nd_key_exchange(eph, ch.share, key, ch.random, shm.random, th,
			    h->okm) < 0) {
		hs_fail(s, h, HS_F_MALFORMED,
			"client key share rejected (low-order point), closing");
		goto out;
	}
	if (nd_finish_mac_checked(h->okm + ND_OKM_S_FINISH, th,
				  sh + ND_SERVER_HELLO_TH_LEN) < 0 ||
	    nd_finish_mac_checked(h->okm + ND_OKM_C_FINISH, th,
				  h->client_verify) < 0) {
		nd_err("client %s: HMAC failed, closing", h->peer);
		goto fail;
	}
	nd_wipe(h->okm + ND_OKM_S_FINISH, 2 * ND_HASH_LEN);
	if (hs_write(h->fd, sh, sizeof(sh)) < 0) {
		hs_fail(s, h, HS_F_CLOSED,
			"handshake failed sending server hello: %s",
			strerror(errno));
		goto out;
	}
	h->step = HS_CLIENT_FINISH;
	h->have = 0;
	h->need = ND_RECORD_HDR_LEN;
	next = HS_DONE;
	goto out;
fail:
	close(h->fd);
	hs_release(s, h);
out:
	nd_wipe(key, sizeof(key));
	nd_wipe(eph, sizeof(eph));
	nd_wipe(th, sizeof(th));
	return next;
}

/*
 * Reads and checks the ClientFinish: a record of exactly 80 bytes of body
 * that opens with the c2s key and carries client_verify (compared in
 * constant time). On HS_DONE crypto is set up and cf decoded; both are the
 * caller's to wipe.
 */
static enum hs_next hs_check_client_finish(struct nd_server *s,
					   struct nd_hs *h,
					   struct nd_crypto *crypto,
					   struct nd_client_finish *cf)
{
	uint8_t *rec = h->finish;
	enum hs_next next = HS_DROPPED;
	int r;

	for (;;) {
		r = hs_fill(h, rec);
		if (r == 0)
			return HS_WAIT;
		if (r < 0 && errno == 0 && h->have == 0) {
			/* What a client does when our key proof fails. */
			hs_fail_auth(s, h,
				     "client rejected the server's key proof");
			return HS_DROPPED;
		}
		if (r < 0) {
			hs_fail_io(s, h, "client finish");
			return HS_DROPPED;
		}
		if (h->need == ND_CF_RECORD_LEN)
			break;
		if (nd_get32(rec) != ND_CLIENT_FINISH_LEN + ND_TAG_LEN) {
			hs_fail(s, h, HS_F_MALFORMED,
				"malformed client finish record, closing");
			return HS_DROPPED;
		}
		h->need = ND_CF_RECORD_LEN;
	}

	/*
	 * An unknown identity's record is opened like any other (under the
	 * random key it fails): closing it at once would take measurably less
	 * time than a wrong key and tell a prober which identities exist.
	 */
	if (nd_crypto_init(crypto, h->okm, false) < 0) {
		nd_err("client %s: key setup failed", h->peer);
		close(h->fd);
		hs_release(s, h);
		goto out;
	}
	if (nd_open(&crypto->rx, rec, rec + ND_RECORD_HDR_LEN,
		    ND_CLIENT_FINISH_LEN,
		    rec + ND_RECORD_HDR_LEN + ND_CLIENT_FINISH_LEN) < 0) {
		nd_crypto_free(crypto);
		hs_fail_auth(s, h, "client proof failed");
		goto out;
	}
	nd_client_finish_decode(rec + ND_RECORD_HDR_LEN, cf);
	if (!nd_equal(cf->verify, h->client_verify, ND_HASH_LEN)) {
		nd_crypto_free(crypto);
		hs_fail_auth(s, h, "client proof failed");
		goto out;
	}
	next = HS_DONE;
out:
	nd_wipe(rec, ND_CF_RECORD_LEN);
	return next;
}

/*
 * The client proved the key: the pending slot is done with, and what the
 * client gets is up to admit.c (which takes fd and crypto).
 */
static void hs_authenticated(struct nd_server *s, struct nd_hs *h,
			     struct nd_crypto *crypto,
			     const struct nd_client_finish *cf)
{
	struct nd_admit a = { .fd = h->fd, .deadline = h->deadline };

	hello_decode(h, &a.ch, a.identity, a.export_name);
	memcpy(a.peer, h->peer, sizeof(a.peer));
	epoll_ctl(s->epfd, EPOLL_CTL_DEL, h->fd, NULL);
	h->fd = -1;
	hs_release(s, h);
	nd_admit(s, &a, crypto, cf);
	nd_wipe(&a.ch, sizeof(a.ch));
}

/* ---- driver, called by the listener thread (server.c) ---- */

static void hs_evict(struct nd_server *s, struct nd_hs *h, const char *why)
{
	hs_fail(s, h, HS_F_EVICTED, "handshake dropped: %s", why);
}

void nd_hs_add(struct nd_server *s, int fd,
	       const struct sockaddr_storage *from)
{
	struct nd_hs_pool *p = s->hs;
	struct epoll_event ev = { .events = EPOLLIN };
	struct nd_hs *h;
	uint8_t key[16];
	int src;

	source_key(from, key);
	src = -1;
	for (int i = 0; i < p->max; i++)
		if (p->src[i].n && memcmp(p->src[i].key, key, 16) == 0)
			src = i;
	/* Over budget: make room rather than turn the newcomer away. */
	if (src >= 0 && p->src[src].n >= p->max_src)
		hs_evict(s, oldest_of(p, src),
			 "too many pending handshakes from its address");
	else if (!p->free)
		hs_evict(s, oldest_of(p, -1), "too many pending handshakes");

	h = p->free;
	p->free = h->newer;
	h->fd = fd;
	h->src = source_get(p, key);
	p->src[h->src].n++;
	h->step = HS_CLIENT_HELLO;
	h->part = HS_CH_FIXED;
	h->have = 0;
	h->need = ND_CLIENT_HELLO_FIXED;
	h->deadline = nd_now_ms() + s->handshake_timeout_ms;
	format_peer(from, h->peer, sizeof(h->peer));
	h->older = p->newest;
	h->newer = NULL;
	if (p->newest)
		p->newest->newer = h;
	else
		p->oldest = h;
	p->newest = h;
	__atomic_add_fetch(&s->npending, 1, __ATOMIC_RELAXED);
	nd_debug("client %s: connected", h->peer);

	ev.data.ptr = h;
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		nd_err("client %s: epoll: %s, closing", h->peer,
		       strerror(errno));
		close(fd);
		hs_release(s, h);
		return;
	}
	/* The ClientHello is often there already. */
	nd_hs_input(s, h);
}

bool nd_hs_evict_oldest(struct nd_server *s)
{
	struct nd_hs *h = oldest_of(s->hs, -1);

	if (!h)
		return false;
	hs_evict(s, h, "out of file descriptors");
	return true;
}

void nd_hs_input(struct nd_server *s, struct nd_hs *h)
{
	struct nd_crypto crypto = { 0 };
	struct nd_client_finish cf;

	if (h->fd < 0)
		return;		/* released earlier in this batch of events */
	if (h->step == HS_CLIENT_HELLO) {
		if (hs_read_client_hello(s, h) != HS_DONE)
			return;
		if (hs_send_server_hello(s, h) != HS_DONE)
			return;
	}
	if (hs_check_client_finish(s, h, &crypto, &cf) == HS_DONE)
		hs_authenticated(s, h, &crypto, &cf);
	nd_wipe(&cf, sizeof(cf));
}

int nd_hs_timeout_ms(struct nd_server *s, int max_ms)
{
	struct nd_hs_pool *p = s->hs;
	int64_t now = nd_now_ms(), t = max_ms;

	if (p->oldest && p->oldest->deadline - now < t)
		t = p->oldest->deadline - now;
	if (p->log_since + ND_HS_LOG_INTERVAL_MS - now < t)
		t = p->log_since + ND_HS_LOG_INTERVAL_MS - now;
	return t < 0 ? 0 : (int)t;
}

void nd_hs_expire(struct nd_server *s)
{
	struct nd_hs_pool *p = s->hs;
	int64_t now = nd_now_ms();

	/* One timeout for all: the oldest is the first to expire. */
	while (p->oldest && p->oldest->deadline <= now)
		hs_fail(s, p->oldest, HS_F_TIMEOUT, "handshake timed out");
	hs_log_summary(s, now, false);
}

void nd_hs_close_all(struct nd_server *s)
{
	struct nd_hs_pool *p = s->hs;

	while (p->oldest) {
		struct nd_hs *h = p->oldest;

		close(h->fd);
		hs_release(s, h);
	}
	hs_log_summary(s, nd_now_ms(), true);
}

static bool same_key(const uint8_t *a, const uint8_t *b)
{
	if (!a || !b)
		return a == b;
	return nd_equal(a, b, ND_KEY_LEN);
}

void nd_hs_rekey(struct nd_server *s, const struct nd_config *old)
{
	struct nd_hs *h, *next;

	for (h = s->hs->oldest; h; h = next) {
		struct nd_client_hello ch;
		char identity[ND_NAME_MAX + 1], export_name[ND_NAME_MAX + 1];

		next = h->newer;
		if (h->step != HS_CLIENT_FINISH)
			continue;
		hello_decode(h, &ch, identity, export_name);
		if (same_key(nd_config_key(old, identity),
			     nd_config_key(&s->cfg, identity)))
			continue;
		nd_info("client %s (identity '%s'): handshake dropped: its key changed in the reload",
			h->peer, identity);
		close(h->fd);
		hs_release(s, h);
	}
}
