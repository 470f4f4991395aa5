#!/bin/sh
# dracut initqueue/online hook, sourced with the interface that came up:
# attaches every netdisk= device of the kernel command line, in order,
# once (several interfaces may come up). The devices reconnect by
# themselves (in the kernel) from here on: nothing in userspace holds them.
# Runs in a subshell: a sourced hook must not touch its caller's variables.
if [ -n "$(getarg netdisk=)" ] && [ ! -e /tmp/netdisk.attached ]; then
	if (
		modprobe netdisk || { echo "netdisk: cannot load netdisk.ko" >&2; exit 1; }
		set -- --key-file /etc/netdisk/boot.key --wait 180
		if [ -s /etc/netdisk/boot.identity ]; then
			read -r nd_id </etc/netdisk/boot.identity
			set -- "$@" --identity "$nd_id"
		fi
		info "netdisk: attaching the netdisk= devices"
		netdisk boot "$@"
	); then
		: >/tmp/netdisk.attached
	else
		die "netdisk: attaching the netdisk= devices failed (see above)"
	fi
fi
