#!/bin/bash
# Guest side of tests/vm/systemd.sh, run by netdisk-vmtest.service once the
# boot is done (systemd is PID 1, netdisk is `make install`ed in
# /usr/local). Prints "SDTEST: ..." lines and SDTEST-RESULT=0 if every
# check passed, then powers the guest off.
set -u
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
KEY=/etc/netdisk/lab-01.key
CONF=/etc/netdisk/netdiskd.conf
SOCK=/run/netdisk/netdiskd.sock
failed=0
ok() { echo "SDTEST: ok: $*"; }
bad() { echo "SDTEST: FAIL: $*"; failed=1; }
check() {	# check WHAT CMD...: CMD must succeed
	local what=$1
	shift
	if "$@"; then ok "$what"; else bad "$what (exit $?: $*)"; fi
}
# Waits up to 30 s for CMD to succeed (asynchronous effects only).
eventually() {
	local i
	for ((i = 0; i < 60; i++)); do
		"$@" && return 0
		sleep 0.5
	done
	return 1
}
status_has() { netdiskd status 2>/dev/null | grep -Eq "$1"; }
dev_sum() { dd if="$1" bs=1M count=8 iflag=direct status=none | sha256sum | cut -d' ' -f1; }

echo "SDTEST: start at $(cut -d' ' -f1 /proc/uptime) s of guest time"

# ---- boot: netdisktab entry attached by the generator's netdisk@data
check "generator made netdisk@data wanted" \
	test -L /run/systemd/generator/remote-fs.target.wants/netdisk@data.service
check "noauto entry not wanted" \
	test ! -e /run/systemd/generator/remote-fs.target.wants/netdisk@manual.service
check "netdisk@data active" systemctl -q is-active netdisk@data.service
dev=$(readlink /run/netdisk-devices/data 2>/dev/null)
check "/run/netdisk-devices/data links to a device ($dev)" test -b "${dev:-/nonexistent}"
[ -b "${dev:-/nonexistent}" ] &&
	check "attached device reads the export's data" \
		test "$(dev_sum "$dev")" = "$(cat /root/data.sha256)"

# ---- netdiskd.service: hardening, control socket, status
check "netdiskd active" systemctl -q is-active netdiskd.service
check "Type=notify" test "$(systemctl show -P Type netdiskd.service)" = notify
check "control socket mode 0600" test "$(stat -c %a "$SOCK" 2>/dev/null)" = 600
netdiskd status >/root/status.1 2>&1
check "netdiskd status lists export data" grep -Eq '^export data .*mode=rw' /root/status.1
check "netdiskd status lists the boot session" \
	grep -Eq '^session [^ ]+ identity=lab-01 export=data ' /root/status.1
sed 's/^/SDTEST: status: /' /root/status.1
if systemd-analyze security netdiskd.service >/root/security 2>&1; then
	echo "SDTEST: $(tail -n 1 /root/security)"
else
	echo "SDTEST: systemd-analyze security unavailable: $(tail -n 1 /root/security)"
fi

# ---- reload: an export added, the running session untouched
sess=$(grep -Eo '^session [^ ]+' /root/status.1 | head -n 1)
printf '\n[export two]\npath = /srv/netdisk/two.img\nread-only = yes\n' >>"$CONF"
check "systemctl reload netdiskd" systemctl reload netdiskd.service
check "export two appears after the reload" eventually status_has '^export two '
check "netdisk info on the new export" \
	netdisk info netdisk://127.0.0.1/two --key-file "$KEY" --identity lab-01
check "boot session kept across the reload (${sess:-none})" \
	status_has "^${sess:-nosession} identity=lab-01 export=data "
if [ -b "${dev:-/nonexistent}" ]; then
	n=${dev##*/}
	check "device did not reconnect" \
		test "$(cat /sys/block/$n/netdisk/reconnects)" = 0
	check "device still reads after the reload" \
		test "$(dev_sum "$dev")" = "$(cat /root/data.sha256)"
fi
check "netdiskd still active after the reload" systemctl -q is-active netdiskd.service

# ---- a noauto entry by hand, and netdisk@data stopped (detach --tab)
check "systemctl start netdisk@manual" systemctl start netdisk@manual.service
m=$(readlink /run/netdisk-devices/manual 2>/dev/null)
check "manual entry attached read-only ($m)" \
	test "$(blockdev --getro "${m:-/nonexistent}" 2>/dev/null)" = 1
# Detach works from what was attached, not from the table: manual's URL
# edited and data's entry removed while both are attached.
cp /etc/netdisk/netdisktab /root/netdisktab.orig
sed -i -e 's|^manual  *netdisk://127.0.0.1/data|manual netdisk://localhost/two|' \
	-e '/^data /d' /etc/netdisk/netdisktab
check "systemctl stop netdisk@manual (URL edited)" systemctl stop netdisk@manual.service
check "manual device gone" test ! -e "/sys/block/${m##*/}"
check "manual links removed" \
	test ! -e /run/netdisk-devices/manual -a ! -L /run/netdisk-devices/.manual.id
check "systemctl stop netdisk@data (entry removed)" systemctl stop netdisk@data.service
check "data device detached" test ! -e "/sys/block/${dev##*/}"
check "data links removed" \
	test ! -e /run/netdisk-devices/data -a ! -L /run/netdisk-devices/.data.id
cp /root/netdisktab.orig /etc/netdisk/netdisktab

# ---- stop, then start: readiness
check "systemctl stop netdiskd" systemctl stop netdiskd.service
check "stopped cleanly (Result=success)" \
	test "$(systemctl show -P Result netdiskd.service)" = success
check "main process exited 0" \
	test "$(systemctl show -P ExecMainStatus netdiskd.service)" = 0
check "control socket removed" test ! -e "$SOCK"
check "systemctl start netdiskd" systemctl start netdiskd.service
# No wait: start returned, so it must listen and answer now.
check "serves at once after systemctl start returned" \
	netdisk info netdisk://127.0.0.1/data --key-file "$KEY" --identity lab-01
check "control socket up at once after start" test -S "$SOCK"

# ---- attached again, to be detached by the shutdown
check "systemctl start netdisk@data" systemctl start netdisk@data.service
check "attached again" test -L /run/netdisk-devices/data
d=$(readlink /run/netdisk-devices/data 2>/dev/null)
echo "${d##*/}" >/run/sdtest-data-dev

# ---- poweroff with the server gone: a device reconnecting without a limit
# (as a root device) from a server of its own, an ext4 on it mounted with
# unwritten data, the server killed. netdisk-shutdown.service must bound
# it once the shutdown begins (the host checks the console).
check "netdisk-shutdown.service active" systemctl -q is-active netdisk-shutdown.service
kept() {
	journalctl -b -u netdisk-shutdown.service --no-pager -q -o cat |
		grep -q 'not stopping: reconnect timeouts kept'
}
systemctl stop netdisk-shutdown.service
check "its stop outside a shutdown keeps the limits" eventually kept
systemctl start netdisk-shutdown.service
truncate -s 64M /srv/netdisk/gone.img
netdiskd --listen 127.0.0.1 --port 10999 --state-dir /root/gone-state \
	--file /srv/netdisk/gone.img --key-file "$KEY" --export gone \
	>/root/gone.log 2>&1 &
gone_pid=$!
eventually netdisk info netdisk://127.0.0.1:10999/gone --key-file "$KEY" >/dev/null 2>&1
g=$(netdisk attach netdisk://127.0.0.1:10999/gone --key-file "$KEY" \
	--reconnect-timeout forever 2>/root/gone.err)
check "attached with --reconnect-timeout forever ($g)" test -b "${g:-/nonexistent}"
if [ -b "${g:-/nonexistent}" ]; then
	mkfs.ext4 -q "$g" && mkdir -p /mnt/gone && mount "$g" /mnt/gone &&
		dd if=/dev/urandom of=/mnt/gone/f bs=1M count=8 status=none
	check "ext4 on it mounted with unwritten data" mountpoint -q /mnt/gone
	kill -KILL "$gone_pid"
	echo "SDTEST-GONE=${g##*/}"
fi

if [ "$failed" != 0 ]; then
	journalctl -b --no-pager -o short-monotonic -u netdiskd.service \
		-u 'netdisk@*' | tail -n 60 | sed 's/^/SDTEST: journal: /'
fi
echo "SDTEST-RESULT=$failed"
echo "SDTEST-POWEROFF-AT=$(cut -d' ' -f1 /proc/uptime)"
systemctl --no-block poweroff
