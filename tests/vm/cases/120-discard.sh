#!/bin/bash
# timeout: 300
# Discard and write-zeroes: the server advertises TRIM and WRITE_ZEROES for
# a file export; blkdiscard punches holes in the backing file, blkdiscard -z
# reads back zeroes, fstrim on a mounted ext4 trims; nothing fails.
set -eu
. "$REPO/tests/vm/lib.sh"
trap nd_cleanup EXIT

D=$CASE_DIR
nd_keygen "$D/key"
truncate -s 64M "$D/disk.img"
start_server S --file "$D/disk.img" --key-file "$D/key"
attach dev "netdisk://127.0.0.1:$(srv_port "$S")" --key-file "$D/key"
n=${dev#/dev/}
flags=$(sysattr "$dev" export_flags)
log "export_flags=$flags discard_max_bytes=$(cat /sys/block/$n/queue/discard_max_bytes) write_zeroes_max_bytes=$(cat /sys/block/$n/queue/write_zeroes_max_bytes)"
(( flags & 0x8 )) || fail "server does not advertise TRIM on a tmpfs file"
(( flags & 0x10 )) || fail "server does not advertise WRITE_ZEROES"
[ "$(cat /sys/block/$n/queue/discard_max_bytes)" -gt 0 ] || fail "discard not enabled on the queue"
[ "$(cat /sys/block/$n/queue/write_zeroes_max_bytes)" -gt 0 ] || fail "write-zeroes not enabled on the queue"

dd if=/dev/urandom of="$dev" bs=1M count=16 oflag=direct status=none || fail "write"
b0=$(stat -c %b "$D/disk.img")
blkdiscard -o 0 -l 8M "$dev" || fail "blkdiscard"
b1=$(stat -c %b "$D/disk.img")
log "backing file blocks: $b0 before, $b1 after discarding 8 MiB"
[ "$b1" -le $((b0 - 8 * 2048 + 64)) ] || fail "discard did not deallocate (blocks $b0 -> $b1)"

blkdiscard -z -o 8M -l 4M "$dev" || fail "blkdiscard -z"
cmp -n 4194304 <(dd if="$dev" bs=1M skip=8 count=4 iflag=direct status=none) /dev/zero ||
	fail "range not zero after write-zeroes"
dd if="$dev" bs=1M skip=12 count=4 iflag=direct status=none | cmp -s - /dev/zero &&
	fail "data after the zeroed range was zeroed too"

log "fstrim on ext4"
mkfs.ext4 -q -E nodiscard "$dev" || fail "mkfs.ext4"
mount_dev "$dev" "$D/mnt"
dd if=/dev/urandom of="$D/mnt/big" bs=1M count=20 status=none conv=fsync || fail "file write"
rm "$D/mnt/big"
sync
out=$(fstrim -v "$D/mnt") || fail "fstrim failed"
echo "$out"
bytes=$(echo "$out" | sed -n 's/.*(\([0-9]*\) bytes) trimmed.*/\1/p')
[ "${bytes:-0}" -ge $((16 << 20)) ] || fail "fstrim trimmed ${bytes:-0} bytes"
umount_dir "$D/mnt"
echo "discards=$(sysattr "$dev" discards) errors=$(sysattr "$dev" errors)"
[ "$(sysattr "$dev" discards)" -gt 0 ] || fail "discards counter is 0"
[ "$(sysattr "$dev" errors)" = 0 ] || fail "errors counter is not 0"
detach "$dev"
stop_server "$S"
log "ok"
