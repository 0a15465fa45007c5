#!/usr/bin/env bash
# sys_coded.sh: coded execution end to end through the CLI, in one process
# (worker threads): `tessera plan` tables and refusals, and coded `eval`
# giving the single-node accuracy line for every scheme.
set -uo pipefail
CLI=${TS_CLI:?TS_CLI must name the tessera binary}
SRC=${TS_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
fail=0
check() { # name, condition already evaluated as $?
    if [[ $2 -ne 0 ]]; then echo "FAILED: $1"; fail=1; else echo "ok: $1"; fi
}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

"$CLI" plan zoo:alexnet --workers 12 --stragglers 2 >"$out/plan" 2>&1
check "plan alexnet exits 0" $?
grep -q "conv" "$out/plan" && grep -q "total" "$out/plan"
check "plan alexnet prints layers and totals" $?

"$CLI" plan zoo:lenet5 --workers 3 --stragglers 3 >"$out/bad" 2>&1
[[ $? -eq 1 ]] && grep -q "stragglers" "$out/bad"
check "plan refuses 3 stragglers of 3 workers, saying why" $?

"$CLI" plan zoo:lenet5 --scheme nonsense --workers 4 >"$out/bad2" 2>&1
[[ $? -eq 2 ]] && grep -q "unknown scheme" "$out/bad2"
check "plan refuses an unknown scheme as a usage error" $?

MODEL="$SRC/models/fashion-cnn.onnx"
[[ -f "$MODEL" ]] || MODEL=zoo:fashion-cnn
LIMIT=${TS_SANITIZED:+200}
LIMIT=${LIMIT:-1000}
"$CLI" eval --model "$MODEL" --limit "$LIMIT" >"$out/single" 2>&1
check "single-node eval exits 0" $?
want=$(grep '^accuracy:' "$out/single")
[[ -n "$want" ]]
check "single-node eval prints an accuracy line ($want)" $?
for scheme in crme polynomial mds replication uncoded; do
    s=2
    [[ $scheme == uncoded ]] && s=0
    "$CLI" eval --model "$MODEL" --limit "$LIMIT" --workers 6 --stragglers $s --scheme $scheme \
        >"$out/$scheme" 2>"$out/$scheme.err"
    rc=$?
    got=$(grep '^accuracy:' "$out/$scheme")
    [[ $rc -eq 0 && "$got" == "$want" ]]
    check "coded eval ($scheme, 6 workers, $s stragglers) prints '$want' (got '$got', rc $rc)" $?
    [[ $rc -eq 0 ]] || cat "$out/$scheme.err"
done

# top-1 labels of the whole test set (1000 images under the sanitizers)
# are identical to single-node, through CRME with 2 of 10 workers allowed
# to straggle
IMAGES=/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
NLAB=${TS_SANITIZED:+1000}
NLAB=${NLAB:-10000}
labels() { sed -e 's/ ([0-9.]*%)$//' "$1"; }
"$CLI" infer --model "$MODEL" --top 1 --limit "$NLAB" "$IMAGES" >"$out/lab1" 2>/dev/null
"$CLI" infer --model "$MODEL" --top 1 --limit "$NLAB" --workers 10 --stragglers 2 --scheme crme \
    "$IMAGES" >"$out/labc" 2>"$out/labc.err"
[[ $(wc -l <"$out/lab1") -eq $NLAB ]] && diff -q <(labels "$out/lab1") <(labels "$out/labc") >/dev/null
check "top-1 labels of $NLAB test images: coded (crme, n=10, s=2) == single node" $?

"$CLI" eval --model "$MODEL" --limit 10 --workers 2 --stragglers 2 >"$out/imp" 2>&1
[[ $? -eq 1 ]] && grep -qi "straggler" "$out/imp"
check "coded eval refuses 2 stragglers of 2 workers" $?

exit $fail
