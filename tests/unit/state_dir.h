/* SPDX-License-Identifier: MIT */
/* Scratch state directories (--state-dir) for the unit tests' servers. */
#ifndef ND_TEST_STATE_DIR_H
#define ND_TEST_STATE_DIR_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* A fresh directory for the server's write-epoch state files. */
static inline void state_dir_make(char *dir, size_t n)
{
	snprintf(dir, n, "/tmp/nd-test-state-XXXXXX");
	assert_non_null(mkdtemp(dir));
}

/* Removes the state directory and the files in it. */
static inline void state_dir_remove(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char p[512];

	if (!d)
		return;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		unlink(p);
	}
	closedir(d);
	rmdir(dir);
}

#endif /* ND_TEST_STATE_DIR_H */
