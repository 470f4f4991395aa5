#!/bin/bash
# timeout: 300
# tree: 200 7
# A read-only export gives read-only devices (two clients at once) that
# mount -o ro and refuse writes; a read-only attach of a read-write export
# refuses writes too. The backing file is never modified.
set -eu
. "$REPO/tests/vm/lib.sh"
trap nd_cleanup EXIT

D=$CASE_DIR
nd_keygen "$D/key"
host_tree "$D/src" 200 7
truncate -s 32M "$D/ro.img"
mkfs.ext4 -q -F -d "$D/src" "$D/ro.img" || fail "mkfs.ext4 -d"
sha_before=$(sha256sum <"$D/ro.img")
start_server S --file "$D/ro.img" --key-file "$D/key" --read-only --export ro
url="netdisk://127.0.0.1:$(srv_port "$S")/ro"

attach a "$url" --key-file "$D/key"
attach b "$url" --key-file "$D/key" --read-only
log "two clients on the read-only export: $a $b"
for dev in "$a" "$b"; do
	[ "$(blockdev --getro "$dev")" = 1 ] || fail "$dev: blockdev --getro is not 1"
	[ "$(sysattr "$dev" read_only)" = 1 ] || fail "$dev: sysfs read_only is not 1"
	if dd if=/dev/zero of="$dev" bs=4k count=1 oflag=direct status=none 2>/dev/null; then
		fail "$dev: direct write to a read-only device succeeded"
	fi
done
mount_dev "$a" "$D/ma" -o ro
mount_dev "$b" "$D/mb" -o ro
sums "$D/ma" | grep -v ' ./lost+found' >"$D/a.sums" || true
sums "$D/mb" | grep -v ' ./lost+found' >"$D/b.sums" || true
cmp -s "$D/src.sums" "$D/a.sums" || fail "files differ on $a"
cmp -s "$D/src.sums" "$D/b.sums" || fail "files differ on $b"
if touch "$D/ma/new" 2>/dev/null; then fail "created a file on a ro mount"; fi
umount_dir "$D/ma"
umount_dir "$D/mb"
detach "$a"
detach "$b"
stop_server "$S"
[ "$(sha256sum <"$D/ro.img")" = "$sha_before" ] || fail "read-only export was modified"

log "read-only attach of a read-write export"
truncate -s 16M "$D/rw.img"
start_server S --file "$D/rw.img" --key-file "$D/key"
attach c "netdisk://127.0.0.1:$(srv_port "$S")" --key-file "$D/key" --read-only
[ "$(blockdev --getro "$c")" = 1 ] || fail "$c: blockdev --getro is not 1"
if dd if=/dev/urandom of="$c" bs=4k count=1 oflag=direct status=none 2>/dev/null; then
	fail "$c: direct write succeeded on a --read-only attach"
fi
detach "$c"
stop_server "$S"
cmp -s "$D/rw.img" <(head -c 16M /dev/zero) || fail "rw.img was written"
log "ok"
