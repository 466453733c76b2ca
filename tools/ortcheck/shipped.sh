#!/usr/bin/env bash
# Trains the shipped recipes with fewer epochs and checks every stage's ONNX export in
# onnxruntime against shrink's logits on the test set (tools/ortcheck): float stages to float32
# rounding, quantized ones to 99.5% agreement and a median |logit difference| of 2e-3.
#
#   tools/ortcheck/shipped.sh [RUNS_DIR]          # 7 minutes on 2 cores (quiet machine; 10.5 busy)
#   ONLY="lstm-mnist sweep-select" tools/ortcheck/shipped.sh RUNS_DIR   # some of them
#
# Every recipe in recipes/ is checked: quickstart and deep-compression-lenet300, which the CI
# run trains in full anyway, by .ci/run on those runs; all the others here, each stage of
# each (static and dynamic int8, mixed and low bits, QAT, structured and unstructured
# pruning, lottery tickets and their random controls, low rank, distilled students, a sweep's
# 12 quantized branches and its selection, LeNet-5's convolutions pruned and quantized to 4
# bits, an LSTM quantized as torch's quantize_dynamic with reduce_range: the export's Scan
# form, LoRA and QLoRA adapters (merged into the exported weights), a ResNet-20). A recipe
# added to recipes/ must be added here or to .ci/run (the check at the end fails otherwise).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-$(mktemp -d)}
mkdir -p "$out"
go build -o "$out/shrink" ./cmd/shrink
go build -o "$out/ortcheck" ./tools/ortcheck

status=0
checked=(quickstart deep-compression-lenet300) # .ci/run checks these on its full runs
check() {
  local recipe=recipes/$1.yaml
  checked+=("$1")
  if [[ -n "${ONLY:-}" && " $ONLY " != *" $1 "* ]]; then return; fi
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
check lstm-mnist stages.train.epochs=2
check prune-l1 stages.train.epochs=1 stages.prune.finetune.epochs=1
check prune-global stages.train.epochs=1 stages.prune.finetune.epochs=1
check prune-random stages.train.epochs=1 stages.prune.finetune.epochs=1
check lowrank-fc1 stages.train.epochs=1
check distill-student stages.teacher.epochs=1 stages.student-alone.epochs=1 stages.student.epochs=1
check lottery-ticket stages.lottery.rounds=1 stages.lottery.train.epochs=1
check sweep-select stages.train.epochs=1 stages.prune.finetune.epochs=0 stages.distill.epochs=1
check lora-transfer stages.mnist.epochs=1 stages.full.epochs=1 stages.head.epochs=1 \
  stages.lora.epochs=1 stages.qlora.epochs=1
# ResNet-20 on a tenth of Fashion-MNIST's training images, one epoch: the check needs a trained
# network's weights, not its accuracy.
check resnet-fashion stages.train.epochs=1 data.validation_split=0.9
# Its compression: half the MACs removed (physically narrower convolutions), static int8 with
# the batch norms folded, distillation; one epoch each on the same tenth. The default export
# keeps onnxruntime's INT32 biases only within its budget (docs/ONNX.md): with all of them
# (-int-bias) its integer convolutions drift from shrink's logits over 20 layers.
check resnet-fashion-compress stages.train.epochs=1 data.validation_split=0.9 \
  stages.prune.finetune.epochs=1 stages.qat.epochs=1 stages.distill.epochs=1

for f in recipes/*.yaml; do
  name=$(basename "$f" .yaml)
  if [[ " ${checked[*]} " != *" $name "* ]]; then
    echo "shipped.sh: $f is not checked in onnxruntime: add it here (or to .ci/run)" >&2
    status=1
  fi
done
exit $status
