#!/bin/bash
# timeout: 300
# Several devices at once, to different servers and exports (one with its
# own key), with concurrent I/O; sysfs and `netdisk list` tell them apart.
set -eu
. "$REPO/tests/vm/lib.sh"
trap nd_cleanup EXIT

D=$CASE_DIR
nd_keygen "$D/k1"
nd_keygen "$D/k2"
truncate -s 24M "$D/alpha.img"
truncate -s 40M "$D/beta.img"
truncate -s 8M "$D/gamma.img"
head -c 8M /dev/urandom >"$D/gamma.img"
start_server S1 --file "$D/alpha.img" --key-file "$D/k1" --export alpha
start_server S2 --file "$D/beta.img" --key-file "$D/k2" --export beta
start_server S3 --file "$D/gamma.img" --key-file "$D/k1" --export gamma --read-only
attach a "netdisk://127.0.0.1:$(srv_port "$S1")/alpha" --key-file "$D/k1"
attach b "netdisk://127.0.0.1:$(srv_port "$S2")/beta" --key-file "$D/k2"
attach c "netdisk://127.0.0.1:$(srv_port "$S3")/gamma" --key-file "$D/k1"
attach c2 "netdisk://127.0.0.1:$(srv_port "$S3")/gamma" --key-file "$D/k1"
log "attached $a $b $c $c2"
[ "$(printf '%s\n' "$a" "$b" "$c" "$c2" | sort -u | wc -l)" = 4 ] ||
	fail "device names are not distinct"
[ "$(blockdev --getsize64 "$a")" = $((24 << 20)) ] || fail "$a size"
[ "$(blockdev --getsize64 "$b")" = $((40 << 20)) ] || fail "$b size"
[ "$(blockdev --getsize64 "$c")" = $((8 << 20)) ] || fail "$c size"
[ "$(sysattr "$a" export)" = alpha ] || fail "$a export"
[ "$(sysattr "$b" export)" = beta ] || fail "$b export"
[ "$(sysattr "$c" export)" = gamma ] || fail "$c export"
sysattr "$b" server | grep -q ":$(srv_port "$S2")" || fail "$b server attribute"
[ "$(blockdev --getro "$c")" = 1 ] || fail "$c is not read-only"
[ "$(blockdev --getro "$a")" = 0 ] || fail "$a is read-only"
"$ND" list | tee "$D/list"
for d in "$a" "$b" "$c" "$c2"; do
	grep -q "$d" "$D/list" || fail "netdisk list lacks $d"
done

log "concurrent writes to $a and $b, reads of $c and $c2"
head -c 24M /dev/urandom >"$D/ra"
head -c 40M /dev/urandom >"$D/rb"
dd if="$D/ra" of="$a" bs=256k oflag=direct status=none & p1=$!
dd if="$D/rb" of="$b" bs=1M oflag=direct status=none & p2=$!
sha256sum <"$c" >"$D/c.sum" & p3=$!
dd if="$c2" bs=64k iflag=direct status=none | sha256sum >"$D/c2.sum" & p4=$!
for p in $p1 $p2 $p3 $p4; do wait "$p" || fail "concurrent I/O job failed"; done
want=$(sha256sum <"$D/gamma.img")
[ "$(cat "$D/c.sum")" = "$want" ] || fail "$c content"
[ "$(cat "$D/c2.sum")" = "$want" ] || fail "$c2 content"
cmp "$a" "$D/ra" || fail "$a content"
cmp "$b" "$D/rb" || fail "$b content"

log "detaching in a different order than attached"
for d in "$b" "$c2" "$a" "$c"; do detach "$d"; done
no_devices_left || fail "devices left after detaching all"
cmp "$D/alpha.img" "$D/ra" || fail "alpha.img content"
cmp "$D/beta.img" "$D/rb" || fail "beta.img content"
stop_server "$S1"; stop_server "$S2"; stop_server "$S3"
log "ok"
