#!/bin/bash
# Boot from netdisk (make boot-test): real Debian 12 machines whose root
# file system is a netdisk copy-on-write export, booted in QEMU with the
# image's own Debian kernel and the initramfs its own update-initramfs made
# with our hook (tests/boot/mkimage.sh: the image from the packages of
# `make deb`). netdiskd runs on host loopback; the guests reach it only
# through QEMU user networking with restrict=on and one guestfwd.
#   round 1: guests A and B at once, different identities, one cow export,
#            A with the image's initramfs-tools initramfs, B with a dracut
#            one (tests/boot/dracut-initrd.sh): each reports multi-user on
#            /dev/netdisk0 (udev links, no time limit on reconnects, no
#            failed unit), writes a marker, powers off cleanly
#   round 2: A and B at once: each finds its own marker and not the other's,
#            its fsck after the clean poweroff finds the root clean; A runs a
#            write workload while netdiskd is killed -9 and restarted (no
#            failed write, no I/O error in its kernel log or journal); then
#            netdiskd is stopped and B powers off with the server gone: its
#            QEMU must exit within ND_BOOT_NOSERVER_LIMIT seconds
#   and the base image is unchanged.
# Every guest's kernel log must be free of warnings.
# Ends with "N passed, M failed". Logs and consoles in $O/boot/.
#   ND_BOOT_REUSE=1   reuse the last run's image (overlays reset)
#   --image-only      make the image (or find it made) and stop
#   --demo            (make boot-demo) one machine boots, its console shown
set -u
REPO=$(cd "$(dirname "$0")/../.." && pwd -P)
cd "$REPO" || exit 1
O=${O:-build}
case "$O" in /*) ;; *) O="$REPO/$O" ;; esac
W=$O/boot
ND=$O/netdisk
NDD=$O/netdiskd
VERSION=$(scripts/version)
ARCH=$(dpkg --print-architecture)
DEBS=("$O/deb/netdisk-server_${VERSION}_$ARCH.deb" "$O/deb/netdisk-client_${VERSION}_$ARCH.deb"
      "$O/deb/netdisk-dkms_${VERSION}_all.deb")
PORT=${ND_BOOT_PORT:-26600}
# Seconds from a guest's own poweroff to QEMU's exit with the server gone.
NOSERVER_LIMIT=${ND_BOOT_NOSERVER_LIMIT:-180}
PASS=0 FAIL=0 FAILED=""
ok() { echo "PASS: $*"; PASS=$((PASS + 1)); }
bad() { echo "FAIL: $*"; FAIL=$((FAIL + 1)); FAILED="$FAILED
  $*"; }
log() { echo "[$(date +%T)] $*"; }
finish() {
	echo
	echo "$PASS passed, $FAIL failed"
	[ "$FAIL" = 0 ] || { echo "failed:$FAILED"; exit 1; }
	exit 0
}

SRV_PID=""
QEMU_PIDS=""
cleanup() {
	local p
	for p in $QEMU_PIDS $SRV_PID; do
		kill -KILL "$p" 2>/dev/null
	done
}
trap cleanup EXIT

for f in "$ND" "$NDD" "${DEBS[@]}"; do
	[ -e "$f" ] || { echo "boot-test: $f not built (make userspace deb)" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "boot-test: must run as root (chroot)" >&2; exit 1; }
IMAGE_ONLY=0 DEMO=0
case "${1:-}" in
--image-only) IMAGE_ONLY=1 ;;
--demo) DEMO=1 ;;
"") ;;
*) echo "usage: run.sh [--image-only | --demo]" >&2; exit 2 ;;
esac
# One image per set of packages and test scripts: `run.sh --image-only`
# (make test runs it in the background during vm-test) leaves
# $W/image.sum, and a run finding the same sum takes that image. The lock
# makes that run wait for a build still going on.
image_sum() {
	cat "${DEBS[@]}" tests/boot/mkimage.sh tests/boot/report.sh \
		tests/boot/dracut-initrd.sh scripts/mkroot scripts/inroot \
		2>/dev/null | sha256sum | cut -d' ' -f1
}
exec 8>>"$O/boot.lock"
flock 8

# ---- the image: tests/boot/mkimage.sh, from the packages
build_image() {
	rm -rf --one-file-system "$W"
	mkdir -p "$W"
	"$ND" keygen "$W/key" >/dev/null || return 1
	tests/boot/mkimage.sh "$W" "$W/key" "${DEBS[@]}" || return 1
	mkdir -p "$W/overlays" "$W/state"
	cat >"$W/netdiskd.conf" <<EOT
[server]
key-file = $W/key
state-dir = $W/state
control = none
listen = 127.0.0.1
port = $PORT

[export root]
path = $W/root.img
cow = $W/overlays
EOT
}

serve() {
	"$NDD" --config "$W/netdiskd.conf" >>"$W/netdiskd.log" 2>&1 &
	SRV_PID=$!
	local i
	for ((i = 0; i < 50; i++)); do
		ss -ltn "sport = :$PORT" | grep -q LISTEN && return 0
		sleep 0.2
	done
	echo "boot-test: netdiskd did not listen" >&2
	return 1
}

# What guests read on their console (report.sh's ndtest=noserver).
GUEST_STDIN=/dev/null

# boot_guest NAME IDENTITY INITRD APPEND: starts a guest in the background
# with the image's kernel, INITRD and the netdisk root on the command line
# plus APPEND (its ndtest= words and what its initramfs needs); its console
# in $W/NAME.console; sets BOOT_PID. One vCPU each: two guests use the two
# cores of a CI machine without TCG threads competing.
boot_guest() {
	local name=$1 id=$2 initrd=$3 append=$4
	qemu-system-x86_64 -accel tcg,thread=multi -cpu max -smp 1 -m 1024 \
		-nographic -no-reboot -nodefaults -serial stdio \
		-kernel "$W/vmlinuz" -initrd "$initrd" \
		-append "console=ttyS0 quiet panic=-1 netdisk=netdisk://10.0.2.100/root,identity=$id root=LABEL=ndroot ro $append" \
		-netdev "user,id=n,restrict=on,guestfwd=tcp:10.0.2.100:26547-cmd:socat -lf $W/socat.log - TCP:127.0.0.1:$PORT" \
		-device virtio-net-pci,netdev=n,romfile= \
		>"$W/$name.console" 2>&1 <"$GUEST_STDIN" &
	BOOT_PID=$!
	QEMU_PIDS="$QEMU_PIDS $BOOT_PID"
}

# A guest with the image's initramfs-tools initramfs (ip= is its network).
boot() { boot_guest "$1" "$2" "$W/initrd" "ip=dhcp $3"; }

# The dracut guest: the same image and netdisk= line, the initramfs of
# tests/boot/dracut-initrd.sh ROOT KVER OUT (run by mkimage.sh), dracut's
# own network options.
DRACUT_APPEND="ip=dhcp rd.neednet=1"
dracut_guest() { boot_guest "$1" "$2" "$W/initrd.dracut" "$DRACUT_APPEND $3"; }

# wait_vm PID LIMIT: the guest's exit within LIMIT seconds, else killed.
wait_vm() {
	local pid=$1 limit=$2 t=0
	while kill -0 "$pid" 2>/dev/null; do
		if [ "$t" -ge "$limit" ]; then
			kill -KILL "$pid"
			wait "$pid" 2>/dev/null
			return 1
		fi
		sleep 1
		t=$((t + 1))
	done
	wait "$pid" 2>/dev/null
	return 0
}

# wait_report NAME PID WHAT LIMIT: until the guest reported WHAT, exited,
# or LIMIT seconds passed; success if reported.
wait_report() {
	local i
	for ((i = 0; i < $4; i++)); do
		grep -aqs "^ND-REPORT: $3" "$W/$1.console" && return 0
		kill -0 "$2" 2>/dev/null || break
		sleep 1
	done
	grep -aqs "^ND-REPORT: $3" "$W/$1.console"
}

report() { grep -a "^ND-REPORT: $2" "$W/$1.console" | head -n 1 | tr -d '\r'; }

# check_up NAME G: the first-boot reports of guest G (console NAME).
check_up() {
	local name=$1 g=$2 r
	r=$(report "$name" multi-user)
	case "$r" in
	*"root=/dev/netdisk0 "*) ok "guest-$g: multi-user on /dev/netdisk0 (${r#ND-REPORT: })" ;;
	*) bad "guest-$g: no multi-user report on netdisk0 (see $W/$name.console): $r" ;;
	esac
	r=$(report "$name" by-netdisk)
	[ "$r" = "ND-REPORT: by-netdisk: root " ] && ok "guest-$g: udev /dev/disk/by-netdisk/root" ||
		bad "guest-$g: udev by-netdisk: '$r'"
	report "$name" by-label | grep -q ndroot && ok "guest-$g: udev /dev/disk/by-label/ndroot" ||
		bad "guest-$g: udev by-label: $(report "$name" by-label)"
	# (sysfs shows ND_RECONNECT_FOREVER as "forever", or as the raw value)
	report "$name" reconnect_timeout | grep -q -E '=(forever|4294967295)$' &&
		ok "guest-$g: the root device reconnects without a time limit" ||
		bad "guest-$g: root reconnect timeout: $(report "$name" reconnect_timeout)"
	r=$(report "$name" failed-units)
	[ "$r" = "ND-REPORT: failed-units: " ] && ok "guest-$g: no failed units" || bad "guest-$g: $r"
	report "$name" marker-written | grep -q "marker-written: $g\$" &&
		ok "guest-$g: marker written" || bad "guest-$g: no marker written"
}

t0=$(date +%s)
if [ "${ND_BOOT_REUSE:-0}" = 1 ] && [ -s "$W/root.img" ]; then
	# While working on the cases: the image of the last run, overlays
	# reset, this tree's report.sh written into it.
	log "reusing $W/root.img"
	rm -f "$W/image.sum"	# changed below: no run takes it as made
	rm -rf "$W/overlays" "$W/state" "$W"/*.console "$W/netdiskd.log"
	mkdir -p "$W/overlays" "$W/state"
	debugfs -w -R "rm /usr/local/sbin/nd-report" "$W/root.img" >/dev/null 2>&1 &&
		debugfs -w -f - "$W/root.img" >/dev/null 2>&1 <<EOT || { bad "report.sh into the image"; finish; }
write tests/boot/report.sh /usr/local/sbin/nd-report
sif /usr/local/sbin/nd-report mode 0100755
EOT
elif [ -s "$W/root.img" ] && [ -s "$W/image.sum" ] &&
	[ "$(cat "$W/image.sum")" = "$(image_sum)" ]; then
	log "taking the image made from these packages at $(date -r "$W/image.sum" +%T)"
	rm -rf "$W/overlays" "$W/state" "$W"/*.console "$W/netdiskd.log" "$W/socat.log"
	mkdir -p "$W/overlays" "$W/state"
else
	log "building the image from the packages"
	# The sum of what it is made from, taken before: packages rebuilt
	# meanwhile make a later run build again.
	sum=$(image_sum)
	build_image || { bad "image build"; finish; }
	echo "$sum" >"$W/image.sum"
	log "image built in $(( $(date +%s) - t0 )) s"
fi
if [ "$IMAGE_ONLY" = 1 ]; then
	log "image ready in $W"
	exit 0
fi
mode=$(cat "$W/initrd.mode")
[ "$mode" = 600 ] && ok "initramfs with the key is mode 0600" ||
	bad "initramfs mode $mode, not 600"
r=$(awk '$NF ~ /etc\/netdisk\/boot.key$/ { print $1, $2, $3 }' "$W/initrd.list")
case "$r" in
"-rw------- 1 root"*|"-rw------- 0 root"*) ok "the key in the initramfs: $r" ;;
*) bad "the key in the initramfs: '$r'" ;;
esac
grep -q "/lib/modules/$(cat "$W/kver")/updates/dkms/netdisk.ko\$" "$W/initrd.list" &&
	ok "the initramfs has DKMS's netdisk.ko for the image's kernel $(cat "$W/kver")" ||
	bad "no DKMS-built netdisk.ko in the initramfs ($W/initrd.list)"
base_sum=$(sha256sum "$W/root.img" | cut -d' ' -f1)
serve || { bad "netdiskd"; finish; }

if [ "$DEMO" = 1 ]; then
	log "a diskless machine boots Debian 12 from netdisk://127.0.0.1:$PORT/root,"
	log "a copy-on-write export of $W/root.img, in QEMU (what it reports, and netdisk's kernel lines):"
	boot demo demo-machine ndtest=marker:demo
	grep --line-buffered -a -E 'ND-REPORT|netdisk|reboot:' \
		<(tail -n +1 -f --pid="$BOOT_PID" "$W/demo.console") &
	wait_vm "$BOOT_PID" 900 || bad "the machine did not power off within 900 s"
	sleep 1
	check_up demo demo
	log "its overlay: $(du -h "$W/overlays/demo-machine.ndcow" | cut -f1) written, the base unchanged:"
	[ "$(sha256sum "$W/root.img" | cut -d' ' -f1)" = "$base_sum" ] &&
		ok "base image unchanged" || bad "base image changed"
	finish
fi

# ---- round 1
t1=$(date +%s)
log "round 1: guests A (initramfs-tools) and B (dracut) boot, write markers, power off"
boot a1 guest-a ndtest=marker:a; pa=$BOOT_PID
dracut_guest b1 guest-b ndtest=marker:b; pb=$BOOT_PID
wait_vm "$pa" 900 || bad "guest-a: first boot did not power off within 900 s"
wait_vm "$pb" 900 || bad "guest-b: first boot (dracut) did not power off within 900 s"
log "round 1 took $(( $(date +%s) - t1 )) s"
check_up a1 a
check_up b1 b

# ---- round 2
t2=$(date +%s)
log "round 2: A checks and writes across netdiskd kill -9; B checks, then powers off with the server gone"
boot a2 guest-a "ndtest=marker:a2 ndtest=write"; pa=$BOOT_PID
# B's console input: a FIFO this script holds open (fd 7) and answers on.
rm -f "$W/b2.in"
mkfifo -m 0600 "$W/b2.in" && exec 7<>"$W/b2.in"
GUEST_STDIN=$W/b2.in boot b2 guest-b "ndtest=marker:b2 ndtest=noserver"; pb=$BOOT_PID
if wait_report a2 "$pa" workload-start 900; then
	sleep 3
	kill -KILL "$SRV_PID"; wait "$SRV_PID" 2>/dev/null
	log "netdiskd killed -9"
	sleep 2
	serve || bad "netdiskd restart"
else
	bad "guest-a: no workload started (see $W/a2.console)"
fi
wait_vm "$pa" 900 || bad "guest-a: second boot did not power off within 900 s"
log "guest A done after $(( $(date +%s) - t2 )) s"
if wait_report b2 "$pb" noserver-ready 900; then
	kill -TERM "$SRV_PID"; wait "$SRV_PID" 2>/dev/null
	log "netdiskd stopped"
	echo go >&7
	if wait_report b2 "$pb" "noserver: go: state=" 120; then
		t3=$(date +%s)
		if wait_vm "$pb" "$NOSERVER_LIMIT"; then
			ok "guest-b: poweroff with the server gone: QEMU exit $(( $(date +%s) - t3 )) s after systemctl poweroff"
			# netdisk-shutdown.service bounded it, then the kernel failed it.
			grep -aq 'netdisk0: reconnect timeout forever -> 10 s' "$W/b2.console" &&
				grep -aq 'netdisk0: reconnect timeout expired' "$W/b2.console" &&
				grep -aq 'reboot: Power down' "$W/b2.console" &&
				ok "guest-b: the shutdown bounded the root's reconnect (10 s), failed it, powered down" ||
				bad "guest-b: no bound / expiry / power-down line on the console (see $W/b2.console)"
		else
			# What report.sh's sysrq-w and the hung-task watchdog said.
			bad "guest-b: poweroff with the server gone: no exit within $NOSERVER_LIMIT s; $(grep -a -o -E 'Failed to start poweroff.target: [^\r]*' "$W/b2.console" | head -n 1); blocked: $(grep -a -o -E 'task:[^ ]+|task [^ ]+ blocked' "$W/b2.console" | sed -e 's/^task://' -e 's/^task \(.*\):[0-9]* blocked$/\1/' | sort -u | tr '\n' ' ')(see $W/b2.console)"
		fi
	else
		bad "guest-b: $(report b2 noserver) (see $W/b2.console)"
	fi
else
	bad "guest-b: not ready for the poweroff without the server (see $W/b2.console)"
fi
wait_vm "$pb" 1 >/dev/null
log "round 2 took $(( $(date +%s) - t2 )) s"

for g in a b; do
	r=$(report ${g}2 markers-before)
	[ "$r" = "ND-REPORT: markers-before: $g " ] && ok "guest-$g: finds its marker, not the other's" ||
		bad "guest-$g second boot: '$r'"
	r=$(report ${g}2 fsck)
	# An unclean shutdown reads "recovering journal", then "clean".
	case "$r" in
	*recover*) bad "guest-$g: fsck after poweroff: '$r'" ;;
	*ndroot:\ clean*) ok "guest-$g: fsck after a clean poweroff: clean" ;;
	*) bad "guest-$g: fsck after poweroff: '$r'" ;;
	esac
done
r=$(report a2 workload-done)
case "$r" in
*" failures=0") ok "guest-a: workload across the kill: ${r#ND-REPORT: }" ;;
*) bad "guest-a: workload across the kill: '$r' (see $W/a2.console)" ;;
esac
for k in io-errors-dmesg io-errors-journal; do
	r=$(report a2 $k)
	[ "$r" = "ND-REPORT: $k: 0" ] && ok "guest-a: $k: none" || bad "guest-a: $k: '$r'"
done
r=$(report a2 reconnects)
case "$r" in *=0|"") bad "guest-a: no reconnect seen: '$r'" ;; *) ok "guest-a: reconnected (${r#ND-REPORT: })" ;; esac
grep -aq "ND-REPORT: done, powering off" "$W/a2.console" && ok "guest-a: powered off" ||
	bad "guest-a: did not finish"
if [ "$(sha256sum "$W/root.img" | cut -d' ' -f1)" = "$base_sum" ]; then
	ok "base image unchanged"
else
	bad "base image changed"
	rm -f "$W/image.sum"
fi
# No kernel warning in any guest (as tests/vm: vm-run.sh's patterns). The
# poweroff without the server fails I/O on purpose, but warns of nothing.
kpat='^\[ *[0-9]+\.[0-9]+\] .*(WARNING:|BUG:|Oops|Call Trace|Kernel panic|general protection fault|UBSAN:|blocked for more than|rcu: INFO)'
for c in "$W"/*.console; do
	r=$(grep -a -m 3 -E "$kpat" "$c" | tr -d '\r' | tr '\n' ' ')
	# and what report.sh read from dmesg (quiet keeps warnings off the console)
	k=$(report "$(basename "$c" .console)" kernel-warnings)
	[ "$k" = "ND-REPORT: kernel-warnings: " ] || r="$r${k:-no kernel-warnings report}"
	[ -z "$r" ] && ok "$(basename "$c" .console): no kernel warning" ||
		bad "$(basename "$c" .console): kernel: $r"
done
log "boot test took $(( $(date +%s) - t0 )) s"
finish
