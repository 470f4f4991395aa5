// SPDX-License-Identifier: MIT
/* Client side of the handshake (docs/PROTOCOL.md section 1). */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "nd_wire.h"
#include "nd_internal.h"

static const char nd_default_name[] = "default";

static int nd_set_name(uint8_t *dst, uint8_t *dst_len, const char *name)
{
	size_t len;

	if (!name)
		name = nd_default_name;
	len = strlen(name);
	if (!nd_name_valid((const uint8_t *)name, len))
		return -1;
	memcpy(dst, name, len);
	*dst_len = (uint8_t)len;
	return 0;
}

static long long hs_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Reads exactly len bytes before deadline (ms, CLOCK_MONOTONIC; 0: none,
 * only the socket's own timeouts). Bytes arriving do not move the
 * deadline: a server trickling its answer cannot stretch the handshake.
 * 0, or -1 with errno (ETIMEDOUT; 0 at EOF).
 */
static int hs_read(int fd, void *buf, size_t len, long long deadline)
{
	uint8_t *p = buf;

	if (!deadline)
		return nd_read_full(fd, buf, len);
	while (len) {
		long long left = deadline - hs_now_ms();
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;
		int r;

		if (left <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		r = poll(&pfd, 1, left > INT_MAX ? INT_MAX : (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			errno = r ? errno : ETIMEDOUT;
			return -1;
		}
		n = read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0) {
			errno = 0;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Everything secret lives here so one wipe clears it. */
struct nd_hs_state {
	struct nd_client_hello ch;
	struct nd_server_hello sh;
	struct nd_client_finish cf;
	uint8_t eph[ND_SHARE_LEN];	/* ephemeral X25519 private key */
	uint8_t ch_buf[ND_CLIENT_HELLO_MAX];
	uint8_t sh_buf[ND_SERVER_HELLO_LEN];
	uint8_t th[ND_HASH_LEN];
	uint8_t okm[ND_OKM_LEN];
	uint8_t expect[ND_HASH_LEN];
	uint8_t cf_buf[ND_CLIENT_FINISH_LEN];
	uint8_t si_hdr[ND_RECORD_HDR_LEN];
	uint8_t si_buf[ND_SESSION_INFO_LEN + ND_TAG_LEN];
};

/*
 * The first server record of a list request: an ExportList into list, or a
 * 72-byte SessionInfo (the server ignored the extension, or refuses) into
 * s->si_buf. ND_HS_LIST, ND_HS_OK (SessionInfo to decode) or an error.
 */
static enum nd_hs_result nd_hs_read_list(int fd, struct nd_crypto *c,
					 struct nd_hs_state *s, uint8_t *list,
					 size_t *list_len, long long deadline)
{
	uint32_t len;

	if (hs_read(fd, s->si_hdr, sizeof(s->si_hdr), deadline))
		return ND_HS_IO;
	len = nd_get32(s->si_hdr);
	if (len < ND_TAG_LEN + ND_LIST_HDR_LEN || len > ND_LIST_REC_MAX)
		return ND_HS_PROTO;
	if (hs_read(fd, list, len, deadline))
		return ND_HS_IO;
	len -= ND_TAG_LEN;
	if (nd_open(&c->rx, s->si_hdr, list, len, list + len))
		return ND_HS_AUTH;
	if (nd_list_is(list, len)) {
		*list_len = len;
		return ND_HS_LIST;
	}
	if (len != ND_SESSION_INFO_LEN)
		return ND_HS_PROTO;
	memcpy(s->si_buf, list, len);
	return ND_HS_OK;
}

static enum nd_hs_result nd_hs_run(int fd, const struct nd_client_params *p,
				   struct nd_crypto *c,
				   struct nd_session_info *info,
				   uint16_t *status, struct nd_hs_state *s,
				   uint8_t *list, size_t *list_len)
{
	enum nd_hs_result r;
	long long deadline = 0;
	uint32_t want_payload;
	size_t ch_len;
	struct iovec v;

	if (!p || !p->psk ||
	    nd_set_name(s->ch.identity, &s->ch.identity_len, p->identity) ||
	    nd_set_name(s->ch.export_name, &s->ch.export_len, p->export_name)) {
		errno = EINVAL;
		return ND_HS_PROTO;
	}
	want_payload = p->max_payload ? p->max_payload : ND_DEFAULT_PAYLOAD;
	if (p->timeout_ms > 0)
		deadline = hs_now_ms() + p->timeout_ms;

	/* ClientHello with a fresh key share */
	s->ch.version = ND_VERSION;
	s->ch.flags = 0;
	s->ch.timestamp = (uint64_t)time(NULL);
	s->ch.ext_len = list ? nd_ext_list_exports(s->ch.ext) : 0;
	if (nd_random(s->ch.random, ND_RANDOM_LEN) ||
	    nd_x25519_keygen(s->eph, s->ch.share))
		return ND_HS_IO;
	ch_len = nd_client_hello_encode(s->ch_buf, &s->ch);
	if (nd_write_full(fd, s->ch_buf, ch_len))
		return ND_HS_IO;

	/*
	 * ServerHello, head first: "unsupported version" ends there (a
	 * version-1 server's answer is shorter than ours).
	 */
	if (hs_read(fd, s->sh_buf, ND_SERVER_HELLO_HEAD, deadline))
		return ND_HS_IO;
	if (nd_server_hello_decode_head(s->sh_buf, &s->sh))
		return ND_HS_PROTO;
	if (s->sh.status == ND_ERR_VERSION) {
		*status = s->sh.status;
		return ND_HS_REFUSED;
	}
	if (s->sh.version != ND_VERSION)
		return ND_HS_PROTO;
	if (hs_read(fd, s->sh_buf + ND_SERVER_HELLO_HEAD,
		    sizeof(s->sh_buf) - ND_SERVER_HELLO_HEAD, deadline))
		return ND_HS_IO;
	nd_server_hello_decode(s->sh_buf, &s->sh);

	/* The server proves the key first. */
	if (nd_transcript_checked(s->ch_buf, ch_len, s->sh_buf, s->th))
		return ND_HS_IO;
	if (nd_key_exchange(s->eph, s->sh.share, p->psk, s->ch.random,
			    s->sh.random, s->th, s->okm))
		return ND_HS_PROTO;	/* low-order share */
	if (nd_hmac(s->okm + ND_OKM_S_FINISH, s->th, ND_HASH_LEN, s->expect))
		return ND_HS_IO;
	if (!nd_equal(s->expect, s->sh.verify, ND_HASH_LEN))
		return ND_HS_AUTH;

	/* ClientFinish as record c2s #0 */
	if (nd_crypto_init(c, s->okm, true))
		return ND_HS_IO;
	if (nd_hmac(s->okm + ND_OKM_C_FINISH, s->th, ND_HASH_LEN, s->cf.verify))
		return ND_HS_IO;
	nd_wipe(s->okm, sizeof(s->okm));
	if (p->token)
		memcpy(s->cf.token, p->token, ND_TOKEN_LEN);
	s->cf.flags = p->flags;
	s->cf.max_payload = want_payload;
	s->cf.slot = p->slot;
	s->cf.epoch = p->epoch ? p->epoch : 1;
	s->cf.resume_writer = p->resume_writer;
	s->cf.resume_own = p->resume_own;
	nd_client_finish_encode(s->cf_buf, &s->cf);
	v.iov_base = s->cf_buf;
	v.iov_len = sizeof(s->cf_buf);
	if (nd_send_record(fd, &c->tx, &v, 1))
		return ND_HS_IO;

	if (list) {
		r = nd_hs_read_list(fd, c, s, list, list_len, deadline);
		if (r != ND_HS_OK)
			return r;
	} else {
		/* SessionInfo as record s2c #0: its length is fixed. */
		if (hs_read(fd, s->si_hdr, sizeof(s->si_hdr), deadline))
			return ND_HS_IO;
		if (nd_get32(s->si_hdr) != sizeof(s->si_buf))
			return ND_HS_PROTO;
		if (hs_read(fd, s->si_buf, sizeof(s->si_buf), deadline))
			return ND_HS_IO;
		if (nd_open(&c->rx, s->si_hdr, s->si_buf, ND_SESSION_INFO_LEN,
			    s->si_buf + ND_SESSION_INFO_LEN))
			return ND_HS_AUTH;
	}
	if (nd_session_info_decode(s->si_buf, info))
		return ND_HS_BAD_INFO;
	if (info->status != ND_OK) {
		*status = info->status;
		return ND_HS_REFUSED;
	}
	/* The server may lower our maximum, never raise it. */
	if (info->max_payload > want_payload)
		return ND_HS_BAD_INFO;
	return ND_HS_OK;
}

static enum nd_hs_result nd_hs(int fd, const struct nd_client_params *p,
				struct nd_crypto *c, struct nd_session_info *info,
				uint16_t *status, uint8_t *list,
				size_t *list_len)
{
	struct nd_hs_state s;
	struct nd_session_info info_local;
	uint16_t status_local;
	enum nd_hs_result r;

	if (!c) {
		errno = EINVAL;
		return ND_HS_PROTO;
	}
	if (!info)
		info = &info_local;
	if (!status)
		status = &status_local;
	*status = ND_OK;
	memset(&s, 0, sizeof(s));
	memset(info, 0, sizeof(*info));
	memset(c, 0, sizeof(*c));
	r = nd_hs_run(fd, p, c, info, status, &s, list, list_len);
	if (r != ND_HS_OK) {
		nd_crypto_free(c);
		/* No token of a session the caller will not use lingers. */
		nd_wipe(info->token, sizeof(info->token));
	}
	OPENSSL_cleanse(&s, sizeof(s));
	OPENSSL_cleanse(&info_local, sizeof(info_local));
	return r;
}

enum nd_hs_result nd_handshake_client(int fd, const struct nd_client_params *p,
				      struct nd_crypto *c,
				      struct nd_session_info *info,
				      uint16_t *status)
{
	return nd_hs(fd, p, c, info, status, NULL, NULL);
}

enum nd_hs_result nd_handshake_list(int fd, const struct nd_client_params *p,
				    struct nd_crypto *c,
				    struct nd_session_info *info,
				    uint16_t *status, uint8_t *list,
				    size_t *list_len)
{
	/* A new read-only session: all a server without the extension opens. */
	struct nd_client_params lp = {
		.flags = ND_CF_READ_ONLY, .slot = 0, .epoch = 1,
	};
	size_t len_local;

	if (!list) {
		errno = EINVAL;
		return ND_HS_PROTO;
	}
	if (!list_len)
		list_len = &len_local;
	*list_len = 0;
	if (p) {
		lp.psk = p->psk;
		lp.identity = p->identity;
		lp.export_name = p->export_name;
		lp.max_payload = p->max_payload;
		lp.timeout_ms = p->timeout_ms;
	}
	return nd_hs(fd, p ? &lp : NULL, c, info, status, list, list_len);
}
