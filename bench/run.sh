#!/bin/bash
# bench/run.sh: netdisk against NBD (what `make bench` runs, with O and KVER).
#
# usage: bench/run.sh [--quick] [--no-vm] [--no-host] [--no-cow] [--cow-only]
#   --quick    3 s runs, one round, 256 MiB copies (a smoke test, ~5 min)
#   --no-vm    skip the kernel path (QEMU guest)
#   --no-host  skip the userspace path, the copies and the RSS test
#   --no-cow   skip the copy-on-write rows
#   --cow-only only the copy-on-write rows (host, a few minutes)
# env: O (build dir, default build), KVER, BENCH_TIME (s per userspace run,
#      default 10), BENCH_VM_TIME (s per guest fio run, default 10),
#      BENCH_ROUNDS (A B rounds, default 2), BENCH_SEQ_MB (copy size and
#      the cow rows' disk, 1024; those keep up to 5 such files in tmpfs),
#      BENCH_COW_GB (sparse base of the overlay memory test, 100),
#      BENCH_COW_N (overlays attached in it, 16), BENCH_PORT (first host
#      TCP port, default 27400; the run uses 6), BENCH_RESULTS (report
#      directory, default bench/results)
#
# Measures, each pair alternated (A B A B) so drift hits both sides:
#  kernel:    fio libaio direct on /dev/netdiskN (netdisk.ko + netdiskd) and
#             /dev/nbd0 (nbd.ko + nbdkit file), inside one QEMU TCG guest
#  userspace: `netdisk bench` vs fio's nbd engine on nbdkit file (plain)
#  copies:    `netdisk copy URL /dev/null` vs nbdcopy from nbdkit (plain and
#             TLS-PSK), 1 connection, 8 x 1 MiB in flight on both
#  memory:    netdiskd RSS with 64 idle sessions (bench/idle-clients.c)
#  cow:       a copy-on-write export (cow = DIR) vs plain exports of the
#             same bytes, served by one netdiskd: `netdisk bench`, and
#             `netdisk copy` uploads for first writes, cow and plain
#             alternated; netdiskd RSS with BENCH_COW_N overlays attached
#             on a sparse base
#  cache:     netdisk.ko with and without --cache-size, 4k randread, in a
#             second guest (bench/cache-guest.sh; no NBD counterpart)
# Writes bench/results/STAMP.{md,png,tsv} and copies them to latest.*
# (except after --cow-only, which leaves latest.* to the whole bench). Missed
# targets are reported, not fatal; a crashing or failing tool makes the run
# exit 1 (after writing the report, which lists the errors).
set -uo pipefail
# Parsed whole before it runs, so editing this file mid-run is harmless.
{

REPO=$(cd "$(dirname "$0")/.." && pwd -P)
cd "$REPO"
O=${O:-build}
case "$O" in /*) ;; *) O="$REPO/$O" ;; esac
export O
export KVER=${KVER:-$("$REPO/scripts/kver")}
TIME=${BENCH_TIME:-10}
VM_TIME=${BENCH_VM_TIME:-10}
ROUNDS=${BENCH_ROUNDS:-2}
SEQ_MB=${BENCH_SEQ_MB:-1024}
PORT=${BENCH_PORT:-27400}
COW_GB=${BENCH_COW_GB:-100}
COW_N=${BENCH_COW_N:-16}
DO_VM=1
DO_HOST=1
DO_COW=1
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) TIME=3; VM_TIME=3; ROUNDS=1; SEQ_MB=256; shift ;;
	--no-vm) DO_VM=0; shift ;;
	--no-host) DO_HOST=0; shift ;;
	--no-cow) DO_COW=0; shift ;;
	--cow-only) DO_VM=0; DO_HOST=0; DO_COW=1; shift ;;
	-h|--help) sed -n '4,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "bench: unknown argument '$1' (see --help)" >&2; exit 2 ;;
	esac
done
for v in "$TIME" "$VM_TIME" "$ROUNDS" "$SEQ_MB" "$PORT" "$COW_GB" "$COW_N"; do
	[[ "$v" =~ ^[1-9][0-9]*$ ]] || { echo "bench: bad number '$v'" >&2; exit 2; }
done

ND="$O/netdisk"
NDD="$O/netdiskd"
IDLE="$O/bench/idle-clients"
RES=${BENCH_RESULTS:-$REPO/bench/results}
STAMP=$(date +%Y%m%d-%H%M%S)
W="$O/bench"		# logs and raw tool output of this run
TSV="$W/results.tsv"	# SECTION JOB SYSTEM ROUND IOPS MB/s LAT_US
ERRS="$W/errors"
mkdir -p "$W" "$RES"
rm -f "$W"/*.json "$W"/*.log "$W"/*.err "$W/cache.tsv"
: >"$TSV"
: >"$ERRS"
DATA=""
pids=()

log() { echo "[bench $(date +%T)] $*"; }
err() { echo "$*" >>"$ERRS"; echo "[bench] ERROR: $*" >&2; }
die() { echo "bench: $*" >&2; exit 1; }

cleanup() {
	local p
	for p in "${pids[@]}"; do
		kill -TERM "$p" 2>/dev/null
	done
	for p in "${pids[@]}"; do
		wait "$p" 2>/dev/null
	done
	[ -n "$DATA" ] && rm -rf "$DATA"
	return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

need() {
	local t
	for t in "$@"; do
		command -v "$t" >/dev/null || die "$t missing (run scripts/install-deps)"
	done
}
need fio nbdkit nbdcopy jq gnuplot awk
[ -x "$NDD" ] || die "$NDD not built (run make bench)"
[ -x "$ND" ] || die "$ND not built (run make bench)"

# ---------------------------------------------------------------- helpers
wait_port() {	# wait_port PORT PID: until something listens, or PID died
	local i
	for ((i = 0; i < 300; i++)); do
		kill -0 "$2" 2>/dev/null || return 1
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# start NAME PORT CMD...: runs CMD in the background (log $W/NAME.log) and
# waits for PORT; sets $last_pid. Fails the run if it does not come up.
start() {
	local name=$1 port=$2
	shift 2
	"$@" >"$W/$name.log" 2>&1 &
	last_pid=$!
	pids+=("$last_pid")
	wait_port "$port" "$last_pid" ||
		die "$name did not start on port $port: $(tail -n 3 "$W/$name.log" | tr '\n' ' ')"
}

status_text() {	# status_text RC: "exited N" or "killed by SIGX"
	if [ "$1" -gt 128 ]; then
		echo "killed by SIG$(kill -l $(($1 - 128)) 2>/dev/null || echo $(($1 - 128)))"
	else
		echo "exited $1"
	fi
}

# alive NAME PID: a server that died during the runs is an error.
alive() {
	kill -0 "$2" 2>/dev/null || err "$1 (pid $2) died during the benchmark; log: $W/$1.log"
}

machine_info() {
	local cpu
	cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
	echo "date	$(date -u '+%Y-%m-%d %H:%M:%S UTC')"
	echo "host	$(hostname)"
	echo "nproc	$(nproc)"
	echo "cpu	${cpu:-unknown}"
	echo "mem	$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
	echo "kernel	$(uname -r)"
	echo "qemu	$(qemu-system-x86_64 --version 2>/dev/null | head -n 1 | sed 's/QEMU emulator version //')"
	echo "guest_kernel	$KVER"
	echo "fio	$(fio --version)"
	echo "nbdkit	$(nbdkit --version | head -n 1)"
	echo "nbdcopy	$(nbdcopy --version | head -n 1)"
	echo "commit	$(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet HEAD -- 2>/dev/null || echo ' (+ uncommitted changes)')"
	echo "aes_gcm_16k	$(openssl speed -evp aes-256-gcm -seconds 1 -bytes 16384 2>/dev/null | awk '/^AES-256-GCM/ { v = $2; sub(/k$/, "", v); printf "%.0f MB/s", v / 1000 }')"
	echo "load_start	$(cut -d' ' -f1-3 /proc/loadavg)"
	echo "settings	userspace ${TIME}s/run, guest ${VM_TIME}s/run (+2s ramp), $ROUNDS round(s), copies of $SEQ_MB MiB"
	echo "parts	$([ "$DO_HOST" = 1 ] && echo -n 'host ')$([ "$DO_VM" = 1 ] && echo -n 'vm ')$([ "$DO_COW" = 1 ] && echo -n cow)"
	echo "cow_settings	$SEQ_MB MiB base, overlays and plain copy in $( [ -d /dev/shm ] && echo /dev/shm || echo /tmp), ${TIME}s per run, $ROUNDS round(s); memory: $COW_N overlays on a $COW_GB GiB sparse base"
}

# JOB RW BS IODEPTH: the four jobs of issue #6, on both paths.
JOBS="randread4k randread 4k 32
randwrite4k randwrite 4k 32
read1m read 1m 8
write1m write 1m 8"

# ---------------------------------------------------------------- host side
nd_bench() {	# nd_bench JOB RW BS QD ROUND
	local f="$W/user-$1-netdisk-$5.json"
	local rc=0
	"$ND" bench "netdisk://127.0.0.1:$P_ND" --key-file "$W/key" \
		--rw "$2" --bs "$3" --iodepth "$4" --time "$TIME" --json \
		>"$f" 2>"$W/ndbench.err" || rc=$?
	if [ "$rc" != 0 ]; then
		err "userspace netdisk: netdisk bench $1 round $5 $(status_text $rc): $(tail -n 2 "$W/ndbench.err" | tr '\n' ' ')"
		return
	fi
	jq -r --arg j "$1" --arg r "$5" \
		'"user\t\($j)\tnetdisk\t\($r)\t\(.iops)\t\(.mb_per_s)\t\(.lat_us.mean)"' \
		"$f" >>"$TSV" || err "userspace netdisk: bad JSON from netdisk bench ($f)"
}

fio_nbd() {	# fio_nbd JOB RW BS QD ROUND
	local f="$W/user-$1-nbd-$5.json" dir=read
	case "$2" in *write) dir=write ;; esac
	local rc=0
	fio --name="$1" --ioengine=nbd --uri="nbd://127.0.0.1:$P_NBD" \
		--rw="$2" --bs="$3" --iodepth="$4" --time_based --runtime="$TIME" \
		--output-format=json --output="$f" >"$W/fio.err" 2>&1 || rc=$?
	if [ "$rc" != 0 ]; then
		err "userspace nbd: fio $1 round $5 $(status_text $rc): $(tail -n 2 "$W/fio.err" | tr '\n' ' ')"
		return
	fi
	jq -r --arg j "$1" --arg r "$5" --arg d "$dir" \
		'.jobs[0] as $x | select($x.error == 0) |
		 "user\t\($j)\tnbd\t\($r)\t\($x[$d].iops)\t\($x[$d].bw_bytes / 1e6)\t\($x[$d].lat_ns.mean / 1000)"' \
		"$f" >>"$TSV" || err "userspace nbd: bad JSON from fio ($f)"
}

# timed SECTION JOB SYSTEM ROUND CMD...: MB/s of reading $SEQ_MB MiB.
timed() {
	local sec=$1 job=$2 sys=$3 round=$4 t0 t1 rc=0
	shift 4
	t0=$(date +%s%N)
	"$@" >"$W/copy.err" 2>&1 || rc=$?
	if [ "$rc" != 0 ]; then
		err "$sys: $* $(status_text $rc): $(tail -n 2 "$W/copy.err" | tr '\n' ' ')"
		return
	fi
	t1=$(date +%s%N)
	awk -v s="$sec" -v j="$job" -v y="$sys" -v r="$round" -v mb="$SEQ_MB" \
		-v ns=$((t1 - t0)) 'BEGIN {
		mbs = mb * 1048576 / 1e6 / (ns / 1e9)
		printf "%s\t%s\t%s\t%s\t%.1f\t%.1f\t%.0f\n", s, j, y, r, mbs, mbs, ns / 1e3
	}' >>"$TSV"
}

vm_rss_kib() { sed -n "s/^$2:[[:space:]]*\([0-9]*\).*/\1/p" "/proc/$1/status"; }

host_side() {
	local job rw bs qd r nd_pid nbd_pid tls_pid ro_pid idle_pid i base rss thr hwm
	local P_TLS=$((PORT + 2)) P_RO=$((PORT + 3))
	P_ND=$PORT
	P_NBD=$((PORT + 1))
	[ -d /dev/shm ] && DATA=$(mktemp -d /dev/shm/netdisk-bench.XXXXXX) ||
		DATA=$(mktemp -d /tmp/netdisk-bench.XXXXXX)
	log "userspace: $SEQ_MB MiB of random data in $DATA"
	head -c "${SEQ_MB}M" /dev/urandom >"$DATA/disk.img" || die "cannot write $DATA/disk.img"
	rm -f "$W/key" "$W/psk"
	"$ND" keygen "$W/key" >/dev/null || die "netdisk keygen failed"
	# nbdkit's PSK file: IDENTITY:HEX-KEY (same secret, for symmetry).
	(umask 077 && echo "alice:$(tr -d ' \n' <"$W/key")" >"$W/psk")

	start netdiskd "$P_ND" "$NDD" --file "$DATA/disk.img" --key-file "$W/key" \
		--listen 127.0.0.1 --port "$P_ND" --grace 0 --log-level warn \
		--state-dir "$W/state"
	nd_pid=$last_pid
	start nbdkit "$P_NBD" nbdkit -f -i 127.0.0.1 -p "$P_NBD" file "$DATA/disk.img"
	nbd_pid=$last_pid
	start nbdkit-tls "$P_TLS" nbdkit -f -i 127.0.0.1 -p "$P_TLS" --tls=require \
		--tls-psk="$W/psk" file "$DATA/disk.img"
	tls_pid=$last_pid

	while read -r job rw bs qd; do
		for ((r = 1; r <= ROUNDS; r++)); do
			log "userspace $job round $r: netdisk bench, fio nbd"
			nd_bench "$job" "$rw" "$bs" "$qd" "$r"
			fio_nbd "$job" "$rw" "$bs" "$qd" "$r"
		done
	done <<<"$JOBS"

	# Same shape on both sides: 1 connection, 8 x 1 MiB requests in flight
	# (netdisk copy's default: 8 MiB in flight, 1 MiB requests).
	local nbdcopy1=(nbdcopy --connections=1 --requests=8 --request-size=1048576)
	local tlsurl="nbds://alice@127.0.0.1:$P_TLS/?tls-psk-file=$W/psk"
	for ((r = 1; r <= ROUNDS + 1; r++)); do
		log "copy $SEQ_MB MiB to /dev/null, round $r: netdisk, nbdcopy plain, nbdcopy TLS"
		timed seq read1m netdisk "$r" "$ND" copy "netdisk://127.0.0.1:$P_ND" \
			/dev/null --key-file "$W/key" -q
		timed seq read1m nbd "$r" "${nbdcopy1[@]}" "nbd://127.0.0.1:$P_NBD" null:
		timed seq read1m nbd-tls "$r" "${nbdcopy1[@]}" "$tlsurl" null:
		# nbdcopy's defaults (4 connections, 64 requests each), for context.
		timed seq read-default nbd "$r" nbdcopy "nbd://127.0.0.1:$P_NBD" null:
		timed seq read-default nbd-tls "$r" nbdcopy "$tlsurl" null:
	done
	alive netdiskd "$nd_pid"
	alive nbdkit "$nbd_pid"
	alive nbdkit-tls "$tls_pid"
	hwm=$(vm_rss_kib "$nd_pid" VmHWM)
	echo "info	netdiskd_peak_rss_kib	$hwm" >>"$W/extra.tsv"

	# Memory: a fresh read-only server, 64 sessions that each read 4 KiB
	# and then stay idle.
	log "memory: netdiskd with 64 idle sessions"
	start netdiskd-ro "$P_RO" "$NDD" --file "$DATA/disk.img" --key-file "$W/key" \
		--listen 127.0.0.1 --port "$P_RO" --read-only --log-level warn
	ro_pid=$last_pid
	base=$(vm_rss_kib "$ro_pid" VmRSS)
	rm -f "$W/hold"
	mkfifo "$W/hold"
	"$IDLE" "netdisk://127.0.0.1:$P_RO" "$W/key" 64 <"$W/hold" >"$W/idle.out" 2>"$W/idle.err" &
	idle_pid=$!
	exec 7>"$W/hold"
	for ((i = 0; i < 600; i++)); do
		grep -q '^ready' "$W/idle.out" 2>/dev/null && break
		kill -0 "$idle_pid" 2>/dev/null || break
		sleep 0.1
	done
	if grep -q '^ready 64' "$W/idle.out"; then
		sleep 2
		rss=$(vm_rss_kib "$ro_pid" VmRSS)
		thr=$(sed -n 's/^Threads:[[:space:]]*//p' "/proc/$ro_pid/status")
		printf 'rss\tidle64\tnetdisk\t1\t%s\t%s\t%s\n' "$rss" "$base" "$thr" >>"$TSV"
	else
		err "idle-clients did not get 64 sessions: $(tr '\n' ' ' <"$W/idle.err")"
	fi
	exec 7>&-
	wait "$idle_pid" || err "idle-clients exited with an error: $(tr '\n' ' ' <"$W/idle.err")"
	alive netdiskd-ro "$ro_pid"
	for i in "$nd_pid" "$nbd_pid" "$tls_pid" "$ro_pid"; do
		kill -TERM "$i" 2>/dev/null
	done
	for i in "$nd_pid" "$ro_pid"; do
		wait "$i" || err "netdiskd (pid $i) exited with status $? on SIGTERM"
	done
	for i in "$nbd_pid" "$tls_pid"; do
		wait "$i"
	done
	pids=()
	rm -rf "$DATA"
	DATA=""
}

# ---------------------------------------------------------------- copy-on-write
# CPU time (user + system, clock ticks) netdiskd $COW_PID has used so far:
# on a loaded machine, its growth per request is steadier than throughput.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$COW_PID/stat"; }

# cow_bench JOB SYSTEM ROUND URL IDENTITY RW BS QD: one `netdisk bench` run,
# "cow JOB SYSTEM ROUND IOPS MB/s LAT_US BYTES SERVER_CPU_US_PER_REQUEST"
# in the TSV.
cow_bench() {
	local job=$1 sys=$2 r=$3 url=$4 id=$5 rw=$6 bs=$7 qd=$8
	local f="$W/cow-$job-$sys-$r.json" rc=0 c0 c1
	c0=$(cpu_ticks)
	"$ND" bench "$url" --key-file "$W/key" --identity "$id" --rw "$rw" \
		--bs "$bs" --iodepth "$qd" --time "$TIME" --json \
		>"$f" 2>"$W/ndbench.err" || rc=$?
	c1=$(cpu_ticks)
	if [ "$rc" != 0 ]; then
		err "cow: netdisk bench $job $sys round $r $(status_text $rc): $(tail -n 2 "$W/ndbench.err" | tr '\n' ' ')"
		return
	fi
	jq -r --arg j "$job" --arg s "$sys" --arg r "$r" \
		--argjson cpu "$(((c1 - c0) * 1000000 / $(getconf CLK_TCK)))" \
		'"cow\t\($j)\t\($s)\t\($r)\t\(.iops)\t\(.mb_per_s)\t\(.lat_us.mean)\t\(.bytes)\t\(if .ios > 0 then $cpu / .ios else 0 end)"' \
		"$f" >>"$TSV" || err "cow: bad JSON from netdisk bench ($f)"
}

# cow_upload JOB SYSTEM ROUND URL IDENTITY BS INFLIGHT: `netdisk copy` of
# $DATA/base-ro.img ($SEQ_MB MiB of random bytes) into the export, BS
# requests, INFLIGHT bytes in flight, then its FLUSH: every block written
# exactly once, so into an empty overlay nothing but first writes.
cow_upload() {
	local job=$1 sys=$2 r=$3 url=$4 id=$5 bs=$6 infl=$7 t0 t1 rc=0 c0 c1
	c0=$(cpu_ticks)
	t0=$(date +%s%N)
	"$ND" copy "$DATA/base-ro.img" "$url" --key-file "$W/key" --identity "$id" -q \
		--bs "$bs" --inflight "$infl" >"$W/copy.err" 2>&1 || rc=$?
	t1=$(date +%s%N)
	c1=$(cpu_ticks)
	if [ "$rc" != 0 ]; then
		err "cow: netdisk copy $job $sys round $r $(status_text $rc): $(tail -n 2 "$W/copy.err" | tr '\n' ' ')"
		return
	fi
	# IOPS, MB/s, and the mean time per request (not a latency).
	awk -v j="$job" -v y="$sys" -v r="$r" -v mb="$SEQ_MB" -v bs="$bs" -v ns=$((t1 - t0)) \
		-v cpu="$(((c1 - c0) * 1000000 / $(getconf CLK_TCK)))" 'BEGIN {
		b = mb * 1048576; n = b / (bs ~ /k$/ ? bs * 1024 : bs * 1048576); s = ns / 1e9
		printf "cow\t%s\t%s\t%s\t%.1f\t%.1f\t%.1f\t%d\t%.2f\n", j, y, r, n / s, b / 1e6 / s, s * 1e6 / n, b, cpu / n
	}' >>"$TSV"
}

# pair JOB ROUND CMD-COW... -- CMD-PLAIN...: runs both, cow first in odd
# rounds and plain first in even ones, so that neither side always runs
# right after the other (warm caches, a neighbour's burst).
pair() {
	local job=$1 r=$2 a=() b=()
	shift 2
	while [ "$1" != -- ]; do a+=("$1"); shift; done
	shift
	b=("$@")
	log "cow $job round $r"
	if ((r % 2)); then "${a[@]}"; "${b[@]}"; else "${b[@]}"; "${a[@]}"; fi
}

cow_side() {
	local P=$((PORT + 4)) P_MEM=$((PORT + 5)) pid mem_pid r job rw bs qd url
	local ovl base rss thr i idle_pid mem
	if [ -z "$DATA" ]; then
		[ -d /dev/shm ] && DATA=$(mktemp -d /dev/shm/netdisk-bench.XXXXXX) ||
			DATA=$(mktemp -d /tmp/netdisk-bench.XXXXXX)
	fi
	ovl="$DATA/overlays"
	log "cow: $SEQ_MB MiB base and two copies of it in $DATA"
	head -c "${SEQ_MB}M" /dev/urandom >"$DATA/base.img" || die "cannot write $DATA/base.img"
	cp "$DATA/base.img" "$DATA/base-ro.img" || die "cannot write $DATA/base-ro.img"
	cp "$DATA/base.img" "$DATA/copy.img" || die "cannot write $DATA/copy.img"
	truncate -s "${SEQ_MB}M" "$DATA/holes.img" || die "cannot create $DATA/holes.img"
	[ -f "$W/key" ] || "$ND" keygen "$W/key" >/dev/null || die "netdisk keygen failed"
	rm -rf "$W/cow-state"
	# One server for the three exports, so both sides run in the same
	# process, each export on its own copy of the same bytes in the same
	# tmpfs (netdiskd serves a file as one export only).
	cat >"$W/cow.conf" <<-CONF
	[server]
	listen = 127.0.0.1
	port = $P
	key-file = $W/key
	state-dir = $W/cow-state
	control = $W/cow.sock
	grace = 0
	log-level = warn

	[export base-ro]
	path = $DATA/base-ro.img
	read-only = yes

	[export plain-rw]
	path = $DATA/copy.img

	[export plain-holes]
	path = $DATA/holes.img

	[export cow]
	path = $DATA/base.img
	cow = $ovl
	CONF
	start netdiskd-cow "$P" "$NDD" --config "$W/cow.conf"
	pid=$last_pid
	COW_PID=$pid
	url="netdisk://127.0.0.1:$P"

	for ((r = 1; r <= ROUNDS; r++)); do
		# Blocks the identity never wrote ("reader" never writes: its
		# overlay stays empty, every read goes to the base) vs the plain
		# read-only export of the base.
		pair unwritten-randread4k "$r" \
			cow_bench unwritten-randread4k cow "$r" "$url/cow" reader randread 4k 32 -- \
			cow_bench unwritten-randread4k plain "$r" "$url/base-ro" reader randread 4k 32
		pair unwritten-read1m "$r" \
			cow_bench unwritten-read1m cow "$r" "$url/cow" reader read 1m 8 -- \
			cow_bench unwritten-read1m plain "$r" "$url/base-ro" reader read 1m 8
		# The noise floor: the plain read-only export against itself.
		pair control-randread4k "$r" \
			cow_bench control-randread4k cow "$r" "$url/base-ro" reader randread 4k 32 -- \
			cow_bench control-randread4k plain "$r" "$url/base-ro" reader randread 4k 32
		# First writes into untouched space: a new identity (an empty
		# overlay) for every run writes each block once, 4 KiB requests
		# 32 in flight, then 1 MiB requests 8 in flight.
		# Then, not a target, a plain export writing into holes (its file
		# punched empty first): what allocating the space costs alone.
		pair first-write4k "$r" \
			cow_upload first-write4k cow "$r" "$url/cow" "first4k-$r" 4k 128k -- \
			cow_upload first-write4k plain "$r" "$url/plain-rw" writer 4k 128k
		fallocate -p -o 0 -l "${SEQ_MB}M" "$DATA/holes.img" || err "cow: cannot punch $DATA/holes.img"
		cow_upload first-write4k holes "$r" "$url/plain-holes" writer 4k 128k
		fallocate -p -o 0 -l "${SEQ_MB}M" "$DATA/holes.img" || err "cow: cannot punch $DATA/holes.img"
		pair first-write1m "$r" \
			cow_upload first-write1m cow "$r" "$url/cow" "first1m-$r" 1m 8m -- \
			cow_upload first-write1m plain "$r" "$url/plain-rw" writer 1m 8m
		fallocate -p -o 0 -l "${SEQ_MB}M" "$DATA/holes.img" || err "cow: cannot punch $DATA/holes.img"
		cow_upload first-write1m holes "$r" "$url/plain-holes" writer 1m 8m
		fallocate -p -o 0 -l "${SEQ_MB}M" "$DATA/holes.img" || err "cow: cannot punch $DATA/holes.img"
		# Overlays of ended sessions: only their tmpfs space matters.
		rm -f "$ovl"/first4k-*.ndcow
		[ "$r" -lt "$ROUNDS" ] && rm -f "$ovl/first1m-$r.ndcow"
	done
	# "first1m-$ROUNDS" wrote every block of the disk: reads and rewrites
	# of blocks the identity already wrote vs the plain read-write export.
	for ((r = 1; r <= ROUNDS; r++)); do
		while read -r job rw bs qd; do
			pair "written-$job" "$r" \
				cow_bench "written-$job" cow "$r" "$url/cow" "first1m-$ROUNDS" "$rw" "$bs" "$qd" -- \
				cow_bench "written-$job" plain "$r" "$url/plain-rw" writer "$rw" "$bs" "$qd"
		done <<<"$JOBS"
	done
	"$NDD" status --control "$W/cow.sock" >"$W/cow-status.txt" 2>&1 ||
		err "cow: netdiskd status failed: $(tail -n 1 "$W/cow-status.txt")"
	alive netdiskd-cow "$pid"
	echo "info	cow_peak_rss_kib	$(vm_rss_kib "$pid" VmHWM)" >>"$W/extra.tsv"
	kill -TERM "$pid" 2>/dev/null
	wait "$pid" || err "netdiskd-cow exited with status $? on SIGTERM"
	pids=()
	rm -rf "$ovl" "$DATA"/*.img

	# Memory: COW_N identities attach a cow export of a sparse COW_GB GiB
	# base (the cluster map alone is 64 KiB per GiB), read 4 KiB, idle.
	log "cow memory: $COW_N overlays on a $COW_GB GiB sparse base"
	truncate -s "${COW_GB}G" "$DATA/sparse.img" || die "cannot create $DATA/sparse.img"
	cat >"$W/cow-mem.conf" <<-CONF
	[server]
	listen = 127.0.0.1
	port = $P_MEM
	key-file = $W/key
	state-dir = $W/cow-state
	control = $W/cow-mem.sock
	grace = 0
	log-level = warn

	[export big]
	path = $DATA/sparse.img
	cow = $ovl
	CONF
	start netdiskd-cow-mem "$P_MEM" "$NDD" --config "$W/cow-mem.conf"
	mem_pid=$last_pid
	base=$(vm_rss_kib "$mem_pid" VmRSS)
	rm -f "$W/hold"
	mkfifo "$W/hold"
	"$IDLE" "netdisk://127.0.0.1:$P_MEM/big" "$W/key" "$COW_N" ovl \
		<"$W/hold" >"$W/idle.out" 2>"$W/idle.err" &
	idle_pid=$!
	exec 7>"$W/hold"
	for ((i = 0; i < 1200; i++)); do
		grep -q '^ready' "$W/idle.out" 2>/dev/null && break
		kill -0 "$idle_pid" 2>/dev/null || break
		sleep 0.1
	done
	if grep -q "^ready $COW_N\$" "$W/idle.out"; then
		sleep 2
		rss=$(vm_rss_kib "$mem_pid" VmRSS)
		thr=$(sed -n 's/^Threads:[[:space:]]*//p' "/proc/$mem_pid/status")
		# netdiskd's own count of each attached overlay's memory
		# (nd_cow_mem), in bytes, averaged: "-" if not listed.
		"$NDD" overlay list big --control "$W/cow-mem.sock" >"$W/cow-mem-overlays.txt" 2>&1 ||
			err "cow: netdiskd overlay list failed: $(tail -n 1 "$W/cow-mem-overlays.txt")"
		mem=$(awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^mem=[0-9]+$/) { s += substr($i, 5); n++ } }
			END { if (n) printf "%.0f\n", s / n; else print "-" }' "$W/cow-mem-overlays.txt")
		printf 'cowrss\t%s\tnetdisk\t%s\t%s\t%s\t%s\t%s\n' "$COW_GB" "$COW_N" "$rss" "$base" "$thr" "$mem" >>"$TSV"
		"$NDD" status --control "$W/cow-mem.sock" >"$W/cow-mem-status.txt" 2>&1 ||
			err "cow: netdiskd status failed: $(tail -n 1 "$W/cow-mem-status.txt")"
	else
		err "cow: idle-clients did not attach $COW_N overlays: $(tr '\n' ' ' <"$W/idle.err")"
	fi
	exec 7>&-
	wait "$idle_pid" || err "cow: idle-clients exited with an error: $(tr '\n' ' ' <"$W/idle.err")"
	alive netdiskd-cow-mem "$mem_pid"
	kill -TERM "$mem_pid" 2>/dev/null
	wait "$mem_pid" || err "netdiskd-cow-mem exited with status $? on SIGTERM"
	pids=()
	rm -rf "$DATA"
	DATA=""
}

# ---------------------------------------------------------------- guest side
vm_side() {
	local limit rc=0
	[ -f "$REPO/kernel/netdisk.ko" ] || err "kernel/netdisk.ko not built: the kernel path has no netdisk numbers"
	limit=$((300 + 8 * ROUNDS * (VM_TIME + 60)))
	log "kernel path: QEMU guest (limit ${limit}s), fio ${VM_TIME}s per run, $ROUNDS round(s)"
	tests/vm/vm-run.sh --quiet --timeout "$limit" bench/guest.sh "$VM_TIME" "$ROUNDS" \
		>"$W/vm-run.log" 2>&1 || rc=$?
	cp "$O/vm/console.log" "$W/vm-console.log" 2>/dev/null
	if [ -f "$O/vm/out/kernel.tsv" ]; then
		awk -v OFS='\t' '{ print "kernel", $1, $2, $3, $4, $5 / 1e6, $6 }' \
			"$O/vm/out/kernel.tsv" >>"$TSV"
	fi
	[ -f "$O/vm/out/errors" ] && cat "$O/vm/out/errors" >>"$ERRS"
	if [ -f "$O/vm/out/guest-info" ]; then
		sed 's/ /\t/' "$O/vm/out/guest-info" >>"$W/machine.tsv"
	fi
	if [ "$rc" != 0 ] && [ ! -s "$O/vm/out/errors" ]; then
		err "kernel path: the guest run failed (vm-run exit $rc): $(tail -n 3 "$W/vm-run.log" | tr '\n' ' ')"
	fi
	return 0
}

# Client cache on/off (bench/cache-guest.sh, netdisk.ko --cache-size), in
# its own guest: a netdisk-only comparison, reported apart from the targets.
cache_side() {
	local limit rc=0
	[ -f "$REPO/bench/cache-guest.sh" ] || return 0
	limit=$((300 + 4 * ROUNDS * (VM_TIME + 60)))
	log "client cache: QEMU guest (limit ${limit}s), fio ${VM_TIME}s per run, $ROUNDS round(s)"
	rm -f "$O/vm/out/cache.tsv"
	tests/vm/vm-run.sh --quiet --timeout "$limit" bench/cache-guest.sh "$VM_TIME" "$ROUNDS" \
		>"$W/cache-vm-run.log" 2>&1 || rc=$?
	[ -f "$O/vm/out/cache.tsv" ] && cp "$O/vm/out/cache.tsv" "$W/cache.tsv"
	[ "$rc" != 0 ] &&
		err "client cache: the guest run failed (vm-run exit $rc): $(grep -a 'ERROR' "$W/cache-vm-run.log" | tail -n 3 | tr '\n' ' ')"
	return 0
}

# ---------------------------------------------------------------- main
mkdir -p "$O/bench"
cc -O2 -g -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Iinclude -Ilib -pthread \
	-o "$IDLE" bench/idle-clients.c "$O/libnetdisk.a" -lcrypto -pthread ||
	die "cannot build bench/idle-clients.c"
machine_info >"$W/machine.tsv"
: >"$W/extra.tsv"
start_s=$(date +%s)
[ "$DO_HOST" = 1 ] && host_side
[ "$DO_COW" = 1 ] && cow_side
[ "$DO_VM" = 1 ] && vm_side
[ "$DO_VM" = 1 ] && cache_side
echo "load_end	$(cut -d' ' -f1-3 /proc/loadavg)" >>"$W/machine.tsv"
echo "duration	$(( $(date +%s) - start_s )) s" >>"$W/machine.tsv"

log "writing the report"
bench/report.sh "$W" "$RES" "$STAMP" || die "bench/report.sh failed"
echo
cat "$RES/$STAMP.md"
if [ -s "$ERRS" ]; then
	echo "bench: $(wc -l <"$ERRS") error(s), see above and $W" >&2
	exit 1
fi
exit 0
}
