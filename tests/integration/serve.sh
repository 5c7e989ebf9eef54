#!/bin/sh
# lama serve through its Unix socket, with a client written from
# docs/ipc.md alone (python, no lama code): queries, actions, pushes to a
# second connection, malformed and oversized requests, one server per
# data folder, and a clean exit on SIGTERM.
. "$(dirname "$0")/lib.sh"

lama register --name alice >/dev/null
lama contacts add --name Bob --email bob@example.org >/dev/null
"$LAMA_BIN" serve >"$T/serve.out" 2>"$T/serve.err" &
pid=$!
sock="$LAMA_HOME/lama.sock"
for _ in $(seq 1 200); do
	[ -S "$sock" ] && grep -q "socket:" "$T/serve.out" && break
	sleep 0.05
done
[ -S "$sock" ] || fail "no socket: $(cat "$T/serve.err")"
grep -q "$sock" "$T/serve.out" || fail "lama serve does not say where its socket is: $(cat "$T/serve.out")"
[ "$(stat -c %a "$sock")" = 600 ] || fail "socket mode $(stat -c %a "$sock")"

# a second server on the same folder refuses, naming the first
if lama serve >/dev/null 2>"$T/err2"; then
	fail "a second lama serve started"
fi
grep -q "$pid" "$T/err2" || fail "the refusal does not name the running server: $(cat "$T/err2")"

python3 - "$sock" <<'PY' || fail "the IPC session failed"
import json, socket, sys

path = sys.argv[1]

class Client:
    def __init__(self):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(path)
        self.s.settimeout(10)
        self.buf = b""
        self.n = 0
    def line(self):
        while b"\n" not in self.buf:
            chunk = self.s.recv(65536)
            assert chunk, "server closed the connection"
            self.buf += chunk
        l, self.buf = self.buf.split(b"\n", 1)
        return json.loads(l)
    def raw(self, data):
        self.s.sendall(data)
        return self.line()
    def call(self, channel, payload=None):
        self.n += 1
        msg = {"id": self.n, "channel": channel}
        if payload is not None:
            msg["payload"] = payload
        r = self.raw((json.dumps(msg) + "\n").encode())
        while "id" not in r:   # a push arrived first
            r = self.line()
        assert r["id"] == self.n, r
        return r

a, b = Client(), Client()
sub = b.call("action:subscribe")["result"]
assert sub["reset"] is False and len(sub["epoch"]) == 32, sub
st = a.call("query:getState")["result"]
assert st["user"]["me"] is True and st["contacts"] == 1, st
conv = a.call("action:createConversation", {"with": ["Bob"]})["result"]
assert conv["new"] is True and conv["title"] == "Bob", conv
assert b.line()["channel"] == "update:stateChanged"
sent = a.call("action:sendMessage", {"topic": conv["id"], "text": "hello over IPC"})["result"]
push = b.line()
assert push["channel"] == "update:messageReceived", push
assert push["payload"]["message"]["id"] == sent["id"], push
assert push["payload"]["message"]["text"] == "hello over IPC"
for i in range(30):
    a.call("action:sendMessage", {"topic": conv["id"], "text": "m%d" % i})
page = a.call("query:getMessages", {"topic": conv["id"], "limit": 10})["result"]
assert [m["text"] for m in page["messages"]] == ["m%d" % i for i in range(20, 30)], page
assert page["more"] is True
older = a.call("query:getMessages", {"topic": conv["id"], "limit": 50, "before": page["before"]})["result"]
assert older["messages"][0]["text"] == "hello over IPC" and older["more"] is False
# errors: each gets an error reply, and nothing changes
def err(r, code):
    assert "error" in r and r["error"]["code"] == code, r
err(a.raw(b"this is not json\n"), "bad_request")
err(a.raw(b'{"id": 1}\n'), "bad_request")
err(a.call("query:nothingLikeIt"), "unknown_channel")
err(a.call("action:sendMessage", {"topic": conv["id"]}), "invalid_payload")
err(a.call("action:sendMessage", {"topic": conv["id"], "text": 5}), "invalid_payload")
err(a.call("action:sendMessage", {"topic": "no such topic", "text": "x"}), "not_found")
err(a.call("action:addContact", {"name": "Bob", "email": "bob@example.org"}), "conflict")
err(a.raw(b'{"id": 7, "channel": "query:getState", "payload": "' + b"x" * (2 << 20) + b'"}\n'), "too_large")
assert a.call("query:getState")["result"]["conversations"] == 1
print("serve: session ok")
PY

kill -TERM "$pid"
wait "$pid" || fail "lama serve did not exit 0 on SIGTERM: $(cat "$T/serve.err")"
[ ! -e "$sock" ] || fail "the socket is left behind"
lama messages Bob --limit 1 | grep -q "m29" || fail "what was sent over IPC is not in the archive"
lama check >/dev/null

# a fresh machine: the first `lama serve` creates the user, then serves
fresh="$T/fresh"
LAMA_HOME="$fresh" "$LAMA_BIN" serve --name zoe >"$T/fresh.out" 2>"$T/fresh.err" &
pid=$!
for _ in $(seq 1 100); do
	[ -S "$fresh/lama.sock" ] && grep -q socket "$T/fresh.out" && break
	sleep 0.05
done
grep -q 'creating "zoe"' "$T/fresh.err" || fail "no notice of the new user: $(cat "$T/fresh.err")"
python3 - "$fresh/lama.sock" <<'PY' || fail "the fresh server does not answer"
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(10)
s.sendall(b'{"id":"x","channel":"query:getState"}\n')
buf = b""
while not buf.endswith(b"\n"):
    buf += s.recv(65536)
r = json.loads(buf)
assert r["id"] == "x" and r["result"]["user"]["name"] == "zoe", r
PY
kill -INT "$pid"
wait "$pid" || fail "lama serve did not exit 0 on SIGINT"
echo "serve: ok"
