#!/bin/bash
# timeout: 240
# Failed attaches exit with their documented code and a clear message, and
# leave no device behind: wrong key (4, also for an export that does not
# exist: nothing before authentication tells), nobody listening (3), no
# such export (8), export busy (5), unreadable/bad key file, bad URL (2),
# a protocol-1 server (11, unsupported protocol version), a server key
# share that is a low-order point (11), access denied (12, status 15), a
# peer that accepts and closes at once (11, "connection closed by the
# server during the handshake", also for netdisk info), a forwarder that
# answers with its own error text (11, quoted in the kernel log).
set -eu
. "$REPO/tests/vm/lib.sh"
trap nd_cleanup EXIT

D=$CASE_DIR
nd_keygen "$D/key"
nd_keygen "$D/other"
truncate -s 16M "$D/disk.img"
start_server S --file "$D/disk.img" --key-file "$D/key" --export e1
port=$(srv_port "$S")

# try WANT-EXIT PATTERN ARGS...: attach must fail with WANT-EXIT and print
# PATTERN (ERE, case-insensitive) on stderr, within 60 s, leaving no device.
try() {
	local want=$1 pat=$2 rc=0
	shift 2
	timeout 60 "$ND" attach "$@" >"$D/out" 2>"$D/err" || rc=$?
	echo "  attach $* -> exit $rc: $(head -c 200 "$D/err")"
	[ "$rc" = "$want" ] || fail "attach $*: exit $rc, want $want"
	grep -Eiq "$pat" "$D/err" || fail "attach $*: stderr lacks /$pat/"
	[ "$(wc -l <"$D/err")" -le 3 ] || fail "attach $*: long error output"
	no_devices_left || fail "attach $*: failed but left a device"
}

log "wrong key"
try 4 'authentication failed' "netdisk://127.0.0.1:$port/e1" --key-file "$D/other"
log "wrong key for an export that does not exist: still authentication failed"
try 4 'authentication failed' "netdisk://127.0.0.1:$port/nope" --key-file "$D/other"
log "nobody listening"
try 3 'connect|refused' "netdisk://127.0.0.1:$((port + 500))/e1" --key-file "$D/key"
log "no such export"
try 8 'export' "netdisk://127.0.0.1:$port/nope" --key-file "$D/key"
# evil MODE: tests/tools/ndevil (holds the key) on a fresh port; sets eport.
head -c 1M /dev/zero >"$D/evil.img"
evil() {
	local i
	eport=""
	"$O/tools/ndevil" --listen 127.0.0.1:0 --key-file "$D/key" \
		--file "$D/evil.img" --mode "$1" >"$D/evil.out" 2>>"$D/evil.log" &
	echo "$!" >>"$D/pids"
	evil_pid=$!
	for ((i = 0; i < 100; i++)); do
		eport=$(sed -n 's/^port //p' "$D/evil.out")
		[ -n "$eport" ] && return 0
		sleep 0.1
	done
	fail "ndevil --mode $1 did not start: $(cat "$D/evil.log")"
}
log "a protocol-1 server: unsupported protocol version"
evil v1-server
try 11 'unsupported protocol version' "netdisk://127.0.0.1:$eport/e1" --key-file "$D/key"
dmesg | grep -q 'speaks protocol version 1' || fail "no version line in the kernel log"
kill "$evil_pid"
log "a low-order server key share: protocol error before any key proof"
evil low-order-share
try 11 'protocol error' "netdisk://127.0.0.1:$eport/e1" --key-file "$D/key"
dmesg | grep -q 'low-order point' || fail "no low-order line in the kernel log"
kill "$evil_pid"
log "access denied (status 15 in the SessionInfo): exit 12 at once"
evil access-denied
t0=$(date +%s)
try 12 'server refused: access denied' "netdisk://127.0.0.1:$eport/e1" --key-file "$D/key"
[ $(($(date +%s) - t0)) -le 20 ] || fail "access denied took $(($(date +%s) - t0)) s"
dmesg | grep -q 'server refused: access denied' || fail "no access denied line in the kernel log"
[ "$(grep -c 'access-denied: session info' "$D/evil.log")" = 1 ] ||
	fail "attach retried an access denied: $(grep -c 'access-denied' "$D/evil.log") handshakes"
kill "$evil_pid"
# forward CMD: socat on a fresh port ($cport) runs CMD (sh -c) for each
# connection, its output and stderr to the client.
forward() {
	cport=$((port + 600 + ${cn:=0}))
	cn=$((cn + 1))
	socat "TCP-LISTEN:$cport,bind=127.0.0.1,reuseaddr,fork" \
		"SYSTEM:$1,stderr" 2>>"$D/socat.log" &
	echo "$!" >>"$D/pids"
	fwd_pid=$!
	_wait_port "$cport" "$fwd_pid" || fail "socat on $cport did not start"
}
log "a peer that accepts and closes at once: closed during the handshake"
forward true
try 11 'connection closed by the server during the handshake' \
	"netdisk://127.0.0.1:$cport/e1" --key-file "$D/key"
dmesg | grep -q 'connection closed by the server during the handshake' ||
	fail "no 'closed during the handshake' line in the kernel log"
dmesg | grep -q 'protocol error during handshake (not a netdisk' &&
	fail "a closed connection logged as a protocol error"
rc=0
timeout 60 "$ND" info "netdisk://127.0.0.1:$cport/e1" --key-file "$D/key" \
	>/dev/null 2>"$D/err" || rc=$?
echo "  info -> exit $rc: $(cat "$D/err")"
[ "$rc" != 0 ] && grep -q 'connection closed by the server during the handshake' "$D/err" ||
	fail "netdisk info: exit $rc, $(cat "$D/err")"
kill "$fwd_pid"
# As QEMU's guestfwd cmd:socat does when its server is down: socat's error
# line to the guest (it reads the hello first, so the close is no reset).
log "a forwarder that cannot reach its server says so: its words in the kernel log"
forward "timeout 1 cat >/dev/null; echo socat E connect to 127.0.0.1 port 1 failed - Connection refused"
try 11 'protocol error' "netdisk://127.0.0.1:$cport/e1" --key-file "$D/key"
dmesg | grep 'not a netdisk server? it sent "' | tail -n 1
dmesg | grep 'not a netdisk server? it sent "socat E connect to 127.0.0.1 port 1 failed' | grep -q 'Connection re' ||
	fail "the kernel log does not quote what the forwarder sent"
kill "$fwd_pid"
log "bad URL"
try 2 'url|invalid|usage' "http://127.0.0.1:$port/e1" --key-file "$D/key"
log "key file missing / world-readable / malformed"
rc=0; "$ND" attach "netdisk://127.0.0.1:$port/e1" --key-file "$D/missing" >/dev/null 2>&1 || rc=$?
[ "$rc" != 0 ] || fail "attach with a missing key file succeeded"
no_devices_left || fail "left a device with a missing key file"
cp "$D/key" "$D/loose"; chmod 644 "$D/loose"
rc=0; "$ND" attach "netdisk://127.0.0.1:$port/e1" --key-file "$D/loose" \
	>/dev/null 2>"$D/err" || rc=$?
[ "$rc" != 0 ] || fail "attach accepted a world-readable key file"
no_devices_left || fail "left a device with a world-readable key"
(umask 077; echo "not a key" >"$D/bad")
rc=0; "$ND" attach "netdisk://127.0.0.1:$port/e1" --key-file "$D/bad" \
	>/dev/null 2>"$D/err" || rc=$?
[ "$rc" != 0 ] || fail "attach accepted a malformed key file"
no_devices_left || fail "left a device with a malformed key"

log "the server still serves the right key; a second writer is busy"
attach dev "netdisk://127.0.0.1:$port/e1" --key-file "$D/key"
try_busy_rc=0
timeout 60 "$ND" attach "netdisk://127.0.0.1:$port/e1" --key-file "$D/key" \
	>"$D/out" 2>"$D/err" || try_busy_rc=$?
echo "  second read-write attach -> exit $try_busy_rc: $(cat "$D/err")"
[ "$try_busy_rc" = 5 ] || fail "second writer: exit $try_busy_rc, want 5 (busy)"
[ "$(ls -d /sys/block/netdisk* | wc -l)" = 1 ] || fail "busy attach left a device"
dd if=/dev/urandom of="$dev" bs=64k count=16 oflag=direct status=none ||
	fail "I/O on the first device after the failed attaches"
detach "$dev"
log "detach of a non-netdisk device and of a missing one fail"
rc=0; "$ND" detach /dev/null 2>/dev/null || rc=$?
[ "$rc" != 0 ] || fail "detach /dev/null succeeded"
rc=0; "$ND" detach /dev/netdisk99 2>/dev/null || rc=$?
[ "$rc" != 0 ] || fail "detach /dev/netdisk99 succeeded"
stop_server "$S"
log "ok"
