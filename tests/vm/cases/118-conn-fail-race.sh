#!/bin/bash
# timeout: 480
# The race of 115 made deterministic (issue #11 item 2). Connection 1
# (hardware queue 1, CPU 1) is cut and cannot reconnect, so the requests of
# fio jobs pinned to CPU 1 pile up on its queue, while jobs pinned to CPU 0
# keep going over connection 0. The device is then given up on CPU 0 (once
# by the reconnect timeout, once by a forced detach) and tests/kmod/nd_delay
# holds CPU 0 for 2 s right after the first sweep of the in-flight requests.
# A sweep that completed requests still linked on connection 1's queue
# would let the CPU 1 jobs reuse their tags in that window and link them
# again: list corruption (a BUG from list debugging, or a lockup that
# panics the guest). Every request must instead end in EIO, fio must be
# killable and detach must work.
set -eu
. "$REPO/tests/vm/lib.sh"

D=$CASE_DIR
KMOD="$REPO/tests/kmod/nd_delay.ko"
PARAMS=/sys/module/nd_delay/parameters
WQMASK=/sys/devices/virtual/workqueue/cpumask
[ -f "$KMOD" ] || fail "$KMOD not built (make kernel)"
[ "$(nproc)" -ge 2 ] || fail "needs 2 CPUs, has $(nproc)"
wq_mask=$(cat "$WQMASK")
lockup_panic=$(cat /proc/sys/kernel/softlockup_panic)
cleanup() {
	nd_cleanup
	rmmod nd_delay 2>/dev/null
	echo "$wq_mask" >"$WQMASK"
	echo "$lockup_panic" >/proc/sys/kernel/softlockup_panic
	return 0
}
trap cleanup EXIT
# A lockup ends the run at once (the host reports it) instead of at its limit.
echo 1 >/proc/sys/kernel/softlockup_panic
# Reconnect work (unbound workqueues) runs on CPU 0, like the detach below.
echo 1 >"$WQMASK"
insmod "$KMOD" func=nd_blk_fail_all delay_ms=2000 || fail "insmod nd_delay"

nd_keygen "$D/key"
truncate -s 64M "$D/disk.img"
pport=$((_nd_port + 90))

# round expire|detach
round() {
	local mode=$1 rt=600 px kids held0 e0 t0 S i
	[ "$mode" = expire ] && rt=8
	# A fresh server: the last one may still hold the write lock.
	start_server S --file "$D/disk.img" --key-file "$D/key"
	"$O/tools/ndproxy" --listen "127.0.0.1:$pport" \
		--target "127.0.0.1:$(srv_port "$S")" --mode random \
		--after 1000000000000 >/dev/null 2>>"$D/proxy.log" &
	px=$!
	echo "$px" >>"$D/pids"
	_wait_port "$pport" "$px" || fail "ndproxy did not start"
	attach dev "netdisk://127.0.0.1:$pport" --key-file "$D/key" \
		--connections 4 --reconnect-timeout "$rt"
	local q=/sys/block/${dev#/dev/}/mq
	[ "$(cat "$q/0/cpu_list")" = 0 ] && [ "$(cat "$q/1/cpu_list")" = 1 ] ||
		fail "CPU 0/1 do not map to hardware queues 0/1"
	# One proxy child per connection, forked in the order they connected.
	kids=($(ps -o pid=,stat= --ppid "$px" | awk '$2 !~ /^Z/ { print $1 }' | sort -n))
	[ ${#kids[@]} = 4 ] || fail "ndproxy serves ${#kids[@]} connections, not 4"
	printf '%s\n' "${kids[@]}" >>"$D/pids"

	nice -n 19 fio --filename="$dev" --direct=1 --ioengine=libaio --thread \
		--iodepth=32 --rw=randrw --bsrange=4k-64k \
		--continue_on_error=all --time_based --runtime=600 \
		--output="$D/fio.out" --name=cpu0 --cpus_allowed=0 --numjobs=2 \
		--name=cpu1 --cpus_allowed=1 --numjobs=2 >/dev/null 2>&1 &
	load_pid=$!
	echo "$load_pid" >>"$D/pids"
	wait_io "$dev" "$load_pid"

	# Armed first: the shell is slow under this load and the reconnect
	# timeout short. The next sweep is the one that gives the device up.
	held0=$(cat "$PARAMS/held")
	echo 1 >"$PARAMS/hits"
	t0=$(date +%s)
	kill -KILL "$px" "${kids[1]}"	# no more connections; cut connection 1
	wait "$px" 2>/dev/null || true
	e0=$(sysattr "$dev" errors)
	log "$mode: connection 1 cut, in flight $(xargs <"/sys/block/${dev#/dev/}/inflight")"
	if [ "$mode" = expire ]; then
		while [ "$(sysattr "$dev" state)" != dead ]; do
			[ $(($(date +%s) - t0)) -lt 60 ] ||
				fail "state $(sysattr "$dev" state) 60 s after the cut"
			sleep 0.5
		done
		sleep 1
		[ "$(sysattr "$dev" errors)" -gt "$e0" ] || fail "no EIO after the device failed"
	else
		sleep 3
		log "detach: in flight $(xargs <"/sys/block/${dev#/dev/}/inflight")"
		timeout 60 taskset -c 0 "$ND" detach "$dev" --force ||
			fail "detach --force"
	fi
	for ((i = 0; i < 40; i++)); do
		[ "$(cat "$PARAMS/held")" = "$held0" ] || break
		sleep 0.5
	done
	[ "$(cat "$PARAMS/held")" = $((held0 + 1)) ] ||
		fail "nd_delay did not hold the CPU after the sweep"
	log "$mode: failed in $(($(date +%s) - t0)) s"
	load_ends
	if [ "$mode" = expire ]; then
		timeout 60 "$ND" detach "$dev" || fail "detach of the failed device"
	fi
	no_devices_left || fail "device left after detach"
	kill -KILL "${kids[@]}" 2>/dev/null || true
	kill_server "$S"
}

# load_ends: fio (spinning on EIO) must be gone 30 s after SIGKILL at most.
load_ends() {
	local i
	kill -KILL "$load_pid" 2>/dev/null || true
	for ((i = 0; i < 60; i++)); do
		kill -0 "$load_pid" 2>/dev/null || break
		sleep 0.5
	done
	if kill -0 "$load_pid" 2>/dev/null; then
		cat /proc/"$load_pid"/task/*/stack 2>/dev/null | sort | uniq -c | sort -rn | head -n 20
		fail "fio unkillable 30 s after SIGKILL (I/O stuck in the kernel)"
	fi
	wait "$load_pid" 2>/dev/null || true
}

round expire
round detach
dmesg | grep 'nd_delay: holding'
log "ok"
