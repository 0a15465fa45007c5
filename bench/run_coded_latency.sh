#!/bin/sh
# run_coded_latency.sh PHASE...: the runs behind docs/results/coded-latency.md.
# Each phase appends to docs/results/coded-latency.csv (one row per
# configuration) and coded-latency-raw.csv (every latency, for the CDFs), and
# writes its full log to docs/results/coded-latency-PHASE.log.
# Run one phase at a time on a shared machine; each prints `uptime` first.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${BENCH:-$root/build/bench_coded_latency}
out=$root/docs/results
csv=$out/coded-latency.csv
raw=$out/coded-latency-raw.csv
[ -f "$csv" ] || echo "model,transport,n,stragglers,scheme,s,gflops,mbps,latency_ms,runs,p50_ms,p95_ms,p99_ms,mean_ms,ideal_k_ms,master_share,workers_p50_ms,ideal_plan_ms" > "$csv"
[ -f "$raw" ] || echo "model,n,stragglers,scheme,latency_ms,cdf,gflops,mbps,transport" > "$raw"
all=uncoded,replication,mds,polynomial,crme

run() { # phase, then bench arguments
    phase=$1; shift
    echo "== $phase: $bin $*"
    { echo "# uptime: $(uptime)"; echo "# command: bench_coded_latency $*"; } > "$out/coded-latency-$phase.log"
    "$bin" "$@" --csv "$csv" --raw "$raw" >> "$out/coded-latency-$phase.log" 2>&1 || echo "  (some configurations failed, see the log)"
    grep -E '^(RESULT|RATIO|FAILED|CALIB)' "$out/coded-latency-$phase.log" || true
}

# run_shards PHASE "BENCH ARGS" STRAG:SCHEME:R1,R2,... ...: every
# configuration split by seed into concurrent bench processes of R1, R2, ...
# timed inferences (seeds 1, 2, ...). Each shard keeps its log, its raw
# samples (coded-latency-PHASE-STRAG-SCHEME-shardK-raw.csv) and its CSV row
# (coded-latency-PHASE-shards.csv) to itself, away from the shared CSVs;
# bench/merge_raw_latency.sh -o ... -c ... -a ... merges a configuration.
run_shards() {
    prefix=$1 args=$2
    shift 2
    shards=$out/coded-latency-$prefix-shards.csv
    [ -f "$shards" ] || head -n 1 "$csv" > "$shards"
    for cfg in "$@"; do
        strag=${cfg%%:*} rest=${cfg#*:}
        scheme=${rest%%:*} counts=${rest#*:}
        k=0
        for r in $(echo "$counts" | tr , ' '); do
            k=$((k + 1))
            (
                csv=$shards
                name=$prefix-$strag-$scheme-shard$k
                raw=$out/coded-latency-$name-raw.csv
                [ -f "$raw" ] || head -n 1 "$out/coded-latency-raw.csv" > "$raw"
                run "$name" $args --schemes "$scheme" --stragglers "$strag" --runs "$r" --seed "$k"
            ) &
        done
    done
    wait
}

for phase in "$@"; do
    case $phase in
    calib)
        run calib-fashion --model fashion-cnn --workers 10,20 --schemes uncoded,crme --stragglers none --gflops 10 --runs 50 --warmup 2 --calibrate
        run calib-alexnet --model alexnet --workers 10,20 --schemes uncoded,crme --stragglers none --gflops 1 --runs 10 --warmup 1 --calibrate
        ;;
    calib-vgg)
        run calib-vgg16 --model vgg16 --workers 10 --schemes crme --stragglers none --gflops 1 --runs 2 --warmup 0 --calibrate ;;
    fashion10)
        run fashion10 --model fashion-cnn --workers 10 --schemes $all --stragglers none,fixed,shiftexp,pareto --gflops 10 --mbps 100 --latency-ms 1 --runs 1000 --warmup 20 ;;
    fashionsweep)
        run fashionsweep --model fashion-cnn --workers 8,12,16,20 --schemes $all --stragglers none,fixed --gflops 10 --mbps 100 --latency-ms 1 --runs 200 --warmup 10 ;;
    fashionslow)
        run fashionslow --model fashion-cnn --workers 10 --schemes $all --stragglers none,fixed --gflops 0.1 --mbps 100 --latency-ms 1 --runs 300 --warmup 10 ;;
    fashionfastlink)
        run fashionfastlink --model fashion-cnn --workers 10 --schemes uncoded,mds,crme --stragglers none,fixed --gflops 0.1 --mbps 1000 --latency-ms 0.1 --runs 1000 --warmup 10 ;;
    fastlinkmore)
        run fastlinkmore --model fashion-cnn --workers 10 --schemes replication,polynomial --stragglers none,fixed --gflops 0.1 --mbps 1000 --latency-ms 0.1 --runs 1000 --warmup 10
        run fastlinkstrag --model fashion-cnn --workers 10 --schemes uncoded,mds,crme --stragglers shiftexp,pareto --gflops 0.1 --mbps 1000 --latency-ms 0.1 --runs 1000 --warmup 10 ;;
    fastlink-repeat)
        run fastlink-repeat --model fashion-cnn --workers 10 --schemes uncoded,crme --stragglers none,fixed --gflops 0.1 --mbps 1000 --latency-ms 0.1 --runs 1000 --warmup 10 ;;
    alexstrag)
        run alexstrag --model alexnet --workers 10 --schemes uncoded,mds,crme --stragglers shiftexp,pareto --gflops 1 --mbps 100 --latency-ms 1 --runs 50 --warmup 2 ;;
    alex10)
        run alex10 --model alexnet --workers 10 --schemes $all --stragglers none,fixed --gflops 1 --mbps 100 --latency-ms 1 --runs 100 --warmup 3 ;;
    alex10-repeat)
        run alex10-repeat --model alexnet --workers 10 --schemes uncoded,crme --stragglers none,fixed --gflops 1 --mbps 100 --latency-ms 1 --runs 100 --warmup 3 ;;
    alexsweep)
        run alexsweep --model alexnet --workers 8,16,20 --schemes uncoded,crme --stragglers none,fixed --gflops 1 --mbps 100 --latency-ms 1 --runs 30 --warmup 2 ;;
    vgg)
        run vgg --model vgg16 --workers 10 --schemes uncoded,crme --stragglers none,fixed --gflops 1 --mbps 100 --latency-ms 1 --runs 5 --warmup 1 ;;
    procs-fashion)
        run procs-fashion --model fashion-cnn --workers 10 --schemes uncoded,crme --stragglers none,fixed --gflops 10 --mbps 100 --latency-ms 1 --runs 300 --warmup 10 --connect-procs --cli "$root/build/tessera" ;;
    procs-fashion-repeat)
        run procs-fashion-repeat --model fashion-cnn --workers 10 --schemes uncoded,crme --stragglers none,fixed --gflops 10 --mbps 100 --latency-ms 1 --runs 300 --warmup 10 --connect-procs --cli "$root/build/tessera" ;;
    procs-alexnet)
        run procs-alexnet --model alexnet --workers 10 --schemes uncoded,crme --stragglers none,fixed --gflops 1 --mbps 100 --latency-ms 1 --runs 30 --warmup 2 --connect-procs --cli "$root/build/tessera" ;;
    alex10-r1000)
        run alex10-r1000 --model alexnet --workers 10 --schemes uncoded,crme --stragglers none,fixed --gflops 1 --mbps 100 --latency-ms 1 --runs 1000 --warmup 5 ;;
    replication-coverage)
        # replication stops once every replica group answered (since 2026-11-23)
        run replication-fastlink --model fashion-cnn --workers 10 --schemes replication --stragglers none,fixed --gflops 0.1 --mbps 1000 --latency-ms 0.1 --runs 1000 --warmup 10
        run replication-alex10 --model alexnet --workers 10 --schemes replication --stragglers none,fixed --gflops 1 --mbps 100 --latency-ms 1 --runs 100 --warmup 3 ;;
    fashionsweep-1d)
        # uncoded and mds beyond 10 workers (possible since 2026-11-23: zero blocks)
        run fashionsweep-1d --model fashion-cnn --workers 12,16,20 --schemes uncoded,mds --stragglers none,fixed --gflops 10 --mbps 100 --latency-ms 1 --runs 200 --warmup 10 ;;
    vgg-r30)
        run vgg-r30 --model vgg16 --workers 10 --schemes uncoded,crme --stragglers none,fixed --gflops 1 --mbps 100 --latency-ms 1 --runs 30 --warmup 1 ;;
    alexfastlink)
        # compute-bound AlexNet: 1 GFLOP/s devices on 1 Gbit/s + 0.1 ms links
        run alexfastlink --model alexnet --workers 10 --schemes uncoded,crme --stragglers none,fixed --gflops 1 --mbps 1000 --latency-ms 0.1 --runs 100 --warmup 3 ;;
    alex10-r1000-quiet)
        run alex10-r1000-quiet --model alexnet --workers 10 --schemes uncoded,crme --stragglers none,fixed --gflops 1 --mbps 100 --latency-ms 1 --runs 1000 --warmup 5 ;;
    # stragglers whose factor also stretches their link transfers (fixed:5+link,
    # --straggle-link; since 2026-11-23): a slow device on a congested link
    fashion-linkstrag)
        run fashion-linkstrag --model fashion-cnn --workers 10 --schemes $all --stragglers none,fixed --gflops 10 --mbps 100 --latency-ms 1 --runs 1000 --warmup 20 --straggle-link ;;
    alex10-linkstrag)
        run alex10-linkstrag --model alexnet --workers 10 --schemes $all --stragglers none,fixed --gflops 1 --mbps 100 --latency-ms 1 --runs 100 --warmup 3 --straggle-link ;;
    alex10-linkstrag-r1000)
        # straggler-free baselines: the same emulation without stragglers is alex10-r1000-quiet
        run alex10-linkstrag-r1000 --model alexnet --workers 10 --schemes uncoded,crme --stragglers fixed --gflops 1 --mbps 100 --latency-ms 1 --runs 1000 --warmup 5 --straggle-link ;;
    alex10g-linkstrag)
        run alex10g-linkstrag --model alexnet --workers 10 --schemes uncoded,crme --stragglers none,fixed --gflops 10 --mbps 100 --latency-ms 1 --runs 300 --warmup 5 --straggle-link ;;
    vgg-linkstrag)
        run vgg-linkstrag --model vgg16 --workers 10 --schemes uncoded,crme --stragglers fixed --gflops 1 --mbps 100 --latency-ms 1 --runs 30 --warmup 1 --straggle-link ;;
    alex10-r1000-schemes)
        # the other three schemes at R = 1000 (uncoded and crme: alex10-r1000-quiet)
        run alex10-r1000-schemes --model alexnet --workers 10 --schemes replication,mds,polynomial --stragglers none,fixed --gflops 1 --mbps 100 --latency-ms 1 --runs 1000 --warmup 5 ;;
    fashionsweep-r1000)
        run fashionsweep-r1000 --model fashion-cnn --workers 8,12,16,20 --schemes $all --stragglers none,fixed --gflops 10 --mbps 100 --latency-ms 1 --runs 1000 --warmup 10 ;;
    vgg-r100-none)
        run vgg-r100-none --model vgg16 --workers 10 --schemes uncoded,crme --stragglers none --gflops 1 --mbps 100 --latency-ms 1 --runs 100 --warmup 1 ;;
    vgg-r100-fixed)
        run vgg-r100-fixed --model vgg16 --workers 10 --schemes crme,uncoded --stragglers fixed --gflops 1 --mbps 100 --latency-ms 1 --runs 100 --warmup 1 ;;
    alexsweep-r1000)
        run alexsweep-r1000 --model alexnet --workers 8,20 --schemes uncoded,crme --stragglers none,fixed --gflops 1 --mbps 100 --latency-ms 1 --runs 1000 --warmup 5 ;;
    alexsweep16-r1000)
        # n = 16 of alexsweep at R = 1000 (n = 8 and 20: alexsweep-r1000)
        run alexsweep16-r1000 --model alexnet --workers 16 --schemes uncoded,crme --stragglers none,fixed --gflops 1 --mbps 100 --latency-ms 1 --runs 1000 --warmup 5 ;;
    alexstrag-r1000)
        # alexstrag's random stragglers at R = 1000 for uncoded and CRME,
        # each configuration capped at 9 minutes (pareto's uncoded tail is
        # about 0.75 s per inference)
        run alexstrag-r1000 --model alexnet --workers 10 --schemes uncoded,crme --stragglers shiftexp,pareto --gflops 1 --mbps 100 --latency-ms 1 --runs 1000 --warmup 5 --max-minutes 9 ;;
    alexstrag-r1000-all)
        # alexstrag's three schemes with random stragglers at a full
        # R = 1000: the 16-minute cap per configuration is above the longest
        # (uncoded with Pareto stragglers, about 0.75 s per inference)
        run alexstrag-r1000-all --model alexnet --workers 10 --schemes uncoded,mds,crme --stragglers shiftexp,pareto --gflops 1 --mbps 100 --latency-ms 1 --runs 1000 --warmup 5 --max-minutes 16 ;;
    alexsweep-schemes)
        # the three other schemes away from n = 10 (uncoded and CRME there:
        # alexsweep-r1000, alexsweep16-r1000); R = 300
        run alexsweep-schemes --model alexnet --workers 8,16,20 --schemes replication,mds,polynomial --stragglers none,fixed --gflops 1 --mbps 100 --latency-ms 1 --runs 300 --warmup 5 ;;
    alexsweep-schemes-r1000)
        # the same at R = 1000 (mds and polynomial are refused by --max-cond
        # from n = 16, so those configurations end at once)
        run alexsweep-schemes-r1000 --model alexnet --workers 8,16,20 --schemes replication,mds,polynomial --stragglers none,fixed --gflops 1 --mbps 100 --latency-ms 1 --runs 1000 --warmup 5 ;;
    alex8-mdspoly-r1000)
        # the part of alexsweep-schemes-r1000 that fit a session: mds and
        # polynomial at n = 8 (about 0.45 s per inference), alone on the machine
        run alex8-mdspoly-r1000 --model alexnet --workers 8 --schemes mds,polynomial --stragglers none,fixed --gflops 1 --mbps 100 --latency-ms 1 --runs 1000 --warmup 5 ;;
    alexrepl20-r1000 | alexrepl16-r1000 | alexrepl8-r1000)
        # the replication part of alexsweep-schemes-r1000, one n per phase
        # (about 16, 18 and 33 minutes), each alone on the machine
        n=${phase#alexrepl}
        n=${n%-r1000}
        run "$phase" --model alexnet --workers "$n" --schemes replication --stragglers none,fixed --gflops 1 --mbps 100 --latency-ms 1 --runs 1000 --warmup 5 ;;
    vgg-r1000)
        # VGG-16 at R = 1000: 14 hours one configuration after another, so
        # the four run at once (each bench sleeps through its emulated
        # device and link time: about 12% of this 2-core machine each), and
        # each stops after 140 minutes with the inferences it completed.
        # Every CSV row is appended under an flock.
        v="--model vgg16 --workers 10 --gflops 1 --mbps 100 --latency-ms 1 --runs 1000 --warmup 1 --max-minutes 140"
        run vgg-r1000-none-uncoded $v --schemes uncoded --stragglers none &
        run vgg-r1000-none-crme $v --schemes crme --stragglers none &
        run vgg-r1000-fixed-uncoded $v --schemes uncoded --stragglers fixed &
        run vgg-r1000-fixed-crme $v --schemes crme --stragglers fixed &
        wait ;;
    vgg-r1000-uncoded-fixed-shards)
        # vgg-r1000's uncoded with 2 of 10 fixed stragglers (cut at 422 by the
        # 140-minute cap: about 20 s per inference) at R = 1000 as 5 concurrent
        # processes of 200 inferences, seeds 1..5 (seed 1 is vgg-r1000's; the
        # seed picks the input and which 2 workers straggle, and uncoded pads
        # every worker's share to the same size). Each shard keeps its log,
        # CSV row and raw samples to itself, away from the shared CSVs:
        #   coded-latency-vgg-r1000-fixed-uncoded-shardK.log
        #   coded-latency-vgg-r1000-fixed-uncoded-shards.csv  (5 rows, one per shard)
        #   coded-latency-vgg-r1000-fixed-uncoded-shardK-raw.csv
        # and bench/merge_raw_latency.sh gives the percentiles of the 1000;
        # with -o docs/results/coded-latency-raw.csv it appends them there
        # as one sorted block (done once, 2026-12-07), which the CDF plot draws.
        v="--model vgg16 --workers 10 --gflops 1 --mbps 100 --latency-ms 1 --runs 200 --warmup 1 --max-minutes 90 --schemes uncoded --stragglers fixed"
        shards=$out/coded-latency-vgg-r1000-fixed-uncoded-shards.csv
        [ -f "$shards" ] || head -n 1 "$csv" > "$shards"
        for k in 1 2 3 4 5; do
            (
                csv=$shards
                raw=$out/coded-latency-vgg-r1000-fixed-uncoded-shard$k-raw.csv
                [ -f "$raw" ] || head -n 1 "$out/coded-latency-raw.csv" > "$raw"
                run vgg-r1000-fixed-uncoded-shard$k $v --seed $k
            ) &
        done
        wait ;;
    vgg20-r1000-shards)
        # VGG-16 at n = 20, R = 1000 for uncoded and CRME, with and without
        # 2 fixed 5x stragglers: 6 concurrent processes (1.8-2.7 GB each;
        # a CRME process keeps about 30% of a core busy, an uncoded one with
        # stragglers 16%: 9 processes saturated the 2 cores, and workers of
        # a concurrent bench missed their heartbeats). Uncoded with
        # stragglers (about 12.5 s per inference) is split by seed in three
        # shards, as vgg-r1000-uncoded-fixed-shards was; the others (3.3-4.5
        # s) run whole. Per shard a log, a raw
        # file coded-latency-vgg20-r1000-STRAG-SCHEME-shardK-raw.csv and a
        # row of coded-latency-vgg20-r1000-shards.csv; merge each
        # configuration with bench/merge_raw_latency.sh.
        run_shards vgg20-r1000 "--model vgg16 --workers 20 --gflops 1 --mbps 100 --latency-ms 1 --warmup 1 --max-minutes 120" \
            none:uncoded:1000 none:crme:1000 fixed:crme:1000 fixed:uncoded:334,333,333 ;;
    vgg16-r1000-shards)
        # VGG-16 at n = 16, R = 1000, the same four configurations as
        # vgg20-r1000-shards: seven concurrent processes (uncoded with
        # stragglers, about 14 s per inference, in three seed shards;
        # uncoded without, about 6 s, in two; CRME, about 4 s, whole).
        run_shards vgg16-r1000 "--model vgg16 --workers 16 --gflops 1 --mbps 100 --latency-ms 1 --warmup 1 --max-minutes 125" \
            none:crme:1000 fixed:crme:1000 none:uncoded:500,500 fixed:uncoded:334,333,333 ;;
    alex025-r1000-shards)
        # AlexNet on slower devices (0.25 GFLOP/s, the 100 Mbit/s + 1 ms
        # links of the other AlexNet runs), n = 10, uncoded and CRME with and
        # without 2 fixed 5x stragglers, R = 1000: the setting where compute,
        # not transfer, is most of the latency (about 570 of 740 ms of the
        # uncoded ideal), which the 3x target presumes. Each configuration
        # split by seed into concurrent processes (an AlexNet bench keeps
        # only a few percent of a core busy): uncoded with stragglers
        # (about 3 s per inference) in four, the others in two. Per shard a
        # log, a raw file and a row of coded-latency-alex025-r1000-shards.csv;
        # merge with bench/merge_raw_latency.sh -c ... -a ....
        run_shards alex025-r1000 "--model alexnet --workers 10 --gflops 0.25 --mbps 100 --latency-ms 1 --warmup 2 --max-minutes 40" \
            none:uncoded:500,500 none:crme:500,500 fixed:crme:500,500 fixed:uncoded:250,250,250,250 ;;
    fashion10-r1000-quiet)
        # n = 10 of fashionsweep-r1000, same session and load
        run fashion10-r1000-quiet --model fashion-cnn --workers 10 --schemes $all --stragglers none,fixed --gflops 10 --mbps 100 --latency-ms 1 --runs 1000 --warmup 10 ;;
    *) echo "unknown phase $phase" >&2; exit 2 ;;
    esac
done
