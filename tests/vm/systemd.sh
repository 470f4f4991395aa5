#!/bin/bash
# The systemd units for real: boots a Debian 12 root (debootstrap minbase,
# cached in $O/vm/systemd/base) with systemd as PID 1 and netdisk installed
# by `make install` (Debian's kernel, a small initramfs of our own), then tests/vm/systemd-guest.sh (run by a unit once
# the boot is done) checks netdiskd.service (readiness, reload, status over
# the control socket under the unit's hardening, a clean stop) and a
# netdisktab entry attached at boot by netdisk-generator and
# netdisk@.service; a unit stopped after netdisk@data at shutdown checks
# that the device was detached, and the guest must power off in time. Last,
# an ext4 with unwritten data on a device reconnecting without a limit (as
# a root device), its server killed: netdisk-shutdown.service must bound
# it at the poweroff ("reconnect timeout expired") and the guest must be
# off within SHUTDOWN_MAX guest seconds of the poweroff request.
# Run by `make systemd-test` (part of `make test`), as root; needs
# debootstrap and Debian's registry the first time. Exit 0 if all passed.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd -P)
cd "$REPO"
O=${O:-build}
case "$O" in /*) ;; *) O="$REPO/$O" ;; esac
KVER=${KVER:-$("$REPO/scripts/kver")}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
# 3-5 minutes on a busy 2-core host (systemd ~55-80 s to the test, the
# checks ~70-100 s, shutdown ~15 s under TCG); the limit leaves room.
TIMEOUT=${TIMEOUT:-480}
# netdisk-shutdown.service's bound in the guest (s), and what the poweroff
# with the server gone may take in all (guest s under TCG: the bound, the
# reconnect attempt after it, the rest of the shutdown; without the bound
# it never ends).
SHUTDOWN_BOUND=10
SHUTDOWN_MAX=120
D="$O/vm/systemd"
BASE="$D/base"
STAGE="$D/stage"
IMG="$D/root.img"
CONSOLE="$D/console.log"
# What netdisk links to (libinih1, libssl3, libsystemd0) and what the test runs.
PKGS="systemd-sysv,udev,kmod,iproute2,procps,libinih1,libssl3"

die() { echo "systemd-test: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, image build)"
for f in "$O/netdiskd" "$O/netdisk" "$O/netdisk-generator" kernel/netdisk.ko \
	 "/boot/vmlinuz-$KVER"; do
	[ -e "$f" ] || die "missing $f (make userspace kernel; scripts/install-deps)"
done
command -v debootstrap >/dev/null || die "debootstrap missing (scripts/install-deps)"
# ldd fails on a static binary.
[ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1 ||
	die "/bin/busybox is not busybox-static (scripts/install-deps)"
mkdir -p "$D"

# ---------------------------------------------------------------- base root
key="bookworm minbase $PKGS"
if [ "$(cat "$BASE/.netdisk-base" 2>/dev/null)" != "$key" ]; then
	echo "systemd-test: debootstrap $key (cached in $BASE)"
	rm -rf "$BASE" "$BASE.tmp"
	debootstrap --variant=minbase --include="$PKGS" bookworm "$BASE.tmp" \
		"$MIRROR" >"$D/debootstrap.log" 2>&1 ||
		{ tail -n 20 "$D/debootstrap.log" >&2; die "debootstrap failed"; }
	rm -rf "$BASE.tmp/var/cache/apt/archives/"*.deb
	echo "$key" >"$BASE.tmp/.netdisk-base"
	mv "$BASE.tmp" "$BASE"
fi

# ---------------------------------------------------------------- this run
rm -rf "$STAGE"
mkdir -p "$STAGE"
cp -a "$BASE/." "$STAGE/"
S="$STAGE"
make -s install DESTDIR="$S" PREFIX=/usr/local O="$O" >/dev/null
# The modules netdisk.ko needs (crypto, curve25519), and netdisk.ko itself.
M="/lib/modules/$KVER"
mkdir -p "$S$M/kernel" "$S$M/extra"
for sub in crypto lib arch; do
	cp -a "$M/kernel/$sub" "$S$M/kernel/"
done
cp -a "$M"/modules.builtin* "$M/modules.order" "$S$M/"
cp kernel/netdisk.ko "$S$M/extra/"
depmod -b "$S" "$KVER"

echo netdisk-vm >"$S/etc/hostname"
printf '/dev/vda / ext4 rw 0 1\n' >"$S/etc/fstab"
mkdir -p "$S/etc/netdisk/clients" "$S/srv/netdisk" "$S/root"
"$O/netdisk" keygen "$S/etc/netdisk/clients/lab-01.key" >/dev/null
"$O/netdisk" keygen "$S/etc/netdisk/clients/other.key" >/dev/null
cp "$S/etc/netdisk/clients/lab-01.key" "$S/etc/netdisk/lab-01.key"
head -c 8M /dev/urandom >"$S/srv/netdisk/data.img"
truncate -s 4M "$S/srv/netdisk/two.img"
sha256sum <"$S/srv/netdisk/data.img" | cut -d' ' -f1 >"$S/root/data.sha256"
cat >"$S/etc/netdisk/netdiskd.conf" <<'EOF'
[server]
listen = 127.0.0.1
key-dir = /etc/netdisk/clients
log-level = info

[export data]
path = /srv/netdisk/data.img
clients = lab-*
EOF
cat >"$S/etc/netdisk/netdisktab" <<'EOF'
# attached at boot by netdisk@data.service
data   netdisk://127.0.0.1/data  key-file=/etc/netdisk/lab-01.key,identity=lab-01,reconnect-timeout=5
manual netdisk://127.0.0.1/data  key-file=/etc/netdisk/lab-01.key,identity=lab-01,read-only,noauto
EOF
# As an admin would (netdiskd(8) SYSTEMD): the read-write export's
# directory writable. Test only: client and server on one host, so the
# attach waits for the server.
mkdir -p "$S/etc/systemd/system/netdiskd.service.d" \
	 "$S/etc/systemd/system/netdisk@.service.d" \
	 "$S/etc/systemd/system/multi-user.target.wants"
printf '[Service]\nReadWritePaths=/srv/netdisk\n' \
	>"$S/etc/systemd/system/netdiskd.service.d/exports.conf"
printf '[Unit]\nWants=netdiskd.service\nAfter=netdiskd.service\n' \
	>"$S/etc/systemd/system/netdisk@.service.d/server-here.conf"
ln -sf /usr/local/lib/systemd/system/netdiskd.service \
	"$S/etc/systemd/system/multi-user.target.wants/netdiskd.service"
# Enabled as the package does; a shorter shutdown bound than the default
# 60 s, to spare TCG time.
ln -sf /usr/local/lib/systemd/system/netdisk-shutdown.service \
	"$S/etc/systemd/system/multi-user.target.wants/netdisk-shutdown.service"
mkdir -p "$S/etc/systemd/system/netdisk-shutdown.service.d"
printf '[Service]\nEnvironment=NETDISK_SHUTDOWN_TIMEOUT=%s\n' "$SHUTDOWN_BOUND" \
	>"$S/etc/systemd/system/netdisk-shutdown.service.d/test.conf"
cp tests/vm/systemd-guest.sh "$S/root/systemd-guest.sh"
cat >"$S/etc/systemd/system/netdisk-vmtest.service" <<'EOF'
[Unit]
Description=netdisk systemd test
After=multi-user.target netdisk@data.service
[Service]
Type=oneshot
ExecStart=/bin/bash /root/systemd-guest.sh
StandardOutput=tty
StandardError=tty
TTYPath=/dev/ttyS0
EOF
# Stopped after netdisk@data at shutdown (Before= reverses on stop).
cat >"$S/etc/systemd/system/netdisk-vmtest-shutdown.service" <<'EOF'
[Unit]
Description=netdisk systemd test: detached at shutdown
Before=netdisk@data.service
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/true
ExecStop=/bin/sh -c 'd=$(cat /run/sdtest-data-dev 2>/dev/null); if [ -z "$d" ] || [ -e "/sys/block/$d" ]; then echo "SDTEST-SHUTDOWN=attached: $d"; else echo SDTEST-SHUTDOWN=detached; fi'
StandardOutput=tty
TTYPath=/dev/ttyS0
EOF
for u in netdisk-vmtest.service netdisk-vmtest-shutdown.service; do
	ln -sf "/etc/systemd/system/$u" "$S/etc/systemd/system/multi-user.target.wants/$u"
done
# No gettys (one on ttyS0 would hang up the test's output), no timers.
rm -f "$S/etc/systemd/system/getty.target.wants/"* \
      "$S/etc/systemd/system/timers.target.wants/"*
for u in getty.target serial-getty@.service getty@.service; do
	ln -sf /dev/null "$S/etc/systemd/system/$u"
done

rm -f "$IMG"
truncate -s 1G "$IMG"
mke2fs -q -t ext4 -d "$S" -L root "$IMG"
rm -rf "$STAGE"

# A small initramfs instead of Debian's generic one (which takes ~45 s of
# TCG to probe everything): virtio-blk and ext4, mount, switch_root.
INITRD="$D/initramfs.cpio.gz"
ird="$D/initramfs"
rm -rf "$ird"
mkdir -p "$ird"/{bin,proc,sys,dev,newroot,lib/modules}
cp /bin/busybox "$ird/bin/busybox"
MODS="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci
      virtio_blk crc16 mbcache jbd2 crc32c_generic ext4"
: >"$ird/modules.order"
for m in $MODS; do
	p=$(modinfo -k "$KVER" -n "$m") || die "module $m not found for $KVER"
	[ -f "$p" ] || continue		# built in
	case "$p" in
	*.ko) cp "$p" "$ird/lib/modules/$m.ko" ;;
	*.ko.xz) xz -dc "$p" >"$ird/lib/modules/$m.ko" ;;
	*.ko.zst) zstd -qdc "$p" >"$ird/lib/modules/$m.ko" ;;
	*) die "unsupported module file $p" ;;
	esac
	echo "$m" >>"$ird/modules.order"
done
cat >"$ird/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /modules.order); do
	insmod /lib/modules/$m.ko || echo "initramfs: insmod $m failed"
done
i=0
while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
mount -t ext4 -o rw /dev/vda /newroot ||
	{ echo "initramfs: cannot mount /dev/vda"; poweroff -f; }
umount /proc /sys
mount --move /dev /newroot/dev
exec switch_root /newroot /sbin/init
EOF
chmod 755 "$ird/init"
(cd "$ird" && find . | cpio -o -H newc --quiet | gzip -1) >"$INITRD"
rm -rf "$ird"

# ---------------------------------------------------------------- boot
echo "systemd-test: booting (limit ${TIMEOUT}s, console $CONSOLE)"
start=$(date +%s)
set +e
timeout -k 10 "$TIMEOUT" qemu-system-x86_64 -accel tcg,thread=multi -cpu max \
	-smp 2 -m 1024 -nographic -no-reboot -nic none \
	-kernel "/boot/vmlinuz-$KVER" -initrd "$INITRD" \
	-append "root=/dev/vda rw console=ttyS0 panic=-1 oops=panic loglevel=4 systemd.show_status=1" \
	-drive "file=$IMG,format=raw,if=virtio,cache=unsafe" \
	</dev/null >"$CONSOLE" 2>&1
qrc=$?
set -e
elapsed=$(( $(date +%s) - start ))
sed -i 's/\r$//; s/\x1b\[[0-9;?]*[a-zA-Z]//g; s/\x1bc//g' "$CONSOLE"
grep '^SDTEST' "$CONSOLE" || true

fail=""
[ "$qrc" = 0 ] || fail="qemu exit $qrc (124: timed out after ${TIMEOUT}s)"
grep -qx 'SDTEST-RESULT=0' "$CONSOLE" || fail="${fail:+$fail; }guest checks failed or did not finish"
grep -qx 'SDTEST-SHUTDOWN=detached' "$CONSOLE" ||
	fail="${fail:+$fail; }device not detached at shutdown (or the check did not run)"
# The poweroff with the server gone: bounded by netdisk-shutdown.service,
# the device failed, the guest off within SHUTDOWN_MAX of the poweroff.
gone=$(sed -n 's/^SDTEST-GONE=//p' "$CONSOLE")
grep -q "netdisk-shutdown: ${gone:-none}: reconnect timeout forever -> $SHUTDOWN_BOUND s" "$CONSOLE" ||
	fail="${fail:+$fail; }netdisk-shutdown did not bound ${gone:-the device}"
grep -Eq "${gone:-none}: reconnect timeout expired" "$CONSOLE" ||
	fail="${fail:+$fail; }${gone:-the device} never gave up at shutdown"
# Guest seconds: from the poweroff request to the kernel's last words.
t0=$(sed -n 's/^SDTEST-POWEROFF-AT=\([0-9]*\).*/\1/p' "$CONSOLE")
t1=$(sed -n 's/^\[ *\([0-9]*\)\.[0-9]*\] reboot: Power down.*/\1/p' "$CONSOLE")
if [ -n "$t0" ] && [ -n "$t1" ]; then
	echo "systemd-test: poweroff with the server gone took $((t1 - t0))s of guest time (bound ${SHUTDOWN_BOUND}s)"
	[ $((t1 - t0)) -le "$SHUTDOWN_MAX" ] ||
		fail="${fail:+$fail; }poweroff with the server gone took $((t1 - t0))s (> ${SHUTDOWN_MAX}s)"
else
	fail="${fail:+$fail; }no poweroff request or no 'reboot: Power down' on the console"
fi
if grep -Eq '^\[ *[0-9]+\.[0-9]+\] .*(WARNING:|BUG:|Oops|Call Trace|Kernel panic)' "$CONSOLE"; then
	fail="${fail:+$fail; }kernel reported a problem"
fi
if [ -n "$fail" ]; then
	echo "systemd-test: FAIL ($fail), ${elapsed}s; last console lines:" >&2
	tail -n 80 "$CONSOLE" >&2
	exit 1
fi
echo "systemd-test: PASS (${elapsed}s)"
