#!/usr/bin/env bash
# Trains the shipped recipes with fewer epochs and checks every stage's ONNX export in
# onnxruntime against shrink's logits on the test set (tools/ortcheck): float stages to float32
# rounding, quantized ones to 99.5% agreement and a median |logit difference| of 2e-3.
#
#   tools/ortcheck/shipped.sh [RUNS_DIR]          # about 10 minutes on 2 cores
#
# Recipes the CI run trains in full anyway (quickstart, deep-compression-lenet300) are checked
# by .ci/run on those runs. The ones here cover the other kinds: static and dynamic int8,
# mixed and low bits, QAT, structured pruning (smaller layers), low rank, a pruned and
# dynamically quantized student, LeNet-5's convolutions pruned and quantized to 4 bits.
# lottery-ticket, sweep-select, prune-l1/global/random, distill-student and lowrank-fc1 make
# the same kinds again and are left out for time.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-$(mktemp -d)}
mkdir -p "$out"
go build -o "$out/shrink" ./cmd/shrink
go build -o "$out/ortcheck" ./tools/ortcheck

status=0
check() {
  local recipe=recipes/$1.yaml
  shift
  local sets=()
  for s in "$@"; do sets+=(--set "$s"); done
  echo "== $recipe ${*:-}"
  "$out/shrink" run "$recipe" --run-dir "$out/$(basename "$recipe" .yaml)" -q "${sets[@]}"
  "$out/ortcheck" "$recipe" "$out/$(basename "$recipe" .yaml)" || status=1
}

check quantize-static stages.train.epochs=1
check quantize-int8 stages.train.epochs=1
check quantize-mixed stages.train.epochs=1 stages.mixed-qat.epochs=1
check qat-int4 stages.train.epochs=1 stages.qat4.epochs=1
check prune-structured stages.train.epochs=1 stages.prune.finetune.epochs=1
check lowrank-energy stages.train.epochs=1
check distill-compressed stages.train.epochs=1 stages.relabel.epochs=1 stages.distill.epochs=1
check deep-compression-lenet5 stages.train.epochs=1 stages.prune1.finetune.epochs=0 \
  stages.prune2.finetune.epochs=0 stages.prune3.finetune.epochs=1 stages.qat.epochs=1
exit $status
