// Client: one device's long connection (MQTT over WebSocket, or TCP in
// Node) that delivers the user's events once each and in order, and sends
// with acknowledgement and retry. The rules are docs/protocol.md's client
// rules, as the Go SDK (client/) keeps them:
//
//   - every (re)connect subscribes to the inbox and device topics, syncs the
//     inbox from the saved cursor and asks for the group heads; live events
//     wait while a sync is under way, then follow it (sequencer.js);
//   - a gap in the inbox's ver or a group's seq syncs that stream; a repeat
//     is dropped; a live event no sync confirms is dropped, never delivered;
//   - an event, sync item, batch or heads answer that is malformed is
//     skipped and counted (skipped): an item's batch still moves the cursor
//     past it, a batch or heads answer is asked for again after syncTimeout;
//   - send (and the changes: recall, edit, react, delete) publishes with a
//     cmid and publishes it again every resendInterval and on every connect
//     until the ack comes: the server stores it once and acks every copy
//     alike;
//   - a dropped connection reconnects after a jittered exponential backoff;
//     a refused token (revoked, expired) stops the client: status 'closed'
//     with the ImqttError, no retry;
//   - the cursor is saved whenever it moves (a pluggable store: memory,
//     localStorage, or your own).
import { Api, ImqttError } from './http.js';
import { Sequencer, Groups, Held } from './sequencer.js';
import { checkEvent, checkBatch, checkHeads } from './check.js';
import { MemoryCursor, normalCursor } from './cursor.js';

const RETRYABLE = new Set(['unavailable', 'busy', 'rate_limited']);
const CHANGES = new Set(['recall', 'edit', 'reaction', 'delete']);
const TYPES = new Set(['text', 'image', 'audio', 'video', 'file', 'custom']);
// CONNACK codes the same credentials get again: MQTT 5 bad client ID, bad
// user name or password, not authorized, banned (the client speaks only 5).
const REFUSED = new Set([0x85, 0x86, 0x87, 0x8a]);
const STABLE_AFTER = 10000; // a connection up this long resets the backoff
const GZIP_FROM = 100; // a group sync asks for gzip when at least this far behind
const MAX_INFLATED = 64 << 20; // a compressed payload inflating past this is refused
const MAX_DELAY = 2 ** 31 - 1; // setTimeout's most: a longer delay fires at once

// positive returns v if it is a usable delay or count, else d (as the Go
// SDK's withDefaults: 0, null, a negative or NaN would spin a timer).
const positive = (v, d) => (Number.isFinite(v) && v > 0 && v <= MAX_DELAY ? v : d);

// isGroupItem: a stored item of a group's log (a message, a change of one,
// an administration record), ordered by the group's seq.
const isGroupItem = (ev) =>
  typeof ev.group === 'string' && !ev.ver &&
  (ev.kind === 'msg' || ev.kind === undefined || CHANGES.has(ev.kind) || (ev.kind === 'group' && ev.seq !== undefined));

function randomID(n) {
  const abc = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  return Array.from(globalThis.crypto.getRandomValues(new Uint8Array(n)), (b) => abc[b % abc.length]).join('');
}

// decode parses a downlink payload: JSON, or gzip-compressed JSON (a sync
// batch asked for with compress) where DecompressionStream is present.
export async function decode(payload) {
  const bytes = payload instanceof Uint8Array ? payload : new Uint8Array(payload);
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    if (typeof DecompressionStream === 'undefined') throw new Error('gzip payload, and no DecompressionStream here');
    const reader = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip')).getReader();
    const parts = [];
    let n = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      n += value.length;
      if (n > MAX_INFLATED) {
        reader.cancel().catch(() => {});
        throw new Error('gzip payload inflates past 64 MiB');
      }
      parts.push(value);
    }
    return JSON.parse(new TextDecoder().decode(await new Blob(parts).arrayBuffer()));
  }
  return JSON.parse(new TextDecoder().decode(bytes));
}

// backoff is the delay before reconnect attempt n (from 0): min doubled per
// attempt up to max, then a random point in its upper half ("equal
// jitter"), so a fleet of clients does not reconnect in step.
export function backoff(min, max, n, r = Math.random()) {
  let d = min;
  for (let i = 0; i < n && d < max; i++) d *= 2;
  d = Math.min(d, max);
  return d / 2 + r * (d / 2);
}

export class Client {
  // login opens a session (POST /v1/sessions) and returns a Client for it;
  // opts are the Client's options (cursor, mqtt, ...).
  static async login({ server, user, password, device = 'default', fetch, ...opts }) {
    const s = await new Api({ server, fetch }).login(user, password, device);
    return new Client({ server, fetch, ...opts, user: s.user, device: s.device || device, token: s.token });
  }

  // register creates an account (POST /v1/users).
  static register({ server, user, password, fetch }) {
    return new Api({ server, fetch }).register(user, password);
  }

  constructor({
    server, user, device = 'default', token, mqtt, mqttUrl, cursor, fetch,
    syncLimit, compress = true, resendInterval, syncTimeout, resyncInterval, minBackoff, maxBackoff, keepalive, log,
  } = {}) {
    if (typeof user !== 'string' || !/^[A-Za-z0-9_.-]{1,64}$/.test(user) || user.startsWith('.')) throw new ImqttError('bad_request', 'imqtt: a user ID is required');
    if (typeof device !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(device)) throw new ImqttError('bad_request', 'imqtt: bad device ID');
    if (typeof token !== 'string' || token === '') throw new ImqttError('bad_request', 'imqtt: a token is required (Client.login gets one)');
    this.api = new Api({ server, token, fetch });
    this.user = user.toLowerCase();
    this.device = device;
    minBackoff = positive(minBackoff, 250);
    this.opts = {
      syncLimit: positive(syncLimit, 5000), compress, resendInterval: positive(resendInterval, 3000),
      syncTimeout: positive(syncTimeout, 10000), resyncInterval: resyncInterval <= 0 ? 0 : positive(resyncInterval, 300000),
      minBackoff, maxBackoff: Math.max(positive(maxBackoff, 30000), minBackoff), keepalive: positive(keepalive, 30),
    };
    this.mqttImpl = mqtt;
    this.mqttUrl = mqttUrl || this.api.server.replace(/^http/, 'ws') + '/mqtt';
    this.store = cursor || new MemoryCursor();
    this.log = typeof log === 'function' ? log : () => {};
    this.handlers = new Map(); // kind -> Set of functions
    this.outbox = new Map(); // cmid -> {topic, req, resolve, reject, timer}
    this.held = new Held();
    this.seq = null; // the inbox's sequencer, once the cursor is loaded
    this.groups = null;
    this.mc = null; // the current MQTT.js client
    this.gen = 0; // numbers connections
    this.up = false; // connected and subscribed
    this.want = false; // connect() was called and not disconnect()
    this.closed = false;
    this.failure = null; // the refusal that stopped the client
    this.attempt = 0; // failed connects in a row
    this.since = 0; // when the current connection came up
    this.state = 'offline';
    this.timers = { reconnect: 0, sync: 0, recheck: 0, groups: 0, resync: 0 };
    this.chain = Promise.resolve(); // payloads are handled one after another, in order
    this.saved = ''; // the cursor last saved, as JSON
    this.waiters = { up: [], synced: [] };
    this.isSynced = false;
    this.skipped = 0; // events, items, batches the client could not use
    this.unconfirmed = 0; // live events dropped because no sync confirmed them
    this.connects = 0; // MQTT connections attempted
    this.groupRequests = 0; // group syncs and heads requests sent
    this.typed = new Map(); // conversation -> when a typing start was last sent
  }

  // on adds a handler: 'message' (each msg event once, in order), any event
  // kind ('recall', 'edit', 'reaction', 'delete', 'receipt', 'typing',
  // 'unread', 'group', 'settings', 'contact', 'block', 'presence',
  // 'notice', ...), 'event' (every event), 'reset' (a sync reset: drop what
  // you keep of that stream), 'status' ({state, error}). Returns a function
  // that removes it.
  on(kind, fn) {
    if (kind === 'message') kind = 'msg';
    if (!this.handlers.has(kind)) this.handlers.set(kind, new Set());
    this.handlers.get(kind).add(fn);
    return () => this.handlers.get(kind).delete(fn);
  }

  emit(kind, ev, info) {
    for (const fn of this.handlers.get(kind) || []) {
      try {
        fn(ev, info);
      } catch (e) {
        this.log('error', 'a handler threw', { kind, err: e && e.message });
      }
    }
  }

  // cursor returns the place the client has delivered through.
  cursor() {
    if (!this.seq) return null;
    return { ...this.extra, ver: this.seq.cursor, epoch: this.seq.epoch, groups: this.groups.cursors() };
  }

  setStatus(state, error) {
    if (this.state === state && !error) return;
    this.state = state;
    this.emit('status', error ? { state, error } : { state });
  }

  get topics() {
    return { inbox: `im/u/${this.user}/inbox`, device: `im/u/${this.user}/d/${this.device}` };
  }

  // connect connects (and keeps reconnecting) until disconnect or close. It
  // resolves once connected and subscribed; the sync then runs (synced()
  // says when it is done). A refusal of the credentials rejects it.
  async connect() {
    if (this.closed) throw new ImqttError('closed', 'imqtt: client closed');
    if (this.failure) throw this.failure;
    if (!this.seq) {
      const c = normalCursor(await this.store.load());
      const { ver, epoch, groups, ...extra } = c;
      this.extra = extra;
      this.seq = new Sequencer(ver, epoch, { held: this.held });
      this.groups = new Groups(groups, { held: this.held, limit: Math.min(this.opts.syncLimit, 5000), timeout: this.opts.syncTimeout });
      this.saved = JSON.stringify(this.cursor()); // what the store has
    }
    if (!this.mqttImpl) this.mqttImpl = globalThis.mqtt || (await import('mqtt')).default;
    const up = new Promise((resolve, reject) => this.waiters.up.push({ resolve, reject }));
    if (!this.want) {
      this.want = true;
      this.dial();
    } else if (this.up) {
      this.settle('up');
    }
    return up;
  }

  // synced resolves when the inbox and every group have caught up since the
  // latest connect (at once if they have).
  synced() {
    if (this.isSynced) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.synced.push({ resolve, reject }));
  }

  settle(which, err) {
    const ws = this.waiters[which];
    this.waiters[which] = [];
    for (const w of ws) err ? w.reject(err) : w.resolve();
  }

  dial() {
    clearTimeout(this.timers.reconnect);
    this.timers.reconnect = 0;
    const gen = ++this.gen;
    this.connects++;
    this.setStatus('connecting');
    const mc = this.mqttImpl.connect(this.mqttUrl, {
      clientId: `${this.user}/${this.device}`,
      username: this.user,
      password: this.api.token,
      protocolVersion: 5,
      clean: true,
      keepalive: this.opts.keepalive,
      connectTimeout: 10000,
      reconnectPeriod: 0, // reconnects are ours, with backoff and jitter
      resubscribe: false, // we subscribe on every connect, then sync
    });
    this.mc = mc;
    mc.on('connect', () => {
      if (gen !== this.gen) return;
      mc.subscribe({ [this.topics.inbox]: { qos: 1 }, [this.topics.device]: { qos: 1 } }, (err, granted) => {
        if (gen !== this.gen) return;
        if (err || !granted) { // the connection went meanwhile: its close reconnects
          mc.end(true);
          return;
        }
        if (granted.some((g) => g.qos >= 0x80)) { // the ACL said no: it will again
          this.fail(new ImqttError('forbidden', 'imqtt: subscription refused'));
          return;
        }
        this.since = Date.now();
        this.chain = this.chain.then(() => this.onUp(gen));
      });
    });
    mc.on('message', (topic, payload) => {
      if (gen !== this.gen) return;
      this.chain = this.chain.then(() => this.handle(gen, topic, payload)).catch((e) => this.skip('a payload on ' + topic, e && e.message));
    });
    mc.on('disconnect', (packet) => {
      // The server's DISCONNECT (MQTT 5): 0x8E, the same device connected
      // elsewhere (another tab, another process). The client reconnects
      // with backoff as after any drop; status says why, so that an
      // application may disconnect() instead and let the other one have it.
      if (gen === this.gen && packet && packet.reasonCode === 0x8e) this.emit('status', { state: 'offline', reason: 'taken_over' });
    });
    mc.on('error', (e) => {
      if (gen !== this.gen) return;
      if (REFUSED.has(e && e.code)) {
        this.fail(new ImqttError('unauthorized', `imqtt: the server refused ${this.user}/${this.device} (code ${e.code}): log in again`));
      } else {
        this.log('warn', 'connection error', { err: e && e.message });
      }
    });
    mc.on('close', () => {
      if (gen !== this.gen) return;
      this.onDown();
      if (!this.want || this.failure || this.closed) return;
      if (this.since && Date.now() - this.since >= STABLE_AFTER) this.attempt = 0;
      this.since = 0;
      const d = backoff(this.opts.minBackoff, this.opts.maxBackoff, this.attempt++);
      this.timers.reconnect = setTimeout(() => {
        this.timers.reconnect = 0;
        if (this.want && gen === this.gen) {
          mc.end(true);
          this.dial();
        }
      }, d);
    });
  }

  onDown() {
    const was = this.up;
    this.up = false;
    this.isSynced = false;
    for (const k of ['sync', 'recheck', 'groups', 'resync']) {
      clearTimeout(this.timers[k]);
      this.timers[k] = 0;
    }
    for (const o of this.outbox.values()) {
      clearTimeout(o.timer);
      o.timer = 0;
    }
    if (was || this.state !== 'closed') this.setStatus(this.closed ? 'closed' : 'offline');
  }

  onUp(gen) {
    if (gen !== this.gen) return;
    this.up = true;
    this.isSynced = false;
    this.seq.connected();
    this.groups.connected();
    this.setStatus('syncing');
    this.settle('up');
    this.requestSync();
    this.pumpGroups();
    for (const o of this.outbox.values()) this.publishOp(o);
    if (this.opts.resyncInterval > 0) this.timers.resync = setInterval(() => this.resync(), this.opts.resyncInterval);
  }

  // fail stops the client for good: the server refused its credentials.
  fail(err) {
    if (this.failure) return;
    this.failure = err;
    this.want = false;
    clearTimeout(this.timers.reconnect);
    if (this.mc) this.mc.end(true);
    this.onDown();
    this.setStatus('closed', err);
    this.settle('up', err);
    this.settle('synced', err);
    this.rejectAll(err);
  }

  rejectAll(err) {
    for (const cmid of [...this.outbox.keys()]) this.unqueue(cmid).reject(err);
  }

  publish(topic, body, qos = 1) {
    if (!this.up || !this.mc) return false;
    this.mc.publish(topic, JSON.stringify(body), { qos });
    return true;
  }

  // ---- sync ----

  requestSync() {
    if (!this.up) return;
    const limit = this.opts.syncLimit;
    const req = { since: this.seq.cursor, limit, epoch: this.seq.epoch || undefined };
    if (this.opts.compress && typeof DecompressionStream !== 'undefined') req.compress = 'gzip';
    this.seq.begin(limit);
    this.publish('im/sync', req);
    this.armSyncTimer();
  }

  armSyncTimer() {
    clearTimeout(this.timers.sync);
    this.timers.sync = setTimeout(() => {
      if (this.up && this.seq.syncing) {
        this.log('warn', 'sync request unanswered; asking again', { ver: this.seq.cursor });
        this.requestSync();
      }
    }, this.opts.syncTimeout);
  }

  // resync is the periodic one, and the one after live events were dropped
  // unconfirmed: the inbox from its cursor and the heads.
  resync() {
    if (!this.up) return;
    if (!this.seq.syncing) this.requestSync();
    this.groups.askHeads();
    this.pumpGroups();
  }

  recheck() {
    clearTimeout(this.timers.recheck);
    this.timers.recheck = setTimeout(() => this.resync(), this.opts.syncTimeout);
  }

  pumpGroups() {
    clearTimeout(this.timers.groups);
    this.timers.groups = 0;
    if (!this.up) return;
    const now = Date.now();
    for (const req of this.groups.take(now)) {
      if (req.group && this.opts.compress && this.groups.behind(req.group) >= GZIP_FROM && typeof DecompressionStream !== 'undefined') req.compress = 'gzip';
      if (this.publish('im/sync', req)) this.groupRequests++;
    }
    const at = this.groups.deadline();
    if (at !== Infinity) this.timers.groups = setTimeout(() => this.pumpGroups(), Math.max(0, at - now));
  }

  checkSynced() {
    if (this.up && !this.seq.syncing && this.groups.idle() && !this.isSynced) {
      this.isSynced = true;
      this.setStatus('online');
      this.settle('synced');
    }
  }

  skip(what, why) {
    this.skipped++;
    this.log('warn', 'skipped ' + what, { why });
  }

  async handle(gen, topic, payload) {
    let ev;
    const size = payload.byteLength; // what a held event costs the budget
    try {
      ev = await decode(payload);
    } catch (e) {
      return this.skip('an unparsable payload on ' + topic, e && e.message);
    }
    if (ev === null || typeof ev !== 'object' || Array.isArray(ev)) return this.skip('a payload on ' + topic, 'not an object');
    if (topic === this.topics.device) {
      if (ev.kind === 'ack' && typeof ev.cmid === 'string') return this.acked(ev);
      if (ev.kind === 'error' && typeof ev.cmid === 'string' && ev.cmid) return this.refused(ev);
      if (gen !== this.gen || !this.up) return; // an earlier connection's: this one's sync covers it
      if (ev.kind === 'sync' && ev.group !== undefined) return this.groupBatch(ev);
      if (ev.kind === 'sync') return this.syncBatch(ev);
      if (ev.kind === 'heads') return this.headsReply(ev);
      if (ev.kind === 'error') return this.deviceError(ev);
      return;
    }
    if (gen !== this.gen || !this.up) return;
    const bad = checkEvent(ev, this.user);
    if (bad) return this.skip(`an inbox event (ver ${Number(ev.ver) || 0})`, bad); // a later gap's sync covers its ver
    if (isGroupItem(ev)) {
      this.deliver(this.groups.live(ev, size).out, false);
      return this.pumpGroups();
    }
    if (ev.kind === 'group') {
      // A membership event is a claim: the heads, the server's word, start
      // or drop the cursor. A disband is told once.
      if (ev.action === 'disbanded' && !this.groups.liveDisbanded(ev.group)) return;
      this.groups.askHeads();
      this.pumpGroups();
    }
    const { out, again } = this.seq.live(ev, size);
    this.deliver(out, false);
    if (again) this.requestSync();
  }

  syncBatch(b) {
    const bad = checkBatch(b);
    if (bad) return this.skip('a sync batch', bad); // the sync timer asks again
    // An item the client cannot use is left out; the batch's upto still
    // moves the cursor past it: one bad message never stalls the rest.
    const all = b.items || [];
    const items = all.filter((it) => {
      const why = checkEvent(it, this.user) || (it.group !== undefined && !it.ver ? 'a group item in the inbox' : '');
      if (why) this.skip(`a sync item (ver ${(it && Number(it.ver)) || 0})`, why);
      return !why;
    });
    if (this.seq.resets(b)) this.emit('reset', { since: b.since, epoch: b.epoch });
    const { out, again } = this.seq.batch({ ...b, items }, all.length);
    const dropped = this.seq.takeDropped();
    if (dropped) {
      this.unconfirmed += dropped;
      this.recheck();
    }
    this.deliver(out, true);
    if (again) this.requestSync();
    else if (this.seq.syncing) this.armSyncTimer();
    else clearTimeout(this.timers.sync);
    this.checkSynced();
  }

  groupBatch(b) {
    const bad = checkBatch(b);
    if (bad) return this.skip('a group sync batch', bad); // asked again after the sync timeout
    const all = b.items || [];
    const items = all.filter((it) => {
      const why = checkEvent(it, this.user) || (it.group !== b.group ? 'not of this group' : '');
      if (why) this.skip(`a group sync item (seq ${(it && Number(it.seq)) || 0})`, why);
      return !why;
    });
    if (this.groups.resets(b)) this.emit('reset', { group: b.group, since: b.since, epoch: b.epoch });
    const { out } = this.groups.batch({ ...b, items }, all.length, Date.now());
    const dropped = this.groups.takeDropped();
    if (dropped) {
      this.unconfirmed += dropped;
      this.recheck();
    }
    this.deliver(out, true);
    if (b.gone === true) this.disbanded(b.group);
    this.pumpGroups();
    this.checkSynced();
  }

  headsReply(h) {
    const bad = checkHeads(h);
    if (bad) return this.skip('a heads answer', bad); // asked again after the sync timeout
    const { out, left } = this.groups.heads(h);
    this.emit('heads', h);
    this.deliver(out, false);
    for (const x of h.groups) if (x.gone === true) this.disbanded(x.group);
    for (const g of left) this.deliver([{ kind: 'group', group: g, action: 'left' }], false);
    this.save();
    this.pumpGroups();
    this.checkSynced();
  }

  // disbanded tells the application once that group g is gone.
  disbanded(g) {
    if (this.groups.disbanded(g)) this.deliver([{ kind: 'group', group: g, action: 'disbanded' }], false);
  }

  deviceError(ev) {
    this.log('warn', 'server error', { code: ev.code, group: ev.group });
    if (typeof ev.group === 'string' && ev.group) return this.groupError(ev.group, ev.code);
    // No group named: the inbox sync's, or the heads'.
    if (this.seq.syncing && RETRYABLE.has(ev.code)) {
      clearTimeout(this.timers.sync);
      this.timers.sync = setTimeout(() => this.up && this.seq.syncing && this.requestSync(), 1000 + Math.random() * 1000);
    }
    this.groupError('', ev.code);
  }

  groupError(group, code) {
    for (const g of this.groups.error(group, code, Date.now()).gone) this.disbanded(g);
    this.save();
    this.pumpGroups();
    this.checkSynced();
  }

  // deliver hands events to the handlers in the order the sequencers gave
  // them, then saves the cursor.
  deliver(evs, synced) {
    if (!evs.length) return;
    for (const ev of evs) {
      const kind = ev.kind === undefined ? 'msg' : ev.kind;
      this.emit(kind, ev, { synced });
      this.emit('event', ev, { synced });
    }
    this.save();
  }

  // save saves the cursor if it changed since the last save.
  save() {
    const c = this.cursor();
    if (!c) return;
    const s = JSON.stringify(c);
    if (s === this.saved) return;
    this.saved = s;
    this.chain = this.chain.then(() => this.store.save(c)).catch((e) => {
      this.saved = ''; // the next save tries again
      this.log('error', 'saving the cursor failed', { err: e && e.message });
    });
  }

  // ---- sends and changes ----

  // unqueue takes the send of cmid out of the outbox: it is sent no more.
  unqueue(cmid) {
    const o = this.outbox.get(cmid);
    if (!o) return null;
    clearTimeout(o.timer);
    this.outbox.delete(cmid);
    o.unlisten();
    return o;
  }

  acked(ack) {
    const o = this.unqueue(ack.cmid);
    if (o) o.resolve(ack);
  }

  refused(err) {
    if (RETRYABLE.has(err.code)) return; // resent by its timer, same cmid
    const o = this.unqueue(err.cmid);
    if (o) o.reject(new ImqttError(err.code, err.message));
  }

  publishOp(o) {
    clearTimeout(o.timer);
    this.publish(o.topic, o.req);
    o.timer = setTimeout(() => this.publishOp(o), this.opts.resendInterval);
  }

  // op publishes req on topic until its ack; resolves with the ack. An
  // abort of signal stops the resends and rejects ('aborted'); a copy sent
  // before may still be stored.
  op(topic, req, { signal } = {}) {
    if (this.closed) return Promise.reject(new ImqttError('closed', 'imqtt: client closed'));
    if (this.failure) return Promise.reject(this.failure);
    if (typeof req.cmid !== 'string' || req.cmid === '' || new TextEncoder().encode(req.cmid).length > 128) {
      return Promise.reject(new ImqttError('missing_cmid', 'imqtt: cmid must be 1 to 128 bytes'));
    }
    const aborted = () => new ImqttError('aborted', 'imqtt: aborted; it may still have reached the server');
    if (signal && signal.aborted) return Promise.reject(aborted());
    const had = this.outbox.get(req.cmid);
    if (had) return had.promise; // the same cmid: the same ack
    const o = { topic, req, timer: 0, unlisten: () => {} };
    o.promise = new Promise((resolve, reject) => Object.assign(o, { resolve, reject }));
    if (signal) {
      const abort = () => this.unqueue(req.cmid).reject(aborted()); // listening only while queued
      signal.addEventListener('abort', abort);
      o.unlisten = () => signal.removeEventListener('abort', abort);
    }
    this.outbox.set(req.cmid, o);
    this.publishOp(o);
    return o.promise;
  }

  // send sends a message ({to | group, type, body, media, meta, reply_to,
  // mentions, ttl, cmid}) and resolves with its ack once stored. cmid
  // defaults to a random one; resent until acked, it is stored once.
  // opts.signal (an AbortSignal) stops the resends: see op.
  send(m, opts) {
    if (m === null || typeof m !== 'object') return Promise.reject(new ImqttError('bad_request', 'imqtt: send takes an object'));
    const { to, group, type = 'text', cmid = 'c-' + randomID(16), ...rest } = m;
    if ((to === undefined) === (group === undefined)) return Promise.reject(new ImqttError(to === undefined ? 'missing_to' : 'bad_request', 'imqtt: exactly one of to and group'));
    if (!TYPES.has(type)) return Promise.reject(new ImqttError('bad_type', 'imqtt: type must be one of ' + [...TYPES].join(', ')));
    return this.op('im/send', { cmid, to, group, type, ...rest }, opts);
  }

  recall(id, { cmid = 'r-' + randomID(16), signal } = {}) { return this.op('im/recall', { cmid, id }, { signal }); }
  edit(id, body, { meta, cmid = 'e-' + randomID(16), signal } = {}) { return this.op('im/edit', { cmid, id, body, meta }, { signal }); }
  react(id, emoji, { cmid = 'x-' + randomID(16), signal } = {}) { return this.op('im/react', { cmid, id, emoji, op: 'add' }, { signal }); }
  unreact(id, emoji, { cmid = 'x-' + randomID(16), signal } = {}) { return this.op('im/react', { cmid, id, emoji, op: 'remove' }, { signal }); }
  deleteMessages(ids, { cmid = 'd-' + randomID(16), signal } = {}) { return this.op('im/delete', { cmid, ids }, { signal }); }
  clearConversation(peer, { cmid = 'd-' + randomID(16), signal } = {}) { return this.op('im/delete', { cmid, peer }, { signal }); }

  // typing tells the peer or group's members online ({peer | group,
  // state: 'start' | 'stop'}); at most once a second per conversation
  // reaches them. Sent once, at QoS 0, only while connected.
  typing(t) {
    const state = t.state || 'start';
    const key = t.group !== undefined ? '#' + t.group : t.peer;
    const now = Date.now();
    if (state === 'start') {
      if (now - (this.typed.get(key) || 0) < 1000) return false; // the server drops more than one a second
      if (this.typed.size >= 100) this.typed.clear();
      this.typed.set(key, now);
    } else {
      this.typed.delete(key);
    }
    return this.publish('im/typing', { peer: t.peer, group: t.group, state }, 0);
  }

  // read marks a conversation read ({peer[, upto]} or {group[, seq]}) and
  // resolves with the unread event.
  read(r) { return this.api.read(r); }

  // ---- the HTTP API, as this user ----
  conversations() { return this.api.conversations(); }
  history(peer, o) { return this.api.history(peer, o); }
  groupHistory(group, o) { return this.api.groupHistory(group, o); }
  createGroup(g) { return this.api.createGroup(g); }
  listGroups() { return this.api.groups(); }
  group(id, o) { return this.api.group(id, o); }
  addMembers(id, users, role) { return this.api.addMembers(id, users, role); }
  removeMember(id, user) { return this.api.removeMember(id, user); }
  leaveGroup(id) { return this.api.removeMember(id, this.user); }
  upload(data, o) { return this.api.upload(data, o); }
  download(id, o) { return this.api.download(id, o); }

  // ---- ending ----

  // disconnect ends the connection; connect() again resumes from the
  // cursor, and sends still waiting for their ack are sent again then.
  async disconnect() {
    this.want = false;
    clearTimeout(this.timers.reconnect);
    this.timers.reconnect = 0;
    const mc = this.mc;
    this.mc = null;
    this.gen++; // what the old connection still delivers is left to the next sync
    this.onDown();
    this.settle('up', new ImqttError('closed', 'imqtt: disconnected'));
    this.settle('synced', new ImqttError('closed', 'imqtt: disconnected'));
    if (mc) {
      await new Promise((resolve) => {
        const t = setTimeout(resolve, 2000); // a connection half-open does not hold us
        mc.end(false, {}, () => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    await this.chain;
  }

  // close disconnects for good: waiting sends are rejected ('closed'), the
  // cursor is saved.
  async close() {
    if (this.closed) return;
    this.closed = true;
    await this.disconnect();
    this.rejectAll(new ImqttError('closed', 'imqtt: client closed'));
    if (this.seq) {
      this.seq.close();
      this.groups.close();
    }
    this.setStatus('closed');
    await this.chain;
  }

  // logout revokes the token (DELETE /v1/sessions/current) and closes.
  async logout() {
    try {
      await this.api.logout();
    } finally {
      await this.close();
    }
  }
}
