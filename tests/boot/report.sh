#!/bin/sh
# Runs in the booted test machine as nd-report.service once multi-user is
# reached: reports on the serial console in lines "ND-REPORT: ...", does
# what each ndtest= on the kernel command line asks, in order, then powers
# off (QEMU runs with -no-reboot, so a reboot is a new QEMU run by
# tests/boot/run.sh).
#   ndtest=marker:NAME  list /markers, then add /markers/NAME
#   ndtest=write        write and fsync files until the device has
#                       reconnected (the host kills netdiskd meanwhile),
#                       then 5 s more; count failures
#   ndtest=noserver     wait for the host's "go" on the console (it has
#                       stopped netdiskd) and for the device to notice,
#                       then power off: the host times the way to QEMU's
#                       exit
exec >/dev/ttyS0 2>&1
say() { echo "ND-REPORT: $*"; }
# The kernel's log, whatever `quiet` lets through to the console.
kwarn() {
	say "kernel-warnings: $(dmesg | grep -E 'WARNING:|BUG:|Oops|Call Trace|general protection|UBSAN:|blocked for more than|rcu: INFO' |
		head -n 3 | tr '\n' ' ')"
}
dev=/sys/block/netdisk0/netdisk

say "multi-user root=$(findmnt -no SOURCE /) opts=$(findmnt -no OPTIONS /) uptime=$(cut -d' ' -f1 /proc/uptime)"
say "by-netdisk: $(ls /dev/disk/by-netdisk 2>/dev/null | tr '\n' ' ')"
say "by-label: $(ls /dev/disk/by-label 2>/dev/null | tr '\n' ' ')"
say "reconnect_timeout=$(cat $dev/reconnect_timeout)"
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
	ndtest=write)
		fails=0 n=0 until=""
		end=$(($(date +%s) + 300))
		say "workload-start"
		while [ "$(date +%s)" -lt "$end" ]; do
			n=$((n + 1))
			dd if=/dev/urandom of="/var/tmp/w.$((n % 8))" bs=64k count=16 \
				conv=fsync status=none || fails=$((fails + 1))
			if [ -z "$until" ] && [ "$(cat $dev/reconnects)" != 0 ]; then
				until=$(($(date +%s) + 5))
				end=$until
			fi
		done
		say "workload-done writes=$n failures=$fails"
		say "io-errors-dmesg: $(dmesg | grep -c -i -E 'I/O error|EXT4-fs error|Buffer I/O')"
		say "io-errors-journal: $(journalctl -k -b --no-pager | grep -c -i -E 'I/O error|EXT4-fs error')"
		say "reconnects=$(cat $dev/reconnects)"
		;;
	ndtest=noserver)
		# The host answers "go" on the console once netdiskd is
		# stopped (serial-getty is masked: this is the only reader).
		# cat and sleep ran before: their pages are in memory.
		sleep 0
		kwarn
		say "noserver-ready state=$(cat $dev/state)"
		read -r go </dev/ttyS0
		i=0
		while [ "$(cat $dev/state)" = connected ] && [ $i -lt 60 ]; do
			sleep 1
			i=$((i + 1))
		done
		say "noserver: $go: state=$(cat $dev/state) after ${i} s; powering off"
		if ! systemctl poweroff; then
			# Where it hangs, for the log: the blocked tasks' stacks.
			say "noserver: systemctl poweroff failed; blocked tasks:"
			echo 7 >/proc/sys/kernel/printk
			echo w >/proc/sysrq-trigger
		fi
		exit 0
		;;
	esac
done
kwarn
say "done, powering off"
systemctl poweroff
