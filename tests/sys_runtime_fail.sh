#!/usr/bin/env bash
# sys_runtime_fail.sh: more dead workers than the plan tolerates. Four
# worker processes, a coded run tolerating 2 stragglers, and kill -9 of
# three of them mid-run: one worker is left, no plan for 2 stragglers is
# possible, and the run must stop with a clear error (exit status 1, a
# message naming the cause) well within its deadline instead of hanging.
# Also: every worker gone at once, and a master no worker ever joins.
source "$(dirname "$0")/runtime_sys_lib.bash"

N=200
url="ipc://$WORK/master.ipc"
for i in 0 1 2 3; do start_worker "w$i" "$url" "${SLOW[@]}"; done
start_bg run "$CLI" infer --model "$MODEL" --limit $N --top 1 --listen "$url" --expect 4 \
    --stragglers 2 --scheme crme --deadline 30 "$IMAGES"
job=$(pid_of run)
wait_for "$WORK/run.err" "coded run:" 60
check "the coded model is deployed on 4 workers" $?
sleep 1
running "$job"
check "the run is still going when three workers are killed" $?
kill9 "$(pid_of w0)" "$(pid_of w1)" "$(pid_of w2)"
wait_exit "$job" 60
rc=$?
[[ $rc -eq 1 ]]
check "the run fails with status 1 (got $rc; 124 = hang)" $?
grep -Eq "too few to tolerate 2 stragglers|cannot reach|no plan" "$WORK/run.err"
st=$?
check "the error says why: $(grep '^tessera: ' "$WORK/run.err" | tail -n 1)" $st
[[ $rc -eq 1 ]] || show_logs
wait_exit "$(pid_of w3)" 30 >/dev/null
check "the surviving worker leaves when the master shuts down" $?

# every worker dies at once (tcp this time)
url="tcp://127.0.0.1:$(free_tcp_port)"
for i in 4 5 6; do start_worker "w$i" "$url" "${SLOW[@]}"; done
start_bg run2 "$CLI" infer --model "$MODEL" --limit $N --top 1 --listen "$url" --expect 3 \
    --stragglers 1 --scheme crme --deadline 30 "$IMAGES"
wait_for "$WORK/run2.err" "coded run:" 60
check "the coded model is deployed on 3 workers (tcp)" $?
kill9 "$(pid_of w4)" "$(pid_of w5)" "$(pid_of w6)"
wait_exit "$(pid_of run2)" 60
rc=$?
[[ $rc -eq 1 ]] && grep -q "^tessera: " "$WORK/run2.err"
check "all workers killed: clear error, status 1 (got $rc)" $?

# nobody comes
start_bg run3 "$CLI" probe --listen "ipc://$WORK/empty.ipc" --expect 2 --wait 1
wait_exit "$(pid_of run3)" 30
rc=$?
[[ $rc -eq 1 ]] && grep -q "only 0 of 2 workers joined" "$WORK/run3.err"
check "no worker joins: 'only 0 of 2 workers joined', status 1 (got $rc)" $?

exit $fail
