#!/bin/bash
# timeout: 300
# No silent change of writer (docs/PROTOCOL.md §1, write epochs). Client X
# holds the export read-write through a proxy and starts a new session
# after each break:
# 1. netdiskd killed with -9 and restarted (same state): X carries on, no
#    error, its data intact (X was the last writer).
# 2. X cut off past the grace period, nobody writes, X wrote nothing since
#    its last session began: X carries on, no error.
# 3. X cut off past the grace period while client Y (netdisk copy) writes
#    the export: X's reconnect fails the device ("export was written by
#    another client while disconnected"), its I/O gets EIO, Y's data stays.
set -eu
. "$REPO/tests/vm/lib.sh"
trap nd_cleanup EXIT

D=$CASE_DIR
nd_keygen "$D/key"
truncate -s 16M "$D/disk.img"
head -c 1M /dev/urandom >"$D/X1"
head -c 1M /dev/urandom >"$D/X2"
head -c 1M /dev/urandom >"$D/Y"
sport=$((_nd_port + 90))
pport=$((_nd_port + 91))

serve() {	# a fixed port, the same state across restarts
	serve_on S "$sport" --file "$D/disk.img" --key-file "$D/key" --grace 2
}
proxy() {	# pass mode: one connection at a time; killing it cuts X off
	"$O/tools/ndproxy" --listen "127.0.0.1:$pport" \
		--target "127.0.0.1:$sport" >/dev/null 2>>"$D/proxy.log" &
	proxy_pid=$!
	echo "$proxy_pid" >>"$D/pids"
	_wait_port "$pport" "$proxy_pid" || fail "ndproxy did not start"
}
cut_off() {
	kill -TERM "$proxy_pid"
	wait "$proxy_pid" 2>/dev/null || true
}
# check DEV FILE: the device's first MiB is FILE
check() {
	timeout 60 dd if="$1" bs=1M count=1 iflag=direct status=none |
		cmp -s - "$2" || fail "$1 does not read back $2"
}

serve
proxy
attach dev "netdisk://127.0.0.1:$pport" --key-file "$D/key" --connections 1 \
	--timeout 5
timeout 60 dd if="$D/X1" of="$dev" bs=1M oflag=direct conv=fsync status=none ||
	fail "X's first write"

log "1. netdiskd killed with -9 and restarted with the same state"
kill_server "$S"
serve
wait_reconnects "$dev" 1
check "$dev" "$D/X1"
[ "$(sysattr "$dev" state)" = connected ] || fail "state $(sysattr "$dev" state)"

log "2. X cut off past the grace period, nobody else writes"
cut_off
sleep 5
proxy
wait_reconnects "$dev" 2
check "$dev" "$D/X1"
timeout 60 dd if="$D/X2" of="$dev" bs=1M oflag=direct conv=fsync status=none ||
	fail "X's write after its second new session"
[ "$(dmesg | grep -c "${dev#/dev/}: session unknown to the server")" -ge 2 ] ||
	fail "X did not start new sessions (grace not over?)"

log "3. X cut off past the grace period while Y writes the export"
cut_off
sleep 5
for ((i = 0; i < 10; i++)); do	# busy (5) until X's grace is over
	rc=0
	timeout 60 "$ND" copy "$D/Y" "netdisk://127.0.0.1:$sport" \
		--key-file "$D/key" -q || rc=$?
	[ "$rc" = 5 ] || break
	sleep 1
done
[ "$rc" = 0 ] || fail "Y's copy while X is away exited $rc"
proxy
for ((i = 0; i < 60; i++)); do
	[ "$(sysattr "$dev" state)" = dead ] && break
	sleep 0.5
done
[ "$(sysattr "$dev" state)" = dead ] ||
	fail "X still $(sysattr "$dev" state) after Y wrote the export"
dmesg | grep -q "${dev#/dev/}: export was written by another client while disconnected" ||
	fail "no 'export was written by another client' line in dmesg"
rc=0
timeout 60 dd if="$dev" of=/dev/null bs=4k count=1 iflag=direct \
	2>"$D/dd.err" || rc=$?
[ "$rc" != 0 ] && grep -q 'Input/output error' "$D/dd.err" ||
	fail "X's read after the refusal did not fail with EIO (exit $rc)"
cmp -n 1M "$D/Y" "$D/disk.img" || fail "Y's data is not in the file"
timeout 30 "$ND" detach "$dev" || fail "detach of the failed device"
no_devices_left || fail "device left after detach"
log "ok"
