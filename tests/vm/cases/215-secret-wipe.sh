#!/bin/bash
# timeout: 180
# netdisk.ko frees no memory that still holds a secret (issue #11 item 10,
# kernel half): tests/kmod/nd_freescan looks for the session token and the
# PSK in every object given back by kfree or kmem_cache_free while a
# device attaches to tests/tools/ndevil (honest, handing out a token the
# case chose), writes and reads, loses both connections (ss -K) and
# reconnects, and detaches (the device and its session freed). Every copy
# must be wiped first (kfree_sensitive, memzero_explicit): no such free.
set -eu
. "$REPO/tests/vm/lib.sh"
KMOD="$REPO/tests/kmod/nd_freescan.ko"
PARAMS=/sys/module/nd_freescan/parameters
EVIL="$O/tools/ndevil"
cleanup() {
	nd_cleanup
	rmmod nd_freescan 2>/dev/null
	return 0
}
trap cleanup EXIT
[ -f "$KMOD" ] || fail "$KMOD not built (make kernel)"
[ -x "$EVIL" ] || fail "$EVIL not built (make userspace)"

D=$CASE_DIR
nd_keygen "$D/key"
key=$(tr -d ' \n' <"$D/key")
token=$(head -c 16 /dev/urandom | od -An -v -tx1 | tr -d ' \n')
[ ${#key} = 64 ] && [ ${#token} = 32 ] || fail "key '$key' or token '$token'"
head -c 8M /dev/urandom >"$D/img"
port=$((_nd_port + 95))
"$EVIL" --listen "127.0.0.1:$port" --key-file "$D/key" --file "$D/img" \
	--mode honest --token "$token" >"$D/ndevil.out" 2>"$D/ndevil.log" &
evil=$!
echo "$evil" >>"$D/pids"
_wait_port "$port" "$evil" || { cat "$D/ndevil.log"; fail "ndevil did not start"; }

insmod "$KMOD" pattern="$token,$key" || fail "insmod nd_freescan"
attach dev "netdisk://127.0.0.1:$port" --key-file "$D/key" --connections 2 \
	--reconnect-timeout 60
head -c 1M /dev/urandom >"$D/data"
dd if="$D/data" of="$dev" bs=64k oflag=direct status=none || fail "write"
log "both connections cut: the device reconnects (token sent and received)"
ss -K dst 127.0.0.1 dport = ":$port" >/dev/null || fail "ss -K"
wait_reconnects "$dev" 2
cmp -n 1048576 "$D/data" "$dev" || fail "data read back after the reconnect differs"
detach "$dev"
no_devices_left || fail "device left after detach"
sleep 1
found=$(cat "$PARAMS/found")
log "$found free(s) held the token or the PSK, $(cat "$PARAMS/scanned") objects scanned"
dmesg | grep 'nd_freescan: k' | grep -v nd_freescan_init || true
[ "$found" = 0 ] || fail "$found object(s) freed with the session token or the PSK still in them"
rmmod nd_freescan || fail "rmmod nd_freescan"
log "ok"
