#!/bin/bash
# Bytes written through the device are the bytes in the server's file, and
# bytes put in the file read back through the device (direct and buffered).
# timeout: 300
set -eu
. "$REPO/tests/vm/lib.sh"
trap nd_cleanup EXIT

D=$CASE_DIR
nd_keygen "$D/key"
truncate -s 64M "$D/disk.img"
head -c 48M /dev/urandom >"$D/rand"
start_server S --file "$D/disk.img" --key-file "$D/key" --export data
url="netdisk://127.0.0.1:$(srv_port "$S")/data"
attach dev "$url" --key-file "$D/key"

log "writing 48 MiB of random data with O_DIRECT, 1M and odd 512 B writes"
dd if="$D/rand" of="$dev" bs=1M oflag=direct status=none || fail "dd to device"
# A lone sector at an odd offset and an unaligned buffered write.
head -c 512 /dev/urandom >"$D/sector"
dd if="$D/sector" of="$dev" bs=512 seek=100001 oflag=direct status=none ||
	fail "512 B direct write"
head -c 7000 /dev/urandom >"$D/odd"
dd if="$D/odd" of="$dev" bs=7000 seek=$(( (60 << 20) / 7000 )) \
	conv=notrunc status=none || fail "buffered odd write"
sync
blockdev --flushbufs "$dev"
cmp -n $((48 << 20)) "$dev" "$D/rand" || fail "device content differs (buffered read)"
cmp <(dd if="$dev" bs=1M count=48 iflag=direct status=none) "$D/rand" ||
	fail "device content differs (direct read)"
detach "$dev"
stop_server "$S"

log "comparing with the server's file"
cmp -n $((48 << 20)) "$D/disk.img" "$D/rand" || fail "backing file differs"
cmp <(dd if="$D/disk.img" bs=512 skip=100001 count=1 status=none) "$D/sector" ||
	fail "odd sector not in the backing file"
cmp <(dd if="$D/disk.img" bs=7000 skip=$(( (60 << 20) / 7000 )) count=1 \
	status=none) "$D/odd" || fail "odd buffered write not in the backing file"

log "preparing data in the file, reading it through the device"
dd if=/dev/urandom of="$D/disk.img" bs=1M seek=10 count=20 conv=notrunc \
	status=none
sha_file=$(sha256sum <"$D/disk.img")
start_server S --file "$D/disk.img" --key-file "$D/key" --export data
url="netdisk://127.0.0.1:$(srv_port "$S")/data"
attach dev "$url" --key-file "$D/key" --read-only
[ "$(dd if="$dev" bs=1M iflag=direct status=none | sha256sum)" = "$sha_file" ] ||
	fail "direct read of the whole device differs from the file"
[ "$(sha256sum <"$dev")" = "$sha_file" ] ||
	fail "buffered read of the whole device differs from the file"
detach "$dev"
stop_server "$S"
log "ok"
