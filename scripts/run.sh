#!/usr/bin/env bash
# Installs what is missing, builds, and runs the main job: the bundled
# Fashion-MNIST model evaluated on the real test set.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
./build/tessera eval --model models/fashion-cnn.onnx "$@"
