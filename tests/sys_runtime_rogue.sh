#!/usr/bin/env bash
# sys_runtime_rogue.sh: a rogue peer cannot crash or stall the master.
# While a coded run of 200 inferences goes on over tcp:// (4 workers, 1
# straggler tolerated), a Python/pyzmq rogue keeps connecting and sending
# malformed messages: truncated headers, bad magic, a wrong version, unknown
# types, lying lengths and tensor counts, oversized dimensions, too many
# frames, results with wrong ids, a worker that registers and then breaks
# the protocol, one that registers and goes silent, and raw non-ZeroMQ bytes
# on the TCP port. The run must finish with every label equal to the
# single-node label, and the master must have logged the rejections. Then
# the same rogue against `tessera probe` over ipc://.
source "$(dirname "$0")/runtime_sys_lib.bash"

# Debian's python3-zmq lives with Debian's python3, which another python3
# earlier on PATH (pyenv, venv) may not see.
PY=
for p in python3 /usr/bin/python3; do
    if "$p" -c 'import zmq' 2>/dev/null; then PY=$p; break; fi
done
if [[ -z "$PY" ]]; then
    echo "FAILED: python3-zmq is missing (scripts/install-deps.sh installs it)"
    exit 1
fi

cat >"$WORK/rogue.py" <<'PY'
import random, socket, struct, sys, time
import zmq

url, seconds = sys.argv[1], float(sys.argv[2])
MAGIC = 0x41525354
HELLO, RESULT, TASK = 1, 7, 6

def header(typ, job=0, layer=0, shard=0, seq=0, n_tensors=0, body_len=0, version=1, reserved=0):
    word = version | (typ << 16) | (reserved << 24)
    return struct.pack("<IIIIIIII", MAGIC, word, job, layer, shard, seq, n_tensors, body_len)

def hello(name):
    body = struct.pack("<IIII", 6, 1000, 3, 0) + struct.pack("<ddd", 0, 0, 0)
    body += b"none".ljust(64, b"\0") + name.encode().ljust(64, b"\0")
    return header(HELLO, body_len=len(body)) + body

def desc(dims):
    d = list(dims) + [0] * (6 - len(dims))
    return struct.pack("<II", len(dims), 1) + struct.pack("<6q", *d)

def result(job, seq, n_frames, dims=(2, 2)):
    body = struct.pack("<dd", 0.1, 0.0) + desc(dims) * n_frames
    return header(RESULT, job=job, seq=seq, n_tensors=n_frames, body_len=len(body)) + body

rng = random.Random(7)
malformed = [
    [b"TSRA\x01\x00"],                                         # truncated header
    [header(HELLO).replace(b"TSRA", b"XSRA", 1)],               # bad magic
    [header(HELLO, version=9)],                                 # wrong version
    [header(77)],                                               # unknown type
    [header(HELLO, reserved=5)],                                # reserved byte set
    [header(HELLO, body_len=100000)],                           # lying body length
    [header(RESULT, n_tensors=1000, body_len=0)],               # tensor count over the cap
    [result(1, 1, 1)],                                          # announces a frame, sends none
    [result(1, 1, 1, dims=(1 << 40, 2)), b"\0" * 16],           # oversized dimension
    [result(1, 1, 1, dims=(4, 4)), b"\0" * 8],                  # frame shorter than its shape
    [header(HELLO)] + [b"x"] * 70,                              # too many frames
    [bytes(rng.getrandbits(8) for _ in range(64))],             # noise
]

ctx = zmq.Context()
end = time.time() + seconds
silent = None
rounds = 0
while time.time() < end:
    s = ctx.socket(zmq.DEALER); s.linger = 1000; s.connect(url)    # registered, then rogue
    s.send(hello("rogue"))
    if s.poll(3000):                                            # READY: now it is registered
        s.recv_multipart()
        s.send_multipart([result(999999, 12345, 1), b"\0" * 16])  # wrong ids: stale
        s.send_multipart([header(TASK)])                        # workers may not send TASK
        s.poll(3000)                                            # the master's DISCONNECT
    s.close()
    for parts in malformed:                                     # as a stranger
        s = ctx.socket(zmq.DEALER); s.linger = 1000; s.connect(url)
        s.send_multipart(parts)
        s.close()
    if silent is None:                                          # registers once, never answers
        silent = ctx.socket(zmq.DEALER); silent.linger = 0; silent.connect(url)
        silent.send(hello("black-hole"))
    if url.startswith("tcp://"):                                # not ZeroMQ at all
        host, port = url[6:].rsplit(":", 1)
        try:
            r = socket.create_connection((host, int(port)), timeout=1)
            r.sendall(bytes(rng.getrandbits(8) for _ in range(300)))
            r.close()
        except OSError:
            pass
    rounds += 1
    time.sleep(0.1)
print("rogue: %d rounds" % rounds)
PY

N=200
[[ -n "${TS_SANITIZED:-}" ]] && N=100 # sanitized kernels are slow; the floor still holds
single_node_labels $N
check "single-node infer of $N images" $?

url="tcp://127.0.0.1:$(free_tcp_port)"
for i in 0 1 2 3; do start_worker "w$i" "$url" "${SLOW[@]}"; done
start_bg run "$CLI" infer --model "$MODEL" --limit $N --top 1 --listen "$url" --expect 4 \
    --stragglers 1 --scheme crme "$IMAGES"
wait_for "$WORK/run.err" "coded run:" 60
check "the coded model is deployed on 4 workers" $?
start_bg rogue "$PY" "$WORK/rogue.py" "$url" 5
wait_exit "$(pid_of run)" 100
rc=$?
check "the run finishes with status 0 under attack (got $rc; 124 = hang)" $rc
[[ $rc -eq 0 ]] || show_logs
wait_exit "$(pid_of rogue)" 30 >/dev/null
grep -q "rogue: [1-9]" "$WORK/rogue.out"
check "the rogue ran" $?
labels "$WORK/run.out" >"$WORK/run.labels"
cmp -s "$WORK/single.labels" "$WORK/run.labels" && [[ $(wc -l <"$WORK/run.labels") -eq $N ]]
check "every label equals the single-node label" $?
for what in "bad magic" "protocol version 9" "unknown message type" "exceed the cap" "out of range" \
    "tensor frames but" "more than 66 frames" "descriptor needs" "protocol violation"; do
    grep -q "$what" "$WORK/run.err"
    check "the master logged and dropped: '$what'" $?
done

url="ipc://$WORK/probe.ipc"
for i in 0 1 2; do start_worker "p$i" "$url"; done
start_bg probe "$CLI" probe --listen "$url" --expect 3 --stragglers 1 --rounds 150 \
    --interval-ms 20 --heartbeat-ms 100 --liveness 20
wait_for "$WORK/probe.out" "0 -> 3 live" 60
check "probe: 3 workers mapped" $?
start_bg rogue2 "$PY" "$WORK/rogue.py" "$url" 2
wait_exit "$(pid_of probe)" 100
rc=$?
check "probe finishes every round with correct products under attack (status $rc)" $rc
grep -q "dropped a frame" "$WORK/probe.err"
check "probe's master logged the rogue's frames" $?
exit $fail
