# shellcheck shell=bash
# shellcheck disable=SC2015 # A && ok || bad: ok never fails
# A copy-on-write export whose overlay directory runs out of space,
# sourced by tests/integration/cow.sh (its helpers and setup). netdiskd
# runs in a mount namespace of its own (unshare -m) with its overlay
# directory on a 3 MiB tmpfs, which goes away with the process. A client
# writing 8 MiB gets one clean error line; the server stays up; the
# overlay checks consistent; every 4 KiB block reads as the base or as
# what the client wrote, nothing else; after a reset the space is back.
# Skipped (with a note) where mount namespaces are not allowed.

# cow_space: the whole part; returns early when it cannot run.
cow_space() {
	local log=$T/cow-tight.log conf=$C/tight.conf pid port="" sock=$C/tight.sock
	if ! unshare -m true 2>/dev/null; then
		echo "   cow: no mount namespaces here: ENOSPC part skipped"
		return 0
	fi
	mkdir -p "$C/tight"
	head -c 16M /dev/urandom >"$C/tight.img"
	head -c 8M /dev/urandom >"$C/tight.dat"
	cat >"$conf" <<EOF
[server]
listen = 127.0.0.1
port = 0
key-file = $KEY
grace = 0
state-dir = $C/state
control = $sock

[export tight]
path = $C/tight.img
cow = $C/tight
EOF
	# shellcheck disable=SC2016 # expanded by the inner shell
	unshare -m sh -c 'mount -t tmpfs -o size=3m,mode=0700 nd-cow-tight "$1" &&
		exec $2 "$3" --config "$4"' sh "$C/tight" "$SRV_WRAP" "$NDD" "$conf" \
		2>"$log" &
	pid=$!
	PIDS="$PIDS $pid"
	for _ in $(seq 1 400); do
		port=$(sed -n 's/.* port \([0-9][0-9]*\).*/\1/p' "$log" | head -n1)
		[ -n "$port" ] && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	if [ -z "$port" ]; then
		bad "cow: ENOSPC server did not start: $(head -c 300 "$log")"
		return 0
	fi
	local url=netdisk://127.0.0.1:$port/tight

	expect_err cow-enospc-write nz "space" "$ND" copy "$C/tight.dat" "$url" \
		--identity alice --key-file "$KEY" -q
	kill -0 "$pid" 2>/dev/null && ok "cow: ENOSPC: the server stays up" ||
		bad "cow: ENOSPC: the server died: $(tail -n 3 "$log")"
	run cow-enospc-check "$NDD" overlay check tight alice --control "$sock"
	[ "$RC" -eq 0 ] && grep -q consistent "$OUT" &&
		ok "cow: ENOSPC: the overlay checks consistent ($(head -n1 "$OUT" | sed 's/.*: //'))" ||
		bad "cow: ENOSPC: check exit $RC: $(head -c 300 "$OUT") $(head -c 300 "$ERR")"
	run cow-enospc-read "$ND" copy "$url" "$C/tight.out" --identity alice \
		--key-file "$KEY" -q
	if [ "$RC" -ne 0 ]; then
		bad "cow: ENOSPC: read back: exit $RC: $(head -c 300 "$ERR")"
	else
		# Each 4 KiB block: the base's or alice's, and some of hers got in.
		run cow-enospc-blocks python3 - "$C/tight.out" "$C/tight.img" "$C/tight.dat" <<'PY'
import sys
got, base, new = (open(f, 'rb').read() for f in sys.argv[1:4])
mine = other = 0
for off in range(0, len(got), 4096):
    g = got[off:off + 4096]
    if off < len(new) and g == new[off:off + 4096]:
        mine += 1
    elif g != base[off:off + 4096]:
        other += 1
print(mine, other)
PY
		read -r mine other <"$OUT"
		[ "${other:-1}" -eq 0 ] && [ "${mine:-0}" -gt 0 ] &&
			ok "cow: ENOSPC: every block reads as the base or as written ($mine written)" ||
			bad "cow: ENOSPC: $other blocks neither base nor written, $mine written: $(head -c 200 "$ERR")"
	fi
	run cow-enospc-reset "$NDD" overlay reset tight alice --control "$sock"
	[ "$RC" -eq 0 ] || bad "cow: ENOSPC: reset: exit $RC: $(head -c 300 "$ERR")"
	head -c 1M "$C/tight.dat" >"$C/tight-1m.dat"
	run cow-enospc-after "$ND" copy "$C/tight-1m.dat" "$url" --identity alice \
		--key-file "$KEY" -q
	run cow-enospc-after-read "$ND" copy "$url" "$C/tight.out" --identity alice \
		--key-file "$KEY" -q
	cp "$C/tight.img" "$C/tight-exp.img"
	dd if="$C/tight-1m.dat" of="$C/tight-exp.img" conv=notrunc status=none
	same "cow: ENOSPC: after a reset 1 MiB fits and reads back" \
		"$C/tight.out" "$C/tight-exp.img"
	kill -TERM "$pid"
	wait "$pid" && ok "cow: ENOSPC server: SIGTERM -> exit 0" ||
		bad "cow: ENOSPC server: exit $? after SIGTERM"
}
