#!/bin/bash
# timeout: 180
# Status 16 "base image of the overlay changed" (a copy-on-write export
# whose base was replaced under the identity's overlay), from ndevil: an
# attach fails at once with exit 13, one handshake, one kernel log line,
# no device; a device whose reconnect is so refused (base-changed-later:
# the connection closed at a READ, every later handshake answered 16)
# fails at once like "written by another client": EIO long before
# --reconnect-timeout, state dead, no further attempt, detach works.
set -eu
. "$REPO/tests/vm/lib.sh"
trap nd_cleanup EXIT

D=$CASE_DIR
nd_keygen "$D/key"
head -c 4M /dev/urandom >"$D/evil.img"
# evil MODE: tests/tools/ndevil on a fresh port; sets eport and evil_pid.
evil() {
	local i
	eport=""
	"$O/tools/ndevil" --listen 127.0.0.1:0 --key-file "$D/key" \
		--file "$D/evil.img" --mode "$1" --at 1048576 \
		>"$D/evil.out" 2>"$D/evil-$1.log" &
	evil_pid=$!
	echo "$evil_pid" >>"$D/pids"
	for ((i = 0; i < 100; i++)); do
		eport=$(sed -n 's/^port //p' "$D/evil.out")
		[ -n "$eport" ] && return 0
		sleep 0.1
	done
	fail "ndevil --mode $1 did not start: $(cat "$D/evil-$1.log")"
}

log "attach refused with status 16: exit 13 at once"
evil base-changed
t0=$(date +%s)
rc=0
timeout 60 "$ND" attach "netdisk://127.0.0.1:$eport/e1" --key-file "$D/key" \
	>"$D/out" 2>"$D/err" || rc=$?
cat "$D/err"
[ "$rc" = 13 ] || fail "attach: exit $rc, want 13"
grep -q 'server refused: base image of the overlay changed' "$D/err" ||
	fail "attach: no 'base image of the overlay changed' line"
[ "$(wc -l <"$D/err")" = 1 ] || fail "attach: more than one line"
[ $(($(date +%s) - t0)) -le 20 ] || fail "the refusal took $(($(date +%s) - t0)) s"
no_devices_left || fail "a refused attach left a device"
[ "$(dmesg | grep -c 'server refused: base image of the overlay changed')" = 1 ] ||
	fail "not one kernel log line for the refusal"
[ "$(grep -c 'base-changed: session info .* status 16' "$D/evil-base-changed.log")" = 1 ] ||
	fail "attach retried: $(grep -c 'session info' "$D/evil-base-changed.log") handshakes"
kill "$evil_pid"

log "base changed while the device reconnects: failed at once"
evil base-changed-later
attach dev "netdisk://127.0.0.1:$eport/e1" --key-file "$D/key" \
	--reconnect-timeout 60 --connections 1
dd if="$dev" of=/dev/null bs=4k count=1 iflag=direct status=none ||
	fail "read before the base changed"
t0=$(date +%s)
rc=0
timeout 120 dd if="$dev" of=/dev/null bs=4k count=1 skip=256 iflag=direct \
	2>"$D/dd.err" || rc=$?
t=$(( $(date +%s) - t0 ))
cat "$D/dd.err"
log "read: exit $rc after $t s, state=$(sysattr "$dev" state)"
[ "$rc" != 124 ] || fail "read hung for 120 s"
grep -q 'Input/output error' "$D/dd.err" || fail "read did not fail with EIO"
# The first reconnect attempt is refused: far below the 60 s timeout.
[ "$t" -le 30 ] || fail "EIO after $t s: retried instead of giving up"
[ "$(sysattr "$dev" state)" = dead ] || fail "state is not dead"
L=$D/evil-base-changed-later.log
grep -q 'base-changed-later: closing' "$L" || fail "ndevil changed nothing"
n=$(grep -c 'base-changed-later: session info .* status 16' "$L" || true)
[ "$n" = 1 ] || fail "$n reconnect handshakes refused with 16, want 1"
dmesg | grep -q "${dev#/dev/}: base image of the overlay changed on the server, giving up" ||
	fail "no giving-up line in the kernel log"
sleep 3
[ "$(grep -c 'status 16' "$L")" = 1 ] ||
	fail "reconnect attempts went on after the device failed"
rc=0
dd if="$dev" of=/dev/null bs=4k count=1 iflag=direct status=none 2>/dev/null || rc=$?
[ "$rc" != 0 ] || fail "a dead device still reads"
timeout 30 "$ND" detach "$dev" || fail "detach of a dead device"
no_devices_left || fail "device left after detach"
log "ok"
