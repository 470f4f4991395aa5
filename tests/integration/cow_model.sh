# shellcheck shell=bash
# shellcheck disable=SC2015 # A && ok || bad: ok never fails
# The randomized model test of copy-on-write exports, sourced by
# tests/integration/cow.sh (its helpers and setup): two identities at once
# on the export model, tests/tools/ndmodel checking every read against what
# the model allows, the server killed -9 at random moments and restarted
# until both are done. Then the overlays check clean and merge to what
# the identity reads.
#
# ND_IT_ONLY=cow-model runs only this part. ND_MODEL_SEEDS="1 2" (default)
# picks the seeds (each runs two identities, seeds S and S+1000; the kill
# times come from bash's RANDOM seeded with S); ND_MODEL_OPS=N the requests
# per identity (default 4000).

cow_start CM || return 0
MP=$CM_PORT
MURL=netdisk://127.0.0.1:$MP/model
for seed in ${ND_MODEL_SEEDS:-1 2}; do
	echo "   model: seed $seed (replay: ND_IT_ONLY=cow-model ND_MODEL_SEEDS=$seed)"
	RANDOM=$seed
	ids=("$seed" $((seed + 1000)))
	pids=()
	for s in "${ids[@]}"; do
		"$MODEL" run "$MURL" --key-file "$KEY" --identity "m$s" --seed "$s" \
			--ops "${ND_MODEL_OPS:-4000}" >"$T/model-$s.out" 2>"$T/model-$s.err" &
		pids+=($!)
		PIDS="$PIDS $!"
	done
	kills=0
	while :; do
		live=0
		for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && live=1; done
		[ "$live" -eq 1 ] || break
		sleep "0.$((RANDOM % 8 + 2))"
		cow_kill CM
		kills=$((kills + 1))
		cow_start CM "$MP" || break
	done
	for i in 0 1; do
		s=${ids[$i]}
		wait "${pids[$i]}"
		mrc=$?
		if [ "$mrc" -eq 0 ] && grep -q ': ok$' "$T/model-$s.out"; then
			ok "cow: model seed $s: $kills kills: $(sed 's/^ndmodel: //' "$T/model-$s.out")"
		else
			bad "cow: model seed $s (exit $mrc, $kills kills): $(cat "$T/model-$s.out") $(head -c 1500 "$T/model-$s.err")"
		fi
	done
done
s=${ND_MODEL_SEEDS:-1}
s=${s%% *}
ov_expect cow-ov-check-model 0 "consistent" check model "m$s"
ov_expect cow-ov-merge-model 0 "" merge model "m$s" "$C/merged-m$s.img"
rm -f "$C/m$s.out"
as "m$s" "cow-read-m$s" copy "$MURL" "$C/m$s.out" -q
same "cow: merged image of m$s = what m$s reads" "$C/merged-m$s.img" "$C/m$s.out"
# Sparse where the disk reads zeros: the zero clusters take no space.
zc=$(sed -n 's/.* \([0-9][0-9]*\) of zeros.*/\1/p' "$T/cow-ov-$((OVN - 1)).out")
alloc=$(($(stat -c '%b * %B' "$C/merged-m$s.img")))
msize=$(stat -c %s "$C/merged-m$s.img")
[ -n "$zc" ] && [ "$zc" -gt 0 ] && [ $((alloc + zc * 4096)) -le "$msize" ] &&
	ok "cow: merged image sparse: $alloc bytes allocated of $msize, $zc zero clusters" ||
	bad "cow: merged image: $alloc bytes allocated of $msize, zero clusters '${zc}'"
stop_server CM
[ "$(sum "$C/model.img")" = "$MODELSUM" ] && ok "cow: the model's base is unchanged" ||
	bad "cow: the model's base changed"
[ "$(sum "$C/base.img")" = "$BASESUM" ] && ok "cow: the golden base is unchanged at the end" ||
	bad "cow: the golden base changed"
