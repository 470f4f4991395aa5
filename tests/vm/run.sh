#!/bin/bash
# Kernel tests: runs tests/vm/cases/*.sh (or the cases named as arguments,
# e.g. `tests/vm/run.sh 10-fs-tree 50`) inside QEMU guests via vm-run.sh,
# as many as possible in one boot. A case that crashes or wedges the guest is
# failed and the rest go on in a fresh boot. Ends with "N passed, M failed".
# Per-case logs: $O/vm/results/NAME.{log,dmesg} (or $VM_RESULTS/); consoles:
# $O/vm/console-*.log. KVER: the kernel to boot (default: scripts/kver).
set -u
REPO=$(cd "$(dirname "$0")/../.." && pwd -P)
cd "$REPO"
O=${O:-build}
case "$O" in /*) ;; *) O="$REPO/$O" ;; esac
export O
export KVER=${KVER:-$("$REPO/scripts/kver")}

cases=()
if [ $# = 0 ]; then
	cases=(tests/vm/cases/*.sh)
else
	for a in "$@"; do
		m=(tests/vm/cases/"$a"*.sh)
		[ -f "${m[0]}" ] || { echo "run.sh: no case matches '$a'" >&2; exit 2; }
		cases+=("${m[@]}")
	done
fi

missing=""
# ND_KO: another netdisk.ko to load in place of the tree's (tests/pkg).
KO=${ND_KO:-kernel/netdisk.ko}
KMODS=(tests/kmod/*.ko)
[ -n "${ND_KO:-}" ] && KMODS=()
for f in "$O/netdisk" "$O/netdiskd" "$KO"; do
	[ -e "$f" ] || missing="$missing $f"
done
if [ -n "$missing" ]; then
	echo "run.sh: not built:$missing (run make vm-test)" >&2
	echo "0 passed, ${#cases[@]} failed"
	exit 1
fi
# The modules in the tree are built for one kernel at a time.
for ko in "$KO" "${KMODS[@]}"; do
	[ -e "$ko" ] || continue
	vm=$(modinfo -F vermagic "$ko" | cut -d' ' -f1)
	if [ "$vm" != "$KVER" ]; then
		echo "run.sh: $ko is built for $vm, not $KVER (make kernel KVER=$KVER)" >&2
		echo "0 passed, ${#cases[@]} failed"
		exit 1
	fi
done

# Trees of files the cases copy ("# tree: COUNT SEED", lib.sh host_tree):
# made here at native speed, new content every run, read over 9p.
for c in "${cases[@]}"; do
	sed -n 's/^# tree: *\([0-9]*\) \([0-9]*\)$/\1 \2/p' "$c"
done | sort -u | while read -r count seed; do
	tests/vm/mktree.sh "$O/vm/trees/$count-$seed" "$count" "$seed" || exit 1
done || { echo "run.sh: cannot make the cases' file trees" >&2
	echo "0 passed, ${#cases[@]} failed"; exit 1; }

RES=${VM_RESULTS:-$O/vm/results}
rm -rf "$RES"
mkdir -p "$RES"
: >"$RES/summary"
remaining=("${cases[@]}")
boot=0
while [ ${#remaining[@]} -gt 0 ] && [ $boot -lt 6 ]; do
	boot=$((boot + 1))
	budget=120
	for c in "${remaining[@]}"; do
		t=$(sed -n 's/^# timeout: *\([0-9]*\).*/\1/p' "$c" | head -n 1)
		budget=$((budget + ${t:-240} + 40))
	done
	echo "==== boot $boot: ${#remaining[@]} case(s), limit ${budget}s"
	vrc=0
	tests/vm/vm-run.sh --timeout "$budget" tests/vm/guest-run.sh "${remaining[@]}" ||
		vrc=$?
	cp "$O/vm/console.log" "$O/vm/console-$boot.log" 2>/dev/null
	cp -r "$O/vm/out/cases/." "$RES/" 2>/dev/null
	cp "$O/vm/out/setup.dmesg" "$RES/setup-$boot.dmesg" 2>/dev/null
	results="$O/vm/out/results"
	[ -f "$results" ] || : >"$results"
	next=()
	progressed=0
	for c in "${remaining[@]}"; do
		name=$(basename "$c" .sh)
		line=$(grep -E "^(PASS|FAIL) $name( |$)" "$results" | tail -n 1)
		if [ -n "$line" ]; then
			echo "$line" >>"$RES/summary"
			progressed=1
		elif grep -qx "START $name" "$results"; then
			echo "FAIL $name: VM died or wedged during the case (vm-run exit $vrc, see $O/vm/console-$boot.log)" >>"$RES/summary"
			progressed=1
		else
			next+=("$c")
		fi
	done
	if [ $progressed = 0 ]; then
		for c in "${next[@]}"; do
			echo "FAIL $(basename "$c" .sh): VM did not run it (vm-run exit $vrc)" >>"$RES/summary"
		done
		next=()
	fi
	remaining=("${next[@]}")
done
for c in "${remaining[@]}"; do
	echo "FAIL $(basename "$c" .sh): not run (too many reboots)" >>"$RES/summary"
done

echo
echo "==== VM test results (logs in $RES)"
cat "$RES/summary"
pass=$(grep -c '^PASS' "$RES/summary")
fail=$(grep -c '^FAIL' "$RES/summary")
echo "$pass passed, $fail failed"
[ "$fail" = 0 ] && [ "$pass" -gt 0 ]
