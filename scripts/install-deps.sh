#!/usr/bin/env bash
# Installs Tessera's Debian dependencies. Idempotent: when every package is
# already present it does nothing (no apt-get update, no network).
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config
  libopenblas-dev          # cblas_sgemm for conv (im2col) and dense layers
  libzmq3-dev              # master/worker transport
  libprotobuf-c-dev protobuf-c-compiler  # ONNX model I/O
  libonnx-dev              # onnx.proto (compiled by protoc-c at build time)
  zlib1g-dev libzstd-dev   # gzip IDX datasets; compressed frames
  libxxhash-dev            # XXH3-128 digests: a share deployed twice is sent once
  dataset-fashion-mnist    # the real dataset
  libonnx-testdata         # ONNX backend conformance cases
  gnuplot-nox              # plots in docs/results
  python3-onnx             # onnx.checker for saved models (tests)
  python3-zmq              # rogue peers in the multi-process system tests
  valgrind                 # tests/valgrind_linalg.c: OpenBLAS over-reads that ASan cannot see
  time                     # /usr/bin/time -v: peak RSS in bench/cancel_ab.sh
)
# Optional: the benchmark's PyTorch peer. Large; installed only on request.
if [[ "${TESSERA_WITH_TORCH:-0}" == 1 ]]; then PACKAGES+=(python3-torch); fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
