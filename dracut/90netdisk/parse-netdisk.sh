#!/bin/sh
# dracut cmdline hook: a netdisk= parameter asks for the network
# (rd.neednet=1, configured by dracut's ip= as usual); the attach runs once
# an interface is online (netdisk-attach.sh), and root= (/dev/netdisk0, a
# partition of it, UUID= or LABEL=) waits for the device as for any disk.
# The parameters are checked here, before the network: a typo stops the
# boot with netdisk's own message instead of a root device that never comes.
[ -n "$(getarg netdisk=)" ] || return 0
if ! netdisk boot --dry-run >/dev/null; then
	die "netdisk: a netdisk= parameter is invalid (see above)"
fi
echo "rd.neednet=1" >/etc/cmdline.d/95-netdisk.conf
