# shellcheck shell=bash
# shellcheck disable=SC2015 # A && ok || bad: ok never fails
# Copy-on-write exports (issue #14), sourced by tests/integration/run.sh
# (its helpers: run, ok, bad, expect_err, expect_ok, start_server, ...):
# identities with overlays of their own over one base, the base untouched,
# restarts, TRIM/WRITE_ZEROES, one session per identity, `netdiskd overlay`
# against a running server and offline, damaged overlays, a changed base,
# many identities at once, a full overlay filesystem (cow_space.sh) and
# the randomized model test (cow_model.sh, tests/tools/ndmodel) with the
# server killed -9 at random moments. All on 127.0.0.1, the real netdiskd and
# netdisk.
#
# ND_IT_ONLY=cow O=build tests/integration/run.sh runs only these
# (ND_IT_ONLY=cow-model: only the model test, cow_model.sh).

C=$T/cow
MODEL=$BIN/tools/ndmodel
KEY=$C/shared.key
mkdir -p "$C"
if [ ! -x "$MODEL" ]; then
	bad "cow: $MODEL missing"
	return 0
fi
echo "== copy-on-write tests: scratch $C"

# ------------------------------------------------------------ helpers
# cow_conf PORT: the configuration, on stdout.
cow_conf() {
	cat <<EOF
; netdisk copy-on-write test
[server]
listen = 127.0.0.1
port = $1
key-file = $KEY
grace = 0
state-dir = $C/state
control = $C/ctl.sock

[export golden]
path = $C/base.img
cow = $C/ov-golden

[export model]
path = $C/model.img
cow = $C/ov-model
EOF
}

# cow_start VAR [PORT]: netdiskd --config on PORT (default: a free one);
# sets ${VAR}_PID, ${VAR}_PORT, ${VAR}_LOG like start_server.
COWN=0
cow_start() {
	local var=$1 port=${2:-0} log pid p=""
	COWN=$((COWN + 1))
	log=$T/cow-$var-$COWN.log
	cow_conf "$port" >"$C/cow.conf"
	$SRV_WRAP "$NDD" --config "$C/cow.conf" 2>"$log" &
	pid=$!
	PIDS="$PIDS $pid"
	for _ in $(seq 1 400); do
		p=$(sed -n 's/.* port \([0-9][0-9]*\).*/\1/p' "$log" | head -n1)
		[ -n "$p" ] && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	if [ -z "$p" ]; then
		bad "cow: start netdiskd ($var): no port in log: $(head -c 300 "$log")"
		return 1
	fi
	eval "${var}_PID=$pid ${var}_PORT=$p ${var}_LOG=$log"
}

# cow_kill VAR: kill -9 and reap.
cow_kill() {
	local pid
	eval "pid=\${${1}_PID:-}"
	[ -n "$pid" ] || return 0
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	eval "${1}_PID="
}

# as ID NAME CMD ARGS...: netdisk CMD ARGS as identity ID (run's RC/OUT/ERR).
as() {
	local id=$1 name=$2 cmd=$3
	shift 3
	run "$name" "$ND" "$cmd" "$@" --identity "$id" --key-file "$KEY"
}

# readback ID FILE [EXPORT]: the identity's whole disk into FILE; 0 on success.
readback() {
	rm -f "$2"
	as "$1" "cow-read-$1-$(basename "$2")" copy "$URL/${3:-golden}" "$2" -q
	[ "$RC" -eq 0 ]
}

# same NAME GOT WANT: GOT must equal WANT byte for byte.
same() {
	if [ ! -f "$2" ]; then
		bad "$1: $2 missing"
	elif cmp -s "$2" "$3"; then
		ok "$1"
	else
		bad "$1: differs: $(cmp "$2" "$3" 2>&1 | head -n1)"
	fi
}

# ov ARGS...: netdiskd overlay ARGS --config (run's RC/OUT/ERR in cow-ov-N).
OVN=0
ov() {
	OVN=$((OVN + 1))
	run "cow-ov-$OVN" "$NDD" overlay "$@" --config "$C/cow.conf"
}

# ov_expect NAME WANT_RC PATTERN ARGS...: `netdiskd overlay ARGS` exits
# WANT_RC; PATTERN (if not empty) must match its output (stdout and
# stderr); an error or usage error (exit 1 or 2) must be one line on stderr.
ov_expect() {
	local name=$1 want=$2 pat=$3
	shift 3
	ov "$@"
	if [ "$RC" -ne "$want" ]; then
		bad "$name: exit $RC, wanted $want: $(head -c 300 "$ERR") $(head -c 300 "$OUT")"
	elif { [ "$want" -eq 1 ] || [ "$want" -eq 2 ]; } &&
	     [ "$(wc -l <"$ERR")" -ne 1 ]; then
		bad "$name: $(wc -l <"$ERR") lines on stderr, wanted 1: $(head -c 300 "$ERR")"
	elif [ -n "$pat" ] && ! cat "$OUT" "$ERR" | grep -qiE -- "$pat"; then
		bad "$name: output lacks /$pat/: $(head -c 300 "$OUT") $(head -c 300 "$ERR")"
	else
		ok "$name (exit $RC)"
	fi
}

# attached ID: true while `netdiskd status` shows a session of ID.
attached() {
	"$NDD" status --config "$C/cow.conf" 2>/dev/null |
		grep -q "^session .*identity=$1 .*export=golden"
}

# cow_wait SECS CMD...: CMD every 0.1 s until it succeeds; 1 if never.
cow_wait() {
	local end=$((SECONDS + $1))
	shift
	while ! "$@"; do
		[ "$SECONDS" -ge "$end" ] && return 1
		sleep 0.1
	done
}

gone() { ! kill -0 "$1" 2>/dev/null; }

# hold ID SECS: a read session of ID for up to SECS seconds (netdisk
# bench) in the background, HOLD_PID; waits until the server shows it.
hold() {
	"$ND" bench "$URL/golden" --identity "$1" --key-file "$KEY" \
		--rw randread --time "$2" --iodepth 1 \
		>"$T/cow-hold-$1.out" 2>"$T/cow-hold-$1.err" &
	HOLD_PID=$!
	PIDS="$PIDS $HOLD_PID"
	cow_wait 20 attached "$1" ||
		bad "cow: no session of $1 after 20 s: $(head -c 300 "$T/cow-hold-$1.err")"
}

# zero_range FILE OFFSET LENGTH: zeros into the expected image FILE.
zero_range() {
	dd if=/dev/zero of="$1" bs=512 seek=$(($2 / 512)) count=$(($3 / 512)) \
		conv=notrunc status=none
}

# ------------------------------------------------------------ the setup
"$ND" keygen "$KEY" >/dev/null 2>&1
head -c 16M /dev/urandom >"$C/base.img"
"$MODEL" fill "$C/model.img" $((8 << 20)) ||
	bad "cow: ndmodel fill failed"
touch -d '2026-01-01 12:00:00.123456789' "$C/base.img"
touch -r "$C/base.img" "$C/base.ref"	# the mtime, to the nanosecond
BASESUM=$(sum "$C/base.img")
MODELSUM=$(sum "$C/model.img")
head -c 3M /dev/urandom >"$C/a.dat"	# alice's data
head -c 5M /dev/urandom >"$C/b.dat"	# bob's
# exp-ID.img: what identity ID must read.
for id in alice bob; do
	cp "$C/base.img" "$C/exp-$id.img"
	dd if="$C/${id:0:1}.dat" of="$C/exp-$id.img" conv=notrunc status=none
done

# damage ID OFFSET HEX [resum]: bob's overlay in ov-golden with the bytes
# at OFFSET replaced, as ID's; resum: the header checksum made to match.
damage() {
	python3 - "$C/ov-golden/bob.ndcow" "$C/ov-golden/$1.ndcow" "$2" "$3" \
		"${4:-}" <<'PY'
import hashlib, sys
src, dst, off, new, resum = sys.argv[1:6]
d = bytearray(open(src, 'rb').read())
off = int(off)
new = bytes.fromhex(new)
d[off:off + len(new)] = new
if resum:
    d[480:512] = hashlib.sha256(bytes(d[:480])).digest()
open(dst, 'wb').write(d)
PY
}
# cow_golden: everything but the model test, on the export golden.
cow_golden() {
	cow_conf 0 >"$C/cow.conf"
	run cow-check-conf "$NDD" --config "$C/cow.conf" --check
	[ "$RC" -eq 0 ] && grep -qE "^cow *= *$C/ov-golden\$" "$OUT" &&
		ok "cow: --check prints cow = DIR" ||
		bad "cow: --check: exit $RC: $(head -c 300 "$ERR") $(grep cow "$OUT")"

	cow_start CW || return 0
	URL=netdisk://127.0.0.1:$CW_PORT

	# ------------------------------------- two identities, one base, a third
	as alice cow-write-alice copy "$C/a.dat" "$URL/golden" -q
	[ "$RC" -eq 0 ] && ok "cow: alice writes 3 MiB" ||
		bad "cow: alice's write: exit $RC: $(head -c 300 "$ERR")"
	as bob cow-write-bob copy "$C/b.dat" "$URL/golden" -q
	[ "$RC" -eq 0 ] && ok "cow: bob writes 5 MiB" ||
		bad "cow: bob's write: exit $RC: $(head -c 300 "$ERR")"
	readback alice "$C/alice.out" && same "cow: alice reads her own data over the base" \
		"$C/alice.out" "$C/exp-alice.img" || bad "cow: alice's read: $(head -c 300 "$ERR")"
	readback bob "$C/bob.out" && same "cow: bob reads his own data over the base" \
		"$C/bob.out" "$C/exp-bob.img" || bad "cow: bob's read: $(head -c 300 "$ERR")"
	readback carol "$C/carol.out" && same "cow: carol (never wrote) reads the base" \
		"$C/carol.out" "$C/base.img" || bad "cow: carol's read: $(head -c 300 "$ERR")"
	[ "$(sum "$C/base.img")" = "$BASESUM" ] && ok "cow: the base is unchanged" ||
		bad "cow: the base file changed"
	if [ -f "$C/ov-golden/alice.ndcow" ] && [ -f "$C/ov-golden/bob.ndcow" ]; then
		ok "cow: overlays ov-golden/alice.ndcow and bob.ndcow"
	else
		bad "cow: overlay files: $(find "$C/ov-golden" 2>&1 | head -c 300)"
	fi
	[ "$(stat -c %a "$C/ov-golden" 2>/dev/null)" = 700 ] &&
		ok "cow: the overlay directory was created 0700" ||
		bad "cow: overlay directory mode $(stat -c %a "$C/ov-golden" 2>&1)"
	# A session's info: read-write, the base's size, exclusive.
	as alice cow-info-alice info "$URL/golden"
	[ "$RC" -eq 0 ] && grep -q "16777216\|16 MiB\|16.0 MiB" "$OUT" &&
		ok "cow: info shows the base's size" ||
		bad "cow: info: exit $RC: $(head -c 300 "$OUT") $(head -c 300 "$ERR")"

	# ---------------------------------------------- TRIM and WRITE_ZEROES
	# Partial clusters at both ends, inside alice's data and in base-only space:
	# each range reads zeros, not the base.
	URLG=$URL/golden
	zr() {	# zr NAME OP OFFSET LENGTH [--fua]
		local name=$1 op=$2 off=$3 len=$4
		shift 4
		run "$name" "$MODEL" op "$URLG" --identity alice --key-file "$KEY" "$@" \
			"$op" "$off" "$len"
		[ "$RC" -eq 0 ] || bad "$name: exit $RC: $(head -c 300 "$ERR")"
		zero_range "$C/exp-alice.img" "$off" "$len"
	}
	zr cow-zeroes-partial zeroes $((1048576 + 512)) 65536
	zr cow-trim-partial trim $((2097152 + 1024)) 102400
	zr cow-zeroes-base zeroes $((6 << 20)) 8192 --fua
	zr cow-trim-base trim $((8 << 20)) $((1 << 20))
	zr cow-trim-base-partial trim $((10 << 20 + 3584)) 1536
	readback alice "$C/alice.out" && same "cow: TRIM and WRITE_ZEROES read as zeros (not the base)" \
		"$C/alice.out" "$C/exp-alice.img" || bad "cow: alice's read: $(head -c 300 "$ERR")"
	readback bob "$C/bob.out" && same "cow: bob's disk unaffected by alice's TRIM" \
		"$C/bob.out" "$C/exp-bob.img"

	# --------------------------------------------- one session per identity
	hold alice 60
	expect_err cow-busy-second-session 5 "busy" "$ND" copy "$URLG" "$C/x.out" \
		--identity alice --key-file "$KEY" -q
	readback bob "$C/bob.out" && same "cow: bob works while alice's session lasts" \
		"$C/bob.out" "$C/exp-bob.img" || bad "cow: bob blocked by alice: $(head -c 300 "$ERR")"

	# ------------------------------------ netdiskd overlay, server running
	ov_expect cow-ov-list-running 0 "alice" list golden
	if grep -E "(^|[^a-z])alice([^a-z]|$)" "$OUT" | grep -q "attached=yes" &&
	   grep -E "(^|[^a-z])bob([^a-z]|$)" "$OUT" | grep -q "attached=no"; then
		ok "cow: overlay list: alice attached, bob not"
	else
		bad "cow: overlay list: $(head -c 600 "$OUT")"
	fi
	grep -qE "(^|[^a-z])carol([^a-z]|$)" "$OUT" &&
		ok "cow: overlay list shows carol's (read-only use) overlay" ||
		bad "cow: overlay list lacks carol: $(head -c 600 "$OUT")"
	ov_expect cow-ov-reset-attached 1 "attach|session|in use|busy" reset golden alice
	ov_expect cow-ov-merge-attached 1 "attach|session|in use|busy" \
		merge golden alice "$C/merged-alice.img"
	[ ! -e "$C/merged-alice.img" ] && ok "cow: refused merge wrote nothing" ||
		bad "cow: refused merge left $C/merged-alice.img"
	ov_expect cow-ov-check-attached 1 "attach|session|in use|busy" check golden alice
	ov_expect cow-ov-check-bob 0 "consistent" check golden bob
	ov_expect cow-ov-merge-bob 0 "" merge golden bob "$C/merged-bob.img"
	same "cow: merged image of bob = what bob reads" "$C/merged-bob.img" "$C/bob.out"
	ov_expect cow-ov-merge-exists 1 "exist" merge golden bob "$C/merged-bob.img"
	ov_expect cow-ov-merge-no-export 1 "export|model-none" merge model-none bob "$C/m.img"
	ov_expect cow-ov-bad-identity 2 "identity|name|invalid" check golden "../bob"
	ov_expect cow-ov-usage 2 "usage|overlay" frobnicate golden
	[ "$(sum "$C/base.img")" = "$BASESUM" ] && ok "cow: base unchanged after merge" ||
		bad "cow: merge changed the base"
	# reset --force ends alice's session first.
	ov_expect cow-ov-reset-force 0 "" reset golden alice --force
	if cow_wait 10 gone "$HOLD_PID"; then
		wait "$HOLD_PID"
		hrc=$?
		[ "$hrc" -ne 0 ] && ok "cow: reset --force ended alice's session (bench exit $hrc)" ||
			bad "cow: alice's bench survived the forced reset"
	else
		bad "cow: alice's session still running 10 s after reset --force"
	fi
	readback alice "$C/alice.out" && same "cow: after reset alice reads the base" \
		"$C/alice.out" "$C/base.img"
	ov_expect cow-ov-reset-idle 0 "" reset golden carol
	ov list golden
	! grep -qE "(^|[^a-z])carol([^a-z]|$)" "$OUT" && ok "cow: carol's overlay gone after reset" ||
		bad "cow: carol still listed after reset: $(head -c 300 "$OUT")"

	# Many identities at once: each writes its own 256 KiB, then all read.
	# A stale IDENTITY.ndcow.tmp (a crash during a creation) is no obstacle.
	head -c 1M /dev/urandom >"$C/ov-golden/many-0.ndcow.tmp"
	many=(0 1 2 3 4 5 6 7 8 9 10 11)
	for i in "${many[@]}"; do
		head -c 256K /dev/urandom >"$C/many-$i.dat"
		"$ND" copy "$C/many-$i.dat" "$URLG" --identity "many-$i" \
			--key-file "$KEY" -q 2>"$T/cow-many-w$i.err" &
		pids[i]=$!
	done
	nfail=0
	for i in "${many[@]}"; do wait "${pids[i]}" || nfail=$((nfail + 1)); done
	for i in "${many[@]}"; do
		"$ND" copy "$URLG" "$C/many-$i.out" --identity "many-$i" \
			--key-file "$KEY" -q 2>"$T/cow-many-r$i.err" &
		pids[i]=$!
	done
	for i in "${many[@]}"; do wait "${pids[i]}" || nfail=$((nfail + 1)); done
	nbad=0
	for i in "${many[@]}"; do
		cp "$C/base.img" "$C/many-exp.img"
		dd if="$C/many-$i.dat" of="$C/many-exp.img" conv=notrunc status=none
		cmp -s "$C/many-$i.out" "$C/many-exp.img" || nbad=$((nbad + 1))
		rm -f "$C/many-$i.out"
	done
	[ "$nfail" -eq 0 ] && [ "$nbad" -eq 0 ] &&
		ok "cow: ${#many[@]} identities at once, each reads its own data" ||
		bad "cow: ${#many[@]} identities at once: $nfail copies failed, $nbad read wrong data: $(cat "$T"/cow-many-*.err | head -c 300)"

	# Alice's data again, for the restarts.
	cp "$C/base.img" "$C/exp-alice.img"
	dd if="$C/a.dat" of="$C/exp-alice.img" conv=notrunc status=none
	as alice cow-write-alice2 copy "$C/a.dat" "$URLG" -q
	[ "$RC" -eq 0 ] || bad "cow: alice's second write: exit $RC: $(head -c 300 "$ERR")"

	# ----------------------------------------------------------- restarts
	check_all() {	# check_all WHEN
		readback alice "$C/alice.out" && same "cow: $1: alice reads hers" \
			"$C/alice.out" "$C/exp-alice.img" || bad "cow: $1: alice: $(head -c 300 "$ERR")"
		readback bob "$C/bob.out" && same "cow: $1: bob reads his" \
			"$C/bob.out" "$C/exp-bob.img" || bad "cow: $1: bob: $(head -c 300 "$ERR")"
		readback dave "$C/dave.out" && same "cow: $1: dave reads the base" \
			"$C/dave.out" "$C/base.img" || bad "cow: $1: dave: $(head -c 300 "$ERR")"
	}
	stop_server CW
	cow_start CW "$CW_PORT" || return 0
	check_all "after a restart"
	cow_kill CW
	cow_start CW "$CW_PORT" || return 0
	check_all "after kill -9"
	[ "$(sum "$C/base.img")" = "$BASESUM" ] && ok "cow: the base is unchanged after restarts" ||
		bad "cow: the base file changed"

	# ------------------------------------------------------------ reload
	# A reload moving golden's overlays to another directory closes the
	# sessions of all its overlays; the identities start from the base in
	# the new one, the old overlays untouched; moving back restores them.
	reload_to() {	# reload_to DIR WHAT
		local mark
		mark=$(wc -l <"$CW_LOG")
		sed -i "s#^cow = $C/ov-golden.*#cow = $1#" "$C/cow.conf"
		kill -HUP "$CW_PID"
		if cow_wait 30 eval "tail -n +$((mark + 1)) \"\$CW_LOG\" | grep -q 'reload of .* applied'"; then
			ok "cow: reload: $2"
		else
			bad "cow: reload ($2) not applied: $(tail -n +$((mark + 1)) "$CW_LOG" | head -c 300)"
		fi
	}
	hold alice 60
	reload_to "$C/ov-golden2" "golden's cow directory changed"
	if cow_wait 15 gone "$HOLD_PID"; then
		ok "cow: reload: alice's session closed"
	else
		bad "cow: reload: alice's session survived the change of directory"
		kill "$HOLD_PID" 2>/dev/null
	fi
	wait "$HOLD_PID" 2>/dev/null
	alicesum=$(sum "$C/ov-golden/alice.ndcow")
	readback alice "$C/alice.out" && same "cow: reload: alice starts from the base in the new directory" \
		"$C/alice.out" "$C/base.img" || bad "cow: reload: alice: $(head -c 300 "$ERR")"
	[ -f "$C/ov-golden2/alice.ndcow" ] && [ "$(sum "$C/ov-golden/alice.ndcow")" = "$alicesum" ] &&
		ok "cow: reload: a new overlay in the new directory, the old one untouched" ||
		bad "cow: reload: overlays: $(find "$C/ov-golden2" 2>&1 | head -c 200)"
	reload_to "$C/ov-golden" "golden's cow directory back"
	readback alice "$C/alice.out" && same "cow: reload: back in the old directory alice reads hers" \
		"$C/alice.out" "$C/exp-alice.img" || bad "cow: reload back: alice: $(head -c 300 "$ERR")"

	# ------------------------------------------------------- a changed base
	# The base's mtime moves on (contents kept): alice's and bob's overlays are
	# refused with status 16 (CLI exit 13) and a log line; a new identity gets
	# a fresh overlay; the old mtime back, everything is served again.
	touch -d '2026-02-02 12:00:00' "$C/base.img"
	mark=$(wc -l <"$CW_LOG")
	expect_err cow-base-changed 13 "base.*changed" "$ND" copy "$URLG" "$C/x.out" \
		--identity alice --key-file "$KEY" -q
	if tail -n +"$((mark + 1))" "$CW_LOG" | grep -i "base" | grep -qi "alice.ndcow"; then
		ok "cow: the log names the overlay whose base changed"
	else
		bad "cow: no log line naming alice.ndcow: $(tail -n +"$((mark + 1))" "$CW_LOG" | head -c 400)"
	fi
	readback erin "$C/erin.out" && same "cow: a new identity is served the changed base" \
		"$C/erin.out" "$C/base.img" || bad "cow: erin refused: $(head -c 300 "$ERR")"
	ov_expect cow-ov-check-base-changed 4 "base" check golden bob
	touch -r "$C/base.ref" "$C/base.img"
	readback alice "$C/alice.out" && same "cow: the old base back: alice's data intact" \
		"$C/alice.out" "$C/exp-alice.img" || bad "cow: alice after the base came back: $(head -c 300 "$ERR")"

	# --------------------------------------------- netdiskd overlay offline
	stop_server CW
	ov_expect cow-ov-list-offline 0 "alice" list golden
	grep -E "(^|[^a-z])alice([^a-z]|$)" "$OUT" | grep -q "attached=yes" &&
		bad "cow: offline list shows alice attached: $(head -c 300 "$OUT")" ||
		ok "cow: offline list: nobody attached"
	ov_expect cow-ov-check-offline 0 "consistent" check golden alice
	ov_expect cow-ov-merge-offline 0 "" merge golden alice "$C/merged-alice.img"
	same "cow: offline merge of alice = what alice reads" "$C/merged-alice.img" "$C/alice.out"
	# Damage, each kind on a copy of bob's overlay (the header does not name
	# the identity): check exits 4 and says what; the server refuses it.
	damage dave 0 4e resum		# the same byte: an intact copy
	ov_expect cow-ov-check-copy 0 "consistent" check golden dave
	damage d-usage 4200 ff		# the usage record: informational only
	ov_expect cow-ov-check-usage 0 "consistent" check golden d-usage
	damage d-magic 0 00 resum
	damage d-version 8 02000000 resum
	damage d-sum 200 01		# a reserved byte: the header checksum fails
	damage d-flags 12 01000000 resum	# an unknown incompatible feature
	damage d-bits 20 15000000 resum	# cluster_bits 21
	damage d-map3 8192 ff		# map value 3 for clusters 0..3
	cp "$C/ov-golden/bob.ndcow" "$C/ov-golden/d-short.ndcow"
	truncate -s 8192 "$C/ov-golden/d-short.ndcow"
	for d in "d-magic:magic" "d-version:version" "d-sum:checksum" \
		 "d-flags:feature|flag" "d-bits:cluster" "d-map3:map|3" \
		 "d-short:short|length|size"; do
		ov_expect "cow-ov-check-${d%%:*}" 4 "damaged.*(${d#*:})" check golden "${d%%:*}"
	done
	ov_expect cow-ov-check-none 1 "no overlay|nobody" check golden nobody
	ov_expect cow-ov-reset-offline 0 "" reset golden dave
	[ ! -e "$C/ov-golden/dave.ndcow" ] && ok "cow: offline reset removed dave's overlay" ||
		bad "cow: dave.ndcow still there"

	cow_start CW "$CW_PORT" || return 0
	for d in d-magic d-map3 d-short; do
		expect_err "cow-serve-$d" nz "I/O|error" "$ND" copy "$URLG" "$C/x.out" \
			--identity "$d" --key-file "$KEY" -q
	done
	grep -qi "d-map3.ndcow" "$CW_LOG" && ok "cow: the log names the damaged overlay" ||
		bad "cow: no log line naming d-map3.ndcow: $(tail -n 5 "$CW_LOG")"
	readback d-usage "$C/d-usage.out" && same "cow: a damaged usage record is served" \
		"$C/d-usage.out" "$C/exp-bob.img" || bad "cow: d-usage refused: $(head -c 300 "$ERR")"
	readback bob "$C/bob.out" && same "cow: bob unaffected by damaged overlays" \
		"$C/bob.out" "$C/exp-bob.img"

	# ------------------------------------------------- the one-export form
	stop_server CW
	start_server C1 --file "$C/base.img" --cow "$C/ov-one" --key-file "$KEY" || return 0
	URL1=netdisk://127.0.0.1:$C1_PORT
	run cow-one-write "$ND" copy "$C/b.dat" "$URL1" --identity bob --key-file "$KEY" -q
	run cow-one-read "$ND" copy "$URL1" "$C/one-bob.out" --identity bob --key-file "$KEY" -q
	same "cow: --cow DIR: bob reads his data" "$C/one-bob.out" "$C/exp-bob.img"
	run cow-one-read2 "$ND" copy "$URL1" "$C/one-frank.out" --identity frank --key-file "$KEY" -q
	same "cow: --cow DIR: frank reads the base" "$C/one-frank.out" "$C/base.img"
	[ -f "$C/ov-one/bob.ndcow" ] && ok "cow: --cow DIR keeps bob's overlay in DIR" ||
		bad "cow: no $C/ov-one/bob.ndcow"
	stop_server C1
}

. "$ROOT/tests/integration/cow_space.sh"
if [ "${ND_IT_ONLY:-}" != cow-model ]; then
	cow_golden
	cow_space
fi
. "$ROOT/tests/integration/cow_model.sh"
