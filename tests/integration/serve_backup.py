# serve_backup.py SOCK_A SOCK_B FILE PASSWORD: action:backup on a served
# user, then action:restore into a second, empty server and a login there:
# the same conversation. A backup over an existing file needs replace;
# a wrong password is refused and writes nothing.
import os
import sys

from ipc_client import Client, all_messages

a_path, b_path, f, pw = sys.argv[1:5]
a = Client(a_path)
topic = a.ok("query:getConversations")["conversations"][0]["id"]
before = all_messages(a, topic)
assert a.err("action:backup", {"path": f, "password": "wrong"}) == "unauthorized"
assert not os.path.exists(f), "a refused backup left a file"
assert a.err("action:backup", {"path": "relative.bak", "password": pw}) == "invalid_payload"
# others are answered while the backup runs off the loop, and subscribers
# see how far it is
watcher = Client(a_path)
watcher.ok("action:subscribe")
rid = a.request("action:backup", {"path": f, "password": pw})
other = Client(a_path)
assert other.ok("query:ping")["pong"] is True
r = a.reply(rid)
assert r["result"]["path"] == f, r
prog = []
while True:
    p = watcher.push()
    if p["channel"] != "update:progress":
        continue
    prog.append(p["payload"])
    if p["payload"]["done"] == p["payload"]["total"]:
        break
assert all(x["task"] == "backup" and x["path"] == f for x in prog), prog
assert [x["done"] for x in prog] == sorted(x["done"] for x in prog), prog
assert prog[-1]["total"] > 0, prog
assert os.stat(f).st_mode & 0o777 == 0o600
assert a.err("action:backup", {"path": f, "password": pw}) == "conflict"
assert a.ok("action:backup", {"path": f, "password": pw, "replace": True})["path"] == f

b = Client(b_path)
sub = b.ok("action:subscribe")
assert b.ok("query:getState")["users"] == 0
assert b.err("action:restore", {"path": f, "password": "wrong"}) == "unauthorized"
res = b.ok("action:restore", {"path": f, "password": pw})
assert res["name"] == "alice", res
seen = []
while True:
    p = b.push()
    if p["channel"] != "update:progress":
        break
    seen.append(p["payload"])
assert p["payload"]["what"] == "restored", p
assert seen and all(x["task"] == "restore" for x in seen), seen
assert b.err("action:restore", {"path": f, "password": pw}) == "conflict"  # the user is there now
b.ok("action:login", {"password": pw})
assert b.err("action:restore", {"path": f, "password": pw}) == "conflict"  # logged in
after = all_messages(b, topic)
assert [(m["id"], m["text"]) for m in after] == [(m["id"], m["text"]) for m in before]
print("serve_backup: ok (%d messages)" % len(after))
