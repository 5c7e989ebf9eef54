# ipc_journey.py SOCKET: a whole journey through lama serve, as a client
# written from docs/ipc.md sees it: register, logout, login, a contact, a
# conversation, messages sent and paged, updates on a second connection
# with catching up after a reconnect, settings, bad input of every kind
# (nothing changes), half-open and 100 concurrent clients, logout.
import json
import socket
import sys
import time

from ipc_client import Client, all_messages

path = sys.argv[1]
PW = "a long enough password"

a = Client(path)
st = a.ok("query:getState")
assert st["locked"] is True and st["users"] == 0, st
assert a.err("query:getContacts") == "unauthorized"
assert a.err("action:sendMessage", {"topic": "x", "text": "y"}) == "unauthorized"

b = Client(path)
sub = b.ok("action:subscribe")
assert sub["reset"] is False and sub["seq"] == st["seq"], sub

user = a.ok("action:register", {"name": "alice", "password": PW})["user"]
assert user["name"] == "alice" and user["me"] is True, user
crypto = [w for w in a.ok("query:getWorkers")["workers"] if w["kind"] == "crypto"]
assert sum(w["done"] for w in crypto) == 1, crypto  # register's Argon2id ran there
p = b.push()
assert p["channel"] == "update:stateChanged" and p["payload"]["what"] == "session", p
assert p["payload"]["locked"] is False and p["seq"] == sub["seq"] + 1, p
assert a.err("action:register", {"name": "eve", "password": PW}) == "conflict"

assert a.ok("action:logout")["locked"] is True
assert b.push()["payload"]["locked"] is True
assert a.err("query:getConversations") == "unauthorized"
assert a.err("action:login", {"password": "not it"}) == "unauthorized"
assert a.err("action:login", {"name": "nobody", "password": PW}) == "not_found"
assert a.ok("action:login", {"name": "alice", "password": PW})["user"]["name"] == "alice"
# the password's Argon2id ran on a crypto worker, not on the server's loop
crypto = [w for w in a.ok("query:getWorkers")["workers"] if w["kind"] == "crypto"]
assert crypto and sum(w["done"] for w in crypto) == 3, crypto  # the wrong password too
assert b.push()["payload"]["locked"] is False

bob = a.ok("action:addContact", {"name": "Bob", "email": "bob@example.org"})
assert bob["name"] == "Bob"
assert b.push()["payload"]["what"] == "contacts"
conv = a.ok("action:createConversation", {"with": ["bob@example.org"]})
assert conv["new"] is True and conv["title"] == "Bob", conv
assert b.push()["payload"]["what"] == "conversations"
topic = conv["id"]

sent = []
for i in range(40):
    sent.append(a.ok("action:sendMessage", {"topic": topic, "text": "message %d" % i})["id"])
last = None
for i in range(40):
    p = b.push()
    assert p["channel"] == "update:messageReceived", p
    assert p["payload"]["message"]["id"] == sent[i] and p["payload"]["topic"] == topic
    assert last is None or p["seq"] == last + 1, (p["seq"], last)
    last = p["seq"]

page = a.ok("query:getMessages", {"topic": topic, "limit": 15})
assert [m["text"] for m in page["messages"]] == ["message %d" % i for i in range(25, 40)]
assert page["more"] is True
msgs = all_messages(a, topic)
assert [m["id"] for m in msgs] == sent, "paging lost or doubled messages"

# the second connection goes away; what it misses is replayed on return
# (the epoch changed at the logout above: nothing from before a logout
# can be replayed)
epoch = a.ok("query:getState")["epoch"]
assert epoch != sub["epoch"]
b.close()
for i in range(5):
    sent.append(a.ok("action:sendMessage", {"topic": topic, "text": "missed %d" % i})["id"])
b = Client(path)
rid = b.request("action:subscribe", {"epoch": epoch, "since": last})
replayed = []
while True:
    m = b.line()
    if "id" in m:
        assert m["id"] == rid and m["result"]["reset"] is False, m
        break
    replayed.append(m)
assert [m["seq"] for m in replayed] == list(range(last + 1, last + 6)), replayed
assert [m["payload"]["message"]["id"] for m in replayed] == sent[-5:]
last += 5
# an epoch of another run: reset, and nothing replayed
r = b.ok("action:subscribe", {"epoch": "0" * 32, "since": 1})
assert r["reset"] is True and r["epoch"] == epoch

s = a.ok("action:updateSettings", {"theme": "dark"})["settings"]
assert s["theme"] == "dark"
assert b.push()["payload"]["what"] == "settings"
assert a.ok("query:getState")["settings"]["theme"] == "dark"

# bad input: an error reply each, and the server goes on unchanged
before = a.ok("query:getState")
def raw(c, data):
    c.s.sendall(data)
    return c.line()
assert raw(a, b"{not json\n")["error"]["code"] == "bad_request"
assert raw(a, b"[1,2]\n")["error"]["code"] == "bad_request"
assert raw(a, b'{"id":1,"id":2,"channel":"query:ping"}\n')["error"]["code"] == "bad_request"
assert a.err("query:noSuchThing") == "unknown_channel"
assert a.err("action:sendMessage", {"topic": topic, "text": 7}) == "invalid_payload"
assert a.err("action:sendMessage", {"topic": topic, "text": "x", "extra": 1}) == "invalid_payload"
assert a.err("query:getMessages", {"topic": topic, "limit": "10"}) == "invalid_payload"
assert a.err("action:updateSettings", {"theme": 3}) == "invalid_payload"
# 10 MB in one message: refused unread, the connection stays usable
big = {"id": "big", "channel": "action:sendMessage",
       "payload": {"topic": topic, "text": "x" * (10 << 20)}}
r = raw(a, (json.dumps(big) + "\n").encode())
assert r["error"]["code"] == "too_large" and r["id"] is None, r
assert a.ok("query:ping")["pong"] is True
after = a.ok("query:getState")
for k in ("conversations", "contacts", "settings"):
    assert before[k] == after[k], (k, before[k], after[k])
assert len(all_messages(a, topic)) == len(sent), "bad input changed the conversation"

# half-open clients: one stops mid-line, one never reads, one closes its
# writing side; none of them holds the others up
stuck = socket.socket(socket.AF_UNIX); stuck.connect(path)
stuck.sendall(b'{"id":1,"channel":"query:getSt')
deaf = socket.socket(socket.AF_UNIX); deaf.connect(path)
deaf.sendall(b'{"id":1,"channel":"action:subscribe"}\n')
half = socket.socket(socket.AF_UNIX); half.connect(path)
half.sendall(b'{"id":1,"channel":"query:ping"}\n')
half.shutdown(socket.SHUT_WR)
t0 = time.time()
assert a.ok("query:ping")["pong"] is True
assert time.time() - t0 < 2

# 100 clients at once, each with requests in flight
many = [Client(path) for _ in range(100)]
for c in many:
    c.request("query:getState")
    c.request("query:getMessages", {"topic": topic, "limit": 3})
for c in many:
    assert c.reply(1)["result"]["conversations"] == 1
    assert len(c.reply(2)["result"]["messages"]) == 3
    c.close()
stuck.close(); deaf.close(); half.close()

assert a.ok("action:logout")["locked"] is True
assert a.err("query:getMessages", {"topic": topic}) == "unauthorized"
# a password longer than the crypto worker takes still logs in (on the loop)
long_pw = "p" * 1500
assert a.ok("action:register", {"name": "bob", "password": long_pw})["user"]["name"] == "bob"
assert a.ok("action:logout")["locked"] is True
assert a.ok("action:login", {"name": "bob", "password": long_pw})["user"]["name"] == "bob"
assert a.ok("action:logout")["locked"] is True
print("journey: ok (%d messages)" % len(sent))
