#!/bin/sh
# The issue's journey over the Unix socket, by a client written from
# docs/ipc.md alone (tests/integration/ipc_journey.py): lama serve starts
# locked on an empty folder and is driven through register, login,
# messages, updates, bad input and many clients; then the archive holds
# what was acknowledged.
. "$(dirname "$0")/lib.sh"
here=$(cd "$(dirname "$0")" && pwd)

unset LAMA_PASSWORD
"$LAMA_BIN" serve --locked >"$T/serve.out" 2>"$T/serve.err" &
pid=$!
sock="$LAMA_HOME/lama.sock"
for _ in $(seq 1 200); do
	grep -q "waiting for action:register" "$T/serve.out" 2>/dev/null && break
	sleep 0.05
done
grep -q "waiting for action:register" "$T/serve.out" || fail "no locked start: $(cat "$T/serve.out" "$T/serve.err")"
PYTHONPATH="$here" python3 "$here/ipc_journey.py" "$sock" || fail "the journey failed"
kill -TERM "$pid"
wait "$pid" || fail "lama serve did not exit 0: $(cat "$T/serve.err")"
LAMA_PASSWORD="a long enough password" lama --user alice messages Bob --limit 1 | grep -q "missed 4" ||
	fail "the last acknowledged message is not in the archive"
LAMA_PASSWORD="a long enough password" lama --user alice check >/dev/null
echo "journey: ok"
