#!/bin/bash
# pipeline_memory.sh TESSERA D [MODEL]: peak RSS (VmHWM, sampled every 0.1 s)
# of the master of a pipelined coded run: 10 `tessera worker` processes on a
# private ipc endpoint, `tessera infer --pipeline D` of 4 synthetic 224x224
# images with MODEL (default zoo:alexnet), CRME, 2 stragglers. Prints the
# master's peak and its line on the filter shares it deployed.
set -u
BIN=$1 D=$2 MODEL=${3:-zoo:alexnet}
dir=$(mktemp -d)
trap 'pkill -f "worker --connect ipc://$dir/" 2>/dev/null; rm -rf "$dir"' EXIT
url="ipc://$dir/m.ipc"
python3 -c "import sys; sys.stdout.buffer.write(b'P6\n224 224\n255\n' + bytes((i * 7) % 256 for i in range(224 * 224 * 3)))" >"$dir/img.ppm"
for i in $(seq 0 9); do "$BIN" worker --connect "$url" --name "w$i" >/dev/null 2>&1 & done
"$BIN" infer --model "$MODEL" --stragglers 2 --scheme crme --pipeline "$D" --listen "$url" \
    --expect 10 "$dir/img.ppm" "$dir/img.ppm" "$dir/img.ppm" "$dir/img.ppm" >"$dir/out" 2>"$dir/err" &
pid=$!
peak=0
while kill -0 "$pid" 2>/dev/null; do
    r=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null)
    [[ -n "$r" ]] && peak=$r
    sleep 0.1
done
wait "$pid"
rc=$?
echo "pipeline $D: exit $rc, master peak RSS $((peak / 1024)) MB; $(grep -h 'deployed' "$dir/err")"
exit $rc
