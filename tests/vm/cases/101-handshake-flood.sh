#!/bin/bash
# timeout: 300
# A device reconnects through a flood of connections that never
# authenticate (ndflood: silent, garbage, half and whole ClientHellos, from
# 127.0.0.2-9 and from the device's own 127.0.0.1, as fast as the guest
# allows: about 40/s under TCG, enough to keep the 128 pending handshakes
# full and evicting). The server is killed with SIGKILL and restarted on
# its port 10 s later; the device must get back in while the flood goes on
# and read back what it wrote. (Under TCG the flood is too slow to reach
# the 1024 connections that starved clients before the handshake budget:
# the integration test's host-speed flood shows that.)
set -eu
. "$REPO/tests/vm/lib.sh"
trap nd_cleanup EXIT

D=$CASE_DIR
nd_keygen "$D/key"
truncate -s 32M "$D/disk.img"
port=$((_nd_port + 70))
serve_on S "$port" --file "$D/disk.img" --key-file "$D/key"
attach dev "netdisk://127.0.0.1:$port" --key-file "$D/key" --connections 2
dd if=/dev/urandom of="$D/data" bs=1M count=4 status=none
dd if="$D/data" of="$dev" bs=1M oflag=direct status=none || fail "write"

"$O/tools/ndflood" --target "127.0.0.1:$port" --count 40000 --rate 400 \
	--hold 1500 \
	--from 127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5,127.0.0.6,127.0.0.7,127.0.0.8,127.0.0.9,127.0.0.1 \
	>"$D/flood.out" 2>&1 &
flood_pid=$!
echo "$flood_pid" >>"$D/pids"
sleep 3
log "flooding; killing the server"
kill_server "$S"
sleep 10
serve_on S "$port" --file "$D/disk.img" --key-file "$D/key"
log "server restarted under the flood"
wait_reconnects "$dev" 1
for ((i = 0; i < 120; i++)); do
	[ "$(sysattr "$dev" state)" = connected ] && break
	sleep 0.5
done
[ "$(sysattr "$dev" state)" = connected ] ||
	fail "not reconnected: state $(sysattr "$dev" state)"
timeout 60 dd if="$dev" bs=1M count=4 iflag=direct status=none |
	cmp - "$D/data" || fail "read back after the reconnect differs"
kill -0 "$flood_pid" 2>/dev/null || fail "the flood ended before the device was back"
kill -TERM "$flood_pid"
wait "$flood_pid" 2>/dev/null || true
cat "$D/flood.out"
detach "$dev"
stop_server "$S"
grep 'more failed handshakes' "$CASE_DIR/netdiskd-$port.log" || true
# The shutdown flushes the summary: the budget must have been full.
grep -q 'more failed handshakes.*evicted' "$CASE_DIR/netdiskd-$port.log" ||
	fail "the flood never filled the pending-handshake budget"
log "ok"
