#!/bin/sh
# dracut cmdline hook: netdisk= asks for the network; the attach runs once
# it is online (netdisk-attach.sh), and root= waits for the device.
[ -n "$(getarg netdisk=)" ] || return 0
echo "rd.neednet=1" >/etc/cmdline.d/95-netdisk.conf
rootok=1
