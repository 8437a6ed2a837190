// imqtt web chat: login and lists over the HTTP API, everything live over
// MQTT/WebSocket at /mqtt (docs/protocol.md) through the JavaScript SDK
// (sdk/js, served at /chat/sdk/). See internal/webchat/webchat.go.
import { Client, LocalStorageCursor, checkEvent as imqttCheckEvent } from './sdk/index.js';

(() => {
  const $ = (sel, el = document) => el.querySelector(sel);
  const store = {
    get(k) { try { return JSON.parse(localStorage.getItem(k)); } catch { return null; } },
    set(k, v) { localStorage.setItem(k, JSON.stringify(v)); },
    del(k) { localStorage.removeItem(k); },
  };
  const randomId = (n) => {
    const abc = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
    return Array.from(crypto.getRandomValues(new Uint8Array(n)), (b) => abc[b % abc.length]).join('');
  };
  const newer = (a, b) => !b || (a && BigInt(a) > BigInt(b)); // snowflake IDs as strings
  const SYNC_LIMIT = 200;
  const SYNC_TIMEOUT = 10000;
  const RESEND = 5000;
  const DRAW_DELAY = 50;
  // The message lifecycle (docs/protocol.md#message-lifecycle).
  const PICKER = ['👍', '❤️', '😂', '😮', '😢', '🎉']; // the reaction picker
  const TYPING_SHOWN = 6000; // "typing…" hides this long after the last start
  const TYPING_MAX = 20; // typists shown per conversation
  const MAX_OPS = 100; // recalls, edits and reactions waiting for their ack
  const QUOTE_RUNES = 200; // wire.QuoteRunes
  const REACTION_USERS = 20; // wire.ReactionUsers: reactors listed per emoji
  const CHANGES = new Set(['recall', 'edit', 'reaction', 'delete']); // stored changes: sequenced like messages

  // Everything the page knows; window.imqttChat exposes it for debugging and tests.
  const S = {
    session: store.get('imqtt.session'), // {user, device, token, expires_at}
    sdk: null, // the SDK's Client: connection, cursors, sync, resends
    takenOver: false, // the device connected elsewhere: this page let it be
    batch: null, // events the SDK delivered in this task, shown together
    left: new Set(), // groups the heads no longer list: shown as left
    drawTimer: 0,
    drawMessages: false,
    drawCost: 0, // ms the last draw took
    convs: new Map(), // key ("bob" or "#g1") -> {key, peer, group, last, unread, arrival}
    arrivals: 0, // counts messages that moved a conversation's last (loadConversations keeps rows moved since it asked)
    open: null, // the key of the open conversation
    msgs: new Map(), // key -> Map(local key -> message)
    loaded: new Set(), // conversations whose history was fetched
    outbox: new Map(), // cmid -> {cmid, key, send}: sends the SDK resends until acked
    ops: new Map(), // cmid -> {cmid, key, topic, req, what}: changes sent, until acked
    ids: new Map(), // message id -> [conversation key, local key]: where S.msgs holds it
    ticks: 0, // counts changes applied: a history or list asked before one does not undo it
    replyTo: null, // {key, id, from, type, body}: what the composer replies to
    editing: null, // {key, id}: the message the composer edits
    menu: null, // {id, what: 'menu' | 'picker'}: the open message menu or reaction picker
    typing: new Map(), // key -> Map(user -> until): who types where, shown until then
    typingTimer: 0,
    typingSent: null, // {key}: where the last im/typing start went (the SDK sends one a second at most)
    readSent: new Map(), // key -> the upto last sent in im/read
    delivered: [], // {id, ver, group, seq, synced} of every message the sequencers delivered, in order
    pageSkipped: 0, // history items the page could not use (the SDK counts its own)
  };
  Object.defineProperties(S, {
    client: { get: () => (S.sdk && !S.takenOver ? S.sdk.mc : null) }, // the MQTT.js connection
    groups: { get: () => S.sdk && S.sdk.groups }, // the SDK's group cursors
    groupRequests: { get: () => (S.sdk ? S.sdk.groupRequests : 0) }, // group syncs and heads requests sent
    // events and sync items that did not parse or lacked what the page needs
    skipped: { get: () => S.pageSkipped + (S.sdk ? S.sdk.skipped : 0) },
    unconfirmed: { get: () => (S.sdk ? S.sdk.unconfirmed : 0) }, // live events dropped: no sync confirmed them
  });
  window.imqttChat = S;

  const me = () => S.session && S.session.user;
  const deviceID = () => {
    let d = store.get('imqtt.device');
    if (!d) store.set('imqtt.device', (d = 'web-' + randomId(10)));
    return d;
  };
  const cursorKey = () => `imqtt.cursor.${S.session.user}.${S.session.device}`;
  const outboxKey = () => `imqtt.outbox.${S.session.user}.${S.session.device}`;
  const inboxTopic = () => `im/u/${S.session.user}/inbox`;
  const deviceTopic = () => `im/u/${S.session.user}/d/${S.session.device}`;

  // ---- HTTP ----
  async function api(method, path, body) {
    const headers = {};
    if (S.session) headers.Authorization = 'Bearer ' + S.session.token;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const data = await res.json().catch(() => ({}));
    if (!res.ok) {
      if (res.status === 401 && S.session && path !== '/v1/sessions') logout('Your session has ended; log in again.');
      throw Object.assign(new Error(data.message || res.statusText), { code: data.code, status: res.status });
    }
    return data;
  }

  // ---- login ----
  function showLogin(why) {
    $('#app').hidden = true;
    $('#login').hidden = false;
    $('#login-error').textContent = why || '';
  }

  async function submitLogin(register) {
    const f = $('#login-form');
    if (!f.reportValidity()) return;
    const user = f.user.value.trim();
    const password = f.password.value;
    $('#login-error').textContent = '';
    try {
      if (register) await api('POST', '/v1/users', { user, password });
      const s = await api('POST', '/v1/sessions', { user, password, device: deviceID() });
      S.session = { user: s.user || user, device: s.device || deviceID(), token: s.token, expires_at: s.expires_at };
      store.set('imqtt.session', S.session);
      f.password.value = '';
      start();
    } catch (e) {
      $('#login-error').textContent = e.message;
    }
  }

  async function logout(why) {
    const s = S.session;
    S.session = null;
    store.del('imqtt.session');
    const sdk = S.sdk;
    S.sdk = null;
    if (sdk) sdk.close().catch(() => {}); // what waited for an ack is dropped with the session
    S.left.clear();
    S.outbox.clear();
    S.ops.clear();
    S.ids.clear();
    S.typing.clear();
    clearTimeout(S.typingTimer);
    S.typingSent = S.replyTo = S.editing = S.menu = null;
    S.convs.clear();
    S.msgs.clear();
    S.loaded.clear();
    S.open = null;
    social.reset();
    media.reset();
    groupsUI.reset();
    if (!why && s) {
      fetch('/v1/sessions/current', { method: 'DELETE', headers: { Authorization: 'Bearer ' + s.token } }).catch(() => {});
    }
    showLogin(why);
  }

  // ---- start ----
  async function start() {
    $('#login').hidden = true;
    $('#app').hidden = false;
    $('#me').textContent = me();
    const saved = store.get(cursorKey());
    const cur = { ver: 0, epoch: '', ...(saved && typeof saved === 'object' ? saved : {}) };
    S.left = new Set(Array.isArray(cur.left) ? cur.left : []);
    S.delivered = [];
    for (const o of store.get(outboxKey()) || []) {
      S.outbox.set(o.cmid, o);
      put(o.key, { kind: 'msg', from: me(), to: o.send.to, group: o.send.group, type: o.send.type, body: o.send.body, media: o.send.media, meta: o.send.meta, cmid: o.cmid, ts: o.ts, status: 'pending', reply_to: o.send.reply_to, quote: o.quote });
    }
    try {
      await loadConversations(); // before MQTT: its list is what later events are counted against
    } catch (e) {
      if (!S.session) return;
      $('#chat-error').textContent = 'conversations: ' + e.message;
    }
    if (!S.session) return;
    if (!saved) {
      // A new device starts at the newest message it was shown: what came
      // before is history, fetched per conversation when opened, not replayed.
      for (const r of S.convs.values()) {
        if (r.last && r.last.ver > cur.ver) cur.ver = r.last.ver;
      }
    }
    let groups = cur.groups;
    if (!groups || typeof groups !== 'object') {
      // Likewise each group the list shows (the heads then raise a cursor to
      // the join if need be); one it does not show starts at its join.
      groups = {};
      for (const r of S.convs.values()) {
        if (r.group && r.last && Number.isSafeInteger(r.last.seq)) groups[r.group] = { seq: r.last.seq, epoch: '' };
      }
    }
    cur.groups = groups;
    store.set(cursorKey(), cur); // where the SDK starts
    if (S.sdk) S.sdk.close().catch(() => {});
    S.sdk = new Client({
      server: location.origin, user: S.session.user, device: S.session.device, token: S.session.token,
      mqtt: window.mqtt, cursor: new LocalStorageCursor(cursorKey()),
      syncLimit: SYNC_LIMIT, syncTimeout: SYNC_TIMEOUT, resendInterval: RESEND, minBackoff: 1000,
      log: (level, msg, fields) => console.warn('imqtt: ' + msg, fields ? JSON.stringify(fields) : ''),
    });
    S.sdk.on('event', onEvent);
    S.sdk.on('status', onStatus);
    S.sdk.on('heads', onHeads);
    S.sdk.on('reset', onReset);
    for (const o of S.outbox.values()) sendOut(o);
    connect();
    const hash = decodeURIComponent(location.hash.slice(1));
    if (hash) openConversation(hash);
  }

  async function loadConversations() {
    const asked = S.arrivals;
    const ticks = S.ticks;
    const list = await api('GET', '/v1/conversations');
    // A row a message reached while the list was on its way keeps what the
    // page counted: the list predates that message (a group's first message
    // often lands just after the group event that asked for the list).
    const seen = new Map(S.convs);
    S.convs.clear();
    for (const c of list.conversations || []) {
      const key = c.group ? '#' + c.group : c.peer;
      if (c.last && imqttCheckEvent(c.last, me())) c.last = null; // shown as no message rather than broken
      const mine = seen.get(key);
      if (mine && mine.arrival > asked) {
        S.convs.set(key, mine);
        continue;
      }
      // peer_read only grows: a receipt may have come after the list was asked.
      const peerRead = maxID(typeof c.peer_read === 'string' && /^[0-9]{1,20}$/.test(c.peer_read) ? c.peer_read : '', mine && mine.peerRead);
      S.convs.set(key, { key, peer: c.peer, group: c.group, last: c.last, unread: c.unread, peerRead, mentioned: c.mentioned === true, muted: c.muted === true, pinned: c.pinned === true });
      if (c.last) put(key, c.last, ticks);
    }
    for (const [key, mine] of seen) {
      if (!S.convs.has(key) && mine.arrival > asked) S.convs.set(key, mine);
    }
    if (S.open && !S.convs.has(S.open)) S.convs.set(S.open, row(S.open));
    for (const g of S.left) row('#' + g); // shown as left, whatever the list says
    renderConvs();
    if (S.open) renderMessages();
  }

  function row(key) {
    let r = S.convs.get(key);
    if (!r) {
      r = key.startsWith('#') ? { key, group: key.slice(1), last: null, unread: 0 } : { key, peer: key, last: null, unread: 0 };
      S.convs.set(key, r);
    }
    return r;
  }

  // ---- MQTT, through the SDK ----
  // The SDK (sdk/js, served at /chat/sdk/) keeps the connection, the
  // cursors, sync, the order of events and the resends; the page shows what
  // it delivers.
  function setStatus(state, text) {
    const el = $('#status');
    el.dataset.state = state;
    el.textContent = text || state;
  }

  function connect() {
    S.takenOver = false;
    setStatus('connecting');
    S.sdk.connect().catch(() => {}); // a refusal comes as the closed status
  }

  // onStatus follows the SDK's connection state.
  function onStatus(st) {
    if (st.state === 'closed' && st.error && st.error.code === 'unauthorized') {
      logout('Your session has ended; log in again.');
    } else if (st.reason === 'taken_over') { // the same device opened elsewhere: leave it the connection
      S.takenOver = true;
      S.sdk.disconnect();
      setStatus('taken-over', 'open in another tab');
    } else if (st.state === 'syncing') { // connected
      setStatus('syncing');
      social.load(); // contacts, presence, blocks and groups as they are now: their events were missed while away
      if (S.open) markRead(S.open);
    } else if (st.state === 'online') { // the inbox and every group caught up
      setStatus('online');
      loadConversations().catch(() => {}); // counts from the server: reads by other devices too
    } else if (st.state === 'offline' && !S.takenOver) {
      setStatus('offline', 'offline: reconnecting');
    } else if (st.state === 'closed' && st.error) { // refused for good (a subscription, say)
      setStatus('offline', st.error.message);
    }
  }

  // skip counts and reports something the page cannot use; never its payload.
  function skip(what, why) {
    S.pageSkipped++;
    console.warn('imqtt: skipped ' + what + ': ' + why);
  }

  // onEvent takes each event the SDK delivers, in order. Messages and the
  // rest of the sequenced stream are gathered and shown together (one draw
  // for a batch of hundreds).
  function onEvent(ev, info) {
    if (!S.session) return;
    const synced = !!(info && info.synced);
    // Receipts and typing are not stored: no position, never sequenced.
    if (ev.kind === 'receipt') return receipt(ev);
    if (ev.kind === 'typing') return typing(ev);
    if (social.event(ev)) return; // contacts, presence, blocks, settings: no position either
    if (ev.kind === 'group' && ev.seq === undefined) {
      if (ev.action === 'left') return markLeft([ev.group], false); // the heads no longer list it
      if (ev.action === 'disbanded') social.gone(ev.group); // read-only from now on
    }
    if (!S.batch) {
      S.batch = [];
      queueMicrotask(() => {
        const b = S.batch;
        S.batch = null;
        for (let i = 0; i < b.length;) { // runs of live and of synced events, in order
          let j = i;
          while (j < b.length && b[j].synced === b[i].synced) j++;
          deliver(b.slice(i, j).map((x) => x.ev), b[i].synced);
          i = j;
        }
      });
    }
    S.batch.push({ ev, synced });
  }

  // onHeads: the server's word on which groups the user is in.
  function onHeads(h) {
    for (const x of h.groups) if (x.gone === true) social.gone(x.group); // disbanded: read-only
    let shown = false;
    for (const x of h.groups) shown = S.left.delete(x.group) || shown; // in it again
    markLeft([], shown);
  }

  // onReset: the history a cursor came from is gone, and so is what the page showed of it.
  function onReset(r) {
    if (r.group) {
      S.msgs.delete('#' + r.group);
      S.loaded.delete('#' + r.group);
    } else {
      S.msgs.clear();
      S.loaded.clear();
    }
  }

  // markLeft shows groups the server's word says the user is no longer in.
  function markLeft(groups, changed) {
    for (const g of groups) {
      S.left.add(g);
      row('#' + g);
    }
    if (!groups.length && !changed) return;
    saveCursor();
    renderConvs();
    if (S.open) renderMessages();
  }

  // deliver shows events in the order the sequencer gives (the SDK saves
  // the cursor, with the groups left that markLeft put in its extra).
  // A batch of hundreds (a group catching up) is drawn, and its read
  // position sent, once, not once per message.
  function deliver(evs, synced) {
    if (!evs.length) return;
    const touched = new Set();
    for (const ev of evs) {
      try {
        const key = showEvent(ev, synced);
        if (key) touched.add(key);
      } catch (e) { // checked already; still, one event must not stop the rest
        skip(`an event (ver ${Number(ev.ver) || 0})`, e && e.message);
      }
    }
    if (S.open && touched.has(S.open)) markRead(S.open);
    draw(S.open && touched.has(S.open));
  }

  // draw redraws the list (and the open conversation) soon, once for all
  // the deliveries until then, and waits 4 times as long as the last draw
  // took: a page catching up hundreds of groups would otherwise spend its
  // time drawing a long list at every batch (500 groups: 16 s instead of 5;
  // the layout of 500 rows takes ~120 ms in headless Chromium).
  function draw(messages) {
    S.drawMessages = S.drawMessages || messages;
    if (S.drawTimer) return;
    S.drawTimer = setTimeout(() => {
      const t0 = performance.now();
      renderConvs();
      if (S.drawMessages && S.open) renderMessages();
      S.drawMessages = false;
      void $('#convs').offsetHeight; // the layout is the larger part of a draw's cost: count it
      S.drawCost = performance.now() - t0;
      S.drawTimer = 0;
    }, Math.max(DRAW_DELAY, 4 * S.drawCost));
  }

  // saveCursor persists the groups left with the SDK's cursor (the SDK
  // saves the inbox's and the groups' after every delivery).
  function saveCursor() {
    if (!S.sdk || !S.sdk.seq) return;
    S.sdk.extra.left = [...S.left];
    S.sdk.save();
  }

  // showEvent takes one delivered event; a message's conversation key is
  // returned (deliver draws once for all).
  function showEvent(ev, synced) {
    if (ev.kind === 'msg' || ev.kind === undefined) {
      S.delivered.push({ id: ev.id, ver: ev.ver, group: ev.group, seq: ev.seq, synced });
      if (S.delivered.length > 1000) S.delivered.splice(0, 500);
      return received(ev);
    } else if (CHANGES.has(ev.kind)) {
      S.delivered.push({ kind: ev.kind, id: ev.id, ver: ev.ver, group: ev.group, seq: ev.seq, synced });
      if (S.delivered.length > 1000) S.delivered.splice(0, 500);
      return applyChange(ev);
    } else if (ev.kind === 'unread') {
      const r = row(ev.group ? '#' + ev.group : ev.peer);
      r.unread = ev.count; // the header's total is summed from the rows (totalUnread), not taken from ev.total
    } else if (groupItem(ev)) {
      // An administration record in the group's log: a system line, and
      // what it changed (the group's name, notice, a disband …).
      S.delivered.push({ kind: 'group', id: ev.id, group: ev.group, seq: ev.seq, synced });
      if (S.delivered.length > 1000) S.delivered.splice(0, 500);
      put('#' + ev.group, ev);
      social.groupItem(ev);
      return '#' + ev.group;
    } else if (ev.kind === 'group') {
      // A membership event: the SDK asks the heads, the server's word; the list follows.
      loadConversations().catch(() => {});
      social.groupEvent(ev);
    }
  }

  // ---- messages ----
  // groupItem: a stored group administration record (kind "group" with a
  // seq), unlike a live membership event (no seq).
  const groupItem = (m) => m.kind === 'group' && typeof m.group === 'string' && Number.isSafeInteger(m.seq) && m.seq > 0;
  const convKey = (m) => (m.group ? '#' + m.group : m.from === me() ? m.to : m.from);
  // Own messages are known by cmid (before the ack there is no id), others by id.
  const localKey = (m) => (m.from === me() && m.cmid ? 'c:' + m.cmid : 'i:' + m.id);
  const maxID = (a, b) => (newer(a, b) ? a : b || a || '');
  const cut = (body) => (typeof body === 'string' ? [...body].slice(0, QUOTE_RUNES).join('') : undefined);

  // put stores m in its conversation and reports whether it was new there.
  // A message already there takes what m knows of its state (docs/protocol.md#message-lifecycle):
  // a recall and a later edit always (they only go forward); the reactions
  // and quote of a snapshot of the server's (history, the list: asked is
  // S.ticks when it was asked for) unless a change applied since.
  function put(key, m, asked) {
    let msgs = S.msgs.get(key);
    if (groupItem(m)) { // a system line, in its place by seq
      if (!msgs) S.msgs.set(key, (msgs = new Map()));
      msgs.set('g:' + m.seq, { ...m, status: 'acked' });
      return false;
    }
    if (m.kind !== undefined && m.kind !== 'msg') return false; // a change in a group's history: its message shows it
    if (m.recalled && m.expired) { // burnt after reading: gone, not a tombstone
      if (msgs) forget(key, msgs.get(localKey(m)));
      return false;
    }
    if (!msgs) S.msgs.set(key, (msgs = new Map()));
    const k = localKey(m);
    const old = msgs.get(k);
    if (old) {
      old.id = old.id || m.id;
      old.ts = m.ts || old.ts;
      if (old.id) S.ids.set(old.id, [key, k]);
      if (m.recalled) recallIn(key, old);
      if (!old.recalled && m.edited && !(old.edited >= m.edited) && typeof m.body === 'string') Object.assign(old, { body: m.body, edited: m.edited, meta: m.meta });
      if (m.reply_to) old.reply_to = m.reply_to;
      const snapshot = asked !== undefined && !(old.changed > asked);
      if (m.quote && !(old.quote && old.quote.recalled) && (snapshot || !old.quote || old.quote.local)) old.quote = m.quote; // the server's word over the page's
      if (!old.recalled && (snapshot || (m.reactions && !old.reactions && !old.changed))) old.reactions = m.reactions;
      return false;
    }
    const n = { ...m, status: m.status || 'acked' }; // an event means the server has stored it
    if (n.recalled) recallIn(key, n);
    msgs.set(k, n);
    if (n.id) S.ids.set(n.id, [key, k]);
    return true;
  }

  // stored returns the message with id as the page holds it, and its key.
  function stored(id) {
    const at = S.ids.get(id);
    const msgs = at && S.msgs.get(at[0]);
    const m = msgs && msgs.get(at[1]);
    return m && m.id === id ? { key: at[0], m } : null; // a conversation dropped since (a reset) holds nothing
  }

  // forget removes m (a burnt message) from its conversation; the list
  // shows the newest left.
  function forget(key, m) {
    const msgs = S.msgs.get(key);
    if (!m || !msgs) return;
    msgs.delete(localKey(m));
    if (m.id) S.ids.delete(m.id);
    for (const x of msgs.values()) {
      if (x.reply_to && x.reply_to === m.id && x.quote) x.quote = { from: x.quote.from, type: x.quote.type, recalled: true };
    }
    const r = S.convs.get(key);
    if (r && r.last && m.id && r.last.id === m.id) {
      r.last = [...msgs.values()].filter((x) => x.id && !groupItem(x)).reduce((a, x) => (!a || newer(x.id, a.id) ? x : a), null);
    }
  }

  // recallIn makes m a tombstone, and the quotes of it in its conversation.
  function recallIn(key, m) {
    m.recalled = true;
    for (const f of ['body', 'media', 'meta', 'inline', 'mentions', 'reactions', 'edited']) delete m[f];
    for (const x of (S.msgs.get(key) || new Map()).values()) {
      if (x.reply_to && x.reply_to === m.id && x.quote) x.quote = { from: x.quote.from, type: x.quote.type, recalled: true };
    }
  }

  // applyChange applies one change (recall, edit, reaction, delete), live
  // or synced alike: the sequencers deliver each once, in order of its ver
  // or seq. A change of a message the page does not hold changes nothing:
  // its history, fetched when opened, is as the message is now. Returns the
  // conversation's key.
  function applyChange(ev) {
    S.ticks++;
    if (ev.kind === 'delete') return applyDelete(ev);
    const f = stored(ev.id);
    if (!f) return null;
    const { key, m } = f;
    if (ev.group !== undefined ? key !== '#' + ev.group : key.startsWith('#')) return null; // not that conversation's
    if (m.recalled) return key; // a tombstone stays one
    m.changed = S.ticks;
    if (ev.kind === 'recall' && ev.expired === true) {
      forget(key, m); // burnt after reading: gone for both
      if (S.editing && S.editing.id === m.id) stopEditing();
      if (S.replyTo && S.replyTo.id === m.id) S.replyTo = null;
    } else if (ev.kind === 'recall') {
      recallIn(key, m);
      if (S.editing && S.editing.id === m.id) stopEditing();
      if (S.replyTo && S.replyTo.id === m.id) S.replyTo = null;
    } else if (ev.kind === 'edit') {
      if (typeof ev.body !== 'string' || (m.edited && ev.edited && m.edited > ev.edited)) return key;
      Object.assign(m, { body: ev.body, edited: ev.edited || m.edited || Date.now(), meta: ev.meta });
      for (const x of S.msgs.get(key).values()) {
        if (x.reply_to === m.id && x.quote && !x.quote.recalled) x.quote = { ...x.quote, body: cut(ev.body) };
      }
    } else if (ev.kind === 'reaction') {
      react(m, ev.emoji, ev.from, ev.op === 'add');
    }
    return key;
  }

  // react adds or removes who's emoji on m. users lists everyone while the
  // count is at most the cap (wire.ReactionUsers): then a change already in
  // the snapshot the page holds changes nothing; past it, the count moves.
  function react(m, emoji, who, add) {
    const rs = (m.reactions = { ...(m.reactions || {}) });
    const r = rs[emoji] ? { count: rs[emoji].count, users: [...rs[emoji].users] } : { count: 0, users: [] };
    const has = r.users.includes(who);
    const complete = r.users.length >= r.count;
    if (add) {
      if (has) return;
      r.count++;
      if (complete && r.users.length < REACTION_USERS) r.users.push(who);
    } else {
      if (has) r.users.splice(r.users.indexOf(who), 1);
      if (has || !complete) r.count = Math.max(0, r.count - 1);
    }
    if (r.count > 0) rs[emoji] = r;
    else delete rs[emoji];
    if (!Object.keys(rs).length) delete m.reactions;
  }

  // applyDelete hides messages from this user's view (its own devices
  // only), or clears the conversation with a peer.
  function applyDelete(ev) {
    if (ev.peer !== undefined) {
      S.msgs.delete(ev.peer);
      const r = S.convs.get(ev.peer);
      if (r) r.last = null;
      return ev.peer;
    }
    let key = null;
    for (const id of ev.ids) {
      const f = stored(id);
      if (!f) continue;
      const msgs = S.msgs.get(f.key);
      msgs.delete(S.ids.get(id)[1]);
      S.ids.delete(id);
      const r = S.convs.get(f.key);
      if (r && r.last && r.last.id === id) { // the newest left shows, or none
        r.last = [...msgs.values()].filter((x) => x.id).reduce((a, x) => (!a || newer(x.id, a.id) ? x : a), null);
      }
      key = f.key;
    }
    return key;
  }

  function received(m) {
    const key = convKey(m);
    const r = row(key);
    const isNew = put(key, m);
    const t = S.typing.get(key);
    if (t && t.delete(m.from)) drawTyping(); // a message ends its sender's typing
    if (newer(m.id, r.last && r.last.id)) {
      // Counted only when newer than the list's last message, which the server counted already.
      if (m.from !== me() && isNew && !(S.open === key && visible())) {
        r.unread++;
      }
      r.last = m;
      r.arrival = ++S.arrivals;
    }
    return key;
  }

  // send sends a text, or with extra ({type, media, meta}) an attachment.
  function send(key, body, extra) {
    const r = row(key);
    const cmid = 'w-' + randomId(16);
    const msg = { cmid, type: 'text', body, ...extra };
    if (r.group) msg.group = r.group; else msg.to = r.peer;
    if (!r.group && S.ttl > 0) msg.ttl = S.ttl; // burn after reading
    let quote;
    if (S.replyTo && S.replyTo.key === key) {
      msg.reply_to = S.replyTo.id;
      quote = { from: S.replyTo.from, type: S.replyTo.type, body: cut(S.replyTo.body), local: true }; // shown until the server's
    }
    S.replyTo = null;
    const o = { cmid, key, send: msg, ts: Date.now(), quote };
    S.outbox.set(cmid, o);
    saveOutbox();
    put(key, { kind: 'msg', from: me(), to: msg.to, group: msg.group, type: msg.type, body, media: msg.media, meta: msg.meta, cmid, ts: o.ts, status: 'pending', reply_to: msg.reply_to, quote, ttl: msg.ttl });
    renderMessages();
    sendOut(o);
  }

  // sendOut hands a send to the SDK, which resends it with the same cmid
  // (stored once) until the ack.
  function sendOut(o) {
    const sdk = S.sdk;
    sdk.send({ ...o.send, cmid: o.cmid }).then(acked, (e) => S.sdk === sdk && failed({ cmid: o.cmid, code: e.code, message: e.message }));
  }

  function saveOutbox() {
    store.set(outboxKey(), [...S.outbox.values()].map(({ cmid, key, send, ts, quote }) => ({ cmid, key, send, ts, quote })));
  }

  // change sends a change of a message (im/recall, im/edit, im/react),
  // resent with the same cmid until acked like a send. What it does shows
  // when its event comes back, as on every other device.
  function change(key, topic, what, req) {
    if (S.ops.size >= MAX_OPS) {
      $('#chat-error').textContent = 'Too many changes waiting for the server; try again soon.';
      return;
    }
    const cmid = 'w-' + randomId(16);
    S.ops.set(cmid, { cmid, key, topic, what, req: { cmid, ...req } });
    const sdk = S.sdk;
    sdk.op(topic, { cmid, ...req }).then(acked, (e) => S.sdk === sdk && failed({ cmid, code: e.code, message: e.message }));
  }

  function ownMessage(cmid, key) {
    const msgs = S.msgs.get(key);
    return msgs && msgs.get('c:' + cmid);
  }

  function acked(ack) {
    const op = S.ops.get(ack.cmid);
    if (op) {
      S.ops.delete(ack.cmid);
      return;
    }
    const o = S.outbox.get(ack.cmid);
    if (!o) return;
    S.outbox.delete(ack.cmid);
    saveOutbox();
    const m = ownMessage(ack.cmid, o.key);
    if (m) Object.assign(m, { id: ack.id, ver: ack.ver || m.ver, seq: ack.seq || m.seq, ts: ack.ts, status: 'acked' });
    if (m && m.id) S.ids.set(m.id, [o.key, 'c:' + ack.cmid]);
    if (S.open === o.key) renderMessages();
  }

  function failed(err) {
    const op = S.ops.get(err.cmid);
    if (op) { // the SDK resends unavailable, busy and rate_limited itself: this is a refusal
      S.ops.delete(err.cmid);
      if (S.open === op.key) $('#chat-error').textContent = `Not ${op.what} (${err.code}): ${err.message}`;
      return;
    }
    const o = S.outbox.get(err.cmid);
    if (!o) return;
    S.outbox.delete(err.cmid);
    saveOutbox();
    const m = ownMessage(err.cmid, o.key);
    if (m) Object.assign(m, { status: 'failed', error: `${err.code}: ${err.message}` });
    if (S.open === o.key) {
      renderMessages();
      $('#chat-error').textContent = `Not sent (${err.code}): ${err.message}`;
    }
  }

  // ---- receipts and typing (never stored, never sequenced) ----

  // receipt: the peer has read our conversation up to a message.
  function receipt(ev) {
    const r = S.convs.get(ev.peer);
    if (!r || r.group || !newer(ev.upto, r.peerRead)) return;
    r.peerRead = ev.upto;
    if (S.open === ev.peer) draw(true);
  }

  // typing: someone types in a conversation the page shows.
  function typing(ev) {
    if (ev.from === me()) return; // my other device
    if (S.blocks.has(ev.from)) return; // in a shared group: shown no more than the blocked user's messages
    if (ev.peer !== undefined && ev.peer !== me()) return; // 1:1: the peer is the receiver
    const key = ev.group !== undefined ? '#' + ev.group : ev.from;
    if (!S.convs.has(key) && S.open !== key) return;
    let t = S.typing.get(key);
    if (ev.state === 'stop') {
      if (!t || !t.delete(ev.from)) return;
    } else {
      if (!t) S.typing.set(key, (t = new Map()));
      if (!t.has(ev.from) && t.size >= TYPING_MAX) return;
      t.set(ev.from, Date.now() + TYPING_SHOWN);
    }
    drawTyping();
  }

  // typists returns who types in the conversation key now.
  function typists(key) {
    const t = S.typing.get(key);
    if (!t) return [];
    const now = Date.now();
    for (const [u, until] of t) if (until <= now) t.delete(u);
    if (!t.size) S.typing.delete(key);
    return [...t.keys()];
  }

  // drawTyping shows "typing…" where someone types, and wakes up when the
  // first of them is to be hidden.
  function drawTyping() {
    clearTimeout(S.typingTimer);
    let next = Infinity;
    for (const key of [...S.typing.keys()]) {
      typists(key);
      for (const until of (S.typing.get(key) || new Map()).values()) next = Math.min(next, until);
    }
    const p = $('#typing');
    const who = S.open ? typists(S.open) : [];
    p.hidden = who.length === 0;
    p.textContent = who.length === 0 ? '' : S.open.startsWith('#') ? who.join(', ') + (who.length > 1 ? ' are typing…' : ' is typing…') : 'typing…';
    for (const li of document.querySelectorAll('#convs .conv')) {
      li.classList.toggle('typing', S.typing.has(li.dataset.key));
    }
    if (next !== Infinity) S.typingTimer = setTimeout(drawTyping, Math.max(50, next - Date.now()));
  }

  // typed tells the open conversation that I type (the SDK's typing: a
  // start at most once a second while I do).
  function typed() {
    const key = S.open;
    const r = key && S.convs.get(key);
    if (!r || S.editing || !S.client || (r.group && S.left.has(r.group)) || social.readOnly(r)) return;
    if (S.typingSent && S.typingSent.key !== key) stopTyping();
    if (S.sdk.typing(r.group ? { group: r.group } : { peer: r.peer })) S.typingSent = { key };
  }

  // stopTyping says I stopped (a send, the composer left, another conversation).
  function stopTyping() {
    const sent = S.typingSent;
    S.typingSent = null;
    const r = sent && S.convs.get(sent.key);
    if (!r || !S.client) return;
    S.sdk.typing(r.group ? { group: r.group, state: 'stop' } : { peer: r.peer, state: 'stop' });
  }

  // ---- conversations ----
  async function openConversation(key) {
    if (S.open !== key) {
      stopTyping();
      if (S.editing) stopEditing();
      S.replyTo = null;
      S.menu = null;
      S.convMenu = S.groupPanel = S.disbandAsked = false;
    }
    S.open = key;
    groupsUI.opened(); // a narrow page shows the conversation instead of the list
    const r0 = row(key);
    if (r0.group) social.opened(r0.group);
    history.replaceState(null, '', '#' + encodeURIComponent(key));
    $('#composer').hidden = false;
    $('#chat-error').textContent = '';
    renderConvs();
    renderMessages();
    drawTyping();
    $('#composer').text.focus();
    if (!S.loaded.has(key) && !(r0.group && S.left.has(r0.group))) { // a group left has no history to fetch
      try {
        await loadHistory(key);
        S.loaded.add(key);
      } catch (e) {
        $('#chat-error').textContent = 'history: ' + e.message;
      }
      if (S.open === key) renderMessages();
    }
    markRead(key);
  }

  async function loadHistory(key) {
    const r = row(key);
    const asked = S.ticks;
    let items;
    if (r.group) {
      const since = Math.max(0, ((r.last && r.last.seq) || 0) - 50);
      items = (await api('GET', `/v1/sync?group=${encodeURIComponent(r.group)}&since=${since}&limit=50`)).items;
    } else {
      items = (await api('GET', `/v1/conversations/${encodeURIComponent(r.peer)}/messages?limit=50`)).messages;
    }
    for (const m of items || []) {
      // The server's word, as fetched: checked like events all the same.
      const why = imqttCheckEvent(m, me());
      if (!why) put(key, m, asked);
      else if (m && m.kind === 'msg') skip(`a history item (id ${String(m.id).slice(0, 20)})`, why);
    }
  }

  const visible = () => document.visibilityState === 'visible';

  // markRead tells the server the open conversation is read through its last message.
  function markRead(key) {
    const r = S.convs.get(key);
    if (!r || !r.last || !visible() || !S.client || !S.client.connected || (r.group && S.left.has(r.group))) return;
    const upto = r.group ? r.last.seq : r.last.id;
    if (S.readSent.get(key) === upto && r.unread === 0) return;
    S.readSent.set(key, upto);
    const req = r.group ? { group: r.group, seq: upto } : { peer: r.peer, upto };
    S.client.publish('im/read', JSON.stringify(req), { qos: 1 });
    r.unread = 0; // the unread event confirms
    r.mentioned = false;
    renderConvs();
  }

  // ---- rendering (textContent only: bodies are never HTML) ----
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // preview is what the list shows of a conversation's last message, as
  // the page holds it now (a change applied since the list came).
  function preview(r) {
    const f = r.last && r.last.id && stored(r.last.id);
    const last = f ? f.m : r.last;
    if (!last) return '';
    if (social.hidden(r, last)) return 'message from a blocked user';
    const who = last.from === me() ? 'you: ' : r.group ? last.from + ': ' : '';
    return who + (last.recalled ? 'message recalled' : last.body || imqttMediaLabel(last.type, last.meta));
  }

  // totalUnread is the header's count: the unread of every conversation not
  // muted (docs/protocol.md#unread-counts-and-conversations), summed from the
  // rows. Unread events carry the server's total too, but it may already hold
  // a settings change whose event comes after it: summing what the page shows
  // cannot count a conversation twice, whatever order the two arrive in.
  function totalUnread() {
    let n = 0;
    for (const r of S.convs.values()) if (!r.muted && !(r.group && S.left.has(r.group))) n += r.unread || 0;
    return n;
  }

  function renderConvs() {
    const ul = $('#convs');
    ul.replaceChildren();
    const rows = [...S.convs.values()].sort((a, b) => {
      if (!!a.pinned !== !!b.pinned) return a.pinned ? -1 : 1; // pinned first, as the list API has them
      const x = a.last && a.last.id, y = b.last && b.last.id;
      if (x === y) return 0;
      return newer(x, y) ? -1 : 1;
    });
    for (const r of rows) {
      const li = el('li', 'conv' + (r.key === S.open ? ' open' : '') + (S.typing.has(r.key) ? ' typing' : ''));
      li.dataset.key = r.key;
      if (r.peer) li.dataset.peer = r.peer;
      if (r.group) li.dataset.group = r.group;
      const left = r.group && S.left.has(r.group);
      if (left) li.dataset.left = 'true';
      li.append(el('span', 'name', r.group ? groupsUI.label(r.group) + (left ? ' (left)' : '') : r.peer));
      const badge = el('span', 'badge', (r.mentioned ? '@ ' : '') + String(r.unread));
      badge.hidden = !(r.unread > 0);
      if (r.mentioned) badge.classList.add('mentioned');
      li.append(badge);
      li.append(el('span', 'preview', preview(r)));
      li.append(el('span', 'typing-note', 'typing…'));
      social.convMarks(li, r);
      li.addEventListener('click', () => openConversation(r.key));
      ul.append(li);
    }
    const total = $('#total');
    const n = totalUnread();
    total.textContent = String(n);
    total.hidden = !(n > 0);
    document.title = (n > 0 ? `(${n}) ` : '') + 'imqtt chat';
  }

  function button(cls, text, title, onClick) {
    const b = el('button', cls, text);
    b.type = 'button';
    if (title) b.title = title;
    b.addEventListener('click', (e) => {
      e.stopPropagation();
      onClick();
    });
    return b;
  }

  // toggleMenu opens (or closes) a message's menu or reaction picker.
  function toggleMenu(id, what) {
    S.menu = S.menu && S.menu.id === id && S.menu.what === what ? null : { id, what };
    renderMessages();
  }

  // toggleReaction adds my emoji to m, or removes it if I had it.
  function toggleReaction(key, m, emoji) {
    const r = m.reactions && m.reactions[emoji];
    const mine = !!r && r.users.includes(me());
    S.menu = null;
    change(key, 'im/react', mine ? 'removed' : 'reacted', { id: m.id, emoji, op: mine ? 'remove' : 'add' });
    renderMessages();
  }

  function replyTo(key, m) {
    if (S.editing) stopEditing();
    S.replyTo = { key, id: m.id, from: m.from, type: m.type, body: m.body, meta: m.meta };
    S.menu = null;
    renderMessages();
    $('#composer').text.focus();
  }

  function startEditing(key, m) {
    S.replyTo = null;
    S.menu = null;
    stopTyping();
    S.editing = { key, id: m.id };
    $('#composer').text.value = m.body || '';
    renderMessages();
    $('#composer').text.focus();
  }

  function stopEditing() {
    S.editing = null;
    $('#composer').text.value = '';
  }

  function recall(key, m) {
    S.menu = null;
    change(key, 'im/recall', 'recalled', { id: m.id });
    renderMessages();
  }

  // drawComposer shows what the composer replies to or edits.
  function drawComposer() {
    const bar = $('#compose-ctx');
    const what = $('#compose-what');
    if (S.editing && S.editing.key === S.open) {
      what.textContent = 'Editing your message';
    } else if (S.replyTo && S.replyTo.key === S.open) {
      const q = S.replyTo;
      what.textContent = 'Replying to ' + q.from + ': ' + (cut(q.body) || imqttMediaLabel(q.type, q.meta));
    } else {
      bar.hidden = true;
      return;
    }
    bar.hidden = false;
  }

  function quoteOf(m) {
    const q = m.quote;
    const div = el('div', 'quote');
    if (!q) {
      div.append(el('span', 'q-body', 'a message'));
      return div;
    }
    div.append(el('span', 'q-from', q.from));
    if (q.recalled) {
      div.classList.add('recalled');
      div.append(el('span', 'q-body', 'message recalled'));
    } else {
      div.append(el('span', 'q-body', q.body || imqttMediaLabel(q.type))); // a quote carries no meta
    }
    return div;
  }

  function renderMessages() {
    const ul = $('#messages');
    if (!S.open) return;
    const key = S.open;
    const r = row(key);
    const left = r.group && S.left.has(r.group);
    const readOnly = social.readOnly(r); // a disbanded group: its history, nothing more
    $('#chat-title').textContent = r.group ? groupsUI.label(r.group) + (left ? ' (left)' : readOnly ? ' (disbanded)' : '') : r.peer;
    $('#composer').hidden = readOnly;
    const msgs = [...(S.msgs.get(key) || new Map()).values()].sort((a, b) => {
      if (a.seq && b.seq) return a.seq - b.seq; // a group's own order
      if (a.id && b.id) return a.id === b.id ? 0 : newer(a.id, b.id) ? 1 : -1;
      if (a.id) return -1;
      if (b.id) return 1;
      return a.ts - b.ts;
    });
    // "seen" goes under my last message the peer has read (1:1 only).
    let seen = null;
    if (!r.group && r.peerRead) {
      const last = msgs.filter((m) => m.from === me() && m.id).pop();
      if (last && !newer(last.id, r.peerRead)) seen = last;
    }
    const atBottom = ul.scrollHeight - ul.scrollTop - ul.clientHeight < 40;
    ul.replaceChildren();
    for (const m of msgs) {
      if (groupItem(m)) {
        const li = el('li', 'sys', imqttGroupLine(m, me()));
        li.dataset.action = m.action || '';
        li.dataset.seq = String(m.seq);
        ul.append(li);
        continue;
      }
      const mine = m.from === me();
      const li = el('li', 'msg' + (mine ? ' mine' : ''));
      if (social.hidden(r, m)) { // a blocked user's group message: collapsed
        li.dataset.id = m.id || '';
        li.dataset.from = m.from;
        li.dataset.status = m.status;
        li.dataset.blocked = 'true';
        li.append(el('div', 'body', 'message from a blocked user'));
        ul.append(li);
        continue;
      }
      if (m.id) li.dataset.id = m.id;
      if (m.cmid) li.dataset.cmid = m.cmid;
      li.dataset.from = m.from;
      li.dataset.status = m.status;
      if (r.group && !mine) li.append(el('div', 'from', m.from));
      if (m.recalled) {
        li.dataset.recalled = 'true';
        li.append(el('div', 'body recalled', 'message recalled'));
      } else {
        if (m.reply_to) li.append(quoteOf(m));
        li.append(media.body(m)); // text with its links, an image's thumbnail, a file's link
      }
      const meta = el('div', 'meta', m.ts ? new Date(m.ts).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }) : '');
      if (m.ttl > 0 && !m.recalled) {
        li.dataset.ttl = String(m.ttl);
        const burn = el('span', 'ttl', '🔥 ' + m.ttl + ' s');
        burn.title = 'burns ' + m.ttl + ' s after it is read';
        meta.prepend(burn);
      }
      if (m.edited && !m.recalled) {
        const ed = el('span', 'edited', 'edited');
        ed.title = 'edited ' + new Date(m.edited).toLocaleString();
        meta.prepend(ed);
      }
      if (mine) {
        const st = el('span', 'status', m.status === 'acked' ? '✓' : m.status === 'failed' ? '✗' : '…');
        st.title = m.status === 'acked' ? 'stored by the server' : m.status === 'failed' ? m.error : 'sending';
        meta.append(st);
      }
      li.append(meta);
      if (m.reactions && !m.recalled) {
        const rs = el('div', 'reactions');
        for (const [emoji, c] of Object.entries(m.reactions)) {
          if (!(c.count > 0)) continue;
          const b = button('reaction', emoji + ' ' + c.count, c.users.join(', '), () => toggleReaction(key, m, emoji));
          b.dataset.emoji = emoji;
          b.dataset.count = String(c.count);
          if (c.users.includes(me())) b.classList.add('mine');
          rs.append(b);
        }
        li.append(rs);
      }
      if (m.id && m.status === 'acked' && !m.recalled && !left && !readOnly) {
        const acts = el('div', 'actions');
        acts.append(button('act-reply', '↩', 'Reply', () => replyTo(key, m)));
        acts.append(button('act-react', '☺+', 'React', () => toggleMenu(m.id, 'picker')));
        if (mine) acts.append(button('act-menu', '⋯', 'More', () => toggleMenu(m.id, 'menu')));
        li.append(acts);
        if (S.menu && S.menu.id === m.id) {
          li.classList.add('menu-open');
          if (S.menu.what === 'picker') {
            const pk = el('div', 'picker');
            for (const emoji of PICKER) {
              const b = button('pick', emoji, 'React ' + emoji, () => toggleReaction(key, m, emoji));
              b.dataset.emoji = emoji;
              pk.append(b);
            }
            li.append(pk);
          } else if (mine) {
            const menu = el('div', 'menu');
            menu.append(button('act-recall', 'Recall', 'Unsend for everyone', () => recall(key, m)));
            if (m.type === 'text') menu.append(button('act-edit', 'Edit', 'Edit this message', () => startEditing(key, m)));
            li.append(menu);
          }
        }
      }
      if (m === seen) {
        li.dataset.seen = 'true';
        li.append(el('div', 'seen', 'seen'));
      }
      ul.append(li);
    }
    if (atBottom) ul.scrollTop = ul.scrollHeight;
    drawComposer();
    social.drawHead();
  }

  // ---- wiring ----
  $('#login-form').addEventListener('submit', (e) => { e.preventDefault(); submitLogin(false); });
  $('#login-form').register.addEventListener('click', () => submitLogin(true));
  $('#logout').addEventListener('click', () => logout());
  $('#new-chat').addEventListener('submit', (e) => {
    e.preventDefault();
    const peer = e.target.peer.value.trim();
    if (peer) openConversation(peer);
    e.target.reset();
  });
  $('#composer').addEventListener('submit', (e) => {
    e.preventDefault();
    const body = e.target.text.value;
    if (body && S.open && S.editing && S.editing.key === S.open) {
      change(S.open, 'im/edit', 'edited', { id: S.editing.id, body });
      S.editing = null;
      renderMessages();
    } else if (body && S.open) {
      stopTyping();
      send(S.open, body);
    }
    e.target.reset();
  });
  $('#composer').text.addEventListener('input', (e) => e.target.value && typed());
  $('#composer').text.addEventListener('blur', () => stopTyping());
  $('#compose-cancel').addEventListener('click', () => {
    if (S.editing) stopEditing();
    S.replyTo = null;
    renderMessages();
  });
  document.addEventListener('visibilitychange', () => S.open && markRead(S.open));
  $('#status').addEventListener('click', () => { // "open in another tab": take the device back
    if (S.session && S.sdk && S.takenOver && $('#status').dataset.state === 'taken-over') connect();
  });

  const social = imqttSocial({
    S, api, el, button, row, me, renderConvs, renderMessages, openConversation,
    error: (text) => { $('#chat-error').textContent = text; },
  });

  const media = imqttMedia({ S, el, send, error: (text) => { $('#chat-error').textContent = text; } });
  const groupsUI = imqttGroupsUI({ S, api, renderConvs, openConversation });

  if (S.session && S.session.expires_at > Date.now()) start();
  else showLogin();
})();
