#!/bin/sh
# dracut-initrd.sh ROOT KVER OUT: a dracut initramfs for the kernel KVER of
# the image root ROOT, made inside it by its own dracut (scripts/inroot)
# with netdisk's module 90netdisk, written to OUT (mode 0600: it holds the
# boot key). Used by the boot test for a guest that boots with dracut
# instead of initramfs-tools; the same netdisk= line, plus dracut's network
# options (ip=dhcp; rd.neednet=1 is implied by netdisk=).
#
# ROOT needs: dracut-core and dracut-network (whose network-legacy module
# brings the network up with dhclient: isc-dhcp-client), netdisk-client
# (the module in /usr/lib/dracut/modules.d/90netdisk), netdisk.ko for KVER
# (netdisk-dkms) and /etc/netdisk/boot.key. dracut-core installs beside
# initramfs-tools (the dracut package would replace it); ROOT's
# initramfs-tools image is left alone.
#
# The initramfs is generic (--no-hostonly: the machine that builds it is
# not the one that boots it), without what a diskless machine never needs
# at boot (disk, RAID, LVM, crypt, plymouth drivers and modules).
# ND_DRACUT_DRIVERS="virtio_pci virtio_net ext4" (dracut --drivers) limits
# the disk, input, bus and file system drivers to those named, for a test
# machine whose hardware is known: 28 MB instead of 47, made in less than
# half the time (dracut's network module still adds every wired network
# driver). The root's file system must be named: without ext4 the guest
# cannot mount its root.
# Its content is checked before OUT is written: netdisk.ko, the CLI, the
# hooks, the key readable by root only. Exit status non-zero with one line
# on stderr on any failure; dracut's own output goes to stdout.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd -P)
INROOT=$HERE/../../scripts/inroot

die() { echo "dracut-initrd: $*" >&2; exit 1; }

[ $# = 3 ] || { echo "usage: dracut-initrd.sh ROOT KVER OUT" >&2; exit 2; }
ROOT=$1 KVER=$2 OUT=$3
[ "$(id -u)" = 0 ] || die "must run as root (chroot)"
case "$KVER" in *[!A-Za-z0-9.+_-]*|"") die "not a kernel version: '$KVER'" ;; esac
[ -x "$ROOT/usr/bin/dracut" ] || die "no dracut in $ROOT (dracut-core)"
[ -d "$ROOT/usr/lib/dracut/modules.d/40network" ] ||
	die "no dracut network module in $ROOT (dracut-network)"
[ -e "$ROOT/usr/lib/dracut/modules.d/90netdisk/module-setup.sh" ] ||
	die "no dracut module 90netdisk in $ROOT (netdisk-client)"
[ -d "$ROOT/lib/modules/$KVER" ] || die "no kernel $KVER in $ROOT"
[ -e "$ROOT/etc/netdisk/boot.key" ] || die "no /etc/netdisk/boot.key in $ROOT"

# Written in the root's /boot (root's, not world-writable), then moved out.
img=/boot/netdisk-dracut.$$.img
trap 'rm -f "$ROOT$img"' EXIT
drivers=${ND_DRACUT_DRIVERS:-}
case "$drivers" in *[!a-z0-9_\ -]*) die "not a list of driver names: '$drivers'" ;; esac
"$INROOT" "$ROOT" dracut --force --no-hostonly --no-hostonly-cmdline \
	--kver "$KVER" --add "network-legacy netdisk" ${drivers:+--drivers "$drivers"} \
	--omit "plymouth dm dmraid lvm mdraid multipath crypt nvdimm nvmf iscsi nbd nfs cifs fcoe fcoe-uefi btrfs resume" \
	--omit-drivers "ahci ata_piix nvme mptspi mptsas megaraid_sas mpt3sas hpsa aacraid 3w-9xxx 3w-sas arcmsr qla2xxx lpfc be2iscsi bnx2fc bnx2i cxgb3i cxgb4i qedi qedf" \
	"$img" || die "dracut failed in $ROOT"

# What the boot needs is in the image, the key readable by root only.
list=$("$INROOT" "$ROOT" lsinitrd "$img") || die "lsinitrd $img failed"
for want in "/netdisk.ko" "usr/bin/netdisk" "lib/udev/rules.d/60-netdisk.rules" \
	"hooks/cmdline/90-parse-netdisk.sh" "hooks/initqueue/online/90-netdisk-attach.sh" \
	"sbin/dhclient"; do
	echo "$list" | grep -q -- "$want" || die "$want is not in the initramfs"
done
echo "$list" | grep -E ' etc/netdisk/boot\.key$' | grep -q '^-rw------- .* root  *root ' ||
	die "etc/netdisk/boot.key in the initramfs is not root's with mode 0600: $(echo "$list" | grep boot.key)"
mode=$(stat -c %a "$ROOT$img")
[ "$mode" = 600 ] || die "dracut wrote $img with mode $mode, not 600"
mv "$ROOT$img" "$OUT"
trap - EXIT
echo "dracut-initrd: $OUT ($(du -k "$OUT" | cut -f1) KiB) for $KVER"
