// SPDX-License-Identifier: MIT
/*
 * netdiskd as a service (service.h). Signals are taken synchronously by
 * one thread (sigwait), so a reload can wait for its outcome and tell
 * systemd, which a signal handler could not. sd_notify does nothing
 * without NOTIFY_SOCKET, i.e. outside a Type=notify unit.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "control.h"
#include "log.h"
#include "server.h"
#include "service.h"

struct signal_thread {
	struct nd_server *srv;
	sigset_t set;
	bool done;		/* nd_server_run returned; atomic */
};

void nd_service_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGTERM);
}

static unsigned long long monotonic_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void stop(struct signal_thread *st, int sig)
{
	sd_notify(0, "STOPPING=1");
	nd_info("%s received", sig == SIGINT ? "SIGINT" : "SIGTERM");
	nd_server_stop(st->srv);
}

/*
 * Asks for a reload and waits until the server has applied or rejected
 * it (it logs which and why), so RELOADING=1 covers exactly that time.
 * Signals keep working meanwhile: a stop ends the wait, another SIGHUP
 * (the file may have changed after it was read) asks for one more
 * reload. 1 if the server is stopping.
 */
static int reload(struct signal_thread *st)
{
	const struct timespec tick = { 0, 10 * 1000 * 1000 };
	unsigned long a0, r0, a, r;
	bool again;
	int sig;

	do {
		again = false;
		nd_server_reload_count(st->srv, &a0, &r0);
		sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu",
			   monotonic_us());
		nd_server_reload(st->srv);
		for (;;) {
			nd_server_reload_count(st->srv, &a, &r);
			if (a != a0 || r != r0)
				break;
			if (__atomic_load_n(&st->done, __ATOMIC_ACQUIRE))
				return 1;
			sig = sigtimedwait(&st->set, NULL, &tick);
			if (__atomic_load_n(&st->done, __ATOMIC_ACQUIRE))
				return 1;
			if (sig == SIGHUP) {
				again = true;
			} else if (sig > 0) {
				stop(st, sig);
				return 1;
			}
		}
	} while (again);
	sd_notify(0, "READY=1");
	return 0;
}

static void *signal_main(void *arg)
{
	struct signal_thread *st = arg;
	int sig;

	for (;;) {
		if (sigwait(&st->set, &sig) != 0)
			continue;
		if (__atomic_load_n(&st->done, __ATOMIC_ACQUIRE))
			return NULL;
		if (sig == SIGHUP)
			reload(st);
		else
			stop(st, sig);
	}
}

int nd_service_run(struct nd_server *s, const char *control)
{
	struct signal_thread st = { .srv = s };
	struct nd_control *ctl = NULL;
	pthread_t thread;
	char err[512];
	int rc;

	nd_service_signals(&st.set);
	if (control && control[0]) {
		ctl = nd_control_start(s, control, err, sizeof(err));
		if (!ctl) {
			nd_err("%s", err);
			return -1;
		}
	}
	rc = pthread_create(&thread, NULL, signal_main, &st);
	if (rc) {
		nd_err("cannot start the signal thread: %s", strerror(rc));
		nd_control_stop(ctl);
		return -1;
	}
	sd_notify(0, "READY=1");
	rc = nd_server_run(s);

	/* Wakes the signal thread (its signals are blocked: sigwait takes it). */
	__atomic_store_n(&st.done, true, __ATOMIC_RELEASE);
	pthread_kill(thread, SIGTERM);
	pthread_join(thread, NULL);
	nd_control_stop(ctl);
	return rc;
}
