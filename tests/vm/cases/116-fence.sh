#!/bin/bash
# timeout: 240
# Fenced reconnects (docs/PROTOCOL.md §1): a WRITE that reaches the server
# on a connection the client has already given up and replaced must not be
# executed. ndproxy --mode hold keeps a 64 KiB WRITE of data A from the
# server; the client times out (--timeout 4), reconnects through the proxy
# and resends A, which completes; B is written over the same range and
# flushed; only then is the held A released into the old server connection.
# The server's file must hold B. A server without the fence executes the
# stale A after B (the proxy logs "the server answered after the release")
# and this case fails.
set -eu
. "$REPO/tests/vm/lib.sh"
trap nd_cleanup EXIT

D=$CASE_DIR
nd_keygen "$D/key"
truncate -s 16M "$D/disk.img"
head -c 64k /dev/urandom >"$D/A"
head -c 64k /dev/urandom >"$D/B"
start_server S --file "$D/disk.img" --key-file "$D/key"
# Port 0, read back: a probe connection would be connection 1.
"$O/tools/ndproxy" --listen 127.0.0.1:0 \
	--target "127.0.0.1:$(srv_port "$S")" --mode hold --hold-write 65536 \
	--after 1 --release-file "$D/release" >"$D/proxy.out" 2>"$D/proxy.log" &
echo "$!" >>"$D/pids"
pport=""
for ((i = 0; i < 100; i++)); do
	pport=$(sed -n 's/^port //p' "$D/proxy.out")
	[ -n "$pport" ] && break
	sleep 0.1
done
[ -n "$pport" ] || { cat "$D/proxy.log"; fail "ndproxy did not start"; }

attach dev "netdisk://127.0.0.1:$pport" --key-file "$D/key" --timeout 4 \
	--connections 1
# range: the 64 KiB at 1 MiB
range() { dd if="$1" bs=64k skip=16 count=1 iflag="${2:-fullblock}" status=none; }

log "write A: held by the proxy, timed out, resent on a new connection"
timeout 120 dd if="$D/A" of="$dev" bs=64k seek=16 count=1 oflag=direct \
	status=none || fail "write A"
grep -q 'conn 1 c2s: holding record' "$D/proxy.log" ||
	{ cat "$D/proxy.log"; fail "ndproxy held nothing (was the write split?)"; }
[ "$(sysattr "$dev" reconnects)" -ge 1 ] ||
	fail "write A completed without a reconnect"
dmesg | grep -q "${dev#/dev/}: request timed out" ||
	fail "no request timeout in dmesg"

log "write B over the same range, flushed"
timeout 60 dd if="$D/B" of="$dev" bs=64k seek=16 count=1 oflag=direct \
	conv=fsync status=none || fail "write B"
range "$D/disk.img" | cmp -s - "$D/B" || fail "B is not in the file after its flush"

log "release the stale A into the old server connection"
touch "$D/release"
# Either the server closed the old connection (the fence: nothing is
# delivered, or nothing read), or it executed the stale WRITE and answered.
for ((i = 0; i < 60; i++)); do
	grep -q 'answered after the release\|conn 1: connection closed' \
		"$D/proxy.log" && break
	sleep 0.5
done
cat "$D/proxy.log"
grep -q 'answered after the release\|conn 1: connection closed' \
	"$D/proxy.log" || fail "the old connection neither answered nor closed within 30 s"
if range "$D/disk.img" | cmp -s - "$D/A"; then
	fail "the stale write A landed after B: no fence"
fi
range "$D/disk.img" | cmp -s - "$D/B" || fail "the range holds neither A nor B"
range "$dev" direct | cmp -s - "$D/B" || fail "the device does not read B back"
grep -q 'answered after the release' "$D/proxy.log" &&
	fail "the server answered the stale connection after its replacement"
detach "$dev"
log "ok"
