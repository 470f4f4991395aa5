#!/bin/sh
# Runs in the booted test machine as nd-report.service once multi-user is
# reached: reports on the serial console in lines "ND-REPORT: ...", does
# what ndtest= on the kernel command line asks, then powers off (QEMU runs
# with -no-reboot, so a reboot is a new QEMU run by tests/boot/run.sh).
#   ndtest=marker:NAME  list /markers, then add /markers/NAME
#   ndtest=write:SEC    write and fsync files for SEC seconds (the host
#                       kills netdiskd meanwhile), count failures
exec >/dev/ttyS0 2>&1
say() { echo "ND-REPORT: $*"; }

say "multi-user root=$(findmnt -no SOURCE /) opts=$(findmnt -no OPTIONS /)"
say "by-netdisk: $(ls /dev/disk/by-netdisk 2>/dev/null | tr '\n' ' ')"
say "by-label: $(ls /dev/disk/by-label 2>/dev/null | tr '\n' ' ')"
say "reconnect_timeout=$(cat /sys/block/netdisk0/netdisk/reconnect_timeout)"
# The initramfs checks the root (its log in /run/initramfs), else
# systemd-fsck-root does.
say "fsck: $( { cat /run/initramfs/fsck.log 2>/dev/null
	journalctl -b -u systemd-fsck-root --no-pager -o cat; } |
	grep -a -E 'clean|recover|error' | tr '\n' ' ')"

say "failed-units: $(systemctl --failed --no-legend --plain | awk '{print $1}' | tr '\n' ' ')"

for a in $(cat /proc/cmdline); do
	case "$a" in
	ndtest=marker:*)
		name=${a#ndtest=marker:}
		mkdir -p /markers
		say "markers-before: $(ls /markers | tr '\n' ' ')"
		echo "$name" >"/markers/$name" && sync -f "/markers/$name"
		say "marker-written: $name"
		;;
	ndtest=write:*)
		sec=${a#ndtest=write:}
		fails=0 n=0
		end=$(($(date +%s) + sec))
		say "workload-start"
		while [ "$(date +%s)" -lt "$end" ]; do
			n=$((n + 1))
			dd if=/dev/urandom of="/var/tmp/w.$((n % 8))" bs=64k count=16 \
				conv=fsync status=none || fails=$((fails + 1))
		done
		say "workload-done writes=$n failures=$fails"
		say "io-errors-dmesg: $(dmesg | grep -c -i -E 'I/O error|EXT4-fs error|Buffer I/O')"
		say "io-errors-journal: $(journalctl -k -b --no-pager | grep -c -i -E 'I/O error|EXT4-fs error')"
		say "reconnects=$(cat /sys/block/netdisk0/netdisk/reconnects)"
		;;
	esac
done
say "done, powering off"
systemctl poweroff
