#!/bin/sh
# Runs recipes/lowrank-fc1.yaml for several seeds and prints, per seed, the test
# accuracy of: the trained model (5 epochs); the model right after factoring fc1
# at rank 64; after the recipe's epoch of fine-tuning; and, as the fair baseline
# for that epoch, the unfactored model fine-tuned the same way (rank 300 keeps
# fc1 dense). The numbers in docs/LOWRANK.md come from here. From the
# repository root:
#   sh stages/lowrank/testdata/mnist-seeds.sh [SEED...]
set -eu
seeds=${*:-1 2 3 4 5}
out=${RUNS:-/tmp/lowrank-runs}
mkdir -p "$out"
go build -o "$out/shrink" ./cmd/shrink
run() { # SEED RUN_DIR [--set KEY=VALUE]...
	_seed=$1 _dir=$2
	shift 2
	"$out/shrink" run recipes/lowrank-fc1.yaml --cache-dir "$out/cache" --set seed="$_seed" --run-dir "$_dir" "$@" >/dev/null 2>&1
}
acc() { sed -n 's/^  "accuracy": \([0-9.]*\),*$/\1/p' "$1"; }
printf 'seed  train5  rank64  rank64+ft  dense+ft  (rank64+ft)-train5  (rank64+ft)-(dense+ft)\n'
for s in $seeds; do
	d="$out/seed$s"
	run "$s" "$d/ft"
	run "$s" "$d/noft" --set stages.lowrank.finetune.epochs=0
	run "$s" "$d/dense" --set stages.lowrank.rank=300
	t5=$(acc "$d/ft/train/metrics.json")
	r0=$(acc "$d/noft/lowrank/metrics.json")
	r1=$(acc "$d/ft/lowrank/metrics.json")
	dn=$(acc "$d/dense/lowrank/metrics.json")
	printf '%-4s  %-6s  %-6s  %-9s  %-8s  %+.4f              %+.4f\n' "$s" "$t5" "$r0" "$r1" "$dn" \
		"$(echo "$r1 - $t5" | bc -l)" "$(echo "$r1 - $dn" | bc -l)"
done
