// The Client against a fake MQTT (no server) and fake timers: what needs
// a clock or a payload the real server never sends — resends on the timer,
// backoff, the inflate limit, the held budget, a send given up, options
// clamped, a disband told once, and the cursor saved only when it moves.
import { test, mock } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { gzipSync } from 'node:zlib';
import { Client, MemoryCursor, ImqttError, backoff, decode } from '../src/index.js';

// FakeMqtt is one connection: it records what the client publishes; the
// test plays the server with emit('message', topic, payload).
class FakeMqtt extends EventEmitter {
  constructor() {
    super();
    this.sent = [];
  }

  subscribe(topics, cb) {
    queueMicrotask(() => cb(null, Object.keys(topics).map((topic) => ({ topic, qos: 1 }))));
  }

  publish(topic, payload) {
    this.sent.push({ topic, body: JSON.parse(payload) });
  }

  end(force, opts, cb) {
    if (typeof cb === 'function') cb();
    this.close();
  }

  // close drops the connection (once, as MQTT.js's close).
  close() {
    if (this.closed) return;
    this.closed = true;
    this.emit('close');
  }

  // take returns what was published on topic since the last take.
  take(topic) {
    const got = this.sent.filter((s) => s.topic === topic).map((s) => s.body);
    this.sent = this.sent.filter((s) => s.topic !== topic);
    return got;
  }
}

// CountingCursor is a MemoryCursor that counts its saves.
class CountingCursor extends MemoryCursor {
  constructor(initial) {
    super(initial);
    this.saves = 0;
  }

  save(c) {
    this.saves++;
    super.save(c);
  }
}

const USER = 'alice';
const INBOX = `im/u/${USER}/inbox`;
const DEVICE = `im/u/${USER}/d/d1`;
const tick = () => new Promise((r) => setImmediate(r));

// flush waits until the client has handled every payload handed to it.
async function flush(c) {
  for (let p = null; p !== c.chain;) {
    p = c.chain;
    await p;
    await tick();
  }
}

// open returns a client connected to a fake MQTT, its inbox synced to ver 0
// and the heads answered with groups (unless raw).
async function open({ groups = [], raw = false, saved, ...opts } = {}) {
  const conns = [];
  const store = new CountingCursor(saved);
  const c = new Client({
    server: 'http://127.0.0.1:1', user: USER, device: 'd1', token: 't', cursor: store, compress: false, resyncInterval: 0,
    mqtt: { connect: () => conns[conns.push(new FakeMqtt()) - 1] }, ...opts,
  });
  const up = c.connect();
  while (!conns.length) await tick();
  const mc = conns[0];
  mc.emit('connect');
  await up;
  const f = { c, mc, store, conns, got: [] };
  f.push = async (topic, ev) => {
    mc.emit('message', topic, Buffer.from(typeof ev === 'string' ? ev : JSON.stringify(ev)));
    await flush(c);
  };
  c.on('event', (ev) => f.got.push(ev));
  if (!raw) {
    assert.deepEqual(mc.take('im/sync'), [{ since: 0, limit: 5000 }, { heads: true }]);
    await f.push(DEVICE, { kind: 'sync', since: 0, upto: 0, more: false, epoch: 'e1', items: [] });
    await f.push(DEVICE, { kind: 'heads', groups });
  }
  return f;
}

const msg = (ver, body = 'hi') => ({ kind: 'msg', id: String(1000 + ver), from: 'bob', to: USER, ver, type: 'text', body, ts: 1 });

test('a send is resent on the timer until acked, not only on a reconnect', async () => {
  mock.timers.enable({ apis: ['setTimeout', 'setInterval'] });
  try {
    const { c, mc, push } = await open({ resendInterval: 1000 });
    const p = c.send({ to: 'bob', body: 'x', cmid: 'c1' });
    assert.equal(mc.take('im/send').length, 1);
    mock.timers.tick(999);
    assert.equal(mc.take('im/send').length, 0);
    mock.timers.tick(1);
    assert.deepEqual(mc.take('im/send').map((r) => r.cmid), ['c1']);
    mock.timers.tick(1000);
    assert.equal(mc.take('im/send').length, 1);
    await push(DEVICE, { kind: 'ack', cmid: 'c1', id: '1', ver: 1, ts: 1 });
    assert.equal((await p).id, '1');
    mock.timers.tick(5000);
    assert.equal(mc.take('im/send').length, 0);
    await c.close();
  } finally {
    mock.timers.reset();
  }
});

test('an aborted send is resent no more and rejects with aborted', async () => {
  mock.timers.enable({ apis: ['setTimeout', 'setInterval'] });
  try {
    const { c, mc } = await open({ resendInterval: 1000 });
    const ac = new AbortController();
    const p = c.send({ to: 'bob', body: 'x', cmid: 'c1' }, { signal: ac.signal });
    const q = c.recall('123', { cmid: 'r1', signal: ac.signal });
    assert.equal(mc.take('im/send').length, 1);
    ac.abort();
    await assert.rejects(p, (e) => e instanceof ImqttError && e.code === 'aborted');
    await assert.rejects(q, (e) => e instanceof ImqttError && e.code === 'aborted');
    assert.equal(c.outbox.size, 0);
    mock.timers.tick(10000);
    assert.equal(mc.take('im/send').length, 0);
    // Aborted already: never sent.
    await assert.rejects(c.send({ to: 'bob', body: 'y' }, { signal: ac.signal }), (e) => e.code === 'aborted');
    assert.equal(mc.take('im/send').length, 0);
    // A signal that never fires changes nothing; its listener goes with the ack.
    const quiet = new AbortController();
    const r = c.edit('123', 'new', { cmid: 'e1', signal: quiet.signal });
    mc.emit('message', DEVICE, Buffer.from(JSON.stringify({ kind: 'ack', cmid: 'e1', id: '123', ver: 2, ts: 1 })));
    assert.equal((await r).cmid, 'e1');
    quiet.abort();
    await c.close();
  } finally {
    mock.timers.reset();
  }
});

test('backoff doubles from min per attempt up to max, each a random point in its upper half', () => {
  assert.deepEqual([0, 1, 2, 3].map((n) => backoff(250, 30000, n, 1)), [250, 500, 1000, 2000]);
  assert.deepEqual([0, 1, 2, 3].map((n) => backoff(250, 30000, n, 0)), [125, 250, 500, 1000]);
  assert.equal(backoff(250, 30000, 7, 1), 30000); // 32000 capped
  assert.equal(backoff(250, 30000, 1000, 0), 15000);
  assert.equal(backoff(250, 30000, 3, 0.5), 1500);
});

test('the reconnect delay grows per failed connect', async () => {
  mock.timers.enable({ apis: ['setTimeout', 'setInterval'] });
  const random = mock.method(Math, 'random', () => 1);
  try {
    const { c, conns } = await open({ raw: true, minBackoff: 100, maxBackoff: 1000 });
    const waits = [];
    for (let i = 0; i < 5; i++) {
      const n = conns.length;
      conns[n - 1].close();
      let waited = 0;
      while (conns.length === n) {
        mock.timers.tick(10);
        waited += 10;
      }
      waits.push(waited);
    }
    assert.deepEqual(waits, [100, 200, 400, 800, 1000]);
    await c.close();
  } finally {
    random.mock.restore();
    mock.timers.reset();
  }
});

test('decode refuses a gzip payload inflating past 64 MiB; a small one decodes', async () => {
  assert.deepEqual(await decode(gzipSync(Buffer.from('{"a":1}'))), { a: 1 });
  const bomb = gzipSync(Buffer.alloc((64 << 20) + 1, 0x20)); // 64 MiB and one byte of spaces
  assert.ok(bomb.length < 1 << 20);
  await assert.rejects(decode(bomb), /inflates past 64 MiB/);
});

test('options that are not a positive number take their defaults; maxBackoff is at least minBackoff', () => {
  const base = { server: 'http://127.0.0.1:1', user: USER, token: 't' };
  for (const bad of [0, null, -5, NaN, Infinity, 2 ** 31]) {
    const c = new Client({ ...base, resendInterval: bad, syncTimeout: bad, minBackoff: bad, maxBackoff: bad, syncLimit: bad, keepalive: bad });
    const { resendInterval, syncTimeout, minBackoff, maxBackoff, syncLimit, keepalive } = c.opts;
    assert.deepEqual({ resendInterval, syncTimeout, minBackoff, maxBackoff, syncLimit, keepalive },
      { resendInterval: 3000, syncTimeout: 10000, minBackoff: 250, maxBackoff: 30000, syncLimit: 5000, keepalive: 30 }, String(bad));
  }
  assert.equal(new Client({ ...base, minBackoff: 5000, maxBackoff: 1000 }).opts.maxBackoff, 5000);
  assert.equal(new Client({ ...base, resyncInterval: 0 }).opts.resyncInterval, 0);
  assert.equal(new Client({ ...base, resyncInterval: NaN }).opts.resyncInterval, 300000);
});

test('live events waiting for a sync are bounded by bytes through the client', async () => {
  const { c, mc, push, got } = await open();
  await push(INBOX, msg(3)); // 1 and 2 missing: waits, a sync asked
  assert.equal(mc.take('im/sync').length, 1);
  assert.equal(c.held.n, 1);
  const big = msg(5, 'x'.repeat(9 << 20)); // past the 8 MiB budget: dropped
  await push(INBOX, big);
  assert.equal(c.held.n, 1);
  assert.ok(c.held.bytes < 1000);
  // The sync brings 1 and 2, the waiting 3 follows; the one dropped for want of room asks again.
  await push(DEVICE, { kind: 'sync', since: 0, upto: 2, more: false, epoch: 'e1', items: [msg(1), msg(2)] });
  assert.deepEqual(got.map((e) => e.ver), [1, 2, 3]);
  assert.deepEqual(mc.take('im/sync'), [{ since: 3, limit: 5000, epoch: 'e1' }]);
  await push(DEVICE, { kind: 'sync', since: 3, upto: 5, more: false, epoch: 'e1', items: [msg(4), big] });
  assert.deepEqual(got.map((e) => e.ver), [1, 2, 3, 4, 5]);
  assert.equal(c.held.n, 0);
  await c.close();
});

test('a live disbanded event of a group without a cursor is told once, not again by the heads', async () => {
  const f = await open();
  const disbanded = () => f.got.filter((e) => e.kind === 'group' && e.action === 'disbanded').map((e) => e.group);
  await f.push(INBOX, { kind: 'group', group: 'g1', action: 'disbanded', by: 'bob' });
  assert.deepEqual(disbanded(), ['g1']);
  await f.push(DEVICE, { kind: 'heads', groups: [{ group: 'g1', seq: 4, join: 0, read: 0, gone: true }] });
  assert.deepEqual(disbanded(), ['g1']);
  assert.equal(f.c.cursor().groups.g1.gone, true);
  // One the application never had is told by the heads.
  await f.push(DEVICE, { kind: 'heads', groups: [{ group: 'g1', seq: 4, join: 0, read: 0, gone: true }, { group: 'g2', seq: 1, join: 0, read: 0, gone: true }] });
  assert.deepEqual(disbanded(), ['g1', 'g2']);
  await f.c.close();
});

test('the cursor is saved when it moves, not on every heads answer or error', async () => {
  const f = await open({ groups: [{ group: 'g1', seq: 0, join: 0, read: 0 }] });
  const n = f.store.saves;
  await f.push(DEVICE, { kind: 'heads', groups: [{ group: 'g1', seq: 0, join: 0, read: 0 }] });
  await f.push(DEVICE, { kind: 'error', code: 'busy' });
  assert.equal(f.store.saves, n);
  await f.push(INBOX, msg(1));
  assert.equal(f.store.saves, n + 1);
  assert.equal(f.store.load().ver, 1);
  f.c.extra.left = ['g9']; // what the web chat keeps in the cursor
  f.c.save();
  await flush(f.c);
  assert.equal(f.store.saves, n + 2);
  await f.c.close();
});
