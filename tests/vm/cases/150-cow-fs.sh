#!/bin/bash
# timeout: 600
# Copy-on-write export holding an ext4 image (`cow = DIR`): two kernel
# clients with different identities (own keys) attach it at the same time,
# each mounts it, finds the base's files, writes its own, unmounts and
# detaches (a second session of an identity meanwhile gets busy, exit 5);
# after a server restart each reattaches and finds its own files
# and not the other's, e2fsck is clean on both, a third identity sees only
# the base, and the base image is byte-identical to what it was.
set -eu
. "$REPO/tests/vm/lib.sh"
trap nd_cleanup EXIT

D=$CASE_DIR
mkdir -p "$D/keys" "$D/overlays"
for id in lab-01 lab-02 lab-03; do
	nd_keygen "$D/keys/$id.key"
done
# write_files DIR N: N files of 1..3000 random bytes (bash builtins only:
# under TCG every fork and exec over 9p costs a lot).
write_files() {
	local i pool
	mkdir -p "$1"
	pool=$(head -c 2400 /dev/urandom | base64 -w0)
	for ((i = 0; i < $2; i++)); do
		printf '%s %d\n%s' "$1" "$i" \
			"${pool:RANDOM % 800:1 + RANDOM % 2200}" >"$1/f$i"
	done
}
write_files "$D/basetree/base" 30
sums "$D/basetree" >"$D/base.sums"
mkfs.ext4 -q -F -d "$D/basetree" "$D/base.img" 64M || fail "mkfs.ext4 -d"
base_sum=$(sha256sum <"$D/base.img")
port=$((_nd_port + 150))
url="netdisk://127.0.0.1:$port/golden"
cat >"$D/netdiskd.conf" <<EOF
[server]
listen = 127.0.0.1
port = $port
key-dir = $D/keys
state-dir = $D/state
control = none

[export golden]
path = $D/base.img
cow = $D/overlays
clients = lab-*
EOF

serve() {	# serve VAR: netdiskd --config on $port
	local pid
	"$NDD" --config "$D/netdiskd.conf" >>"$D/netdiskd.log" 2>&1 &
	pid=$!
	echo "$pid" >>"$D/pids"
	_wait_port "$port" "$pid" ||
		fail "netdiskd did not start: $(tail -n 5 "$D/netdiskd.log")"
	printf -v "$1" '%s %s' "$port" "$pid"
}
# attach_as VAR IDENTITY
attach_as() {
	attach "$1" "$url" --key-file "$D/keys/$2.key" --identity "$2"
}

log "base image built"
serve S
log "lab-01 and lab-02 attach at once, each writes its own files"
attach_as dev1 lab-01
attach_as dev2 lab-02
[ "$dev1" != "$dev2" ] || fail "one device for two identities"
log "a second session of lab-01 is busy (exit 5), lab-02 unaffected"
expect_rc 5 "$ND" attach "$url" --key-file "$D/keys/lab-01.key" \
	--identity lab-01 --read-only
n=$(ls -d /sys/block/netdisk* | wc -l)
[ "$n" = 2 ] || fail "$n devices after the busy attach, want 2"
for id in lab-01 lab-02; do
	if [ "$id" = lab-01 ]; then dev=$dev1; else dev=$dev2; fi
	[ "$(sysattr "$dev" read_only)" = 0 ] || fail "$id: attached read-only"
	[ "$(sysattr "$dev" identity)" = "$id" ] || fail "$id: wrong identity in sysfs"
	mount_dev "$dev" "$D/mnt-$id"
	(cd "$D/mnt-$id" && sums .) | grep ' ./base/' >"$D/seen.sums"
	diff -q "$D/base.sums" "$D/seen.sums" >/dev/null ||
		fail "$id: the base's files differ before any write"
	log "$id: base files seen, writing its own"
	write_files "$D/mnt-$id/$id" 30
	rm -f "$D/mnt-$id/base/f0"
	echo "$id was here" >"$D/mnt-$id/base/f1"
	(cd "$D/mnt-$id" && sums .) >"$D/$id.sums"
	umount_dir "$D/mnt-$id"
done
detach "$dev1"
detach "$dev2"
for id in lab-01 lab-02; do
	[ -s "$D/overlays/$id.ndcow" ] || fail "no overlay file for $id"
done
[ ! -e "$D/overlays/lab-03.ndcow" ] || fail "an overlay for lab-03, who never attached"
[ "$(sha256sum <"$D/base.img")" = "$base_sum" ] || fail "the base changed while served"
stop_server "$S"

log "server restarted: each identity finds its own files, not the other's"
serve S
attach_as dev1 lab-01
attach_as dev2 lab-02
for id in lab-01 lab-02; do
	if [ "$id" = lab-01 ]; then dev=$dev1 other=lab-02; else dev=$dev2 other=lab-01; fi
	e2fsck -fn "$dev" >"$D/fsck-$id.out" 2>&1 ||
		fail "$id: e2fsck: $(tail -n 5 "$D/fsck-$id.out")"
	mount_dev "$dev" "$D/mnt-$id"
	(cd "$D/mnt-$id" && sums .) >"$D/seen.sums"
	diff -u "$D/$id.sums" "$D/seen.sums" >/dev/null ||
		fail "$id: files differ after the restart: $(diff "$D/$id.sums" "$D/seen.sums" | head -n 5)"
	[ ! -e "$D/mnt-$id/$other" ] || fail "$id sees $other's files"
	grep -qx "$id was here" "$D/mnt-$id/base/f1" ||
		fail "$id: its rewrite of a base file is gone"
	umount_dir "$D/mnt-$id"
done
detach "$dev1"
detach "$dev2"

log "lab-03 reads the untouched base"
attach_as dev3 lab-03
e2fsck -fn "$dev3" >"$D/fsck-lab-03.out" 2>&1 ||
	fail "lab-03: e2fsck: $(tail -n 5 "$D/fsck-lab-03.out")"
mount_dev "$dev3" "$D/mnt-lab-03" -o ro
(cd "$D/mnt-lab-03" && sums .) >"$D/seen.sums"
diff -q "$D/base.sums" "$D/seen.sums" >/dev/null ||
	fail "lab-03 does not see exactly the base's files"
umount_dir "$D/mnt-lab-03"
detach "$dev3"
stop_server "$S"
[ "$(sha256sum <"$D/base.img")" = "$base_sum" ] || fail "the base image changed"
log "ok"
