// app.js: the lama page. Speaks the IPC protocol (docs/ipc.md) over the
// WebSocket of `lama serve` (docs/web.md). Everything a peer wrote goes in
// with textContent, never as HTML.
'use strict';

const $ = (id) => document.getElementById(id);
let ws = null;
let nextId = 1;
const pending = new Map();   // id -> {resolve, reject}
let current = null;          // the open conversation's id
let before = null;           // getMessages cursor for older messages
let pageSize = 50;           // the user's pageSize setting
let epoch = null;            // the server run our seq belongs to
let seq = 0;                 // the last update applied
let fresh = false;           // locked, and the folder has no user yet
let shown = new Set();       // ids of the messages on the page
let loads = 0;               // getMessages sent: only the newest one counts

// The token is in the URL's fragment, which the browser never sends to a
// server; keep it for this tab only and take it out of the address bar.
function token() {
  const m = /(?:^#|&)token=([0-9a-f]{64})(?:&|$)/.exec(location.hash);
  if (m) {
    sessionStorage.setItem('lama-token', m[1]);
    history.replaceState(null, '', location.pathname);
    return m[1];
  }
  return sessionStorage.getItem('lama-token');
}

function status(text) { $('status').textContent = text; }

function showError(text) {
  const e = $('error');
  e.textContent = text || '';
  e.hidden = !text;
}

function request(channel, payload) {
  return new Promise((resolve, reject) => {
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      reject(new Error('not connected'));
      return;
    }
    const id = nextId++;
    pending.set(id, { resolve, reject });
    ws.send(JSON.stringify({ id, channel, payload: payload || {} }));
  });
}

function onMessage(ev) {
  let msg;
  try { msg = JSON.parse(ev.data); } catch (e) { return; }
  if (msg === null || typeof msg !== 'object') return;
  if (typeof msg.channel === 'string' && msg.channel.startsWith('update:')) {
    if (typeof msg.seq === 'number') {
      if (msg.seq <= seq) return;   // already in what we loaded
      seq = msg.seq;
    }
    onUpdate(msg.channel, msg.payload || {});
    return;
  }
  const p = pending.get(msg.id);
  if (!p) {
    if (msg.error) showError(msg.error.message || msg.error.code);
    return;
  }
  pending.delete(msg.id);
  if (msg.error) p.reject(new Error(msg.error.message || msg.error.code));
  else p.resolve(msg.result);
}

function onUpdate(channel, payload) {
  if (channel === 'update:messageReceived') {
    if (payload.topic === current && payload.message) addMessage(payload.message, false);
    loadConversations().catch(() => {});
  } else if (channel === 'update:messageChanged') {
    if (payload.topic === current) reloadMessages();
  } else if (channel === 'update:stateChanged') {
    if (payload.what === 'stopping') status('the server is stopping');
    else if (payload.what === 'session') refresh();
    else loadConversations().catch(() => {});
  }
}

// Pushes from now on; after a lost connection, the ones missed, or
// reset: true when they are gone (then everything is read again).
async function subscribe() {
  const r = await request('action:subscribe', epoch ? { epoch, since: seq } : {});
  const reset = r.reset !== false || r.epoch !== epoch;
  epoch = r.epoch;
  if (reset) seq = 0;
  return reset;
}

async function refresh() {
  try {
    const state = await request('query:getState');
    if (typeof state.seq === 'number' && state.seq > seq) seq = state.seq;
    const locked = state.locked === true;
    $('login').hidden = !locked;
    $('app').hidden = locked;
    $('logout').hidden = locked;
    if (locked) {
      fresh = state.users === 0;
      $('login-title').textContent = fresh ? 'Create your user' : 'Log in';
      $('login-submit').hidden = fresh;
      $('register').hidden = !fresh;
      status('locked');
      return;
    }
    if (state.settings && Number.isInteger(state.settings.pageSize)) pageSize = state.settings.pageSize;
    status(state.user && state.user.name ? 'logged in as ' + state.user.name : 'connected');
    await loadConversations();
    if (current) await reloadMessages();
  } catch (e) {
    showError(e.message);
  }
}

async function loadConversations() {
  const r = await request('query:getConversations');
  const ul = $('conversations');
  ul.replaceChildren();
  for (const t of r.conversations || []) {
    const li = document.createElement('li');
    li.textContent = t.title || t.handle || t.id;
    if (t.unread > 0) {
      li.classList.add('unread');
      li.textContent += ' (' + t.unread + ')';
    }
    if (t.id === current) li.classList.add('current');
    li.addEventListener('click', () => openConversation(t));
    ul.appendChild(li);
  }
}

function addMessage(m, atTop) {
  if (m.id) {
    if (shown.has(m.id)) return;   // a push that a page load already had
    shown.add(m.id);
  }
  const li = document.createElement('li');
  const who = document.createElement('span');
  who.className = 'who';
  who.textContent = m.sender_name || 'someone';
  const text = document.createElement('span');
  text.textContent = m.deleted ? '(deleted)' : (m.text || '');
  const when = document.createElement('span');
  when.className = 'when';
  when.textContent = m.time ? new Date(m.time).toLocaleString() : '';
  li.append(who, text, when);
  const ol = $('messages');
  if (atTop) ol.prepend(li);
  else {
    ol.appendChild(li);
    ol.scrollTop = ol.scrollHeight;
  }
}

async function openConversation(t) {
  current = t.id;
  $('title').textContent = t.title || t.handle || t.id;
  $('send').hidden = false;
  await reloadMessages();
  try { await request('action:markRead', { topic: current }); } catch (e) { /* shown next time */ }
  await loadConversations();
}

function reloadMessages() {
  before = null;
  return loadMessages(true);
}

// A page of messages: the newest (fresh) or the one before the oldest
// shown. Loads can overlap (a push, a login elsewhere, a click): the list
// is replaced only when the newest one's answer comes, so nothing is
// shown twice.
async function loadMessages(fresh) {
  const payload = { topic: current, limit: pageSize };
  if (!fresh && before) payload.before = before;
  const my = ++loads;
  try {
    const r = await request('query:getMessages', payload);
    if (my !== loads) return;
    if (fresh) {
      $('messages').replaceChildren();
      shown = new Set();
    }
    const ms = r.messages || [];
    if (fresh) for (const m of ms) addMessage(m, false);
    else for (let i = ms.length - 1; i >= 0; i--) addMessage(ms[i], true);
    before = r.more ? r.before : null;
    $('older').hidden = !r.more;
  } catch (e) {
    showError(e.message);
  }
}

async function send(ev) {
  ev.preventDefault();
  const text = $('text').value;
  if (!text || !current) return;
  try {
    await request('action:sendMessage', { topic: current, text });
    $('text').value = '';
    showError('');
  } catch (e) {
    showError(e.message);
  }
}

async function login(ev, channel) {
  if (ev) ev.preventDefault();
  const name = $('login-name').value;
  const password = $('login-password').value;
  const payload = { password };
  if (name) payload.name = name;
  if (channel === 'action:register' && !name) {
    showError('a new user needs a name');
    return;
  }
  try {
    await request(channel, payload);
    $('login-password').value = '';
    showError('');
    await refresh();
  } catch (e) {
    showError(e.message);
  }
}

function connect() {
  const t = token();
  if (!t) {
    status('no token: open the address `lama serve` printed');
    return;
  }
  ws = new WebSocket('ws://' + location.host + '/ipc?token=' + t);
  ws.addEventListener('open', async () => {
    showError('');
    try {
      await subscribe();
    } catch (e) {
      showError(e.message);
    }
    refresh();
  });
  ws.addEventListener('message', onMessage);
  ws.addEventListener('close', (ev) => {
    for (const p of pending.values()) p.reject(new Error('disconnected'));
    pending.clear();
    status('disconnected' + (ev.code ? ' (' + ev.code + ')' : '') + '; retrying…');
    setTimeout(connect, 2000);
  });
}

document.addEventListener('DOMContentLoaded', () => {
  $('login').addEventListener('submit',
    (ev) => login(ev, fresh ? 'action:register' : 'action:login'));
  $('register').addEventListener('click', (ev) => login(ev, 'action:register'));
  $('logout').addEventListener('click', async () => {
    try { await request('action:logout'); } catch (e) { showError(e.message); }
    current = null;
    $('messages').replaceChildren();
    shown = new Set();
    refresh();
  });
  $('send').addEventListener('submit', send);
  $('older').addEventListener('click', () => loadMessages(false));
  connect();
});
