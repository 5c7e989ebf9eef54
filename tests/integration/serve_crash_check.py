# serve_crash_check.py SOCKET TOPIC EPOCH SEQ ACKED...: after a restart, a
# writer reconnects: its old (epoch, seq) is from another run, so it is
# told to reset; it reloads the conversation, which must hold every
# acknowledged message exactly once.
import sys

from ipc_client import Client, all_messages

path, topic, epoch, seq = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
c = Client(path)
r = c.ok("action:subscribe", {"epoch": epoch, "since": seq})
assert r["reset"] is True and r["epoch"] != epoch, r
msgs = all_messages(c, topic)
ids = [m["id"] for m in msgs]
assert len(ids) == len(set(ids)), "a message is there twice"
have = {m["id"]: m["text"] for m in msgs}
n = 0
for f in sys.argv[5:]:
    for line in open(f):
        mid, text = line.split()
        assert have.get(mid) == text, "acknowledged %s (%s) is lost" % (mid, text)
        n += 1
# and updates flow again from the new run, numbered on from the reply
# (the index being built in the background may report its progress first)
c.ok("action:sendMessage", {"topic": topic, "text": "after-restart"})
want = r["seq"] + 1
while True:
    p = c.push()
    assert p["seq"] == want, (want, p)
    want += 1
    if p["channel"] == "update:progress":
        assert p["payload"]["task"] == "index", p
        continue
    assert p["payload"]["message"]["text"] == "after-restart", p
    break
print(n)
