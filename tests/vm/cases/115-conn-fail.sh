#!/bin/bash
# timeout: 900
# A device with 4 connections given up under a heavy mixed load, again and
# again: the server killed with a short --reconnect-timeout (requests are
# held on every connection's queue when the device fails), and forced
# detaches with the server up and while reconnecting. Every time the I/O
# ends (EIO) within a bound, nothing locks up, detach works; the kernel log
# check of the runner catches list corruption and lockups.
set -eu
. "$REPO/tests/vm/lib.sh"
trap nd_cleanup EXIT

D=$CASE_DIR
nd_keygen "$D/key"
truncate -s 64M "$D/disk.img"
port=$((_nd_port + 90))
url="netdisk://127.0.0.1:$port"

serve() {	# serve VAR
	serve_on "$1" "$port" --file "$D/disk.img" --key-file "$D/key" --grace 30
}
# load DEV: 4 threads of random reads and writes that go on after errors,
# so tags are reused as fast as the device fails them. Sets load_pid.
load() {
	fio --name=load --filename="$1" --direct=1 --ioengine=libaio --thread \
		--iodepth=32 --numjobs=4 --rw=randrw --bsrange=4k-64k \
		--continue_on_error=all --time_based --runtime=600 \
		--output="$D/fio.out" >/dev/null 2>&1 &
	load_pid=$!
	echo "$load_pid" >>"$D/pids"
	wait_io "$1" "$load_pid"
}
# load_ends: fio, spinning on errors, is stopped (SIGTERM, then SIGKILL);
# it must be gone within 30 s of the SIGKILL: no thread stuck in the kernel.
load_ends() {
	local i
	kill -TERM "$load_pid" 2>/dev/null || true
	for ((i = 0; i < 40; i++)); do
		kill -0 "$load_pid" 2>/dev/null || break
		sleep 0.5
	done
	if kill -0 "$load_pid" 2>/dev/null; then
		log "fio ignores SIGTERM; thread states: $(cat /proc/"$load_pid"/task/*/stat 2>/dev/null | awk '{ printf "%s ", $3 }')"
		kill -KILL "$load_pid" 2>/dev/null || true
		for ((i = 0; i < 60; i++)); do
			kill -0 "$load_pid" 2>/dev/null || break
			sleep 0.5
		done
		if kill -0 "$load_pid" 2>/dev/null; then
			cat /proc/"$load_pid"/task/*/stack 2>/dev/null | sort | uniq -c | sort -rn | head -n 20
			fail "fio unkillable 30 s after SIGKILL (I/O stuck in the kernel)"
		fi
	fi
	wait "$load_pid" 2>/dev/null || true
}
# wait_dead DEV SECONDS
wait_dead() {
	local i
	for ((i = 0; i < $2 * 2; i++)); do
		[ "$(sysattr "$1" state)" = dead ] && return 0
		sleep 0.5
	done
	fail "$1: state $(sysattr "$1" state) $2 s after the server died"
}

for round in 1 2 3; do
	log "round $round: server killed under load, --reconnect-timeout 3"
	serve S
	attach dev "$url" --key-file "$D/key" --connections 4 \
		--reconnect-timeout 3 --timeout 5
	load "$dev"
	kill_server "$S"
	wait_dead "$dev" 60
	e0=$(sysattr "$dev" errors)
	sleep 2
	e1=$(sysattr "$dev" errors)
	log "round $round: dead, errors $e0 -> $e1"
	[ "$e1" -gt "$e0" ] || fail "no EIO after the device failed (fio stopped?)"
	load_ends
	timeout 60 "$ND" detach "$dev" || fail "detach of the failed device"
	no_devices_left || fail "device left after detach"
done

for round in 1 2 3 4; do
	serve S
	attach dev "$url" --key-file "$D/key" --connections 4 \
		--reconnect-timeout 600
	load "$dev"
	if [ $((round % 2)) = 0 ]; then
		kill_server "$S"
		for ((i = 0; i < 40; i++)); do
			[ "$(sysattr "$dev" state)" = reconnecting ] && break
			sleep 0.5
		done
		log "round $round: forced detach under load, state $(sysattr "$dev" state)"
		sleep 1
	else
		log "round $round: forced detach under load, server up"
	fi
	t0=$(date +%s)
	timeout 60 "$ND" detach "$dev" --force || fail "detach --force under load"
	log "round $round: detach --force took $(( $(date +%s) - t0 )) s"
	no_devices_left || fail "device left after detach --force"
	load_ends
	[ $((round % 2)) = 0 ] || kill_server "$S"
done
log "ok"
