#!/bin/bash
# timeout: 300
# One device's reconnect must not hold up another device's I/O: device A's
# server becomes unreachable (its address now routes to a dummy interface
# that drops every packet), so each reconnect attempt blocks in connect for
# the 20 s connect timeout (--timeout 20), while 4k O_DIRECT writes on
# device B keep completing within seconds.
set -eu
. "$REPO/tests/vm/lib.sh"
link=ndblk$$
cleanup() {
	nd_cleanup
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
"$NDD" --listen 10.213.0.1 --port "$port" --state-dir "$D/state" --file "$D/a.img" \
	--key-file "$D/key" >>"$D/netdiskd-a.log" 2>&1 &
sa=$!
echo "$sa" >>"$D/pids"
for ((i = 0; i < 300; i++)); do
	(exec 3<>"/dev/tcp/10.213.0.1/$port") 2>/dev/null && break
	sleep 0.1
done
attach a "netdisk://10.213.0.1:$port" --key-file "$D/key" --timeout 20 \
	--connections 2
start_server S --file "$D/b.img" --key-file "$D/key"
attach b "netdisk://127.0.0.1:$(srv_port "$S")" --key-file "$D/key"

log "A's server killed, its address moved away: A's connects hang"
kill -KILL "$sa"
wait "$sa" 2>/dev/null || true
ip addr del 10.213.0.1/24 dev "$link"
ip addr add 10.213.0.2/24 dev "$link"
for ((i = 0; i < 60; i++)); do
	[ -n "$(ss -Htn state syn-sent dst 10.213.0.1)" ] && break
	sleep 0.5
done
[ -n "$(ss -Htn state syn-sent dst 10.213.0.1)" ] ||
	fail "A is not blocked in connect (state $(sysattr "$a" state))"
log "A: state $(sysattr "$a" state), blocked in connect"

for n in 1 2 3; do
	t0=$(date +%s%N)
	timeout 8 dd if=/dev/urandom of="$b" bs=4k count=1 seek=$n \
		oflag=direct status=none ||
		fail "4k write $n on B did not complete within 8 s while A reconnects"
	log "B: write $n took $(( ($(date +%s%N) - t0) / 1000000 )) ms"
done
[ "$(sysattr "$a" state)" = reconnecting ] || fail "A is $(sysattr "$a" state), not reconnecting"
timeout 30 "$ND" detach "$a" --force || fail "detach --force of A"
detach "$b"
no_devices_left || fail "device left after detach"
log "ok"
