#!/bin/bash
# timeout: 240
# A write-back error on the server is never swallowed. netdiskd serves a dm
# device whose middle 8 MiB fail every I/O (dm-error; the rest is linear,
# and cache flushes succeed, as on a disk with bad sectors): the client's
# writes there are acknowledged from netdiskd's page cache and lost when
# written back. Then a read-only session's FLUSH must succeed without
# taking the error, and every FLUSH and FUA write of the writer, on either
# of its two queues and also outside the bad range, must fail.
set -eu
. "$REPO/tests/vm/lib.sh"

D=$CASE_DIR
DM=ndwb
expire=$(cat /proc/sys/vm/dirty_expire_centisecs)
cleanup() {
	nd_cleanup
	echo "$expire" >/proc/sys/vm/dirty_expire_centisecs
	[ -n "${bdi:-}" ] && echo 0 >"$bdi/min_ratio" 2>/dev/null
	sleep 0.5	# the killed netdiskd lets go of the device
	dmsetup remove --retry "$DM" 2>/dev/null
	[ -n "${loopdev:-}" ] && losetup -d "$loopdev" 2>/dev/null
	return 0
}
trap cleanup EXIT

modprobe dm_mod || fail "modprobe dm_mod"
modprobe loop || fail "modprobe loop"
nd_keygen "$D/key"
truncate -s 32M "$D/back.img"
loopdev=$(losetup -f --show "$D/back.img") || fail "losetup"
sectors=$(blockdev --getsz "$loopdev")
bad0=16384 bad1=32768	# sectors: 8 MiB .. 16 MiB fail
dmsetup create "$DM" <<EOT || fail "dmsetup create"
0 $bad0 linear $loopdev 0
$bad0 $((bad1 - bad0)) error
$bad1 $((sectors - bad1)) linear $loopdev $bad1
EOT
# No udev in the guest: /dev/mapper/$DM is not made, devtmpfs's /dev/dm-N is.
dm=$(dmsetup info -c --noheadings -o blkdevname "$DM") || fail "dmsetup info"
[ -b "/dev/$dm" ] || fail "/dev/$dm is not a block device"
# The acknowledged writes must stay dirty in netdiskd's page cache until a
# FLUSH: no expiry, and a background threshold share for this new device
# (it has no write-back history, so its share would be 0).
echo 360000 >/proc/sys/vm/dirty_expire_centisecs
bdi=/sys/class/bdi/$(cat "/sys/block/$dm/dev")
echo 50 >"$bdi/min_ratio" || fail "cannot set $bdi/min_ratio"

start_server S --file "/dev/$dm" --key-file "$D/key" --workers 2
url="netdisk://127.0.0.1:$(srv_port "$S")"
attach W "$url" --key-file "$D/key" --connections 2
attach R "$url" --key-file "$D/key" --read-only
[ "$(sysattr "$W" connections)" = 2 ] || fail "writer has $(sysattr "$W" connections) connections, wanted 2"

dd if=/dev/urandom of="$W" bs=64k seek=128 count=64 oflag=direct status=none ||
	fail "write"
[ "$(awk '{print $5}' "/sys/block/$dm/stat")" = 0 ] ||
	fail "writes reached $dm before the FLUSH: cannot lose them"
log "4 MiB acknowledged, still in the server's page cache; the sectors under it fail"

bad=""
check() {	# check WANT(ok|fail) WHAT CMD...
	local want=$1 what=$2 got=ok
	shift 2
	"$@" 2>/dev/null || got=fail
	log "$what: $got"
	[ "$got" = "$want" ] || bad="$bad; $what: $got, wanted $want"
}
f0=$(sysattr "$R" flushes)
check ok "read-only session FLUSH" sync "$R"
[ "$(sysattr "$R" flushes)" -gt "$f0" ] || bad="$bad; no FLUSH counted on the read-only device"
check fail "writer FLUSH, queue 0" taskset -c 0 sync "$W"
check fail "writer FLUSH, queue 1" taskset -c 1 sync "$W"
check fail "writer FLUSH, queue 0 again" taskset -c 0 sync "$W"
check fail "writer FUA write (good sectors)" dd if=/dev/zero of="$W" bs=4k count=1 seek=4096 \
	oflag=direct,dsync status=none
check ok "read-only session FLUSH again" sync "$R"
slog="$CASE_DIR/netdiskd-$(srv_port "$S").log"
grep -q "write-back failed" "$slog" || bad="$bad; no 'write-back failed' in the server log"
[ -z "$bad" ] || { cat "$slog"; fail "${bad#; }"; }
detach "$R"
detach "$W"
stop_server "$S"
log "the lost write-back failed every later FLUSH and FUA write of the writer"
