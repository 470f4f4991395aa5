#!/bin/bash
# timeout: 300
# The client cache keeps only bytes the server sent or acknowledged, never
# the caller's O_DIRECT buffer (tests/tools/nd-scribble rewrites it from a
# second thread during every request). Read side: a read-only export with
# --cache-size is O_DIRECT-read in full while the buffer is scribbled on;
# then, page cache dropped, a buffered read of the device is served from
# the netdisk cache (cache_hits rise) and must equal the export byte for
# byte. Write side: O_DIRECT writes of the whole device from a buffer that
# changes while they are in flight; the cache must then hold exactly what
# the server's file holds. Resends: the same through ndproxy cutting
# client records (writes are one at a time, so a cut write is the only one
# outstanding and never reaches the server), with --reconnect-timeout:
# each cut write is resent with other bytes after the reconnect, and the
# cache must hold those.
set -eu
. "$REPO/tests/vm/lib.sh"
trap nd_cleanup EXIT

D=$CASE_DIR
SCRIBBLE="$O/tools/nd-scribble"
[ -x "$SCRIBBLE" ] || fail "$SCRIBBLE not built (make userspace)"
nd_keygen "$D/key"

# bad_pages A B: how many 4 KiB pages of A differ from B.
bad_pages() {
	python3 - "$1" "$2" <<-'EOF'
	import sys
	a, b = (open(f, "rb").read() for f in sys.argv[1:3])
	print(sum(a[i:i + 4096] != b[i:i + 4096] for i in range(0, len(a), 4096)))
	EOF
}

# check_cached DEV FILE WHAT: with the page cache dropped, a buffered read
# of all of DEV is served from the netdisk cache and equals FILE. A
# difference is recorded and failed at the end, so both sides are checked.
check_cached() {
	local dev=$1 file=$2 what=$3 pages h0 h1 r0 r1 bad
	pages=$(( $(stat -c %s "$file") / 4096 ))
	blockdev --flushbufs "$dev"
	echo 1 >/proc/sys/vm/drop_caches
	h0=$(sysattr "$dev" cache_hits)
	r0=$(sysattr "$dev" reads)
	dd if="$dev" of="$D/back.bin" bs=1M status=none || fail "$what: read back"
	h1=$(sysattr "$dev" cache_hits)
	r1=$(sysattr "$dev" reads)
	log "$what: cache_hits $h0 -> $h1, server reads $r0 -> $r1 ($pages pages)"
	[ $((h1 - h0)) -ge $((pages / 2)) ] ||
		fail "$what: read back not served from the cache (hits +$((h1 - h0)))"
	if ! cmp -s "$D/back.bin" "$file"; then
		bad=$(bad_pages "$D/back.bin" "$file")
		echo "$what: $bad of $pages pages read from the cache differ from the server's file" |
			tee -a "$D/wrong" >&2
	fi
}

log "read side: O_DIRECT reads of a read-only export race a scribbler"
dd if=/dev/urandom of="$D/ro.img" bs=1M count=16 status=none
start_server S --file "$D/ro.img" --key-file "$D/key" --read-only
attach dev "netdisk://127.0.0.1:$(srv_port "$S")" --key-file "$D/key" --cache-size 32M
"$SCRIBBLE" read "$dev" 65536 2 || fail "nd-scribble read"
check_cached "$dev" "$D/ro.img" "after scribbled reads"
[ "$(sysattr "$dev" errors)" = 0 ] || fail "errors=$(sysattr "$dev" errors)"
detach "$dev"
stop_server "$S"

log "write side: O_DIRECT writes whose buffer changes in flight"
truncate -s 16M "$D/rw.img"
start_server S --file "$D/rw.img" --key-file "$D/key"
attach dev "netdisk://127.0.0.1:$(srv_port "$S")" --key-file "$D/key" --cache-size 32M
"$SCRIBBLE" write "$dev" 65536 1 || fail "nd-scribble write"
[ "$(sysattr "$dev" writes)" -ge 256 ] || fail "writes=$(sysattr "$dev" writes)"
cmp -s "$D/rw.img" <(head -c 16M /dev/zero) && fail "nothing reached the server"
check_cached "$dev" "$D/rw.img" "after scribbled writes"
[ "$(sysattr "$dev" errors)" = 0 ] || fail "errors=$(sysattr "$dev" errors)"
detach "$dev"

log "resends: scribbled writes through a proxy that cuts requests"
"$O/tools/ndproxy" --listen 127.0.0.1:0 --target "127.0.0.1:$(srv_port "$S")" \
	--mode random --seed 7 --every 24 --after 4 --faults cut --dir c2s \
	>"$D/proxy.out" 2>"$D/proxy.log" &
px=$!
echo "$px" >>"$D/pids"
px_port=""
for ((i = 0; i < 100; i++)); do
	px_port=$(sed -n 's/^port //p' "$D/proxy.out")
	[ -n "$px_port" ] && break
	sleep 0.1
done
[ -n "$px_port" ] || { cat "$D/proxy.log"; fail "ndproxy did not start"; }
attach dev "netdisk://127.0.0.1:$px_port" --key-file "$D/key" --cache-size 32M \
	--reconnect-timeout 60
"$SCRIBBLE" write "$dev" 65536 1 || fail "nd-scribble write through the proxy"
cuts=$(grep -c ': cut' "$D/proxy.log" || true)
log "$cuts records cut, reconnects=$(sysattr "$dev" reconnects)"
[ "$(sysattr "$dev" reconnects)" -gt 0 ] || fail "no reconnect: the proxy cut nothing"
check_cached "$dev" "$D/rw.img" "after resent scribbled writes"
[ "$(sysattr "$dev" errors)" = 0 ] || fail "errors=$(sysattr "$dev" errors)"
detach "$dev"
kill -TERM "$px"
wait "$px" || fail "ndproxy exited $? on SIGTERM"
stop_server "$S"
[ -e "$D/wrong" ] && fail "the cache kept bytes the server never had: $(paste -sd';' "$D/wrong")"
log "ok"
