# shellcheck shell=bash
# shellcheck disable=SC2046 # $(nd_id ID): the options, one a word
# shellcheck disable=SC2015 # A && ok || bad: ok never fails
# netdiskd as a service (issue #13), sourced by tests/integration/run.sh
# (its helpers: run, ok, bad, expect_err, expect_ok, start_server, ...):
# the configuration file and --check, identities with their own keys and a
# shared key, per-export access, what a prober can tell apart, read-write
# exclusivity per export, `netdisk exports`, `netdiskd status`, and SIGHUP
# reloads while clients keep copying data. All on 127.0.0.1, the real
# netdiskd and netdisk; tests/tools/ndprobe.py speaks the handshake itself
# to count the bytes a prober gets.
#
# ND_IT_ONLY=service O=build tests/integration/run.sh runs only these.

S=$T/svc
PROBE=$ROOT/tests/tools/ndprobe.py
mkdir -p "$S/clients" "$S/ck" "$S/old"
echo "== service tests (config file, identities, reload): scratch $S"

# ------------------------------------------------------------ helpers
# svc_start VAR CONF: netdiskd --config CONF in the background; sets
# ${VAR}_PID, ${VAR}_PORT and ${VAR}_LOG like start_server.
svc_start() {
	local var=$1 conf=$2 log=$T/svc-$1.log pid port i
	$SRV_WRAP "$NDD" --config "$conf" 2>"$log" &
	pid=$!
	PIDS="$PIDS $pid"
	port=""
	for i in $(seq 1 400); do
		port=$(sed -n 's/.* port \([0-9][0-9]*\).*/\1/p' "$log" | head -n1)
		[ -n "$port" ] && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	if [ -z "$port" ]; then
		bad "start netdiskd --config $conf ($var): no port in log: $(head -c 300 "$log")"
		return 1
	fi
	eval "${var}_PID=$pid ${var}_PORT=$port ${var}_LOG=$log"
}

# wait_for SECS CMD...: runs CMD every 0.1 s until it succeeds; 1 if it
# never did within SECS.
wait_for() {
	local end=$((SECONDS + $1))
	shift
	while ! "$@" >/dev/null 2>&1; do
		[ "$SECONDS" -ge "$end" ] && return 1
		sleep 0.1
	done
}

# nd_id ID: the netdisk options of identity ID with its key (the client's
# copy in $S/ck: the server's key-dir files change mode and go away).
nd_id() { echo "--identity $1 --key-file $S/ck/$1.key"; }

# nd_as NAME ID KEYFILE CMD ARGS...: netdisk CMD ARGS as identity ID
# (run's RC/OUT/ERR).
nd_as() {
	local name=$1 id=$2 key=$3 cmd=$4
	shift 4
	run "$name" "$ND" "$cmd" "$@" --identity "$id" --key-file "$key"
}

# log_mark VAR / log_since VAR MARK: the server log's lines after MARK.
log_mark() { eval "wc -l <\"\$${1}_LOG\""; }
log_since() { eval "tail -n +\$((\$2 + 1)) \"\$${1}_LOG\""; }

# expect_conf_err NAME CONF LINE PATTERN [ARGS...]: `netdiskd --config CONF
# --check ARGS` must exit 1 with one line "CONF:LINE: ..." matching PATTERN
# (LINE a regex), nothing on stdout.
expect_conf_err() {
	local name=$1 conf=$2 line=$3 pat=$4
	shift 4
	run "$name" "$NDD" --config "$conf" --check "$@"
	if [ "$RC" -ne 1 ]; then
		bad "$name: exit $RC, wanted 1 ($(head -c 300 "$ERR"))"
	elif [ "$(wc -l <"$ERR")" -ne 1 ]; then
		bad "$name: $(wc -l <"$ERR") lines on stderr, wanted 1: $(head -c 300 "$ERR")"
	elif ! grep -qE "^(netdiskd: )?$conf:($line): " "$ERR"; then
		bad "$name: wanted '$conf:$line: ...', got: $(cat "$ERR")"
	elif ! grep -qiE -- "$pat" "$ERR"; then
		bad "$name: message lacks /$pat/: $(cat "$ERR")"
	elif [ -s "$OUT" ]; then
		bad "$name: printed a configuration: $(head -c 200 "$OUT")"
	else
		ok "$name (exit 1: $(cat "$ERR"))"
	fi
}

# probe NAME PORT ID,EXPORT,KEYFILE[,list]...: ndprobe's lines, one per
# probe, in $T/NAME.out; the first in PR.
probe() {
	local name=$1
	shift
	timeout -k 5 60 python3 "$PROBE" 127.0.0.1 "$@" >"$T/$name.out" 2>"$T/$name.err"
	PR=$(head -n1 "$T/$name.out")
}

# ------------------------------------------------------------ the setup
# Five identities with keys of their own (key-dir), two exports: boot
# (read-only, alice, carol and the kiosk-* pattern) and data (read-write,
# alice and bob). mallory has no key at all.
for id in alice bob carol kiosk-1 kiosk-9; do
	"$ND" keygen "$S/clients/$id.key" >/dev/null 2>&1
	cp -p "$S/clients/$id.key" "$S/ck/$id.key"
done
"$ND" keygen "$S/wrong.key" >/dev/null 2>&1
"$ND" keygen "$S/shared.key" >/dev/null 2>&1
head -c 8M /dev/urandom >"$S/boot.img"
head -c 16M /dev/urandom >"$S/data.img"
truncate -s 4M "$S/extra.img" "$S/ghost.img"
head -c 2M /dev/urandom >"$S/up-0.img"
head -c 2M /dev/urandom >"$S/up-1.img"
BOOTSUM=$(sum "$S/boot.img")

# conf_server: the [server] section of the main server.
conf_server() {
	cat <<EOF
; netdisk service test: the main server
[server]
listen = 127.0.0.1
port = 0
key-dir = $S/clients
grace = 0
state-dir = $S/state
control = $S/ctl.sock
EOF
}
conf_boot() {
	cat <<EOF

[export boot]
path = $S/boot.img
read-only = yes
clients = alice carol kiosk-*
EOF
}
conf_data() {
	cat <<EOF

[export data]
path = $S/data.img
clients = ${1:-alice bob}
EOF
}
conf_extra() {
	cat <<EOF

[export extra]
path = $S/extra.img
read-only = no
clients = alice
EOF
}
CONF=$S/main.conf
{ conf_server; conf_boot; conf_data; } >"$CONF"

# ------------------------------------------------------------ --check
run svc-check-good "$NDD" --config "$CONF" --check
if [ "$RC" -ne 0 ]; then
	bad "check-good: exit $RC: $(head -c 300 "$ERR")"
elif grep -q '^\[export boot\]' "$OUT" && grep -q '^\[export data\]' "$OUT" &&
     grep -qE "^path *= *$S/boot.img\$" "$OUT" &&
     grep -qE '^read-only *= *(yes|true|on|1)$' "$OUT" &&
     grep -qE '^read-only *= *(no|false|off|0)$' "$OUT" &&
     grep -qE '^clients *= *alice carol kiosk-\*$' "$OUT" &&
     grep -qE '^(workers|max-payload|grace|log-level|port) *=' "$OUT" &&
     grep -q '5 identities' "$OUT"; then
	ok "check-good: exit 0, the effective configuration (exports, defaults, 5 identities)"
else
	bad "check-good: output lacks exports/defaults/identities: $(head -c 600 "$OUT")"
fi
leak=""
for k in "$S"/clients/*.key; do
	grep -qiF "$(cat "$k")" "$OUT" "$ERR" && leak="$leak $k"
done
[ "$RC" -eq 0 ] && [ -z "$leak" ] && ok "check-good: no key printed"
[ -n "$leak" ] && bad "check-good: key material printed:$leak"

# Each kind of bad configuration: one line FILE:LINE: message, exit 1.
# bad_conf NAME LINE PATTERN: the config on stdin, checked.
bad_conf() {
	cat >"$S/$1.conf"
	expect_conf_err "check-$1" "$S/$1.conf" "$2" "$3"
}
KD=$S/clients
printf '[server]\nkey-dir = %s\nfrobnicate = 1\n[export a]\npath = %s\n' \
	"$KD" "$S/boot.img" | bad_conf unknown-key 3 "frobnicate|unknown"
printf '[server]\nkey-dir = %s\n[export a]\npath = %s\ncolour = blue\n' \
	"$KD" "$S/boot.img" | bad_conf unknown-export-key 5 "colour|unknown"
printf '[server]\nkey-dir = %s\n[exports]\npath = %s\n' \
	"$KD" "$S/boot.img" | bad_conf unknown-section '3|4' "exports|section"
printf '[server]\nkey-dir = %s\n[export a]\npath = %s\nread-only = maybe\n' \
	"$KD" "$S/boot.img" | bad_conf bad-bool 5 "maybe|read-only"
printf '[server]\nport = 70000\nkey-dir = %s\n[export a]\npath = %s\n' \
	"$KD" "$S/boot.img" | bad_conf bad-port 2 "port|70000"
printf '[server]\nworkers = lots\nkey-dir = %s\n[export a]\npath = %s\n' \
	"$KD" "$S/boot.img" | bad_conf bad-workers 2 "workers|lots"
printf '[server]\nmax-payload = 1000\nkey-dir = %s\n[export a]\npath = %s\n' \
	"$KD" "$S/boot.img" | bad_conf bad-max-payload 2 "payload|1000"
printf '[server]\nkey-dir = %s\n[export a]\npath = %s/nonexistent.img\n' \
	"$KD" "$S" | bad_conf missing-path 4 "nonexistent.img"
printf '[server]\nkey-dir = %s\n[export a]\nread-only = yes\n' \
	"$KD" | bad_conf no-path '0|3' "path"
printf '[server]\nkey-dir = %s\n[export a]\npath = %s\n[export a]\npath = %s\n' \
	"$KD" "$S/boot.img" "$S/data.img" | bad_conf duplicate-export '5|6' "duplicate|twice|already"
printf '[server]\nkey-dir = %s\n[export a]\npath = %s\npath = %s\n' \
	"$KD" "$S/boot.img" "$S/data.img" | bad_conf duplicate-key 5 "duplicate|twice|already|path"
printf '[server]\nkey-dir = %s\n[export bad/name]\npath = %s\n' \
	"$KD" "$S/boot.img" | bad_conf bad-export-name '3|4' "name"
printf '[server]\nkey-dir = %s\n[export a]\npath = %s\nclients = alice kiosk-[\n' \
	"$KD" "$S/boot.img" | bad_conf bad-pattern 5 "pattern|kiosk-\\["
printf '[server]\nkey-dir = %s\nthis line is no ini\n[export a]\npath = %s\n' \
	"$KD" "$S/boot.img" | bad_conf syntax 3 "syntax|parse|="
printf '[server]\nport = 1\n' | bad_conf no-export 0 "export"
printf '[server]\nport = 0\n[export a]\npath = %s\n' \
	"$S/boot.img" | bad_conf no-key 0 "key"
printf '[server]\nkey-dir = %s/nonexistent\n[export a]\npath = %s\n' \
	"$S" "$S/boot.img" | bad_conf missing-key-dir 2 "nonexistent"
# Key files: unsafe modes, bad contents, never echoed.
cp "$S/shared.key" "$S/shared644.key" && chmod 644 "$S/shared644.key"
printf '[server]\nkey-file = %s\n[export a]\npath = %s\n' \
	"$S/shared644.key" "$S/boot.img" | bad_conf key-file-mode 2 "mode|permission|shared644"
cp "$S/shared.key" "$S/shared640.key" && chmod 640 "$S/shared640.key"
printf '[server]\nkey-file = %s\n[export a]\npath = %s\n' \
	"$S/shared640.key" "$S/boot.img" | bad_conf key-file-mode-group 2 "mode|permission|shared640"
mkdir -p "$S/kd644"
cp "$S/clients/alice.key" "$S/kd644/alice.key"
cp "$S/clients/bob.key" "$S/kd644/bob.key" && chmod 644 "$S/kd644/bob.key"
printf '[server]\nkey-dir = %s\n[export a]\npath = %s\n' \
	"$S/kd644" "$S/boot.img" | bad_conf key-dir-mode 2 "bob.key"
badhex=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeX
echo "$badhex" >"$S/badhex.key" && chmod 600 "$S/badhex.key"
printf '[server]\nkey-file = %s\n[export a]\npath = %s\n' \
	"$S/badhex.key" "$S/boot.img" | bad_conf key-file-content 2 "hex|badhex.key|key"
grep -qF 0123456789abcdef "$T/check-key-file-content.err" &&
	bad "check-key-file-content: the key's text was echoed"
# A bad config stops a real start the same way; a missing file too;
# --config with the one-export options is a usage error.
run svc-start-bad "$NDD" --config "$S/bad-port.conf"
[ "$RC" -eq 1 ] && [ "$(wc -l <"$ERR")" -eq 1 ] &&
	grep -qE "$S/bad-port.conf:2: " "$ERR" &&
	ok "start with a bad config: exit 1, $(cat "$ERR")" ||
	bad "start with a bad config: exit $RC: $(head -c 300 "$ERR")"
run svc-missing-conf "$NDD" --config "$S/nonexistent.conf" --check
[ "$RC" -eq 1 ] && [ "$(wc -l <"$ERR")" -eq 1 ] &&
	grep -q "nonexistent.conf" "$ERR" &&
	ok "missing config file: exit 1, $(cat "$ERR")" ||
	bad "missing config file: exit $RC: $(head -c 300 "$ERR")"
run svc-config-and-file "$NDD" --config "$CONF" --file "$S/boot.img"
[ "$RC" -eq 2 ] && [ "$(wc -l <"$ERR")" -eq 1 ] &&
	! grep -q "unknown option '--config'" "$ERR" &&
	ok "--config with --file: exit 2, $(cat "$ERR")" ||
	bad "--config with --file: exit $RC, wanted 2: $(head -c 300 "$ERR")"

# ------------------------------------------------------------ serve it
svc_start M "$CONF" || return 0
U=netdisk://127.0.0.1:$M_PORT

# Access per export: allowed, denied, allowed by pattern.
nd_as acc-alice-boot alice "$S/ck/alice.key" copy "$U/boot" "$S/dl-alice.img"
[ "$RC" -eq 0 ] && [ "$(sum "$S/dl-alice.img")" = "$BOOTSUM" ] &&
	ok "access: alice reads boot, byte-identical" ||
	bad "access: alice boot: exit $RC: $(head -c 300 "$ERR")"
expect_ok acc-alice-data "$ND" info "$U/data" $(nd_id alice)
expect_ok acc-bob-data-upload "$ND" copy "$S/up-0.img" "$U/data" $(nd_id bob)
head -c 2M "$S/data.img" | cmp -s - "$S/up-0.img" &&
	ok "access: bob's upload to data landed" || bad "access: bob's upload to data differs"
expect_ok acc-kiosk-pattern "$ND" info "$U/boot" $(nd_id kiosk-9)
mark=$(log_mark M)
expect_err acc-bob-boot-denied 12 "access denied" "$ND" info "$U/boot" $(nd_id bob)
ACCESS_RC=12	# netdisk: exit 12 for status 15
log_since M "$mark" | grep -qiE 'bob.*(not allowed|access denied)|(not allowed|access denied).*bob' &&
	ok "access: the log says bob is not allowed on boot" ||
	bad "access: no log line for bob denied on boot: $(log_since M "$mark" | head -c 300)"
expect_err acc-kiosk-data-denied "$ACCESS_RC" "access denied" "$ND" copy "$S/up-0.img" "$U/data" $(nd_id kiosk-1)
expect_err acc-carol-data-denied "$ACCESS_RC" "access denied" "$ND" copy "$U/data" "$S/x.img" $(nd_id carol)
before=$(sum "$S/data.img")
expect_err acc-denied-bench-write "$ACCESS_RC" "access denied" \
	"$ND" bench "$U/data" $(nd_id kiosk-1) --rw write --time 1
[ "$(sum "$S/data.img")" = "$before" ] && ok "access: denied writers changed nothing" ||
	bad "access: data changed by a denied identity"

# No such export (8) vs access denied, for a client with a valid key.
mark=$(log_mark M)
expect_err nx-alice 8 "no such export" "$ND" info "$U/nope" $(nd_id alice)
log_since M "$mark" | grep -q "no such export" &&
	ok "no such export: logged" || bad "no such export: not logged"

# Wrong key, unknown identity, not allowed: to a client without a valid key
# all the same (exit code and message), whatever the export.
declare -A seen=()
mark=$(log_mark M)
for c in "alice wrong boot" "alice wrong nope" "mallory alice boot" \
	 "mallory wrong boot" "mallory alice nope" "bob wrong boot" \
	 "bob alice data"; do
	read -r id key ex <<<"$c"
	kf=$S/ck/$key.key
	[ "$key" = wrong ] && kf=$S/wrong.key
	nd_as "indist-$id-$key-$ex" "$id" "$kf" info "$U/$ex"
	seen["$RC $(sed "s|/$ex\b|/EXPORT|g" "$ERR")"]+="$id/$key/$ex "
done
if [ "${#seen[@]}" -eq 1 ] && [ "$RC" -eq 4 ] &&
   grep -q "authentication failed" "$ERR"; then
	ok "indistinguishable: wrong key, unknown identity, on any export: exit 4, $(cat "$ERR")"
else
	msg=""
	for k in "${!seen[@]}"; do msg="$msg [${seen[$k]}-> $k]"; done
	bad "indistinguishable: the client sees different answers:$msg"
fi
unset seen
# The server knows which it was.
since=$(log_since M "$mark")
if [ "$(echo "$since" | grep -ci "unknown identity")" -eq 3 ]; then
	ok "indistinguishable: the log names the 3 unknown identities"
else
	bad "indistinguishable: log lines for unknown identity (3 wanted): $(echo "$since" | head -c 400)"
fi
[ "$(echo "$since" | grep -ciE "'alice'.*wrong key")" -eq 2 ] &&
	ok "indistinguishable: the log says alice's key was wrong (twice)" ||
	bad "indistinguishable: log lines for alice's wrong key (2 wanted): $(echo "$since" | head -c 400)"
# On the wire: the same bytes up to the close, the ServerHello only.
probe pr-valid "$M_PORT" "alice,boot,$S/ck/alice.key" "bob,boot,$S/ck/bob.key" \
	"alice,nope,$S/ck/alice.key"
if [ "$(tr '\n' '/' <"$T/pr-valid.out")" = "hello=104 verify=ok after=92 end=open status=0/hello=104 verify=ok after=92 end=eof status=15/hello=104 verify=ok after=92 end=eof status=8/" ]; then
	ok "probe: a valid key gets a session, 'access denied' (15) or 'no such export' (8) after authentication"
else
	bad "probe with valid keys: $(tr '\n' '/' <"$T/pr-valid.out") $(head -c 300 "$T/pr-valid.err")"
fi
specs=()
for c in "alice wrong boot" "alice wrong data" "mallory alice boot" \
	 "mallory wrong nope" "bob wrong boot" "kiosk-1 alice boot"; do
	read -r id key ex <<<"$c"
	kf=$S/ck/$key.key
	[ "$key" = wrong ] && kf=$S/wrong.key
	specs+=("$id,$ex,$kf" "$id,$ex,$kf,list")
done
probe pr-refused "$M_PORT" "${specs[@]}"
if [ "$(grep -c . "$T/pr-refused.out")" -eq 12 ] &&
   [ "$(sort -u "$T/pr-refused.out")" = "hello=104 verify=fail after=0 end=eof" ]; then
	ok "probe: wrong key, unknown identity, with and without list-exports: 104 bytes (the ServerHello) then the close, every time"
else
	bad "probe: wrong key / unknown identity differ: $(sort "$T/pr-refused.out" | uniq -c | tr '\n' '/') $(head -c 300 "$T/pr-refused.err")"
fi

# The export list, seen by the probe (the server's side) and by
# `netdisk exports` (the client's).
probe pr-list "$M_PORT" "alice,boot,$S/ck/alice.key,list" \
	"bob,data,$S/ck/bob.key,list" "kiosk-1,boot,$S/ck/kiosk-1.key,list"
PR=$(sed -n 1p "$T/pr-list.out")
echo "$PR" | grep -qE '^hello=104 verify=ok after=[0-9]+ end=eof list=boot:[0-9a-f]?[13579bdf]:8388608:512,data:[0-9a-f]?[02468ace]:16777216:512$' &&
	ok "list (wire): alice gets boot (ro) and data (rw), sorted: $PR" ||
	bad "list (wire): alice: '$PR'"
PR=$(sed -n 2p "$T/pr-list.out")
echo "$PR" | grep -qE '^hello=104 verify=ok after=[0-9]+ end=eof list=data:[0-9a-f]?[02468ace]:16777216:512$' &&
	ok "list (wire): bob gets data only" || bad "list (wire): bob: '$PR'"
PR=$(sed -n 3p "$T/pr-list.out")
echo "$PR" | grep -qE '^hello=104 verify=ok after=[0-9]+ end=eof list=boot:[0-9a-f]?[13579bdf]:8388608:512$' &&
	ok "list (wire): kiosk-1 gets boot only (pattern)" || bad "list (wire): kiosk-1: '$PR'"

# exports_rows FILE: "NAME" per table row of `netdisk exports` (first word
# of every line that is not a header).
exports_rows() {
	grep -v '^no exports' "$1" | awk 'NF && $1 != "NAME" { print $1 }' |
		tr '\n' ' '
}
run exports-alice "$ND" exports "$U" $(nd_id alice)
[ "$RC" -eq 0 ] && [ "$(exports_rows "$OUT")" = "boot data " ] &&
	grep -E '^boot\b' "$OUT" | grep -qw ro && grep -E '^data\b' "$OUT" | grep -qw rw &&
	grep -E '^boot\b' "$OUT" | grep -qE '8388608|8\.0 ?Mi?B?|8M' &&
	ok "exports: alice sees boot (ro) and data (rw)" ||
	bad "exports alice: exit $RC: $(cat "$OUT" "$ERR" | head -c 400)"
run exports-bob "$ND" exports "$U" $(nd_id bob)
[ "$RC" -eq 0 ] && [ "$(exports_rows "$OUT")" = "data " ] &&
	ok "exports: bob sees data only" ||
	bad "exports bob: exit $RC: $(cat "$OUT" "$ERR" | head -c 400)"
run exports-kiosk "$ND" exports "$U" $(nd_id kiosk-9)
[ "$RC" -eq 0 ] && [ "$(exports_rows "$OUT")" = "boot " ] &&
	ok "exports: kiosk-9 sees boot only" ||
	bad "exports kiosk-9: exit $RC: $(cat "$OUT" "$ERR" | head -c 400)"
expect_err exports-mallory 4 "authentication failed" "$ND" exports "$U" \
	--identity mallory --key-file "$S/ck/alice.key"
expect_err exports-wrong-key 4 "authentication failed" "$ND" exports "$U" \
	--identity alice --key-file "$S/wrong.key"

# ------------------------------------------------------------ exclusivity
# end_holder: stops the bench $HOLDER (its connection breaks: with grace 0
# its write lock goes at once).
end_holder() {
	kill "$HOLDER" 2>/dev/null
	wait "$HOLDER" 2>/dev/null
}

# bob holds data's write lock; a second writer is busy, readers are fine,
# boot takes any number of readers; status and the list show it all.
mark=$(log_mark M)
# (Its --time outlasts the checks on a busy machine; it is ended below.)
"$ND" bench "$U/data" $(nd_id bob) --rw randwrite --bs 4k --iodepth 4 --time 100 \
	>"$T/svc-holder.out" 2>"$T/svc-holder.err" &
HOLDER=$!
PIDS="$PIDS $HOLDER"
wait_for 30 eval "log_since M $mark | grep -q \"new session.*'data'.*read-write\"" ||
	bad "exclusive: bob's write session never logged"
expect_err excl-second-writer 5 "busy" "$ND" copy "$S/up-1.img" "$U/data" $(nd_id alice)
expect_ok excl-reader-meanwhile "$ND" copy "$U/data" "$S/dl-data.img" $(nd_id alice)
pids=""
for i in 1 2 3; do
	"$ND" copy "$U/boot" "$S/dl-boot-$i.img" $(nd_id kiosk-1) 2>"$T/svc-ro-$i.err" &
	pids="$pids $!"
done
n=0
for p in $pids; do wait "$p" && n=$((n + 1)); done
good=0
for i in 1 2 3; do [ "$(sum "$S/dl-boot-$i.img")" = "$BOOTSUM" ] && good=$((good + 1)); done
[ "$n" -eq 3 ] && [ "$good" -eq 3 ] && ok "exclusive: 3 readers of boot at once, byte-identical" ||
	bad "exclusive: $n/3 readers of boot ok, $good identical"
run exports-busy "$ND" exports "$U" $(nd_id alice)
grep -E '^data\b' "$OUT" | grep -qi busy && ! grep -E '^boot\b' "$OUT" | grep -qi busy &&
	ok "exports: data shown busy while bob writes" ||
	bad "exports while bob writes: exit $RC: $(cat "$OUT" "$ERR" | head -c 400)"
probe pr-list-busy "$M_PORT" "alice,boot,$S/ck/alice.key,list"
echo "$PR" | grep -qE 'list=boot:[0-9a-f]?[13579bdf]:[0-9]+:512,data:1[0-9a-f][02468ace]:' &&
	ok "list (wire): data has the busy flag (0x100)" || bad "list (wire) while bob writes: '$PR'"

# netdiskd status over the control socket: every export, the sessions with
# their identity, the writer.
run status-control "$NDD" status --control "$S/ctl.sock"
st_ok=1
grep -qE "^export boot path=$S/boot.img mode=ro size=8388608 sessions=[0-9]+ writer=-\$" "$OUT" || st_ok=0
grep -qE "^export data path=$S/data.img mode=rw size=16777216 sessions=[1-9][0-9]* writer=[0-9]+\$" "$OUT" || st_ok=0
sline=$(grep -E '^session [0-9]+ identity=bob export=data mode=rw conns=[1-9][0-9]* peers=127\.0\.0\.1:[0-9]+(,127\.0\.0\.1:[0-9]+)* age=[0-9]+ requests=[0-9]+ read_bytes=[0-9]+ written_bytes=[0-9]+$' "$OUT")
sid=$(echo "$sline" | awk '{ print $2 }')
[ -n "$sid" ] && grep -q "^export data .* writer=$sid\$" "$OUT" || st_ok=0
[ "$RC" -eq 0 ] && [ "$st_ok" -eq 1 ] &&
	ok "status: exports, bob's session ($sid) holding data's write lock" ||
	bad "status: exit $RC: $(cat "$OUT" "$ERR" | head -c 700)"
run status-config "$NDD" status --config "$CONF"
[ "$RC" -eq 0 ] && grep -q '^export boot ' "$OUT" && grep -q "^session $sid " "$OUT" &&
	ok "status --config: finds the control socket in the config" ||
	bad "status --config: exit $RC: $(cat "$OUT" "$ERR" | head -c 300)"
[ "$(stat -c %a "$S/ctl.sock" 2>/dev/null)" = 600 ] &&
	ok "status: control socket mode 0600" ||
	bad "status: control socket mode $(stat -c %a "$S/ctl.sock" 2>&1)"
cerr=$(python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b"frobnicate\n")
b = b""
while True:
    d = s.recv(4096)
    if not d: break
    b += d
sys.stdout.write(b.decode())' "$S/ctl.sock" 2>&1)
[ "$cerr" = "error: unknown command" ] && ok "control: unknown command answered" ||
	bad "control: unknown command: '$cerr'"
kill -0 "$HOLDER" && ok "exclusive: the holder still writes after all that" ||
	bad "exclusive: holder failed: $(cat "$T/svc-holder.err")"
end_holder
status_idle() {
	run status-idle "$NDD" status --control "$S/ctl.sock"
	grep -qE '^export data .* sessions=0 writer=-$' "$OUT" && ! grep -q '^session ' "$OUT"
}
wait_for 30 status_idle &&
	ok "status: no session left, data's writer gone" ||
	bad "status after the holder: $(cat "$OUT" "$ERR" | head -c 300)"

# ------------------------------------------------------------ live reloads
# Clients keep working across every reload below, without one error:
#   kiosk-1 benches boot, alice downloads boot and compares, bob uploads
#   to data, downloads and compares; each in a loop until $S/stop exists.
# svc_loop NAME: runs it_NAME until $S/stop; $S/NAME.res: "ITERATIONS RC".
# While $S/pause-NAME exists it waits between rounds ($S/paused-NAME).
it_bench() {
	timeout -k 5 60 "$ND" bench "$U/boot" $(nd_id kiosk-1) --rw randread \
		--iodepth 1 --time 2 >/dev/null
}
it_dl() {
	timeout -k 5 60 "$ND" copy "$U/boot" "$S/loop-dl.img" $(nd_id alice) &&
		[ "$(sum "$S/loop-dl.img")" = "$BOOTSUM" ] ||
		{ echo "download $n differs or failed" >&2; return 1; }
}
it_rw() {
	local f=$S/up-$((n % 2)).img
	timeout -k 5 60 "$ND" copy "$f" "$U/data" $(nd_id bob) &&
		timeout -k 5 60 "$ND" copy "$U/data" "$S/loop-rw.img" $(nd_id bob) &&
		head -c 2M "$S/loop-rw.img" | cmp -s - "$f" ||
		{ echo "read-write round $n differs or failed" >&2; return 1; }
}
svc_loop() {
	local n=0 rc=0
	while [ ! -e "$S/stop" ]; do
		while [ -e "$S/pause-$1" ]; do
			touch "$S/paused-$1"
			sleep 0.1
		done
		rm -f "$S/paused-$1"
		"it_$1" 2>>"$T/svc-loop-$1.err" || { rc=$?; break; }
		n=$((n + 1))
		sleep 0.2	# leave the CPU to the tests, too
	done
	echo "$n $rc" >"$S/$1.res"
}
rm -f "$S/stop"
LOOPS=""
for l in bench dl rw; do
	svc_loop "$l" &
	LOOPS="$LOOPS $!"
done
PIDS="$PIDS $LOOPS"
# victim NAME ID KEY EXPORT: a long read session that a reload must end;
# its PID in VPID. Returns once the server has logged the session.
victim() {
	local m
	m=$(log_mark M)
	"$ND" bench "$U/$4" --identity "$2" --key-file "$3" --rw randread \
		--iodepth 1 --time 100 >"$T/svc-$1.out" 2>"$T/svc-$1.err" &
	VPID=$!
	PIDS="$PIDS $VPID"
	wait_for 30 eval "log_since M $m | grep -q \"new session [0-9]* of '$2' on '$4'\"" ||
		bad "$1: the session of $2 on $4 never started: $(cat "$T/svc-$1.err")"
}
# victim_ended NAME PID WHAT: the victim must fail within 30 s (its bench
# would run 100).
victim_ended() {
	local i rc
	for i in $(seq 1 300); do
		kill -0 "$2" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$2" 2>/dev/null; then
		bad "$3: its session still runs 30 s after the reload"
		kill "$2"
		wait "$2" 2>/dev/null
		return
	fi
	wait "$2"
	rc=$?
	[ "$rc" -ne 0 ] && ok "$3: its session was closed (exit $rc: $(tail -n1 "$T/svc-$1.err"))" ||
		bad "$3: exit 0, its session survived the reload"
}
# closed_by_reload MARK WHAT PATTERN: after the reload since MARK was
# applied, exactly the sessions whose log lines match PATTERN were closed
# by it (PATTERN empty: none).
closed_by_reload() {
	local lines n want=0
	wait_for 30 eval "log_since M $1 | grep -qiE 'reload.*(applied|rejected)'" ||
		bad "$2: no log line saying the reload was applied or rejected"
	lines=$(log_since M "$1" | grep -i 'closed by the reload')
	n=$(echo -n "$lines" | grep -c .)
	[ -n "$3" ] && want=$(echo -n "$lines" | grep -cE "$3")
	if [ "$n" -eq "$want" ] && { [ -z "$3" ] || [ "$n" -ge 1 ]; }; then
		ok "$2: the reload closed $n session(s), exactly the affected"
	else
		bad "$2: sessions closed by the reload: '$lines', wanted only /$3/"
	fi
}

# Reload 1: add export extra and identity kiosk-5 (a new key file),
# revoke carol's key.
cp "$S/ck/carol.key" "$S/old/carol.key"
victim carol_v carol "$S/old/carol.key" boot
carol_v=$VPID
"$ND" keygen "$S/ck/kiosk-5.key" >/dev/null 2>&1
expect_err reload1-kiosk-5-before 4 "authentication failed" "$ND" info "$U/boot" $(nd_id kiosk-5)
mark=$(log_mark M)
{ conf_server; conf_boot; conf_data; conf_extra; } >"$CONF"
rm "$S/clients/carol.key"
cp -p "$S/ck/kiosk-5.key" "$S/clients/kiosk-5.key"
kill -HUP "$M_PID"
if wait_for 30 "$ND" info "$U/extra" $(nd_id alice); then
	ok "reload 1: export extra added"
else
	bad "reload 1: extra never appeared: $(log_since M "$mark" | tail -n 3)"
fi
victim_ended carol_v "$carol_v" "reload 1: carol's key removed"
closed_by_reload "$mark" "reload 1" "'carol'"
expect_ok reload1-kiosk-5-added "$ND" info "$U/boot" $(nd_id kiosk-5)
expect_err reload1-carol-refused 4 "authentication failed" \
	"$ND" info "$U/boot" --identity carol --key-file "$S/old/carol.key"
expect_ok reload1-extra-write "$ND" copy "$S/up-1.img" "$U/extra" $(nd_id alice)
run reload1-exports "$ND" exports "$U" $(nd_id alice)
[ "$(exports_rows "$OUT")" = "boot data extra " ] &&
	ok "reload 1: alice's exports now boot data extra" ||
	bad "reload 1: alice's exports: $(cat "$OUT" "$ERR" | head -c 300)"
expect_err reload1-extra-bob "$ACCESS_RC" "access denied" "$ND" info "$U/extra" $(nd_id bob)

# Read-write exclusivity is per export: bob writing data does not keep
# alice from writing extra. (bob's loop waits meanwhile.)
touch "$S/pause-rw"
wait_for 60 test -e "$S/paused-rw" || bad "the rw loop did not pause"
mark=$(log_mark M)
"$ND" bench "$U/data" $(nd_id bob) --rw randwrite --bs 4k --iodepth 2 --time 100 \
	>"$T/svc-holder2.out" 2>"$T/svc-holder2.err" &
HOLDER=$!
PIDS="$PIDS $HOLDER"
wait_for 30 eval "log_since M $mark | grep -q \"new session.*'data'.*read-write\""
expect_ok excl-other-export "$ND" copy "$S/up-0.img" "$U/extra" $(nd_id alice)
head -c 2M "$S/extra.img" | cmp -s - "$S/up-0.img" &&
	ok "exclusive per export: alice wrote extra while bob held data" ||
	bad "exclusive per export: extra differs"
kill -0 "$HOLDER" || bad "exclusive per export: bob's bench failed: $(cat "$T/svc-holder2.err")"
end_holder
rm -f "$S/pause-rw"

# Reload 2: kiosk-9's key changes: its session ends, kiosk-1's (same
# export, same pattern) does not; the old key is refused, the new works.
# And data no longer allows alice: her session on data ends, her sessions
# on boot (the dl loop) do not.
cp -p "$S/ck/kiosk-9.key" "$S/old/kiosk-9.key"
victim k9_v kiosk-9 "$S/old/kiosk-9.key" boot
k9_v=$VPID
victim alice_v alice "$S/ck/alice.key" data
alice_v=$VPID
mark=$(log_mark M)
{ conf_server; conf_boot; conf_data bob; conf_extra; } >"$CONF"
rm "$S/clients/kiosk-9.key"
"$ND" keygen "$S/clients/kiosk-9.key" >/dev/null 2>&1
cp -p "$S/clients/kiosk-9.key" "$S/ck/kiosk-9.key"
kill -HUP "$M_PID"
wait_for 30 "$ND" info "$U/boot" $(nd_id kiosk-9) &&
	ok "reload 2: kiosk-9's new key works" ||
	bad "reload 2: kiosk-9's new key never worked: $(log_since M "$mark" | tail -n 3)"
victim_ended k9_v "$k9_v" "reload 2: kiosk-9's key changed"
victim_ended alice_v "$alice_v" "reload 2: alice no longer allowed on data"
closed_by_reload "$mark" "reload 2" "'kiosk-9'|'alice'.*'data'"
expect_err reload2-alice-data "$ACCESS_RC" "access denied" "$ND" info "$U/data" $(nd_id alice)
expect_err reload2-old-key 4 "authentication failed" \
	"$ND" info "$U/boot" --identity kiosk-9 --key-file "$S/old/kiosk-9.key"

# Reload 3: a config that does not parse (and would add ghost and drop
# boot) is rejected with FILE:LINE in the log; the old one stays whole.
mark=$(log_mark M)
{ conf_server; conf_data; conf_extra; printf '\n[export ghost]\npath = %s\ncolour = blue\n' "$S/ghost.img"; } >"$CONF"
badline=$(grep -n '^colour' "$CONF" | cut -d: -f1)
kill -HUP "$M_PID"
if wait_for 30 eval "log_since M $mark | grep -q \"$CONF:$badline: \""; then
	ok "reload 3: broken config rejected: $(log_since M "$mark" | grep "$CONF:$badline: " | head -n1)"
else
	bad "reload 3: no '$CONF:$badline: ...' in the log: $(log_since M "$mark" | tail -n 3)"
fi
expect_ok reload3-boot-kept "$ND" info "$U/boot" $(nd_id alice)
expect_err reload3-no-ghost 8 "no such export" "$ND" info "$U/ghost" $(nd_id alice)
alive M && ok "reload 3: server still serving" || bad "reload 3: server died"
closed_by_reload "$mark" "reload 3" ""

# Reload 4: it parses, but an added export cannot open (its file is
# write-locked by another netdiskd): rejected whole, so boot (dropped in
# that file) stays and also (added) does not appear.
truncate -s 4M "$S/locked.img" "$S/also.img"
start_server LKS --file "$S/locked.img" --key-file "$S/shared.key" || true
mark=$(log_mark M)
{ conf_server; conf_data; conf_extra
  printf '\n[export also]\npath = %s\n\n[export locked]\npath = %s\n' "$S/also.img" "$S/locked.img"; } >"$CONF"
kill -HUP "$M_PID"
if wait_for 30 eval "log_since M $mark | grep -q 'locked.img'"; then
	ok "reload 4: rejected, an export cannot open: $(log_since M "$mark" | grep 'locked.img' | head -n1)"
else
	bad "reload 4: no log line about locked.img: $(log_since M "$mark" | tail -n 3)"
fi
expect_ok reload4-boot-kept "$ND" info "$U/boot" $(nd_id alice)
expect_err reload4-no-also 8 "no such export" "$ND" info "$U/also" $(nd_id alice)
closed_by_reload "$mark" "reload 4" ""
stop_server LKS

# Reload 5: a key file in key-dir turned unsafe (mode 0644): rejected,
# bob (whose file it is) keeps working with the old configuration.
{ conf_server; conf_boot; conf_data; conf_extra; } >"$CONF"
mark=$(log_mark M)
chmod 644 "$S/clients/bob.key"
kill -HUP "$M_PID"
if wait_for 30 eval "log_since M $mark | grep -q 'bob.key'"; then
	ok "reload 5: unsafe key file rejected: $(log_since M "$mark" | grep 'bob.key' | head -n1)"
else
	bad "reload 5: no log line naming bob.key: $(log_since M "$mark" | tail -n 3)"
fi
chmod 600 "$S/clients/bob.key"
expect_ok reload5-bob-still "$ND" info "$U/data" $(nd_id bob)
closed_by_reload "$mark" "reload 5" ""

# Reload 6: export extra removed while alice writes it: her session ends,
# the file's lock is released (another netdiskd can serve it read-write),
# everyone else goes on.
mark=$(log_mark M)
"$ND" bench "$U/extra" $(nd_id alice) --rw randwrite --bs 4k --iodepth 2 --time 100 \
	>"$T/svc-extra_v.out" 2>"$T/svc-extra_v.err" &
extra_v=$!
PIDS="$PIDS $extra_v"
wait_for 30 eval "log_since M $mark | grep -q \"new session.*'extra'.*read-write\"" ||
	bad "reload 6: alice's write session on extra never logged"
run reload6-locked-before timeout -k 1 10 "$NDD" --listen 127.0.0.1 --port 0 \
	--state-dir "$T/state" --file "$S/extra.img" --key-file "$S/shared.key"
[ "$RC" -eq 1 ] && grep -q "in use" "$ERR" &&
	ok "reload 6: before, extra.img is locked by the server ($(cat "$ERR"))" ||
	bad "reload 6: before the reload another netdiskd got extra.img: exit $RC $(head -c 200 "$ERR")"
mark=$(log_mark M)
{ conf_server; conf_boot; conf_data; } >"$CONF"
kill -HUP "$M_PID"
wait_for 30 eval "! \"$ND\" info \"$U/extra\" $(nd_id alice)" || true
expect_err reload6-extra-gone 8 "no such export" "$ND" info "$U/extra" $(nd_id alice)
victim_ended extra_v "$extra_v" "reload 6: export extra removed"
closed_by_reload "$mark" "reload 6" "'extra'"
if start_server XT --file "$S/extra.img" --key-file "$S/shared.key"; then
	ok "reload 6: another netdiskd serves extra.img read-write now"
	expect_ok reload6-other-server "$ND" copy "$S/up-1.img" \
		"netdisk://127.0.0.1:$XT_PORT" --key-file "$S/shared.key"
	stop_server XT
fi
run status-after "$NDD" status --control "$S/ctl.sock"
! grep -q '^export extra' "$OUT" && grep -q '^export boot' "$OUT" &&
	ok "reload 6: status no longer lists extra" ||
	bad "reload 6: status: $(cat "$OUT" "$ERR" | head -c 300)"

# Reload 7, a storm: twenty SIGHUPs at once, the file changing only a
# [server] setting (grace, which waits for a restart): nothing closed,
# still serving; --check of the file meanwhile (it opens no export for
# writing, so the server's locks do not stop it).
mark=$(log_mark M)
{ conf_server | sed 's/^grace = 0$/grace = 5/'; conf_boot; conf_data; } >"$CONF"
for i in $(seq 1 20); do kill -HUP "$M_PID"; done
expect_ok reload7-check-while-serving "$NDD" --config "$CONF" --check
expect_ok reload7-serving "$ND" info "$U/boot" $(nd_id alice)
closed_by_reload "$mark" "reload 7 (storm)" ""
wait_for 30 eval "log_since M $mark | grep -qi 'grace'" &&
	ok "reload 7: the log says grace changes at the next start: $(log_since M "$mark" | grep -i grace | head -n1)" ||
	bad "reload 7: no log line about grace: $(log_since M "$mark" | tail -n 3)"
alive M && ok "reload 7: server alive after 20 SIGHUPs" || bad "reload 7: server died"

# The loops ran through all seven reloads.
touch "$S/stop"
for p in $LOOPS; do wait "$p"; done
for l in bench dl rw; do
	read -r n rc <"$S/$l.res" 2>/dev/null || { n=0; rc=none; }
	if [ "$rc" = 0 ] && [ "$n" -ge 2 ]; then
		ok "reloads: loop $l ran $n rounds without an error"
	else
		bad "reloads: loop $l: $n rounds, then exit $rc: $(tail -n 3 "$T/svc-loop-$l.err")"
	fi
done
stop_server M
[ ! -e "$S/ctl.sock" ] && ok "control socket removed at exit" ||
	bad "control socket left behind"
run status-no-server "$NDD" status --control "$S/ctl.sock"
[ "$RC" -ne 0 ] && [ "$(wc -l <"$ERR")" -eq 1 ] && grep -q "ctl.sock" "$ERR" &&
	ok "status without a server: exit $RC, $(cat "$ERR")" ||
	bad "status without a server: exit $RC: $(head -c 300 "$ERR")"

# ------------------------------------------------------------ shared key
# key-file: one key for every identity without a file of its own; an
# identity with its own file must use it. sd_notify's messages around
# start, reload and stop (NOTIFY_SOCKET, as systemd sets it).
mkdir -p "$S/clients2"
cp "$S/clients/alice.key" "$S/clients2/alice.key"
head -c 4M /dev/urandom >"$S/pub.img"
PUBSUM=$(sum "$S/pub.img")
CONF2=$S/shared.conf
cat >"$CONF2" <<EOF
[server]
listen = 127.0.0.1
port = 0
key-dir = $S/clients2
key-file = $S/shared.key
state-dir = $S/state
control = none

[export pub]
path = $S/pub.img
read-only = yes
clients = alice kiosk-*
EOF
python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(sys.argv[1])
f = open(sys.argv[2], "a")
while True:
    f.write(s.recv(4096).decode().replace("\n", " ") + "\n"); f.flush()' \
	"$S/notify.sock" "$S/notify.log" &
NOTIFY_PY=$!
PIDS="$PIDS $NOTIFY_PY"
wait_for 60 test -S "$S/notify.sock" || bad "sd_notify: the test's listener did not start"
VG=""
if [ -z "${ND_NO_VALGRIND:-}" ] && command -v valgrind >/dev/null &&
   ! nm "$NDD" 2>/dev/null | grep -q __asan_init; then
	VG="valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite"
fi
export NOTIFY_SOCKET=$S/notify.sock
SRV_WRAP="$VG" svc_start SH "$CONF2"
rc=$?
unset NOTIFY_SOCKET
[ "$rc" -eq 0 ] || return 0
U2=netdisk://127.0.0.1:$SH_PORT
nd_as shared-kiosk kiosk-7 "$S/shared.key" copy "$U2/pub" "$S/dl-pub.img"
[ "$RC" -eq 0 ] && [ "$(sum "$S/dl-pub.img")" = "$PUBSUM" ] &&
	ok "shared key: kiosk-7 (no file of its own) reads pub with it" ||
	bad "shared key: kiosk-7: exit $RC: $(head -c 300 "$ERR")"
expect_ok shared-alice-own "$ND" info "$U2/pub" --identity alice --key-file "$S/clients2/alice.key"
expect_err shared-alice-shared 4 "authentication failed" \
	"$ND" info "$U2/pub" --identity alice --key-file "$S/shared.key"
expect_err shared-kiosk-alice-key 4 "authentication failed" \
	"$ND" info "$U2/pub" --identity kiosk-7 --key-file "$S/clients2/alice.key"
expect_err shared-guest-denied "$ACCESS_RC" "access denied" \
	"$ND" info "$U2/pub" --identity guest --key-file "$S/shared.key"
run shared-guest-exports "$ND" exports "$U2" --identity guest --key-file "$S/shared.key"
[ "$RC" -eq 0 ] && [ -z "$(exports_rows "$OUT")" ] && grep -q '^no exports' "$OUT" &&
	ok "shared key: guest lists no export" ||
	bad "shared key: guest's exports: exit $RC: $(cat "$OUT" "$ERR" | head -c 300)"
[ ! -e "$S/ctl.sock" ] && ok "control = none: no socket" || bad "control = none: a socket exists"
wait_for 30 grep -q 'READY=1' "$S/notify.log" &&
	ok "sd_notify: READY=1 after start" ||
	bad "sd_notify: no READY=1: $(cat "$S/notify.log" 2>/dev/null)"
# Reload: the shared key is re-read too (guest's old key stops working).
cp "$S/shared.key" "$S/old/shared.key"
rm "$S/shared.key"
"$ND" keygen "$S/shared.key" >/dev/null 2>&1
kill -HUP "$SH_PID"
wait_for 30 "$ND" info "$U2/pub" --identity kiosk-7 --key-file "$S/shared.key" &&
	ok "shared key: changed on reload" ||
	bad "shared key: the new shared key never worked: $(tail -n 3 "$SH_LOG")"
expect_err shared-old-key 4 "authentication failed" \
	"$ND" info "$U2/pub" --identity kiosk-7 --key-file "$S/old/shared.key"
wait_for 30 eval "grep -q 'RELOADING=1' '$S/notify.log' && [ \$(grep -c 'READY=1' '$S/notify.log') -ge 2 ]" &&
	ok "sd_notify: RELOADING=1 then READY=1 around the reload" ||
	bad "sd_notify around the reload: $(tr '\n' '|' <"$S/notify.log")"
stop_server SH
grep -q 'STOPPING=1' "$S/notify.log" && ok "sd_notify: STOPPING=1 at shutdown" ||
	bad "sd_notify: no STOPPING=1: $(tr '\n' '|' <"$S/notify.log")"
kill "$NOTIFY_PY" 2>/dev/null
if [ -n "$VG" ]; then
	grep -q '==[0-9]*==' "$SH_LOG" &&
		bad "valgrind: config server reported errors: $(grep '==' "$SH_LOG" | head -5)" ||
		ok "valgrind: config server with a reload clean"
fi
SRV_WRAP=""
