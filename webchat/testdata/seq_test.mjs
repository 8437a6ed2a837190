// Tests of the web chat's sequencer (static/seq.js), the JavaScript twin of
// client/sequencer.go: the same rules, and the same random simulation as
// TestSequencerSimulation. Run by webchat/seq_test.go: node --test.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { ImqttSequencer } = require('../static/seq.js');

const ev = (ver) => ({ kind: 'msg', id: `m${ver}`, ver });
const vers = (out) => out.map((e) => e.ver);
const batch = (since, upto, more, items, extra = {}) => ({ kind: 'sync', since, upto, more, epoch: 'e1', items: items.map(ev), ...extra });

test('live events in order; repeats dropped', () => {
  const s = new ImqttSequencer(0, 'e1');
  assert.deepEqual(vers(s.live(ev(1)).out), [1]);
  assert.deepEqual(vers(s.live(ev(2)).out), [2]);
  const dup = s.live(ev(2));
  assert.deepEqual(dup, { out: [], again: false });
  assert.equal(s.cursor, 2);
});

test('a gap asks for a sync; the sync fills it before the waiting event', () => {
  const s = new ImqttSequencer(1, 'e1');
  const r = s.live(ev(3));
  assert.deepEqual(r, { out: [], again: true });
  s.begin(500);
  const b = s.batch(batch(1, 3, false, [2, 3]));
  assert.deepEqual(vers(b.out), [2, 3]);
  assert.equal(b.again, false);
  assert.equal(s.syncing, false);
  assert.equal(s.cursor, 3);
});

test('live events held during a sync follow it, each once', () => {
  const s = new ImqttSequencer(0, '');
  s.begin(500);
  assert.deepEqual(s.live(ev(2)).out, []);
  assert.deepEqual(s.live(ev(3)).out, []);
  const b = s.batch(batch(0, 2, false, [1, 2]));
  assert.deepEqual(vers(b.out), [1, 2, 3]);
  assert.equal(s.epoch, 'e1');
});

test('upto covers holes; a batch past the cursor is ignored', () => {
  const s = new ImqttSequencer(0, 'e1');
  s.begin(500);
  assert.deepEqual(s.batch(batch(5, 9, false, [7])).out, []);
  const b = s.batch(batch(0, 9, false, [2, 7]));
  assert.deepEqual(vers(b.out), [2, 7]);
  assert.equal(s.cursor, 9);
});

test('a limit used up with more to come asks again', () => {
  const s = new ImqttSequencer(0, 'e1');
  s.begin(2);
  assert.deepEqual(s.batch(batch(0, 2, true, [1, 2])).again, true);
  s.begin(2);
  const b = s.batch(batch(2, 3, false, [3]));
  assert.deepEqual(vers(b.out), [3]);
  assert.equal(s.syncing, false);
});

test('a reset moves the cursor back once per epoch', () => {
  const s = new ImqttSequencer(50, 'old');
  s.begin(500);
  assert.equal(s.resets(batch(0, 2, false, [], { reset: true, epoch: 'new' })), true);
  const b = s.batch(batch(0, 2, false, [1, 2], { reset: true, epoch: 'new' }));
  assert.deepEqual(vers(b.out), [1, 2]);
  assert.equal(s.cursor, 2);
  assert.equal(s.epoch, 'new');
  // Another answer to an overlapping request, also a reset: not again.
  assert.deepEqual(s.batch(batch(0, 2, false, [1, 2], { reset: true, epoch: 'new' })).out, []);
  assert.equal(s.cursor, 2);
});

test('unversioned events pass straight through, also during a sync', () => {
  const s = new ImqttSequencer(0, 'e1');
  s.begin(500);
  const u = { kind: 'unread', total: 1, peer: 'bob', count: 1 };
  assert.deepEqual(s.live(u), { out: [u], again: false });
});

test('a hole the server cannot fill is skipped after three syncs', () => {
  const s = new ImqttSequencer(1, 'e1');
  s.live(ev(5));
  let again = true;
  let syncs = 0;
  let out = [];
  while (again) {
    syncs++;
    s.begin(500);
    ({ out, again } = s.batch(batch(1, 1, false, [])));
  }
  assert.equal(syncs, 3);
  assert.deepEqual(vers(out), [5]);
});

// mulberry32: a small seedable PRNG.
function rng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { int: (n) => Math.floor(next() * n) };
}

// history answers sync requests as the server does (see fakeHistory in
// client/sequencer_test.go).
function serve(h, since, epoch, limit) {
  let reset = !!epoch && epoch !== h.epoch;
  if (!reset && since > 0 && (h.vers.length === 0 || since > h.vers[h.vers.length - 1])) reset = true;
  if (reset) since = 0;
  limit = Math.min(limit, h.maxLimit);
  const out = [];
  for (;;) {
    const n = Math.min(limit, h.batchItems);
    const items = h.vers.filter((v) => v > since).slice(0, n + 1);
    const more = items.length > n;
    if (more) items.length = n;
    const b = { kind: 'sync', since, upto: items.length ? items[items.length - 1] : since, more, epoch: h.epoch, reset,
      items: items.map((v) => ({ kind: 'msg', id: `${h.epoch}-${v}`, ver: v })) };
    out.push(b);
    limit -= items.length;
    if (!more || limit <= 0) return out;
    since = b.upto;
    reset = false;
  }
}

function simulate(seed) {
  const r = rng(seed);
  let epoch = 1;
  const h = { epoch: 'e1', vers: [], batchItems: 1 + r.int(5), maxLimit: 2 + r.int(10) };
  let inflight = [];
  const delivered = [];
  const s = new ImqttSequencer(0, '');
  const limit = 1 + r.int(8);
  let next = 0;
  const request = () => {
    s.begin(limit);
    for (const b of serve(h, s.cursor, s.epoch, limit)) inflight.push({ batch: b });
  };
  const take = ({ out, again }) => {
    for (const e of out) {
      const [ep, v] = e.id.slice(1).split('-').map(Number);
      assert.equal(v, e.ver, `bad event ${e.id}`);
      delivered.push(`${ep}-${v}`);
    }
    if (again) request();
  };
  const step = () => {
    const it = inflight.shift();
    take(it.live ? s.live(it.live) : s.batch(it.batch));
  };
  request();
  for (let i = 0; i < 300; i++) {
    const k = r.int(20);
    if (k < 8) { // commit, perhaps after a hole, and publish live
      next += 1 + Math.floor(r.int(3) / 2);
      h.vers.push(next);
      if (r.int(10) === 0) continue; // lost
      const e = { kind: 'msg', id: `e${epoch}-${next}`, ver: next };
      let pos = inflight.length;
      if (r.int(4) === 0 && pos > 0) pos = r.int(pos + 1); // overtakes something
      inflight.splice(pos, 0, { live: e });
      if (r.int(5) === 0) inflight.push({ live: e }); // and comes twice
    } else if (k < 17) {
      if (inflight.length) step();
    } else if (k < 18) {
      if (s.syncing) request(); // a timeout: sent again
    } else if (k < 19) {
      inflight = []; // the connection drops
      s.connected();
      request();
    } else if (r.int(3) === 0) { // the server loses its history
      epoch++;
      h.epoch = `e${epoch}`;
      h.vers = [];
      next = 0;
      inflight = [];
      s.connected();
      request();
    }
  }
  for (let i = 0; i < 100; i++) {
    while (inflight.length) step();
    if (!s.syncing && (h.vers.length === 0 || s.cursor === h.vers[h.vers.length - 1])) break;
    s.connected();
    request();
  }
  const seen = new Set();
  delivered.forEach((d, i) => {
    assert.ok(!seen.has(d), `seed ${seed}: ${d} delivered twice`);
    seen.add(d);
    if (i > 0) {
      const [pe, pv] = delivered[i - 1].split('-').map(Number);
      const [e, v] = d.split('-').map(Number);
      assert.ok(pe !== e || pv < v, `seed ${seed}: ${d} after ${delivered[i - 1]}`);
    }
  });
  for (const v of h.vers) assert.ok(seen.has(`${epoch}-${v}`), `seed ${seed}: ${epoch}-${v} never delivered`);
}

test('simulation: lost, repeated, reordered events, drops, timeouts, lost history', () => {
  for (let seed = 0; seed < 500; seed++) simulate(seed);
});
