#!/bin/bash
# timeout: 600
# Client cache (--cache-size) on a read-write export: O_DIRECT re-reads are
# served from memory (the server is SIGSTOPped meanwhile: a read that went
# to it would hang), written data is what the server holds and is cached
# once acknowledged, write-zeroes and discard invalidate, fio crc32c verify
# (write+verify, randrw, verify-only) with a cache 4x smaller than the
# working set, counters (hits, misses, evictions, used <= size), the
# shrinker (drop_caches) frees cache memory, list -v shows the cache.
set -eu
. "$REPO/tests/vm/lib.sh"
trap nd_cleanup EXIT

D=$CASE_DIR
nd_keygen "$D/key"
truncate -s 64M "$D/disk.img"
start_server S --file "$D/disk.img" --key-file "$D/key"
url="netdisk://127.0.0.1:$(srv_port "$S")"
attach dev "$url" --key-file "$D/key" --cache-size 8M --connections 2

cache() {	# one line of cache counters
	local a
	for a in cache_size cache_used cache_hits cache_misses cache_evictions reads errors; do
		printf '%s=%s ' "${a#cache_}" "$(sysattr "$dev" "$a")"
	done
	echo
}
[ "$(sysattr "$dev" cache_size)" = $((8 << 20)) ] || fail "cache_size is not 8 MiB"
[ "$(sysattr "$dev" cache_used)" -le $((8 << 20)) ] || fail "cache_used > size"

log "O_DIRECT re-read of 4 MiB is served from the cache"
dd if=/dev/urandom of="$D/a.bin" bs=1M count=4 status=none
dd if="$D/a.bin" of="$dev" bs=1M seek=4 oflag=direct status=none || fail "write 4 MiB"
cmp -n 4194304 "$D/a.bin" <(dd if="$D/disk.img" bs=1M skip=4 count=4 status=none) ||
	fail "server file does not hold the written data"
dd if="$dev" of="$D/r1.bin" bs=64k skip=64 count=64 iflag=direct status=none || fail "read 1"
cmp "$D/a.bin" "$D/r1.bin" || fail "first read differs"
cache
h0=$(sysattr "$dev" cache_hits)
r0=$(sysattr "$dev" reads)
kill -STOP "$(srv_pid "$S")"
rc=0
timeout 60 dd if="$dev" of="$D/r2.bin" bs=64k skip=64 count=64 iflag=direct status=none || rc=$?
r1=$(sysattr "$dev" reads)
kill -CONT "$(srv_pid "$S")"
[ "$rc" = 0 ] || fail "re-read with the server stopped exited $rc (not served from the cache)"
cmp "$D/a.bin" "$D/r2.bin" || fail "re-read from the cache differs"
h1=$(sysattr "$dev" cache_hits)
cache
[ "$r1" = "$r0" ] || fail "server reads grew $r0 -> $r1 during a cached re-read"
[ "$h1" -ge $((h0 + 1024)) ] || fail "cache_hits grew $h0 -> $h1, wanted +1024 pages"

log "write-through: new data reaches the server, then is read from the cache"
dd if=/dev/urandom of="$D/b.bin" bs=1M count=1 status=none
dd if="$D/b.bin" of="$dev" bs=1M seek=5 oflag=direct status=none || fail "overwrite 1 MiB"
cmp -n 1048576 "$D/b.bin" <(dd if="$D/disk.img" bs=1M skip=5 count=1 status=none) ||
	fail "overwritten data not in the server's file"
r0=$(sysattr "$dev" reads)
h0=$(sysattr "$dev" cache_hits)
dd if="$dev" bs=1M skip=5 count=1 iflag=direct status=none | cmp - "$D/b.bin" ||
	fail "read after overwrite returns old data"
[ "$(sysattr "$dev" reads)" = "$r0" ] || fail "acknowledged write data was not cached"
[ "$(sysattr "$dev" cache_hits)" -ge $((h0 + 256)) ] || fail "no hits reading written data"
# Unaligned 512-byte write inside a cached page.
head -c 512 /dev/urandom >"$D/c.bin"
dd if="$D/c.bin" of="$dev" bs=512 seek=$(( (4 << 20) / 512 + 3 )) oflag=direct status=none ||
	fail "512-byte write"
dd if="$dev" bs=4k skip=1024 count=1 iflag=direct status=none >"$D/p.bin" || fail "read page"
cmp -n 4096 "$D/p.bin" <(dd if="$D/disk.img" bs=4k skip=1024 count=1 status=none) ||
	fail "page with a 512-byte write differs from the server"
cmp -i 1536:0 -n 512 "$D/p.bin" "$D/c.bin" || fail "512-byte write not read back"

log "write-zeroes and discard invalidate"
blkdiscard -z -o 4M -l 1M "$dev" || fail "blkdiscard -z"
dd if="$dev" bs=1M skip=4 count=1 iflag=direct status=none | cmp - <(head -c 1M /dev/zero) ||
	fail "cached data survived write-zeroes"
blkdiscard -o 6M -l 1M "$dev" || fail "blkdiscard"
dd if="$dev" bs=1M skip=6 count=1 iflag=direct status=none |
	cmp - <(dd if="$D/disk.img" bs=1M skip=6 count=1 status=none) ||
	fail "cached data survived discard"
cmp -n 1048576 <(dd if="$dev" bs=1M skip=7 count=1 iflag=direct status=none) \
	<(tail -c +$(( (3 << 20) + 1 )) "$D/a.bin") || fail "data after the discarded range changed"
cache

common=(--filename="$dev" --direct=1 --ioengine=libaio --iodepth=16
	--verify=crc32c --verify_fatal=1 --verify_state_save=0 --group_reporting)
log "fio: write+verify 4k..256k over 32 MiB with an 8 MiB cache"
fio --output="$D/fio1.out" "${common[@]}" --do_verify=1 --name=w \
	--rw=randwrite --bsrange=4k-256k --offset=16m --size=32m ||
	{ cat "$D/fio1.out"; fail "fio write+verify failed"; }
grep -q 'err= 0' "$D/fio1.out" || fail "fio reported errors"
cache
log "fio: verify-only pass, twice (reads fill and evict)"
for i in 1 2; do
	fio --output="$D/fio2.out" "${common[@]}" --verify_only=1 --name=w \
		--rw=randwrite --bsrange=4k-256k --offset=16m --size=32m ||
		{ cat "$D/fio2.out"; fail "fio verify-only pass $i failed"; }
done
cache
log "fio: randrw 4k with verify over 24 MiB"
fio --output="$D/fio3.out" "${common[@]}" --do_verify=1 --name=rw \
	--rw=randrw --rwmixread=50 --bs=4k --offset=40m --size=24m ||
	{ cat "$D/fio3.out"; fail "fio randrw verify failed"; }
grep -q 'err= 0' "$D/fio3.out" || fail "fio randrw reported errors"
cache
[ "$(sysattr "$dev" cache_evictions)" -gt 0 ] || fail "no evictions with a working set 4x the cache"
[ "$(sysattr "$dev" cache_used)" -le $((8 << 20)) ] || fail "cache_used > cache_size"
[ "$(sysattr "$dev" cache_used)" -gt 0 ] || fail "cache empty after fio"
[ "$(sysattr "$dev" cache_misses)" -gt 0 ] || fail "no misses"
[ "$(sysattr "$dev" errors)" = 0 ] || fail "errors counter is not 0"
cmp <(dd if="$dev" bs=1M iflag=direct status=none) "$D/disk.img" ||
	fail "device and server file differ after fio"

log "list -v shows the cache"
"$ND" list -v | tee "$D/list.out"
grep -q "cache 8.0 MiB, used" "$D/list.out" || fail "list -v has no cache line"

log "shrinker: drop_caches frees cache memory"
u0=$(sysattr "$dev" cache_used)
sync
echo 2 >/proc/sys/vm/drop_caches
u1=$(sysattr "$dev" cache_used)
log "cache_used $u0 -> $u1 after drop_caches"
[ "$u1" -lt "$u0" ] || fail "drop_caches did not shrink the cache ($u0 -> $u1)"
cmp <(dd if="$dev" bs=1M iflag=direct status=none) "$D/disk.img" ||
	fail "device and server file differ after shrinking"
cache
[ "$(sysattr "$dev" errors)" = 0 ] || fail "errors counter is not 0"

detach "$dev"
stop_server "$S"
dmesg | grep -qiE 'netdisk.*(leak|bad page)|BUG:' && fail "kernel complained"
log "ok"
