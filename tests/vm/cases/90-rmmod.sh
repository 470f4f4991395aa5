#!/bin/bash
# timeout: 180
# After attach/detach cycles the module unloads cleanly, the CLI then
# says it is not loaded (exit 9), and it loads again with a passing self-test.
set -eu
. "$REPO/tests/vm/lib.sh"
trap nd_cleanup EXIT

D=$CASE_DIR
nd_keygen "$D/key"
truncate -s 8M "$D/disk.img"
start_server S --file "$D/disk.img" --key-file "$D/key"
log "10 attach/detach cycles"
for ((i = 0; i < 10; i++)); do
	attach dev "netdisk://127.0.0.1:$(srv_port "$S")" --key-file "$D/key"
	dd if="$dev" of=/dev/null bs=64k count=2 iflag=direct status=none || fail "read $i"
	detach "$dev"
done
no_devices_left || fail "devices left"
log "rmmod"
rmmod netdisk || fail "rmmod netdisk failed"
grep -q '^netdisk ' /proc/modules && fail "module still listed"
[ -e /dev/netdisk-control ] && fail "/dev/netdisk-control still present"
expect_rc 9 "$ND" attach "netdisk://127.0.0.1:$(srv_port "$S")" --key-file "$D/key"
log "insmod again"
dmesg -C
insmod "$KO" || fail "insmod after rmmod failed"
dmesg | grep -i netdisk || true
dmesg | grep -Eiq 'netdisk.*(self-?test.*(pass|ok)|loaded)' || fail "no self-test/loaded line on reload"
dmesg | grep -Eiq 'netdisk.*self-?test.*fail' && fail "self-test failed on reload"
rc=0; insmod "$KO" 2>/dev/null || rc=$?
[ "$rc" != 0 ] || fail "second insmod succeeded"
attach dev "netdisk://127.0.0.1:$(srv_port "$S")" --key-file "$D/key"
detach "$dev"
stop_server "$S"
log "ok"
