#!/bin/bash
# vm-run.sh: run one script as root inside a throwaway QEMU (TCG) guest that
# boots Debian's own kernel and sees the host's root read-only over 9p.
#
# usage: tests/vm/vm-run.sh [--mem MB] [--cpus N] [--timeout SEC] [--quiet]
#                           SCRIPT [ARGS...]
#
# In the guest: cwd = $REPO, env O, KVER, REPO, VMOUT; /tmp /run /root
# /var/tmp are tmpfs; $VMOUT (/run/vmout) is the host's $O/vm/out, read-write
# and emptied before every run. The script's exit status becomes ours; a
# kernel WARNING/BUG/Oops/Call Trace, a panic or a timeout fails the run.
# Console: $O/vm/console.log (also streamed to stdout unless --quiet).
set -euo pipefail

MEM=2048
CPUS=2
TIMEOUT=600
QUIET=0
usage() {
	sed -n '4,5p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}
while [ $# -gt 0 ]; do
	case "$1" in
	--mem) MEM=${2:?}; shift 2 ;;
	--cpus) CPUS=${2:?}; shift 2 ;;
	--timeout) TIMEOUT=${2:?}; shift 2 ;;
	--quiet) QUIET=1; shift ;;
	-h|--help) usage ;;
	--) shift; break ;;
	-*) echo "vm-run: unknown option $1" >&2; usage ;;
	*) break ;;
	esac
done
[ $# -ge 1 ] || usage
for v in "$MEM" "$CPUS" "$TIMEOUT"; do
	[[ "$v" =~ ^[1-9][0-9]*$ ]] || { echo "vm-run: bad number '$v'" >&2; exit 2; }
done

SCRIPT=$(realpath -e -- "$1") || { echo "vm-run: no such script: $1" >&2; exit 2; }
shift
REPO=$(cd "$(dirname "$0")/../.." && pwd -P)
O=${O:-build}
case "$O" in /*) ;; *) O="$REPO/$O" ;; esac
mkdir -p "$O/vm"
O=$(cd "$O" && pwd -P)
KVER=${KVER:-$("$REPO/scripts/kver")}
VMDIR="$O/vm"
OUT="$VMDIR/out"
CONSOLE="$VMDIR/console.log"
die() { echo "vm-run: $*" >&2; exit 1; }
[ -n "$KVER" ] || die "no kernel chosen (KVER)"
# A kernel not installed here (7.x) boots from the Debian 13 root of
# scripts/kroot: its vmlinuz, and its modules bound over the guest's
# /lib/modules/$KVER.
KBASE=""
if [ ! -d "/lib/modules/$KVER" ]; then
	KBASE=$("$REPO/scripts/kroot" dir "$KVER") ||
		die "kernel $KVER is neither installed nor in scripts/kroot's root (scripts/install-deps, scripts/kroot install)"
fi
KERNEL="$KBASE/boot/vmlinuz-$KVER"
[ -d "$KBASE/lib/modules/$KVER" ] ||
	die "no kernel modules dir $KBASE/lib/modules/$KVER (run scripts/install-deps)"
[ -r "$KERNEL" ] || die "cannot read $KERNEL (run scripts/install-deps as root)"
QEMU=$(command -v qemu-system-x86_64) ||
	die "qemu-system-x86_64 missing (run scripts/install-deps)"
BUSYBOX=/bin/busybox
# ldd fails on a static binary (and `file` may not be installed).
[ -x "$BUSYBOX" ] && ! ldd "$BUSYBOX" >/dev/null 2>&1 ||
	die "$BUSYBOX is not busybox-static (run scripts/install-deps)"
for t in cpio gzip modinfo timeout; do
	command -v $t >/dev/null || die "$t missing (run scripts/install-deps)"
done

# ---------------------------------------------------------------- initramfs
MODS="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci
      netfs fscache 9pnet 9pnet_virtio 9p"
OPTIONAL_MODS=" fscache "	# part of netfs since 6.12

# /init of the initramfs: busybox sh, mounts the host root and chroots.
INIT=$(cat <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /modules.order); do
	insmod /lib/modules/$m.ko || echo "vm-init: insmod $m failed"
done
fail() { echo "vm-init: $*"; echo "VMRUN-EXIT-CODE=125"; poweroff -f; }
mount -t 9p -o trans=virtio,version=9p2000.L,ro host /mnt ||
	fail "cannot mount host root"
mkdir -p /hostroot && mount --bind /mnt /hostroot
for d in tmp run root var/tmp; do
	mount -t tmpfs -o mode=1777 tmpfs /mnt/$d || fail "tmpfs /$d"
done
chmod 700 /mnt/root
mount -t proc proc /mnt/proc
mount -t sysfs sysfs /mnt/sys
mount -t devtmpfs devtmpfs /mnt/dev
mkdir -p /mnt/dev/pts /mnt/dev/shm
mount -t devpts devpts /mnt/dev/pts
mount -t tmpfs tmpfs /mnt/dev/shm
# What udev would add: bash's <(...) needs /dev/fd.
ln -sf /proc/self/fd /mnt/dev/fd
ln -sf /proc/self/fd/0 /mnt/dev/stdin
ln -sf /proc/self/fd/1 /mnt/dev/stdout
ln -sf /proc/self/fd/2 /mnt/dev/stderr
mkdir -p /mnt/run/vmout
mount -t 9p -o trans=virtio,version=9p2000.L,rw vmout /mnt/run/vmout ||
	fail "cannot mount vmout"
# A kernel from scripts/kroot's root: its modules where modprobe looks.
if [ -f /mnt/run/vmout/.vmrun/kmods ]; then
	km=/mnt/lib/modules/$(uname -r)
	mount -t tmpfs -o mode=755 tmpfs /mnt/lib/modules && mkdir -p "$km" &&
		mount --bind "/hostroot$(cat /mnt/run/vmout/.vmrun/kmods)" "$km" ||
		fail "cannot bind the modules of $(uname -r)"
fi
# Host paths under the tmpfs dirs (repo in /root, say) are bound back.
if [ -f /mnt/run/vmout/.vmrun/keep ]; then
	for p in $(cat /mnt/run/vmout/.vmrun/keep); do
		mkdir -p "/mnt$p" && mount --bind "/hostroot$p" "/mnt$p"
	done
fi
# The kernel's request_module() runs /sbin/modprobe in our root, not the
# chroot's: forward it (ext4, loop, ... autoload then).
mkdir -p /sbin
printf '#!/bin/sh\nexec /bin/chroot /mnt /sbin/modprobe "$@"\n' >/sbin/modprobe
chmod 755 /sbin/modprobe
chroot /mnt /bin/bash /run/vmout/.vmrun/wrapper.sh
sync
poweroff -f
EOF
)

modpaths=()
mbase=()
[ -z "$KBASE" ] || mbase=(-b "$KBASE")
for m in $MODS; do
	if ! p=$(modinfo "${mbase[@]}" -k "$KVER" -n "$m" 2>/dev/null); then
		[[ "$OPTIONAL_MODS" == *" $m "* ]] && continue
		die "module $m not found for $KVER"
	fi
	[ -f "$p" ] && modpaths+=("$m:$p")	# skip built-ins
done
key=$( { echo "$KVER"; echo "$INIT"; sha256sum "$BUSYBOX";
	 for mp in "${modpaths[@]}"; do stat -c '%n %s %Y' "${mp#*:}"; done; } |
	sha256sum | cut -d' ' -f1)
INITRD="$VMDIR/initramfs-$KVER.cpio.gz"
if [ ! -f "$INITRD" ] || [ "$(cat "$INITRD.key" 2>/dev/null)" != "$key" ]; then
	stage=$(mktemp -d "$VMDIR/initramfs.XXXXXX")
	trap 'rm -rf "$stage"' EXIT
	mkdir -p "$stage"/{bin,proc,sys,dev,mnt,lib/modules}
	cp "$BUSYBOX" "$stage/bin/busybox"
	printf '%s\n' "$INIT" >"$stage/init"
	chmod 755 "$stage/init"
	: >"$stage/modules.order"
	for mp in "${modpaths[@]}"; do
		m=${mp%%:*}; p=${mp#*:}
		case "$p" in
		*.ko) cp "$p" "$stage/lib/modules/$m.ko" ;;
		*.ko.xz) xz -dc "$p" >"$stage/lib/modules/$m.ko" ;;
		*.ko.zst) zstd -qdc "$p" >"$stage/lib/modules/$m.ko" ;;
		*) die "unsupported module file $p" ;;
		esac
		echo "$m" >>"$stage/modules.order"
	done
	(cd "$stage" && find . | cpio -o -H newc --quiet | gzip -1) >"$INITRD.tmp"
	mv "$INITRD.tmp" "$INITRD"
	echo "$key" >"$INITRD.key"
	rm -rf "$stage"
	trap - EXIT
fi

# ---------------------------------------------------------------- out dir
rm -rf "$OUT"
mkdir -p "$OUT/.vmrun"
{
	for v in O KVER REPO; do printf 'export %s=%q\n' "$v" "${!v}"; done
	# ND_KO: the netdisk.ko the guest loads (tests/pkg: the DKMS-built one).
	printf 'export ND_KO=%q\n' "${ND_KO:-$REPO/kernel/netdisk.ko}"
	echo 'export VMOUT=/run/vmout HOME=/root TERM=dumb LANG=C.UTF-8'
	echo 'export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
	printf 'SCRIPT=%q\n' "$SCRIPT"
	printf 'set --'; printf ' %q' "$@"; echo
} >"$OUT/.vmrun/env"
cat >"$OUT/.vmrun/wrapper.sh" <<'EOF'
. /run/vmout/.vmrun/env
ip link set lo up
cd "$REPO"
echo "VMRUN: running $SCRIPT $*"
rc=0
if [ -x "$SCRIPT" ]; then "$SCRIPT" "$@" || rc=$?; else bash "$SCRIPT" "$@" || rc=$?; fi
dmesg >"$VMOUT/.vmrun/dmesg" 2>&1 || true
echo "$rc" >"$VMOUT/.vmrun/rc"
sync
echo "VMRUN-EXIT-CODE=$rc"
EOF
[ -z "$KBASE" ] || echo "$KBASE/lib/modules/$KVER" >"$OUT/.vmrun/kmods"
: >"$OUT/.vmrun/keep"
for p in "$REPO" "$O" "$(dirname "$SCRIPT")"; do
	case "$p/" in
	/tmp/*|/run/*|/root/*|/var/tmp/*) echo "$p" >>"$OUT/.vmrun/keep" ;;
	esac
done

# ---------------------------------------------------------------- boot
CMDLINE="console=ttyS0 panic=-1 oops=panic panic_on_warn=1 loglevel=5 edd=off"
CMDLINE+=" hung_task_panic=0 rdinit=/init"
qemu=("$QEMU" -accel tcg,thread=multi -cpu max -smp "$CPUS" -m "$MEM"
	-nographic -no-reboot -nic none
	-kernel "$KERNEL" -initrd "$INITRD" -append "$CMDLINE"
	-virtfs local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap
	-virtfs "local,path=$OUT,mount_tag=vmout,security_model=none,multidevs=remap")

start=$(date +%s)
set +e
if [ "$QUIET" = 1 ]; then
	timeout -k 10 "$TIMEOUT" "${qemu[@]}" </dev/null >"$CONSOLE" 2>&1
	qrc=$?
else
	timeout -k 10 "$TIMEOUT" "${qemu[@]}" </dev/null 2>&1 |
		sed -u 's/\x1b\[[0-9;?]*[a-zA-Z]//g; s/\x1bc//g' | tee "$CONSOLE"
	qrc=${PIPESTATUS[0]}
fi
set -e
elapsed=$(( $(date +%s) - start ))

# Strip CRs and terminal escapes so grep/tail read cleanly.
sed -i 's/\r$//; s/\x1b\[[0-9;?]*[a-zA-Z]//g; s/\x1bc//g' "$CONSOLE"
reason=""
if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
	reason="timed out after ${TIMEOUT}s"
elif [ "$qrc" != 0 ]; then
	reason="qemu exited with status $qrc"
fi
# Kernel lines carry a "[   1.234567] " stamp; script output does not.
KPAT='^\[ *[0-9]+\.[0-9]+\] .*(WARNING:|BUG:|Oops|Call Trace|Kernel panic|general protection fault|UBSAN:|blocked for more than)'
if grep -Eq "$KPAT" "$CONSOLE" ||
   grep -Eq "$KPAT" "$OUT/.vmrun/dmesg" 2>/dev/null; then
	reason="${reason:+$reason; }kernel reported a problem"
fi
rc=$(cat "$OUT/.vmrun/rc" 2>/dev/null || true)
if [ -z "$rc" ]; then
	rc=$(sed -n 's/^VMRUN-EXIT-CODE=\([0-9]*\)$/\1/p' "$CONSOLE" | tail -n 1)
fi
if [ -z "$rc" ]; then
	reason="${reason:+$reason; }guest script did not finish"
	rc=1
fi
if [ -n "$reason" ]; then
	[ "$rc" != 0 ] || rc=1
	{
		echo "vm-run: FAILED ($reason), guest status $rc, ${elapsed}s"
		echo "vm-run: kernel problems:"
		grep -En "$KPAT" "$CONSOLE" | head -n 20 || true
		echo "vm-run: last console lines ($CONSOLE):"
		tail -n 60 "$CONSOLE"
	} >&2
elif [ "$rc" != 0 ]; then
	echo "vm-run: guest script exited with status $rc (${elapsed}s); console: $CONSOLE" >&2
	[ "$QUIET" = 0 ] || tail -n 40 "$CONSOLE" >&2
else
	echo "vm-run: ok (${elapsed}s)"
fi
exit "$rc"
