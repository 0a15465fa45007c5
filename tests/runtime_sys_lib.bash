# runtime_sys_lib.bash: shared by the runtime's multi-process system tests
# (tests/sys_runtime_*.sh, tests/sys_cluster.sh). Sourced, not run: CTest
# only globs sys_*.sh.
#
# Every process a test starts is recorded and killed (SIGKILL) on exit, on
# failure and on interruption; the scratch directory (sockets, logs) goes too.
# Waits have generous limits so that a hang shows up as a failed check, never
# as a stuck test; nothing checks how fast anything was.
set -uo pipefail

CLI=${TS_CLI:?TS_CLI must name the tessera binary}
SRC=${TS_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
IMAGES=/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
MODEL="$SRC/models/fashion-cnn.onnx"
[[ -f "$MODEL" ]] || MODEL=zoo:fashion-cnn
# An emulated device this slow makes a 200-image run take several seconds
# (a floor set by emulation, not a measurement), so a kill lands mid-run.
SLOW=(--gflops 0.1)

WORK=$(mktemp -d /tmp/ts-sys-XXXXXX)
PIDS=()
fail=0

cleanup() {
    [[ -n "${TS_KEEP_WORK:-}" ]] && cp -r "$WORK" "/tmp/ts-sys-kept-$$"
    local p
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'echo "interrupted"; exit 130' INT TERM

# Give check the status in a variable when the description has a $(...):
# the substitution runs first and would replace $?.
check() { # description, status (0 = pass)
    if [[ $2 -ne 0 ]]; then
        echo "FAILED: $1"
        fail=1
    else
        echo "ok: $1"
    fi
}

# start_bg NAME CMD...: runs CMD in the background with stdout/stderr in
# $WORK/NAME.out / .err; its pid is in PID_<NAME>.
start_bg() {
    local name=$1
    shift
    "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    local pid=$!
    PIDS+=("$pid")
    printf -v "PID_$name" '%s' "$pid"
}

# start_worker NAME URL [worker options...]
start_worker() {
    local name=$1 url=$2
    shift 2
    start_bg "$name" "$CLI" worker --connect "$url" --name "$name" --once "$@"
}

pid_of() { local v="PID_$1"; echo "${!v}"; }

# wait_for FILE PATTERN [SECONDS]: 0 once FILE has a line matching PATTERN.
wait_for() {
    local file=$1 pattern=$2 limit=${3:-60} i
    for ((i = 0; i < limit * 10; i++)); do
        grep -q -- "$pattern" "$file" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# wait_count FILE PATTERN COUNT [SECONDS]: 0 once COUNT lines match.
wait_count() {
    local file=$1 pattern=$2 count=$3 limit=${4:-60} i n
    for ((i = 0; i < limit * 10; i++)); do
        n=$(grep -c -- "$pattern" "$file" 2>/dev/null)
        [[ ${n:-0} -ge $count ]] && return 0
        sleep 0.1
    done
    return 1
}

# wait_exit PID [SECONDS]: waits for a background job; returns its status,
# or 124 after killing it when it outlives the limit (a hang).
wait_exit() {
    local pid=$1 limit=${2:-100} i
    for ((i = 0; i < limit * 10; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            wait "$pid"
            return $?
        fi
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 124
}

running() { kill -0 "$1" 2>/dev/null; }

# kill9 PID...: SIGKILL and reap (quietly: no "Killed" job notice).
kill9() {
    local p
    for p in "$@"; do kill -9 "$p" 2>/dev/null; done
    for p in "$@"; do wait "$p" 2>/dev/null; done
    return 0
}

free_tcp_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# labels FILE: the class names of `tessera infer --top 1` output, one a line.
labels() { sed 's/ (.*//; s/^.*\]: //' "$1"; }

# single_node_labels N: the reference labels of the first N test images.
single_node_labels() {
    "$CLI" infer --model "$MODEL" --limit "$1" --top 1 "$IMAGES" >"$WORK/single.out" \
        2>"$WORK/single.err" || return 1
    labels "$WORK/single.out" >"$WORK/single.labels"
}

show_logs() { # on failure: the tails of every log
    local f
    for f in "$WORK"/*.err; do
        echo "--- $(basename "$f")"
        tail -n 8 "$f"
    done
}
