#!/bin/sh
# dracut initqueue/online hook: attaches the netdisk= devices, once.
[ -e /tmp/netdisk.attached ] && return 0
[ -n "$(getarg netdisk=)" ] || return 0
modprobe netdisk || die "netdisk: cannot load netdisk.ko"
if [ -s /etc/netdisk/boot.identity ]; then
	set -- --identity "$(cat /etc/netdisk/boot.identity)"
else
	set --
fi
if netdisk boot --key-file /etc/netdisk/boot.key --wait 180 "$@"; then
	: >/tmp/netdisk.attached
else
	die "netdisk: attaching the netdisk= devices failed (see above)"
fi
