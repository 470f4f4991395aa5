#!/bin/bash
# timeout: 300
# Detach of an open device: refused (exit 10) without --force, for a
# mounted filesystem and for fio holding it; --force with I/O in flight fails
# that I/O, nothing hangs, the device goes away, the server stays healthy.
set -eu
. "$REPO/tests/vm/lib.sh"
trap nd_cleanup EXIT

D=$CASE_DIR
nd_keygen "$D/key"
truncate -s 64M "$D/disk.img"
start_server S --file "$D/disk.img" --key-file "$D/key"
url="netdisk://127.0.0.1:$(srv_port "$S")"

attach dev "$url" --key-file "$D/key"
mkfs.ext4 -q -F "$dev" || fail "mkfs"
mount_dev "$dev" "$D/mnt"
log "detach of a mounted device without --force"
expect_rc 10 "$ND" detach "$dev"
[ -b "$dev" ] && [ -e "/sys/block/${dev#/dev/}" ] || fail "device gone after refused detach"
echo hello >"$D/mnt/file" && sync || fail "fs unusable after refused detach"
umount_dir "$D/mnt"
detach "$dev"

attach dev "$url" --key-file "$D/key"
log "fio on $dev, then detach while it runs"
fio --name=busy --filename="$dev" --direct=1 --ioengine=libaio --iodepth=32 \
	--rw=randrw --bsrange=4k-256k --time_based --runtime=120 \
	--output="$D/fio.out" >/dev/null 2>&1 &
fio_pid=$!
echo "$fio_pid" >>"$D/pids"
wait_io "$dev" "$fio_pid"
sleep 2
kill -0 "$fio_pid" 2>/dev/null || { cat "$D/fio.out"; fail "fio ended early"; }
expect_rc 10 "$ND" detach "$dev"
kill -0 "$fio_pid" 2>/dev/null || fail "refused detach disturbed fio"
log "detach --force"
t0=$(date +%s)
rc=0; timeout 60 "$ND" detach "$dev" --force || rc=$?
[ "$rc" = 0 ] || fail "detach --force exited $rc"
no_devices_left || fail "device still present after detach --force"
for ((i = 0; i < 60; i++)); do
	kill -0 "$fio_pid" 2>/dev/null || break
	sleep 1
done
kill -0 "$fio_pid" 2>/dev/null && fail "fio still running 60 s after detach --force"
rc=0; wait "$fio_pid" || rc=$?
log "fio exited $rc after $(( $(date +%s) - t0 )) s"
[ "$rc" != 0 ] || { cat "$D/fio.out"; fail "fio saw no error although its device was force-detached"; }

log "the server still serves"
# A forced detach may skip DISCONNECT; the server then keeps the write lock
# for its grace period (30 s, docs/PROTOCOL.md) before a new session.
for ((i = 0; i < 45; i++)); do
	rc=0
	"$ND" attach "$url" --key-file "$D/key" >"$D/out" 2>"$D/err" || rc=$?
	[ "$rc" = 5 ] || break
	sleep 1
done
[ "$rc" = 0 ] || { cat "$D/err"; fail "attach after force detach exited $rc"; }
[ "$i" = 0 ] || log "NOTE: export stayed busy for ~${i}s after detach --force"
dev=$(cat "$D/out")
dd if="$dev" of=/dev/null bs=1M count=8 iflag=direct status=none || fail "read after force detach"
detach "$dev"
stop_server "$S"
log "ok"
