/* SPDX-License-Identifier: MIT */
/*
 * netdiskd's control socket: a Unix stream socket (mode 0600, owner the
 * server's user) where a local admin asks the running server for its
 * state. One command line in, text out, then the server closes:
 *
 *   status\n   ->  the lines of nd_server_status(), then EOF
 *
 * Copy-on-write overlays (netdiskd(8) OVERLAYS; EXPORT must be a cow
 * export, IDENTITY a valid name, OUTPUT an absolute path without spaces):
 *
 *   overlays EXPORT\n  ->  one line per overlay in its directory:
 *       overlay EXPORT IDENTITY size=B allocated=B data=B zero=B
 *               created=UNIX last_used=UNIX|- attaches=N
 *               attached=yes|no mem=B|-          (one line)
 *     then "ok\n"
 *   overlay-reset EXPORT IDENTITY [force]\n  ->  "ok\n"; refused while
 *     the identity has a session unless force, which first ends it (as a
 *     reload revoking it would) and waits until its overlay is closed
 *   overlay-merge EXPORT IDENTITY OUTPUT\n  ->  "ok\n" (nd_cow_merge;
 *     refused while the identity has a session)
 *   overlay-check EXPORT IDENTITY\n  ->  nd_cow_check's report lines,
 *     then "ok\n" (consistent) or "damaged\n" (refused while attached)
 *
 * Any failure ends the answer with one line "error: MESSAGE\n" instead.
 * An unknown command gets "error: unknown command\n". `netdiskd status`
 * and `netdiskd overlay ...` are the client side.
 */
#ifndef ND_SRV_CONTROL_H
#define ND_SRV_CONTROL_H

#include <limits.h>
#include <stddef.h>
#include <stdio.h>

/* Longest command line, newline included: room for a merge's OUTPUT. */
#define ND_CTL_CMD_MAX		(PATH_MAX + 256)

struct nd_server;
struct nd_control;

/*
 * Listens on path (its directory is created 0755 if missing; a stale
 * socket left by a dead server is replaced, a live one refused) and
 * serves commands on a thread of its own. NULL with one line in err.
 */
struct nd_control *nd_control_start(struct nd_server *s, const char *path,
				     char *err, size_t errlen);
/* Stops the thread, closes and unlinks the socket. NULL is fine. */
void nd_control_stop(struct nd_control *ctl);

/*
 * Client side: sends cmd to the server at path and copies the answer to
 * out. 0, or -1 with one line in err ("cannot connect to PATH: ...").
 */
int nd_control_query(const char *path, const char *cmd, FILE *out,
		     char *err, size_t errlen);

/* nd_control_ask: nobody listens at path (nothing there, or stale). */
#define ND_CTL_NO_SERVER	(-2)
/*
 * For commands that may take long (an overlay merge) and answers the
 * caller reads itself: waits up to wait_ms for the answer (< 0: as long
 * as it takes) and copies it to out as it is, "error: " lines included.
 * 0, -1 with one line in err, or ND_CTL_NO_SERVER (err set as well).
 */
int nd_control_ask(const char *path, const char *cmd, FILE *out,
		   int wait_ms, char *err, size_t errlen);

/*
 * server.c: the server's state as text, one record per line, for the
 * control socket (format: netdiskd(8) STATUS):
 *
 *   export NAME path=PATH mode=ro|rw size=BYTES sessions=N writer=ID|-
 *   session ID identity=NAME export=NAME mode=ro|rw conns=N
 *           peers=ADDR[,ADDR...] age=SECONDS requests=N
 *           read_bytes=N written_bytes=N        (one line)
 *
 * Safe to call from any thread while the server runs.
 */
void nd_server_status(struct nd_server *s, FILE *out);

/*
 * server side of the overlay commands above: line is the command without
 * its newline; writes the whole answer (ending "ok", "damaged" or
 * "error: ...") to out. Runs on the control thread; may block for a
 * merge's duration.
 */
void nd_server_overlay(struct nd_server *s, const char *line, FILE *out);

#endif /* ND_SRV_CONTROL_H */
