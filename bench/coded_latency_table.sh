#!/bin/sh
# coded_latency_table.sh [MODEL [TRANSPORT]]: the markdown table of
# docs/results/coded-latency.csv rows (the last row of a configuration wins).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
csv=${CSV:-$root/docs/results/coded-latency.csv}
model=${1:-}
transport=${2:-}
echo "| model | workers | n | stragglers | scheme | s | GFLOP/s | R | p50 ms | p95 ms | p99 ms | ideal ms | p50/ideal | master share |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
awk -F, -v m="$model" -v t="$transport" '
NR > 1 && (m == "" || $1 == m) && (t == "" || $2 == t) {
    key = $1 "|" $2 "|" $3 "|" $4 "|" $5 "|" $7
    if (!(key in row)) order[++k] = key
    row[key] = sprintf("| %s | %s | %d | %s | %s | %d | %g | %d | %.1f | %.1f | %.1f | %.1f | %.2f | %.2f |",
                       $1, $2 == "tcp-procs" ? "processes, tcp" : "threads, inproc", $3, $4, $5, $6, $7,
                       $10, $11, $12, $13, $15, $11 / $15, $16)
}
END { for (i = 1; i <= k; i++) print row[order[i]] }' "$csv"
