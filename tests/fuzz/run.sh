#!/bin/bash
# Runs every libFuzzer harness built in $FUZZ_O/fuzz for $FUZZ_TIME seconds
# each, starting from the committed seeds in tests/fuzz/corpus/<name>/ (new
# inputs go to $FUZZ_O/corpus/<name>, never into the source tree). Committed
# reproducers of fixed bugs in tests/fuzz/crashes/<name>/ are replayed first.
# Exits non-zero if any harness crashed, hung, leaked or failed an oracle.
# FUZZ_JOBS harnesses (default: the number of CPUs) run at once, each for
# the full time; each one's lines are printed when it ends, in name order.
#
#   FUZZ_O=build-fuzz FUZZ_TIME=60 [FUZZ_JOBS=N] tests/fuzz/run.sh [NAME...]
set -u

FUZZ_O=${FUZZ_O:-build-fuzz}
FUZZ_TIME=${FUZZ_TIME:-60}
SRC=$(cd "$(dirname "$0")" && pwd)
BIN=$FUZZ_O/fuzz

FUZZ_JOBS=${FUZZ_JOBS:-$(nproc)}
case $FUZZ_JOBS in
''|0|*[!0-9]*) echo "run.sh: FUZZ_JOBS must be a positive number" >&2; exit 2 ;;
esac
case $FUZZ_TIME in
''|*[!0-9]*) echo "run.sh: FUZZ_TIME must be a number of seconds" >&2; exit 2 ;;
esac
[ -d "$BIN" ] || { echo "run.sh: no fuzzers in $BIN (run make fuzz-build)" >&2; exit 2; }

if [ $# -gt 0 ]; then
	names="$*"
else
	names=$(cd "$BIN" && ls)
fi
# Each name once (one log, one output file per harness).
names=$(printf '%s\n' $names | awk '!seen[$0]++')

# Largest input per harness: enough for the format, small enough to be fast.
max_len() {
	case $1 in
	url) echo 512 ;;
	keyfile) echo 5000 ;;	# past the 4096-byte key file limit
	cow) echo 12288 ;;	# header, map and a little more
	record|server_hs|server_req) echo 8192 ;;
	*) echo 4096 ;;
	esac
}

# Scratch key files and state dirs of harnesses that died before their cleanup.
clean_scratch() {
	for f in /dev/shm/netdisk-fuzz-key-* /tmp/netdisk-fuzz-key-* \
		 /dev/shm/netdisk-fuzz-state-* /tmp/netdisk-fuzz-state-* \
		 /dev/shm/netdisk-fuzz-conf-* /tmp/netdisk-fuzz-conf-* \
		 /dev/shm/netdisk-fuzz-cow-* /tmp/netdisk-fuzz-cow-*; do
		[ -e "$f" ] || continue
		kill -0 "${f##*-}" 2>/dev/null || rm -rf "$f"
	done
}

# run_one NAME: replays, then fuzzes one harness; prints its result lines
# and returns non-zero if it failed.
run_one() {
	local name=$1 bin=$BIN/$1 work arts log seeds crashes start rc secs \
		execs cov child=
	trap '[ -n "$child" ] && kill "$child" 2>/dev/null; exit 130' INT TERM
	if [ ! -x "$bin" ]; then
		echo "run.sh: no fuzzer $bin" >&2
		return 1
	fi
	work=$FUZZ_O/corpus/$name
	arts=$FUZZ_O/artifacts/$name
	log=$FUZZ_O/logs/$name.log
	mkdir -p "$work" "$arts" "$FUZZ_O/logs"
	seeds=$SRC/corpus/$name
	[ -d "$seeds" ] || seeds=

	# Fixed bugs stay fixed.
	crashes=$SRC/crashes/$name
	if [ -d "$crashes" ] && [ -n "$(ls "$crashes")" ]; then
		if ! "$bin" -runs=1 "$crashes"/* >"$log.replay" 2>&1; then
			echo "FAIL $name: a committed reproducer crashes again (see $log.replay)"
			tail -n 30 "$log.replay"
			return 1
		fi
	fi

	start=$(date +%s)
	# timeout is only a backstop: libFuzzer stops itself at max_total_time
	# and reports inputs that take over -timeout seconds as hangs.
	timeout -k 10 $((FUZZ_TIME + 120)) "$bin" \
		-max_total_time="$FUZZ_TIME" -timeout=20 -rss_limit_mb=2048 \
		-max_len="$(max_len "$name")" -print_final_stats=1 -print_funcs=0 \
		-artifact_prefix="$arts/" "$work" $seeds >"$log" 2>&1 &
	child=$!
	wait "$child"
	rc=$?
	child=
	secs=$(( $(date +%s) - start ))
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
	if [ "$rc" -ne 0 ]; then
		echo "FAIL $name (exit $rc after ${secs}s): log $log"
		grep -E 'ERROR|SUMMARY|oracle|Test unit written|#[0-9]+ *(DONE|pulse)' \
			"$log" | tail -n 8
		echo "  reproduce: $bin $arts/<crash-file>"
		return 1
	fi
	echo "ok   $name: ${execs:-?} inputs in ${secs}s, ${cov:-cov: ?}"
}

# Each harness's lines go to OUT/NAME and its status to OUT/NAME.rc.
OUT=$(mktemp -d)
declare -A pid
on_signal() {
	local p
	for p in "${pid[@]}"; do kill "$p" 2>/dev/null; done
	wait
	rm -rf "$OUT"
	clean_scratch
	exit 130
}
trap on_signal INT TERM
trap 'rm -rf "$OUT"' EXIT

failed=""
for name in $names; do
	while [ "$(jobs -rp | wc -l)" -ge "$FUZZ_JOBS" ]; do wait -n; done
	{ run_one "$name"; echo $? >"$OUT/$name.rc"; } >"$OUT/$name" 2>&1 &
	pid[$name]=$!
done
for name in $names; do
	wait "${pid[$name]}"
	cat "$OUT/$name"
	[ "$(cat "$OUT/$name.rc" 2>/dev/null)" = 0 ] || failed="$failed $name"
done

clean_scratch
if [ -n "$failed" ]; then
	echo "fuzz: FAILED:$failed"
	exit 1
fi
echo "fuzz: all harnesses passed"
