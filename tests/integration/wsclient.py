#!/usr/bin/env python3
"""wsclient.py: a small WebSocket client (RFC 6455) on the standard library
alone, for testing the WebSocket of `lama serve` (docs/web.md): Debian's
python3 has no websockets module.

As a module:

    from wsclient import WS, parse_url, http_get
    host, port, token = parse_url("http://127.0.0.1:PORT/#token=HEX")
    ws = WS(host, port, token)            # raises Refused(status) if refused
    ws.send_text('{"id":1,"channel":"query:ping"}')
    print(ws.recv_text())                 # one whole message (fragments joined)
    ws.request("query:ping")              # sends {"id", "channel", "payload"},
                                          # returns the reply with that id;
                                          # pushes meanwhile go to ws.pushes
    ws.close()

As a script: `wsclient.py URL [JSON...]` sends each JSON message and prints
each reply; with no JSON, reads lines from stdin.
"""
import base64
import hashlib
import json
import os
import re
import socket
import struct
import sys

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Refused(Exception):
    """The server answered the upgrade with this HTTP status."""

    def __init__(self, status, head):
        super().__init__("refused with HTTP %d" % status)
        self.status = status
        self.head = head


class Closed(Exception):
    """The server closed: code is the close frame's status (None: no frame)."""

    def __init__(self, code, reason=b""):
        super().__init__("closed (%s)" % code)
        self.code = code
        self.reason = reason


def parse_url(url):
    """(host, port, token) from the address lama serve prints."""
    m = re.match(r"http://([^/:]+):(\d+)/#token=([0-9a-f]{64})$", url.strip())
    if not m:
        raise ValueError("not a lama web address: %r" % url)
    return m.group(1), int(m.group(2)), m.group(3)


def read_head(sock):
    """Reads an HTTP response head; returns (status, {lower-name: value}, raw)."""
    raw = b""
    while b"\r\n\r\n" not in raw:
        c = sock.recv(1)
        if not c:
            raise Closed(None)
        raw += c
        if len(raw) > 65536:
            raise ValueError("response head too long")
    lines = raw.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    return status, headers, raw


def http_get(host, port, path, host_header=None, method="GET", timeout=10):
    """One plain HTTP request: (status, headers, body bytes)."""
    s = socket.create_connection((host, port), timeout=timeout)
    try:
        hh = host_header if host_header is not None else "%s:%d" % (host, port)
        s.sendall(("%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                   % (method, path, hh)).encode())
        status, headers, _ = read_head(s)
        n = int(headers.get("content-length", "0"))
        body = b""
        while len(body) < n:
            c = s.recv(n - len(body))
            if not c:
                break
            body += c
        return status, headers, body
    finally:
        s.close()


class WS:
    def __init__(self, host, port, token=None, path="/ipc", origin=None,
                 host_header=None, timeout=10, connect=True):
        self.host, self.port = host, port
        self.pushes = []      # update: messages seen while waiting in request()
        self.next_id = 1
        self.buf = b""
        self.sock = socket.create_connection((host, port), timeout=timeout)
        if not connect:
            return
        target = path if token is None else "%s?token=%s" % (path, token)
        key = base64.b64encode(os.urandom(16)).decode()
        hh = host_header if host_header is not None else "%s:%d" % (host, port)
        req = ("GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
               "Sec-WebSocket-Version: 13\r\n" % (target, hh, key))
        if origin:
            req += "Origin: %s\r\n" % origin
        self.sock.sendall((req + "\r\n").encode())
        status, headers, raw = read_head(self.sock)
        if status != 101:
            self.sock.close()
            raise Refused(status, raw)
        want = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        if headers.get("sec-websocket-accept") != want:
            self.sock.close()
            raise ValueError("bad Sec-WebSocket-Accept")

    # -- frames --

    def send_frame(self, opcode, data, fin=True):
        """One masked frame (clients must mask)."""
        if isinstance(data, str):
            data = data.encode()
        head = bytes([(0x80 if fin else 0) | opcode])
        n = len(data)
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        # XOR in big chunks: 10 MB in python byte by byte is slow
        m = (mask * (n // 4 + 1))[:n]
        body = (int.from_bytes(data, "big") ^ int.from_bytes(m, "big")).to_bytes(n, "big") \
            if n else b""
        self.sock.sendall(head + mask + body)

    def send_text(self, text):
        self.send_frame(1, text)

    def _read(self, n):
        while len(self.buf) < n:
            c = self.sock.recv(max(65536, n - len(self.buf)))
            if not c:
                raise Closed(None)
            self.buf += c
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv_frame(self):
        """(opcode, fin, payload) of one frame."""
        b0, b1 = self._read(2)
        if b1 & 0x80:
            raise ValueError("the server masked a frame")
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack(">H", self._read(2))[0]
        elif n == 127:
            n = struct.unpack(">Q", self._read(8))[0]
        return b0 & 0x0F, bool(b0 & 0x80), self._read(n)

    def recv_message(self):
        """(opcode, payload) of one whole message; answers pings; raises
        Closed on a close frame or EOF."""
        parts, first = [], None
        while True:
            op, fin, data = self.recv_frame()
            if op == 8:
                code = struct.unpack(">H", data[:2])[0] if len(data) >= 2 else None
                raise Closed(code, data[2:])
            if op == 9:
                self.send_frame(10, data)
                continue
            if op == 10:
                continue
            if first is None:
                first = op
            parts.append(data)
            if fin:
                return first, b"".join(parts)

    def recv_text(self):
        op, data = self.recv_message()
        if op != 1:
            raise ValueError("not a text message (opcode %d)" % op)
        return data.decode()

    # -- the IPC protocol (docs/ipc.md) --

    def request(self, channel, payload=None):
        """Sends one request and returns its reply (a dict with result or
        error); pushes that arrive first are kept in self.pushes."""
        i = self.next_id
        self.next_id += 1
        msg = {"id": i, "channel": channel}
        if payload is not None:
            msg["payload"] = payload
        self.send_text(json.dumps(msg))
        while True:
            reply = json.loads(self.recv_text())
            if reply.get("id") == i:
                return reply
            self.pushes.append(reply)

    def close(self, code=1000):
        try:
            self.send_frame(8, struct.pack(">H", code))
        except OSError:
            pass
        self.sock.close()


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: wsclient.py URL [JSON...]")
    host, port, token = parse_url(sys.argv[1])
    ws = WS(host, port, token)
    msgs = sys.argv[2:] or (line.strip() for line in sys.stdin if line.strip())
    for m in msgs:
        ws.send_text(m)
        print(ws.recv_text(), flush=True)
    ws.close()


if __name__ == "__main__":
    main()
