#!/bin/bash
# dracut module: the same netdisk= command line as the initramfs-tools
# integration (netdisk-boot(7)). Included only on a machine with
# /etc/netdisk/boot.key, like the initramfs-tools hook.

check() {
	[ -e /etc/netdisk/boot.key ] || return 255
	require_binaries netdisk || return 1
	return 0
}

depends() {
	echo network
}

installkernel() {
	# The driver allocates gcm(aes), hmac(sha256) and sha256 by name.
	hostonly='' instmods netdisk gcm ghash_generic ghash_clmulni_intel \
		aesni_intel aes_generic ctr hmac sha256_generic sha256_ssse3 \
		cryptd crypto_simd
}

install() {
	inst_multiple netdisk
	inst_rules 60-netdisk.rules
	inst_hook cmdline 90 "$moddir/parse-netdisk.sh"
	inst_hook initqueue/online 90 "$moddir/netdisk-attach.sh"
	# Root only (dracut itself writes the image with umask 077).
	mkdir -m 0700 -p "$initdir/etc/netdisk"
	(umask 077 && cp /etc/netdisk/boot.key "$initdir/etc/netdisk/boot.key")
	chmod 0600 "$initdir/etc/netdisk/boot.key"
	[ -e /etc/netdisk/boot.identity ] &&
		inst_simple /etc/netdisk/boot.identity
	return 0
}
