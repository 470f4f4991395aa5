# Sourced by tests/integration/run.sh (its helpers: run, expect_err,
# expect_ok, ok, bad; $T, $ND): `netdisk boot`, the netdisk= parameters of
# the kernel command line, without a kernel module (--dry-run prints the
# attach commands; without it the module is what stops). The boot itself
# runs in tests/boot/. ND_IT_ONLY=boot runs only these.

CL=$T/cmdline
printf '%s\n' 'BOOT_IMAGE=/vmlinuz ip=dhcp netdisk=netdisk://10.0.2.100/root,identity=lab-01 root=/dev/netdisk0p1 netdisk="netdisk://[::1]:9/data,ro,cache=64m,connections=2,reconnect-timeout=30,key-file=/media/k" quiet' >"$CL"
run boot-dry-run "$ND" boot --cmdline "$CL" --dry-run --identity dflt --key-file /etc/k
want="netdisk attach --identity lab-01 --reconnect-timeout forever --key-file /etc/k netdisk://10.0.2.100/root
netdisk attach --read-only --cache-size 64m --connections 2 --reconnect-timeout 30 --key-file /media/k --identity dflt netdisk://[::1]:9/data"
if [ "$RC" = 0 ] && [ "$(cat "$OUT")" = "$want" ]; then
	ok "boot: two netdisk= parameters, in order, as attach commands"
else
	bad "boot --dry-run: exit $RC: $(cat "$OUT" "$ERR")"
fi

printf 'ip=dhcp root=/dev/sda1\n' >"$T/nocl"
run boot-none "$ND" boot --cmdline "$T/nocl"
[ "$RC" = 0 ] && [ ! -s "$OUT" ] && [ ! -s "$ERR" ] &&
	ok "boot: no netdisk= parameter, nothing to do (exit 0)" ||
	bad "boot without netdisk=: exit $RC: $(cat "$OUT" "$ERR")"

# Every parameter is checked before the first attach: the good first one
# is not attached (the module would say "not loaded") when the second is bad.
printf 'netdisk=netdisk://h/a netdisk=netdisk://h/b,connections=99\n' >"$T/badcl"
expect_err "boot: second parameter bad, nothing attached" 2 \
	"^netdisk: netdisk=netdisk://h/b,connections=99: invalid connections '99' \(1..16\)\$" \
	"$ND" boot --cmdline "$T/badcl"
printf 'netdisk=/dev/sda\n' >"$T/badcl"
expect_err "boot: not a URL" 2 "not a netdisk://" "$ND" boot --cmdline "$T/badcl"
printf 'netdisk=netdisk://h/a,rw\n' >"$T/badcl"
expect_err "boot: unknown option" 2 "unknown option 'rw'" "$ND" boot --cmdline "$T/badcl"
expect_err "boot: no command line file" 1 "$T/none: No such file" \
	"$ND" boot --cmdline "$T/none"
expect_err "boot: bad --wait" 2 "invalid --wait" "$ND" boot --wait soon --cmdline "$CL"
expect_err "boot: stray argument" 2 "unexpected argument 'x'" "$ND" boot --cmdline "$CL" x
# A good command line reaches the attach: the key file or the module stops it.
printf 'netdisk=netdisk://127.0.0.1:1/a\n' >"$T/goodcl"
expect_err "boot: good parameter reaches the attach" nz \
	"$T/nokey|module not loaded" "$ND" boot --cmdline "$T/goodcl" --key-file "$T/nokey"
expect_err "attach: --reconnect-timeout forever or seconds" 2 \
	"invalid --reconnect-timeout 'always' \(seconds, 0..86400, or forever\)" \
	"$ND" attach netdisk://h/x --key-file /k --reconnect-timeout always
