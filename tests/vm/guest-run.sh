#!/bin/bash
# Guest side of tests/vm/run.sh: loads netdisk.ko, then runs each case given
# as an argument in its own process group with its own deadline, checks the
# kernel log after each, and records "START name" / "PASS|FAIL name reason"
# lines in $VMOUT/results for the host. A case stuck in the kernel (cannot be
# killed) dumps blocked tasks and stops the run: the host boots a fresh VM
# for the remaining cases.
set -u
: "${REPO:?}" "${O:?}" "${VMOUT:?}"
RESULTS="$VMOUT/results"
KO=${ND_KO:-$REPO/kernel/netdisk.ko}
KPAT='WARNING:|BUG:|Oops|Call Trace|Kernel panic|general protection fault|UBSAN:|blocked for more than'
mkdir -p "$VMOUT/cases"
: >>"$RESULTS"
# A task stuck in D state for this long is a bug worth a report.
echo 90 >/proc/sys/kernel/hung_task_timeout_secs 2>/dev/null || true

if ! grep -q '^netdisk ' /proc/modules; then
	# A normal boot's udev loads the CPU's AES-NI and CLMUL drivers; this
	# guest has no udev, and without them gcm(aes) is built on the
	# table-driven aes-generic. Absent drivers (other CPUs) are fine.
	modprobe -q aesni_intel 2>/dev/null || true
	modprobe -q ghash_clmulni_intel 2>/dev/null || true
	dmesg -C
	# insmod loads no dependencies: the curve25519 library modules first.
	if ! modprobe -a $(modinfo -F depends "$KO" | tr , ' ') \
		2>"$VMOUT/insmod.err" ||
	   ! insmod "$KO" 2>"$VMOUT/insmod.err"; then
		echo "guest-run: insmod $KO failed: $(cat "$VMOUT/insmod.err")"
		dmesg | tail -n 20
		for c in "$@"; do
			echo "FAIL $(basename "$c" .sh) module did not load" >>"$RESULTS"
		done
		exit 1
	fi
	dmesg >"$VMOUT/setup.dmesg"
fi

# Runs a command in its own process group for at most $1 seconds; returns
# its status, 124 on timeout, or 200 if it cannot be killed (stuck).
run_bounded() {
	local limit=$1 pid wd ended="" i rc
	shift
	set -m
	"$@" &
	pid=$!
	set +m
	# A watchdog for the deadline: wait returns when either ends (polling
	# once a second cost half a second per case and per cleanup).
	sleep "$limit" &
	wd=$!
	wait -n -p ended "$pid" "$wd"
	rc=$?
	if [ "$ended" = "$pid" ]; then
		kill "$wd" 2>/dev/null
		wait "$wd" 2>/dev/null
		return $rc
	fi
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM -- "-$pid" 2>/dev/null
		for ((i = 0; i < 5; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 1
		done
		kill -KILL -- "-$pid" 2>/dev/null
		for ((i = 0; i < 20; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 1
		done
		kill -0 "$pid" 2>/dev/null && return 200
		wait "$pid" 2>/dev/null
		return 124
	fi
	wait "$pid"
	rc=$?
	return $rc
}

case_body() {	# case_body SCRIPT LOG
	cd "$REPO" && exec bash "$1" > >(tee "$2") 2>&1
}
case_cleanup() {
	. "$REPO/tests/vm/lib.sh" && nd_cleanup
}

failed=0
for c in "$@"; do
	name=$(basename "$c" .sh)
	limit=$(sed -n 's/^# timeout: *\([0-9]*\).*/\1/p' "$c" | head -n 1)
	limit=${limit:-240}
	export CASE_DIR="/tmp/nd-case-$name"
	rm -rf "$CASE_DIR"
	mkdir -p "$CASE_DIR"
	dmesg -C
	echo "START $name" >>"$RESULTS"
	echo "======== CASE $name (limit ${limit}s)"
	t0=$(date +%s)
	run_bounded "$limit" case_body "$c" "$VMOUT/cases/$name.log"
	rc=$?
	reason=""
	case $rc in
	0) ;;
	124) reason="timed out after ${limit}s" ;;
	200) reason="stuck: could not be killed after ${limit}s" ;;
	*) reason="exit $rc" ;;
	esac
	if [ "$rc" != 200 ]; then
		run_bounded 120 case_cleanup >/dev/null 2>&1
		crc=$?
		if [ "$crc" = 200 ] || [ "$crc" = 124 ]; then
			reason="${reason:+$reason; }cleanup hung"
			rc=200
		fi
	fi
	if [ "$rc" = 200 ]; then
		echo "guest-run: $name is stuck; blocked tasks:"
		echo w >/proc/sysrq-trigger
		sleep 2
	fi
	dmesg >"$VMOUT/cases/$name.dmesg"
	if grep -Eq "$KPAT" "$VMOUT/cases/$name.dmesg"; then
		reason="${reason:+$reason; }kernel log: $(grep -Em1 "$KPAT" "$VMOUT/cases/$name.dmesg" | cut -c1-120)"
	fi
	if [ "$rc" != 200 ] && ls -d /sys/block/netdisk* >/dev/null 2>&1; then
		reason="${reason:+$reason; }device(s) left after cleanup: $(cd /sys/block && echo netdisk*)"
	fi
	secs=$(( $(date +%s) - t0 ))
	if [ -z "$reason" ]; then
		echo "PASS $name ${secs}s" >>"$RESULTS"
		echo "======== PASS $name (${secs}s)"
	else
		failed=$((failed + 1))
		echo "FAIL $name ${secs}s: $reason" >>"$RESULTS"
		echo "======== FAIL $name (${secs}s): $reason"
	fi
	[ "$rc" = 200 ] && exit 3
done
[ "$failed" = 0 ]
