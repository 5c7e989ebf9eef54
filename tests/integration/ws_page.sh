#!/bin/sh
# ws_page.sh ECHO_SERVER | --url URL: the page's script as served (GET
# /app.js) run by node against a stand-in DOM built from the served
# index.html: locked -> login -> conversations -> messages -> send -> push
# -> logout. Catches script errors, ids the HTML lacks, and peer text taken
# as HTML.
#   ECHO_SERVER (`test_web --serve`): the page talks to a stand-in IPC
#     server behind a fake WebSocket.
#   --url URL (a running `lama serve`, locked, whose folder has a
#     conversation with Bob; the password in $LAMA_PASSWORD): the page talks
#     to it over node's own WebSocket; ws_serve.sh runs this.
# Skipped (77) without node, which lama does not otherwise need.
set -eu
command -v node >/dev/null 2>&1 || { echo "ws_page: no node, skipped"; exit 77; }
# node 20 has a WebSocket behind a flag, 22 without one, Debian 12's 18 none:
# the fake mode needs none; the real one skips without it
flag=--experimental-websocket
node $flag -e 1 >/dev/null 2>&1 || flag=
if [ "${1:-}" = --url ] && ! node $flag -e 'process.exit(typeof WebSocket === "function" ? 0 : 1)' 2>/dev/null; then
	echo "ws_page: this node ($(node --version)) has no WebSocket, skipped"
	exit 77
fi
T=$(mktemp -d)
pid=
trap '[ -z "$pid" ] || kill "$pid" 2>/dev/null; rm -rf "$T"' EXIT
if [ "$1" = --url ]; then
	mode=real
	url=$2
else
	mode=fake
	"$1" --serve >"$T/url" 2>"$T/err" &
	pid=$!
	for _ in $(seq 1 100); do
		[ -s "$T/url" ] && break
		sleep 0.05
	done
	url=$(cat "$T/url")
	[ -n "$url" ] || { echo "ws_page: no server: $(cat "$T/err")"; exit 1; }
fi
python3 - "$url" "$T" <<'PY'
import os, sys
sys.path.insert(0, os.path.join(os.environ.get("LAMA_SOURCE_ROOT", "."), "tests", "integration"))
from wsclient import http_get, parse_url
host, port, token = parse_url(sys.argv[1])
for path, name in (("/", "index.html"), ("/app.js", "app.js")):
    st, h, body = http_get(host, port, path)
    assert st == 200, (path, st)
    open(os.path.join(sys.argv[2], name), "wb").write(body)
PY
# shellcheck disable=SC2086
node $flag --no-warnings - "$T/index.html" "$T/app.js" "$url" "$mode" <<'JS'
'use strict';
const fs = require('fs');
const vm = require('vm');
const assert = require('assert');
const [html, js, url, mode] = process.argv.slice(2);
const m = /^http:\/\/([^/]+)\/#token=([0-9a-f]{64})$/.exec(url);
const host = m[1], token = m[2];

// -- a stand-in DOM: only the ids index.html has --
class El {
  constructor(tag, id) {
    Object.assign(this, { tag, id: id || '', hidden: false, value: '', className: '',
      children: [], listeners: {}, scrollTop: 0, scrollHeight: 0, _text: '' });
    const cls = new Set();
    this.classList = { add: (c) => cls.add(c), remove: (c) => cls.delete(c), contains: (c) => cls.has(c) };
  }
  set textContent(t) { this._text = String(t); this.children = []; }
  get textContent() { return this._text + this.children.map((c) => c.textContent).join(''); }
  set innerHTML(v) { throw new Error('innerHTML used'); }
  append(...cs) { this.children.push(...cs); }
  appendChild(c) { this.children.push(c); return c; }
  prepend(c) { this.children.unshift(c); }
  replaceChildren() { this.children = []; this._text = ''; }
  addEventListener(t, f) { (this.listeners[t] = this.listeners[t] || []).push(f); }
  fire(t) {
    const ev = { type: t, defaultPrevented: false, preventDefault() { this.defaultPrevented = true; } };
    for (const f of this.listeners[t] || []) f(ev);
    return ev;
  }
}
const els = {};
for (const [, tag, id] of fs.readFileSync(html, 'utf8').matchAll(/<(\w+)[^>]*\sid="([^"]+)"/g))
  els[id] = new El(tag, id);
for (const [, tag, id] of fs.readFileSync(html, 'utf8').matchAll(/<(\w+)[^>]*\sid="([^"]+)"[^>]*\shidden/g))
  els[id].hidden = true;
const docListeners = {};
const document = {
  getElementById: (id) => els[id] || null,
  createElement: (tag) => new El(tag),
  addEventListener: (t, f) => { docListeners[t] = f; },
};
const storage = new Map();
const location = { hash: '#token=' + token, pathname: '/', host };
const history = { replaceState: (s, t, u) => { location.hash = ''; } };

// -- a stand-in lama serve behind a fake WebSocket (docs/ipc.md) --
const evil = '<img src=x onerror=alert(1)>';
const server = { locked: true, seq: 0, sent: [], urls: [] };
class FakeWS {
  constructor(u) {
    server.urls.push(u);
    server.ws = this;
    this.readyState = 0;
    this.listeners = {};
    setTimeout(() => { this.readyState = 1; this.emit('open', {}); }, 0);
  }
  addEventListener(t, f) { (this.listeners[t] = this.listeners[t] || []).push(f); }
  emit(t, ev) { for (const f of this.listeners[t] || []) f(ev); }
  push(channel, payload) {
    server.seq++;
    this.emit('message', { data: JSON.stringify({ channel, seq: server.seq, payload }) });
  }
  send(text) {
    const req = JSON.parse(text);
    server.sent.push(req);
    const p = req.payload || {};
    let result, error;
    const open = /^(query:getState|query:ping|action:(login|register|subscribe))$/.test(req.channel);
    if (server.locked && !open) {
      const e = { id: req.id, error: { code: 'unauthorized', message: 'locked' } };
      setTimeout(() => this.emit('message', { data: JSON.stringify(e) }), 0);
      return;
    }
    switch (req.channel) {
    case 'action:subscribe': result = { epoch: 'e1', seq: server.seq, reset: true }; break;
    case 'query:getState':
      result = server.locked ? { locked: true, users: 1, epoch: 'e1', seq: server.seq }
        : { locked: false, user: { name: 'alice' }, conversations: 1, contacts: 1, unread: 1,
            settings: { pageSize: 20 }, epoch: 'e1', seq: server.seq };
      break;
    case 'action:login':
      if (p.password !== 'pw') error = { code: 'unauthorized', message: 'wrong password' };
      else { server.locked = false; result = { user: { name: 'alice' } }; }
      break;
    case 'action:logout': server.locked = true; result = { locked: true }; break;
    case 'query:getConversations':
      result = { conversations: [{ id: 't1', title: '<b>Bob</b>', unread: 1 }] }; break;
    case 'query:getMessages':
      assert.strictEqual(p.topic, 't1');
      assert.strictEqual(p.limit, 20);
      result = { topic: 't1', messages: [{ id: 'm1', time: 1, sender_name: '<i>Bob</i>', text: evil }],
                 more: false, before: null };
      break;
    case 'action:markRead': result = { topic: 't1', unread: 0 }; break;
    case 'action:sendMessage':
      result = { id: 'm2' };
      setTimeout(() => this.push('update:messageReceived',
        { topic: 't1', message: { id: 'm2', time: 2, sender_name: 'alice', text: p.text } }), 0);
      break;
    default: error = { code: 'unknown_channel', message: 'no ' + req.channel };
    }
    const reply = error ? { id: req.id, error } : { id: req.id, result };
    setTimeout(() => this.emit('message', { data: JSON.stringify(reply) }), 0);
  }
}
FakeWS.OPEN = 1;

const ctx = vm.createContext({ document, location, history, setTimeout,
  WebSocket: mode === 'real' ? WebSocket : FakeWS,
  sessionStorage: { getItem: (k) => storage.get(k) || null, setItem: (k, v) => storage.set(k, v) },
  console, JSON, Map, Promise, Error, Number, Date });
vm.runInContext(fs.readFileSync(js, 'utf8'), ctx, { filename: 'app.js' });
const tick = () => new Promise((r) => setTimeout(r, 5));
const settle = async () => { for (let i = 0; i < 20; i++) await tick(); };
// every step but the wrong password must leave no error on the page
const clean = (step) => assert.ok(els.error.hidden, step + ': ' + els.error.textContent);

// waits until cond() holds (real mode: a real server answers when it does)
// (20 s: a server under ASan on a loaded machine can take seconds)
async function until(cond, what) {
  const end = Date.now() + 20000;
  while (Date.now() < end) {
    if (cond()) return;
    await tick();
  }
  if (cond()) return;
  throw new Error('timed out: ' + what + (els.error.hidden ? '' : ' (page error: ' + els.error.textContent + ')'));
}

async function real() {
  docListeners.DOMContentLoaded();
  await until(() => !els.login.hidden, 'the login form');
  assert.strictEqual(location.hash, '', 'the token stays in the address bar');
  els['login-password'].value = 'wrong';
  els.login.fire('submit');
  await until(() => !els.error.hidden, 'an error for a wrong password');
  assert.strictEqual(els.app.hidden, true);
  els['login-password'].value = process.env.LAMA_PASSWORD;
  els.login.fire('submit');
  await until(() => !els.app.hidden && els.conversations.children.length > 0, 'the conversations');
  clean('login');
  const bob = els.conversations.children.find((li) => li.textContent.startsWith('Bob'));
  assert.ok(bob, 'no conversation with Bob');
  bob.fire('click');
  await until(() => els.messages.children.length >= 2, 'the messages');
  const before = els.messages.children.length;
  assert.ok(els.messages.children.some((li) => li.textContent.includes('hello over the WebSocket')));
  els.text.value = 'from the page <b>';
  els.send.fire('submit');
  await until(() => els.messages.children.length === before + 1, 'the pushed message');
  assert.ok(els.messages.children[before].textContent.includes('from the page <b>'));
  clean('send');
  els.logout.fire('click');
  await until(() => !els.login.hidden && els.app.hidden, 'locked again');
  clean('logout');
  console.log('ws_page: ok (against lama serve)');
  process.exit(0);
}

(mode === 'real' ? real() : (async () => {
  docListeners.DOMContentLoaded();
  await settle();
  assert.deepStrictEqual(server.urls, ['ws://' + host + '/ipc?token=' + token]);
  assert.strictEqual(location.hash, '', 'the token stays in the address bar');
  assert.strictEqual(storage.get('lama-token'), token);
  assert.strictEqual(server.sent[0].channel, 'action:subscribe');
  assert.strictEqual(els.login.hidden, false, 'no login form when locked');
  assert.strictEqual(els.app.hidden, true);
  assert.strictEqual(els['login-title'].textContent, 'Log in');
  clean('start');

  els['login-password'].value = 'wrong';
  assert.ok(els.login.fire('submit').defaultPrevented);
  await settle();
  assert.match(els.error.textContent, /wrong password/);
  assert.strictEqual(els.login.hidden, false);
  els['login-password'].value = 'pw';
  els.login.fire('submit');
  await settle();
  assert.strictEqual(els.app.hidden, false, 'not shown after login');
  assert.strictEqual(els['login-password'].value, '', 'the password stays in the form');
  assert.match(els.status.textContent, /alice/);
  const lis = els.conversations.children;
  assert.strictEqual(lis.length, 1);
  assert.strictEqual(lis[0].textContent, '<b>Bob</b> (1)');
  clean('login');

  lis[0].fire('click');
  // an edit elsewhere at the same moment: two loads of the page overlap
  server.ws.push('update:messageChanged', { topic: 't1', id: 'm1' });
  await settle();
  assert.ok(server.sent.filter((r) => r.channel === 'query:getMessages').length >= 2);
  assert.ok(server.sent.some((r) => r.channel === 'action:markRead'));
  assert.strictEqual(els.title.textContent, '<b>Bob</b>');
  assert.strictEqual(els.messages.children.length, 1);
  assert.ok(els.messages.children[0].textContent.includes(evil), 'peer text not kept as text');
  assert.ok(els.messages.children[0].textContent.startsWith('<i>Bob</i>'));
  clean('open');

  els.text.value = 'hello <b>';
  els.send.fire('submit');
  await settle();
  assert.strictEqual(els.messages.children.length, 2, 'the pushed message is not shown');
  assert.ok(els.messages.children[1].textContent.includes('hello <b>'));
  assert.strictEqual(els.text.value, '');
  clean('send');

  server.ws.push('update:messageReceived', { topic: 'other', message: { id: 'x', text: 'no' } });
  await settle();
  assert.strictEqual(els.messages.children.length, 2, 'another topic\'s message shown here');

  els.logout.fire('click');
  await settle();
  assert.strictEqual(els.login.hidden, false, 'no login form after logout');
  assert.strictEqual(els.app.hidden, true);
  clean('logout');
  console.log('ws_page: ok');
})()).catch((e) => { console.error('ws_page:', e.stack || e); process.exit(1); });
JS
