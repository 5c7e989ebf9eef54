#!/bin/sh
# kill -9 of lama serve during bursts of sendMessage from several clients:
# after each restart every acknowledged message is there exactly once,
# the clients reconnect and are told to reset (another run), and the
# archive checks out.
. "$(dirname "$0")/lib.sh"
here=$(cd "$(dirname "$0")" && pwd)
export PYTHONPATH="$here"
WRITERS=4
ROUNDS=${LAMA_CRASH_ROUNDS:-5}

lama register --name alice >/dev/null
lama contacts add --name Bob --email bob@example.org >/dev/null
topic=$(lama topic new --with Bob --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
sock="$LAMA_HOME/lama.sock"

start() {
	"$LAMA_BIN" serve >>"$T/serve.out" 2>>"$T/serve.err" &
	pid=$!
	for _ in $(seq 1 200); do
		[ -S "$sock" ] && python3 -c "
from ipc_client import Client; Client('$sock').ok('query:ping')" 2>/dev/null && return 0
		sleep 0.05
	done
	fail "lama serve did not come up: $(tail -5 "$T/serve.err")"
}

total=0
for round in $(seq 1 "$ROUNDS"); do
	start
	wpids=""
	for w in $(seq 1 $WRITERS); do
		touch "$T/acked.$w"
		eval "had$w=\$(wc -l <\"\$T/acked.\$w\")"
		python3 "$here/serve_crash.py" "$sock" "$topic" "$T/acked.$w" "r$round-w$w" >"$T/last.$w" &
		wpids="$wpids $!"
	done
	# every writer is in its burst before the kill
	for w in $(seq 1 $WRITERS); do
		for _ in $(seq 1 200); do
			[ "$(wc -l <"$T/acked.$w")" -gt "$(eval echo \$had$w)" ] && break
			sleep 0.05
		done
	done
	sleep "0.$(shuf -i 1-5 -n 1)"
	kill -9 "$pid"
	wait "$pid" 2>/dev/null || true
	for p in $wpids; do wait "$p" || fail "a writer failed"; done
	start
	for w in $(seq 1 $WRITERS); do
		set -- $(cat "$T/last.$w")
		n=$(python3 "$here/serve_crash_check.py" "$sock" "$topic" "$1" "$2" "$T"/acked.*) ||
			fail "round $round: writer $w's catch-up failed"
	done
	total=$n
	kill -TERM "$pid"
	wait "$pid" || fail "lama serve did not exit 0"
done
[ "$total" -gt 100 ] || fail "too few messages acknowledged to mean anything: $total"
lama check >/dev/null || fail "lama check after the crashes"
echo "serve_crash: ok ($ROUNDS kills, $total acknowledged messages all present)"
