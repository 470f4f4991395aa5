#!/bin/bash
# timeout: 240
# Reconnects stay in the network namespace of the attach: netdiskd and
# `netdisk attach` run in their own namespace (its own 127.0.0.1, where
# nothing else listens); the server is killed and restarted there, and the
# device must reconnect to it and go on working.
set -eu
. "$REPO/tests/vm/lib.sh"
ns=ndtest$$
cleanup() {
	nd_cleanup
	ip netns del "$ns" 2>/dev/null
	return 0
}
trap cleanup EXIT

D=$CASE_DIR
nd_keygen "$D/key"
truncate -s 64M "$D/disk.img"
port=$((_nd_port + 90))
ip netns add "$ns" || fail "ip netns add"
ip -n "$ns" link set lo up || fail "lo up in $ns"
in_ns() { ip netns exec "$ns" "$@"; }

serve_ns() {	# netdiskd on 127.0.0.1:$port inside the namespace; sets srv
	local i
	# Not through in_ns: $! must be netdiskd (ip netns exec execs it).
	ip netns exec "$ns" "$NDD" --listen 127.0.0.1 --port "$port" \
		--state-dir "$D/state" --file "$D/disk.img" --key-file "$D/key" --grace 30 \
		>>"$D/netdiskd.log" 2>&1 &
	srv=$!
	echo "$srv" >>"$D/pids"
	for ((i = 0; i < 300; i++)); do
		kill -0 "$srv" 2>/dev/null || { cat "$D/netdiskd.log"; fail "netdiskd died"; }
		in_ns bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null && return 0
		sleep 0.1
	done
	fail "netdiskd did not listen in $ns"
}

serve_ns
(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null &&
	fail "something listens on 127.0.0.1:$port outside the namespace"
out=$(in_ns "$ND" attach "netdisk://127.0.0.1:$port" --key-file "$D/key" \
	--reconnect-timeout 40) || fail "attach inside $ns"
dev=$(echo "$out" | tail -n 1)
[ -b "$dev" ] || fail "attach printed '$out'"
dd if=/dev/urandom of="$D/data" bs=1M count=2 status=none
dd if="$D/data" of="$dev" bs=1M oflag=direct status=none || fail "write"

log "server killed and restarted inside $ns"
kill -KILL "$srv"
wait "$srv" 2>/dev/null || true
sleep 1
serve_ns
for ((i = 0; i < 60; i++)); do
	[ "$(sysattr "$dev" reconnects)" -ge 1 ] && break
	sleep 0.5
done
log "reconnects=$(sysattr "$dev" reconnects) state=$(sysattr "$dev" state)"
[ "$(sysattr "$dev" reconnects)" -ge 1 ] ||
	fail "no reconnect within 30 s (reconnecting outside the namespace?)"
cmp <(timeout 60 dd if="$dev" bs=1M count=2 iflag=direct status=none) "$D/data" ||
	fail "data read after the reconnect differs"
dd if=/dev/urandom of="$dev" bs=64k count=4 seek=100 oflag=direct status=none ||
	fail "write after the reconnect"
detach "$dev"
no_devices_left || fail "device left after detach"
log "ok"
