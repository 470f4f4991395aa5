#!/bin/bash
# timeout: 300
# A server that accepts every reconnect and completes the handshake but then
# never answers (a hung backend; ndproxy --mode drop swallows its replies):
# each resend times out after --timeout and the reconnect succeeds again,
# yet a request fails with EIO once it has been outstanding for --timeout +
# --reconnect-timeout, instead of hanging for ever. One connection: the
# proxy's pass mode serves one at a time.
set -eu
. "$REPO/tests/vm/lib.sh"
trap nd_cleanup EXIT

D=$CASE_DIR
PROXY="$O/tools/ndproxy"
nd_keygen "$D/key"
truncate -s 64M "$D/disk.img"
start_server S --file "$D/disk.img" --key-file "$D/key"
pport=$((_nd_port + 90))

proxy() {	# proxy MODE-ARGS...: ndproxy on $pport, in front of the server
	"$PROXY" --listen "127.0.0.1:$pport" --target "127.0.0.1:$(srv_port "$S")" \
		"$@" >/dev/null 2>>"$D/proxy.log" &
	proxy_pid=$!
	echo "$proxy_pid" >>"$D/pids"
	_wait_port "$pport" "$proxy_pid" || fail "ndproxy $* did not start"
}

proxy --mode pass
attach dev "netdisk://127.0.0.1:$pport" --key-file "$D/key" \
	--timeout 2 --reconnect-timeout 6 --connections 1
dd if=/dev/urandom of="$dev" bs=64k count=4 oflag=direct status=none || fail "write through the proxy"

log "the proxy now lets handshakes through and drops every reply"
kill -TERM "$proxy_pid"
wait "$proxy_pid" 2>/dev/null || true
proxy --mode drop --dir s2c --after 1
wait_reconnects "$dev" 1
t0=$(date +%s)
# In the background: a read that hangs cannot be killed (D state).
dd if="$dev" of=/dev/null bs=4k count=1 skip=100 iflag=direct \
	2>"$D/dd.err" &
dd_pid=$!
echo "$dd_pid" >>"$D/pids"
for ((i = 0; i < 120; i++)); do
	kill -0 "$dd_pid" 2>/dev/null || break
	sleep 0.5
done
kill -0 "$dd_pid" 2>/dev/null &&
	fail "read still hanging after 60 s although the server never answers (reconnects=$(sysattr "$dev" reconnects))"
rc=0
wait "$dd_pid" || rc=$?
t=$(( $(date +%s) - t0 ))
cat "$D/dd.err"
log "read: exit $rc after $t s, reconnects=$(sysattr "$dev" reconnects), state=$(sysattr "$dev" state)"
grep -q 'dropping record' "$D/proxy.log" || fail "ndproxy dropped nothing"
grep -q 'Input/output error' "$D/dd.err" || fail "read did not fail with EIO"
[ "$t" -ge 7 ] || fail "EIO after $t s, before --timeout + --reconnect-timeout (8 s)"
[ "$(sysattr "$dev" reconnects)" -ge 3 ] || fail "the resends did not go through reconnects"
dmesg | grep -q "${dev#/dev/}: no answer to a request within 8 s" ||
	fail "no 'no answer to a request' line in dmesg"

log "the server answers again: I/O works, detach"
kill -TERM "$proxy_pid"
wait "$proxy_pid" 2>/dev/null || true
proxy --mode pass
timeout 60 dd if="$dev" of=/dev/null bs=64k count=4 iflag=direct status=none ||
	fail "read after the server answers again"
timeout 60 "$ND" detach "$dev" || fail "detach"
no_devices_left || fail "device left after detach"
log "ok"
