#!/bin/bash
# Boot from netdisk (make boot-test): a real Debian 12 machine whose root
# file system is a netdisk copy-on-write export, booted in QEMU with
# Debian's kernel and an initramfs made by the image's own update-initramfs
# with our hook. netdiskd runs on host loopback; the guests reach it only
# through QEMU user networking with restrict=on and one guestfwd. Cases:
#   1. two guests at once, different identities, one cow export: each writes
#      a marker, boots again, finds its own marker and not the other's; the
#      base image is unchanged
#   2. netdiskd killed -9 and restarted during a guest's write workload:
#      no I/O error in its kernel log or journal, no failed write
#   3. after the clean poweroffs, the next boot's fsck finds the root clean
# Ends with "N passed, M failed". Logs in $O/boot/.
set -u
REPO=$(cd "$(dirname "$0")/../.." && pwd -P)
cd "$REPO"
O=${O:-build}
case "$O" in /*) ;; *) O="$REPO/$O" ;; esac
W=$O/boot
ND=$O/netdisk
NDD=$O/netdiskd
PORT=${ND_BOOT_PORT:-26600}
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
	for m in dev/pts dev proc sys; do
		umount "$W/root/$m" 2>/dev/null
	done
}
trap cleanup EXIT

for f in "$ND" "$NDD" kernel/netdisk.ko; do
	[ -e "$f" ] || { echo "boot-test: $f not built (make userspace kernel)" >&2; exit 1; }
done

# ---- the image: root from the cache, then this tree installed into it
build_image() {
	local kv m
	# A run killed between mount and umount (kill -9, a CI timeout: no
	# trap) leaves the host's /dev bound into $W/root: rm -rf would empty
	# the host's /dev. Unmount first; never cross a mount point.
	for m in dev/pts dev proc sys; do
		umount "$W/root/$m" 2>/dev/null
	done
	if findmnt -rno TARGET | grep -q "^$W/"; then
		echo "boot-test: mounts left under $W: $(findmnt -rno TARGET | grep "^$W/" | tr '\n' ' ')" >&2
		return 1
	fi
	rm -rf --one-file-system "$W"
	mkdir -p "$W"
	tests/boot/mkroot.sh "$W/root" || return 1
	kv=$(ls "$W/root/lib/modules")
	if [ "$(modinfo -F vermagic kernel/netdisk.ko | cut -d' ' -f1)" != "$kv" ]; then
		echo "boot-test: the image's kernel is $kv: make kernel KVER=$kv" >&2
		return 1
	fi
	make -s O="$O" install DESTDIR="$W/root" PREFIX=/usr \
		-o "$O/netdiskd" -o "$O/netdisk" -o "$O/netdisk-generator" || return 1
	install -D -m 0644 kernel/netdisk.ko "$W/root/lib/modules/$kv/updates/netdisk.ko"
	"$ND" keygen "$W/key" >/dev/null || return 1
	install -d -m 0700 "$W/root/etc/netdisk"
	install -m 0600 "$W/key" "$W/root/etc/netdisk/boot.key"
	# A diskless machine needs no disk drivers: base and network only.
	sed -i 's/^MODULES=.*/MODULES=netboot/' "$W/root/etc/initramfs-tools/initramfs.conf"
	# Built in a chroot, the fsck hook cannot probe the root's type.
	echo FSTYPE=ext4 >"$W/root/etc/initramfs-tools/conf.d/fstype"
	echo "LABEL=ndroot / ext4 defaults 0 1" >"$W/root/etc/fstab"
	echo diskless >"$W/root/etc/hostname"
	install -m 0755 tests/boot/report.sh "$W/root/usr/local/sbin/nd-report"
	cat >"$W/root/etc/systemd/system/nd-report.service" <<'EOT'
[Unit]
Description=netdisk boot test report
After=multi-user.target

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/nd-report

[Install]
WantedBy=multi-user.target
EOT
	ln -sf /etc/systemd/system/nd-report.service \
		"$W/root/etc/systemd/system/multi-user.target.wants/nd-report.service"
	mount -t proc proc "$W/root/proc" && mount -t sysfs sys "$W/root/sys" &&
		mount --bind /dev "$W/root/dev" || return 1
	chroot "$W/root" depmod "$kv" &&
		rm -f "$W/root/boot/initrd.img-$kv" &&
		chroot "$W/root" update-initramfs -c -k "$kv" >"$W/update-initramfs.log" 2>&1
	local rc=$?
	for m in dev proc sys; do umount "$W/root/$m"; done
	[ "$rc" = 0 ] || { tail -n 20 "$W/update-initramfs.log" >&2; return 1; }
	cp "$W/root/boot/vmlinuz-$kv" "$W/vmlinuz"
	cp "$W/root/boot/initrd.img-$kv" "$W/initrd"
	INITRD_MODE=$(stat -c %a "$W/root/boot/initrd.img-$kv")
	mke2fs -q -t ext4 -L ndroot -d "$W/root" "$W/root.img" 1536M || return 1
	rm -rf --one-file-system "$W/root"
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

# boot NAME IDENTITY NDTEST: starts a guest in the background, its console
# in $W/NAME.console; sets BOOT_PID.
boot() {
	local name=$1 id=$2 test=$3
	qemu-system-x86_64 -accel tcg,thread=multi -cpu max -smp 2 -m 1024 \
		-nographic -no-reboot -nodefaults -serial stdio \
		-kernel "$W/vmlinuz" -initrd "$W/initrd" \
		-append "console=ttyS0 ip=dhcp netdisk=netdisk://10.0.2.100/root,identity=$id root=LABEL=ndroot ro panic=-1 ndtest=$test" \
		-netdev "user,id=n,restrict=on,guestfwd=tcp:10.0.2.100:26547-cmd:socat - TCP:127.0.0.1:$PORT" \
		-device virtio-net-pci,netdev=n \
		>"$W/$name.console" 2>&1 </dev/null &
	BOOT_PID=$!
	QEMU_PIDS="$QEMU_PIDS $BOOT_PID"
}

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

report() { grep -a "^ND-REPORT: $2" "$W/$1.console" | head -n 1 | tr -d '\r'; }

t0=$(date +%s)
if [ "${ND_BOOT_REUSE:-0}" = 1 ] && [ -s "$W/root.img" ]; then
	# While working on the cases: the image of the last run, overlays reset.
	log "reusing $W/root.img"
	rm -rf "$W/overlays" "$W/state" "$W"/*.console "$W/netdiskd.log"
	mkdir -p "$W/overlays" "$W/state"
	INITRD_MODE=$(cat "$W/initrd.mode")
else
	log "building the image"
	build_image || { bad "image build"; finish; }
	echo "$INITRD_MODE" >"$W/initrd.mode"
	log "image built in $(( $(date +%s) - t0 )) s"
fi
[ "$INITRD_MODE" = 600 ] && ok "initramfs with the key is mode 0600" ||
	bad "initramfs mode $INITRD_MODE, not 600"
base_sum=$(sha256sum "$W/root.img" | cut -d' ' -f1)
serve || { bad "netdiskd"; finish; }

log "case 1: two guests, one cow export, markers"
t1=$(date +%s)
boot a1 guest-a marker:a; pa=$BOOT_PID
boot b1 guest-b marker:b; pb=$BOOT_PID
wait_vm "$pa" 600 || bad "guest-a first boot did not power off within 600 s"
wait_vm "$pb" 600 || bad "guest-b first boot did not power off within 600 s"
log "first boots done in $(( $(date +%s) - t1 )) s"
for g in a b; do
	r=$(report ${g}1 multi-user)
	case "$r" in
	*"root=/dev/netdisk0 "*) ok "guest-$g: multi-user on /dev/netdisk0 ($r)" ;;
	*) bad "guest-$g: no multi-user report on netdisk0 (see $W/${g}1.console): $r" ;;
	esac
	report ${g}1 marker-written | grep -q "marker-written: $g" &&
		ok "guest-$g: marker written" || bad "guest-$g: no marker written"
done
r=$(report a1 by-netdisk)
[ "$r" = "ND-REPORT: by-netdisk: root " ] && ok "udev: /dev/disk/by-netdisk/root" ||
	bad "udev by-netdisk: '$r'"
report a1 by-label | grep -q ndroot && ok "udev: /dev/disk/by-label/ndroot" ||
	bad "udev by-label: $(report a1 by-label)"
report a1 reconnect_timeout | grep -q '=forever$' &&
	ok "root device reconnects without a time limit" ||
	bad "root reconnect timeout: $(report a1 reconnect_timeout)"
r=$(report a1 failed-units)
[ "$r" = "ND-REPORT: failed-units: " ] && ok "no failed units" || bad "$r"

log "case 1: second boots"
boot a2 guest-a marker:a2; pa=$BOOT_PID
boot b2 guest-b marker:b2; pb=$BOOT_PID
wait_vm "$pa" 600 || bad "guest-a second boot did not power off"
wait_vm "$pb" 600 || bad "guest-b second boot did not power off"
r=$(report a2 markers-before)
[ "$r" = "ND-REPORT: markers-before: a " ] && ok "guest-a finds its marker, not b's" ||
	bad "guest-a second boot: '$r'"
r=$(report b2 markers-before)
[ "$r" = "ND-REPORT: markers-before: b " ] && ok "guest-b finds its marker, not a's" ||
	bad "guest-b second boot: '$r'"
for g in a b; do
	r=$(report ${g}2 fsck)
	# An unclean shutdown reads "recovering journal", then "clean".
	case "$r" in
	*recover*) bad "guest-$g: fsck after poweroff: '$r'" ;;
	*ndroot:\ clean*) ok "guest-$g: fsck after a clean poweroff: clean" ;;
	*) bad "guest-$g: fsck after poweroff: '$r'" ;;
	esac
done
[ "$(sha256sum "$W/root.img" | cut -d' ' -f1)" = "$base_sum" ] &&
	ok "base image unchanged" || bad "base image changed"

log "case 2: netdiskd killed -9 during a write workload"
boot c1 guest-a write:60; pc=$BOOT_PID
for ((i = 0; i < 600; i++)); do
	grep -aqs "ND-REPORT: workload-start" "$W/c1.console" && break
	kill -0 "$pc" 2>/dev/null || break
	sleep 1
done
sleep 5
kill -KILL "$SRV_PID"; wait "$SRV_PID" 2>/dev/null
log "netdiskd killed"
sleep 3
serve || bad "netdiskd restart"
wait_vm "$pc" 600 || bad "guest-c did not power off"
r=$(report c1 workload-done)
case "$r" in
*" failures=0") ok "workload across the kill: $r" ;;
*) bad "workload across the kill: '$r' (see $W/c1.console)" ;;
esac
for k in io-errors-dmesg io-errors-journal; do
	r=$(report c1 $k)
	[ "$r" = "ND-REPORT: $k: 0" ] && ok "$k: none" || bad "$k: '$r'"
done
r=$(report c1 reconnects)
case "$r" in *=0|"") bad "no reconnect seen: '$r'" ;; *) ok "guest reconnected ($r)" ;; esac
grep -aq "ND-REPORT: done, powering off" "$W/c1.console" && ok "guest-c powered off" ||
	bad "guest-c did not finish"
log "boot test took $(( $(date +%s) - t0 )) s"
finish
