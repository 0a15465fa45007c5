#!/usr/bin/env bash
# sys_cluster.sh: `tessera cluster --workers N -- <command>` starts N worker
# processes over ipc://, runs the command against them, and always cleans
# up: no worker process and no socket directory is left after success,
# after the command fails, and after the cluster is interrupted (SIGINT).
# A coded infer through the cluster gives the single-node labels; emulated
# crashes of some workers (--straggler crash:T --straggling K) are survived.
source "$(dirname "$0")/runtime_sys_lib.bash"

# leftovers DIR: worker processes still connected to DIR's socket, or DIR.
leftovers() {
    local dir=$1
    [[ -n "$dir" ]] || return 1
    pgrep -f -- "--connect ipc://$dir/" >/dev/null && return 0
    [[ -e "$dir" ]]
}

# the socket directory a cluster run announced on stderr
cluster_dir() { sed -n 's|^tessera cluster: [0-9]* workers on ipc://\(.*\)/master.ipc$|\1|p' "$1"; }

N=120
single_node_labels $N
check "single-node infer of $N images" $?

"$CLI" cluster --workers 4 -- infer --model "$MODEL" --limit $N --top 1 --stragglers 1 \
    "$IMAGES" >"$WORK/c1.out" 2>"$WORK/c1.err"
rc=$?
check "cluster of 4 runs a coded infer (status $rc)" $rc
labels "$WORK/c1.out" >"$WORK/c1.labels"
cmp -s "$WORK/single.labels" "$WORK/c1.labels" && [[ $(wc -l <"$WORK/c1.labels") -eq $N ]]
check "cluster infer: every label equals the single-node label" $?
dir=$(cluster_dir "$WORK/c1.err")
sleep 0.2
! leftovers "$dir"
check "no worker process or socket left after success ($dir)" $?

# --expect 3: the probe need not wait for the two that will crash (they may
# be gone before it starts); 300 rounds 10 ms apart outlast their 1.5 s.
"$CLI" cluster --workers 5 --straggler crash:1.5 --straggling 2 --heartbeat-ms 100 \
    --liveness 20 -- probe --expect 3 --rounds 300 --interval-ms 10 --stragglers 2 \
    --heartbeat-ms 100 --liveness 20 >"$WORK/c2.out" 2>"$WORK/c2.err"
rc=$?
check "cluster survives 2 of 5 workers crashing (emulated) (status $rc)" $rc
grep -q "0 wrong products" "$WORK/c2.out"
check "... with every product correct" $?
grep -c "emulated crash" "$WORK/c2.err" | grep -qx 2
check "... and exactly the 2 straggling workers crashed" $?
! leftovers "$(cluster_dir "$WORK/c2.err")"
check "no leftovers after crashes" $?

"$CLI" cluster --workers 2 -- probe --expect 5 --wait 1 >"$WORK/c3.out" 2>"$WORK/c3.err"
rc=$?
[[ $rc -eq 1 ]] && grep -q "only 2 of 5 workers joined" "$WORK/c3.err"
check "a failing command's status comes back (got $rc) with its message" $?
sleep 0.2
! leftovers "$(cluster_dir "$WORK/c3.err")"
check "no leftovers after the command failed" $?

start_bg c4 "$CLI" cluster --workers 3 -- probe --rounds 100000000 --interval-ms 50
wait_for "$WORK/c4.out" "0 -> 3 live" 60
check "a long cluster run is up" $?
dir=$(cluster_dir "$WORK/c4.err")
kill -INT "$(pid_of c4)"
wait_exit "$(pid_of c4)" 30
rc=$?
[[ $rc -eq 130 ]]
check "SIGINT ends the cluster with status 130 (got $rc)" $?
! leftovers "$dir"
check "no leftovers after SIGINT ($dir)" $?

"$CLI" cluster --workers 2 >"$WORK/u.out" 2>&1
[[ $? -eq 2 ]] && grep -q "give the command" "$WORK/u.out"
check "a cluster without a command is a usage error" $?
"$CLI" cluster --workers 0 -- probe >"$WORK/u2.out" 2>&1
[[ $? -eq 2 ]]
check "--workers 0 is a usage error" $?
"$CLI" cluster --workers 2 --straggler bogus:1 -- probe >"$WORK/u3.out" 2>&1
[[ $? -eq 2 ]] && grep -q "unknown straggler model" "$WORK/u3.out"
check "an unknown straggler model is a usage error" $?
exit $fail
