/* SPDX-License-Identifier: MIT */
/*
 * libnetdisk internal: one connection and its handshake, as nd_client_open
 * and nd_client_list_exports make them (connect, retries, error text).
 */
#ifndef ND_CONNECT_H
#define ND_CONNECT_H

#include <stddef.h>
#include <stdint.h>

#include "nd_wire.h"
#include "url.h"

struct nd_connect {
	/* in */
	const struct nd_url *url;
	struct nd_client_params p;	/* p.timeout_ms bounds each step */
	unsigned int attempts;		/* connections closed in the handshake */
	uint8_t *list;			/* ask for the export list (ND_LIST_REC_MAX) */
	/* out */
	int fd;
	struct nd_crypto cr;
	struct nd_session_info info;
	enum nd_hs_result hs;		/* ND_HS_OK or ND_HS_LIST on success */
	size_t list_len;
	uint16_t status;		/* server status when ND_CE_REFUSED */
};

/*
 * Connects and runs the handshake, retrying (epoch 1, 2, ... for a session;
 * always 1 for a list) a connection the server closes during it. Returns 0
 * with k->fd open and k->cr keyed (ND_HS_OK) or k->list filled
 * (ND_HS_LIST), else an ND_CE_* value with a one-line reason in err and
 * nothing left open.
 */
int nd_connect_handshake(struct nd_connect *k, char *err, size_t errlen);

/* CLOCK_MONOTONIC in milliseconds. */
long long nd_mono_ms(void);

/* printf into err (if any); returns rc. */
int nd_fail(char *err, size_t errlen, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif /* ND_CONNECT_H */
