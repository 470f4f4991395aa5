#!/bin/bash
# timeout: 600
# Client cache coherence: bad --cache-size values are refused; --cache-size
# is refused (clear message, exit 1, no device) on a read-only session of a
# read-write export; a failed write (server out of space) leaves no data in
# the cache; three read-only clients with caches on a --read-only server
# read correct data and hit; after the server restarts (a new session) with
# the backing file changed behind it, the client reads the new data, not
# its cache; a reconnect into the same session keeps the cache.
set -eu
. "$REPO/tests/vm/lib.sh"
trap nd_cleanup EXIT

D=$CASE_DIR
nd_keygen "$D/key"

log "bad --cache-size values"
truncate -s 32M "$D/rw.img"
start_server S --file "$D/rw.img" --key-file "$D/key"
url="netdisk://127.0.0.1:$(srv_port "$S")"
expect_rc 2 "$ND" attach "$url" --key-file "$D/key" --cache-size 1x
expect_rc 2 "$ND" attach "$url" --key-file "$D/key" --cache-size 100
"$ND" attach "$url" --key-file "$D/key" --cache-size 64T 2>"$D/big.err" && fail "64T cache attached"
cat "$D/big.err"
grep -q "cache-size larger than memory" "$D/big.err" || fail "no clear message for a cache larger than memory"
no_devices_left || fail "device left after refused attach"

log "refused on a read-only session of a read-write export"
attach w "$url" --key-file "$D/key"
rc=0
"$ND" attach "$url" --key-file "$D/key" --read-only --cache-size 4M 2>"$D/ro.err" || rc=$?
cat "$D/ro.err"
[ "$rc" = 1 ] || fail "read-only attach with cache exited $rc, wanted 1"
grep -q -- "--cache-size refused: others may write this export" "$D/ro.err" ||
	fail "no clear refusal message"
[ "$(ls -d /sys/block/netdisk* | wc -l)" = 1 ] || fail "a device was left by the refused attach"
attach r "$url" --key-file "$D/key" --read-only
[ "$(sysattr "$r" cache_size)" = 0 ] || fail "cache_size not 0 without --cache-size"
detach "$r"
detach "$w"
stop_server "$S"

log "a failed write (server out of space) leaves nothing in the cache"
mkdir -p "$D/small"
mount -t tmpfs -o size=4M tmpfs "$D/small" || fail "mount tmpfs"
_nd_mounts+=("$D/small")
truncate -s 32M "$D/small/disk.img"
start_server S --file "$D/small/disk.img" --key-file "$D/key"
attach dev "netdisk://127.0.0.1:$(srv_port "$S")" --key-file "$D/key" --cache-size 8M
dd if="$dev" of=/dev/null bs=1M skip=16 count=1 iflag=direct status=none || fail "read"
dd if="$dev" of=/dev/null bs=1M skip=16 count=1 iflag=direct status=none || fail "re-read"
[ "$(sysattr "$dev" cache_hits)" -ge 256 ] || fail "range not cached"
# Fill the server's filesystem.
dd if=/dev/urandom of="$dev" bs=64k count=128 oflag=direct status=none 2>/dev/null &&
	fail "8 MiB written to a 4 MiB filesystem"
dd if=/dev/urandom of="$D/new.bin" bs=1M count=1 status=none
dd if="$D/new.bin" of="$dev" bs=1M seek=16 oflag=direct status=none 2>/dev/null &&
	fail "write to a full filesystem succeeded"
cmp <(dd if="$dev" bs=1M skip=16 count=1 iflag=direct status=none) \
	<(dd if="$D/small/disk.img" bs=1M skip=16 count=1 status=none) ||
	fail "device shows data the server does not hold after a failed write"
log "errors=$(sysattr "$dev" errors) (the failed writes)"
detach "$dev"
stop_server "$S"
umount_dir "$D/small"

log "three read-only clients with caches on a --read-only export"
dd if=/dev/urandom of="$D/ro.img" bs=1M count=16 status=none
start_server S --file "$D/ro.img" --key-file "$D/key" --read-only
url="netdisk://127.0.0.1:$(srv_port "$S")"
attach a "$url" --key-file "$D/key" --cache-size 4M
attach b "$url" --key-file "$D/key" --cache-size 4M --read-only
attach c "$url" --key-file "$D/key" --cache-size 2M --read-only --connections 1
sum=$(sha256sum <"$D/ro.img")
for pass in 1 2; do
	pids=()
	for dev in "$a" "$b" "$c"; do
		(dd if="$dev" bs=256k iflag=direct status=none | sha256sum >"$D/sum-${dev#/dev/}") &
		pids+=($!)
	done
	for p in "${pids[@]}"; do wait "$p" || fail "parallel read failed"; done
	for dev in "$a" "$b" "$c"; do
		[ "$(cat "$D/sum-${dev#/dev/}")" = "$sum" ] || fail "$dev: pass $pass read wrong data"
	done
done
for dev in "$a" "$b" "$c"; do
	h0=$(sysattr "$dev" cache_hits)
	dd if="$dev" bs=4k skip=3840 count=256 iflag=direct status=none |
		cmp - <(dd if="$D/ro.img" bs=4k skip=3840 count=256 status=none) ||
		fail "$dev: tail re-read differs"
	h1=$(sysattr "$dev" cache_hits)
	log "$dev: hits $h0 -> $h1, used $(sysattr "$dev" cache_used) of $(sysattr "$dev" cache_size), evictions $(sysattr "$dev" cache_evictions)"
	[ "$h1" -ge $((h0 + 256)) ] || fail "$dev: re-read of the last 1 MiB did not hit"
	[ "$(sysattr "$dev" cache_evictions)" -gt 0 ] || fail "$dev: no evictions"
	[ "$(sysattr "$dev" cache_used)" -le "$(sysattr "$dev" cache_size)" ] || fail "$dev: used > size"
done
detach "$a"
detach "$b"
detach "$c"
stop_server "$S"

log "server restart (new session), file changed behind it: the cache is dropped"
port=$((_nd_port + 50))
serve_on S "$port" --file "$D/rw.img" --key-file "$D/key"
attach dev "netdisk://127.0.0.1:$port" --key-file "$D/key" --cache-size 16M --connections 2
dd if=/dev/urandom of="$D/old.bin" bs=1M count=2 status=none
dd if=/dev/urandom of="$D/new.bin" bs=1M count=2 status=none
dd if="$D/old.bin" of="$dev" bs=1M oflag=direct status=none || fail "write old"
dd if="$dev" bs=1M count=2 iflag=direct status=none | cmp - "$D/old.bin" || fail "read old"
u0=$(sysattr "$dev" cache_used)
[ "$u0" -ge $((2 << 20)) ] || fail "old data not cached (used $u0)"
stop_server "$S"
dd if="$D/new.bin" of="$D/rw.img" bs=1M conv=notrunc status=none
sleep 1
serve_on S "$port" --file "$D/rw.img" --key-file "$D/key"
wait_reconnects "$dev" 1
for ((i = 0; i < 60; i++)); do
	[ "$(sysattr "$dev" state)" = connected ] && break
	sleep 0.5
done
[ "$(sysattr "$dev" state)" = connected ] || fail "not reconnected: state $(sysattr "$dev" state)"
log "reconnected: cache_used $u0 -> $(sysattr "$dev" cache_used)"
dmesg | grep -q "${dev#/dev/}: session unknown to the server, starting a new one" ||
	fail "no new session after the restart"
dd if="$dev" bs=1M count=2 iflag=direct status=none | cmp - "$D/new.bin" ||
	fail "read old cached data after the server restarted with a changed file"
detach "$dev"

log "a reconnect into the same session keeps the cache"
attach dev "netdisk://127.0.0.1:$port" --key-file "$D/key" --cache-size 16M \
	--connections 1 --timeout 4
dd if="$D/old.bin" of="$dev" bs=1M oflag=direct status=none || fail "write"
u0=$(sysattr "$dev" cache_used)
n0=$(dmesg | grep -c "session unknown" || true)
kill -STOP "$(srv_pid "$S")"
# An uncached read times out (4 s): the connection breaks and is retried.
dd if="$dev" of=/dev/null bs=4k count=1 skip=4000 iflag=direct status=none &
dd_pid=$!
echo "$dd_pid" >>"$D/pids"
sleep 8
kill -CONT "$(srv_pid "$S")"
wait_reconnects "$dev" 1
wait "$dd_pid" || fail "held read failed"
n1=$(dmesg | grep -c "session unknown" || true)
u1=$(sysattr "$dev" cache_used)
log "reconnects=$(sysattr "$dev" reconnects), cache_used $u0 -> $u1"
[ "$n1" = "$n0" ] || fail "the reconnect started a new session"
[ "$u1" -ge "$u0" ] || fail "cache shrank across a same-session reconnect ($u0 -> $u1)"
kill -STOP "$(srv_pid "$S")"
rc=0
timeout 60 dd if="$dev" of="$D/again.bin" bs=1M count=2 iflag=direct status=none || rc=$?
kill -CONT "$(srv_pid "$S")"
[ "$rc" = 0 ] || fail "cached re-read after the reconnect exited $rc (cache not kept)"
cmp "$D/again.bin" "$D/old.bin" || fail "cached re-read differs"
detach "$dev"
stop_server "$S"
log "ok"
