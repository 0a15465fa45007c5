#!/usr/bin/env bash
# Installs what is missing, builds, and runs the main job: the embedded
# default, i.e. one process with worker threads. The bundled Fashion-MNIST
# model is evaluated on the real test set with every conv and dense layer
# CRME-coded across 6 worker threads, any 4 of which suffice per layer; it
# prints the same accuracy line as a single-node run. Arguments replace the
# coded options (e.g. `bash scripts/run.sh --workers 10 --stragglers 2`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
if [[ $# -eq 0 ]]; then
  set -- --workers 6 --stragglers 2 --scheme crme
fi
./build/tessera eval --model models/fashion-cnn.onnx "$@"
