#!/usr/bin/env bash
# `npm run demo`: harden two shipped models and verify them, on the shipped data (about 5 minutes on 2 cores).
#   1. GC disposal with the default settings: LeNet-5 pretrained on fashion-mnist, transferred to classes 0-4
#      (20 images per class), made useless as a start for the source classes the target task does not use
#      (5-9; the forget data is all ten classes, 1 000 images each, and --forget-classes auto picks 5-9).
#   2. Non-transferable pruning: LeNet-5 on mnist, pruned to 90 % zeros, blocking fashion-mnist.
# Each run writes the hardened model, report.json, report.html and chart PNGs under ${DEMO_OUT:-demo-out}/.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${DEMO_OUT:-demo-out}"
mkdir -p "$out"
harden() { node bin/harden.js "$@"; }

echo "== transfer: fashion-mnist LeNet-5 → classes 0-4 (20 per class)"
harden train --model models/lenet5-fashion-mnist.onnx --new-head --data fashion-mnist:split=train,classes=0-4,per-class=20 \
  --epochs 20 --batch-size 20 --lr 1e-3 --seed 0 -o "$out/tl.onnx" --overwrite --checkpoint-dir "$out/tl.ckpt"

echo "== GC disposal + verify"
harden "$out/tl.onnx" --method gc --source-model models/lenet5-fashion-mnist.onnx \
  --keep fashion-mnist:split=train,classes=0-4,per-class=20 --keep-test fashion-mnist:split=test,classes=0-4 \
  --block fashion-mnist:split=train,per-class=1000,seed=7 \
  --attacks probe,knn,pl --data fashion-mnist:split=train,classes=5-9,per-class=50,seed=1 \
  --test-data fashion-mnist:split=test,classes=5-9 --pl-data fashion-mnist:split=train,classes=5-9,per-class=20,seed=2 \
  --pl-test fashion-mnist:split=test,classes=5-9 --fail-if "keep_acc_drop>0.02" \
  -o "$out/gc.onnx" --report-dir "$out/gc" --overwrite || echo "(a release gate failed: exit $?)"

echo "== non-transferable pruning + verify"
harden models/lenet5-mnist.onnx --method ntp --keep mnist:split=train --keep-test mnist:split=test \
  --block fashion-mnist:split=train,limit=8000,seed=10 --block-test fashion-mnist:split=test,limit=2000 \
  --attacks probe,knn,pl --data fashion-mnist:split=train,per-class=50,seed=1 \
  --pl-data fashion-mnist:split=train,per-class=20,seed=2 --fail-if "keep_acc_drop>0.01" \
  -o "$out/ntp.onnx" --report-dir "$out/ntp" --overwrite || echo "(a release gate failed: exit $?)"
