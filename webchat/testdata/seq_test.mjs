// Tests of the web chat's sequencer (static/seq.js), the JavaScript twin of
// client/sequencer.go: the same rules, and the same random simulation as
// TestSequencerSimulation. Run by webchat/seq_test.go: node --test.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { ImqttSequencer, imqttCheckEvent, imqttCheckBatch } = require('../static/seq.js');

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

// This test used to say the hole was skipped and 5 delivered: that rule
// let a forged event with ver 1000000 move the cursor and hide every real
// message below it. Now the event is dropped and the cursor stays put.
test('a live event three syncs do not confirm is dropped, not believed', () => {
  const s = new ImqttSequencer(1, 'e1');
  s.live(ev(5));
  let again = true;
  let syncs = 0;
  let out = [];
  while (again) {
    syncs++;
    s.begin(500);
    ({ out, again } = s.batch(batch(1, 1, false, [])));
    assert.deepEqual(out, []);
  }
  assert.equal(syncs, 3);
  assert.equal(s.cursor, 1);
  assert.equal(s.takeDropped(), 1);
  assert.deepEqual(vers(s.live(ev(2)).out), [2]);
});

test('a forged far-ahead event is never delivered; real ones keep coming', () => {
  const s = new ImqttSequencer(10, 'e1');
  let { again } = s.live({ kind: 'msg', id: '1', ver: 1000000, from: 'bob', to: 'me' });
  const got = [];
  for (let v = 11; v <= 20; v++) {
    if (again) {
      s.begin(500);
      got.push(...s.batch(batch(s.cursor, s.cursor, false, [])).out);
    }
    let out;
    ({ out, again } = s.live(ev(v)));
    got.push(...out);
    assert.equal(s.cursor, v);
  }
  assert.deepEqual(vers(got), [11, 12, 13, 14, 15, 16, 17, 18, 19, 20]);
  assert.equal(s.pending.has(1000000), false);
});

test('a sync item wins over the live claim of the same ver', () => {
  const s = new ImqttSequencer(5, 'e1');
  s.live({ kind: 'msg', id: '7', ver: 7, from: 'mallory', to: 'me' });
  s.begin(500);
  const b = batch(5, 7, false, [6, 7]);
  b.items[1].from = 'alice';
  const { out } = s.batch(b);
  assert.deepEqual(vers(out), [6, 7]);
  assert.equal(out[1].from, 'alice');
});

test('items left out still use up the request', () => {
  const s = new ImqttSequencer(0, 'e1');
  s.begin(4);
  const r = s.batch(batch(0, 4, true, [1, 3]), 4);
  assert.deepEqual(vers(r.out), [1, 3]);
  assert.equal(r.again, true);
  assert.equal(s.cursor, 4);
});

test('imqttCheckEvent: what the page can use', () => {
  const ok = { kind: 'msg', id: '7340000000000000001', ver: 3, from: 'alice', to: 'bob', type: 'text', body: 'hi', ts: 1 };
  assert.equal(imqttCheckEvent(ok, 'bob'), '');
  assert.equal(imqttCheckEvent({ ...ok, kind: undefined }, 'bob'), '');
  assert.equal(imqttCheckEvent({ ...ok, to: undefined, group: 'g1', seq: 4 }, 'bob'), '');
  assert.equal(imqttCheckEvent({ kind: 'unread', total: 3, peer: 'alice', count: 1 }, 'bob'), '');
  assert.equal(imqttCheckEvent({ kind: 'typing', from: 'alice' }, 'bob'), '');
  assert.equal(imqttCheckEvent({ ...ok, meta: JSON.parse('['.repeat(31) + ']'.repeat(31)) }, 'bob'), '');
  for (const [bad, why] of [
    [null, 'null'], [[], 'array'], ['x', 'string'], [{ ...ok, ver: -1 }, 'negative ver'], [{ ...ok, ver: 2 ** 60 }, 'unsafe ver'],
    [{ ...ok, ver: '3' }, 'string ver'], [{ ...ok, id: undefined }, 'no id'], [{ ...ok, id: 'abc' }, 'odd id'],
    [{ ...ok, from: undefined }, 'no from'], [{ ...ok, from: 7 }, 'number from'], [{ ...ok, body: {} }, 'object body'],
    [{ ...ok, from: 'carol', to: 'dave' }, 'not in my inbox'], [{ ...ok, to: undefined }, 'no to'],
    [{ kind: 'unread', total: 'x', peer: 'a', count: 1 }, 'odd total'], [{ kind: 'unread', total: 1, count: 1 }, 'no conversation'],
    [{ ...ok, kind: 5 }, 'number kind'], [{ kind: 'recall', ver: 1.5 }, 'fractional ver'],
    [{ ...ok, meta: JSON.parse('{"a":'.repeat(9998) + '1' + '}'.repeat(9998)) }, 'poison meta'],
    [{ ...ok, meta: JSON.parse('['.repeat(32) + ']'.repeat(32)) }, 'meta one level too deep'],
  ]) {
    assert.notEqual(imqttCheckEvent(bad, 'bob'), '', why);
  }
  assert.equal(imqttCheckBatch({ kind: 'sync', since: 1, upto: 3, items: [] }), '');
  for (const bad of [{ since: -1, upto: 3 }, { since: 1 }, { since: 4, upto: 3 }, { since: 1, upto: 3, items: {} }, { since: 1, upto: 2 ** 60 }]) {
    assert.notEqual(imqttCheckBatch(bad), '', JSON.stringify(bad));
  }
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
      assert.notEqual(e.id, 'forged', `seed ${seed}: delivered a forged event`);
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
    const k = r.int(21);
    if (k === 20) { // a peer forges an event far ahead
      inflight.splice(r.int(inflight.length + 1), 0, { live: { kind: 'msg', id: 'forged', ver: 1000000 + r.int(1000) } });
      continue;
    }
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

test('simulation: lost, repeated, reordered, forged events, drops, timeouts, lost history', () => {
  for (let seed = 0; seed < 500; seed++) simulate(seed);
});
