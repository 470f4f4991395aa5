/* SPDX-License-Identifier: MIT */
/*
 * Overlay administration (netdiskd(8) OVERLAYS): overlay.c answers the
 * control socket's overlay commands on a running server (nd_server_overlay
 * in control.h), overlay_cmd.c is `netdiskd overlay`, which asks it or,
 * with no server running, works on the files itself.
 */
#ifndef ND_SRV_OVERLAY_H
#define ND_SRV_OVERLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "cow.h"

/* Exit status of `netdiskd overlay check` finding damage or a changed base. */
#define ND_OVL_EXIT_DAMAGED	4

/* nd_overlay_print's mem when nobody can tell (no server asked). */
#define ND_OVL_MEM_UNKNOWN	((size_t)-1)
/*
 * One overlay's line of the `overlays` answer and of `netdiskd overlay
 * list` (control.h); mem is printed only if attached and known.
 */
void nd_overlay_print(FILE *out, const char *export,
		      const struct nd_cow_info *in, bool attached, size_t mem);

/* An export or identity name (1-64 of [A-Za-z0-9._-]). */
bool nd_overlay_name_ok(const char *name);
/* A merge's output as the control socket takes it: absolute, no blanks. */
bool nd_overlay_output_ok(const char *path);

/*
 * `netdiskd overlay list|reset|merge|check ...` (argv[0] is "overlay"):
 * results to out, one-line errors to errout. Returns the exit status:
 * 0, 1 error, 2 usage, ND_OVL_EXIT_DAMAGED.
 */
int nd_overlay_cmd(int argc, char **argv, FILE *out, FILE *errout);

#endif /* ND_SRV_OVERLAY_H */
