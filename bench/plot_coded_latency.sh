#!/bin/sh
# plot_coded_latency.sh: PNGs for docs/results/coded-latency.md from
# docs/results/coded-latency.csv and coded-latency-raw.csv (written by
# bench/run_coded_latency.sh). Emulated (inproc-threads) rows only.
#   coded-latency-vs-n-MODEL.png   p50 and p99 per scheme against n, without
#                                  stragglers and with 2 workers fixed 5x
#   coded-latency-cdf-MODEL.png    latency CDF per scheme at n = 10 with
#                                  2 of 10 workers 5x slower (and uncoded
#                                  without stragglers as the reference); a
#                                  repeated configuration gives one curve per run
#   coded-latency-cdf-MODEL-linkstrag.png  the same with the stragglers'
#                                  links 5x slower too (fixed:5+link)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
res=$root/docs/results
csv=$res/coded-latency.csv
raw=$res/coded-latency-raw.csv
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
schemes="uncoded replication mds polynomial crme"
color() { # scheme index 1..5 -> a colour; crme in red, easy to find
    case $1 in 1) echo "'#7b2cbf'" ;; 2) echo "'#009e73'" ;; 3) echo "'#56b4e9'" ;; 4) echo "'#e69f00'" ;; *) echo "'#d00000'" ;; esac
}
# Raw rows of the first runs have 6 fields (fashion-cnn at 10 GFLOP/s and
# AlexNet at 1 GFLOP/s, 100 Mbit/s, threads); later ones say G, M, transport.
rawsel='NR > 1 && $1 == m && $2 == 10 && ((NF == 6 && ((m == "fashion-cnn" && gf == 10 && mb == 100) || (m == "alexnet" && gf == 1 && mb == 100))) || ($7 == gf && $8 == mb && $9 == "inproc-threads")) '


# model:GFLOP/s:Mbit/s:file-suffix[:straggler setting] — the emulated
# settings plotted (the compute-bound fashion-cnn variant and the link
# stragglers only have n = 10: CDF only).
for spec in fashion-cnn:10:100: alexnet:1:100: vgg16:1:100: fashion-cnn:0.1:1000:-fastlink \
    alexnet:1:100:-linkstrag:fixed+link fashion-cnn:10:100:-linkstrag:fixed+link; do
    IFS=: read -r model gf mb suffix strag <<SPEC
$spec
SPEC
    strag=${strag:-fixed}
    case $strag in
    fixed+link) slow="2 of 10 workers 5x slower, their links too" ;;
    *) slow="2 of 10 workers 5x slower" ;;
    esac
    # Rows of the emulated runs; when a configuration was run twice, the last row wins.
    have=0
    for st in none fixed; do
        for sc in $schemes; do
            awk -F, -v m="$model" -v st="$st" -v sc="$sc" -v gf="$gf" -v mb="$mb" \
                'NR > 1 && $1 == m && $2 == "inproc-threads" && $4 == st && $5 == sc && $7 == gf && $8 == mb { row[$3] = $3 " " $11 " " $13 }
                 END { for (n in row) print row[n] }' "$csv" | sort -n > "$tmp/$model-$st-$sc.dat"
            [ "$(wc -l < "$tmp/$model-$st-$sc.dat")" -ge 2 ] && have=1
        done
    done
    if [ "$have" = 1 ] && [ -z "$suffix" ]; then
        plots_none="" plots_fixed=""
        i=1
        for sc in $schemes; do
            for st in none fixed; do
                f="$tmp/$model-$st-$sc.dat"
                [ -s "$f" ] || continue
                p="'$f' using 1:2 with linespoints lc rgb $(color $i) pt 7 title '$sc p50', '$f' using 1:3 with linespoints lc rgb $(color $i) pt 6 dt 2 title '$sc p99'"
                if [ "$st" = none ]; then plots_none="${plots_none:+$plots_none, }$p"; else plots_fixed="${plots_fixed:+$plots_fixed, }$p"; fi
            done
            i=$((i + 1))
        done
        {
            echo "set terminal pngcairo size 1300,520 font ',10'"
            echo "set output '$res/coded-latency-vs-n-$model.png'"
            echo "set multiplot layout 1,2 title '$model: batch-1 latency against n ($gf GFLOP/s devices, $mb Mbit/s + 1 ms links, threads on inproc)'"
            echo "set xlabel 'workers n'; set ylabel 'latency (ms)'; set grid; set key top left font ',8'"
            echo "set logscale y"
            echo "set xrange [7:21]"
            echo "set title 'no stragglers'"
            [ -n "$plots_none" ] && echo "plot $plots_none" || echo "plot NaN notitle"
            echo "set title '2 workers fixed 5x slower'"
            [ -n "$plots_fixed" ] && echo "plot $plots_fixed" || echo "plot NaN notitle"
            echo "unset multiplot"
        } > "$tmp/vs-n.gp"
        gnuplot "$tmp/vs-n.gp"
    fi

    # CDF at n = 10, 2 of 10 workers fixed 5x.
    plots=""
    i=1
    for sc in $schemes; do
        awk -F, -v m="$model" -v sc="$sc" -v gf="$gf" -v mb="$mb" -v st="$strag" "$rawsel"'&& $3 == st && $4 == sc { if ($6 + 0 < last) print ""; last = $6 + 0; print $5, $6 }' \
            "$raw" > "$tmp/cdf-$model-$sc.dat"
        [ -s "$tmp/cdf-$model-$sc.dat" ] && plots="${plots:+$plots, }'$tmp/cdf-$model-$sc.dat' using 1:2 with linespoints pt 7 ps 0.3 lw 2 lc rgb $(color $i) title '$sc, $strag'"
        i=$((i + 1))
    done
    awk -F, -v m="$model" -v gf="$gf" -v mb="$mb" "$rawsel"'&& $3 == "none" && $4 == "uncoded" { if ($6 + 0 < last) print ""; last = $6 + 0; print $5, $6 }' \
        "$raw" > "$tmp/cdf-$model-ref.dat"
    [ -s "$tmp/cdf-$model-ref.dat" ] && plots="${plots:+$plots, }'$tmp/cdf-$model-ref.dat' using 1:2 with lines lw 2 dt 2 lc rgb 'black' title 'uncoded, no stragglers'"
    if [ -n "$plots" ]; then
        {
            echo "set terminal pngcairo size 900,560 font ',10'"
            echo "set output '$res/coded-latency-cdf-$model$suffix.png'"
            echo "set title '$model, n = 10, $slow: latency CDF per scheme ($gf GFLOP/s, $mb Mbit/s)'"
            echo "set xlabel 'latency (ms)'; set ylabel 'fraction of inferences'; set grid"
            echo "set logscale x; set key bottom right font ',9'; set yrange [0:1.02]"
            echo "plot $plots"
        } > "$tmp/cdf.gp"
        gnuplot "$tmp/cdf.gp"
    fi
done
ls -1 "$res"/coded-latency-*.png 2>/dev/null || true
