// SPDX-License-Identifier: MIT
/*
 * Listing a server's exports (PROTOCOL.md §1, "Export list"): one
 * handshake offering list-exports, whose answer is an ExportList instead
 * of a session, checked strictly before anything of it is used.
 */
#include "client.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "connect.h"

/* Connections tried while the server closes them during the handshake. */
#define LIST_HS_ATTEMPTS	3u

/* Why entry i at off did not decode (nd_list_entry_decode said -1). */
static int entry_error(const uint8_t *p, size_t len, size_t off, size_t i,
		       size_t n, char *err, size_t errlen)
{
	size_t nl = off < len ? p[off] : 0;
	const uint8_t *f;
	uint32_t flags, bs;
	uint64_t size;

	if (len - off < ND_LIST_ENTRY_FIXED ||
	    (nl >= 1 && nl <= ND_NAME_MAX && len - off < ND_LIST_ENTRY_FIXED + nl))
		return nd_fail(err, errlen, -1,
			       "count %zu, but the list ends in entry %zu", n,
			       i + 1);
	if (!nd_name_valid(p + off + 1, nl))
		return nd_fail(err, errlen, -1, "entry %zu: invalid name",
			       i + 1);
	f = p + off + 1 + nl;
	flags = nd_get32(f);
	size = nd_get64(f + 4);
	bs = nd_get32(f + 12);
	if (flags & ~ND_LIST_FLAGS_KNOWN)
		return nd_fail(err, errlen, -1,
			       "entry %zu: unknown flags 0x%x", i + 1,
			       flags & ~ND_LIST_FLAGS_KNOWN);
	if (bs != 512 && bs != 1024 && bs != 2048 && bs != 4096)
		return nd_fail(err, errlen, -1,
			       "entry %zu: block size %u not 512, 1024, 2048 or 4096",
			       i + 1, bs);
	if (!size || size >= ND_EXPORT_SIZE_LIMIT)
		return nd_fail(err, errlen, -1,
			       "entry %zu: size %llu not in 1..2^63-1", i + 1,
			       (unsigned long long)size);
	return nd_fail(err, errlen, -1,
		       "entry %zu: size %llu not a multiple of the block size %u",
		       i + 1, (unsigned long long)size, bs);
}

/* <0, 0, >0 as strcmp on the names: byte order, a prefix first. */
static int name_cmp(const struct nd_list_entry *a,
		    const struct nd_list_entry *b)
{
	size_t n = a->name_len < b->name_len ? a->name_len : b->name_len;
	int c = memcmp(a->name, b->name, n);

	return c ? c : (int)a->name_len - (int)b->name_len;
}

int nd_list_parse(const uint8_t *p, size_t len, struct nd_list_entry *out,
		  size_t *count, char *err, size_t errlen)
{
	size_t off = ND_LIST_HDR_LEN, i, n;
	int c;

	*count = 0;
	if (!nd_list_is(p, len))
		return nd_fail(err, errlen, -1, "not an export list");
	n = nd_get32(p + 4);
	if (n > ND_LIST_MAX)
		return nd_fail(err, errlen, -1,
			       "count %zu over the limit of %d", n, ND_LIST_MAX);
	for (i = 0; i < n; i++) {
		if (nd_list_entry_decode(p, len, &off, &out[i]))
			return entry_error(p, len, off, i, n, err, errlen);
		c = i ? name_cmp(&out[i - 1], &out[i]) : -1;
		if (c >= 0)
			return nd_fail(err, errlen, -1,
				       "entry %zu: '%.*s' %s", i + 1,
				       out[i].name_len, (const char *)out[i].name,
				       c ? "not in name order" : "listed twice");
	}
	if (off != len)
		return nd_fail(err, errlen, -1,
			       "%zu bytes after the last of %zu entries",
			       len - off, n);
	*count = n;
	return 0;
}

/*
 * The server ignored list-exports and opened a read-only session: ends it
 * with DISCONNECT and waits for the server to close, as nd_client_close
 * does, at most the timeout in all (a server trickling bytes cannot hold
 * it longer).
 */
static void end_session(struct nd_connect *k)
{
	uint8_t hdr[ND_REQ_HDR_LEN], b[256];
	struct nd_request req = { .op = ND_OP_DISCONNECT };
	struct iovec iov = { .iov_base = hdr, .iov_len = sizeof(hdr) };
	long long left, deadline = nd_mono_ms() + k->p.timeout_ms;
	struct pollfd pfd = { .fd = k->fd, .events = POLLIN };

	nd_request_encode(hdr, &req);
	if (!nd_send_record(k->fd, &k->cr.tx, &iov, 1)) {
		shutdown(k->fd, SHUT_WR);
		while ((left = deadline - nd_mono_ms()) > 0 &&
		       poll(&pfd, 1, (int)left) > 0 &&
		       read(k->fd, b, sizeof(b)) > 0)
			;
	}
	nd_crypto_free(&k->cr);
	close(k->fd);
	k->fd = -1;
}

int nd_client_list_exports(const struct nd_url *url,
			   const uint8_t key[ND_KEY_LEN],
			   const struct nd_client_opts *opts,
			   struct nd_list_entry **entries, size_t *count,
			   uint16_t *status, char *err, size_t errlen)
{
	struct nd_connect k = { .url = url };
	struct nd_list_entry *e = NULL;
	char why[160];
	size_t n;
	int rc;

	*entries = NULL;
	*count = 0;
	if (status)
		*status = 0;
	k.p.psk = key;
	k.p.identity = opts && opts->identity ? opts->identity : "default";
	k.p.export_name = url->export_name;
	k.p.timeout_ms = opts && opts->timeout_ms ? opts->timeout_ms : 30000;
	k.attempts = opts && opts->hs_attempts ? opts->hs_attempts :
						 LIST_HS_ATTEMPTS;
	k.list = malloc(ND_LIST_REC_MAX);
	e = malloc(ND_LIST_MAX * sizeof(*e));
	if (!k.list || !e) {
		rc = nd_fail(err, errlen, ND_CE_NOMEM, "out of memory");
		goto out;
	}
	rc = nd_connect_handshake(&k, err, errlen);
	if (rc) {
		if (status && rc == ND_CE_REFUSED)
			*status = k.status;
		goto out;
	}
	if (k.hs == ND_HS_OK) {
		end_session(&k);
		rc = nd_fail(err, errlen, ND_CE_NO_LIST,
			     "server cannot list exports (it answered with a session: an older netdiskd?)");
		goto out;
	}
	close(k.fd);
	if (nd_list_parse(k.list, k.list_len, e, &n, why, sizeof(why))) {
		rc = nd_fail(err, errlen, ND_CE_PROTO,
			     "protocol error: malformed export list from the server (%s)",
			     why);
		goto out;
	}
	*entries = e;
	*count = n;
	e = NULL;
out:
	free(e);
	free(k.list);
	nd_wipe(&k, sizeof(k));
	return rc;
}
