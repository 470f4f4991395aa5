/* SPDX-License-Identifier: MIT */
/* libnetdisk internals shared between the lib/ sources; not part of the API. */
#ifndef ND_INTERNAL_H
#define ND_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "netdisk_proto.h"

/* Failure-reporting variants of the void functions in nd_wire.h. 0 or -1. */
int nd_hkdf_extract(const uint8_t *salt, size_t salt_len,
		    const uint8_t *ikm, size_t ikm_len, uint8_t prk[ND_HASH_LEN]);
int nd_hkdf_expand(const uint8_t prk[ND_HASH_LEN], const uint8_t *info,
		   size_t info_len, uint8_t *out, size_t out_len);
int nd_hmac(const uint8_t key[ND_HASH_LEN], const uint8_t *msg, size_t len,
	    uint8_t out[ND_HASH_LEN]);
int nd_traffic_key_checked(const uint8_t traffic[ND_KEY_LEN],
			   uint8_t key[ND_KEY_LEN]);
int nd_traffic_next_checked(const uint8_t traffic[ND_KEY_LEN],
			    uint8_t next[ND_KEY_LEN]);

#endif /* ND_INTERNAL_H */
