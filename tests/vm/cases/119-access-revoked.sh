#!/bin/bash
# timeout: 180
# Access revoked while attached (the server closes the session, and every
# reconnect gets status 15 "access denied", as netdiskd does when a reload
# takes the identity off the export): like "no such export", each refusal
# is a failed reconnect attempt, logged once; held I/O fails with EIO when
# --reconnect-timeout expires, the device is dead and no attempt follows.
set -eu
. "$REPO/tests/vm/lib.sh"
trap nd_cleanup EXIT

D=$CASE_DIR
nd_keygen "$D/key"
head -c 4M /dev/urandom >"$D/evil.img"
"$O/tools/ndevil" --listen 127.0.0.1:0 --key-file "$D/key" \
	--file "$D/evil.img" --mode access-revoked --at 1048576 \
	>"$D/evil.out" 2>"$D/evil.log" &
echo "$!" >>"$D/pids"
for ((i = 0; i < 100; i++)); do
	eport=$(sed -n 's/^port //p' "$D/evil.out")
	[ -n "$eport" ] && break
	sleep 0.1
done
[ -n "$eport" ] || fail "ndevil did not start: $(cat "$D/evil.log")"

attach dev "netdisk://127.0.0.1:$eport/e1" --key-file "$D/key" \
	--reconnect-timeout 5 --connections 1
dd if="$dev" of=/dev/null bs=4k count=1 iflag=direct status=none ||
	fail "read before the revocation"
log "read at 1 MiB: the server revokes access"
t0=$(date +%s)
rc=0
timeout 120 dd if="$dev" of=/dev/null bs=4k count=1 skip=256 iflag=direct \
	2>"$D/dd.err" || rc=$?
t=$(( $(date +%s) - t0 ))
cat "$D/dd.err"
log "read: exit $rc after $t s, state=$(sysattr "$dev" state)"
[ "$rc" != 124 ] || fail "read hung for 120 s"
grep -q 'Input/output error' "$D/dd.err" || fail "read did not fail with EIO"
[ "$t" -ge 4 ] || fail "EIO after $t s, before the 5 s reconnect timeout"
[ "$(sysattr "$dev" state)" = dead ] || fail "state is not dead"
grep -q 'access-revoked: closing' "$D/evil.log" || fail "ndevil revoked nothing"
n=$(grep -c 'access-revoked: session info .* status 15' "$D/evil.log" || true)
log "$n reconnect attempts refused with access denied"
[ "$n" -ge 1 ] || fail "no reconnect attempt got access denied"
[ "$(dmesg | grep -c "${dev#/dev/}: server refused: access denied")" = 1 ] ||
	fail "access denied not logged exactly once: $(dmesg | grep -c 'access denied')"
dmesg | grep -q "${dev#/dev/}: reconnect timeout expired" ||
	fail "no expiry message in dmesg"
sleep 3
[ "$(grep -c 'status 15' "$D/evil.log")" = "$n" ] ||
	fail "reconnect attempts went on after the device failed"
timeout 30 "$ND" detach "$dev" || fail "detach of a dead device"
no_devices_left || fail "device left after detach"
log "ok"
