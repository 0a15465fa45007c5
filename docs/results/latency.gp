set terminal pngcairo size 1100,420 font ",10"
set output "latency.png"
set datafile separator ","
set multiplot layout 1,2
set title "Echo round trip, 1 worker (p50, p99)"
set logscale xy
set xlabel "payload (KiB)"
set ylabel "ms"
set key top left
plot for [t in "inproc ipc tcp"] "< grep '^rtt,".t.",' latency.csv" using ($5/1024):($7*1e3) with linespoints title t." p50", \
     for [t in "inproc ipc tcp"] "< grep '^rtt,".t.",' latency.csv" using ($5/1024):($9*1e3) with points title t." p99"
unset logscale
set title "Fan-out 64 KiB to n workers, k = n - 2 (p50, p99)"
set xlabel "workers n"
set ylabel "ms"
set logscale y
plot for [t in "inproc ipc tcp"] "< grep '^fanout,".t.",' latency.csv" using 3:($7*1e3) with linespoints title t." p50", \
     for [t in "inproc ipc tcp"] "< grep '^fanout,".t.",' latency.csv" using 3:($9*1e3) with points title t." p99"
unset multiplot
