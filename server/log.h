/* SPDX-License-Identifier: MIT */
/* netdiskd logging: one line per event on stderr with a level prefix. */
#ifndef ND_SRV_LOG_H
#define ND_SRV_LOG_H

enum nd_log_level {
	ND_LOG_ERROR = 0,
	ND_LOG_WARN,
	ND_LOG_INFO,
	ND_LOG_DEBUG,
};

/* Current threshold; messages above it are dropped. Default info. */
extern int nd_log_level;

/* Parses "error|warn|info|debug"; -1 if unknown. */
int nd_log_parse_level(const char *s);

__attribute__((format(printf, 2, 3)))
void nd_log(int level, const char *fmt, ...);

#define nd_err(...)	nd_log(ND_LOG_ERROR, __VA_ARGS__)
#define nd_warn(...)	nd_log(ND_LOG_WARN, __VA_ARGS__)
#define nd_info(...)	nd_log(ND_LOG_INFO, __VA_ARGS__)
#define nd_debug(...)	nd_log(ND_LOG_DEBUG, __VA_ARGS__)

#endif /* ND_SRV_LOG_H */
