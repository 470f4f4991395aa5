#!/bin/bash
# timeout: 120
# The module is loaded (by the runner), its crypto self-test ran and passed,
# the control device exists, `netdisk list` works with nothing attached.
set -eu
. "$REPO/tests/vm/lib.sh"

grep -q '^netdisk ' /proc/modules || fail "netdisk module not loaded"
[ -c /dev/netdisk-control ] || fail "/dev/netdisk-control missing"
dm="$VMOUT/setup.dmesg"
[ -f "$dm" ] || fail "no $dm from the runner"
grep -i 'netdisk' "$dm" | sed 's/^/  dmesg: /'
# nd_init refuses to load when its crypto self-test fails, so "loaded"
# after no self-test error means the self-test ran and passed.
grep -Eiq 'netdisk.*(self-?test.*(pass|ok)|loaded)' "$dm" ||
	fail "no self-test/loaded line from netdisk.ko in dmesg at load"
grep -Eiq 'netdisk.*self-?test.*fail' "$dm" && fail "self-test reported a failure"
out=$("$ND" list) || fail "netdisk list exited $?"
echo "netdisk list: '$out'"
echo "$out" | grep -q '/dev/netdisk' && fail "list shows devices but none are attached"
no_devices_left || fail "a netdisk device exists before any attach"
log "ok"
