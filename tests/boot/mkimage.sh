#!/bin/bash
# The root image a diskless test machine boots (make boot-test), made from
# the Debian packages as an administrator would:
#   - a Debian 12 root from scripts/mkroot with BOOT_PKGS (systemd, udev,
#     Debian's kernel and its headers, initramfs-tools, dracut-core and
#     dracut-network beside it, dkms): cached by mkroot, keyed by the list;
#   - the machine's settings first (the boot key, MODULES=netboot, fstab,
#     the test's report unit), then the three .debs of `make deb` installed
#     with apt in the root (scripts/inroot): DKMS builds netdisk.ko for the
#     image's own kernel, and netdisk-client's update-initramfs trigger
#     makes the image's initramfs with our hook, by the image's own tools;
#   - a dracut initramfs beside it (tests/boot/dracut-initrd.sh);
#   - mke2fs -d into OUT/root.img (label ndroot), the kernel and the
#     initramfs copied out for QEMU's -kernel/-initrd.
# Built anew on every run (only mkroot's tarball is cached).
#
#   mkimage.sh --cache          make mkroot's tarball only (make test runs
#                               this in the background at its start)
#   mkimage.sh OUT KEY DEB...   OUT: a fresh directory; KEY: the boot key
#
# Leaves in OUT: root.img, vmlinuz, initrd (initramfs-tools), initrd.mode
# (its file mode in the image), initrd.list (lsinitramfs -l),
# initrd.dracut (if made), kver, logs.
set -eu
REPO=$(cd "$(dirname "$0")/../.." && pwd -P)
BOOT_PKGS="systemd-sysv udev kmod iproute2 e2fsprogs procps
	linux-image-amd64 linux-headers-amd64 initramfs-tools
	dracut-core dracut-network dkms"

die() { echo "mkimage: $*" >&2; exit 1; }

if [ "${1:-}" = --cache ]; then
	# shellcheck disable=SC2086 # one word per package
	exec "$REPO/scripts/mkroot" --tarball $BOOT_PKGS
fi
[ $# -ge 3 ] || die "usage: mkimage.sh --cache | mkimage.sh OUT KEY DEB..."
OUT=$1 KEY=$2
shift 2
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd -P)
ROOT=$OUT/root
in_root() { "$REPO/scripts/inroot" "$ROOT" "$@"; }
step() { echo "[$(date +%T)] mkimage: $*"; }

step "root from mkroot"
# shellcheck disable=SC2086 # one word per package
"$REPO/scripts/mkroot" "$ROOT" $BOOT_PKGS 2>"$OUT/mkroot.log" ||
	{ cat "$OUT/mkroot.log" >&2; die "scripts/mkroot failed"; }
# shellcheck disable=SC2012 # one kernel, a plain version string
KV=$(ls "$ROOT/lib/modules")
case "$KV" in *[!a-z0-9.+-]*|"") die "not one kernel in the root: '$KV'" ;; esac
echo "$KV" >"$OUT/kver"

# ---- the machine's settings, before the packages: their trigger then
# makes the initramfs once, with the key in it.
install -d -m 0700 "$ROOT/etc/netdisk"
install -m 0600 "$KEY" "$ROOT/etc/netdisk/boot.key"
# A diskless machine needs no disk drivers: base and network only.
sed -i 's/^MODULES=.*/MODULES=netboot/' "$ROOT/etc/initramfs-tools/initramfs.conf"
# Built in a chroot, the fsck hook cannot probe the root's type.
echo FSTYPE=ext4 >"$ROOT/etc/initramfs-tools/conf.d/fstype"
echo "LABEL=ndroot / ext4 defaults 0 1" >"$ROOT/etc/fstab"
echo diskless >"$ROOT/etc/hostname"
install -m 0755 "$REPO/tests/boot/report.sh" "$ROOT/usr/local/sbin/nd-report"
cat >"$ROOT/etc/systemd/system/nd-report.service" <<'EOT'
[Unit]
Description=netdisk boot test report
# Its poweroff must not cancel the start of the unit that bounds it.
After=multi-user.target netdisk-shutdown.service

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/nd-report

[Install]
WantedBy=multi-user.target
EOT
ln -s /etc/systemd/system/nd-report.service \
	"$ROOT/etc/systemd/system/multi-user.target.wants/nd-report.service"
# The poweroff with the server gone: bounded at 10 s, not the default 60.
mkdir -p "$ROOT/etc/systemd/system/netdisk-shutdown.service.d"
printf '[Service]\nEnvironment=NETDISK_SHUTDOWN_TIMEOUT=10\n' \
	>"$ROOT/etc/systemd/system/netdisk-shutdown.service.d/boot-test.conf"
# Units a diskless test machine has no use for, each a few seconds of
# TCG time at boot or shutdown: none of them is under test. (The serial
# console's getty would also read what the host types to report.sh.)
for u in apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer \
	 e2scrub_all.timer e2scrub_reap.service fstrim.timer \
	 systemd-timesyncd.service getty@tty1.service \
	 serial-getty@ttyS0.service; do
	ln -sf /dev/null "$ROOT/etc/systemd/system/$u"
done

# ---- the packages, as a user installs them. A fresh 0700 directory
# (mktemp): the root's /tmp is world-writable.
step "apt-get install of $(for d in "$@"; do printf '%s ' "${d##*/}"; done)"
debs=$(mktemp -d "$ROOT/tmp/netdisk-debs.XXXXXX")
inside=()
for d in "$@"; do
	cp "$d" "$debs/"
	inside+=("/tmp/${debs##*/}/${d##*/}")
done
# (mkroot's tarballs have no package lists: update first)
if ! in_root sh -c 'apt-get -q update && DEBIAN_FRONTEND=noninteractive \
	apt-get -y -q -o Dpkg::Use-Pty=0 install --no-install-recommends "$@"' \
	apt "${inside[@]}" >"$OUT/install.log" 2>&1; then
	tail -n 30 "$OUT/install.log" >&2
	die "apt-get install failed ($OUT/install.log)"
fi
rm -rf "$debs"
grep -q 'update-initramfs: Generating /boot/initrd.img' "$OUT/install.log" ||
	die "netdisk-client's trigger made no initramfs ($OUT/install.log)"
ko=$(in_root modinfo -k "$KV" -n netdisk) || die "no netdisk.ko for $KV (DKMS)"
case "$ko" in
*/updates/dkms/netdisk.ko) ;;
*) die "netdisk.ko for $KV is $ko, not DKMS's" ;;
esac

# ---- a dracut initramfs of the same root, for a guest that boots with
# it. All drivers, as a user's would have: with only QEMU's
# (ND_DRACUT_DRIVERS) its guests showed soft lockups and RCU stalls,
# not understood yet.
step "dracut initramfs"
"$REPO/tests/boot/dracut-initrd.sh" "$ROOT" "$KV" "$OUT/initrd.dracut" \
	>"$OUT/dracut.log" 2>&1 ||
	{ tail -n 20 "$OUT/dracut.log" >&2; die "dracut-initrd.sh failed"; }

# What the initramfs holds, for run.sh's checks (the key's mode, the
# DKMS-built module).
in_root lsinitramfs -l "/boot/initrd.img-$KV" >"$OUT/initrd.list" ||
	die "lsinitramfs failed"
cp "$ROOT/boot/vmlinuz-$KV" "$OUT/vmlinuz"
cp "$ROOT/boot/initrd.img-$KV" "$OUT/initrd"
stat -c %a "$ROOT/boot/initrd.img-$KV" >"$OUT/initrd.mode"
# What only building needed (headers, compiler, DKMS's build tree) and
# documentation leave the image: mke2fs -d copies less. The package
# database still lists them; nothing in the test uses it.
rm -rf "$ROOT"/usr/src/linux-headers-* "$ROOT"/usr/lib/gcc "$ROOT"/var/lib/dkms/netdisk/*/build \
	"$ROOT"/usr/share/doc "$ROOT"/usr/share/man "$ROOT"/usr/share/locale \
	"$ROOT"/var/cache/apt "$ROOT"/var/lib/apt/lists "$ROOT"/boot/initrd.img-*
step "mke2fs -d ($(du -sm "$ROOT" | cut -f1) MB)"
mke2fs -q -t ext4 -L ndroot -d "$ROOT" "$OUT/root.img" 1536M >"$OUT/mke2fs.log"
rm -rf --one-file-system "$ROOT"
step "image ready"
