#!/bin/bash
# netdisk integration tests: the real netdiskd and the real netdisk CLI on
# 127.0.0.1 with ephemeral ports, plus tests/tools/ndproxy for tampering.
# Usage: O=build tests/integration/run.sh   (make integration sets O)
# Every command is bounded by `timeout`; all processes are killed on exit.
set -u

O=${O:-build}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$ROOT/$O
ND=$BIN/netdisk
NDD=$BIN/netdiskd
PROXY=$BIN/tools/ndproxy
FLOOD=$BIN/tools/ndflood
EVIL=$BIN/tools/ndevil
TO=${ND_TEST_TIMEOUT:-120}	# per command, seconds

for b in "$ND" "$NDD" "$PROXY" "$FLOOD" "$EVIL"; do
	if [ ! -x "$b" ]; then
		echo "run.sh: $b missing; run 'make O=$O userspace' first" >&2
		exit 2
	fi
done

T=$(mktemp -d /tmp/netdisk-it.XXXXXX)
PIDS=""
PASS=0
FAIL=0
FAILED=""

cleanup() {
	local p
	for p in $PIDS; do kill -TERM "$p" 2>/dev/null; done
	sleep 0.2
	for p in $PIDS; do kill -KILL "$p" 2>/dev/null; done
	wait 2>/dev/null
	if [ "$FAIL" -eq 0 ] && [ -z "${KEEP:-}" ]; then
		rm -rf "$T"
	else
		echo "logs kept in $T"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ok() { PASS=$((PASS + 1)); echo "PASS: $*"; }
bad() { FAIL=$((FAIL + 1)); FAILED="$FAILED
  $*"; echo "FAIL: $*"; }

# run NAME CMD...: runs CMD with a timeout; sets RC, OUT, ERR files.
run() {
	local name=$1
	shift
	OUT=$T/$name.out
	ERR=$T/$name.err
	timeout -k 5 "$TO" "$@" >"$OUT" 2>"$ERR"
	RC=$?
}

# expect_err NAME WANT_RC PATTERN CMD...: CMD must exit WANT_RC ("nz" for
# any non-zero) and print exactly one line "netdisk: ..." matching PATTERN.
expect_err() {
	local name=$1 want=$2 pat=$3
	shift 3
	run "$name" "$@"
	local lines
	lines=$(grep -v '^netdisk: warning:' "$ERR" | wc -l)
	if [ "$want" = nz ] && [ "$RC" -eq 0 ]; then
		bad "$name: exit 0, wanted failure"
	elif [ "$want" != nz ] && [ "$RC" -ne "$want" ]; then
		bad "$name: exit $RC, wanted $want ($(head -c 300 "$ERR"))"
	elif [ "$lines" -ne 1 ]; then
		bad "$name: $lines lines on stderr, wanted 1: $(head -c 300 "$ERR")"
	elif ! grep -v '^netdisk: warning:' "$ERR" | grep -q '^netdisk: '; then
		bad "$name: message not prefixed 'netdisk: ': $(cat "$ERR")"
	elif ! grep -qiE -- "$pat" "$ERR"; then
		bad "$name: message lacks /$pat/: $(cat "$ERR")"
	else
		ok "$name (exit $RC: $(grep -v '^netdisk: warning:' "$ERR"))"
	fi
}

# expect_ok NAME CMD...
expect_ok() {
	local name=$1
	shift
	run "$name" "$@"
	if [ "$RC" -eq 0 ]; then
		ok "$name"
	else
		bad "$name: exit $RC: $(head -c 300 "$ERR")"
	fi
}

sum() { sha256sum "$1" | cut -d' ' -f1; }

# finish: sanitizer reports in the logs, the summary, exit 0 or 1.
finish() {
	if grep -lE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$T"/*.err "$T"/*.log \
		>"$T/san.txt" 2>/dev/null; then
		bad "sanitizer reports in: $(tr '\n' ' ' <"$T/san.txt")"
	fi
	echo
	echo "$PASS passed, $FAIL failed"
	if [ "$FAIL" -ne 0 ]; then
		echo "failed:$FAILED"
		exit 1
	fi
	exit 0
}

# start_server VAR ARGS...: starts netdiskd on an ephemeral port; sets
# ${VAR}_PID, ${VAR}_PORT and ${VAR}_LOG. Extra ARGS go to netdiskd.
start_server() {
	local var=$1 log=$T/server-$1.log pid port i
	shift
	$SRV_WRAP "$NDD" --listen 127.0.0.1 --port 0 --grace 0 \
		--state-dir "$T/state" "$@" 2>"$log" &
	pid=$!
	PIDS="$PIDS $pid"
	port=""
	for i in $(seq 1 200); do
		port=$(sed -n 's/.* port \([0-9][0-9]*\).*/\1/p' "$log" | head -n1)
		[ -n "$port" ] && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	if [ -z "$port" ]; then
		bad "start server $var: no port in log: $(head -c 300 "$log")"
		return 1
	fi
	eval "${var}_PID=$pid ${var}_PORT=$port ${var}_LOG=$log"
}

# stop_server VAR: SIGTERM must make netdiskd exit 0 promptly.
stop_server() {
	local var=$1 pid rc i
	eval "pid=\${${var}_PID:-}"
	[ -n "$pid" ] || return 0
	kill -TERM "$pid"
	for i in $(seq 1 200); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	if kill -0 "$pid" 2>/dev/null; then
		bad "server $var: still running 10 s after SIGTERM"
		kill -KILL "$pid"
	fi
	wait "$pid"
	rc=$?
	if [ "$rc" -eq 0 ]; then
		ok "server $var: SIGTERM -> exit 0"
	else
		bad "server $var: exit $rc after SIGTERM"
	fi
	eval "${var}_PID="
}

alive() {
	local pid
	eval "pid=\${${1}_PID:-}"
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

# start_proxy MODE DIR TARGET_PORT: sets PX_PID, PX_PORT, PX_LOG.
PXN=0
start_proxy() {
	local i
	PXN=$((PXN + 1))
	PX_LOG=$T/proxy-$PXN.log
	"$PROXY" --listen 127.0.0.1:0 --target "127.0.0.1:$3" --mode "$1" \
		--dir "$2" >"$T/proxy-$PXN.out" 2>"$PX_LOG" &
	PX_PID=$!
	PIDS="$PIDS $PX_PID"
	PX_PORT=""
	for i in $(seq 1 100); do
		PX_PORT=$(sed -n 's/^port //p' "$T/proxy-$PXN.out")
		[ -n "$PX_PORT" ] && break
		sleep 0.05
	done
}

stop_proxy() {
	kill -TERM "$PX_PID" 2>/dev/null
	wait "$PX_PID" 2>/dev/null
}

cd "$T" || exit 2
SRV_WRAP=""
echo "== integration tests: binaries from $BIN, scratch $T"

# ND_IT_ONLY=install: only the installed-system part (install.sh).
if [ "${ND_IT_ONLY:-}" = install ]; then
	. "$ROOT/tests/integration/install.sh"
	finish
fi

# ND_IT_ONLY=boot: only `netdisk boot` (boot.sh).
if [ "${ND_IT_ONLY:-}" = boot ]; then
	. "$ROOT/tests/integration/boot.sh"
	finish
fi

# ND_IT_ONLY=cow: only the copy-on-write part (cow.sh); cow-model: only its
# model test (cow_model.sh).
if [ "${ND_IT_ONLY:-}" = cow ] || [ "${ND_IT_ONLY:-}" = cow-model ]; then
	. "$ROOT/tests/integration/cow.sh"
	finish
fi

. "$ROOT/tests/integration/boot.sh"

# netdiskd as a service: config file, identities, access, reload.
# ND_IT_ONLY=service runs only these.
. "$ROOT/tests/integration/service.sh"
[ "${ND_IT_ONLY:-}" = service ] && finish

# ---------------------------------------------------------------- keys
expect_ok keygen-file "$ND" keygen key
if [ "$(stat -c %a key)" = 600 ] && grep -qxE '[0-9a-f]{64}' key &&
   [ "$(wc -c <key)" -eq 65 ]; then
	ok "keygen: mode 0600, 64 hex characters"
else
	bad "keygen: mode $(stat -c %a key), content '$(head -c 80 key)'"
fi
before=$(sum key)
expect_err keygen-no-overwrite nz "exists" "$ND" keygen key
[ "$(sum key)" = "$before" ] && ok "keygen: existing file untouched" ||
	bad "keygen: existing file changed"
run keygen-stdout "$ND" keygen
if [ "$RC" -eq 0 ] && grep -qxE '[0-9a-f]{64}' "$OUT" && ! cmp -s "$OUT" key; then
	ok "keygen: stdout, fresh key"
else
	bad "keygen to stdout: exit $RC, '$(head -c 80 "$OUT")'"
fi
"$ND" keygen wrongkey >/dev/null 2>&1
cp key key644 && chmod 644 key644
: >emptykey && chmod 600 emptykey
head -c 1000 /dev/urandom | od -An -tx1 | tr -d ' \n' | head -c 1000 >key1000
chmod 600 key1000

# ------------------------------------------------- netdiskd refuses bad input
truncate -s 4M small.img
for k in key644 emptykey key1000; do
	run "netdiskd-refuses-$k" "$NDD" --listen 127.0.0.1 --port 0 \
		--state-dir "$T/state" --file small.img --key-file "$k"
	if [ "$RC" -ne 0 ] && [ "$RC" -ne 124 ] && [ -s "$ERR" ]; then
		ok "netdiskd refuses key file $k (exit $RC: $(head -n1 "$ERR"))"
	else
		bad "netdiskd with key file $k: exit $RC"
	fi
done
head -c 1000 /dev/zero >odd.img
run netdiskd-refuses-unaligned "$NDD" --listen 127.0.0.1 --port 0 \
	--state-dir "$T/state" --file odd.img --key-file key
if [ "$RC" -ne 0 ] && [ "$RC" -ne 124 ] && [ -s "$ERR" ]; then
	ok "netdiskd refuses a 1000-byte export file (exit $RC)"
else
	bad "netdiskd with a 1000-byte export: exit $RC"
fi

# ------------------------------------------------ one writer per file
# netdiskd takes an OFD lock on its file: exclusive read-write, shared
# read-only. A refused server exits 1 at once with one line naming the lock.
# expect_locked NAME PATTERN NETDISKD-ARGS...
expect_locked() {
	local name=$1 pat=$2
	shift 2
	timeout -k 1 10 "$NDD" --listen 127.0.0.1 --port 0 \
		--state-dir "$T/state" "$@" \
		>"$T/$name.out" 2>"$T/$name.err"
	RC=$?
	if [ "$RC" -ne 1 ]; then
		bad "$name: exit $RC, wanted 1 ($(head -c 300 "$T/$name.err"))"
	elif [ "$(wc -l <"$T/$name.err")" -ne 1 ] ||
	     ! grep -qE -- "$pat" "$T/$name.err"; then
		bad "$name: wanted one line matching /$pat/: $(cat "$T/$name.err")"
	else
		ok "$name (exit 1: $(cat "$T/$name.err"))"
	fi
}
truncate -s 4M lock.img
start_server LK1 --file lock.img --key-file key || exit 1
expect_locked lock-second-writer "lock.img: in use: .*write lock" \
	--file lock.img --key-file key
expect_locked lock-reader-while-writer "lock.img: in use: .*write lock" \
	--file lock.img --key-file key --read-only
expect_ok lock-writer-still-serves "$ND" copy small.img \
	"netdisk://127.0.0.1:$LK1_PORT" --key-file key
stop_server LK1
start_server LK2 --file lock.img --key-file key --read-only || exit 1
start_server LK3 --file lock.img --key-file key --read-only || exit 1
expect_ok lock-two-readers "$ND" info "netdisk://127.0.0.1:$LK3_PORT" --key-file key
expect_locked lock-writer-while-reader "lock.img: in use: .*read lock" \
	--file lock.img --key-file key
stop_server LK2
stop_server LK3
start_server LK4 --file lock.img --key-file key || exit 1
ok "lock: released when the servers exit"
stop_server LK4

# ------------------------------------------------ state directory
# A read-write export's write epochs live in --state-dir: one that cannot
# be written stops netdiskd at once with one line; read-only needs none.
: >statefile
expect_locked state-dir-is-a-file "state directory .*statefile: not a directory" \
	--file lock.img --key-file key --state-dir "$T/statefile"
expect_locked state-dir-uncreatable "state directory .*statefile/sub: cannot create it" \
	--file lock.img --key-file key --state-dir "$T/statefile/sub"
start_server SDRO --file lock.img --key-file key --read-only \
	--state-dir "$T/statefile/sub" || exit 1
expect_ok state-dir-not-needed-read-only "$ND" info \
	"netdisk://127.0.0.1:$SDRO_PORT" --key-file key
stop_server SDRO

# ------------------------------------------------ shortcut: control socket
# The one-export command line opens a control socket only when asked.
start_server CT --file lock.img --key-file key --read-only \
	--control "$T/ct/ctl.sock" || exit 1
run shortcut-status "$NDD" status --control "$T/ct/ctl.sock"
[ "$RC" -eq 0 ] && grep -q "^export default path=lock.img mode=ro " "$OUT" &&
	ok "shortcut --control: netdiskd status lists the export" ||
	bad "shortcut --control: exit $RC: $(cat "$OUT" "$ERR" | head -c 300)"
stop_server CT
[ ! -e "$T/ct/ctl.sock" ] && ok "shortcut --control: socket removed at exit" ||
	bad "shortcut --control: socket left behind"
run shortcut-control-relative "$NDD" --file lock.img --key-file key --control ctl.sock
[ "$RC" -eq 2 ] && grep -qx "netdiskd: --control needs an absolute path" "$ERR" &&
	ok "shortcut --control: a relative path is a usage error" ||
	bad "shortcut --control ctl.sock: exit $RC: $(head -c 300 "$ERR")"
run shortcut-check "$NDD" --file lock.img --key-file key --check
[ "$RC" -eq 2 ] && grep -qx "netdiskd: --check needs --config FILE" "$ERR" &&
	ok "--check without --config: a usage error" ||
	bad "--check without --config: exit $RC: $(head -c 300 "$ERR")"

# ------------------------------------------------ write epochs survive kill -9
# state_get FILE: "RESERVED WRITTEN" from a state file.
state_get() {
	sed -n 's/^reserved \([0-9]*\)$/\1/p; s/^written \([0-9]*\)$/\1/p' "$1" |
		tr '\n' ' '
}
truncate -s 4M ep.img
start_server EP --file ep.img --key-file key --state-dir "$T/epstate" || exit 1
expect_ok epoch-writer "$ND" copy small.img "netdisk://127.0.0.1:$EP_PORT" \
	--key-file key
kill -KILL "$EP_PID"
wait "$EP_PID" 2>/dev/null
EP_PID=
ep_files=("$T"/epstate/*)
ep_file=${ep_files[0]}
if [ ${#ep_files[@]} -eq 1 ] && [ "${ep_file%.state}" != "$ep_file" ]; then
	read -r ep_r ep_w <<<"$(state_get "$ep_file")"
	if [ -n "$ep_w" ] && [ "$ep_w" -ne 0 ] && [ "$ep_w" = "$ep_r" ]; then
		ok "epoch: state file after kill -9 names the writer (reserved $ep_r, written $ep_w)"
	else
		bad "epoch: state file after kill -9: $(cat "$ep_file")"
	fi
	start_server EP2 --file ep.img --key-file key --state-dir "$T/epstate" || exit 1
	grep -q "reserved $ep_r, written $ep_w)" "$EP2_LOG" &&
		ok "epoch: restarted server loads it" ||
		bad "epoch: restarted server: $(grep 'write epochs' "$EP2_LOG")"
	expect_ok epoch-next-writer "$ND" copy small.img \
		"netdisk://127.0.0.1:$EP2_PORT" --key-file key
	stop_server EP2
	[ "$(state_get "$ep_file")" = "$((ep_r + 1)) $((ep_r + 1)) " ] &&
		ok "epoch: the next writer counted" ||
		bad "epoch: after the next writer: $(cat "$ep_file")"
else
	bad "epoch: state dir holds ${ep_files[*]}"
fi

# ------------------------------------------------ descriptor limit
# 1024 connections and 128 pending handshakes need more descriptors than
# the usual soft limit: netdiskd raises it to the hard limit, and says so
# in one line when even the hard limit is too low.
SRV_WRAP="prlimit --nofile=256:4096" start_server NF1 --file lock.img \
	--key-file key || exit 1
nf=$(awk '/^Max open files/ { print $4 }' "/proc/$NF1_PID/limits")
[ "$nf" = 4096 ] && ok "nofile: soft limit raised to the hard limit" ||
	bad "nofile: soft limit $nf, wanted the hard limit 4096"
stop_server NF1
SRV_WRAP="prlimit --nofile=512:512" start_server NF2 --file lock.img \
	--key-file key || exit 1
grep -q "open file limit is 512, below" "$NF2_LOG" &&
	ok "nofile: a hard limit of 512 is reported" ||
	bad "nofile: no warning for a hard limit of 512: $(head -c 300 "$NF2_LOG")"
stop_server NF2

# ------------------------------------------------ 64 MiB round trip (rw)
head -c 64M /dev/urandom >src.img
truncate -s 64M rw.img
start_server RW --file rw.img --key-file key || exit 1
URL=netdisk://127.0.0.1:$RW_PORT/default

run info "$ND" info "$URL" --key-file key
if [ "$RC" -eq 0 ] && grep -q 'size: *67108864 ' "$OUT" &&
   grep -q 'block size: *512' "$OUT"; then
	ok "info: size and block size"
else
	bad "info: exit $RC: $(cat "$OUT" "$ERR" | head -c 300)"
fi
run info-json "$ND" info "$URL" --key-file key --json
grep -q '"size":67108864' "$OUT" && ok "info --json" ||
	bad "info --json: $(cat "$OUT" "$ERR" | head -c 300)"

expect_ok upload-64M "$ND" copy src.img "$URL" --key-file key
cmp -s src.img rw.img && ok "upload: server file byte-identical" ||
	bad "upload: server file differs"
expect_ok download-64M "$ND" copy "$URL" dl.img --key-file key
cmp -s src.img dl.img && ok "download: byte-identical" ||
	bad "download: differs"
# Small requests and a shallow pipeline still land every byte right.
head -c 3M /dev/urandom >part.img
expect_ok upload-bs4k "$ND" copy part.img "$URL" --key-file key --bs 4k --inflight 64k
head -c 3M rw.img | cmp -s - part.img && ok "upload --bs 4k: byte-identical" ||
	bad "upload --bs 4k: differs"
cp dl.img dl-existing.img
expect_ok download-over-existing "$ND" copy "$URL" dl-existing.img --key-file key
cmp -s rw.img dl-existing.img && ok "download over an existing file" ||
	bad "download over an existing file: differs"

# ------------------------------------------------ wrong key, refused
before=$(sum rw.img)
expect_err wrong-key-upload 4 "authentication failed" \
	"$ND" copy src.img "$URL" --key-file wrongkey
expect_err wrong-key-info 4 "authentication failed" \
	"$ND" info "$URL" --key-file wrongkey
[ "$(sum rw.img)" = "$before" ] && ok "wrong key: server file unmodified" ||
	bad "wrong key: server file modified"

# ------------------------------------------------ out of range
head -c 65M /dev/urandom >big.img
expect_err upload-too-big 7 "out of range|larger" \
	"$ND" copy big.img "$URL" --key-file key
expect_err bench-beyond-end 7 "out of range" \
	"$ND" bench "$URL" --key-file key --rw read --offset 64M --size 1M --time 1
expect_err bench-straddles-end 7 "out of range" \
	"$ND" bench "$URL" --key-file key --rw randread --bs 8k \
	--offset 67104768 --size 8k --time 1
[ "$(sum rw.img)" = "$before" ] && ok "out of range: server file unmodified" ||
	bad "out of range: server file modified"

# ------------------------------------------------ bench
run bench-randread "$ND" bench "$URL" --key-file key --rw randread --bs 4k \
	--iodepth 16 --time 1
if [ "$RC" -eq 0 ] && grep -q 'IOPS' "$OUT" && grep -q 'p99.9' "$OUT"; then
	ok "bench randread: $(grep IOPS "$OUT" | tr -s ' ')"
else
	bad "bench randread: exit $RC: $(cat "$OUT" "$ERR" | head -c 300)"
fi
run bench-write-json "$ND" bench "$URL" --key-file key --rw write --bs 1m \
	--iodepth 4 --time 1 --json
if [ "$RC" -eq 0 ] && grep -q '"iops":' "$OUT" && grep -q '"p99_9":' "$OUT" &&
   grep -q 'warning' "$ERR"; then
	ok "bench write --json (warns)"
else
	bad "bench write --json: exit $RC: $(cat "$OUT" "$ERR" | head -c 300)"
fi

# ------------------------------------------------ busy
nw=$(grep -c 'read-write' "$RW_LOG")
"$ND" bench "$URL" --key-file key --rw randwrite --bs 4k --iodepth 4 \
	--time 5 >"$T/holder.out" 2>"$T/holder.err" &
HOLDER=$!
PIDS="$PIDS $HOLDER"
# Wait until the server has given the holder its write session.
for i in $(seq 1 100); do
	[ "$(grep -c 'read-write' "$RW_LOG")" -gt "$nw" ] && break
	sleep 0.05
done
expect_err second-writer-busy 5 "busy" "$ND" copy part.img "$URL" --key-file key
wait "$HOLDER"
[ $? -eq 0 ] && ok "busy: the holder finished fine" ||
	bad "busy: holder failed: $(cat "$T/holder.err")"
expect_ok writer-after-holder "$ND" copy part.img "$URL" --key-file key
# The export list shows a writer while it holds the export (a holder of our
# own, ended by us, so a slow machine cannot end it before the check); the
# shortcut server has one export, and one key for every identity.
nw=$(grep -c 'read-write' "$RW_LOG")
"$ND" bench "$URL" --key-file key --rw randwrite --bs 4k --iodepth 1 \
	--time 60 >"$T/holder2.out" 2>"$T/holder2.err" &
HOLDER2=$!
PIDS="$PIDS $HOLDER2"
for i in $(seq 1 200); do
	[ "$(grep -c 'read-write' "$RW_LOG")" -gt "$nw" ] && break
	sleep 0.05
done
run exports-busy "$ND" exports "netdisk://127.0.0.1:$RW_PORT" --key-file key \
	--identity anyone
kill -0 "$HOLDER2" 2>/dev/null || bad "exports while busy: the holder ended early"
[ "$RC" -eq 0 ] && [ "$(wc -l <"$OUT")" -eq 2 ] &&
	grep -qE '^default +64\.0 MiB +67108864 +512 +rw +flush( [a-z-]+)* busy$' "$OUT" &&
	ok "exports: the real server's export, rw and busy while written" ||
	bad "exports while busy: exit $RC: $(cat "$OUT" "$ERR" | head -c 400)"
kill -TERM "$HOLDER2" 2>/dev/null
wait "$HOLDER2" 2>/dev/null
# --grace 0: the lock goes with the connection, a moment after the kill.
for i in $(seq 1 100); do
	run exports-not-busy "$ND" exports "netdisk://127.0.0.1:$RW_PORT" --key-file key
	[ "$RC" -eq 0 ] && ! grep -q busy "$OUT" && break
	sleep 0.1
done
[ "$RC" -eq 0 ] && grep -qE '^default +64\.0 MiB +67108864 +512 +rw +flush' "$OUT" &&
	! grep -q busy "$OUT" &&
	ok "exports: not busy once the writer is gone" ||
	bad "exports after the writer: exit $RC: $(cat "$OUT" "$ERR" | head -c 400)"

# ------------------------------------------------ URL forms
expect_ok url-localhost "$ND" info "netdisk://localhost:$RW_PORT" --key-file key
expect_ok url-default-export "$ND" info "netdisk://127.0.0.1:$RW_PORT/" --key-file key

# ------------------------------------------------ no such export, no server
expect_err no-such-export 8 "no such export" \
	"$ND" info "netdisk://127.0.0.1:$RW_PORT/nope" --key-file key
# Without the key nothing tells whether an export exists.
expect_err no-such-export-wrong-key 4 "authentication failed" \
	"$ND" info "netdisk://127.0.0.1:$RW_PORT/nope" --key-file wrongkey
expect_err existing-export-wrong-key 4 "authentication failed" \
	"$ND" info "netdisk://127.0.0.1:$RW_PORT/default" --key-file wrongkey
expect_err exports-wrong-key 4 "authentication failed" \
	"$ND" exports "netdisk://127.0.0.1:$RW_PORT" --key-file wrongkey

# ------------------------------------------------ a protocol-1 client
# Its ClientHello is the prefix every version shares; the answer is a
# 104-byte ServerHello (version 2, status 9 "unsupported version", zeros),
# then the server closes: no hang.
python3 - "$RW_PORT" >"$T/v1.out" 2>&1 <<'PY'
import os, socket, struct, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.settimeout(5)
s.sendall(struct.pack(">IHH", 0x4E44534B, 1, 0) + os.urandom(32) +
          struct.pack(">QBB", int(time.time()), 7, 7) + b"defaultdefault")
got = b""
while True:
    b = s.recv(4096)
    if not b:
        break
    got += b
print(len(got), got[:8].hex(), got[8:].count(0))
PY
[ "$(cat "$T/v1.out")" = "104 4e44534b00020009 96" ] &&
	ok "v1 client: 104-byte version-2 status-9 answer, then EOF" ||
	bad "v1 client: got '$(cat "$T/v1.out")'"
alive RW && ok "v1 client: server alive" || bad "v1 client: server died"
stop_server RW
expect_err cannot-connect 3 "connect" "$ND" info "$URL" --key-file key
expect_err exports-cannot-connect 3 "connect" "$ND" exports "$URL" --key-file key

# ------------------------------------------------ read-only export
head -c 16M /dev/urandom >ro.img
chmod 444 ro.img
ROSUM=$(sum ro.img)
start_server RO --file ro.img --key-file key --read-only || exit 1
ROURL=netdisk://127.0.0.1:$RO_PORT
run exports-ro "$ND" exports "$ROURL" --key-file key --json
[ "$RC" -eq 0 ] && grep -qF '"exports":[{"name":"default","size":16777216,"block_size":512,"read_only":true,"busy":false,"flags":3}]' "$OUT" &&
	ok "exports --json: the read-only export" ||
	bad "exports of the read-only server: exit $RC: $(cat "$OUT" "$ERR" | head -c 400)"
expect_err ro-upload 6 "read-only" "$ND" copy part.img "$ROURL" --key-file key
# bench does no client-side check: this is the server refusing the write.
expect_err ro-bench-write 6 "read-only" \
	"$ND" bench "$ROURL" --key-file key --rw write --time 1
[ "$(sum ro.img)" = "$ROSUM" ] && ok "read-only: file unmodified" ||
	bad "read-only: file modified"

pids=""
for i in 1 2 3 4 5 6 7 8; do
	timeout -k 5 "$TO" "$ND" copy "$ROURL" "ro-dl-$i.img" --key-file key \
		2>"$T/ro-dl-$i.err" &
	pids="$pids $!"
done
n=0
for p in $pids; do wait "$p" && n=$((n + 1)); done
good=0
for i in 1 2 3 4 5 6 7 8; do cmp -s ro.img "ro-dl-$i.img" && good=$((good + 1)); done
[ "$n" -eq 8 ] && [ "$good" -eq 8 ] &&
	ok "read-only: 8 concurrent downloads, all byte-identical" ||
	bad "read-only: $n/8 downloads succeeded, $good/8 identical"

# ------------------------------------------------ tampering proxy
# Each fault must kill that connection (non-zero exit), while another
# client of the same server keeps working and the server survives.
for dir in c2s s2c; do
	for mode in flip replay reorder cut; do
		name=proxy-$mode-$dir
		"$ND" bench "$ROURL" --key-file key --rw randread --time 2 \
			>"$T/$name-bystander.out" 2>"$T/$name-bystander.err" &
		by=$!
		PIDS="$PIDS $by"
		start_proxy "$mode" "$dir" "$RO_PORT"
		run "$name" "$ND" copy "netdisk://127.0.0.1:$PX_PORT" \
			"$name.img" --key-file key
		stop_proxy
		wait "$by"
		byrc=$?
		if [ "$RC" -eq 0 ] || [ "$RC" -eq 124 ]; then
			bad "$name: client exit $RC, wanted a failure"
		elif ! grep -qE 'flipped|replayed|reordered|cut the connection' "$PX_LOG"; then
			bad "$name: proxy did not inject the fault: $(cat "$PX_LOG")"
		elif [ "$(wc -l <"$ERR")" -ne 1 ] ||
		     ! grep -qiE 'authentication|connection lost|protocol' "$ERR"; then
			bad "$name: unexpected message: $(cat "$ERR")"
		elif [ "$byrc" -ne 0 ]; then
			bad "$name: concurrent client failed: $(cat "$T/$name-bystander.err")"
		elif ! alive RO; then
			bad "$name: server died"
		else
			ok "$name (exit $RC: $(cat "$ERR"))"
		fi
	done
done
expect_ok after-proxy-download "$ND" copy "$ROURL" after.img --key-file key
cmp -s ro.img after.img && ok "after the faults: a new client reads correct data" ||
	bad "after the faults: data differs"
# A pass-through proxy changes nothing (the harness itself is sound).
start_proxy pass c2s "$RO_PORT"
expect_ok proxy-pass "$ND" copy "netdisk://127.0.0.1:$PX_PORT" pass.img --key-file key
stop_proxy
cmp -s ro.img pass.img && ok "proxy pass: byte-identical" || bad "proxy pass: differs"

# Tampered uploads to a read-write export leave the server usable.
cp src.img rw2.img
start_server RW2 --file rw2.img --key-file key || exit 1
for mode in flip cut; do
	start_proxy "$mode" c2s "$RW2_PORT"
	expect_err "proxy-upload-$mode" 11 "authentication|connection lost|protocol" \
		"$ND" copy part.img "netdisk://127.0.0.1:$PX_PORT" --key-file key
	stop_proxy
done
expect_ok rw-after-tamper "$ND" copy part.img "netdisk://127.0.0.1:$RW2_PORT" --key-file key
head -c 3M rw2.img | cmp -s - part.img && ok "read-write export usable after tampering" ||
	bad "read-write export after tampering: data differs"
stop_server RW2

# ------------------------------------------------ write lock: grace period
# With the default grace period, a clean close (DISCONNECT) frees the lock
# at once, while a connection that dies keeps it for its owner.
start_server GR --file rw2.img --key-file key --grace 30 || exit 1
GRURL=netdisk://127.0.0.1:$GR_PORT
expect_ok grace-first-writer "$ND" copy part.img "$GRURL" --key-file key
expect_ok grace-second-writer "$ND" copy part.img "$GRURL" --key-file key
start_proxy cut c2s "$GR_PORT"
expect_err grace-cut-writer 11 "connection lost" \
	"$ND" copy part.img "netdisk://127.0.0.1:$PX_PORT" --key-file key
stop_proxy
expect_err grace-lock-kept 5 "busy" "$ND" copy part.img "$GRURL" --key-file key
expect_ok grace-reader-meanwhile "$ND" copy "$GRURL" gr.img --key-file key
stop_server GR

# ------------------------------------------------ IPv6
if ip -6 addr show dev lo 2>/dev/null | grep -q '::1'; then
	start_server V6 --file ro.img --key-file key --read-only --listen ::1 || exit 1
	expect_ok ipv6-download "$ND" copy "netdisk://[::1]:$V6_PORT/default" v6.img --key-file key
	cmp -s ro.img v6.img && ok "ipv6: byte-identical" || bad "ipv6: differs"
	stop_server V6
else
	echo "SKIP: IPv6 (no ::1 on lo)"
fi

# ------------------------------------------------ a silent server
# Accepts TCP (kernel backlog) but never answers: --timeout must end it.
if command -v python3 >/dev/null; then
	python3 -c 'import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(8)
print(s.getsockname()[1], flush=True); time.sleep(60)' >silent.port &
	SILENT=$!
	PIDS="$PIDS $SILENT"
	for i in $(seq 1 100); do [ -s silent.port ] && break; sleep 0.05; done
	t0=$(date +%s)
	expect_err silent-server-timeout 11 "handshake|timed out" \
		"$ND" info "netdisk://127.0.0.1:$(cat silent.port)" --key-file key --timeout 1
	[ $(($(date +%s) - t0)) -le 10 ] && ok "silent server: gave up in time" ||
		bad "silent server: took $(($(date +%s) - t0)) s"
	kill "$SILENT" 2>/dev/null
else
	echo "SKIP: silent server (no python3)"
fi

# ------------------------------------------------ a server that misbehaves
# tests/tools/ndevil holds the key, completes a real handshake and serves
# evil.img, except that it breaks the protocol once (--mode; reply modes at
# the first READ covering 1 MiB). The client must end each with one clean
# line and exit 11 within its --timeout (plus slack), never hang, never
# crash (sanitizers, valgrind below).
EVN=0
# start_evil MODE: sets EV_PID, EV_PORT, EV_LOG.
start_evil() {
	local i
	EVN=$((EVN + 1))
	EV_LOG=$T/evil-$EVN.log
	"$EVIL" --listen 127.0.0.1:0 --key-file key --file evil.img \
		--mode "$1" --at 1048576 >"$T/evil-$EVN.out" 2>"$EV_LOG" &
	EV_PID=$!
	PIDS="$PIDS $EV_PID"
	EV_PORT=""
	for i in $(seq 1 100); do
		EV_PORT=$(sed -n 's/^port //p' "$T/evil-$EVN.out")
		[ -n "$EV_PORT" ] && break
		sleep 0.05
	done
}
stop_evil() {
	kill -TERM "$EV_PID" 2>/dev/null
	wait "$EV_PID" 2>/dev/null
}
# evil_case MODE PATTERN CMD...: CMD (URL stands for ndevil's) against MODE
# must fail cleanly (exit 11, PATTERN) within 20 s, and ndevil must have
# done its mischief. evil_case_rc MODE RC PATTERN CMD...: exit RC instead.
evil_case() {
	local mode=$1
	shift
	evil_case_rc "$mode" 11 "$@"
}
evil_case_rc() {
	local mode=$1 rc=$2 pat=$3 t0
	shift 3
	start_evil "$mode"
	t0=$SECONDS
	expect_err "evil-$mode" "$rc" "$pat" "${@/#URL/netdisk://127.0.0.1:$EV_PORT}" \
		--key-file key --timeout 3
	[ $((SECONDS - t0)) -le 20 ] ||
		bad "evil-$mode: took $((SECONDS - t0)) s with --timeout 3"
	grep -q "^ndevil: conn 1: $mode" "$EV_LOG" ||
		bad "evil-$mode: ndevil did not misbehave: $(cat "$EV_LOG")"
	stop_evil
}
head -c 4M /dev/urandom >evil.img
start_evil honest
expect_ok evil-honest "$ND" copy "netdisk://127.0.0.1:$EV_PORT" evil-honest.img \
	--key-file key --timeout 3
cmp -s evil.img evil-honest.img && ok "evil-honest: byte-identical (the harness is sound)" ||
	bad "evil-honest: download differs"
stop_evil
for mode in unknown-handle dup-handle stale-handle short-read long-read \
	    empty-read bad-status garbage; do
	evil_case "$mode" "protocol error" "$ND" copy URL evil-out.img
done
# A stalled or trickling reply is as late as a silent one.
evil_case stall "timed out" "$ND" copy URL evil-out.img
evil_case trickle "timed out" "$ND" copy URL evil-out.img
for mode in size-huge size-unaligned block-size payload-zero payload-huge \
	    payload-raise info-status; do
	evil_case "$mode" "protocol error: unusable session info" "$ND" info URL
done
evil_case hello-trickle "timed out during handshake" "$ND" info URL
# A protocol-1 server's refusal is 72 bytes and it then waits: the client
# reads 8 and reports the version at once.
start_evil v1-server
t0=$SECONDS
expect_err evil-v1-server 11 "unsupported protocol version" \
	"$ND" info "netdisk://127.0.0.1:$EV_PORT" --key-file key --timeout 10
[ $((SECONDS - t0)) -le 5 ] ||
	bad "evil-v1-server: took $((SECONDS - t0)) s with --timeout 10"
stop_evil

# netdisk exports against ndevil: its honest list, then each way of
# spoiling it; every one a protocol error in one line, nothing printed.
start_evil honest
run exports-evil-honest "$ND" exports "netdisk://127.0.0.1:$EV_PORT" \
	--key-file key --timeout 3
if [ "$RC" -eq 0 ] && [ "$(wc -l <"$OUT")" -eq 4 ] &&
   grep -qE '^alpha +4\.0 MiB +4194304 +512 +rw +flush fua$' "$OUT" &&
   grep -qE '^beta\.ro +4\.0 MiB +4194304 +4096 +ro +flush$' "$OUT" &&
   grep -qE '^gamma +4\.0 MiB +4194304 +512 +rw +flush busy$' "$OUT"; then
	ok "exports: ndevil's three exports, ro/rw and busy"
else
	bad "exports against ndevil: exit $RC: $(cat "$OUT" "$ERR" | head -c 400)"
fi
run exports-evil-json "$ND" exports "netdisk://127.0.0.1:$EV_PORT" \
	--key-file key --timeout 3 --json --identity lab-01
if [ "$RC" -eq 0 ] && python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["identity"] == "lab-01" and d["url"].startswith("netdisk://127.0.0.1:")
e = d["exports"]
assert [x["name"] for x in e] == ["alpha", "beta.ro", "gamma"]
assert [x["read_only"] for x in e] == [False, True, False]
assert [x["busy"] for x in e] == [False, False, True]
assert [x["block_size"] for x in e] == [512, 4096, 512]
assert all(x["size"] == 4194304 for x in e)
' "$OUT"; then
	ok "exports --json: names, access, busy, sizes"
else
	bad "exports --json: exit $RC: $(cat "$OUT" "$ERR" | head -c 400)"
fi
stop_evil
for mode in list-count list-count-small list-name list-flag list-size-zero \
	    list-size-huge list-block-size list-dup list-unsorted \
	    list-trailing list-too-many; do
	evil_case "$mode" "protocol error: malformed export list" "$ND" exports URL
	[ -s "$OUT" ] && bad "evil-$mode: printed a list: $(head -c 200 "$OUT")"
done
# A server without the extension opens a read-only session: the client
# ends it with DISCONNECT and says so.
evil_case_rc list-none 1 "server cannot list exports" "$ND" exports URL
# Status 15: its own exit code and words, whatever asked.
evil_case_rc access-denied 12 "access denied" "$ND" exports URL
evil_case_rc access-denied 12 "server refused: access denied" "$ND" info URL
evil_case_rc access-denied 12 "server refused: access denied" "$ND" copy URL evil-out.img
# Status 16 (a copy-on-write overlay whose base changed): exit 13.
evil_case_rc base-changed 13 "server refused: base image of the overlay changed" "$ND" info URL
evil_case_rc base-changed 13 "server refused: base image of the overlay changed" "$ND" copy evil.img URL
evil_case_rc base-changed 13 "server refused: base image of the overlay changed" "$ND" bench URL --time 1

# Someone on the path without the key answers with a forged ServerHello
# "unknown session": a malformed hello, not a refusal from the server.
truncate -s 4M forge.img
start_server FG --file forge.img --key-file key || exit 1
"$PROXY" --listen 127.0.0.1:0 --target "127.0.0.1:$FG_PORT" --mode forge \
	--after 1000 --forge 1 >"$T/forge.out" 2>"$T/forge.log" &
FX=$!
PIDS="$PIDS $FX"
for i in $(seq 1 100); do [ -s "$T/forge.out" ] && break; sleep 0.05; done
FXURL=netdisk://127.0.0.1:$(sed -n 's/^port //p' "$T/forge.out")
expect_ok forge-first-forwarded "$ND" info "$FXURL" --key-file key
expect_err forge-hello-status 11 "protocol error during handshake" \
	"$ND" info "$FXURL" --key-file key
grep -q 'forged server hello status 11' "$T/forge.log" ||
	bad "forge: the proxy forged nothing: $(cat "$T/forge.log")"
expect_ok forge-then-forwarded "$ND" info "$FXURL" --key-file key
kill -TERM "$FX" 2>/dev/null
wait "$FX" 2>/dev/null
stop_server FG

# ------------------------------------------------ exports per identity
# netdiskd --config with three exports and two identities, each with its
# own key: each sees its own list; a session on an export it may not use
# is access denied (12); a wrong key and an unknown identity are the same
# authentication failure (4).
mkdir -p ids && chmod 700 ids
"$ND" keygen ids/lab-01.key >/dev/null 2>&1
"$ND" keygen ids/db01.key >/dev/null 2>&1
truncate -s 4M idlab.img idcommon.img
truncate -s 1M iddb.img
cat >ids.conf <<EOF
[server]
listen = 127.0.0.1
port = 0
key-dir = $T/ids
state-dir = $T/state
control = none
grace = 0

[export lab]
path = $T/idlab.img
clients = lab-*

[export db]
path = $T/iddb.img
read-only = yes
clients = db01

[export common]
path = $T/idcommon.img
EOF
ID_LOG=$T/server-ID.log
"$NDD" --config ids.conf 2>"$ID_LOG" &
ID_PID=$!
PIDS="$PIDS $ID_PID"
ID_PORT=""
for i in $(seq 1 200); do
	ID_PORT=$(sed -n 's/.* port \([0-9][0-9]*\).*/\1/p' "$ID_LOG" | head -n1)
	[ -n "$ID_PORT" ] && break
	sleep 0.05
done
IDURL=netdisk://127.0.0.1:$ID_PORT
# names FILE: the NAME column of a table, on one line.
names() { tail -n +2 "$1" | awk '{ print $1 }' | tr '\n' ' '; }
if [ -z "$ID_PORT" ]; then
	bad "netdiskd --config ids.conf: no port in log: $(head -c 300 "$ID_LOG")"
else
	run exports-lab01 "$ND" exports "$IDURL" --key-file ids/lab-01.key \
		--identity lab-01
	[ "$RC" -eq 0 ] && [ "$(names "$OUT")" = "common lab " ] &&
		grep -qE '^lab +4\.0 MiB +4194304 +512 +rw ' "$OUT" &&
		ok "exports as lab-01: common and lab" ||
		bad "exports as lab-01: exit $RC: $(cat "$OUT" "$ERR" | head -c 400)"
	run exports-db01 "$ND" exports "$IDURL" --key-file ids/db01.key \
		--identity db01
	[ "$RC" -eq 0 ] && [ "$(names "$OUT")" = "common db " ] &&
		grep -qE '^db +1\.0 MiB +1048576 +512 +ro +flush$' "$OUT" &&
		ok "exports as db01: common and db (read-only)" ||
		bad "exports as db01: exit $RC: $(cat "$OUT" "$ERR" | head -c 400)"
	expect_err exports-unknown-identity 4 "authentication failed" \
		"$ND" exports "$IDURL" --key-file ids/lab-01.key --identity nobody
	expect_err exports-other-key 4 "authentication failed" \
		"$ND" exports "$IDURL" --key-file ids/db01.key --identity lab-01
	expect_err access-denied-info 12 "server refused: access denied" \
		"$ND" info "$IDURL/lab" --key-file ids/db01.key --identity db01
	expect_err access-denied-copy 12 "server refused: access denied" \
		"$ND" copy small.img "$IDURL/db" --key-file ids/lab-01.key \
		--identity lab-01
	expect_ok access-allowed-info "$ND" info "$IDURL/db" \
		--key-file ids/db01.key --identity db01
	expect_err no-such-export-identity 8 "no such export" \
		"$ND" info "$IDURL/nope" --key-file ids/db01.key --identity db01
	grep -q 'not allowed\|access denied' "$ID_LOG" &&
		ok "access denied: the server logs it" ||
		bad "access denied: not in the server log: $(tail -n 5 "$ID_LOG")"
fi
kill -TERM "$ID_PID" 2>/dev/null
wait "$ID_PID" 2>/dev/null

# ------------------------------------------------ bad arguments
expect_err arg-missing-keyfile 1 "no such file|cannot" \
	"$ND" info "$ROURL" --key-file /nonexistent/key
expect_err arg-no-keyfile 2 "key-file" "$ND" info "$ROURL"
expect_err arg-exports-no-keyfile 2 "key-file" "$ND" exports "$ROURL"
expect_err arg-exports-no-url 2 "expected one URL" "$ND" exports --key-file key
expect_err arg-exports-bad-url 2 "url|host" "$ND" exports "http://127.0.0.1" --key-file key
expect_err arg-exports-bad-identity 2 "invalid identity" \
	"$ND" exports "$ROURL" --key-file key --identity 'a/b'
expect_err arg-keyfile-0644 1 "mode|permission|others" \
	"$ND" info "$ROURL" --key-file key644
expect_err arg-bad-url 2 "url|host" "$ND" info "http://127.0.0.1" --key-file key
expect_err arg-bad-url-host 2 "host" "$ND" info "netdisk://" --key-file key
expect_err arg-bad-url-port 2 "port" "$ND" info "netdisk://127.0.0.1:99999" --key-file key
expect_err arg-bad-export 2 "export" "$ND" info "netdisk://127.0.0.1/a/b" --key-file key
expect_err arg-unaligned-upload 2 "multiple of 512" \
	"$ND" copy odd.img "$ROURL" --key-file key
expect_err arg-missing-file 1 "no such file" \
	"$ND" copy /nonexistent.img "$ROURL" --key-file key
expect_err arg-two-locals 2 "exactly one" "$ND" copy a.img b.img --key-file key
expect_err arg-two-urls 2 "exactly one" "$ND" copy "$ROURL" "$ROURL" --key-file key
expect_err arg-bad-bs 2 "bs" "$ND" bench "$ROURL" --key-file key --bs 1000
expect_err arg-bad-size-suffix 2 "bs" "$ND" bench "$ROURL" --key-file key --bs 4x
expect_err arg-bad-rw 2 "rw" "$ND" bench "$ROURL" --key-file key --rw sideways
expect_err arg-bad-iodepth 2 "iodepth" "$ND" bench "$ROURL" --key-file key --iodepth 0
expect_err arg-unknown-option 2 "unknown option" "$ND" info "$ROURL" --frobnicate
expect_err arg-unknown-command 2 "unknown command" "$ND" frobnicate
expect_err arg-no-command 2 "usage|command" "$ND"
run help "$ND" --help
[ "$RC" -eq 0 ] && grep -q 'usage: netdisk' "$OUT" && ok "--help" || bad "--help: exit $RC"
run help-copy "$ND" help copy
[ "$RC" -eq 0 ] && grep -q 'netdisk copy SRC DST' "$OUT" && ok "help copy" ||
	bad "help copy: exit $RC"
run version "$ND" --version
[ "$RC" -eq 0 ] && grep -q '^netdisk ' "$OUT" && ok "--version" || bad "--version: exit $RC"
stop_server RO

# ------------------------------------------------ valgrind (optional)
if [ -z "${ND_NO_VALGRIND:-}" ] && command -v valgrind >/dev/null &&
   ! nm "$NDD" 2>/dev/null | grep -q __asan_init; then
	head -c 4M /dev/urandom >vg-src.img
	truncate -s 4M vg.img
	VG="valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite"
	SRV_WRAP="$VG"
	start_server VG --file vg.img --key-file key || exit 1
	SRV_WRAP=""
	VGURL=netdisk://127.0.0.1:$VG_PORT
	expect_ok valgrind-upload $VG "$ND" copy vg-src.img "$VGURL" --key-file key
	expect_ok valgrind-download $VG "$ND" copy "$VGURL" vg-dl.img --key-file key
	cmp -s vg-src.img vg-dl.img && ok "valgrind: round trip identical" ||
		bad "valgrind: round trip differs"
	start_proxy flip s2c "$VG_PORT"
	expect_err valgrind-tampered 11 "authentication" \
		$VG "$ND" copy "netdisk://127.0.0.1:$PX_PORT" vg-x.img --key-file key --timeout 30 \
		--inflight 1m --bs 64k
	stop_proxy
	# A misbehaving server: the connection dies with requests in flight.
	for mode in trickle dup-handle; do
		start_evil "$mode"
		expect_err "valgrind-evil-$mode" 11 "timed out|protocol error" \
			$VG "$ND" copy "netdisk://127.0.0.1:$EV_PORT" vg-x.img --key-file key \
			--timeout 5
		stop_evil
	done
	stop_server VG
	if grep -q '==[0-9]*==' "$T/server-VG.log"; then
		bad "valgrind: server reported errors: $(grep '==' "$T/server-VG.log" | head -5)"
	else
		ok "valgrind: server clean"
	fi
else
	echo "SKIP: valgrind tests (ASan build, valgrind missing or ND_NO_VALGRIND)"
fi

# ------------------------------------------------ 64 concurrent clients
# 64 downloads at once from a read-only export; afterwards the server's fd
# count must return to its idle baseline (no leaked sockets). RSS is only
# reported.
fdcount() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
rss_kib() { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$1/status"; }
# watch_peaks PID RSS FDS CLIENT-PIDS...: samples the server's RSS and fd
# count until every client has ended; rsspk/fdpk get the peaks (from RSS/FDS).
watch_peaks() {
	local srv=$1 p r f running
	rsspk=$2 fdpk=$3
	shift 3
	while :; do
		r=$(rss_kib "$srv"); f=$(fdcount "$srv")
		[ -n "$r" ] && [ "$r" -gt "$rsspk" ] && rsspk=$r
		[ "$f" -gt "$fdpk" ] && fdpk=$f
		running=0
		for p in "$@"; do kill -0 "$p" 2>/dev/null && running=1; done
		[ "$running" -eq 0 ] && break
		sleep 0.05
	done
}
# wait_fds PID FDS: up to 10 s for the server's fd count to fall to FDS.
wait_fds() {
	local i
	for i in $(seq 1 100); do
		[ "$(fdcount "$1")" -le "$2" ] && break
		sleep 0.1
	done
}
head -c 4M /dev/urandom >load.img
start_server LD --file load.img --key-file key --read-only || exit 1
LDURL=netdisk://127.0.0.1:$LD_PORT
fd0=$(fdcount "$LD_PID")
rss0=$(rss_kib "$LD_PID")
pids=""
# --timeout: each request must be answered within it, and 64 sanitizer
# clients pulling 8 MiB each through one server on a busy machine can
# queue longer than the default 30 s; the server is under test here.
for i in $(seq 1 64); do
	timeout -k 5 "$TO" "$ND" copy "$LDURL" "load-$i.img" --key-file key \
		--timeout 100 2>"$T/load-$i.err" &
	pids="$pids $!"
done
# shellcheck disable=SC2086 # $pids: one PID a word
watch_peaks "$LD_PID" "$rss0" "$fd0" $pids
n=0
for p in $pids; do wait "$p" && n=$((n + 1)); done
good=0
for i in $(seq 1 64); do cmp -s load.img "load-$i.img" && good=$((good + 1)); done
[ "$n" -eq 64 ] && [ "$good" -eq 64 ] &&
	ok "load: 64 concurrent downloads, all byte-identical (server fds peak $fdpk)" ||
	bad "load: $n/64 downloads succeeded, $good/64 identical: $(cat "$T"/load-*.err | sort | uniq -c | head -c 300)"
wait_fds "$LD_PID" "$fd0"
fd1=$(fdcount "$LD_PID")
rss1=$(rss_kib "$LD_PID")
[ "$fd1" -eq "$fd0" ] &&
	ok "load: server fds back to idle baseline ($fd0 -> peak $fdpk -> $fd1)" ||
	bad "load: server fds $fd1 after clients left, idle baseline $fd0"
alive LD && ok "load: server alive; RSS ${rss0} KiB idle, ${rsspk} KiB peak, ${rss1} KiB after" ||
	bad "load: server died"
rm -f load-*.img
# 64 clients connected at the same time: each bench runs long enough (20 s)
# for all to overlap even when 64 sanitizer-built clients start slowly.
pids=""
for i in $(seq 1 64); do
	timeout -k 5 "$TO" "$ND" bench "$LDURL" --key-file key --rw randread \
		--bs 4k --iodepth 1 --time 20 >"$T/loadb-$i.out" 2>"$T/loadb-$i.err" &
	pids="$pids $!"
done
# shellcheck disable=SC2086
watch_peaks "$LD_PID" "$rss1" "$fd0" $pids
n=0
for p in $pids; do wait "$p" && n=$((n + 1)); done
[ "$n" -eq 64 ] && [ "$fdpk" -ge $((fd0 + 64)) ] &&
	ok "load: 64 simultaneous bench clients succeeded (server fds peak $fdpk, RSS peak ${rsspk} KiB)" ||
	bad "load: $n/64 bench clients succeeded, server fds peak $fdpk (idle $fd0): $(cat "$T"/loadb-*.err | sort | uniq -c | head -c 300)"
wait_fds "$LD_PID" "$fd0"
fd1=$(fdcount "$LD_PID")
[ "$fd1" -eq "$fd0" ] &&
	ok "load: server fds back to idle baseline after bench clients ($fd1)" ||
	bad "load: server fds $fd1 after bench clients left, idle baseline $fd0"
stop_server LD

# ------------------------------------------------ handshake flood
# 1600 connections that never finish the handshake (silent, garbage, half a
# ClientHello, a whole one and no finish), 200 per second from 127.0.0.2-9
# and from the clients' own 127.0.0.1, held open by the flooder. Meanwhile a
# bench keeps working and new clients keep getting in; the server grows no
# thread per pending handshake, at most its handshake budget (128) in
# descriptors, and logs a few lines and summaries, not one per attempt.
threads() { sed -n 's/^Threads:[[:space:]]*//p' "/proc/$1/status"; }
start_server FL --file rw.img --key-file key --workers 2 || exit 1
FLURL=netdisk://127.0.0.1:$FL_PORT
sleep 0.2
fd0=$(fdcount "$FL_PID")
th0=$(threads "$FL_PID")
log0=$(wc -l <"$FL_LOG")
"$FLOOD" --target "127.0.0.1:$FL_PORT" --count 1600 --rate 200 --hold 1500 \
	--from 127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5,127.0.0.6,127.0.0.7,127.0.0.8,127.0.0.9,127.0.0.1 \
	>"$T/flood.out" 2>"$T/flood.err" &
FLOOD_PID=$!
PIDS="$PIDS $FLOOD_PID"
timeout -k 5 "$TO" "$ND" bench "$FLURL" --key-file key --rw randread --bs 4k \
	--iodepth 4 --time 6 >"$T/flood-bench.out" 2>"$T/flood-bench.err" &
FLB_PID=$!
PIDS="$PIDS $FLB_PID"
rss0=$(rss_kib "$FL_PID")
infos=0 infobad=0 thpk=$th0 fdpk=$fd0 rsspk=$rss0
while kill -0 "$FLOOD_PID" 2>/dev/null; do
	if timeout -k 5 20 "$ND" info "$FLURL" --key-file key >/dev/null \
		2>>"$T/flood-info.err"; then
		infos=$((infos + 1))
	else
		infobad=$((infobad + 1))
	fi
	t=$(threads "$FL_PID"); f=$(fdcount "$FL_PID")
	[ -n "$t" ] && [ "$t" -gt "$thpk" ] && thpk=$t
	[ "$f" -gt "$fdpk" ] && fdpk=$f
	r=$(rss_kib "$FL_PID")
	[ -n "$r" ] && [ "$r" -gt "$rsspk" ] && rsspk=$r
done
wait "$FLOOD_PID"
wait "$FLB_PID"
flb=$?
made=$(sed -n 's/^ndflood: \([0-9]*\) connects.*/\1/p' "$T/flood.out")
echo "   $(cat "$T/flood.out"); server threads $th0 -> peak $thpk, fds $fd0 -> peak $fdpk, RSS $rss0 -> peak $rsspk KiB"
[ "${made:-0}" -ge 1000 ] && ok "flood: ${made} connects" ||
	bad "flood: only '${made}' connects: $(cat "$T/flood.out" "$T/flood.err")"
[ "$flb" -eq 0 ] && ok "flood: a bench ran through it" ||
	bad "flood: bench failed: $(head -c 300 "$T/flood-bench.err")"
[ "$infobad" -eq 0 ] && [ "$infos" -ge 3 ] &&
	ok "flood: $infos new clients got in, none refused" ||
	bad "flood: $infobad of $((infos + infobad)) new clients failed: $(sort "$T/flood-info.err" | uniq -c | head -c 300)"
# bench and one info: 2 threads each; the budget: 128 descriptors.
[ "$thpk" -le $((th0 + 4)) ] && ok "flood: no thread per pending handshake (peak $thpk, idle $th0)" ||
	bad "flood: server threads $th0 -> $thpk"
[ "$fdpk" -le $((fd0 + 128 + 4)) ] && ok "flood: descriptors within the handshake budget (peak $fdpk, idle $fd0)" ||
	bad "flood: server fds $fd0 -> $fdpk, over the budget of 128"
nlog=$(tail -n +"$((log0 + 1))" "$FL_LOG" | grep -vc 'session\|disconnect requested')
[ "$nlog" -le 20 ] && ok "flood: $nlog log lines for $made failed handshakes" ||
	bad "flood: $nlog log lines for $made failed handshakes: $(tail -n 3 "$FL_LOG")"
wait_fds "$FL_PID" "$fd0"
[ "$(fdcount "$FL_PID")" -eq "$fd0" ] && alive FL &&
	ok "flood: server alive, fds back to $fd0" ||
	bad "flood: server fds $(fdcount "$FL_PID") after the flood, idle $fd0"
stop_server FL

# ------------------------------------------------ copy-on-write exports
. "$ROOT/tests/integration/cow.sh"

# ------------------------------------------------ installed system
# netdisktab, netdisk-generator, make install, man pages.
. "$ROOT/tests/integration/install.sh"

finish
