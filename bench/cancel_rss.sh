#!/bin/sh
# cancel_rss.sh OLD NEW: the process RSS every 15 s of VGG-16 n = 16 CRME with
# 2 of 16 workers fixed 5x slower (R = 40, threads), by a build without
# CANCEL (OLD: before commit c19897e) and then one with it (NEW). Without
# CANCEL the two stragglers queue every layer's result they compute, and the
# process grows for the whole run (docs/results/coded-latency.md, "CANCEL").
set -eu
[ $# -eq 2 ] || { echo "usage: cancel_rss.sh OLD NEW" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for which in old new; do
    if [ "$which" = old ]; then bin=$1; else bin=$2; fi
    "$bin" --model vgg16 --workers 16 --gflops 1 --mbps 100 --latency-ms 1 --warmup 1 \
        --schemes crme --stragglers fixed --runs 40 --csv "$tmp/rows.csv" --raw "$tmp/raw.csv" \
        > "$tmp/$which.log" 2>&1 &
    pid=$!
    t=0
    while kill -0 "$pid" 2>/dev/null; do
        echo "$which t=${t}s rss_kb=$(ps -o rss= -p "$pid" || true)"
        sleep 15
        t=$((t + 15))
    done
    grep -E '^RESULT' "$tmp/$which.log" || { echo "$which failed:"; cat "$tmp/$which.log"; }
done
