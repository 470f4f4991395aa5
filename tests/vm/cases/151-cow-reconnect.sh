#!/bin/bash
# timeout: 420
# A copy-on-write device (`--cow DIR`) under fio write+verify while
# netdiskd is killed with -9 and restarted twice: zero errors, zero verify
# failures after each reconnection, and the base file untouched. fio writes
# with O_DIRECT|O_SYNC (FUA): the crash contract covers what a FLUSH or FUA
# acknowledged; a first write into an untouched cluster that was never
# flushed may read as the base after a kill -9 (docs/COW-FORMAT.md), which
# fio would rightly count as a verify failure.
set -eu
. "$REPO/tests/vm/lib.sh"
trap nd_cleanup EXIT

D=$CASE_DIR
nd_keygen "$D/key"
mkdir -p "$D/overlays"
head -c 64M /dev/urandom >"$D/base.img"
base_sum=$(sha256sum <"$D/base.img")

serve() {	# serve VAR PORT
	serve_on "$1" "$2" --file "$D/base.img" --cow "$D/overlays" \
		--key-file "$D/key" --grace 30
}

port=$((_nd_port + 151))
url="netdisk://127.0.0.1:$port"

serve S "$port"
attach dev "$url" --key-file "$D/key"
[ "$(sysattr "$dev" read_only)" = 0 ] || fail "the cow device is read-only"
log "reads of untouched blocks come from the base"
cmp -n 1M "$dev" "$D/base.img" || fail "the first MiB differs from the base"
start_fio "$dev" --size=32m --sync=1
for round in 1 2; do
	kill_server "$S"
	log "round $round: server killed, state=$(sysattr "$dev" state)"
	sleep 1
	serve S "$port"
	wait_reconnects "$dev" "$round"
	log "round $round: reconnected, state=$(sysattr "$dev" state)"
	wait_io "$dev" "$fio_pid"
done
stop_fio "$dev"
[ "$(sysattr "$dev" state)" = connected ] || fail "state $(sysattr "$dev" state) after reconnecting"
dmesg | grep -q "${dev#/dev/}: reconnected" || fail "no 'reconnected' in dmesg"
detach "$dev"
stop_server "$S"
[ -s "$D/overlays/default.ndcow" ] || fail "no overlay file for identity 'default'"
[ "$(sha256sum <"$D/base.img")" = "$base_sum" ] || fail "the base image changed"
log "ok"
