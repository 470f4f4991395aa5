#!/bin/bash
# The Debian packages (make deb) as a user meets them: installed with apt
# into a clean Debian 12 root (scripts/mkroot, cached; chroot through
# scripts/inroot) that has the headers of the kernel the VM tests boot.
#   - DKMS builds and installs netdisk.ko for that kernel (dkms status,
#     modinfo of the installed file: vermagic, version);
#   - a kernel installed afterwards (Debian 12's 6.12, an upgrade) gets its
#     netdisk.ko from DKMS's kernel hooks without anything run by hand;
#   - netdiskd --help, netdisk --help, --version (the one version), the man
#     pages; the packaged files' owners and modes;
#   - in a VM (tests/vm/run.sh 00-module), the DKMS-built netdisk.ko loads
#     and passes its self-test, driven by the packaged netdisk binary;
#   - apt-get purge of the three (and of the kernel added) leaves the root's
#     file list as it was before the install, DKMS's tree included.
# Ends with "N passed, M failed". Logs in $O/pkg/.
set -u
REPO=$(cd "$(dirname "$0")/../.." && pwd -P)
cd "$REPO"
O=${O:-build}
case "$O" in /*) ;; *) O="$REPO/$O" ;; esac
KVER=${KVER:-$(scripts/kver)}
VERSION=$(scripts/version)
DEB=$O/deb
W=$O/pkg
ROOT=$W/root
ARCH=$(dpkg --print-architecture)
DEBS=("$DEB/netdisk-server_${VERSION}_$ARCH.deb" "$DEB/netdisk-client_${VERSION}_$ARCH.deb"
      "$DEB/netdisk-dkms_${VERSION}_all.deb")

passed=0
failed=0
ok() { echo "ok: $*"; passed=$((passed + 1)); }
bad() { echo "FAIL: $*"; failed=$((failed + 1)); }
finish() {
	echo "$passed passed, $failed failed"
	[ "$failed" = 0 ]
	exit
}
die() { bad "$*"; finish; }
in_root() { scripts/inroot "$ROOT" "$@"; }
# INITRD=No: kernel packages skip the initramfs (netdisk.ko is not in it,
# and mkinitramfs takes many minutes on a loaded 2-core machine).
apt_in_root() {
	in_root env DEBIAN_FRONTEND=noninteractive INITRD=No apt-get -y -q \
		-o Dpkg::Use-Pty=0 "$@"
}
# The root's files, as paths with type, mode and owner: what a purge must
# restore. Left out: the mount points' contents (proc, sys, dev, run, tmp),
# apt's package lists and caches (apt-get update), apt's and dpkg's logs
# (the administrator's record), debconf's backups of its own database and
# the shadow tools' of /etc/passwd, group, shadow, gshadow (etc/*-),
# man-db's cache of the pages this test formats, and depmod's indexes
# (modules.*: this root has the kernel's headers, not its image, which on
# a real system made them before DKMS's depmod; the module itself counts).
file_list() {
	(cd "$ROOT" && find . -xdev \( -path ./proc -o -path ./sys -o -path ./dev \
		-o -path ./run -o -path ./tmp -o -path ./var/lib/apt/lists \
		-o -path ./var/cache/apt -o -path ./var/log/apt \
		-o -path ./var/log/dpkg.log -o -path ./var/log/alternatives.log \
		-o -name '*-old' -path './var/cache/debconf/*' \
		-o -path './etc/*-' -o -path ./var/cache/man \
		-o -path './usr/lib/modules/*/modules.*' \) -prune -o \
		-printf '%y %m %u:%g %p\n' | sort -k4)
}

for d in "${DEBS[@]}"; do
	[ -f "$d" ] || die "no $d (make deb)"
done
[ "$(id -u)" = 0 ] || die "must run as root (chroot)"
mkdir -p "$W"
rm -f "$W"/*.log

# ---- the clean root: minbase, the VM kernel's headers, man-db (to read the
# pages as a user does). Cached by mkroot; a fresh copy every run.
if ! scripts/mkroot "$ROOT" "linux-headers-$KVER" man-db 2>"$W/mkroot.log"; then
	cat "$W/mkroot.log"
	die "no root with linux-headers-$KVER (is $KVER still in Debian's archive? set KVER=)"
fi
apt_in_root update >"$W/update.log" 2>&1 || die "apt-get update in the root failed ($W/update.log)"
file_list >"$W/files-before"
in_root dpkg-query -W -f='${Package}\n' | sort >"$W/packages-before"

# ---- install, as a user would: apt pulls dkms and the compiler, DKMS's
# postinst builds for the installed kernel(s).
# A fresh 0700 directory (mktemp): the root's /tmp is world-writable, and a
# netdisk-debs made there beforehand by another user would let them swap
# the .debs that apt then installs as root.
debs=$(mktemp -d "$ROOT/tmp/netdisk-debs.XXXXXX") || die "mktemp in $ROOT/tmp"
cp "${DEBS[@]}" "$debs/"
t0=$(date +%s)
inside=()
for d in "${DEBS[@]}"; do inside+=("/tmp/${debs##*/}/${d##*/}"); done
if apt_in_root install --no-install-recommends "${inside[@]}" >"$W/install.log" 2>&1; then
	ok "apt-get install of the three packages ($(($(date +%s) - t0)) s, DKMS build included)"
else
	tail -n 30 "$W/install.log"
	die "apt-get install failed ($W/install.log)"
fi
rm -rf "$debs"

# check_dkms K: DKMS built and installed netdisk.ko for kernel K.
check_dkms() {
	local k=$1 st ko vm ver
	st=$(in_root dkms status -m netdisk -v "$VERSION" -k "$k" 2>/dev/null)
	case "$st" in
	*"netdisk/$VERSION, $k, "*": installed"*) ok "dkms status for $k: $st" ;;
	*) bad "dkms status for $k: '$st'"; return ;;
	esac
	ko=$(in_root modinfo -k "$k" -n netdisk 2>&1)
	case "$ko" in
	"/lib/modules/$k/updates/dkms/netdisk.ko"*) ok "modinfo -k $k finds $ko (depmod ran)" ;;
	*) bad "modinfo -k $k -n netdisk: '$ko'"; return ;;
	esac
	vm=$(modinfo -F vermagic "$ROOT$ko" | cut -d' ' -f1)
	ver=$(modinfo -F version "$ROOT$ko")
	[ "$vm" = "$k" ] && ok "$ko: vermagic $vm" || bad "$ko: vermagic '$vm', want $k"
	[ "$ver" = "$VERSION" ] && ok "$ko: version $ver" || bad "$ko: version '$ver', want $VERSION"
}
check_dkms "$KVER"

# ---- the programs, their version, the man pages.
out=$(in_root netdiskd --help 2>&1) && [ -n "$out" ] && ok "netdiskd --help" ||
	bad "netdiskd --help: $out"
out=$(in_root netdisk --help 2>&1) && [ -n "$out" ] && ok "netdisk --help" ||
	bad "netdisk --help: $out"
for p in netdisk netdiskd; do
	out=$(in_root "$p" --version 2>&1)
	case "$out" in
	"$p $VERSION (protocol "*) ok "$p --version: $out" ;;
	*) bad "$p --version: '$out', want $VERSION" ;;
	esac
done
pv=$(in_root dpkg-query -W -f='${Version}' netdisk-dkms)
cv=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"$/\1/p' "$ROOT/usr/src/netdisk-$VERSION/dkms.conf")
[ "$pv" = "$VERSION" ] && [ "$cv" = "$VERSION" ] &&
	ok "package and dkms.conf versions: $VERSION" || bad "versions: package '$pv', dkms.conf '$cv', want $VERSION"
for page in netdiskd netdisk "5 netdiskd.conf" "5 netdisktab" "7 netdisk-boot"; do
	# shellcheck disable=SC2086 # section and name
	out=$(in_root env MANWIDTH=80 man $page 2>&1)
	if echo "$out" | grep -q '^NAME' && echo "$out" | grep -q "${page#? }"; then
		ok "man $page ($(echo "$out" | wc -l) lines)"
	else
		bad "man $page: $(echo "$out" | head -n 3)"
	fi
done
[ -L "$ROOT/etc/systemd/system/multi-user.target.wants/netdiskd.service" ] &&
	ok "netdiskd.service enabled (starts once /etc/netdisk/netdiskd.conf exists)" ||
	bad "netdiskd.service not enabled"

# ---- nothing the packages ship is writable by others, setuid, or not root's.
odd=$(in_root dpkg -L netdisk-server netdisk-client netdisk-dkms | sort -u |
	while read -r f; do
		[ -e "$ROOT$f" ] && [ ! -L "$ROOT$f" ] || continue
		find "$ROOT$f" -maxdepth 0 \( -perm /o+w -o -perm /6000 \
			-o ! -user root -o ! -group root \) -printf '%m %u:%g %p\n'
	done)
[ -z "$odd" ] && ok "packaged files: root's, none setuid or world-writable" ||
	bad "packaged files with odd owners or modes: $odd"

# ---- make dkms-src (the source install) gives DKMS the package's tree.
S=$W/dkms-src
rm -rf "$S"
if make -s NO_INSTALL_DEPS=1 dkms-src DESTDIR="$S" >"$W/dkms-src.log" 2>&1 &&
   diff -r "$S/usr/src/netdisk-$VERSION" "$ROOT/usr/src/netdisk-$VERSION" >>"$W/dkms-src.log" 2>&1; then
	ok "make dkms-src installs the same tree as netdisk-dkms"
else
	bad "make dkms-src differs from netdisk-dkms's tree ($W/dkms-src.log)"
fi
rm -rf "$S"

# ---- a kernel upgrade: Debian 12's newest 6.12 (bookworm-security)
# installed now; DKMS's kernel hooks build netdisk.ko for it.
K2=$(in_root apt-cache search --names-only '^linux-headers-6\.12\.[0-9]+\+deb12-amd64$' |
	sed -n 's/^linux-headers-\([^ ]*\) .*/\1/p' | sort -V | tail -n 1)
if [ -z "$K2" ]; then
	bad "no linux-headers-6.12.*+deb12-amd64 in the root's archive"
else
	t0=$(date +%s)
	# INITRD=No: the kernel hooks skip the initramfs (netdisk.ko is not in
	# it, and mkinitramfs takes minutes on a loaded 2-core machine).
	if apt_in_root install --no-install-recommends "linux-image-$K2" "linux-headers-$K2" \
		>"$W/upgrade.log" 2>&1; then
		ok "kernel upgrade: linux-image/headers-$K2 installed ($(($(date +%s) - t0)) s, DKMS build included)"
		check_dkms "$K2"
	else
		tail -n 30 "$W/upgrade.log"
		bad "installing linux-image-$K2 failed ($W/upgrade.log)"
	fi
fi

# ---- the DKMS-built module in the VM: 00-module's checks, with the packaged
# netdisk binary.
V=$W/vm-o
rm -rf "$V"
mkdir -p "$V"
ko=$(in_root modinfo -k "$KVER" -n netdisk 2>/dev/null)
if [ -n "$ko" ] && cp "$ROOT$ko" "$V/netdisk.ko" &&
   cp "$ROOT/usr/bin/netdisk" "$ROOT/usr/sbin/netdiskd" "$V/"; then
	if O=$V KVER=$KVER ND_KO=$V/netdisk.ko tests/vm/run.sh 00-module >"$W/vm.log" 2>&1; then
		ok "VM ($KVER): the DKMS-built netdisk.ko loads and passes 00-module"
	else
		tail -n 20 "$W/vm.log"
		bad "VM ($KVER): 00-module with the DKMS-built module failed ($W/vm.log)"
	fi
else
	bad "no DKMS-built netdisk.ko for $KVER to boot"
fi

# ---- purge: the three, then the kernel added, then what apt pulled in.
# The administrator's data first (netdisk-server.postrm): a key in
# /etc/netdisk and a copy-on-write overlay must stay, the write epochs go.
mkdir -p "$ROOT/etc/netdisk" "$ROOT/var/lib/netdisk/overlays/golden"
( umask 077; echo key >"$ROOT/etc/netdisk/client.key" )
echo overlay >"$ROOT/var/lib/netdisk/overlays/golden/lab-01.ndcow"
echo epochs >"$ROOT/var/lib/netdisk/0123456789abcdef.state"
: >"$ROOT/var/lib/netdisk/0123456789abcdef.state.tmp"
if apt_in_root purge netdisk-server netdisk-client netdisk-dkms >"$W/purge.log" 2>&1; then
	ok "apt-get purge of the three packages"
else
	tail -n 20 "$W/purge.log"
	bad "apt-get purge failed ($W/purge.log)"
fi
if [ "$(cat "$ROOT/etc/netdisk/client.key" 2>/dev/null)" = key ] &&
   [ "$(stat -c %a "$ROOT/etc/netdisk/client.key")" = 600 ] &&
   [ "$(cat "$ROOT/var/lib/netdisk/overlays/golden/lab-01.ndcow" 2>/dev/null)" = overlay ] &&
   ! ls "$ROOT"/var/lib/netdisk/*.state* >/dev/null 2>&1; then
	ok "purge kept the key and the overlay, removed the write epochs"
else
	bad "purge and the administrator's data: $(cd "$ROOT" && ls -lR etc/netdisk var/lib/netdisk 2>&1 | tr '\n' ' ')"
fi
rm -rf "$ROOT/etc/netdisk" "$ROOT/var/lib/netdisk"
left=$(find "$ROOT/lib/modules" "$ROOT/usr/src" "$ROOT/var/lib/dkms" -name '*netdisk*' 2>/dev/null)
[ -z "$left" ] && ok "no netdisk module, source or DKMS tree left" ||
	bad "left after purge: $left"
# Then everything the install and the upgrade brought (dkms, the compiler,
# the 6.12 kernel): the root must be as before, whatever apt's autoremove
# would keep for recommends of packages that were already there.
in_root dpkg-query -W -f='${Package}\n' | sort >"$W/packages-after"
brought=$(comm -13 "$W/packages-before" "$W/packages-after")
if [ -n "$brought" ]; then
	# shellcheck disable=SC2086 # one word per package
	apt_in_root purge $brought >>"$W/purge.log" 2>&1 ||
		bad "purging what the install brought failed ($W/purge.log)"
fi
file_list >"$W/files-after"
if diff -u "$W/files-before" "$W/files-after" >"$W/files.diff"; then
	ok "after purge the root's file list is the one before the install ($(wc -l <"$W/files-before") entries)"
else
	head -n 40 "$W/files.diff"
	bad "the purge left the root different ($W/files.diff)"
fi

[ "$failed" = 0 ] && rm -rf "$ROOT"
finish
