#!/bin/bash
# timeout: 240
# 112 when no workqueue worker can be created (memory pressure as the
# workqueue code sees it), where only rescuers run work (issue #11 item 12).
# All unbound workqueues share one worker pool; when its last idle worker
# finds work pending it becomes the pool's manager and, failing to create
# a worker, calls for the rescuers of the workqueues whose work is pending.
# A rescuer runs its workqueue's pending work in order, one at a time.
# Made deterministic:
# - the unbound cpumask is switched to CPU 1 alone, which gives every
#   unbound workqueue a fresh pool (created with one worker);
# - right after, tests/kmod/nd_delay makes every worker allocation fail,
#   so the pool keeps its K workers (counted: K must be below A's
#   connections);
# - device A's 8 connections lose their server and reconnect to a
#   black-holed address: one blocks in connect for its 60 s timeout, the
#   others on the session lock behind it. At most K-1 of them occupy the
#   pool's workers, the rest are pending: rescued by A's own rescuer.
# Device B's 4k O_DIRECT writes (fio, 10/s) must go on completing, never
# 8 s without one in a 20 s window inside that connect. A rescuer shared
# by A's reconnects and B's sender is stuck in A's work for the whole
# window: B would not complete one write.
set -eu
. "$REPO/tests/vm/lib.sh"
link=ndblk$$
KMOD="$REPO/tests/kmod/nd_delay.ko"
PARAMS=/sys/module/nd_delay/parameters
WQMASK=/sys/devices/virtual/workqueue/cpumask
CONNS=8
[ -f "$KMOD" ] || fail "$KMOD not built (make kernel)"
[ "$(nproc)" -ge 2 ] || fail "needs 2 CPUs, has $(nproc)"
wq_mask=$(cat "$WQMASK")
cleanup() {
	# Workers can be created again before anything waits for one.
	[ -d "$PARAMS" ] && echo 0 >"$PARAMS/hits"
	nd_cleanup
	rmmod nd_delay 2>/dev/null
	echo "$wq_mask" >"$WQMASK"
	ip link del "$link" 2>/dev/null
	return 0
}
trap cleanup EXIT

D=$CASE_DIR
nd_keygen "$D/key"
truncate -s 16M "$D/a.img" "$D/b.img"
modprobe dummy || fail "modprobe dummy"
ip link add "$link" type dummy || fail "ip link add dummy"
ip link set "$link" up
ip addr add 10.213.0.1/24 dev "$link"

port=$((_nd_port + 90))
"$NDD" --listen 10.213.0.1 --port "$port" --state-dir "$D/state" \
	--file "$D/a.img" --key-file "$D/key" >>"$D/netdiskd-a.log" 2>&1 &
sa=$!
echo "$sa" >>"$D/pids"
for ((i = 0; i < 300; i++)); do
	(exec 3<>"/dev/tcp/10.213.0.1/$port") 2>/dev/null && break
	sleep 0.1
done
attach a "netdisk://10.213.0.1:$port" --key-file "$D/key" --timeout 60 \
	--reconnect-timeout 600 --connections "$CONNS"
start_server S --file "$D/b.img" --key-file "$D/key"
attach b "netdisk://127.0.0.1:$(srv_port "$S")" --key-file "$D/key"
fio --name=b --filename="$b" --direct=1 --ioengine=psync --thread --rw=randwrite \
	--bs=4k --rate_iops=10 --time_based --runtime=600 >/dev/null 2>&1 &
fio_pid=$!
echo "$fio_pid" >>"$D/pids"
wait_io "$b" "$fio_pid"

# Nothing may wait for a plain unbound worker from now on: for one, the
# usermode helper of a module autoload would (ss needs tcp_diag).
modprobe -a inet_diag tcp_diag || fail "modprobe tcp_diag"
ss -Htn state syn-sent >/dev/null || fail "ss"
insmod "$KMOD" func=alloc_worker delay_ms=0 fail=1 retval=0 ||
	fail "insmod nd_delay"
# A fresh pool for every unbound workqueue (ordered ones stay behind), and
# at once (two shell builtins) every worker allocation fails from then on
# (the failed result is leaked).
echo 2 >"$WQMASK" || fail "cannot set the unbound cpumask to CPU 1"
echo 1000000 >"$PARAMS/hits"
# The new pool's workers: unbound kworkers allowed on CPU 1 alone.
k=$(grep -s -H -e '^Name:' -e '^Cpus_allowed_list:' /proc/[0-9]*/status |
	awk -F'\t' '/:Name:/ { split($1, f, "/status"); name[f[1]] = $2 }
		/:Cpus_allowed_list:/ { split($1, f, "/status"); cpus[f[1]] = $2 }
		END { for (p in name) if (name[p] ~ /^kworker\/u/ && cpus[p] == "1") k++
		      print k + 0 }')
log "the pool has $k worker(s), cannot grow; A has $CONNS connections"
[ "$k" -ge 1 ] && [ "$k" -lt "$CONNS" ] ||
	fail "the fresh pool has $k workers: A cannot occupy all but the manager"

log "A's server killed, its address moved away: A's connects hang"
kill -KILL "$sa"
ip addr del 10.213.0.1/24 dev "$link"
ip addr add 10.213.0.2/24 dev "$link"
wait "$sa" 2>/dev/null || true
for ((i = 0; i < 60; i++)); do
	[ -n "$(ss -Htn state syn-sent dst 10.213.0.1)" ] && break
	sleep 0.5
done
[ -n "$(ss -Htn state syn-sent dst 10.213.0.1)" ] ||
	fail "A is not blocked in connect (state $(sysattr "$a" state))"
# The fast failures before the address moved back off for < 1 s: by now
# every reconnect of A is in connect, on the session lock, or pending.
sleep 3
# The longest time without a completed write on B over 20 s, in seconds
# (builtins only: the guest may be slow).
wf=/sys/block/${b#/dev/}/netdisk/writes
read -r w0 <"$wf"
t0=$EPOCHSECONDS
last=$t0
max=0
while [ $((EPOCHSECONDS - t0)) -lt 20 ]; do
	sleep 0.5
	read -r w <"$wf"
	[ "$w" = "$w0" ] || last=$EPOCHSECONDS
	[ $((EPOCHSECONDS - last)) -le "$max" ] || max=$((EPOCHSECONDS - last))
	w0=$w
done
syn=$(ss -Htn state syn-sent dst 10.213.0.1 | wc -l)
log "B: at most $max s without a completed write while A reconnects ($syn connect(s) pending); $(cat "$PARAMS/held") worker allocation(s) failed"
[ "$(cat "$PARAMS/held")" -gt 0 ] || fail "no worker allocation was failed"
echo 0 >"$PARAMS/hits"
[ "$max" -lt 8 ] || fail "no write on B completed for $max s while A reconnected"
[ "$syn" -ge 1 ] || fail "A's connect ended within the window"
kill -KILL "$fio_pid"
wait "$fio_pid" 2>/dev/null || true
[ "$(sysattr "$a" state)" = reconnecting ] || fail "A is $(sysattr "$a" state), not reconnecting"
timeout 30 "$ND" detach "$a" --force || fail "detach --force of A"
detach "$b"
no_devices_left || fail "device left after detach"
log "ok"
