# Sourced by tests/integration/run.sh (its helpers: run, expect_err,
# expect_ok, ok, bad; $T, $ND, $BIN, $ROOT, $O): what runs on an installed
# system without a kernel module or systemd as PID 1. netdisktab(5) as
# `netdisk attach|detach --tab` and netdisk-generator read it, `make
# install` / `make uninstall` into a DESTDIR, the man pages rendering
# without warnings. The units themselves run in tests/vm/systemd.sh.
# ND_IT_ONLY=install runs only these.

GEN=$BIN/netdisk-generator
TAB=$T/netdisktab
cat >"$TAB" <<'EOF'
# comment, then a blank line

data    netdisk://127.0.0.1:1/data  key-file=/nonexistent.key,identity=lab-01,connections=2,ro
	boot netdisk://[::1]/boot key-file=/k,noauto
spaces  netdisk://h/x key-file=/k extra
badurl  http://h/x key-file=/k
data    netdisk://h/y key-file=/k
nokey   netdisk://h/x identity=x
badval  netdisk://h/x key-file=/k,connections=99
badopt  netdisk://h/x key-file=/k,frob=1
novalue netdisk://h/x key-file
bad/name netdisk://h/x key-file=/k
short   netdisk://h/x
EOF

expect_err "tab: unknown option" 2 "^netdisk: $TAB:10: unknown option 'frob'\$" \
	"$ND" attach --tab badopt --tab-file "$TAB"
expect_err "tab: extra field" 2 "$TAB:5: unexpected 'extra'" \
	"$ND" attach --tab spaces --tab-file "$TAB"
expect_err "tab: not a netdisk URL" 2 "$TAB:6: .*not a netdisk:// URL" \
	"$ND" attach --tab badurl --tab-file "$TAB"
expect_err "tab: key-file required" 2 "$TAB:8: key-file=FILE is required" \
	"$ND" attach --tab nokey --tab-file "$TAB"
expect_err "tab: value checked by attach, with the line" 2 \
	"^netdisk: $TAB:9: invalid --connections '99'" \
	"$ND" attach --tab badval --tab-file "$TAB"
expect_err "tab: option without its value" 2 "$TAB:11: option 'key-file' needs a value" \
	"$ND" attach --tab novalue --tab-file "$TAB"
expect_err "tab: too few fields" 2 "$TAB:13: expected NAME URL OPTIONS" \
	"$ND" attach --tab short --tab-file "$TAB"
# A name is a file in /run/netdisk-devices: "." or ".." would attach a
# device that detach --tab can never find again.
printf '.. netdisk://h/x key-file=/k\n.x netdisk://h/x key-file=/k\n' >"$T/dottab"
expect_err "tab: name '..' refused" 2 "$T/dottab:1: invalid name '\.\.' \(must not start" \
	"$ND" attach --tab .. --tab-file "$T/dottab"
expect_err "tab: name '.x' refused" 2 "$T/dottab:2: invalid name '.x'" \
	"$ND" attach --tab .x --tab-file "$T/dottab"
mkdir -p "$T/dotgen"
ND_TAB_FILE=$T/dottab "$GEN" "$T/dotgen" "$T/dotgen" "$T/dotgen" 2>/dev/null
rc=$?
[ "$rc" = 1 ] && [ -z "$(ls -A "$T/dotgen")" ] &&
	ok "generator: no unit for a name starting with '.'" ||
	bad "generator with dot names: exit $rc, $(ls -AR "$T/dotgen")"
expect_err "tab: no such entry" 2 "$TAB: no entry 'nope'" \
	"$ND" attach --tab nope --tab-file "$TAB"
expect_err "tab: no such file" 2 "$T/none: No such file" \
	"$ND" attach --tab data --tab-file "$T/none"
expect_err "tab: URL with --tab" 2 "unexpected argument" \
	"$ND" attach --tab data --tab-file "$TAB" netdisk://h/x
expect_err "tab: other options with --tab" 2 "takes only --tab" \
	"$ND" attach --tab data --tab-file "$TAB" --read-only
# The first 'data' is the entry; its options pass; then the key (missing)
# or the module (none on the build hosts) stops it, the entry named.
expect_err "tab: good entry reaches the attach" nz \
	"$TAB:3: .*(nonexistent.key|module not loaded)" \
	"$ND" attach --tab data --tab-file "$TAB"
expect_err "tab: detach of an entry never attached" 1 "data: not attached" \
	"$ND" detach --tab data --tab-file "$TAB"
# Detach goes by the record of the attach, not the table: a removed entry
# is "not attached" too; a name that is no entry name is refused.
expect_err "tab: detach of a name not in the table" 1 "nope: not attached" \
	"$ND" detach --tab nope --tab-file "$TAB"
expect_err "tab: detach of a name with a slash" 2 "invalid entry name" \
	"$ND" detach --tab ../x --tab-file "$TAB"
expect_err "tab: detach of a name starting with a dot" 2 "invalid entry name" \
	"$ND" detach --tab .data.id --tab-file "$TAB"

# The generator: good entries without noauto wanted by remote-fs.target,
# every bad line reported with its line, none of them linked.
G=$T/gen
mkdir -p "$G"
ND_TAB_FILE=$TAB "$GEN" "$G" "$G" "$G" >"$T/gen.out" 2>"$T/gen.err"
rc=$?
links=$(cd "$G/remote-fs.target.wants" 2>/dev/null && ls | tr '\n' ' ')
[ "$rc" = 1 ] && [ "$links" = "netdisk@badval.service netdisk@data.service " ] &&
	ok "generator: links $links(bad lines: exit 1)" ||
	bad "generator: exit $rc, links '$links'"
[ "$(wc -l <"$T/gen.err")" = 8 ] &&
	! grep -v "^netdisk-generator: $TAB:[0-9]*: .*(entry skipped)\$" "$T/gen.err" >/dev/null &&
	ok "generator: 8 bad lines, one FILE:LINE message each" ||
	bad "generator: messages: $(head -c 400 "$T/gen.err")"
tgt=$(readlink "$G/remote-fs.target.wants/netdisk@data.service")
[ "${tgt##*/}" = "netdisk@.service" ] && [ "$(basename "$(dirname "$tgt")")" = system ] &&
	ok "generator: links to the template next to it ($tgt)" ||
	bad "generator: link target $tgt"
rm -rf "$G" && mkdir -p "$G"
ND_TAB_FILE=$T/none "$GEN" "$G" "$G" "$G" 2>"$T/gen.err"
rc=$?
[ "$rc" = 0 ] && [ -z "$(ls -A "$G")" ] && ok "generator: no table, nothing" ||
	bad "generator without a table: exit $rc, $(ls -A "$G")"
run gen-usage "$GEN"
[ "$RC" = 2 ] && ok "generator: usage (exit 2)" || bad "generator without arguments: exit $RC"

# make install into a DESTDIR: everything in place, units with their
# paths, then make uninstall leaves nothing.
DEST=$T/dest
# -o: install what this run tested, never rebuild it here.
if make -s -C "$ROOT" O="$O" install DESTDIR="$DEST" PREFIX=/usr/local \
	-o "$O/netdiskd" -o "$O/netdisk" -o "$O/netdisk-generator" \
	>"$T/install.out" 2>&1; then
	missing=""
	for f in sbin/netdiskd bin/netdisk lib/systemd/system-generators/netdisk-generator \
		 lib/systemd/system/netdiskd.service lib/systemd/system/netdisk@.service \
		 share/man/man8/netdiskd.8 share/man/man8/netdisk.8 \
		 share/man/man5/netdisktab.5 share/man/man7/netdisk-boot.7 \
		 share/doc/netdisk/netdiskd.conf.example \
		 share/doc/netdisk/netdisktab.example; do
		[ -e "$DEST/usr/local/$f" ] || missing="$missing $f"
	done
	for f in /lib/udev/rules.d/60-netdisk.rules \
		 /usr/share/initramfs-tools/hooks/netdisk \
		 /usr/share/initramfs-tools/scripts/local-top/netdisk \
		 /usr/share/initramfs-tools/conf-hooks.d/netdisk \
		 /usr/lib/dracut/modules.d/90netdisk/module-setup.sh; do
		[ -e "$DEST$f" ] || missing="$missing $f"
	done
	[ -z "$missing" ] && ok "make install: binaries, units, generator, man pages, examples, udev rules, initramfs-tools hook, dracut module" ||
		bad "make install: missing$missing"
	# What make install takes from the tree must be in git, not merely in
	# this checkout: a .gitignore pattern (*.d) once hid conf.d/netdisk,
	# whose UMASK keeps the initramfs holding the key root-only.
	if git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1; then
		hidden=$(git -C "$ROOT" status --porcelain --ignored -- \
			initramfs-tools dracut udev man docs/examples debian |
			grep '^!!')
		[ -z "$hidden" ] && ok "make install's sources: none ignored by git" ||
			bad "make install's sources ignored by git: $hidden"
	fi
	U=$DEST/usr/local/lib/systemd/system
	grep -qx 'ExecStart=/usr/local/sbin/netdiskd --config /etc/netdisk/netdiskd.conf' "$U/netdiskd.service" &&
		grep -qx 'ExecStart=/usr/local/bin/netdisk attach --tab %i' "$U/netdisk@.service" &&
		! grep -q '@[A-Z]*@' "$U/netdiskd.service" "$U/netdisk@.service" &&
		ok "make install: unit paths filled in" ||
		bad "make install: unit paths: $(grep -h 'Exec\|@' "$U"/netdisk*.service | head -c 300)"
	make -s -C "$ROOT" O="$O" uninstall DESTDIR="$DEST" PREFIX=/usr/local >/dev/null 2>&1
	left=$(find "$DEST" -type f | head -n 5)
	[ -z "$left" ] && ok "make uninstall: no file left" || bad "make uninstall left: $left"
else
	bad "make install DESTDIR: $(tail -n 3 "$T/install.out")"
fi

# The man pages render without a warning.
for m in "$ROOT"/man/*.[1-8]; do
	w=$( { groff -ww -man -z "$m"; MANWIDTH=80 man -l -Tutf8 "$m" >/dev/null; } 2>&1)
	[ -z "$w" ] && ok "man page ${m##*/} renders without warnings" ||
		bad "man page ${m##*/}: $(echo "$w" | head -n 3)"
done
