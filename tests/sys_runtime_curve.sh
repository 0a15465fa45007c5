#!/usr/bin/env bash
# sys_runtime_curve.sh: CURVE through the CLI, over tcp:// between
# processes. `tessera keygen` makes the master's and two workers' keys; only
# the first worker is listed. The listed worker joins `tessera probe
# --curve-keys` and computes; the unlisted one is refused in the handshake
# (the master logs it) and never gets a task; a worker without keys cannot
# join either. Bad key files are refused with a message.
source "$(dirname "$0")/runtime_sys_lib.bash"

if ! "$CLI" keygen --dir "$WORK/probe-curve" --role master >/dev/null 2>"$WORK/kg.err"; then
    if grep -q "no CURVE support" "$WORK/kg.err"; then
        echo "ok: skipped, this libzmq has no CURVE"
        exit 0
    fi
fi
rm -rf "$WORK/probe-curve"
"$CLI" keygen --dir "$WORK/m" --role master >/dev/null
check "keygen: master keys" $?
good=$("$CLI" keygen --dir "$WORK/good" --role worker)
check "keygen: a worker's keys (public key printed)" $?
"$CLI" keygen --dir "$WORK/bad" --role worker >/dev/null
"$CLI" keygen --dir "$WORK/m" --authorize "$good"
check "keygen: authorize the first worker" $?
cp "$WORK/m/master.pub" "$WORK/good/" && cp "$WORK/m/master.pub" "$WORK/bad/"
[[ $(stat -c %a "$WORK/good/worker.secret") == 600 ]]
check "the secret key file is private (0600)" $?
"$CLI" keygen --dir "$WORK/m" --authorize "not-a-key" >/dev/null 2>&1
[[ $? -eq 1 ]]
check "authorizing a malformed key is refused" $?

url="tcp://127.0.0.1:$(free_tcp_port)"
start_worker bad "$url" --curve-keys "$WORK/bad"
start_worker plain "$url"
start_worker good "$url" --curve-keys "$WORK/good"
start_bg probe "$CLI" probe --listen "$url" --expect 1 --rounds 100000000 --interval-ms 20 \
    --curve-keys "$WORK/m"
wait_for "$WORK/probe.out" "0 -> 1 live" 60
check "the listed worker joined the CURVE master" $?
wait_for "$WORK/probe.err" "CURVE public key is not listed" 60
check "the master refused the unlisted key (and logged it)" $?
kill -INT "$(pid_of probe)"
wait_exit "$(pid_of probe)" 60
grep -q "0 wrong products; answers per worker id: 1:[0-9]*$" "$WORK/probe.out"
st=$?
check "only the listed worker (id 1) answered, correctly: $(grep 'answers per' "$WORK/probe.out")" $st
wait_exit "$(pid_of good)" 30 >/dev/null
grep -q "after [1-9][0-9]* tasks" "$WORK/good.out"
check "the listed worker ran tasks" $?
kill -TERM "$(pid_of bad)" "$(pid_of plain)" 2>/dev/null
wait_exit "$(pid_of bad)" 30 >/dev/null
wait_exit "$(pid_of plain)" 30 >/dev/null
grep -q "after 0 tasks (0 failed), 0 blobs + 0 aliases (peak 0.0 MB stored), 0 registrations" "$WORK/bad.out"
check "the unlisted worker never registered" $?
grep -q "after 0 tasks (0 failed), 0 blobs + 0 aliases (peak 0.0 MB stored), 0 registrations" "$WORK/plain.out"
check "a worker without keys never registered" $?

"$CLI" probe --listen "tcp://127.0.0.1:$(free_tcp_port)" --expect 1 --wait 1 \
    --curve-keys "$WORK/good" >"$WORK/nokey.out" 2>&1
[[ $? -eq 1 ]] && grep -q "master.secret" "$WORK/nokey.out"
check "a master without master.secret says which file is missing" $?
echo "garbage" >"$WORK/good/worker.secret"
"$CLI" worker --connect "$url" --curve-keys "$WORK/good" >"$WORK/badkey.out" 2>&1
[[ $? -eq 1 ]] && grep -q "not a 40-character Z85 CURVE key" "$WORK/badkey.out"
check "a malformed key file is refused with a message" $?
exit $fail
