// SPDX-License-Identifier: MIT
/*
 * Logging to stderr. Each message is formatted into one buffer and written
 * with a single write() so lines from concurrent threads never interleave.
 * Under systemd (JOURNAL_STREAM set) the prefix is the "<N>" priority the
 * journal understands; otherwise a readable "level: ".
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

int nd_log_level = ND_LOG_INFO;

static const char *const level_names[] = { "error", "warn", "info", "debug" };
static const char *const journal_prio[] = { "<3>", "<4>", "<6>", "<7>" };

int nd_log_parse_level(const char *s)
{
	for (int i = 0; i <= ND_LOG_DEBUG; i++)
		if (strcmp(s, level_names[i]) == 0)
			return i;
	if (strcmp(s, "warning") == 0)
		return ND_LOG_WARN;
	return -1;
}

void nd_log(int level, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;

	if (level > nd_log_level)
		return;
	if (level < ND_LOG_ERROR)
		level = ND_LOG_ERROR;
	if (level > ND_LOG_DEBUG)
		level = ND_LOG_DEBUG;
	n = snprintf(buf, sizeof(buf), "%s",
		     getenv("JOURNAL_STREAM") ? journal_prio[level] : "");
	if (!getenv("JOURNAL_STREAM"))
		n += snprintf(buf + n, sizeof(buf) - n, "%s: ",
			      level_names[level]);
	va_start(ap, fmt);
	vsnprintf(buf + n, sizeof(buf) - n - 1, fmt, ap);
	va_end(ap);
	n = strlen(buf);
	/* Keep it one line even if a message carried a newline. */
	for (int i = 0; i < n; i++)
		if (buf[i] == '\n' || buf[i] == '\r')
			buf[i] = ' ';
	buf[n++] = '\n';
	if (write(STDERR_FILENO, buf, n) < 0) {
		/* Nowhere left to report it. */
	}
}
