#!/bin/bash
# timeout: 420
# The server killed with SIGKILL, idle and under fio: I/O fails with EIO in
# bounded time, nothing hangs, the device can be detached. Reconnection is
# off here (--reconnect-timeout 0): 100-reconnect covers the default.
set -eu
. "$REPO/tests/vm/lib.sh"
trap nd_cleanup EXIT

D=$CASE_DIR
nd_keygen "$D/key"
truncate -s 64M "$D/disk.img"

log "server killed while idle"
start_server S --file "$D/disk.img" --key-file "$D/key"
attach dev "netdisk://127.0.0.1:$(srv_port "$S")" --key-file "$D/key" \
	--reconnect-timeout 0
dd if=/dev/urandom of="$dev" bs=1M count=4 oflag=direct status=none || fail "initial write"
kill_server "$S"
t0=$(date +%s)
rc=0
timeout 150 dd if="$dev" of=/dev/null bs=4k count=1 skip=5000 iflag=direct \
	2>"$D/dd.err" || rc=$?
cat "$D/dd.err"
log "read after the kill: exit $rc after $(( $(date +%s) - t0 )) s"
[ "$rc" != 124 ] || fail "read hung for 150 s after the server died"
[ "$rc" != 0 ] || fail "read succeeded with the server dead"
grep -q 'Input/output error' "$D/dd.err" || fail "read did not fail with EIO"
rc=0; timeout 60 "$ND" detach "$dev" || rc=$?
if [ "$rc" != 0 ]; then
	log "plain detach exited $rc, trying --force"
	timeout 60 "$ND" detach "$dev" --force || fail "detach --force of a dead device"
fi
no_devices_left || fail "device left after detaching from a dead server"

log "server killed under fio"
start_server S --file "$D/disk.img" --key-file "$D/key"
attach dev "netdisk://127.0.0.1:$(srv_port "$S")" --key-file "$D/key" \
	--reconnect-timeout 0
fio --name=busy --filename="$dev" --direct=1 --ioengine=libaio --iodepth=32 \
	--rw=randrw --bsrange=4k-256k --time_based --runtime=200 \
	--output="$D/fio.out" >/dev/null 2>&1 &
fio_pid=$!
echo "$fio_pid" >>"$D/pids"
wait_io "$dev" "$fio_pid"
sleep 2
kill -0 "$fio_pid" 2>/dev/null || { cat "$D/fio.out"; fail "fio ended early"; }
kill -KILL "$(srv_pid "$S")"
t0=$(date +%s)
for ((i = 0; i < 150; i++)); do
	kill -0 "$fio_pid" 2>/dev/null || break
	sleep 1
done
kill -0 "$fio_pid" 2>/dev/null && fail "fio still running 150 s after the server died"
rc=0; wait "$fio_pid" || rc=$?
log "fio exited $rc after $(( $(date +%s) - t0 )) s"
grep -E 'err=|error' "$D/fio.out" | head -n 5
[ "$rc" != 0 ] || fail "fio saw no error with the server dead"
echo "state=$(sysattr "$dev" state) errors=$(sysattr "$dev" errors)"
[ "$(sysattr "$dev" errors)" -gt 0 ] || fail "sysfs errors counter is 0 after failed I/O"
rc=0; timeout 60 "$ND" detach "$dev" || rc=$?
if [ "$rc" != 0 ]; then
	log "plain detach exited $rc, trying --force"
	timeout 60 "$ND" detach "$dev" --force || fail "detach --force of a dead device"
fi
no_devices_left || fail "device left after detaching from a dead server"
log "ok"
