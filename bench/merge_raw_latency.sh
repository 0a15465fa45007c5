#!/bin/sh
# merge_raw_latency.sh [-o OUT] RAW...: percentiles of the latencies of
# several raw sample files of bench_coded_latency (--raw; rows
# model,n,stragglers,scheme,latency_ms,cdf[,gflops,mbps,transport], a header
# line "model,..." is skipped) taken together, e.g. the shards of one
# configuration run as concurrent processes with different seeds.
# Prints one line per file and a MERGED line: R, p50, p95, p99, mean, min and
# max in ms. Percentiles as the bench's percentile(): on the sorted samples
# x[0..R-1], position p (R - 1), linear between the two neighbouring samples.
# Every row of every file must be of the same configuration (all fields but
# latency_ms and cdf equal), or nothing is merged.
# -o OUT appends the merged samples to OUT in the raw format, sorted, with
# cdf = rank / R (as the bench writes one configuration's block).
set -eu
usage() {
    echo "usage: merge_raw_latency.sh [-o OUT] RAW..." >&2
    exit 2
}
out=""
if [ "${1:-}" = "-o" ]; then
    [ $# -ge 2 ] || usage
    out=$2
    shift 2
fi
[ $# -ge 1 ] || usage
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# R, percentiles and mean of the sorted latencies on stdin, one per line.
stats() {
    awk '{ x[n++] = $1 + 0; sum += $1 }
         function pct(p,   pos, i) {
             pos = p * (n - 1); i = int(pos)
             if (i >= n - 1) return x[n - 1]
             return x[i] + (pos - i) * (x[i + 1] - x[i])
         }
         END {
             if (n == 0) { print "R=0"; exit 1 }
             printf "R=%d p50_ms=%.3f p95_ms=%.3f p99_ms=%.3f mean_ms=%.3f min_ms=%.3f max_ms=%.3f\n",
                    n, pct(0.5), pct(0.95), pct(0.99), sum / n, x[0], x[n - 1]
         }'
}

# One configuration only: the key is every field but latency_ms and cdf.
awk -F, 'FNR == 1 && $1 == "model" { next }
    NF != 6 && NF != 9 { printf "%s:%d: not a raw sample row: %s\n", FILENAME, FNR, $0 > "/dev/stderr"; bad = 1; exit 1 }
    {
        k = $1 "," $2 "," $3 "," $4
        if (NF == 9) k = k "," $7 "," $8 "," $9
        if (key == "") key = k
        else if (k != key) { printf "%s:%d: configuration %s, not %s\n", FILENAME, FNR, k, key > "/dev/stderr"; bad = 1; exit 1 }
        print $0 > tmp "/rows"
    }
    END { if (!bad) print key > tmp "/key" }' tmp="$tmp" "$@" || { echo "merge_raw_latency.sh: nothing merged" >&2; exit 1; }
[ -s "$tmp/rows" ] || { echo "merge_raw_latency.sh: no samples in $*" >&2; exit 1; }

for f in "$@"; do
    printf '%s ' "$(awk -F, 'FNR == 1 && $1 == "model" { next } { print $5 }' "$f" | sort -n | stats)"
    echo "file=$f"
done
key=$(cat "$tmp/key")
IFS=, read -r model n strag scheme gflops mbps transport <<EOF
$key
EOF
printf 'MERGED model=%s n=%s stragglers=%s scheme=%s' "$model" "$n" "$strag" "$scheme"
[ -z "${gflops:-}" ] || printf ' gflops=%s mbps=%s transport=%s' "$gflops" "$mbps" "$transport"
printf ' files=%d %s\n' $# "$(cut -d, -f5 "$tmp/rows" | sort -n | stats)"

if [ -n "$out" ]; then
    sort -t, -k5,5n "$tmp/rows" | awk -F, -v OFS=, '{ r[++n] = $0 }
        END { for (i = 1; i <= n; i++) { $0 = r[i]; $6 = sprintf("%.5f", i / n); print } }' >> "$out"
fi
