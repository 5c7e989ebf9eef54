#!/bin/sh
# The CLI as a client of a running lama serve: the same output as from the
# archive, the changes go through the server (so `lama watch` sees them),
# a locked server gives one clear line, and watch ends with the server.
. "$(dirname "$0")/lib.sh"

lama register --name alice >/dev/null
lama contacts add --name Bob --email bob@example.org >/dev/null
lama topic new --with Bob >/dev/null
lama send Bob "sent directly" >/dev/null
for c in "messages Bob" topics contacts me "contacts show Bob"; do
	# shellcheck disable=SC2086
	lama $c --json >"$T/direct.$(echo $c | tr ' ' _)"
done

"$LAMA_BIN" serve >"$T/serve.out" 2>"$T/serve.err" &
pid=$!
for _ in $(seq 1 200); do [ -S "$LAMA_HOME/lama.sock" ] && break; sleep 0.05; done
lama watch --json >"$T/watch.out" 2>"$T/watch.err" &
wpid=$!
# the watcher is subscribed once it hears a change
for _ in $(seq 1 100); do
	lama topic read Bob
	grep -q '"what":"read"' "$T/watch.out" && break
	[ -s "$T/watch.err" ] && fail "watch: $(cat "$T/watch.err")"
	sleep 0.1
done
grep -q '"what":"read"' "$T/watch.out" || fail "lama watch hears nothing"

for c in "messages Bob" topics contacts me "contacts show Bob"; do
	# shellcheck disable=SC2086
	lama $c --json >"$T/remote.out"
	cmp -s "$T/remote.out" "$T/direct.$(echo $c | tr ' ' _)" ||
		fail "lama $c differs through the server: $(cat "$T/remote.out")"
done

# changes through the server: the watcher hears each one
id=$(lama send Bob "through the server")
lama edit Bob "$(echo "$id" | cut -c1-12)" "edited through the server"
printf 'line one\nline two\n' | lama send Bob --lines >/dev/null
lama topic new --with Bob 2>/dev/null >/dev/null # exists: no push
lama contacts add --name Carol --email carol@example.org >/dev/null
lama topic read Bob
# a small attachment goes through the server (inline), byte for byte
head -c 200000 /dev/urandom >"$T/small.bin"
aid=$(lama send Bob "with a file" --attach "$T/small.bin")
blob=$(LAMA_NO_SERVER=1 lama messages Bob --json --limit 1 | python3 -c '
import json, sys
m = json.load(sys.stdin)["messages"][-1]
assert m["attachments"][0]["name"] == "small.bin" and m["attachments"][0]["size"] == 200000, m
print(m["attachments"][0]["blob"])')
LAMA_NO_SERVER=1 lama blob get "$blob" -o "$T/small.out"
cmp -s "$T/small.bin" "$T/small.out" || fail "the inline attachment changed on its way"
# errors come back as one line, with the direct path's exit code
expect_fail lama send "no such topic" hi
echo "$ERR" | grep -q "no topic\|not found\|no such" || fail "unclear error: $ERR"
expect_fail lama contacts add --name Bob --email bob@example.org
# an argument that is not UTF-8 fails as it does without a server, sending nothing
bad=$(printf 'x\377')
expect_fail lama send Bob hello --reply-to "$bad"
expect_fail lama messages Bob --before "$bad"
expect_fail lama topic new --with Carol "$bad"

for _ in $(seq 1 100); do
	grep -q '"what":"read"' "$T/watch.out" && break
	sleep 0.05
done
python3 - "$T/watch.out" "$id" <<'PY' || fail "watch did not see the changes made through the CLI"
import json, sys
pushes = [json.loads(l) for l in open(sys.argv[1])]
chans = [(p["channel"], p["payload"].get("what")) for p in pushes]
texts = [p["payload"]["message"]["text"] for p in pushes if p["channel"] == "update:messageReceived"]
assert texts == ["through the server", "line one", "line two", "with a file"], texts
changed = [p for p in pushes if p["channel"] == "update:messageChanged"]
assert changed[0]["payload"]["message"]["id"] == sys.argv[2]
assert changed[0]["payload"]["message"]["text"] == "edited through the server"
assert ("update:stateChanged", "contacts") in chans and ("update:stateChanged", "read") in chans, chans
seqs = [p["seq"] for p in pushes]
assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
PY
# LAMA_NO_SERVER: the archive directly, beside the server
LAMA_NO_SERVER=1 lama messages Bob --limit 1 | grep -q "with a file" || fail "direct read beside the server"

kill -TERM "$pid"
wait "$pid" || fail "lama serve did not exit 0"
wait "$wpid" || fail "lama watch did not end cleanly with the server: $(cat "$T/watch.err")"
tail -1 "$T/watch.out" | grep -q '"what":"stopping"' || fail "watch missed the goodbye"
expect_fail lama watch
echo "$ERR" | grep -q "not running" || fail "watch without a server: $ERR"

# a locked server: one clear line
"$LAMA_BIN" serve --locked >"$T/serve.out" 2>"$T/serve.err" &
pid=$!
for _ in $(seq 1 200); do grep -q locked "$T/serve.out" 2>/dev/null && break; sleep 0.05; done
expect_fail lama topics
echo "$ERR" | grep -q "locked" || fail "locked server: $ERR"
expect_fail lama me
echo "$ERR" | grep -q "locked" || fail "locked server, lama me: $ERR"
kill -INT "$pid"
wait "$pid" || fail "lama serve --locked did not exit 0"
echo "cli_client: ok"
