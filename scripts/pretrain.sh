#!/usr/bin/env bash
# Reproduces the pretrained models shipped in models/ (wasm backend, this machine: ~4 min each).
set -euo pipefail
cd "$(dirname "$0")/.."
npm run build --silent
node bin/harden.js train --arch lenet5 --data fashion-mnist:split=train --test-data fashion-mnist:split=test \
  --epochs 12 --batch-size 128 --lr 2e-3 --schedule cosine --seed 0 -o models/lenet5-fashion-mnist.onnx --overwrite "$@"
node bin/harden.js train --arch lenet5 --data mnist:split=train --test-data mnist:split=test \
  --epochs 15 --batch-size 64 --lr 2e-3 --schedule cosine --seed 0 -o models/lenet5-mnist.onnx --overwrite "$@"
