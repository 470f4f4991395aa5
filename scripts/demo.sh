#!/bin/bash
# `make demo`: the netdisk story, told in a throwaway QEMU VM that boots
# Debian's kernel (so it is safe on any machine, even one that cannot load
# modules). Run from the repo after `make` (make demo builds first):
#   O=build scripts/demo.sh
# Inside the VM the same file runs with --in-vm.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd -P)

if [ "${1:-}" != --in-vm ]; then
	O=${O:-build}
	case "$O" in /*) ;; *) O="$REPO/$O" ;; esac
	for f in "$O/netdisk" "$O/netdiskd" "$REPO/kernel/netdisk.ko"; do
		[ -e "$f" ] || { echo "demo: $f not built; run 'make demo'" >&2; exit 1; }
	done
	echo "demo: booting a throwaway VM (QEMU, no KVM: about a minute)..."
	# Show the demo's own lines; the full console is in $O/vm/console.log.
	set +e
	O="$O" "$REPO/tests/vm/vm-run.sh" --timeout 900 "$REPO/scripts/demo.sh" --in-vm 2>&1 |
		awk '/^VMRUN: running/ { on = 1; next }
		     /^VMRUN-EXIT-CODE=/ { on = 0; next }
		     /^vm-run: FAILED/ { all = 1 }
		     all || /^vm-run: / || (on && !/^\[ *[0-9]+\.[0-9]+\] /) { print; fflush() }'
	rc=${PIPESTATUS[0]}
	[ "$rc" = 0 ] && echo "demo: done" || echo "demo: FAILED (exit $rc), see $O/vm/console.log" >&2
	exit "$rc"
fi

# ------------------------------------------------------------ in the VM
ND="$O/netdisk"
NDD="$O/netdiskd"
W=/root/demo
step=0
heading() {
	step=$((step + 1))
	printf '\n===== %d. %s\n' "$step" "$*"
}
run() {	# echo a command, then run it
	echo "# $*"
	"$@"
}
trap 'echo "demo: step $step failed (line $LINENO)" >&2' ERR
wait_port() {
	for _ in $(seq 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	echo "demo: nothing listens on port $1" >&2
	return 1
}
mkdir -p $W
cd $W
export PATH="$O:$PATH"

heading "Load the kernel module (runs its crypto self-test)"
# As a normal boot's udev would: the AES-NI/CLMUL drivers behind gcm(aes).
modprobe -q aesni_intel 2>/dev/null || true
modprobe -q ghash_clmulni_intel 2>/dev/null || true
# insmod loads no dependencies: the curve25519 library modules first.
run modprobe -a $(modinfo -F depends "$REPO/kernel/netdisk.ko" | tr , ' ')
run insmod "$REPO/kernel/netdisk.ko"
dmesg | grep -i netdisk | sed 's/^\[[^]]*\] //'
run ls -l /dev/netdisk-control

heading "Generate a pre-shared key (32 random bytes, hex, mode 0600)"
run netdisk keygen $W/key
run ls -l $W/key

heading "Start the server on a fresh 256 MiB image"
run truncate -s 256M $W/disk.img
echo "# netdiskd --file $W/disk.img --key-file $W/key --listen 127.0.0.1 --port 26547 --export demo --state-dir $W/state &"
netdiskd --file $W/disk.img --key-file $W/key --listen 127.0.0.1 --port 26547 \
	--export demo --state-dir $W/state 2>$W/netdiskd.log &
srv=$!
wait_port 26547

heading "Attach it as a local block device"
echo "# netdisk attach netdisk://127.0.0.1:26547/demo --key-file $W/key"
dev=$(netdisk attach netdisk://127.0.0.1:26547/demo --key-file $W/key)
echo "$dev"

heading "Make a filesystem, mount it, copy files onto it"
run mkfs.ext4 -q -L netdisk-demo "$dev"
run mkdir -p $W/mnt
run mount "$dev" $W/mnt
run cp -r "$REPO/docs" "$REPO/include" "$REPO/lib" "$REPO/server" "$REPO/cli" \
	/usr/share/common-licenses $W/mnt/
run sync
(cd $W/mnt && find . -type f | grep -v lost+found | sort | xargs sha256sum >$W/files.sums)
echo "$(wc -l <$W/files.sums) files copied"
run df -h $W/mnt

heading "What the system sees"
run lsblk -o NAME,SIZE,RO,TYPE,MOUNTPOINTS "$dev"
run netdisk list
d=${dev#/dev/}
for a in server export state read_only; do
	[ -r "/sys/block/$d/netdisk/$a" ] &&
		echo "/sys/block/$d/netdisk/$a: $(cat "/sys/block/$d/netdisk/$a")"
done

heading "A second client, read-only, on a read-only export"
run mkdir -p $W/share
echo "netdisk demo: this export is read-only" >$W/share/README
cp /etc/os-release $W/share/
run truncate -s 16M $W/share.img
run mkfs.ext4 -q -d $W/share $W/share.img
echo "# netdiskd --file $W/share.img --key-file $W/key --listen 127.0.0.1 --port 26548 --export share --read-only &"
netdiskd --file $W/share.img --key-file $W/key --listen 127.0.0.1 --port 26548 \
	--export share --read-only 2>$W/netdiskd-ro.log &
srv_ro=$!
wait_port 26548
echo "# netdisk attach netdisk://127.0.0.1:26548/share --key-file $W/key --read-only"
dev2=$(netdisk attach netdisk://127.0.0.1:26548/share --key-file $W/key --read-only)
echo "$dev2"
run blockdev --getro "$dev2"
run mkdir -p $W/share-mnt
run mount -o ro "$dev2" $W/share-mnt
run cat $W/share-mnt/README
echo "# dd if=/dev/zero of=$dev2 bs=4k count=1 oflag=direct   (must fail)"
if dd if=/dev/zero of="$dev2" bs=4k count=1 oflag=direct status=none; then
	echo "demo: a write to the read-only device succeeded" >&2
	exit 1
fi
run netdisk list
run lsblk -o NAME,SIZE,RO,TYPE,MOUNTPOINTS "$dev" "$dev2"

heading "Detach both"
run umount $W/mnt
run umount $W/share-mnt
run netdisk detach "$dev"
run netdisk detach "$dev2"
run netdisk list

heading "Stop the servers (SIGTERM: finish in-flight requests, exit 0)"
run kill -TERM $srv $srv_ro
for p in $srv $srv_ro; do
	rc=0
	wait $p || rc=$?
	echo "netdiskd (pid $p) exited $rc"
	[ $rc = 0 ]
done
echo "--- last server log lines:"
tail -n 5 $W/netdiskd.log

heading "The server's image holds the same files"
run fsck.ext4 -fn $W/disk.img
modprobe loop	# no udev here: /dev/loop-control appears once it is loaded
run mount -o loop,ro $W/disk.img $W/mnt
(cd $W/mnt && sha256sum --quiet -c $W/files.sums)
echo "all $(wc -l <$W/files.sums) files verified in $W/disk.img"
run umount $W/mnt
run rmmod netdisk
echo
echo "===== The end: every byte between the client and the servers was AES-256-GCM."
