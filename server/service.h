/* SPDX-License-Identifier: MIT */
/*
 * netdiskd as a service: what runs around nd_server_run in the daemon
 * (signals, systemd readiness, the control socket). Unit tests drive the
 * server directly and never use it.
 */
#ifndef ND_SRV_SERVICE_H
#define ND_SRV_SERVICE_H

#include <signal.h>

struct nd_server;

/*
 * The signals the service takes (SIGHUP, SIGINT, SIGTERM): block them
 * with this set in main() before any thread exists, so every thread
 * inherits the mask and only nd_service_run's signal thread sees them.
 */
void nd_service_signals(sigset_t *set);

/*
 * Serves s until SIGINT or SIGTERM: opens the control socket at control
 * (NULL or "": none), tells systemd READY=1, turns SIGHUP into
 * nd_server_reload (RELOADING=1 until the server has applied or rejected
 * it, then READY=1), STOPPING=1 on the way out. Returns nd_server_run's
 * result, or -1 with a logged reason if the control socket cannot open.
 * The caller destroys s.
 */
int nd_service_run(struct nd_server *s, const char *control);

#endif /* ND_SRV_SERVICE_H */
