#!/bin/bash
# The Debian 12 root a diskless test machine boots: debootstrap minbase
# with systemd, udev, kmod, iproute2, e2fsprogs, then Debian's kernel from
# bookworm-security (the version the host has, so netdisk.ko built here
# loads in it) and initramfs-tools, without an initramfs (INITRD=No: the
# test makes its own). Slow (minutes), so the result is kept
# as a tarball in $CACHE and unpacked from there on later runs.
# Usage: mkroot.sh DIR   (DIR must not exist; a root afterwards)
set -eu
DIR=$1
CACHE=${ND_BOOT_CACHE:-/var/cache/netdisk/boot}
MIRROR=${ND_MIRROR:-http://deb.debian.org/debian}
TAR=$CACHE/root-bookworm-v1.tar
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9

if [ ! -s "$TAR" ]; then
	tmp=$(mktemp -d "$CACHE/mkroot.XXXXXX")
	cleanup() {
		for m in dev/pts dev proc sys; do
			umount "$tmp/root/$m" 2>/dev/null || true
		done
		# A busy umount leaves the host's /dev bound in: never cross it.
		rm -rf --one-file-system "$tmp"
	}
	trap cleanup EXIT
	echo "mkroot: debootstrap into $tmp/root (cached afterwards in $TAR)"
	debootstrap --variant=minbase \
		--include=systemd-sysv,udev,kmod,iproute2,e2fsprogs,procps \
		bookworm "$tmp/root" "$MIRROR" >"$tmp/debootstrap.log" 2>&1 ||
		{ tail -n 30 "$tmp/debootstrap.log" >&2; exit 1; }
	cat >"$tmp/root/etc/apt/sources.list" <<EOT
deb $MIRROR bookworm main
deb http://deb.debian.org/debian-security bookworm-security main
EOT
	mount -t proc proc "$tmp/root/proc"
	mount -t sysfs sys "$tmp/root/sys"
	mount --bind /dev "$tmp/root/dev"
	mount --bind /dev/pts "$tmp/root/dev/pts"
	chroot "$tmp/root" sh -c 'apt-get update -qq &&
		INITRD=No DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends linux-image-amd64 initramfs-tools \
			>/dev/null && apt-get clean' ||
		{ echo "mkroot: kernel install in the root failed" >&2; exit 1; }
	for m in dev/pts dev proc sys; do umount "$tmp/root/$m"; done
	tar -C "$tmp/root" -cf "$tmp/root.tar" .
	mv "$tmp/root.tar" "$TAR"
	cleanup
	trap - EXIT
fi
mkdir "$DIR"
tar -C "$DIR" -xf "$TAR"
