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
	serve_on "$1" "$2" --file "$D/disk.img" --key-file "$D/key" --grace 30
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
start_fio "$dev" --numjobs=2 --size=16m --offset_increment=16m --group_reporting
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
start_fio "$dev" --numjobs=2 --size=16m --offset_increment=16m --group_reporting
kill_server "$S"
sleep 1
serve S "$port"
wait_reconnects "$dev" 3
wait_io "$dev" "$fio_pid"
stop_fio "$dev"
[ "$(conns "$port" | wc -l)" = 2 ] || fail "not 2 TCP connections after the restart"
detach "$dev"
no_devices_left || fail "device left after detach"
log "ok"
