#!/usr/bin/env bash
# pipeline_sweep.sh: throughput of a coded run against the pipeline depth.
# N emulated workers (separate `tessera worker` processes over ipc, started
# by `tessera cluster`), the Fashion-MNIST CNN, batch B, depths 1 2 4 8;
# each depth is run REPEATS times, interleaved, and the median images/s is
# printed with its ratio to depth 1. Every run's accuracy line must equal
# the others' (it is checked: a pipeline changes the speed, not the answer).
#
#   bench/pipeline_sweep.sh [BUILD_DIR]   (env: WORKERS GFLOPS MBPS LATENCY_MS
#                                          STRAGGLER STRAGGLING IMAGES BATCH REPEATS)
set -euo pipefail
BUILD=${1:-build}
CLI="$BUILD/tessera"
WORKERS=${WORKERS:-8}
GFLOPS=${GFLOPS:-10}
MBPS=${MBPS:-100}
LATENCY_MS=${LATENCY_MS:-2}
STRAGGLER=${STRAGGLER:-none}
STRAGGLING=${STRAGGLING:-2}
IMAGES=${IMAGES:-300}
BATCH=${BATCH:-1}
REPEATS=${REPEATS:-3}
DEPTHS=${DEPTHS:-"1 2 4 8"}
MODEL=${MODEL:-models/fashion-cnn.onnx}

emul=(--gflops "$GFLOPS" --mbps "$MBPS" --latency-ms "$LATENCY_MS" --seed 1)
[[ $STRAGGLER != none ]] && emul+=(--straggler "$STRAGGLER" --straggling "$STRAGGLING")
echo "# pipeline sweep: $MODEL, $WORKERS workers (${emul[*]}), 2 stragglers tolerated, crme,"
echo "# $IMAGES images, batch $BATCH, $REPEATS runs per depth; load: $(cut -d' ' -f1-3 /proc/loadavg)"
declare -A rates
acc_ref=""
for ((r = 0; r < REPEATS; r++)); do
    for d in $DEPTHS; do
        out=$("$CLI" cluster --workers "$WORKERS" "${emul[@]}" -- eval --model "$MODEL" \
            --stragglers 2 --scheme crme --limit "$IMAGES" --batch "$BATCH" --pipeline "$d" 2>&1) ||
            true
        acc=$(grep '^accuracy:' <<<"$out" || true)
        rate=$(sed -n 's/^time: .* (\([0-9.]*\) images\/s.*/\1/p' <<<"$out")
        if [[ -z "$acc" || -z "$rate" ]]; then
            echo "run failed (depth $d):" >&2
            echo "$out" | tail -5 >&2
            exit 1
        fi
        [[ -z "$acc_ref" ]] && acc_ref=$acc
        if [[ "$acc" != "$acc_ref" ]]; then
            echo "depth $d changed the answer: '$acc' vs '$acc_ref'" >&2
            exit 1
        fi
        rates[$d]+="$rate "
    done
done
median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
base=$(median "${rates[1]:-${rates[${DEPTHS%% *}]}}")
printf "| depth | images/s (median of %d) | runs | vs depth 1 |\n|---|---|---|---|\n" "$REPEATS"
for d in $DEPTHS; do
    m=$(median "${rates[$d]}")
    printf "| %s | %s | %s| %.2fx |\n" "$d" "$m" "${rates[$d]}" "$(awk -v a="$m" -v b="$base" 'BEGIN {print a / b}')"
done
echo "# every run printed '$acc_ref'; load after: $(cut -d' ' -f1-3 /proc/loadavg)"
