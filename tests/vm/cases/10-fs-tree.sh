#!/bin/bash
# timeout: 600
# tree: 3000 42
# ext4 on netdisk: copy a tree of 3000 files, detach, reattach, verify every
# checksum, fsck clean; the server's backing file holds the same filesystem.
set -eu
. "$REPO/tests/vm/lib.sh"
trap nd_cleanup EXIT

D=$CASE_DIR
nd_keygen "$D/key"
truncate -s 96M "$D/disk.img"
start_server S --file "$D/disk.img" --key-file "$D/key" --export fs
url="netdisk://127.0.0.1:$(srv_port "$S")/fs"

log "unpacking the host's tree of 3000 files"
host_tree "$D/src" 3000 42
du -sh "$D/src"

attach dev "$url" --key-file "$D/key"
log "attached $dev"
[ "$(blockdev --getsize64 "$dev")" = $((96 << 20)) ] || fail "wrong size"
[ "$(sysattr "$dev" export)" = fs ] || fail "sysfs export is not 'fs'"
[ "$(blockdev --getro "$dev")" = 0 ] || fail "read-write device is read-only"
mkfs.ext4 -q -F "$dev" || fail "mkfs.ext4 failed"
mount_dev "$dev" "$D/mnt"
log "copying"
cp -a "$D/src/." "$D/mnt/" || fail "cp failed"
sync
df -h "$D/mnt" | tail -n 1
umount_dir "$D/mnt"
detach "$dev"
no_devices_left || fail "device still present after detach"

attach dev "$url" --key-file "$D/key"
log "reattached $dev"
mount_dev "$dev" "$D/mnt" -o ro
sums "$D/mnt" | grep -v ' ./lost+found' >"$D/dev.sums" || true
cmp -s "$D/src.sums" "$D/dev.sums" || {
	diff "$D/src.sums" "$D/dev.sums" | head
	fail "checksums differ after reattach"
}
umount_dir "$D/mnt"
fsck.ext4 -fn "$dev" || fail "fsck -fn of the device is not clean"
detach "$dev"
stop_server "$S"

log "checking the server's backing file"
fsck.ext4 -fn "$D/disk.img" || fail "fsck -fn of the backing file is not clean"
# No udev: /dev/loop-control appears only once loop is loaded.
modprobe loop || fail "modprobe loop"
mount_dev "$D/disk.img" "$D/img" -o loop,ro
sums "$D/img" >"$D/img.sums"
cmp -s "$D/src.sums" "$D/img.sums" || fail "backing file checksums differ"
umount_dir "$D/img"
log "ok: 3000 files verified on the device and in the backing file"
