#!/usr/bin/env bash
# netns_latency.sh: the coded-latency benchmark over a real, kernel-shaped
# network. Worker i runs in its own network namespace, joined to the master
# by a veth pair (10.77.i.1 master side, 10.77.i.2 worker side) whose two
# ends are rate-limited by `tc` (tbf), so every byte of a frame crosses a
# shaped link in each direction, as on a star of per-device links. This
# kernel has no netem qdisc, so the per-frame latency is still emulated by
# the workers (--latency-ms); the bandwidth is real (the workers emulate
# none: --worker-mbps 0). Needs root (ip netns, tc). Cleans up on exit.
#
#   bench/netns_latency.sh BUILD_DIR WORKERS MBPS -- [bench_coded_latency args]
#   e.g. bench/netns_latency.sh build 10 100 -- --model fashion-cnn --workers 10 \
#        --schemes uncoded,crme --stragglers none,fixed --gflops 10 --latency-ms 1 --runs 300
set -euo pipefail
BUILD=$(cd "$1" && pwd)
N=$2
MBPS=$3
shift 3
[[ ${1:-} == -- ]] && shift
PFX=tsl
WORK=$(mktemp -d)

cleanup() {
    for ((i = 0; i < N; i++)); do ip netns del "$PFX$i" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

shape() { # dev [netns]: tbf at MBPS on the device's egress
    local cmd=(tc qdisc add dev "$1" root tbf rate "${MBPS}mbit" burst 4kb latency 2s)
    if [[ -n ${2:-} ]]; then ip netns exec "$2" "${cmd[@]}"; else "${cmd[@]}"; fi
}

for ((i = 0; i < N; i++)); do
    ns=$PFX$i
    ip netns del "$ns" 2>/dev/null || true
    ip netns add "$ns"
    ip link add "${PFX}h$i" type veth peer name "${PFX}n$i"
    ip link set "${PFX}n$i" netns "$ns"
    ip addr add "10.77.$i.1/24" dev "${PFX}h$i"
    ip link set "${PFX}h$i" up
    ip netns exec "$ns" ip addr add "10.77.$i.2/24" dev "${PFX}n$i"
    ip netns exec "$ns" ip link set "${PFX}n$i" up
    ip netns exec "$ns" ip link set lo up
    shape "${PFX}h$i"
    shape "${PFX}n$i" "$ns"
done
echo "# $N worker namespaces, each behind a veth pair shaped to $MBPS Mbit/s each way (tc tbf):"
tc qdisc show dev "${PFX}h0"

# worker i: its own namespace, the master's wildcard address replaced by
# the master's end of its veth pair
cat >"$WORK/wrap" <<WRAP
#!/usr/bin/env bash
i=\$1; shift
args=()
for a in "\$@"; do args+=("\${a/0.0.0.0/10.77.\$i.1}"); done
exec ip netns exec $PFX\$i "\${args[@]}"
WRAP
chmod +x "$WORK/wrap"

"$BUILD/bench_coded_latency" --connect-procs --cli "$BUILD/tessera" --listen tcp://0.0.0.0:0 \
    --worker-wrap "$WORK/wrap" --worker-mbps 0 --mbps "$MBPS" "$@"
