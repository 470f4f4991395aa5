# Helpers for the guest-side VM test cases (sourced by tests/vm/cases/*.sh
# and scripts/demo.sh). Runs inside the QEMU guest as root, cwd = $REPO.
# Every process a case starts is recorded in $CASE_DIR/pids so the runner
# can end exactly those if the case dies.

: "${REPO:?}" "${O:?}"
ND="$O/netdisk"
NDD="$O/netdiskd"
KO=${ND_KO:-$REPO/kernel/netdisk.ko}
CASE_DIR=${CASE_DIR:-$(mktemp -d /tmp/nd-case.XXXXXX)}
mkdir -p "$CASE_DIR"
_nd_port=${ND_PORT_BASE:-21000}
_nd_mounts=()

log() { echo "[$(date +%T)] $*"; }
fail() {
	echo "FAIL: $*" >&2
	exit 1
}
# expect_rc WANT CMD...: runs CMD, fails unless it exits with WANT.
expect_rc() {
	local want=$1 rc=0
	shift
	"$@" || rc=$?
	[ "$rc" = "$want" ] || fail "expected exit $want, got $rc from: $*"
}

nd_keygen() {	# nd_keygen FILE
	"$ND" keygen "$1" >/dev/null || fail "netdisk keygen $1 failed"
	[ "$(stat -c %a "$1")" = 600 ] || fail "key $1 is not mode 600"
}

# Waits until something listens on 127.0.0.1:PORT (bash /dev/tcp probe).
_wait_port() {
	local port=$1 pid=$2 i
	for ((i = 0; i < 300; i++)); do
		kill -0 "$pid" 2>/dev/null || return 1
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	return 1
}

# start_server VAR NETDISKD-ARGS...: starts netdiskd on 127.0.0.1 and a
# fresh port in the background; VAR gets "PORT PID" (see srv_port/srv_pid).
# Its log is $CASE_DIR/netdiskd-PORT.log.
start_server() {
	local var=$1
	shift
	serve_on "$var" $((_nd_port++)) "$@"
}
srv_port() { echo "${1% *}"; }
srv_pid() { echo "${1#* }"; }

# serve_on VAR PORT NETDISKD-ARGS...: the same on a fixed PORT, so a
# restarted server keeps the address the driver reconnects to; the log is
# appended across restarts.
serve_on() {
	local var=$1 port=$2 pid
	shift 2
	"$NDD" --listen 127.0.0.1 --port "$port" --state-dir "$CASE_DIR/state" \
		"$@" \
		>>"$CASE_DIR/netdiskd-$port.log" 2>&1 &
	pid=$!
	echo "$pid" >>"$CASE_DIR/pids"
	if ! _wait_port "$port" "$pid"; then
		cat "$CASE_DIR/netdiskd-$port.log" >&2
		fail "netdiskd $* did not start listening on port $port"
	fi
	printf -v "$var" '%s %s' "$port" "$pid"
}

# kill_server "PORT PID": kill -9, as a crash would.
kill_server() {
	kill -KILL "$(srv_pid "$1")"
	wait "$(srv_pid "$1")" 2>/dev/null || true
}

# stop_server "PORT PID": SIGTERM, must exit 0 within 30 s.
stop_server() {
	local pid i
	pid=$(srv_pid "$1")
	kill -TERM "$pid" 2>/dev/null || fail "netdiskd $pid already gone"
	for ((i = 0; i < 300; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$pid" 2>/dev/null && fail "netdiskd $pid ignores SIGTERM"
	local rc=0
	wait "$pid" || rc=$?
	[ "$rc" = 0 ] || fail "netdiskd $pid exited $rc on SIGTERM"
}

# attach VAR URL ARGS...: netdisk attach, VAR gets the device path.
attach() {
	local var=$1 out rc=0
	shift
	out=$("$ND" attach "$@" 2>"$CASE_DIR/attach.err") || rc=$?
	if [ "$rc" != 0 ]; then
		cat "$CASE_DIR/attach.err" >&2
		fail "netdisk attach $* exited $rc"
	fi
	out=$(echo "$out" | tail -n 1)
	[[ "$out" =~ ^/dev/netdisk[0-9]+$ ]] || fail "attach printed '$out'"
	[ -b "$out" ] || fail "attach printed $out but it is not a block device"
	printf -v "$var" '%s' "$out"
}

detach() {
	"$ND" detach "$@" || fail "netdisk detach $* exited $?"
}

# sysattr DEV NAME: /sys/block/netdiskN/netdisk/NAME
sysattr() {
	local f="/sys/block/${1#/dev/}/netdisk/$2"
	[ -r "$f" ] || fail "missing sysfs attribute $f"
	cat "$f"
}

# wait_io DEV PID: waits (60 s at most) until PID, still alive, has done
# I/O on DEV: fio opens the device only after its startup, slow under TCG.
wait_io() {
	local dev=$1 pid=$2 i n0 n
	n0=$(( $(sysattr "$dev" reads) + $(sysattr "$dev" writes) ))
	for ((i = 0; i < 120; i++)); do
		kill -0 "$pid" 2>/dev/null || fail "I/O process $pid ended early"
		n=$(( $(sysattr "$dev" reads) + $(sysattr "$dev" writes) ))
		[ "$n" -gt $((n0 + 50)) ] && return 0
		sleep 0.5
	done
	fail "no I/O on $dev after 60 s"
}

mount_dev() {	# mount_dev DEV DIR [mount options]
	local dev=$1 dir=$2
	shift 2
	mkdir -p "$dir"
	mount "$@" "$dev" "$dir" || fail "mount $* $dev $dir failed"
	_nd_mounts+=("$dir")
}
umount_dir() {
	umount "$1" || fail "umount $1 failed"
}

no_devices_left() {
	local d
	for d in /sys/block/netdisk*; do
		[ -e "$d" ] && return 1
	done
	return 0
}

# wait_reconnects DEV N: until the reconnects counter reaches N (90 s).
wait_reconnects() {
	local i
	for ((i = 0; i < 180; i++)); do
		[ "$(sysattr "$1" reconnects)" -ge "$2" ] && return 0
		sleep 0.5
	done
	fail "$1: reconnects=$(sysattr "$1" reconnects) state=$(sysattr "$1" state), wanted $2"
}

# start_fio DEV [FIO-ARGS...]: fio write+verify passes over DEV in the
# background until stop_fio; pass i writes at offset (i % 2) * 32 MiB. Every
# pass must succeed. Sets fio_pid and returns once I/O is flowing.
start_fio() {
	local dev=$1
	shift
	rm -f "$CASE_DIR/stop" "$CASE_DIR/fio-failed"
	_fio_loop "$dev" "$@" &
	fio_pid=$!
	echo "$fio_pid" >>"$CASE_DIR/pids"
	wait_io "$dev" "$fio_pid"
}
_fio_loop() {
	local dev=$1 i=0 out
	shift
	while [ ! -e "$CASE_DIR/stop" ]; do
		i=$((i + 1))
		out="$CASE_DIR/fio-$i.out"
		fio --output="$out" --name=v --filename="$dev" \
			--direct=1 --ioengine=libaio --iodepth=16 \
			--rw=randwrite --bsrange=4k-128k \
			--offset=$(( (i % 2) * 32 ))m --verify=crc32c \
			--verify_fatal=1 --do_verify=1 --verify_state_save=0 \
			"$@" >/dev/null 2>&1 &&
			grep -q 'err= 0' "$out" ||
			{ echo "$i" >"$CASE_DIR/fio-failed"; return 1; }
		echo "$i" >"$CASE_DIR/fio-runs"
	done
}
# stop_fio DEV: lets the current pass finish; all passes must have passed
# and the device must count no errors.
stop_fio() {
	local rc=0
	touch "$CASE_DIR/stop"
	timeout 300 tail --pid="$fio_pid" -f /dev/null ||
		fail "fio loop still running after 300 s"
	wait "$fio_pid" || rc=$?
	if [ -e "$CASE_DIR/fio-failed" ]; then
		cat "$CASE_DIR/fio-$(cat "$CASE_DIR/fio-failed").out"
		fail "fio pass $(cat "$CASE_DIR/fio-failed") failed (I/O error or verify failure)"
	fi
	[ "$rc" = 0 ] || fail "fio loop exited $rc"
	log "fio: $(cat "$CASE_DIR/fio-runs") clean write+verify pass(es)"
	[ "$(sysattr "$1" errors)" = 0 ] || fail "sysfs errors=$(sysattr "$1" errors)"
}

# host_tree DIR COUNT SEED: unpacks into DIR the tree of COUNT files (0 B ..
# 128 KiB, nested dirs) that tests/vm/run.sh made on the host for the case's
# "# tree: COUNT SEED" line (tests/vm/mktree.sh, new content every run), and
# copies its sorted checksums, made on the host, to DIR.sums.
host_tree() {
	local dir=$1 t=$O/vm/trees/$2-$3 n
	[ -f "$t.tar" ] && [ -f "$t.sums" ] ||
		fail "no tree $t (run the case with tests/vm/run.sh, which makes it)"
	mkdir -p "$dir"
	tar -C "$dir" -xf "$t.tar" || fail "cannot unpack $t.tar"
	cp "$t.sums" "$dir.sums"
	n=$(find "$dir" -type f | wc -l)
	[ "$n" = "$2" ] || fail "unpacked $n files, not $2"
	n=$(wc -l <"$dir.sums")
	[ "$n" = "$2" ] || fail "$t.sums lists $n files, not $2"
}

# sums DIR: sorted sha256 of every file under DIR, relative names (byte
# order: tests/vm/mktree.sh sorts the host's the same way).
sums() {
	(cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
}

# Best-effort teardown, also run by the runner after a case: unmount what
# this case mounted, detach every netdisk device, end recorded processes.
nd_cleanup() {
	local m d p
	set +e	# runs as the EXIT trap: a failed step must not change the status
	for m in "${_nd_mounts[@]}"; do
		mountpoint -q "$m" && umount -l "$m" 2>/dev/null
	done
	for d in /sys/block/netdisk*; do
		[ -e "$d" ] || continue
		grep -q "^/dev/${d##*/} " /proc/mounts &&
			umount -l "/dev/${d##*/}" 2>/dev/null
		timeout 60 "$ND" detach "/dev/${d##*/}" --force >/dev/null 2>&1
	done
	if [ -f "$CASE_DIR/pids" ]; then
		for p in $(cat "$CASE_DIR/pids"); do
			kill -KILL "$p" 2>/dev/null
		done
	fi
	return 0
}
