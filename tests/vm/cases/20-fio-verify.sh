#!/bin/bash
# timeout: 480
# fio, O_DIRECT libaio at iodepth 32, block sizes 4k..1M, crc32c verify on
# the raw device; then the same workload read back after a reattach.
set -eu
. "$REPO/tests/vm/lib.sh"
trap nd_cleanup EXIT

D=$CASE_DIR
nd_keygen "$D/key"
truncate -s 64M "$D/disk.img"
start_server S --file "$D/disk.img" --key-file "$D/key"
url="netdisk://127.0.0.1:$(srv_port "$S")"
attach dev "$url" --key-file "$D/key"

common=(--filename="$dev" --direct=1 --ioengine=libaio --iodepth=32
	--verify=crc32c --verify_fatal=1 --do_verify=1 --group_reporting
	--verify_state_save=0)
log "fio: random writes 4k..1M + sequential 128k writes, verify crc32c"
fio --output="$D/fio.out" "${common[@]}" \
	--name=rand --rw=randwrite --bsrange=4k-1m --offset=0 --size=32m \
	--name=seq --rw=write --bs=128k --offset=32m --size=16m \
	--name=small --rw=randwrite --bs=4k --offset=48m --size=8m ||
	{ cat "$D/fio.out"; fail "fio write+verify failed"; }
grep -E 'WRITE:|READ:|err=' "$D/fio.out"
grep -q 'err= 0' "$D/fio.out" || fail "fio reported errors"
for a in reads writes read_bytes write_bytes errors; do
	printf '%s=%s ' "$a" "$(sysattr "$dev" "$a")"
done
echo
[ "$(sysattr "$dev" writes)" -gt 0 ] || fail "sysfs writes counter is 0"
[ "$(sysattr "$dev" write_bytes)" -ge $((56 << 20)) ] || fail "sysfs write_bytes < 56 MiB"
[ "$(sysattr "$dev" errors)" = 0 ] || fail "sysfs errors counter is not 0"

detach "$dev"
attach dev "$url" --key-file "$D/key"
log "fio: verify-only pass after reattach"
fio --output="$D/fio2.out" "${common[@]/--do_verify=1/--verify_only=1}" \
	--name=rand --rw=randwrite --bsrange=4k-1m --offset=0 --size=32m \
	--name=seq --rw=write --bs=128k --offset=32m --size=16m \
	--name=small --rw=randwrite --bs=4k --offset=48m --size=8m ||
	{ cat "$D/fio2.out"; fail "fio verify after reattach failed"; }
grep -E 'READ:|err=' "$D/fio2.out"
detach "$dev"
stop_server "$S"
log "ok"
