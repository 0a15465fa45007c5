#!/usr/bin/env bash
# issue5_kill_eval.sh: issue 5's exact scenario on the whole test set. Six
# `tessera worker` processes over tcp on loopback, `tessera eval --listen
# ... --expect 6 --stragglers 2 --scheme crme`, two workers killed with
# SIGKILL 3 s into the run; prints the single-node and the coded accuracy
# lines and the wall time. Usage: TS_CLI=$PWD/build/tessera bash bench/issue5_kill_eval.sh
source "$(dirname "$0")/../tests/runtime_sys_lib.bash"
"$CLI" eval --model "$MODEL" > "$WORK/single.out" 2>&1
grep '^accuracy:' "$WORK/single.out"
url="tcp://127.0.0.1:$(free_tcp_port)"
for i in 0 1 2 3 4 5; do start_worker "w$i" "$url"; done
t0=$(date +%s.%N)
start_bg run "$CLI" eval --model "$MODEL" --listen "$url" --expect 6 --stragglers 2 --scheme crme
wait_for "$WORK/run.err" "coded run:" 60
sleep 3
running "$(pid_of run)" && echo "still running at kill"
kill9 "$(pid_of w0)" "$(pid_of w3)"
wait_exit "$(pid_of run)" 600; echo "rc=$?"
t1=$(date +%s.%N)
grep '^accuracy:\|^time:' "$WORK/run.out"
echo "wall $(echo "$t1 - $t0" | bc) s"
grep -c "removed" "$WORK/run.err"
