#!/usr/bin/env bash
# Measures docs/DEPLOY.md's table: onnxruntime (onnxruntime-node, CPU, one thread) against
# shrink's own inference (one thread) on the same checkpoints, batch 1 and 256, for the shipped
# models' dense float, int8 QDQ and structurally pruned exports: the quickstart MLP and
# LeNet-5 (trained by deploy-mlp.yaml and deploy-lenet5.yaml here) and the lstm-mnist recipe
# (its own run; the LSTM also with --ort-dynamic). Heavy: run it alone.
#
#   tools/ortcheck/deploy.sh [RUNS_DIR]    # about 10 minutes; run it alone (it times things)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-$(mktemp -d)}
mkdir -p "$out"
cache=${SHRINK_CACHE_DIR:-$out/cache} # a shared store (SHRINK_CACHE_DIR) reuses stages trained before
go build -o "$out/shrink" ./cmd/shrink
go build -o "$out/ortcheck" ./tools/ortcheck
uname -srm
grep -m1 'model name' /proc/cpuinfo || true
nproc

for r in deploy-mlp deploy-lenet5; do
  "$out/shrink" run "tools/ortcheck/$r.yaml" --run-dir "$out/$r" -q --cache-dir "$cache"
  echo "== $r"
  "$out/ortcheck" -bench "tools/ortcheck/$r.yaml" "$out/$r"
done
"$out/shrink" run recipes/lstm-mnist.yaml --run-dir "$out/lstm-mnist" -q --cache-dir "$cache"
echo "== lstm-mnist"
"$out/ortcheck" -bench recipes/lstm-mnist.yaml "$out/lstm-mnist"
echo "== lstm-mnist --ort-dynamic"
"$out/ortcheck" -bench -ort-dynamic -stages quantize recipes/lstm-mnist.yaml "$out/lstm-mnist" || true
