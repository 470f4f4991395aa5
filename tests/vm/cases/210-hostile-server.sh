#!/bin/bash
# timeout: 420
# netdisk.ko against a server that holds the key and misbehaves
# (tests/tools/ndevil), and against someone on the path without the key
# (ndproxy --mode forge). Absurd export info or a trickled handshake: the
# attach fails with a protocol error (exit 11) and leaves no device (the
# shared decoder's other refusals are unit and integration tests). Every
# kind of bad reply (unknown, duplicate or stale handle, READ data of the
# wrong length, unknown status, garbage record, stall, trickle), one on
# each of ten READs: the device reconnects after each and the whole export
# reads back byte for byte; without reconnection the read fails with EIO
# and the device is dead but detachable. A forged "unknown session" ServerHello on reconnect does not
# cost the device its session (write lock). Never an oops, never wrong data
# reaching the reader; the module unloads at the end.
set -eu
. "$REPO/tests/vm/lib.sh"
trap nd_cleanup EXIT

D=$CASE_DIR
EVIL="$O/tools/ndevil"
PROXY="$O/tools/ndproxy"
[ -x "$EVIL" ] && [ -x "$PROXY" ] || fail "ndevil/ndproxy not built (make userspace)"
nd_keygen "$D/key"
head -c 4M /dev/urandom >"$D/evil.img"

# start_tool VAR CMD...: runs a tool that prints "port N"; VAR gets N.
start_tool() {
	local _var=$1 _out="$D/tool-$SECONDS-$RANDOM" _i _port=""
	shift
	"$@" >"$_out.out" 2>>"$D/tool.log" &
	echo "$!" >>"$D/pids"
	tool_pid=$!
	for ((_i = 0; _i < 100; _i++)); do
		_port=$(sed -n 's/^port //p' "$_out.out")
		[ -n "$_port" ] && break
		sleep 0.1
	done
	[ -n "$_port" ] || { cat "$D/tool.log"; fail "$* did not start"; }
	printf -v "$_var" '%s' "$_port"
}
stop_tool() {
	kill -TERM "$tool_pid" 2>/dev/null || true
	wait "$tool_pid" 2>/dev/null || true
}
evil() {	# evil MODE [ARGS]: ndevil on a fresh port; sets url
	start_tool p "$EVIL" --listen 127.0.0.1:0 --key-file "$D/key" \
		--file "$D/evil.img" --mode "$@"
	url="netdisk://127.0.0.1:$p"
}
# try_attach ARGS...: attach must fail with exit 11 in 60 s, no device left.
try_attach() {
	local rc=0
	timeout 60 "$ND" attach "$@" >"$D/out" 2>"$D/err" || rc=$?
	echo "  -> exit $rc: $(head -c 200 "$D/err")"
	[ "$rc" = 11 ] || fail "attach $*: exit $rc, want 11 (protocol error)"
	no_devices_left || fail "attach $*: failed but left a device"
}

log "absurd export info: attach fails, no device"
for mode in size-huge info-status; do
	evil "$mode"
	n0=$(dmesg | grep -c 'unusable session info' || true)
	log "$mode"
	try_attach "$url" --key-file "$D/key" --connections 1
	n=$(dmesg | grep -c 'unusable session info' || true)
	[ "$n" -gt "$n0" ] || fail "$mode: no 'unusable session info' in dmesg"
	stop_tool
done

log "handshake trickled a byte every 150 ms: fails within the 10 s deadline"
evil hello-trickle --trickle-ms 150
t0=$SECONDS
try_attach "$url" --key-file "$D/key" --connections 1
log "took $((SECONDS - t0)) s"
[ $((SECONDS - t0)) -le 18 ] || fail "trickled handshake took $((SECONDS - t0)) s"
stop_tool

# read_all DEV: the whole device, O_DIRECT, 256 KiB requests, into $D/got.
read_all() {
	local rc=0
	timeout 120 dd if="$1" of="$D/got" bs=256k iflag=direct status=none \
		2>"$D/dd.err" || rc=$?
	[ "$rc" != 124 ] || fail "read of $1 hung for 120 s"
	return "$rc"
}

log "ten kinds of bad reply, reconnection on: clean reconnects, exact data"
modes=(unknown-handle dup-handle stale-handle short-read long-read empty-read
       bad-status garbage stall trickle)
# Misbehaviour k hits the READ of the 256 KiB block 4 + k (dd's requests).
evil "$(IFS=,; echo "${modes[*]}")" --at 1048576 --step 262144
attach dev "$url" --key-file "$D/key" --connections 1 --timeout 3 \
	--reconnect-timeout 30
t0=$SECONDS
read_all "$dev" || { cat "$D/dd.err"; fail "read failed (state $(sysattr "$dev" state))"; }
cmp -s "$D/got" "$D/evil.img" || fail "WRONG DATA read back"
for mode in "${modes[@]}"; do
	grep -q ": $mode: " "$D/tool.log" || fail "$mode: ndevil did not misbehave"
done
re=$(sysattr "$dev" reconnects)
log "read back exact in $((SECONDS - t0)) s, reconnects=$re, state=$(sysattr "$dev" state)"
[ "$re" -ge "${#modes[@]}" ] || fail "only $re reconnects for ${#modes[@]} bad replies: one went unnoticed"
detach "$dev"
stop_tool

log "bad replies without reconnection: EIO, dead, detachable"
for mode in bad-status trickle; do
	evil "$mode" --at 1048576
	attach dev "$url" --key-file "$D/key" --connections 1 --timeout 3 \
		--reconnect-timeout 0
	rc=0
	read_all "$dev" || rc=$?
	[ "$rc" != 0 ] || fail "$mode: read succeeded without reconnection"
	grep -q 'Input/output error' "$D/dd.err" || { cat "$D/dd.err"; fail "$mode: not EIO"; }
	# What did arrive before the error is exact.
	n=$(stat -c %s "$D/got")
	cmp -s -n "$n" "$D/got" "$D/evil.img" || fail "$mode: WRONG DATA before the error"
	[ "$(sysattr "$dev" state)" = dead ] || fail "$mode: state $(sysattr "$dev" state)"
	log "$mode: EIO after $n good bytes, state dead"
	timeout 60 "$ND" detach "$dev" || fail "$mode: detach of the dead device"
	no_devices_left || fail "$mode: device left"
	stop_tool
done

log "forged 'unknown session' ServerHello on reconnect keeps the session"
truncate -s 8M "$D/disk.img"
head -c 4M "$D/evil.img" | dd of="$D/disk.img" conv=notrunc status=none
start_server S --file "$D/disk.img" --key-file "$D/key" --grace 60
start_tool p "$PROXY" --listen 127.0.0.1:0 \
	--target "127.0.0.1:$(srv_port "$S")" --mode forge --after 20 \
	--dir s2c --forge 2
attach dev "netdisk://127.0.0.1:$p" --key-file "$D/key" --connections 1 \
	--timeout 5 --reconnect-timeout 15
read_all "$dev" || { cat "$D/dd.err"; fail "read through forged hellos failed (state $(sysattr "$dev" state))"; }
head -c 8M "$D/disk.img" | cmp -s - "$D/got" || fail "forge: WRONG DATA"
grep -q 'cut the connection' "$D/tool.log" || fail "forge: the proxy did not cut"
[ "$(grep -c 'forged server hello status 11' "$D/tool.log")" = 2 ] ||
	fail "forge: the proxy did not forge twice"
[ "$(sysattr "$dev" reconnects)" -ge 1 ] || fail "forge: no reconnect"
dmesg | grep -q 'session unknown to the server' &&
	fail "forge: the driver dropped its session on a forged status"
grep -q 'joined session' "$D/netdiskd-$(srv_port "$S").log" ||
	fail "forge: the reconnect did not join the old session"
log "forge: reconnected into the same session, state $(sysattr "$dev" state)"
detach "$dev"
stop_tool
stop_server "$S"

log "rmmod and insmod: nothing left holding the module"
no_devices_left || fail "devices left"
rmmod netdisk || fail "rmmod netdisk failed"
insmod "$KO" || fail "insmod after rmmod failed"
log "ok"
