#!/usr/bin/env python3
"""ws.py ECHO_SERVER: the WebSocket transport and page of src/web from
outside, with tests/integration/wsclient.py (the client the end-to-end test
of `lama serve` uses): ECHO_SERVER is `test_web --serve`, lama_web with an
echo handler, which prints its address and exits cleanly on SIGTERM
(non-zero if a handle was left on its loop or an on_close was missed)."""
import os
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wsclient import WS, Closed, Refused, http_get, parse_url  # noqa: E402

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, file=sys.stderr)


def refused(status, **kw):
    try:
        WS(host, port, **kw).close()
    except Refused as e:
        return e.status == status and token.encode() not in e.head
    return False


server = subprocess.Popen([sys.argv[1], "--serve", str(1 << 20)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
try:
    url = server.stdout.readline()
    host, port, token = parse_url(url)

    # echo both ways, a request in the IPC shape, fragments, near the limit
    ws = WS(host, port, token)
    ws.send_text("hello")
    check(ws.recv_text() == "hello", "echo")
    ws.send_frame(1, "frag", fin=False)
    ws.send_frame(0, "ment", fin=False)
    ws.send_frame(0, "ed")
    check(ws.recv_text() == "fragmented", "fragments reassembled")
    big = "b" * ((1 << 20) - 10)
    ws.send_text(big)
    check(ws.recv_text() == big, "a message near msg_max")
    origin = "http://localhost:%d" % port
    ws2 = WS(host, port, token, origin=origin)
    ws2.send_text("two")
    check(ws2.recv_text() == "two", "with the page's Origin")

    # refusals
    check(refused(401), "no token")
    check(refused(401, token="0" * 64), "wrong token")
    check(refused(403, token=token, origin="http://evil.example"), "foreign Origin")
    check(refused(403, token=token, host_header="evil.example:%d" % port), "foreign Host")
    check(refused(404, token=token, path="/other"), "another path")

    # the page
    st, h, body = http_get(host, port, "/")
    check(st == 200 and b"<title>lama</title>" in body, "GET /")
    check(token.encode() not in body, "no token in the page")
    for name, want in (("x-frame-options", "DENY"), ("cache-control", "no-store"),
                       ("x-content-type-options", "nosniff")):
        check(h.get(name) == want, "header " + name)
    csp = h.get("content-security-policy", "")
    check("connect-src ws://127.0.0.1:%d ws://localhost:%d" % (port, port) in csp, "CSP")
    st, h, body = http_get(host, port, "/app.js")
    check(st == 200 and b"location.hash" in body, "GET /app.js")
    check(http_get(host, port, "/", host_header="evil.example")[0] == 403, "GET / foreign Host")
    for p in ("/etc/passwd", "/../../etc/passwd", "/%2e%2e/etc/passwd", "/index.html"):
        check(http_get(host, port, p)[0] == 404, "404 for " + p)

    # 10 MB: that client is closed with 1009, the others go on
    huge = WS(host, port, token)
    try:
        huge.send_text("z" * (10 << 20))
    except OSError:
        pass
    try:
        huge.recv_text()
        check(False, "10 MB accepted")
    except Closed as e:
        check(e.code in (1009, None), "10 MB: close code %s" % e.code)
    except OSError:
        pass
    huge.sock.close()
    ws.send_text("after")
    check(ws.recv_text() == "after", "still serving after 10 MB")

    # a half-open client and 100 at once
    half = socket.create_connection((host, port))
    half.sendall(b"GET /ipc?token=")
    many = [WS(host, port, token) for _ in range(100)]
    for i, c in enumerate(many):
        c.send_text("n%d" % i)
    check(all(c.recv_text() == "n%d" % i for i, c in enumerate(many)), "100 clients")
    ws.send_text("count")
    check(ws.recv_text() == "count 102", "client count")
    for c in many:
        c.close()
    half.close()

    # SIGTERM: connected clients hear 1001, the server exits cleanly
    server.send_signal(signal.SIGTERM)
    for c in (ws, ws2):
        try:
            c.recv_text()
            check(False, "no close at shutdown")
        except Closed as e:
            check(e.code == 1001, "shutdown close code %s" % e.code)
    rc = server.wait(timeout=30)
    check(rc == 0, "server exit %d: %s" % (rc, server.stderr.read()))
finally:
    if server.poll() is None:
        server.kill()
        server.wait()

if failures:
    sys.exit("ws.py: %d failure(s)" % len(failures))
print("ws.py: ok")
