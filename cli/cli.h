/* SPDX-License-Identifier: MIT */
/* netdisk CLI: one function per subcommand; main() in netdisk.c dispatches. */
#ifndef ND_CLI_H
#define ND_CLI_H

#include <stdbool.h>
#include <stddef.h>

struct nd_url;

/*
 * Exit codes, distinct per failure so scripts can tell them apart.
 * Shared by the userspace subcommands and the kernel ones.
 */
enum nd_exit {
	ND_EXIT_OK = 0,
	ND_EXIT_FAIL = 1,	/* other error */
	ND_EXIT_USAGE = 2,	/* bad arguments */
	ND_EXIT_CONNECT = 3,	/* cannot connect */
	ND_EXIT_AUTH = 4,	/* authentication failed (wrong key) */
	ND_EXIT_BUSY = 5,	/* export busy */
	ND_EXIT_READ_ONLY = 6,	/* export is read-only */
	ND_EXIT_RANGE = 7,	/* out of range */
	ND_EXIT_NO_EXPORT = 8,	/* no such export */
	ND_EXIT_NO_MODULE = 9,	/* kernel module not loaded */
	ND_EXIT_DEV_BUSY = 10,	/* device in use (detach without --force) */
	ND_EXIT_PROTO = 11,	/* protocol error / connection lost */
	ND_EXIT_ACCESS = 12,	/* access denied (identity not allowed) */
	ND_EXIT_BASE_CHANGED = 13, /* the overlay's base image changed */
};

/* Userspace subcommands (cli/netdisk.c and friends). */
int nd_cmd_keygen(int argc, char **argv);
int nd_cmd_info(int argc, char **argv);
int nd_cmd_exports(int argc, char **argv);
int nd_cmd_copy(int argc, char **argv);
int nd_cmd_bench(int argc, char **argv);

/* Kernel-driver subcommands (cli/kctl.c). */
int nd_cmd_attach(int argc, char **argv);
int nd_cmd_detach(int argc, char **argv);
int nd_cmd_list(int argc, char **argv);
/* netdisk= parameters of the kernel command line (cli/boot.c). */
int nd_cmd_boot(int argc, char **argv);
/* attach's work; *index: the new device's number (on ND_EXIT_OK). */
int nd_attach_argv(int argc, char **argv, long *index);
/* "HOST:PORT" ("[V6]:PORT") as the kernel's sysfs server attribute has. */
void nd_kctl_display(const struct nd_url *u, char *out, size_t len);

/* netdisktab entries (cli/tabctl.c): attach|detach --tab NAME. */
bool nd_tab_wanted(int argc, char **argv);
int nd_tab_attach(int argc, char **argv);
int nd_tab_detach(int argc, char **argv);

#endif /* ND_CLI_H */
