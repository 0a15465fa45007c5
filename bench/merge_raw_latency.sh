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
# -c ROWS -a CSV: ROWS holds the shards' configuration rows (the bench's
# --csv format; other configurations in it are ignored); one row for the
# merged configuration is appended to CSV: the percentiles and mean of the
# merged samples, R their count (it must equal the sum of the shards'
# runs), the ideal bounds (equal in every shard, or nothing is written)
# and the runs-weighted means of master_share and workers_p50_ms.
set -eu
usage() {
    echo "usage: merge_raw_latency.sh [-o OUT] [-c ROWS -a CSV] RAW..." >&2
    exit 2
}
out="" rows="" acsv=""
while [ $# -ge 2 ]; do
    case $1 in
    -o) out=$2 ;;
    -c) rows=$2 ;;
    -a) acsv=$2 ;;
    *) break ;;
    esac
    shift 2
done
if [ -n "$rows" ] || [ -n "$acsv" ]; then [ -n "$rows" ] && [ -n "$acsv" ] || usage; fi
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
merged=$(cut -d, -f5 "$tmp/rows" | sort -n | stats)
printf ' files=%d %s\n' $# "$merged"

if [ -n "$rows" ]; then
    # The shards' rows of this configuration (transport and emulation only
    # when the raw rows carry them), combined.
    awk -F, -v OFS=, -v model="$model" -v n="$n" -v strag="$strag" -v scheme="$scheme" \
        -v gf="${gflops:-}" -v mb="${mbps:-}" -v tr="${transport:-}" -v stats="$merged" '
        FNR == 1 && $1 == "model" { next }
        $1 != model || $3 != n || $4 != strag || $5 != scheme { next }
        gf != "" && ($7 != gf || $8 != mb || $2 != tr) { next }
        {
            if (cnt++ == 0) { head = $1 OFS $2 OFS $3 OFS $4 OFS $5 OFS $6 OFS $7 OFS $8 OFS $9; ik = $15; ip = $18 }
            else if ($15 != ik || $18 != ip) { print "merge_raw_latency.sh: the shards differ in their ideal bounds" > "/dev/stderr"; bad = 1; exit 1 }
            runs += $10; ms += $10 * $16; wp += $10 * $17
        }
        END {
            if (bad) exit 1
            if (cnt == 0) { print "merge_raw_latency.sh: no row of this configuration in the shard rows" > "/dev/stderr"; exit 1 }
            split(stats, f, " ")
            for (i in f) { split(f[i], kv, "="); v[kv[1]] = kv[2] }
            if (runs != v["R"]) { printf "merge_raw_latency.sh: the shard rows count %d runs, the samples %d\n", runs, v["R"] > "/dev/stderr"; exit 1 }
            printf "%s,%d,%s,%s,%s,%s,%s,%.3f,%.4f,%s\n", head, runs, v["p50_ms"], v["p95_ms"], v["p99_ms"], v["mean_ms"], ik, ms / runs, wp / runs, ip
        }' "$rows" > "$tmp/row"
    cat "$tmp/row" >> "$acsv"
    echo "ROW $(cat "$tmp/row")"
fi

if [ -n "$out" ]; then
    sort -t, -k5,5n "$tmp/rows" | awk -F, -v OFS=, '{ r[++n] = $0 }
        END { for (i = 1; i <= n; i++) { $0 = r[i]; $6 = sprintf("%.5f", i / n); print } }' >> "$out"
fi
