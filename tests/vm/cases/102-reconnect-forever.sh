#!/bin/bash
# timeout: 300
# Root devices: `netdisk boot` attaches the netdisk= parameters of a
# command line in order, reconnecting without a time limit by default; a
# device with --reconnect-timeout forever holds I/O through a server outage
# longer than its request timeout plus any finite deadline it could have
# computed, and completes it once the server is back; reconnect_timeout
# written in sysfs (what netdisk-shutdown.service does at shutdown) bounds
# an outage already going on: EIO at the next attempt, state dead.
# `netdisk boot --wait` retries an export the server refuses as busy.
set -eu
. "$REPO/tests/vm/lib.sh"
trap nd_cleanup EXIT

D=$CASE_DIR
nd_keygen "$D/key"
truncate -s 16M "$D/a.img" "$D/b.img"
port=$((_nd_port + 102))
port2=$((port + 1))
serve_on S "$port" --file "$D/a.img" --key-file "$D/key" --export rootfs
serve_on S2 "$port2" --file "$D/b.img" --key-file "$D/key" --export data --read-only

log "netdisk boot: two netdisk= parameters attached in order"
no_devices_left || fail "devices attached before the case"
printf 'ip=dhcp netdisk=netdisk://127.0.0.1:%s/rootfs root=/dev/netdisk0 netdisk=netdisk://127.0.0.1:%s/data,ro,reconnect-timeout=7\n' \
	"$port" "$port2" >"$D/cmdline"
"$ND" boot --cmdline "$D/cmdline" --key-file "$D/key" >"$D/boot.out" ||
	fail "netdisk boot exited $?"
cat "$D/boot.out"
[ "$(cat "$D/boot.out")" = "$(printf '/dev/netdisk0\n/dev/netdisk1')" ] ||
	fail "boot printed $(cat "$D/boot.out")"
[ "$(sysattr /dev/netdisk0 export)" = rootfs ] || fail "netdisk0 is not rootfs"
[ "$(sysattr /dev/netdisk1 export)" = data ] || fail "netdisk1 is not data"
[ "$(sysattr /dev/netdisk0 reconnect_timeout)" = forever ] ||
	fail "root device reconnect_timeout $(sysattr /dev/netdisk0 reconnect_timeout), not forever"
[ "$(sysattr /dev/netdisk1 reconnect_timeout)" = 7 ] || fail "reconnect-timeout=7 not applied"
"$ND" list -v >"$D/list"
cat "$D/list"
grep -A1 '^/dev/netdisk0 ' "$D/list" | grep -q 'reconnects 0 (timeout forever)' ||
	fail "list -v does not show netdisk0's reconnect timeout as forever"
grep -A1 '^/dev/netdisk1 ' "$D/list" | grep -q 'reconnects 0 (timeout 7 s)' ||
	fail "list -v does not show netdisk1's reconnect timeout as 7 s"
[ "$(cat /sys/block/netdisk1/ro)" = 1 ] || fail "ro not applied"
detach /dev/netdisk1
detach /dev/netdisk0

log "netdisk boot --wait: a busy export (the old session of a reset machine) is retried"
# The writer lock of rootfs is held by another session, as the server holds
# a crashed machine's until keepalive and grace end: the boot waits for it.
attach holder "netdisk://127.0.0.1:$port/rootfs" --key-file "$D/key"
printf 'netdisk=netdisk://127.0.0.1:%s/rootfs\n' "$port" >"$D/cmdline2"
"$ND" boot --cmdline "$D/cmdline2" --key-file "$D/key" --wait 60 \
	>"$D/boot2.out" 2>"$D/boot2.err" &
boot_pid=$!
echo "$boot_pid" >>"$D/pids"
sleep 4
kill -0 "$boot_pid" 2>/dev/null ||
	{ cat "$D/boot2.err"; fail "netdisk boot gave up on a busy export at once"; }
grep -q busy "$D/boot2.err" || fail "no busy refusal seen: $(cat "$D/boot2.err")"
detach "$holder"
rc=0
wait "$boot_pid" || rc=$?
[ "$rc" = 0 ] || { cat "$D/boot2.err"; fail "netdisk boot exited $rc after the export came free"; }
dev=$(cat "$D/boot2.out")
[[ "$dev" =~ ^/dev/netdisk[01]$ ]] || fail "boot printed $dev"
detach "$dev"
no_devices_left || fail "device left after the busy case"

log "--reconnect-timeout forever: I/O held through a 12 s outage (request timeout 2 s)"
attach dev "netdisk://127.0.0.1:$port/rootfs" --key-file "$D/key" \
	--reconnect-timeout forever --timeout 2
dd if=/dev/urandom of="$D/data" bs=1M count=1 status=none
dd if="$D/data" of="$dev" bs=1M oflag=direct status=none || fail "initial write"
kill_server "$S"
dd if="$dev" of="$D/back" bs=1M count=1 iflag=direct status=none 2>"$D/dd.err" &
dd_pid=$!
echo "$dd_pid" >>"$D/pids"
sleep 12
kill -0 "$dd_pid" 2>/dev/null || { cat "$D/dd.err"; fail "read ended while the server was gone"; }
[ "$(sysattr "$dev" state)" = reconnecting ] || fail "state $(sysattr "$dev" state), not reconnecting"
serve_on S "$port" --file "$D/a.img" --key-file "$D/key" --export rootfs
rc=0
wait "$dd_pid" || rc=$?
cat "$D/dd.err"
[ "$rc" = 0 ] || fail "held read failed (exit $rc)"
cmp "$D/data" "$D/back" || fail "held read returned other data"
[ "$(sysattr "$dev" errors)" = 0 ] || fail "errors counted"
dmesg | grep -q "${dev#/dev/}: reconnect timeout expired" && fail "expired with no limit"
detach "$dev"
no_devices_left || fail "device left after detach"

log "reconnect_timeout written (as a shutdown does): forever bounded while I/O is held"
attach dev "netdisk://127.0.0.1:$port/rootfs" --key-file "$D/key" \
	--reconnect-timeout forever --timeout 2
rt=/sys/block/${dev#/dev/}/netdisk/reconnect_timeout
[ "$(stat -c %a "$rt")" = 644 ] || fail "reconnect_timeout mode $(stat -c %a "$rt"), not 644"
for v in abc -1 86401 "" 12x; do
	echo "$v" >"$rt" 2>/dev/null && fail "reconnect_timeout took '$v'"
done
[ "$(cat "$rt")" = forever ] || fail "a refused write changed it to $(cat "$rt")"
echo 86400 >"$rt" && [ "$(cat "$rt")" = 86400 ] || fail "86400 not taken"
echo forever >"$rt" && [ "$(cat "$rt")" = forever ] || fail "forever not taken back"
kill_server "$S"
t0=$(date +%s)
dd if="$dev" of=/dev/null bs=1M count=1 iflag=direct status=none 2>"$D/dd.err" &
dd_pid=$!
echo "$dd_pid" >>"$D/pids"
sleep 8
kill -0 "$dd_pid" 2>/dev/null || fail "read ended while forever and the server gone"
echo 5 >"$rt" || fail "writing 5 to reconnect_timeout failed"
t1=$(date +%s)
rc=0
wait "$dd_pid" || rc=$?
t=$(($(date +%s) - t1))
echo "  read ended $t s after the write ($(($(date +%s) - t0)) s after the outage began): $(cat "$D/dd.err")"
[ "$rc" != 0 ] || fail "held read succeeded with the server gone"
# Past the new limit already: the next attempt (backoff <= 5 s) gives up.
[ "$t" -le 10 ] || fail "EIO $t s after bounding, want <= 10 (next attempt)"
# The held request may time out (queued past the limit) before the
# reconnect worker's next attempt marks the device dead: up to 5 s later.
for _ in $(seq 20); do
	[ "$(sysattr "$dev" state)" = dead ] && break
	sleep 0.5
done
[ "$(sysattr "$dev" state)" = dead ] || fail "state $(sysattr "$dev" state), not dead 10 s after EIO"
dmesg | grep -q "${dev#/dev/}: reconnect timeout expired" || fail "no expiry line in dmesg"
detach "$dev"
no_devices_left || fail "device left after detach"
log "ok"
