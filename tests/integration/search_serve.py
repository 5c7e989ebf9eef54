# search_serve.py SOCK SERVE_PID N: search through a real lama serve and its
# index worker (docs/search.md, docs/workers.md). The data folder holds N
# messages in topic "Bob" (message i: "message number i about zebraI%50
# and apples") and the ranking set in "Carol", never indexed yet: the
# server builds the index in the background when it starts.
import glob
import os
import signal
import sys
import time

from ipc_client import Client

sock, serve_pid, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ZEBRA7 = len([i for i in range(n) if i % 50 == 7])


def connect():
    for _ in range(400):
        try:
            return Client(sock, timeout=60)
        except OSError:
            time.sleep(0.025)
    sys.exit("no server on " + sock)


def drain(c, into):
    while c.pushes:
        m = c.pushes.pop(0)
        if m.get("channel") == "update:progress" and m["payload"].get("task") == "index":
            into.append(m["payload"])


def index_worker(c):
    ws = [w for w in c.ok("query:getWorkers")["workers"] if w["kind"] == "index"]
    assert len(ws) == 1, ws
    return ws[0]


def wait_built(c, progress, what):
    """Pings every 2 ms until the build's last progress: the pings' latencies."""
    lat = []
    deadline = time.time() + 120
    while not (progress and progress[-1]["done"] == progress[-1]["total"]):
        assert time.time() < deadline, "%s: the build never ended: %s" % (what, progress[-3:])
        a = time.monotonic()
        assert c.ok("query:ping")["pong"] is True
        lat.append(time.monotonic() - a)
        drain(c, progress)
        time.sleep(0.002)
    return lat


c = connect()
c.ok("action:subscribe", {})

# 1. the initial build runs in the background: the loop answers
# meanwhile, a query answers with what is there so far, marked partial
early = c.ok("query:search", {"query": "zebra7", "limit": 1000})
assert early["partial"] is True, "a query while the index is built must say partial: %s" % early["partial"]
assert len(early["results"]) < ZEBRA7, "the build was over before the first query"
progress = []
lat = wait_built(c, progress, "initial build")
lat.sort()
p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
assert len(lat) >= 20, "too few pings during the build (%d): it was too short to measure" % len(lat)
assert p99 < 0.100, "ping p99 %.1f ms during the build (max %.1f)" % (p99 * 1e3, lat[-1] * 1e3)
assert len(progress) >= 2, "progress updates: %s" % progress
assert all(p["total"] == progress[-1]["total"] for p in progress), progress
assert progress[-1]["total"] >= n, progress[-1]
dones = [p["done"] for p in progress]
assert dones == sorted(dones), "progress goes back: %s" % dones
print("build: %d pings, p99 %.1f ms, max %.1f ms, %d progress updates" %
      (len(lat), p99 * 1e3, lat[-1] * 1e3, len(progress)))

# 2. exactly right once built: every match of a word, ranked, with snippets
r = c.ok("query:search", {"query": "zebra7", "limit": 1000})
assert r["partial"] is False, r["partial"]
assert len(r["results"]) == ZEBRA7, (len(r["results"]), ZEBRA7)
nums = set(int(h["snippet"].split()[2]) for h in r["results"])
assert nums == set(i for i in range(n) if i % 50 == 7), "not exactly the messages with zebra7"
r = c.ok("query:search", {"query": "pavlova"})
ids = [h["snippet"] for h in r["results"]]
assert ids == ["pavlova pavlova pavlova for Carol", "pavlova pavlova and cream", "one pavlova"], ids
top = r["results"][0]
assert top["topic_title"] == "Carol" and top["sender_name"] == "alice", top
assert top["highlights"] == [[0, 7], [8, 7], [16, 7]], top["highlights"]
assert r["results"][0]["rank"] <= r["results"][1]["rank"] <= r["results"][2]["rank"]
r = c.ok("query:search", {"query": '"number 1234 about"'})
assert [h["snippet"].split()[2] for h in r["results"]] == (["1234"] if n > 1234 else []), r
code = c.err("query:search", {"query": '"unclosed'})
assert code == "invalid_payload", code
code = c.err("query:search", {"query": "x" * 1025})
assert code == "limit", code

# 3. a message sent a moment ago is found at once; an edit and a delete too
topics = c.ok("query:getConversations")["conversations"]
bob = [t for t in topics if t["title"] == "Bob"][0]["id"]
sent = c.ok("action:sendMessage", {"topic": bob, "text": "a quokka on the ferry"})["id"]
r = c.ok("query:search", {"query": "quokka"})
assert [h["id"] for h in r["results"]] == [sent], r
c.ok("action:editMessage", {"topic": bob, "message": sent, "text": "a wombat on the ferry"})
assert c.ok("query:search", {"query": "quokka"})["results"] == []
assert [h["id"] for h in c.ok("query:search", {"query": "wombat"})["results"]] == [sent]
c.ok("action:deleteMessage", {"topic": bob, "message": sent})
assert c.ok("query:search", {"query": "wombat"})["results"] == []

# a client that goes away while its query waits: the server goes on
for _ in range(5):
    g = connect()
    g.request("query:search", {"query": "zebra7", "limit": 1000})
    g.close()
assert c.ok("query:ping")["pong"] is True
assert len(c.ok("query:search", {"query": "zebra7", "limit": 1000})["results"]) == ZEBRA7

# 4. the index worker is a child of lama serve; killed, it comes back and
# search goes on, exactly right
w = index_worker(c)
assert w["pid"], w
with open("/proc/%d/stat" % w["pid"]) as f:
    assert int(f.read().rsplit(")", 1)[1].split()[1]) == serve_pid, "the index worker is not a child of lama serve"
os.kill(w["pid"], signal.SIGKILL)
r = c.ok("query:search", {"query": "zebra7", "limit": 1000})
assert len(r["results"]) == ZEBRA7, len(r["results"])
sent = c.ok("action:sendMessage", {"topic": bob, "text": "after the kill: a numbat"})["id"]
assert [h["id"] for h in c.ok("query:search", {"query": "numbat"})["results"]] == [sent]
w2 = index_worker(c)
assert w2["pid"] and w2["pid"] != w["pid"] and w2["restarts"] >= 1, w2

# 5. logged out in the middle of a build: nothing of the user's reaches a
# client after the logout (no late results, no progress). The index is
# removed while logged out, so the next login builds it from nothing.
c.ok("action:logout")
time.sleep(0.3)  # the worker closes the index (the close task)
for f in glob.glob(os.path.join(os.environ["LAMA_HOME"], "users", "*", "search.db*")):
    os.unlink(f)
c.ok("action:login", {"password": os.environ["LAMA_PASSWORD"]})
rid = c.request("query:search", {"query": "zebra7", "limit": 1000})
lid = c.request("action:logout")
r = c.reply(rid)
c.reply(lid)
assert "error" in r or r["result"]["partial"] is True, "a query answered during a build must say partial"
# nothing reaches the client after the logout's reply: no update of any
# kind (a late reply would fail in reply(): its id is not the ping's)
seen = len(c.pushes)
time.sleep(0.5)
c.ok("query:ping")
assert c.pushes[seen:] == [], "after the logout: %s" % c.pushes[seen:]
assert c.err("query:search", {"query": "zebra7"}) == "unauthorized"

# 6. the index worker killed with SIGKILL in the middle of the build: its
# batch is done again, and the index ends up exactly right
c.ok("action:login", {"password": os.environ["LAMA_PASSWORD"]})
progress = []
deadline = time.time() + 60
while True:
    # mid-build (some batches in, not the end) and the worker in a task
    w = index_worker(c)
    drain(c, progress)
    if w["busy"] and progress and 0 < progress[-1]["done"] < progress[-1]["total"]:
        break
    assert time.time() < deadline, "no busy index worker during the build: %s" % progress[-3:]
    assert not (progress and progress[-1]["done"] == progress[-1]["total"]), \
        "the build was over before the kill"
victim = w["pid"]
os.kill(victim, signal.SIGKILL)
wait_built(c, progress, "build after a kill")
r = c.ok("query:search", {"query": "zebra7", "limit": 1000})
assert r["partial"] is False and len(r["results"]) == ZEBRA7, (r["partial"], len(r["results"]))
assert [h["snippet"] for h in c.ok("query:search", {"query": "pavlova"})["results"]][0] == \
    "pavlova pavlova pavlova for Carol"
w3 = index_worker(c)
assert w3["pid"] != victim and w3["restarts"] >= 2, w3
print("search_serve: ok")
