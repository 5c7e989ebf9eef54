# serve_crash.py SOCKET TOPIC OUT: one of several writers: sends messages
# to TOPIC as fast as lama serve acknowledges them, appending each
# acknowledged id and text to OUT, until the server dies; then prints the
# last (epoch, seq) it saw, for the catch-up check after the restart.
import sys

from ipc_client import Client

path, topic, out, tag = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
c = Client(path)
sub = c.ok("action:subscribe")
acked = open(out, "a")
i = 0
try:
    while True:
        text = "%s-%d" % (tag, i)
        r = c.call("action:sendMessage", {"topic": topic, "text": text})
        assert "result" in r, r
        acked.write("%s %s\n" % (r["result"]["id"], text))
        acked.flush()
        i += 1
except (EOFError, ConnectionError, OSError):
    pass
seqs = [p["seq"] for p in c.pushes]
print(sub["epoch"], max(seqs) if seqs else sub["seq"])
