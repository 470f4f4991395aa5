// SPDX-License-Identifier: MIT
/*
 * The write-epoch state of a read-write export (PROTOCOL.md "No silent
 * change of writer"): the counters reserved and written, kept durably in
 * DIR/<export id in hex>.state. Replaced whole (temporary file, fsync,
 * rename, fsync of the directory), so a crash leaves the old or the new
 * contents, never a mix. One open export per read-write file (its file
 * is locked), so one writer per state file.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "log.h"

#define ND_STATE_HEADER	"netdisk write epochs 1\n"
#define ND_STATE_HINT	" (a read-write export needs a writable --state-dir)"

/* Replaces the file with the counters; -1 with errno and what failed. */
static int state_write(const char *dir, const char *path, uint64_t reserved,
		       uint64_t written, const char **what)
{
	char tmp[4096 + 8], buf[128];
	int fd, dfd, n, e;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	n = snprintf(buf, sizeof(buf), ND_STATE_HEADER "reserved %" PRIu64
		     "\nwritten %" PRIu64 "\n", reserved, written);
	*what = "create";
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	*what = "write";
	if (nd_write_full(fd, buf, (size_t)n) < 0 || fsync(fd) < 0) {
		e = errno;
		close(fd);
		unlink(tmp);
		errno = e;
		return -1;
	}
	if (close(fd) < 0) {
		e = errno;
		unlink(tmp);
		errno = e;
		return -1;
	}
	*what = "rename";
	if (rename(tmp, path) < 0) {
		e = errno;
		unlink(tmp);
		errno = e;
		return -1;
	}
	/* The rename itself must survive a crash. */
	*what = "sync the directory of";
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -1;
	if (fsync(dfd) < 0) {
		e = errno;
		close(dfd);
		errno = e;
		return -1;
	}
	close(dfd);
	return 0;
}

int nd_state_store_locked(struct nd_server *s, struct nd_exp *x)
{
	struct nd_wstate *ws = &x->ws;
	uint64_t reserved, written;
	const char *what;

	if (!ws->enabled)
		return 0;
	pthread_mutex_lock(&s->sess_lock);
	reserved = ws->reserved;
	written = ws->written;
	pthread_mutex_unlock(&s->sess_lock);
	if (reserved == ws->stored_reserved && written == ws->stored_written)
		return 0;
	if (state_write(ws->dir, ws->path, reserved, written, &what) < 0) {
		nd_err("state file %s: cannot %s it: %s", ws->path, what,
		       strerror(errno));
		return -1;
	}
	ws->stored_reserved = reserved;
	ws->stored_written = written;
	return 0;
}

/* Parses the file's contents: exactly what state_write writes. */
static int state_parse(const char *buf, uint64_t *reserved,
		       uint64_t *written)
{
	const char *p = buf;
	char *end;
	size_t hl = strlen(ND_STATE_HEADER);

	if (strncmp(p, ND_STATE_HEADER, hl))
		return -1;
	p += hl;
	if (strncmp(p, "reserved ", 9) || p[9] < '0' || p[9] > '9')
		return -1;
	errno = 0;
	*reserved = strtoull(p + 9, &end, 10);
	if (errno || strncmp(end, "\nwritten ", 9) || end[9] < '0' ||
	    end[9] > '9')
		return -1;
	p = end + 9;
	*written = strtoull(p, &end, 10);
	if (errno || strcmp(end, "\n") || *written > *reserved)
		return -1;
	return 0;
}

int nd_state_open(struct nd_exp *x, const char *dir, char *err,
		  size_t errlen)
{
	struct nd_wstate *ws = &x->ws;
	char hex[2 * ND_EXPORT_ID_LEN + 1], buf[256];
	struct stat st;
	const char *what;
	ssize_t n;
	int fd, rc;

	if (x->e.read_only)
		return 0;	/* nobody writes it: written stays 0 */
	if (!dir || !*dir) {
		snprintf(err, errlen, "a read-write export needs a state directory");
		return -1;
	}
	for (int i = 0; i < ND_EXPORT_ID_LEN; i++)
		snprintf(hex + 2 * i, 3, "%02x", x->e.id[i]);
	rc = snprintf(ws->dir, sizeof(ws->dir), "%s", dir);
	if (rc < 0 || (size_t)rc >= sizeof(ws->dir) ||
	    (size_t)snprintf(ws->path, sizeof(ws->path), "%s/%s.state",
			     dir, hex) >= sizeof(ws->path)) {
		snprintf(err, errlen, "state directory %s: path too long", dir);
		return -1;
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errlen,
			 "state directory %s: cannot create it: %s" ND_STATE_HINT,
			 dir, strerror(errno));
		return -1;
	}
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen,
			 "state directory %s: not a directory" ND_STATE_HINT, dir);
		return -1;
	}

	fd = open(ws->path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n < 0) {
			snprintf(err, errlen, "state file %s: cannot read it: %s",
				 ws->path, strerror(errno));
			return -1;
		}
		buf[n] = 0;
		/* Never start over: old epochs would be handed out again. */
		if (state_parse(buf, &ws->reserved, &ws->written) < 0) {
			snprintf(err, errlen,
				 "state file %s: malformed (not netdiskd's write epochs); move it away only if no client may resume a session on this export",
				 ws->path);
			return -1;
		}
	} else if (errno == ENOENT) {
		uint32_t r;

		/*
		 * A new file starts at a random epoch, so a lost state file
		 * does not hand out the numbers of earlier sessions again.
		 */
		if (nd_random(&r, sizeof(r)) < 0) {
			snprintf(err, errlen, "no randomness");
			return -1;
		}
		ws->reserved = r;
		ws->written = 0;
	} else {
		snprintf(err, errlen, "state file %s: cannot open it: %s",
			 ws->path, strerror(errno));
		return -1;
	}
	/* Written once now: a state dir we cannot write fails at start. */
	if (state_write(ws->dir, ws->path, ws->reserved,
			ws->written, &what) < 0) {
		snprintf(err, errlen,
			 "state file %s: cannot %s it: %s" ND_STATE_HINT,
			 ws->path, what, strerror(errno));
		return -1;
	}
	ws->stored_reserved = ws->reserved;
	ws->stored_written = ws->written;
	ws->enabled = true;
	nd_info("export '%s': write epochs in %s (reserved %llu, written %llu)",
		x->e.name, ws->path, (unsigned long long)ws->reserved,
		(unsigned long long)ws->written);
	return 0;
}
