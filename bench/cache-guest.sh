#!/bin/bash
# bench/cache-guest.sh: client cache on vs off, inside one QEMU guest.
#
# usage (host): tests/vm/vm-run.sh --quiet bench/cache-guest.sh [RUNTIME] [ROUNDS]
#   (env O as for the VM tests; RUNTIME s per fio run, default 10; ROUNDS
#   default 2). Runs in the guest with cwd = $REPO and env O, REPO, VMOUT.
#
# One netdiskd serves a 256 MiB file read-only; two devices are attached to
# it: one without a cache, one with --cache-size 128M. The cached device is
# warmed by one sequential O_DIRECT read of the 64 MiB working set, then fio
# 4k O_DIRECT random reads (libaio, iodepth 32 and 1) over that working set
# run on each device, alternating (off on off on ...). Prints and writes to
# $VMOUT/cache.tsv lines
#   JOB off|on ROUND IOPS LAT_MEAN_US
# and then per job "ratio JOB ON/OFF" (mean IOPS on / mean IOPS off), plus
# the cached device's counters. Exit 0 if every run worked.
set -u
{
RUNTIME=${1:-10}
ROUNDS=${2:-2}
: "${O:?}" "${REPO:?}"
VMOUT=${VMOUT:-/tmp}
ND="$O/netdisk"
NDD="$O/netdiskd"
KO="$REPO/kernel/netdisk.ko"
W=/tmp/cache-bench
PORT=21500
WSET=64m
OUT="$VMOUT/cache.tsv"
mkdir -p "$W"
: >"$OUT"
devs=()
srv=""
failed=0

log() { echo "[cache-bench $(date +%T)] $*"; }
err() { echo "[cache-bench] ERROR: $*" >&2; failed=1; }
cleanup() {
	local d
	for d in "${devs[@]}"; do
		timeout 60 "$ND" detach "$d" --force >/dev/null 2>&1
	done
	[ -n "$srv" ] && kill -TERM "$srv" 2>/dev/null
	return 0
}
trap cleanup EXIT

attach() {	# attach ARGS...: prints the device
	local out
	out=$("$ND" attach "netdisk://127.0.0.1:$PORT" --key-file "$W/key" \
		--read-only "$@" 2>"$W/attach.err") || return 1
	out=$(echo "$out" | tail -n 1)
	[ -b "$out" ] || return 1
	echo "$out"
}

# As bench/guest.sh: without udev nothing loads the AES-NI drivers, and
# gcm(aes) would be built on aes-generic, slowing the uncached side.
if ! grep -q '^netdisk ' /proc/modules; then
	modprobe -a aesni_intel ghash_clmulni_intel 2>/dev/null ||
		! grep -qw aes /proc/cpuinfo || { err "cannot load aesni_intel"; exit 1; }
	insmod "$KO" || { err "insmod $KO"; exit 1; }
fi
dd if=/dev/urandom of="$W/disk.img" bs=1M count=64 status=none &&
	truncate -s 256M "$W/disk.img" || { err "backing file"; exit 1; }
"$ND" keygen "$W/key" >/dev/null || { err "keygen"; exit 1; }
"$NDD" --file "$W/disk.img" --key-file "$W/key" --listen 127.0.0.1 \
	--port "$PORT" --read-only --log-level warn >"$W/netdiskd.log" 2>&1 &
srv=$!
for ((i = 0; i < 300; i++)); do
	(exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
	sleep 0.1
done
off=$(attach) || { err "attach (no cache): $(cat "$W/attach.err")"; exit 1; }
devs+=("$off")
on=$(attach --cache-size 128M) || { err "attach --cache-size: $(cat "$W/attach.err")"; exit 1; }
devs+=("$on")
log "no cache: $off, cache 128 MiB: $on; working set $WSET of 256 MiB"
dd if="$on" of=/dev/null bs=1M count=64 iflag=direct status=none || err "warm-up read"
sys="/sys/block/${on#/dev/}/netdisk"
log "after warm-up: cache_used $(cat "$sys/cache_used") misses $(cat "$sys/cache_misses")"

# run JOB DEV MODE ROUND QD
run() {
	local f="$W/fio-$1-$3-$4.json" line
	if ! timeout -k 10 $((RUNTIME * 10 + 300)) fio --name="$1" --filename="$2" \
		--direct=1 --ioengine=libaio --rw=randread --bs=4k --iodepth="$5" \
		--size="$WSET" --time_based --runtime="$RUNTIME" --ramp_time=2 \
		--output-format=json --output="$f" >"$W/fio.err" 2>&1; then
		err "fio $1 $3 round $4: $(tail -n 3 "$W/fio.err" | tr '\n' ' ')"
		return
	fi
	line=$(jq -r '.jobs[0] | select(.error == 0) |
		"\(.read.iops) \(.read.lat_ns.mean / 1000)"' "$f") || line=""
	[ -n "$line" ] || { err "fio $1 $3 round $4: no result"; return; }
	echo "$1 $3 $4 $line" | tee -a "$OUT"
}

h0=$(cat "$sys/cache_hits")
m0=$(cat "$sys/cache_misses")
for job in "randread4k-qd32 32" "randread4k-qd1 1"; do
	set -- $job
	for ((r = 1; r <= ROUNDS; r++)); do
		run "$1" "$off" off "$r" "$2"
		run "$1" "$on" on "$r" "$2"
	done
done
h1=$(cat "$sys/cache_hits")
m1=$(cat "$sys/cache_misses")
echo "cache_counters hits +$((h1 - h0)) misses +$((m1 - m0)) used $(cat "$sys/cache_used") evictions $(cat "$sys/cache_evictions")" |
	tee -a "$OUT"
awk '$2 == "off" { off[$1] += $4; no[$1]++ } $2 == "on" { on[$1] += $4; nn[$1]++ }
	END { for (j in off) if (nn[j] && off[j] > 0)
		printf "ratio %s %.1f (on %.0f IOPS, off %.0f IOPS)\n", j,
			(on[j] / nn[j]) / (off[j] / no[j]), on[j] / nn[j], off[j] / no[j] }' \
	"$OUT" | sort | tee -a "$OUT"
kill -0 "$srv" 2>/dev/null || err "netdiskd died"
exit $failed
}
