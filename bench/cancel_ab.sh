#!/bin/sh
# cancel_ab.sh OLD NEW OUT [BENCH ARGS...]: the same bench_coded_latency
# configuration run by a build without CANCEL (OLD: before commit c19897e)
# and one with it (NEW), alternately twice (OLD NEW OLD NEW) so that a drift
# of the machine shows up as a difference between the two OLD (or NEW) runs.
# Each run's log goes to OUT-{old,new}{1,2}.log with its peak RSS (from
# /usr/bin/time -v: the master and the in-process workers together), its
# rows to OUT.csv and its samples to OUT-raw.csv.
set -eu
[ $# -ge 3 ] || { echo "usage: cancel_ab.sh OLD NEW OUT [BENCH ARGS...]" >&2; exit 2; }
old=$1 new=$2 out=$3
shift 3
for round in 1 2; do
    for which in old new; do
        if [ "$which" = old ]; then bin=$old; else bin=$new; fi
        log=$out-$which$round.log
        { echo "# uptime: $(uptime)"; echo "# binary: $which ($bin)"; echo "# command: bench_coded_latency $*"; } > "$log"
        /usr/bin/time -v "$bin" "$@" --csv "$out.csv" --raw "$out-raw.csv" >> "$log" 2>&1 || echo "  $which$round failed, see $log"
        echo "== $which$round: $(grep -E '^RESULT' "$log" | tr '\n' ' ') $(grep 'Maximum resident' "$log")"
    done
done
