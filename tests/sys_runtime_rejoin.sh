#!/usr/bin/env bash
# sys_runtime_rejoin.sh: a worker restarted mid-run rejoins and gets work.
# Five worker processes, a coded run tolerating 1 straggler; one worker is
# killed with SIGKILL and a new process is started in its place while the
# run goes on. The newcomer registers, the model re-plans for it, and it
# runs tasks (its exit line counts them); every label still equals the
# single-node label. Then the same through `tessera probe` over tcp with a
# worker restarted twice, each start getting work.
source "$(dirname "$0")/runtime_sys_lib.bash"

N=200
[[ -n "${TS_SANITIZED:-}" ]] && N=100 # sanitized kernels are slow; the floor still holds
single_node_labels $N
check "single-node infer of $N images" $?

url="ipc://$WORK/master.ipc"
for i in 0 1 2 3 4; do start_worker "w$i" "$url" "${SLOW[@]}"; done
start_bg run "$CLI" infer --model "$MODEL" --limit $N --top 1 --listen "$url" --expect 5 \
    --stragglers 1 --scheme crme "$IMAGES"
job=$(pid_of run)
wait_for "$WORK/run.err" "coded run:" 60
check "the coded model is deployed on 5 workers" $?
sleep 1
running "$job"
check "the run is still going when a worker is killed" $?
kill9 "$(pid_of w0)"
start_worker w0b "$url" "${SLOW[@]}"
running "$job"
check "the run is still going when the replacement starts" $?
wait_exit "$job" 100
rc=$?
check "the run finishes with status 0 (got $rc)" $rc
[[ $rc -eq 0 ]] || show_logs
wait_exit "$(pid_of w0b)" 30
wrc=$?
grep -q "after [1-9][0-9]* tasks" "$WORK/w0b.out"
st=$?
check "the restarted worker rejoined and ran tasks: $(grep after "$WORK/w0b.out")" $st
[[ $st -eq 0 ]] || { echo "w0b exit status $wrc"; tail -n 5 "$WORK/w0b.out" "$WORK/w0b.err"; grep -n "w0b\|joined" "$WORK/run.err" | tail -n 5; }
labels "$WORK/run.out" >"$WORK/run.labels"
cmp -s "$WORK/single.labels" "$WORK/run.labels" && [[ $(wc -l <"$WORK/run.labels") -eq $N ]]
st=$?
check "every label equals the single-node label ($(wc -l <"$WORK/run.labels") labels)" $st

# probe over tcp: 3 workers, s = 1; worker p0 is killed and restarted twice.
# Heartbeats every 100 ms, 20 missed before a worker is dead: a loaded or
# sanitized machine must not lose live workers (kills over tcp are noticed
# at the next send anyway).
url="tcp://127.0.0.1:$(free_tcp_port)"
for i in 0 1 2; do start_worker "p$i" "$url" --latency-ms 5; done
start_bg probe "$CLI" probe --listen "$url" --expect 3 --stragglers 1 --rounds 400 \
    --interval-ms 20 --heartbeat-ms 100 --liveness 20
wait_for "$WORK/probe.out" "0 -> 3 live" 60
check "probe: 3 workers mapped" $?
victim=$(pid_of p0)
for start in 1 2; do
    kill9 "$victim"
    wait_count "$WORK/probe.out" "3 -> 2 live" $start 30
    check "probe: restart $start: the dead worker is noticed" $?
    start_worker "p0_$start" "$url" --latency-ms 5
    victim=$(pid_of "p0_$start")
    wait_count "$WORK/probe.out" "2 -> 3 live" $start 30
    check "probe: restart $start: the new process is mapped in" $?
done
wait_exit "$(pid_of probe)" 100
rc=$?
check "probe finishes all rounds with correct products (status $rc)" $rc
[[ $rc -eq 0 ]] || tail -n 8 "$WORK/probe.err" "$WORK/probe.out"
for start in 1 2; do
    wait_exit "$(pid_of "p0_$start")" 30 >/dev/null
done
grep -q "after [1-9][0-9]* tasks" "$WORK/p0_2.out"
st=$?
check "the last restarted worker ran tasks: $(grep after "$WORK/p0_2.out")" $st
exit $fail
