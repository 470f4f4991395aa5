#!/bin/sh
# mktree.sh PREFIX COUNT SEED: on the host, COUNT files of varied size (0 B
# .. 128 KiB) in nested dirs, new random content every time, as PREFIX.tar,
# and PREFIX.sums: their sorted sha256, relative names (as lib.sh's sums
# prints them). tests/vm/run.sh makes the trees its cases name on a
# "# tree: COUNT SEED" line (as $O/vm/trees/COUNT-SEED); lib.sh's host_tree
# unpacks one in the guest. Made by awk inside the TCG guest, the 3000 files
# of 10-fs-tree and their sums took 16 s (quiet machine) and more under
# load; reading them file by file over 9p is slower still (70 s), one tar
# takes under a second.
set -eu
[ $# = 3 ] || { echo "usage: mktree.sh PREFIX COUNT SEED" >&2; exit 2; }
prefix=$1 count=$2 seed=$3
case $count$seed in ''|*[!0-9]*) echo "mktree.sh: bad COUNT or SEED" >&2; exit 2 ;; esac
mkdir -p "$(dirname "$prefix")"
tmp=$(mktemp -d "$prefix.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
dir=$tmp/tree
mkdir "$dir"
head -c 98304 /dev/urandom | od -An -v -tx1 | tr -d ' \n' >"$tmp/pool"
awk -v dir="$dir" -v n="$count" -v seed="$seed" '
{ pool = pool $0 }
END {
	srand(seed); plen = length(pool)
	for (d = 0; d < 40; d++) {
		sub_[d] = sprintf("%s/d%02d/s%d", dir, d, d % 7)
		system("mkdir -p " sub_[d])
	}
	for (i = 0; i < n; i++) {
		r = rand()
		if (r < 0.40) sz = int(rand() * 512)
		else if (r < 0.85) sz = 512 + int(rand() * 8192)
		else if (r < 0.98) sz = 8704 + int(rand() * 24576)
		else sz = 33280 + int(rand() * 98304)
		f = sprintf("%s/f%05d.dat", sub_[i % 40], i)
		off = 1 + int(rand() * (plen - sz))
		printf "%06d%s", i, substr(pool, off, sz > 6 ? sz - 6 : 0) > f
		close(f)
	}
}' "$tmp/pool"
n=$(find "$dir" -type f | wc -l)
[ "$n" = "$count" ] || { echo "mktree.sh: made $n files, not $count" >&2; exit 1; }
(cd "$dir" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) \
	>"$tmp/sums"
tar -C "$dir" -cf "$tmp/tar" .
mv "$tmp/tar" "$prefix.tar"
mv "$tmp/sums" "$prefix.sums"
