#!/bin/bash
# timeout: 300
# Durability: data acknowledged after a FLUSH (buffered writes + fsync) or
# written with FUA (O_DIRECT|O_DSYNC) is in the server's file the moment
# netdiskd is killed with -9, and reads back through the device after the
# driver reconnects to a restarted server.
set -eu
. "$REPO/tests/vm/lib.sh"
trap nd_cleanup EXIT

D=$CASE_DIR
nd_keygen "$D/key"
truncate -s 32M "$D/disk.img"
head -c 8M /dev/urandom >"$D/flushed.bin"
head -c 1M /dev/urandom >"$D/fua.bin"

serve() {	# serve VAR PORT: a fixed port, so a restart keeps it
	serve_on "$1" "$2" --file "$D/disk.img" --key-file "$D/key"
}

port=$((_nd_port + 130))
serve S "$port"
attach dev "netdisk://127.0.0.1:$port" --key-file "$D/key" --reconnect-timeout 60
n=${dev#/dev/}
(( $(sysattr "$dev" export_flags) & 0x4 )) || fail "server does not advertise FUA"
[ "$(cat /sys/block/$n/queue/fua)" = 1 ] || fail "FUA not enabled on the queue"
grep -q "write back" /sys/block/$n/queue/write_cache ||
	fail "no volatile write cache: FLUSH would never be sent"

f0=$(sysattr "$dev" flushes)
dd if="$D/flushed.bin" of="$dev" bs=1M conv=fsync status=none || fail "flushed write"
[ "$(sysattr "$dev" flushes)" -gt "$f0" ] || fail "fsync sent no FLUSH"
dd if="$D/fua.bin" of="$dev" bs=64k seek=256 oflag=direct,dsync status=none ||
	fail "FUA write"

log "netdiskd killed with -9 right after the acknowledgements"
kill_server "$S"
cmp -n 8M "$D/flushed.bin" "$D/disk.img" ||
	fail "flushed data not in the server's file after kill -9"
dd if="$D/disk.img" of="$D/fua.out" bs=64k skip=256 count=16 status=none
cmp "$D/fua.bin" "$D/fua.out" || fail "FUA data not in the server's file after kill -9"

log "server restarted; the device reconnects and reads the same bytes"
serve S "$port"
for ((i = 0; i < 120; i++)); do
	[ "$(sysattr "$dev" state)" = connected ] && [ "$(sysattr "$dev" reconnects)" -ge 1 ] && break
	sleep 0.5
done
[ "$(sysattr "$dev" state)" = connected ] || fail "not reconnected: state $(sysattr "$dev" state)"
dd if="$dev" of="$D/flushed.out" bs=1M count=8 iflag=direct status=none || fail "read back"
cmp "$D/flushed.bin" "$D/flushed.out" || fail "flushed data differs through the device"
dd if="$dev" of="$D/fua.out2" bs=64k skip=256 count=16 iflag=direct status=none || fail "read back"
cmp "$D/fua.bin" "$D/fua.out2" || fail "FUA data differs through the device"
detach "$dev"
stop_server "$S"
log "flushed and FUA data survived kill -9 and a restart"
