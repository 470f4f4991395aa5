#!/bin/bash
# bench/guest.sh: the kernel-path half of `make bench`, run inside a QEMU
# guest by tests/vm/vm-run.sh (cwd = $REPO, env O, KVER, VMOUT).
#
# usage: bench/guest.sh RUNTIME ROUNDS
#
# One 256 MiB file in guest tmpfs is served by netdiskd (-> netdisk.ko,
# /dev/netdiskN) and by nbdkit's file plugin (-> nbd.ko via nbd-client,
# /dev/nbd0). Each fio job runs on netdisk then nbd, ROUNDS times (A B A B),
# so drift hits both. Results: $VMOUT/kernel.tsv, lines
#   JOB SYSTEM ROUND IOPS BYTES_PER_S LAT_MEAN_US
# and $VMOUT/errors (one line per failure). Exit 0 if every run of every
# system worked, 1 otherwise (results of what worked are kept).
set -u
# Parsed whole before it runs, so editing this file mid-run is harmless.
{
RUNTIME=${1:?runtime}
ROUNDS=${2:?rounds}
: "${O:?}" "${VMOUT:?}" "${REPO:?}"
ND="$O/netdisk"
NDD="$O/netdiskd"
KO="$REPO/kernel/netdisk.ko"
W=/tmp/bench
ND_PORT=21000
NBD_PORT=10809
mkdir -p "$W"
OUT="$VMOUT/kernel.tsv"
ERR="$VMOUT/errors"
: >"$OUT"
: >"$ERR"
pids=()
nd_dev=""
nbd_dev=""

log() { echo "[guest $(date +%T)] $*"; }
err() { echo "$*" >>"$ERR"; echo "[guest] ERROR: $*" >&2; }

cleanup() {
	[ -n "$nd_dev" ] && timeout 60 "$ND" detach "$nd_dev" --force >/dev/null 2>&1
	[ -n "$nbd_dev" ] && timeout 60 nbd-client -d "$nbd_dev" >/dev/null 2>&1
	for p in "${pids[@]}"; do
		kill -TERM "$p" 2>/dev/null
	done
	return 0
}
trap cleanup EXIT

wait_port() {	# wait_port PORT PID
	local i
	for ((i = 0; i < 300; i++)); do
		kill -0 "$2" 2>/dev/null || return 1
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

{
	echo "guest_nproc $(nproc)"
	echo "guest_kernel $(uname -r)"
	echo "guest_cpu $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
	echo "guest_mem_kib $(sed -n 's/^MemTotal: *\([0-9]*\).*/\1/p' /proc/meminfo)"
} >"$VMOUT/guest-info"

# Calibration: TCG emulates AES-NI/PCLMUL with helpers, so crypto costs
# relatively more here than natively; these figures say how much.
# OpenSSL picks its AES-GCM code path from CPUID. On real hardware the
# AVX2/VAES paths are the fast ones; QEMU TCG emulates those instructions
# slowly, so there the plain AES-NI + PCLMULQDQ path is 2x faster. We
# measure both (OPENSSL_ia32cap=":0" masks the extended CPUID word) and start
# netdiskd with whichever is faster on this (virtual) CPU: the same choice
# a distribution's tuning would make, no weaker crypto. nbdkit (plain) does
# no crypto, so this affects only netdisk's own speed.
gcm_speed() {	# MB/s of AES-256-GCM on 16 KiB blocks, 0 if unknown
	openssl speed -evp aes-256-gcm -seconds 1 -bytes 16384 2>/dev/null |
		awk '/^AES-256-GCM/ { v = $2; sub(/k$/, "", v); x = v / 1000 }
			END { printf "%.0f", x + 0 }'
}
gcm_def=$(gcm_speed)
gcm_noext=$(OPENSSL_ia32cap=":0" gcm_speed)
ndd_env=()
if [ "${gcm_noext:-0}" -gt "$((${gcm_def:-0} * 11 / 10))" ]; then
	ndd_env=(OPENSSL_ia32cap=":0")
fi
ndd_gcm=$gcm_def
[ ${#ndd_env[@]} -gt 0 ] && ndd_gcm=$gcm_noext
echo "guest_ndd_gcm $ndd_gcm" >>"$VMOUT/guest-info"
echo "guest_aes_gcm_16k $gcm_def MB/s (OPENSSL_ia32cap=:0: $gcm_noext MB/s; netdiskd uses ${ndd_env[*]:-the default})" >>"$VMOUT/guest-info"
cp=$(dd if=/dev/zero of=/dev/null bs=1M count=512 2>&1 | sed -n 's/.*, \([0-9.,]* [GMk]B\/s\)$/\1/p')
echo "guest_memcpy ${cp:-n/a}" >>"$VMOUT/guest-info"

log "preparing a 256 MiB backing file in tmpfs"
# Zeros, really written (urandom costs a minute under TCG); the contents do
# not change the cost of any layer measured here.
dd if=/dev/zero of="$W/disk.img" bs=1M count=256 status=none ||
	{ err "cannot create the backing file"; exit 1; }

# ---- plain NBD: nbdkit file plugin + nbd.ko
if ! modprobe nbd nbds_max=4; then
	err "kernel nbd: modprobe nbd failed"
else
	nbdkit -f -i 127.0.0.1 -p "$NBD_PORT" file "$W/disk.img" \
		>"$W/nbdkit.log" 2>&1 &
	pids+=($!)
	if ! wait_port "$NBD_PORT" "${pids[-1]}"; then
		err "kernel nbd: nbdkit did not start: $(tail -n 3 "$W/nbdkit.log" | tr '\n' ' ')"
	elif ! nbd-client -b 4096 127.0.0.1 "$NBD_PORT" /dev/nbd0 >"$W/nbd-client.log" 2>&1; then
		err "kernel nbd: nbd-client failed: $(tail -n 3 "$W/nbd-client.log" | tr '\n' ' ')"
	else
		nbd_dev=/dev/nbd0
	fi
fi

# ---- netdisk: netdiskd + netdisk.ko
# A normal boot's udev loads aesni_intel and ghash_clmulni_intel from the
# CPU's modalias; this guest has no udev, and without them gcm(aes) is
# built on the table-driven aes-generic (not constant-time, and not what a
# user runs). Loaded here, before netdisk.ko first asks for gcm(aes).
if [ ! -x "$ND" ] || [ ! -x "$NDD" ] || [ ! -f "$KO" ]; then
	err "kernel netdisk: not built ($ND, $NDD, $KO)"
else
	"$ND" keygen "$W/key" >/dev/null || err "kernel netdisk: keygen failed"
	env "${ndd_env[@]}" "$NDD" --file "$W/disk.img" --key-file "$W/key" --listen 127.0.0.1 \
		--port "$ND_PORT" --grace 0 --log-level warn --state-dir "$W/state" \
		>"$W/netdiskd.log" 2>&1 &
	pids+=($!)
	ndd_pid=${pids[-1]}
	if ! wait_port "$ND_PORT" "$ndd_pid"; then
		err "kernel netdisk: netdiskd did not start: $(tail -n 3 "$W/netdiskd.log" | tr '\n' ' ')"
	elif ! modprobe -a aesni_intel ghash_clmulni_intel 2>/dev/null &&
		grep -qw aes /proc/cpuinfo; then
		err "kernel netdisk: cannot load aesni_intel"
	elif ! insmod "$KO"; then
		err "kernel netdisk: insmod $KO failed"
	else
		out=$("$ND" attach "netdisk://127.0.0.1:$ND_PORT" --key-file "$W/key" 2>"$W/attach.err")
		rc=$?
		out=$(echo "$out" | tail -n 1)
		if [ $rc != 0 ] || [[ ! "$out" =~ ^/dev/netdisk[0-9]+$ ]] || [ ! -b "$out" ]; then
			err "kernel netdisk: attach exited $rc, printed '$out': $(tr '\n' ' ' <"$W/attach.err")"
		else
			nd_dev=$out
		fi
	fi
fi

# The kernel's AES-256-GCM as netdisk.ko gets it (gcm(aes), the crypto
# API's highest-priority driver), measured by the kernel's own speed test:
# tcrypt mode 211 (gcm(aes) and rfc4106, every key size, 1 s each, about
# 70 s under TCG; the module refuses to stay loaded, by design). We keep
# the 256-bit key on 8 KiB: in-kernel, no copies.
if [ -n "$nd_dev" ] && modinfo tcrypt >/dev/null 2>&1; then
	before=$(dmesg | wc -l)
	modprobe tcrypt mode=211 sec=1 2>/dev/null
	dmesg | tail -n +"$((before + 1))" | awk '
	/testing speed of gcm\(aes\)/ {
		drv = $0; sub(/.*gcm\(aes\) \(/, "", drv); sub(/\).*/, "", drv)
		dir = /encryption/ ? "enc" : "dec"; want = 1; next
	}
	/testing speed of/ { want = 0 }
	want && /256 bit key, 8192 byte blocks/ {
		v = $0; sub(/.*\(/, "", v); sub(/ bytes\).*/, "", v)
		printf "guest_kernel_gcm_%s %.0f\n", dir, v / 1e6
		printf "guest_kernel_gcm %s\n", drv
	}' | sort -u >>"$VMOUT/guest-info"
fi

# Queue settings of both devices, for the report.
for d in "$nd_dev" "$nbd_dev"; do
	[ -n "$d" ] || continue
	q="/sys/block/${d#/dev/}/queue"
	echo "queue_${d#/dev/} sched=$(sed 's/.*\[\(.*\)\].*/\1/' "$q/scheduler") nr_requests=$(cat "$q/nr_requests") max_sectors_kb=$(cat "$q/max_sectors_kb") lbs=$(cat "$q/logical_block_size") hw_queues=$(ls "/sys/block/${d#/dev/}/mq" 2>/dev/null | wc -l)" >>"$VMOUT/guest-info"
done

# JOB RW BS IODEPTH
JOBS="randread4k randread 4k 32
randwrite4k randwrite 4k 32
read1m read 1m 8
write1m write 1m 8"

# run_fio SYSTEM DEV JOB RW BS QD ROUND
run_fio() {
	local sys=$1 dev=$2 job=$3 rw=$4 bs=$5 qd=$6 round=$7 f
	f="$VMOUT/fio-$job-$sys-$round.json"
	log "fio $job on $sys ($dev), round $round"
	# A stalled device must not eat the whole VM budget.
	if ! timeout -k 10 $((RUNTIME * 10 + 300)) \
		fio --name="$job" --filename="$dev" --direct=1 --ioengine=libaio \
		--rw="$rw" --bs="$bs" --iodepth="$qd" --time_based \
		--runtime="$RUNTIME" --ramp_time=2 --size=256m \
		--output-format=json --output="$f" >"$W/fio.err" 2>&1; then
		err "kernel $sys: fio $job round $round failed: $(tail -n 3 "$W/fio.err" | tr '\n' ' ')"
		return
	fi
	local dir=read
	case "$rw" in *write) dir=write ;; esac
	local line
	line=$(jq -r --arg d "$dir" '.jobs[0] as $j | select($j.error == 0) |
		"\($j[$d].iops) \($j[$d].bw_bytes) \($j[$d].lat_ns.mean / 1000)"' "$f") || line=""
	if [ -z "$line" ]; then
		err "kernel $sys: fio $job round $round: no result in $f"
		return
	fi
	echo "$job $sys $round $line" >>"$OUT"
}

while read -r job rw bs qd; do
	for ((r = 1; r <= ROUNDS; r++)); do
		[ -n "$nd_dev" ] && run_fio netdisk "$nd_dev" "$job" "$rw" "$bs" "$qd" "$r"
		[ -n "$nbd_dev" ] && run_fio nbd "$nbd_dev" "$job" "$rw" "$bs" "$qd" "$r"
	done
done <<<"$JOBS"

# A server that died under load is a failure, not a slow result.
for p in "${pids[@]}"; do
	kill -0 "$p" 2>/dev/null || err "server process $p died during the runs (see its log)"
done
if [ -n "$nd_dev" ]; then
	"$ND" detach "$nd_dev" >"$W/detach.err" 2>&1 ||
		err "kernel netdisk: detach $nd_dev failed: $(tr '\n' ' ' <"$W/detach.err")"
	nd_dev=""
fi
if [ -n "$nbd_dev" ]; then
	nbd-client -d "$nbd_dev" >/dev/null 2>&1 || err "kernel nbd: nbd-client -d failed"
	nbd_dev=""
fi
cp "$W"/*.log "$VMOUT/" 2>/dev/null
[ -s "$ERR" ] && exit 1
exit 0
}
