#!/usr/bin/env bash
# sys_runtime_kill.sh: six `tessera worker` processes, a coded run of 200
# Fashion-MNIST inferences tolerating 2 stragglers, and kill -9 of two
# workers in the middle of it: every label equals the single-node label, none
# is missing, the run ends (no hang). Over ipc:// with `infer` (per-image
# labels) and over tcp:// on loopback with both `infer` and, in the exact
# form of issue 5, `eval ... --expect 6 --stragglers 2 --scheme crme`
# printing the single-node accuracy line; and once more with three batches
# in flight at once (--pipeline 3).
source "$(dirname "$0")/runtime_sys_lib.bash"

N=200
[[ -n "${TS_SANITIZED:-}" ]] && N=100 # sanitized kernels are slow; the floor still holds
single_node_labels $N
check "single-node infer of $N images" $?
"$CLI" eval --model "$MODEL" --limit $N >"$WORK/single_eval.out" 2>&1
want_acc=$(grep '^accuracy:' "$WORK/single_eval.out")
[[ -n "$want_acc" ]]
check "single-node eval prints '$want_acc'" $?

# run_killed TAG URL CMD...: 6 slow workers, CMD (a coded run against URL)
# in the background, kill -9 of w0 and w1 once the model is deployed.
run_killed() {
    local tag=$1 url=$2
    shift 2
    local i
    for i in 0 1 2 3 4 5; do start_worker "${tag}_w$i" "$url" "${SLOW[@]}"; done
    start_bg "$tag" "$@"
    local job
    job=$(pid_of "$tag")
    wait_for "$WORK/$tag.err" "coded run:" 60
    check "$tag: the coded model is deployed on 6 workers" $?
    sleep 1
    running "$job"
    check "$tag: the run is still going when two workers are killed" $?
    kill9 "$(pid_of "${tag}_w0")" "$(pid_of "${tag}_w1")"
    wait_exit "$job" 100
    local rc=$?
    check "$tag: the run finishes with status 0 (got $rc; 124 = hang)" $rc
    [[ $rc -eq 0 ]] || show_logs
    for i in 2 3 4 5; do wait_exit "$(pid_of "${tag}_w$i")" 30 >/dev/null; done
    local worked=0
    for i in 2 3 4 5; do
        grep -q "after [1-9][0-9]* tasks" "$WORK/${tag}_w$i.out" && worked=$((worked + 1))
    done
    [[ $worked -eq 4 ]]
    check "$tag: the 4 survivors ran tasks and left when the master shut down" $?
}

TRANSPORTS="ipc tcp"
[[ -n "${TS_SANITIZED:-}" ]] && TRANSPORTS=tcp # and eval below goes over tcp as well
for transport in $TRANSPORTS; do
    if [[ $transport == ipc ]]; then
        url="ipc://$WORK/master.ipc"
    else
        url="tcp://127.0.0.1:$(free_tcp_port)"
    fi
    run_killed "infer_$transport" "$url" "$CLI" infer --model "$MODEL" --limit $N --top 1 \
        --listen "$url" --expect 6 --stragglers 2 --scheme crme "$IMAGES"
    labels "$WORK/infer_$transport.out" >"$WORK/infer_$transport.labels"
    got=$(wc -l <"$WORK/infer_$transport.labels")
    [[ $got -eq $N ]]
    check "infer over $transport: $N labels, none missing (got $got)" $?
    cmp -s "$WORK/single.labels" "$WORK/infer_$transport.labels"
    check "infer over $transport: every label equals the single-node label" $?
done

# --pipeline: three batches of 8 in flight at once (three lanes, each its own
# coded model and blobs on the same workers), the same two kills.
url="tcp://127.0.0.1:$(free_tcp_port)"
run_killed infer_pipe "$url" "$CLI" infer --model "$MODEL" --limit $N --top 1 --batch 8 \
    --pipeline 3 --listen "$url" --expect 6 --stragglers 2 --scheme crme "$IMAGES"
grep -q "pipeline depth 3" "$WORK/infer_pipe.err"
check "pipelined infer: three lanes were deployed" $?
# lanes 2 and 3 deploy the shares lane 1 deployed: sent as ALIASes, stored once
grep -q "filter shares deployed: .* MB sent, .* aliased" "$WORK/infer_pipe.err"
check "pipelined infer: the later lanes' identical shares went out as aliases" $?
grep -q "blobs + [1-9][0-9]* aliases" "$WORK/infer_pipe_w2.out"
check "pipelined infer: a surviving worker stored aliases" $?
labels "$WORK/infer_pipe.out" >"$WORK/infer_pipe.labels"
cmp -s "$WORK/single.labels" "$WORK/infer_pipe.labels"
check "pipelined infer over tcp: $N labels in order, each equal to the single-node label" $?

url="tcp://127.0.0.1:$(free_tcp_port)"
run_killed eval_tcp "$url" "$CLI" eval --model "$MODEL" --limit $N \
    --listen "$url" --expect 6 --stragglers 2 --scheme crme
got_acc=$(grep '^accuracy:' "$WORK/eval_tcp.out")
[[ "$got_acc" == "$want_acc" ]]
check "eval over tcp with 2 of 6 workers killed prints '$want_acc' (got '$got_acc')" $?

exit $fail
