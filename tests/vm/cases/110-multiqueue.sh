#!/bin/bash
# timeout: 480
# Multi-queue: --connections 2 gives two hardware queues, each with its own
# TCP connection in one session. fio write+verify stays error-free while one
# connection is killed (ss -K: only that one reconnects) and while the
# server is killed and restarted (both reconnect, into one new session).
set -eu
. "$REPO/tests/vm/lib.sh"
trap nd_cleanup EXIT

D=$CASE_DIR
nd_keygen "$D/key"
truncate -s 64M "$D/disk.img"

serve() {	# serve VAR PORT
	local pid
	"$NDD" --listen 127.0.0.1 --port "$2" --file "$D/disk.img" \
		--key-file "$D/key" --grace 30 >>"$D/netdiskd-$2.log" 2>&1 &
	pid=$!
	echo "$pid" >>"$D/pids"
	_wait_port "$2" "$pid" || { cat "$D/netdiskd-$2.log"; fail "netdiskd did not start on port $2"; }
	printf -v "$1" '%s %s' "$2" "$pid"
}
wait_reconnects() {	# wait_reconnects DEV N
	local i
	for ((i = 0; i < 180; i++)); do
		[ "$(sysattr "$1" reconnects)" -ge "$2" ] && return 0
		sleep 0.5
	done
	fail "$1: reconnects=$(sysattr "$1" reconnects) state=$(sysattr "$1" state), wanted $2"
}
fio_loop() {	# write+verify passes until $D/stop exists
	local i=0
	rm -f "$D/stop" "$D/fio-failed"
	while [ ! -e "$D/stop" ]; do
		i=$((i + 1))
		fio --output="$D/fio-$i.out" --name=v --filename="$1" \
			--direct=1 --ioengine=libaio --iodepth=16 --numjobs=2 \
			--rw=randwrite --bsrange=4k-128k --size=16m \
			--offset=$(( (i % 2) * 32 ))m --offset_increment=16m \
			--verify=crc32c --verify_fatal=1 --do_verify=1 \
			--verify_state_save=0 --group_reporting \
			>/dev/null 2>&1 || { echo "$i" >"$D/fio-failed"; return 1; }
		grep -q 'err= 0' "$D/fio-$i.out" || { echo "$i" >"$D/fio-failed"; return 1; }
		echo "$i" >"$D/fio-runs"
	done
}
start_fio() {
	fio_loop "$1" &
	fio_pid=$!
	echo "$fio_pid" >>"$D/pids"
	wait_io "$1" "$fio_pid"
}
stop_fio() {
	local rc=0
	touch "$D/stop"
	timeout 300 tail --pid="$fio_pid" -f /dev/null || fail "fio loop still running after 300 s"
	wait "$fio_pid" || rc=$?
	if [ -e "$D/fio-failed" ]; then
		cat "$D/fio-$(cat "$D/fio-failed").out"
		fail "fio pass $(cat "$D/fio-failed") failed (I/O error or verify failure)"
	fi
	[ "$rc" = 0 ] || fail "fio loop exited $rc"
	log "fio: $(cat "$D/fio-runs") clean write+verify pass(es)"
	[ "$(sysattr "$1" errors)" = 0 ] || fail "sysfs errors=$(sysattr "$1" errors)"
}
# conns PORT: established client connections to PORT, one "addr:port" a line
conns() {
	ss -Htn state established "( dport = :$1 )" | awk '{ print $3 }'
}

port=$((_nd_port + 90))
serve S "$port"
attach dev "netdisk://127.0.0.1:$port" --key-file "$D/key" --connections 2
log "attached $dev: connections=$(sysattr "$dev" connections)"
[ "$(sysattr "$dev" connections)" = 2 ] || fail "sysfs connections is not 2"
[ "$(ls -d /sys/block/${dev#/dev/}/mq/[0-9]* | wc -l)" = 2 ] || fail "not 2 hardware queues"
[ "$(conns "$port" | wc -l)" = 2 ] || { conns "$port"; fail "not 2 TCP connections"; }

log "one connection killed with ss -K under fio verify"
start_fio "$dev"
victim=$(conns "$port" | head -n 1)
ss -K -tn state established "( dport = :$port and sport = :${victim##*:} )" >/dev/null ||
	fail "ss -K failed"
wait_reconnects "$dev" 1
log "reconnected: $(dmesg | grep -c 'reconnected (connection') reconnect line(s)"
wait_io "$dev" "$fio_pid"
stop_fio "$dev"
[ "$(sysattr "$dev" reconnects)" = 1 ] || fail "reconnects=$(sysattr "$dev" reconnects): more than the killed connection reconnected"
[ "$(sysattr "$dev" state)" = connected ] || fail "state $(sysattr "$dev" state)"
[ "$(conns "$port" | wc -l)" = 2 ] || fail "not 2 TCP connections after the reconnect"

log "server killed and restarted: both connections reconnect into one session"
start_fio "$dev"
kill -KILL "$(srv_pid "$S")"
wait "$(srv_pid "$S")" 2>/dev/null || true
sleep 1
serve S "$port"
wait_reconnects "$dev" 3
wait_io "$dev" "$fio_pid"
stop_fio "$dev"
[ "$(conns "$port" | wc -l)" = 2 ] || fail "not 2 TCP connections after the restart"
detach "$dev"
no_devices_left || fail "device left after detach"
log "ok"
