#!/usr/bin/env bash
# sys_cli.sh: the train / eval / infer commands end to end: exit codes (0 ok,
# 1 runtime failure, 2 usage error) and messages for bad arguments, missing
# files and a corrupt model; eval's accuracy line; infer on PGM/PPM and IDX;
# a tiny training run whose output eval accepts.
set -uo pipefail
CLI=${TS_CLI:?TS_CLI must name the tessera binary}
SRC=${TS_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
FM=/usr/share/datasets/fashion-mnist
fail=0
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# expect NAME CODE PATTERN -- command...: exit code CODE and output matching
# PATTERN (extended regex over stdout+stderr; empty matches anything).
expect() {
    local name=$1 code=$2 pat=$3
    shift 4
    "$@" >"$out/log" 2>&1
    local rc=$?
    if [[ $rc -ne $code ]]; then
        echo "FAILED: $name: exit $rc, expected $code"; sed 's/^/    /' "$out/log" | head -20; fail=1
    elif [[ -n $pat ]] && ! grep -Eq -e "$pat" "$out/log"; then
        echo "FAILED: $name: output lacks /$pat/"; sed 's/^/    /' "$out/log" | head -20; fail=1
    else
        echo "ok: $name"
    fi
}

MODEL="$SRC/models/fashion-cnn.onnx"
[[ -f $MODEL ]] || { echo "FAILED: $MODEL is missing"; exit 1; }

for c in train eval infer; do
    expect "$c --help exits 0" 0 "^usage: tessera $c" -- "$CLI" $c --help
done
expect "eval --help lists the coded options" 0 "--workers" -- "$CLI" eval --help
expect "infer --help lists the coded options" 0 "--stragglers" -- "$CLI" infer --help

# usage errors: exit 2
expect "train --epochs 0" 2 "--epochs expects an integer" -- "$CLI" train --epochs 0
expect "train --optimizer rmsprop" 2 "sgd or adam" -- "$CLI" train --optimizer rmsprop
expect "train --lr abc" 2 "--lr expects a number" -- "$CLI" train --lr abc
expect "train --batch without value" 2 "needs a value" -- "$CLI" train --batch
expect "train unknown option" 2 "unexpected argument '--frobnicate'" -- "$CLI" train --frobnicate
expect "eval without --model" 2 "--model is required" -- "$CLI" eval
expect "eval --split validation" 2 "test or train" -- "$CLI" eval --model "$MODEL" --split validation
expect "eval --images without --labels" 2 "--images needs --labels" -- \
    "$CLI" eval --model "$MODEL" --images "$FM/t10k-images-idx3-ubyte.gz"
expect "eval --limit -5" 2 "--limit expects" -- "$CLI" eval --model "$MODEL" --limit -5
expect "eval bad coded option value" 2 "--workers" -- "$CLI" eval --model "$MODEL" --workers x
expect "infer without images" 2 "no IMAGE given" -- "$CLI" infer --model "$MODEL"
expect "infer --top 0" 2 "--top expects" -- "$CLI" infer --model "$MODEL" --top 0 x.pgm

# runtime failures: exit 1 with a message naming the problem
expect "eval missing model" 1 "nonexistent.onnx" -- "$CLI" eval --model "$out/nonexistent.onnx"
head -c 3000 /dev/urandom >"$out/corrupt.onnx"
expect "eval corrupt model" 1 "^tessera: " -- "$CLI" eval --model "$out/corrupt.onnx"
head -c 20000 "$MODEL" >"$out/truncated.onnx"
expect "eval truncated model" 1 "^tessera: " -- "$CLI" eval --model "$out/truncated.onnx"
expect "eval missing data dir" 1 "cannot open" -- "$CLI" eval --model "$MODEL" --data "$out/nodata"
expect "eval labels of the wrong count" 1 "labels for" -- "$CLI" eval --model "$MODEL" \
    --images "$FM/t10k-images-idx3-ubyte.gz" --labels "$FM/train-labels-idx1-ubyte.gz"
# one 2x2 image and its label as plain IDX: the wrong size for the model
printf '\x00\x00\x08\x03\x00\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00\x02abcd' >"$out/i2"
printf '\x00\x00\x08\x01\x00\x00\x00\x01\x03' >"$out/l2"
expect "eval images of the wrong size" 1 "does not take" -- \
    "$CLI" eval --model "$MODEL" --images "$out/i2" --labels "$out/l2"
expect "infer IDX images of the wrong size" 1 "not resized" -- "$CLI" infer --model "$MODEL" "$out/i2"
expect "infer missing image" 1 "cannot open" -- "$CLI" infer --model "$MODEL" "$out/none.pgm"
printf 'P5\n28 28\n255\n0123' >"$out/short.pgm"
expect "infer truncated PGM" 1 "truncated raster" -- "$CLI" infer --model "$MODEL" "$out/short.pgm"
printf 'P9 1 1 255 0' >"$out/bad.pgm"
expect "infer bad magic" 1 "not an IDX file|not a PGM" -- "$CLI" infer --model "$MODEL" "$out/bad.pgm"
expect "train corrupt --resume" 1 "^tessera: " -- "$CLI" train --resume "$out/corrupt.onnx"

# eval: the accuracy line, matrix and class names
expect "eval prints the accuracy line" 0 "^accuracy: [0-9]+\.[0-9]{2}%$" -- \
    "$CLI" eval --model "$MODEL" --limit 500
grep -q "Ankle boot" "$out/log" && grep -q "confusion matrix" "$out/log" &&
    grep -q "(500 images evaluated)" "$out/log"
[[ $? -eq 0 ]] && echo "ok: eval prints the matrix with class names" ||
    { echo "FAILED: eval matrix"; fail=1; }
acc=$(sed -n 's/^accuracy: \([0-9.]*\)%$/\1/p' "$out/log")
awk -v a="$acc" 'BEGIN { exit !(a > 85) }' && echo "ok: bundled model accuracy $acc% > 85%" ||
    { echo "FAILED: bundled model accuracy '$acc'"; fail=1; }
expect "eval on explicit IDX files" 0 "^accuracy: " -- "$CLI" eval --model "$MODEL" \
    --images "$FM/t10k-images-idx3-ubyte.gz" --labels "$FM/t10k-labels-idx1-ubyte.gz" --limit 100

# infer: a 28x28 ankle boot drawn as PGM, a larger PPM (resized, noted), IDX
{
    printf 'P2\n# a crude boot\n28 28\n255\n'
    for y in $(seq 0 27); do
        for x in $(seq 0 27); do
            if ((y > 14 && y < 24 && x > 2 && x < 26)) || ((y > 6 && y <= 14 && x > 14 && x < 26)); then
                printf '200 '
            else printf '0 '; fi
        done
        printf '\n'
    done
} >"$out/boot.pgm"
expect "infer a PGM prints top 3 with names" 0 "boot.pgm: [A-Za-z/ -]+ \([0-9.]+%\), .*, .*" -- \
    "$CLI" infer --model "$MODEL" "$out/boot.pgm"
{ printf 'P6 56 56 255\n'; head -c $((56 * 56 * 3)) /dev/zero | tr '\0' '\100'; } >"$out/big.ppm"
expect "infer a 56x56 PPM notes the resize" 0 "resized to the model's 28x28" -- \
    "$CLI" infer --model "$MODEL" --top 1 "$out/big.ppm"
expect "infer an IDX file with --limit" 0 "t10k-images-idx3-ubyte.gz\[4\]: " -- \
    "$CLI" infer --model "$MODEL" --limit 5 "$FM/t10k-images-idx3-ubyte.gz"
[[ $(grep -c '\]: ' "$out/log") -eq 5 ]] && echo "ok: infer prints one line per IDX image" ||
    { echo "FAILED: infer IDX line count"; fail=1; }

# a tiny training run, checkpointed, resumed and evaluated
expect "train a tiny run" 0 "model saved to" -- "$CLI" train --limit 256 --epochs 2 --batch 32 \
    --no-eval --checkpoint-dir "$out/ck" --out "$out/tiny.onnx"
grep -Eq "^epoch 1/2 step [0-9]+/8 loss .* img/s ETA" "$out/log" && grep -q "^epoch 2/2: loss" "$out/log" &&
    echo "ok: train prints plain progress lines off a tty" || { echo "FAILED: progress lines"; fail=1; }
[[ -f $out/ck/epoch-001.onnx && -f $out/ck/epoch-002.onnx.state ]] &&
    echo "ok: checkpoints written" || { echo "FAILED: checkpoints"; fail=1; }
expect "resume the tiny run from epoch 1" 0 "resuming .* after epoch 1" -- "$CLI" train \
    --limit 256 --epochs 2 --batch 32 --no-eval --resume "$out/ck/epoch-001.onnx" \
    --out "$out/resumed.onnx"
cmp -s "$out/tiny.onnx" "$out/resumed.onnx" && echo "ok: resumed model is byte-identical" ||
    { echo "FAILED: resumed model differs"; fail=1; }
expect "resume with another optimizer" 1 "holds adam state" -- "$CLI" train --limit 256 \
    --epochs 2 --batch 32 --no-eval --optimizer sgd --resume "$out/ck/epoch-001.onnx" --out "$out/x.onnx"
expect "resume with another batch size" 1 "original --batch" -- "$CLI" train --limit 256 \
    --epochs 2 --batch 16 --no-eval --resume "$out/ck/epoch-001.onnx" --out "$out/x.onnx"
expect "eval the tiny model" 0 "^accuracy: " -- "$CLI" eval --model "$out/tiny.onnx" --limit 100

exit $fail
