#!/bin/sh
# ws_serve.sh: lama serve through its WebSocket (docs/web.md), with
# tests/integration/wsclient.py: the address in DIR/web.url (0600), the
# page, refusals, a locked start and action:login over the WebSocket, a
# conversation, a message, pushes across both transports, an oversized
# message, the page's own script under node (ws_page.sh --url), and the goodbye (update:stateChanged stopping, close 1001) on
# SIGTERM.
. "$(dirname "$0")/lib.sh"

lama register --name alice >/dev/null
lama contacts add --name Bob --email bob@example.org >/dev/null
"$LAMA_BIN" serve --locked >"$T/serve.out" 2>"$T/serve.err" &
pid=$!
url="$LAMA_HOME/web.url"
for _ in $(seq 1 200); do
	[ -s "$url" ] && break
	sleep 0.05
done
[ -s "$url" ] || fail "no $url: $(cat "$T/serve.err")"
[ "$(stat -c %a "$url")" = 600 ] || fail "web.url mode $(stat -c %a "$url")"
if grep -q "token=" "$T/serve.out" "$T/serve.err"; then
	fail "the token is printed where logs keep it"
fi

python3 - "$(cat "$url")" "$LAMA_HOME/lama.sock" "$LAMA_PASSWORD" <<'PY' || fail "the WebSocket session failed"
import json, os, socket, sys
sys.path.insert(0, os.path.join(os.environ.get("LAMA_SOURCE_ROOT", "."), "tests", "integration"))
from wsclient import WS, Closed, Refused, http_get, parse_url

host, port, token = parse_url(sys.argv[1])
sock, password = sys.argv[2], sys.argv[3]

st, h, body = http_get(host, port, "/")
assert st == 200 and b"<title>lama</title>" in body and token.encode() not in body, st
assert http_get(host, port, "/", host_header="evil.example")[0] == 403
for kw, code in (({}, 401), ({"token": "0" * 64}, 401),
                 ({"token": token, "origin": "http://evil.example"}, 403)):
    try:
        WS(host, port, **kw)
        raise AssertionError("not refused: %r" % kw)
    except Refused as e:
        assert e.status == code, (kw, e.status)

a = WS(host, port, token, origin="http://127.0.0.1:%d" % port)
b = WS(host, port, token)
r = a.request("query:getState")["result"]
assert r["locked"] is True and r["users"] == 1, r
assert a.request("query:getConversations")["error"]["code"] == "unauthorized"
assert a.request("action:login", {"password": "wrong"})["error"]["code"] == "unauthorized"
assert a.request("action:login", {"password": password})["result"]["user"]["name"] == "alice"
assert b.request("action:subscribe", {})["result"]["reset"] is False

# a Unix-socket client, subscribed too: pushes cross transports
u = socket.socket(socket.AF_UNIX)
u.connect(sock)
u.settimeout(10)
ubuf = b""
def uline():
    global ubuf
    while b"\n" not in ubuf:
        c = u.recv(65536)
        assert c, "the Unix socket closed"
        ubuf += c
    l, ubuf = ubuf.split(b"\n", 1)
    return json.loads(l)
u.sendall(b'{"id":1,"channel":"action:subscribe"}\n')
while "id" not in uline():
    pass

conv = a.request("action:createConversation", {"with": ["Bob"]})["result"]
sent = a.request("action:sendMessage", {"topic": conv["id"], "text": "hello over the WebSocket"})["result"]
def wait_push(next_msg, channel):
    while True:
        m = next_msg()
        if m.get("channel") == channel:
            return m
push = wait_push(lambda: json.loads(b.recv_text()), "update:messageReceived")
assert push["payload"]["message"]["id"] == sent["id"], push
push = wait_push(uline, "update:messageReceived")
assert push["payload"]["message"]["text"] == "hello over the WebSocket", push
u.sendall(json.dumps({"id": 2, "channel": "action:sendMessage",
                      "payload": {"topic": conv["id"], "text": "from the socket"}}).encode() + b"\n")
push = wait_push(lambda: json.loads(b.recv_text()), "update:messageReceived")
assert push["payload"]["message"]["text"] == "from the socket", push
page = a.request("query:getMessages", {"topic": conv["id"]})["result"]
assert [m["text"] for m in page["messages"]] == ["hello over the WebSocket", "from the socket"], page

# too big: that WebSocket is closed (1009); the others go on
big = WS(host, port, token)
try:
    big.send_text('{"id":1,"channel":"query:ping","payload":{"x":"' + "x" * (2 << 20) + '"}}')
    big.recv_text()
    raise AssertionError("2 MiB accepted")
except Closed as e:
    assert e.code in (1009, None), e.code
except OSError:
    pass
assert a.request("query:ping")["result"]["pong"] is True
assert a.request("action:logout")["result"]["locked"] is True
print("ws_serve: session ok", flush=True)
PY

# the page itself, under node, against this server (locked again)
rc=0
LAMA_SOURCE_ROOT="${LAMA_SOURCE_ROOT:-.}" sh "$(dirname "$0")/ws_page.sh" --url "$(cat "$url")" || rc=$?
[ "$rc" = 0 ] || [ "$rc" = 77 ] || fail "the page failed against lama serve"

# the goodbye: subscribers hear "stopping", then close 1001
python3 - "$(cat "$url")" "$pid" <<'PY' || fail "no goodbye"
import json, os, sys
sys.path.insert(0, os.path.join(os.environ.get("LAMA_SOURCE_ROOT", "."), "tests", "integration"))
from wsclient import WS, Closed, parse_url
host, port, token = parse_url(sys.argv[1])
b = WS(host, port, token)
assert b.request("action:subscribe", {})["result"]["reset"] is False
os.kill(int(sys.argv[2]), 15)
stopping = False
try:
    while True:
        m = json.loads(b.recv_text())
        if m.get("channel") == "update:stateChanged" and m["payload"].get("what") == "stopping":
            stopping = True
except Closed as e:
    assert e.code == 1001, e.code
assert stopping, "no update:stateChanged stopping"
PY

wait "$pid" || fail "lama serve did not exit 0 on SIGTERM: $(cat "$T/serve.err")"
[ ! -e "$url" ] || fail "web.url is left behind"
lama messages Bob --limit 5 | grep -q "from the socket" || fail "the message is not in the archive"
echo "ws_serve: ok"
