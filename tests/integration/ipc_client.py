# ipc_client.py: a client of lama's IPC protocol written from docs/ipc.md
# alone (no lama code): one JSON message per line on DATA/lama.sock.
import json
import socket


class Client:
    def __init__(self, path, timeout=30):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(path)
        self.s.settimeout(timeout)
        self.buf = b""
        self.n = 0
        self.pushes = []  # updates that arrived while waiting for replies

    def close(self):
        self.s.close()

    def line(self):
        while b"\n" not in self.buf:
            chunk = self.s.recv(1 << 16)
            if not chunk:
                raise EOFError("server closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def send(self, msg):
        self.s.sendall((json.dumps(msg) + "\n").encode())

    def request(self, channel, payload=None):
        self.n += 1
        msg = {"id": self.n, "channel": channel}
        if payload is not None:
            msg["payload"] = payload
        self.send(msg)
        return self.n

    def reply(self, rid):
        while True:
            m = self.line()
            if "id" not in m:
                self.pushes.append(m)
                continue
            assert m["id"] == rid, (m, rid)
            return m

    def call(self, channel, payload=None):
        return self.reply(self.request(channel, payload))

    def ok(self, channel, payload=None):
        r = self.call(channel, payload)
        assert "result" in r, (channel, r)
        return r["result"]

    def err(self, channel, payload=None):
        r = self.call(channel, payload)
        assert "error" in r, (channel, r)
        return r["error"]["code"]

    def push(self):
        if self.pushes:
            return self.pushes.pop(0)
        m = self.line()
        assert "id" not in m, m
        return m


def all_messages(c, topic):
    """Every message of a topic, oldest first, by paging back."""
    out, before = [], None
    while True:
        p = {"topic": topic, "limit": 1000}
        if before:
            p["before"] = before
        page = c.ok("query:getMessages", p)
        out = page["messages"] + out
        if not page["more"]:
            return out
        before = page["before"]
