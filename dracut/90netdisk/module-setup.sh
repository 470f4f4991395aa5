#!/bin/bash
# dracut module netdisk: root on a netdisk device, with the same netdisk=
# kernel command line as the initramfs-tools integration (netdisk-boot(7)).
# Included by default only on a machine with /etc/netdisk/boot.key, like
# the initramfs-tools hook; `dracut --add netdisk` without the key fails.
# shellcheck disable=SC2154 # dracutsysrootdir, moddir, initdir: dracut's

check() {
	require_binaries netdisk || return 1
	[ -e "$dracutsysrootdir/etc/netdisk/boot.key" ] || return 255
	return 0
}

depends() {
	# The attach runs from the initqueue/online hooks, which
	# network-legacy and network-manager run once an interface is up;
	# dracut 059's systemd-networkd runs none. So unless one of the two
	# is in, or NetworkManager's initrd generator is there for the
	# network module to choose, network-legacy (dhclient) is.
	local h
	for h in network-legacy network-manager; do
		if dracut_module_included "$h"; then
			echo network
			return 0
		fi
	done
	for h in /usr/libexec/nm-initrd-generator /usr/lib/nm-initrd-generator \
		/usr/lib/NetworkManager/nm-initrd-generator; do
		if [ -x "$dracutsysrootdir$h" ]; then
			echo network
			return 0
		fi
	done
	echo network-legacy network
	return 0
}

installkernel() {
	instmods -c netdisk || return 1
	# The driver allocates gcm(aes), hmac(sha256) and sha256 by name: the
	# accelerated and generic implementations, whichever this CPU has
	# (those built into the kernel are skipped). Not host-only: the
	# diskless machine's CPU is not necessarily the builder's.
	hostonly='' instmods gcm ghash_generic ghash_clmulni_intel aesni_intel \
		aes_generic ctr hmac sha256_generic sha256_ssse3 cryptd crypto_simd
}

install() {
	local key="$dracutsysrootdir/etc/netdisk/boot.key"
	local id="$dracutsysrootdir/etc/netdisk/boot.identity"

	[ -e "$key" ] || { dfatal "netdisk: no $key"; return 1; }
	inst_multiple netdisk
	inst_rules 60-netdisk.rules
	inst_hook cmdline 90 "$moddir/parse-netdisk.sh"
	inst_hook initqueue/online 90 "$moddir/netdisk-attach.sh"
	# The key stays readable by root only inside the image (dracut itself
	# writes the image with umask 077: mode 0600).
	mkdir -p "$initdir/etc/netdisk" && chmod 0700 "$initdir/etc/netdisk" ||
		return 1
	(umask 077 && cp "$key" "$initdir/etc/netdisk/boot.key") || return 1
	chmod 0600 "$initdir/etc/netdisk/boot.key" || return 1
	if [ -e "$id" ]; then
		cp "$id" "$initdir/etc/netdisk/boot.identity" || return 1
	fi
	return 0
}
