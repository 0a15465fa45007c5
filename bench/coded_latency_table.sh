#!/bin/sh
# coded_latency_table.sh [MODEL [TRANSPORT [GFLOPS [MBPS]]]]: the markdown table of
# docs/results/coded-latency.csv rows, in run order (a repeated configuration
# appears once per run).
# ideal_k = the issue's bound, FLOPs / (threshold x G) + transfers; ideal_plan
# = per-worker FLOPs of the plan / G + transfers (rows of the first runs do
# not carry it: it is then taken from coded-latency-ideal.log, same setting).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
csv=${CSV:-$root/docs/results/coded-latency.csv}
ideal=$root/docs/results/coded-latency-ideal.log
echo "| model | workers | n | stragglers | scheme | s | GFLOP/s | Mbit/s | R | p50 ms | p95 ms | p99 ms | ideal_k ms | ideal_plan ms | p50/ideal_plan | master share |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
awk -F, -v idealf="$ideal" -v m="${1:-}" -v t="${2:-}" -v g="${3:-}" -v b="${4:-}" '
FILENAME == idealf {
    # IDEAL model=M n=N scheme=S s=.. gflops=G mbps=B latency_ms=L ideal_ms=X ideal_k_ms=Y
    for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
    plan[f["model"] "|" f["n"] "|" f["scheme"] "|" f["gflops"] "|" f["mbps"] "|" f["latency_ms"]] = f["ideal_ms"]
    next
}
FNR > 1 && (m == "" || $1 == m) && (t == "" || $2 == t) && (g == "" || $7 == g) && (b == "" || $8 == b) {
    key = ++k
    order[k] = key
    ip = NF >= 18 ? $18 : plan[$1 "|" $3 "|" $5 "|" $7 "|" $8 "|" $9]
    row[key] = sprintf("| %s | %s | %d | %s | %s | %d | %g | %g | %d | %.1f | %.1f | %.1f | %.1f | %s | %s | %.2f |",
                       $1, $2 == "tcp-procs" ? "processes, tcp" : "threads, inproc", $3, $4, $5, $6, $7, $8,
                       $10, $11, $12, $13, $15, ip == "" ? "?" : sprintf("%.1f", ip),
                       ip == "" ? "?" : sprintf("%.2f", $11 / ip), $16)
}
END { for (i = 1; i <= k; i++) print row[order[i]] }' FS=' ' "$ideal" FS=, "$csv"
