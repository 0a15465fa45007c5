#!/usr/bin/env bash
# plot_fcdcc.sh CSV PNG: relative error of coded AlexNet conv layers against
# n, CRME vs real-Vandermonde polynomial codes (from bench_fcdcc stability).
set -euo pipefail
csv=${1:-docs/results/fcdcc-stability.csv}
png=${2:-docs/results/fcdcc-stability.png}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
grep ',crme,' "$csv" | tr ',' ' ' >"$tmp/crme"
grep ',polynomial,' "$csv" | tr ',' ' ' >"$tmp/poly"
gnuplot <<GP
set terminal pngcairo size 900,560 noenhanced
set output "$png"
set title "Coded AlexNet conv layers: worst relative error vs workers (s = 2, float32 workers, double decoding)"
set xlabel "workers n (threshold k = n - 2)"
set ylabel "worst relative error (max-norm) over sampled responder sets"
set logscale y
set format y "1e%T"
set grid
set key top left
plot "$tmp/crme" using 1:3 with linespoints lw 2 title "CRME", \
     "$tmp/poly" using 1:3 with linespoints lw 2 title "polynomial (real Vandermonde)", \
     1e-5 with lines dt 2 title "1e-5"
GP
echo "wrote $png"
