#!/bin/sh
# lama serve's worker processes from outside: `lama workers` lists them; a
# worker killed with SIGKILL is replaced while the server goes on
# answering; none survives the server, stopped cleanly or killed.
. "$(dirname "$0")/lib.sh"
here=$(cd "$(dirname "$0")" && pwd)
export PYTHONPATH="$here"

lama register --name alice >/dev/null
expect_fail lama workers
echo "$ERR" | grep -q "not running" || fail "lama workers without a server: $ERR"

start() {
	"$LAMA_BIN" serve >"$T/serve.out" 2>"$T/serve.err" &
	pid=$!
	# a failing check must not leave the server (and its workers) behind
	trap 'st=$?; kill -9 "$pid" 2>/dev/null || true; rm -rf "$T"; exit $st' EXIT
	for _ in $(seq 1 200); do
		[ -S "$LAMA_HOME/lama.sock" ] && lama workers --json >"$T/w.json" 2>/dev/null && return 0
		sleep 0.05
	done
	fail "lama serve did not come up: $(cat "$T/serve.err")"
}
pids() { python3 -c 'import json,sys; print(" ".join(str(w["pid"]) for w in json.load(open(sys.argv[1])) if w["pid"]))' "$1"; }

start
lama workers | grep -q "^crypto" || fail "no crypto worker listed: $(lama workers)"
lama workers | grep -q "^sync" || fail "no sync worker listed"
first=$(pids "$T/w.json")
[ -n "$first" ] || fail "no worker pids"
for p in $first; do
	[ "$(cut -d' ' -f4 "/proc/$p/stat")" = "$pid" ] || fail "worker $p is not a child of lama serve"
done
victim=$(python3 -c 'import json,sys; print([w["pid"] for w in json.load(open(sys.argv[1])) if w["kind"]=="crypto"][0])' "$T/w.json")
kill -9 "$victim"
python3 - "$LAMA_HOME/lama.sock" "$victim" <<'PY' || fail "the killed worker was not replaced, or the server stopped answering"
import sys, time
from ipc_client import Client
c = Client(sys.argv[1])
victim = int(sys.argv[2])
deadline = time.time() + 10
while time.time() < deadline:
    assert c.ok("query:ping")["pong"] is True
    ws = c.ok("query:getWorkers")["workers"]
    crypto = [w for w in ws if w["kind"] == "crypto"]
    if sum(w["restarts"] for w in crypto) >= 1 and all(w["pid"] and w["pid"] != victim for w in crypto):
        sys.exit(0)
    time.sleep(0.05)
sys.exit(1)
PY
# a logout replaces every worker (what one caches between tasks, keys
# included, goes with its process), without counting restarts
python3 - "$LAMA_HOME/lama.sock" <<'PY' || fail "the workers were not all replaced at logout"
import sys, time
from ipc_client import Client
c = Client(sys.argv[1])
before = c.ok("query:getWorkers")["workers"]
old = {w["pid"] for w in before}
assert None not in old and len(old) >= 3, before  # crypto, sync, index
c.ok("action:logout")
deadline = time.time() + 10
while time.time() < deadline:
    ws = c.ok("query:getWorkers")["workers"]
    if all(w["pid"] and w["pid"] not in old for w in ws):
        assert [w["restarts"] for w in ws] == [w["restarts"] for w in before], (before, ws)
        sys.exit(0)
    time.sleep(0.05)
print(before, ws, file=sys.stderr)
sys.exit(1)
PY
lama workers --json >"$T/w.json"
all=$(pids "$T/w.json")
kill -TERM "$pid"
wait "$pid" || fail "lama serve did not exit 0"
for p in $all; do
	[ -d "/proc/$p" ] && [ "$(cut -d' ' -f3 "/proc/$p/stat")" != Z ] && fail "worker $p outlived lama serve (SIGTERM)"
done

# killed: the workers go too
start
all=$(pids "$T/w.json")
kill -9 "$pid"
wait "$pid" 2>/dev/null || true
sleep 1
for p in $all; do
	if [ -d "/proc/$p" ] && [ "$(cut -d' ' -f3 "/proc/$p/stat")" != Z ]; then
		fail "worker $p outlived lama serve (SIGKILL)"
	fi
done
echo "workers: ok"
