// Tests of the sequencer (src/sequencer.js) and the checks (src/check.js),
// the JavaScript twin of client/sequencer.go and groupset.go: the same
// rules, and the same random simulation as TestSequencerSimulation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Sequencer as ImqttSequencer, Groups as ImqttGroups, Held as ImqttHeld,
  checkEvent as imqttCheckEvent, checkBatch as imqttCheckBatch, checkHeads as imqttCheckHeads, validEmoji as imqttValidEmoji,
} from '../src/index.js';

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
  assert.equal(imqttCheckEvent({ kind: 'typing', from: 'alice', peer: 'bob', state: 'start' }, 'bob'), '');
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

test('imqttCheckEvent: the lifecycle\'s kinds and a message\'s state', () => {
  const id = '7340000000000000001';
  const msg = { kind: 'msg', id, ver: 3, from: 'alice', to: 'bob', type: 'text', body: 'hi', ts: 1 };
  const good = [
    { ...msg, body: undefined, recalled: true },
    { ...msg, edited: 1764300000000, reply_to: '7340000000000000000', quote: { from: 'bob', type: 'text', body: 'q' } },
    { ...msg, quote: { from: 'bob', recalled: true } },
    { ...msg, reactions: { '👍': { count: 2, users: ['alice', 'bob'] }, '👍🏽': { count: 30, users: [] }, '❤️': { count: 1, users: ['x'] } } },
    { kind: 'recall', id, ver: 4, by: 'alice', ts: 5 },
    { kind: 'recall', id, group: 'g1', seq: 9, by: 'owner' },
    { kind: 'edit', id, ver: 5, body: 'fixed', edited: 6 },
    { kind: 'edit', id, ver: 5 }, // an edit of a message gone: no body
    { kind: 'reaction', id, ver: 6, from: 'bob', emoji: '👍', op: 'add' },
    { kind: 'reaction', id, group: 'g1', seq: 10, from: 'bob', emoji: '👨‍👩‍👧', op: 'remove' },
    { kind: 'delete', ids: [id], ver: 7 },
    { kind: 'delete', peer: 'alice', ver: 8 },
    { kind: 'receipt', peer: 'alice', upto: id, ts: 9 },
    { kind: 'typing', from: 'alice', group: 'g1', state: 'stop' },
  ];
  for (const ev of good) assert.equal(imqttCheckEvent(ev, 'bob'), '', JSON.stringify(ev));
  const bad = [
    [{ ...msg, recalled: 'yes' }, 'string recalled'], [{ ...msg, edited: 'x' }, 'string edited'], [{ ...msg, edited: 1.5 }, 'fractional edited'],
    [{ ...msg, reply_to: 'abc' }, 'odd reply_to'], [{ ...msg, quote: 'q' }, 'string quote'], [{ ...msg, quote: { body: 'x' } }, 'quote without from'],
    [{ ...msg, quote: { from: 'a', body: 5 } }, 'number quote body'], [{ ...msg, quote: { from: 'a', recalled: 1 } }, 'number quote recalled'],
    [{ ...msg, reactions: [] }, 'array reactions'], [{ ...msg, reactions: { a: { count: 1, users: [] } } }, 'a letter as emoji'],
    [{ ...msg, reactions: { '👍👍': { count: 1, users: [] } } }, 'two emojis'], [{ ...msg, reactions: { '👍': { count: -1, users: [] } } }, 'negative count'],
    [{ ...msg, reactions: { '👍': { count: 1 } } }, 'no users'], [{ ...msg, reactions: { '👍': { count: 1, users: [7] } } }, 'number user'],
    [{ ...msg, reactions: { '👍': { count: 99, users: Array(21).fill('u') } } }, 'users past the cap'],
    [{ ...msg, reactions: { '👍': { count: 1, users: ['a', 'b'] } } }, 'more users than the count'],
    [{ ...msg, reactions: Object.fromEntries([...Array(51)].map((_, i) => [String.fromCodePoint(0x1f600 + i), { count: 1, users: [] }])) }, '51 emojis'],
    [{ kind: 'recall', id, by: 'alice' }, 'recall without a position'], [{ kind: 'recall', id: 'x', ver: 4 }, 'recall of an odd id'],
    [{ kind: 'recall', id, group: 'g1', by: 'a' }, 'group recall without seq'], [{ kind: 'recall', id, ver: 4, by: 7 }, 'number by'],
    [{ kind: 'edit', id, ver: 5, body: {} }, 'object body'], [{ kind: 'edit', ver: 5, body: 'x' }, 'edit without id'],
    [{ kind: 'edit', id, ver: 5, body: 'x', edited: -1 }, 'negative edited'],
    [{ kind: 'reaction', id, ver: 6, from: 'bob', emoji: 'a', op: 'add' }, 'a letter'],
    [{ kind: 'reaction', id, ver: 6, from: 'bob', emoji: '👍👍', op: 'add' }, 'two emojis'],
    [{ kind: 'reaction', id, ver: 6, from: 'bob', emoji: '👍' + '\u{FE0F}'.repeat(10), op: 'add' }, 'one cluster of 34 bytes'],
    [{ kind: 'reaction', id, ver: 6, from: 'bob', emoji: '👍', op: 'toggle' }, 'odd op'], [{ kind: 'reaction', id, ver: 6, emoji: '👍', op: 'add' }, 'no from'],
    [{ kind: 'delete', ver: 7 }, 'delete of nothing'], [{ kind: 'delete', ids: [], ver: 7 }, 'no ids'], [{ kind: 'delete', ids: ['x'], ver: 7 }, 'odd ids'],
    [{ kind: 'delete', ids: Array(101).fill(id), ver: 7 }, '101 ids'], [{ kind: 'delete', ids: [id], peer: 'a', ver: 7 }, 'ids and peer'],
    [{ kind: 'delete', ids: [id] }, 'delete without ver'], [{ kind: 'delete', ids: [id], group: 'g1', seq: 3 }, 'group delete'],
    [{ kind: 'receipt', peer: 'alice', upto: 'x' }, 'odd upto'], [{ kind: 'receipt', upto: id }, 'receipt without peer'],
    [{ kind: 'receipt', peer: 'bob', upto: id }, 'a receipt from myself'], [{ kind: 'receipt', peer: 'alice', upto: id, ver: 9 }, 'receipt with ver'],
    [{ kind: 'typing', from: 'alice', peer: 'bob', state: 'typing' }, 'odd state'], [{ kind: 'typing', from: 'alice', state: 'start' }, 'typing nowhere'],
    [{ kind: 'typing', from: 'alice', peer: 'bob', group: 'g1', state: 'start' }, 'typing in two places'], [{ kind: 'typing', peer: 'bob', state: 'start' }, 'typing without from'],
  ];
  for (const [ev, why] of bad) assert.notEqual(imqttCheckEvent(ev, 'bob'), '', why);
  for (const e of ['👍', '👍🏽', '👨‍👩‍👧', '❤️', '☕', '🇫🇷']) assert.ok(imqttValidEmoji(e), e);
  for (const e of ['', 'a', '.', '$', '👍👍', '👍 ', 7, null]) assert.ok(!imqttValidEmoji(e), String(e));
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

// ---- groups: one sequencer per group keyed by seq, and the coordinator ----

const gev = (group, seq) => ({ kind: 'msg', id: `${group}-${seq}`, group, seq });
const seqs = (out) => out.map((e) => `${e.group}:${e.seq}`);
const gbatch = (group, since, upto, more, items, extra = {}) =>
  ({ kind: 'sync', group, since, upto, more, epoch: 'e1', items: items.map((q) => gev(group, q)), ...extra });
const heads = (...gs) => ({ kind: 'heads', groups: gs.map(([group, seq, join = 0]) => ({ group, seq, join, read: 0 })) });

// online returns a coordinator past its connect: heads asked and answered.
function online(saved, h, opts = {}) {
  const G = new ImqttGroups(saved, { held: new ImqttHeld(), ...opts });
  G.connected();
  assert.deepEqual(G.take(0), [{ heads: true }]);
  const r = G.heads(h);
  return { G, r };
}

test('the held budget is shared by the inbox and every group', () => {
  const held = new ImqttHeld(2);
  const inbox = new ImqttSequencer(0, 'e1', { held });
  const G = new ImqttGroups({ g1: { seq: 0, epoch: 'e1' }, g2: { seq: 0, epoch: 'e1' } }, { held });
  G.connected();
  G.take(0);
  G.heads(heads(['g1', 0], ['g2', 0]));
  assert.equal(inbox.live(ev(3)).again, true);
  G.live(gev('g1', 5));
  assert.equal(held.n, 2);
  G.live(gev('g2', 5)); // no room left: dropped, and a sync will bring it
  assert.equal(held.n, 2);
  assert.equal(G.seqs.get('g2').pending.size, 0);
  assert.equal(G.seqs.get('g2').overflow, true);
  inbox.connected();
  G.connected();
  assert.equal(held.n, 0);
});

test('the held budget bounds bytes too; a sequencer made without one has its own', () => {
  const held = new ImqttHeld(10, 100);
  const inbox = new ImqttSequencer(0, 'e1', { held });
  const G = new ImqttGroups({ g1: { seq: 0, epoch: 'e1' } }, { held });
  G.connected();
  G.take(0);
  G.heads(heads(['g1', 0]));
  inbox.live(ev(3), 60);
  assert.deepEqual([held.n, held.bytes], [1, 60]);
  G.live(gev('g1', 5), 50); // 110 bytes would wait: dropped, and a sync will bring it
  assert.deepEqual([held.n, held.bytes], [1, 60]);
  assert.equal(G.seqs.get('g1').overflow, true);
  G.live(gev('g1', 6), 40);
  assert.deepEqual([held.n, held.bytes], [2, 100]);
  inbox.connected();
  G.connected();
  assert.deepEqual([held.n, held.bytes], [0, 0]);
  // The default: a budget per sequencer or per Groups, none shared by a whole page.
  const a = new ImqttSequencer(0, '');
  const b = new ImqttSequencer(0, '');
  assert.notEqual(a.held, b.held);
  const H = new ImqttGroups({ g1: { seq: 0, epoch: '' }, g2: { seq: 0, epoch: '' } });
  assert.equal(H.seqs.get('g1').held, H.seqs.get('g2').held);
  assert.notEqual(H.held, a.held);
});

test('groups: heads start at join, a re-join takes max, a missing group is dropped', () => {
  const { G, r } = online({ g1: { seq: 5, epoch: 'e1' }, g3: { seq: 2, epoch: 'e1' }, g4: { seq: 9, epoch: 'e1' } },
    heads(['g1', 9, 7], ['g2', 4, 2], ['g4', 9, 3]));
  assert.deepEqual(r.left, ['g3']);
  assert.deepEqual(G.cursors(), { g1: { seq: 7, epoch: 'e1' }, g2: { seq: 2, epoch: '' }, g4: { seq: 9, epoch: 'e1' } });
  assert.deepEqual(G.take(1), [
    { group: 'g1', since: 7, limit: 200, epoch: 'e1' },
    { group: 'g2', since: 2, limit: 200, epoch: undefined },
  ]);
  assert.deepEqual(G.take(2), []); // g4 is at its head: nothing to ask
  assert.deepEqual(seqs(G.batch(gbatch('g1', 7, 9, false, [8, 9])).out), ['g1:8', 'g1:9']);
  assert.deepEqual(seqs(G.batch(gbatch('g2', 2, 4, false, [3, 4])).out), ['g2:3', 'g2:4']);
  assert.equal(G.idle(), true);
  // A dropped group is synced no more; a late answer for it is ignored.
  assert.deepEqual(G.batch(gbatch('g3', 2, 4, false, [3, 4])).out, []);
  assert.deepEqual(G.live(gev('g3', 3)).out, []);
  assert.equal(G.cursors().g3, undefined);
});

test('groups: a gap syncs that group; the message comes once; repeats dropped', () => {
  const { G } = online({ g1: { seq: 3, epoch: 'e1' } }, heads(['g1', 3]));
  assert.equal(G.idle(), true);
  assert.deepEqual(seqs(G.live(gev('g1', 4)).out), ['g1:4']);
  assert.deepEqual(G.live(gev('g1', 4)).out, []);
  assert.deepEqual(G.live(gev('g1', 7)).out, []); // 5 and 6 were lost
  assert.deepEqual(G.take(1), [{ group: 'g1', since: 4, limit: 200, epoch: 'e1' }]);
  assert.deepEqual(G.live(gev('g1', 6)).out, []); // waits for the sync
  assert.deepEqual(seqs(G.batch(gbatch('g1', 4, 7, false, [5, 6, 7])).out), ['g1:5', 'g1:6', 'g1:7']);
  assert.deepEqual(G.live(gev('g1', 7)).out, []);
  assert.deepEqual(seqs(G.live(gev('g1', 8)).out), ['g1:8']);
  assert.equal(G.idle(), true);
  assert.equal(G.held.n, 0);
});

test('groups: a forged far-ahead seq is dropped unconfirmed, never moves the cursor', () => {
  const { G } = online({ g1: { seq: 3, epoch: 'e1' } }, heads(['g1', 3]));
  G.live({ ...gev('g1', 1000000), from: 'mallory' });
  let syncs = 0;
  for (let reqs = G.take(1); reqs.length; reqs = G.take(1)) {
    syncs++;
    assert.deepEqual(G.batch(gbatch('g1', 3, 3, false, [])).out, []);
  }
  assert.equal(syncs, 3);
  assert.equal(G.takeDropped(), 1);
  assert.equal(G.cursors().g1.seq, 3);
  assert.deepEqual(seqs(G.live(gev('g1', 4)).out), ['g1:4']);
});

test('groups: a message of a group without a cursor asks the heads, whose answer brings it', () => {
  const { G } = online({}, heads());
  assert.deepEqual(G.live(gev('g9', 1)).out, []);
  assert.deepEqual(G.live(gev('g9', 2)).out, []);
  assert.deepEqual(G.take(1000), [{ heads: true }]); // asked once
  assert.deepEqual(G.heads(heads(['g9', 2, 0])).out, []);
  assert.deepEqual(G.take(1001), [{ group: 'g9', since: 0, limit: 200, epoch: undefined }]);
  assert.deepEqual(seqs(G.batch(gbatch('g9', 0, 2, false, [1, 2])).out), ['g9:1', 'g9:2']);
  // A membership event while the heads are on their way: asked again after.
  G.askHeads();
  assert.deepEqual(G.take(3000), [{ heads: true }]);
  G.askHeads();
  assert.deepEqual(G.take(3001), []);
  G.heads(heads(['g9', 2]));
  assert.deepEqual(G.take(4000), [{ heads: true }]);
});

test('groups: at most one heads request a second, but on a connect', () => {
  const { G } = online({}, heads()); // asked at 0
  G.askHeads();
  assert.deepEqual(G.take(500), []);
  assert.equal(G.deadline(), 1000);
  assert.deepEqual(G.take(1000), [{ heads: true }]);
  G.heads(heads());
  G.askHeads();
  assert.deepEqual(G.take(1001), []);
  G.connected();
  assert.deepEqual(G.take(1002), [{ heads: true }]);
});

test('groups: at most two requests in flight; the others wait; no answer is asked again', () => {
  const { G } = online({}, heads(['a', 1], ['b', 1], ['c', 1], ['d', 1]));
  assert.deepEqual(G.take(1).map((r) => r.group), ['a', 'b']);
  G.askHeads();
  assert.deepEqual(G.take(2), []);
  G.batch(gbatch('a', 0, 1, false, [1]));
  assert.deepEqual(G.take(1000), [{ heads: true }]); // heads first
  G.heads(heads(['a', 1], ['b', 1], ['c', 1], ['d', 1]));
  assert.deepEqual(G.take(1001).map((r) => r.group), ['c']);
  assert.equal(G.deadline(), 1 + 10000);
  assert.deepEqual(G.take(10000), []);
  assert.deepEqual(G.take(10001), [{ group: 'b', since: 0, limit: 200, epoch: undefined }]); // b's answer never came
  assert.equal(G.inflight.size, 2);
});

test('groups: a group syncs page after page until its head', () => {
  const { G } = online({ g1: { seq: 0, epoch: 'e1' } }, heads(['g1', 5]), { limit: 2 });
  const got = [];
  for (let reqs = G.take(1); reqs.length; reqs = G.take(1)) {
    const [q] = reqs;
    const items = [q.since + 1, q.since + 2].filter((x) => x <= 5);
    got.push(...seqs(G.batch(gbatch('g1', q.since, items[items.length - 1], q.since + 2 < 5, items), 2).out));
  }
  assert.deepEqual(got, ['g1:1', 'g1:2', 'g1:3', 'g1:4', 'g1:5']);
  assert.equal(G.sent, 1 + 3);
});

test('groups: a cursor beyond the head, or of another epoch, is reset from the join', () => {
  const { G } = online({ g1: { seq: 50, epoch: 'e1' }, g2: { seq: 4, epoch: 'old' } }, heads(['g1', 7, 2], ['g2', 4]));
  assert.deepEqual(G.take(1), [{ group: 'g1', since: 50, limit: 200, epoch: 'e1' }]); // beyond: asked all the same
  const b = gbatch('g1', 2, 7, false, [3, 4, 5, 6, 7], { reset: true });
  assert.equal(G.resets(b), true);
  assert.deepEqual(seqs(G.batch(b).out), ['g1:3', 'g1:4', 'g1:5', 'g1:6', 'g1:7']);
  assert.equal(G.resets(b), false); // once per epoch
  assert.deepEqual(G.batch(b).out, []);
  assert.equal(G.cursors().g1.seq, 7);
  // g2 is at its head by its old epoch's count; a live gap asks, and the
  // server's other epoch resets it.
  G.live(gev('g2', 9));
  assert.deepEqual(G.take(2), [{ group: 'g2', since: 4, limit: 200, epoch: 'old' }]);
  assert.deepEqual(seqs(G.batch(gbatch('g2', 0, 9, false, [8, 9], { reset: true })).out), ['g2:8', 'g2:9']);
  assert.deepEqual(G.cursors().g2, { seq: 9, epoch: 'e1' });
});

test('groups: not_member asks the heads, which drop the group; busy asks again after a delay', () => {
  const { G } = online({}, heads(['g1', 3], ['g2', 3]), { retry: () => 1000 });
  G.take(1);
  assert.deepEqual(G.error('g1', 'not_member', 2), { gone: [] });
  assert.equal(G.cursors().g1.seq, 0); // a claim of one answer: the heads decide
  assert.equal(G.seqs.get('g1').syncing, false);
  assert.deepEqual(G.error('g2', 'busy', 100), { gone: [] });
  assert.deepEqual(G.take(1000), [{ heads: true }]);
  assert.deepEqual(G.heads(heads(['g2', 3])).left, ['g1']);
  assert.equal(G.cursors().g1, undefined);
  assert.deepEqual(G.batch(gbatch('g1', 0, 3, false, [1, 2, 3])).out, []);
  assert.equal(G.deadline(), 1100);
  assert.deepEqual(G.take(1100), [{ group: 'g2', since: 0, limit: 200, epoch: undefined }]);
  // An error naming no group: not_member asks the heads, busy resends them.
  G.error('', 'not_member', 2200);
  assert.deepEqual(G.take(2200), [{ heads: true }]);
  G.error('', 'busy', 2300);
  assert.deepEqual(G.take(2300), []);
  assert.deepEqual(G.take(3300), [{ heads: true }]);
});

test('groups: an error ends the group\'s sync: live events flow again, not held until a reconnect', () => {
  for (const code of ['busy', 'unavailable', 'group_gone', 'not_member']) {
    const { G } = online({ g1: { seq: 3, epoch: 'e1' } }, heads(['g1', 5]), { retry: () => 1000 });
    assert.equal(G.take(1).length, 1);
    G.error('g1', code, 2);
    assert.equal(G.seqs.get('g1').syncing, false, code);
    assert.deepEqual(seqs(G.live(gev('g1', 4)).out), ['g1:4'], code);
  }
});

test('groups: group_gone ends that group\'s sync and frees its place; the cursor stays', () => {
  const { G } = online({}, heads(['g1', 3], ['g2', 3], ['g3', 3]), { window: 1 });
  assert.deepEqual(G.take(1), [{ group: 'g1', since: 0, limit: 200, epoch: undefined }]);
  assert.deepEqual(G.error('g1', 'group_gone', 2), { gone: ['g1'] });
  assert.equal(G.cursors().g1.seq, 0);
  assert.deepEqual(G.take(3), [{ group: 'g2', since: 0, limit: 200, epoch: undefined }]);
  assert.equal(G.deadline(), 3 + 10000); // g1 is not asked again after the timeout
  G.batch(gbatch('g2', 0, 3, false, [1, 2, 3]));
  assert.deepEqual(G.take(20000), [{ group: 'g3', since: 0, limit: 200, epoch: undefined }]);
  G.batch(gbatch('g3', 0, 3, false, [1, 2, 3]));
  // Later heads still show g1 below its head: it is not asked again.
  G.askHeads();
  assert.deepEqual(G.take(30000), [{ heads: true }]);
  G.heads(heads(['g1', 3], ['g2', 3], ['g3', 3]));
  assert.deepEqual(G.take(30001), []);
  assert.equal(G.idle(), true);
});

test('groups: a sync that ends below the head (a hole settling) is asked again a little later; not idle meanwhile', () => {
  const { G } = online({ g1: { seq: 0, epoch: 'e1' } }, heads(['g1', 5]), { retry: () => 1000 });
  assert.equal(G.take(1).length, 1);
  assert.deepEqual(seqs(G.batch(gbatch('g1', 0, 3, false, [1, 2, 3]), undefined, 2).out), ['g1:1', 'g1:2', 'g1:3']);
  assert.deepEqual(G.take(3), [{ group: 'g1', since: 3, limit: 200, epoch: 'e1' }]); // it moved: at once
  assert.deepEqual(G.batch(gbatch('g1', 3, 3, false, []), undefined, 4).out, []); // no step: the hole
  assert.equal(G.idle(), false);
  assert.deepEqual(G.take(5), []);
  assert.equal(G.deadline(), 1004);
  assert.deepEqual(G.take(1004), [{ group: 'g1', since: 3, limit: 200, epoch: 'e1' }]);
  assert.deepEqual(seqs(G.batch(gbatch('g1', 3, 5, false, [4, 5]), undefined, 1005).out), ['g1:4', 'g1:5']);
  assert.equal(G.idle(), true);
});

test('groups: a batch past the cursor (a join above it) is ignored and asks the heads', () => {
  const { G } = online({ g1: { seq: 2, epoch: 'e1' } }, heads(['g1', 9, 0]));
  G.take(1);
  assert.deepEqual(G.batch(gbatch('g1', 6, 9, false, [7, 8, 9])).out, []);
  assert.equal(G.cursors().g1.seq, 2);
  G.heads(heads(['g1', 9, 6]));
  assert.equal(G.cursors().g1.seq, 6);
});

// The group simulation: several groups, live messages lost, repeated and
// reordered, forged ones, dropped connections, timeouts, busy answers and a
// removal; at the end every member group's messages above its join were
// delivered once, in seq order, and never more than two requests flew.
function simulateGroups(seed) {
  const r = rng(seed);
  const names = ['a', 'b', 'c', 'd'];
  const srv = new Map(names.map((g) => [g, { seqs: [], member: true, join: 0 }]));
  const held = new ImqttHeld(1 + r.int(6));
  const G = new ImqttGroups({}, { held, limit: 1 + r.int(4), retry: () => 0 });
  let inflight = []; // answers on their way, in order
  const delivered = new Map(names.map((g) => [g, []]));
  let now = 0;
  const headsNow = () => ({ kind: 'heads', groups: names.filter((g) => srv.get(g).member).map((g) => {
    const h = srv.get(g);
    return { group: g, seq: h.seqs.length ? h.seqs[h.seqs.length - 1] : 0, join: h.join };
  }) });
  const serveGroup = (q) => {
    const h = srv.get(q.group);
    if (!h.member) return [{ error: { group: q.group, code: 'not_member' } }];
    if (r.int(15) === 0) return [{ error: { group: q.group, code: 'busy' } }];
    const head = h.seqs.length ? h.seqs[h.seqs.length - 1] : 0;
    let since = q.since;
    const reset = since > head;
    if (reset) since = 0;
    since = Math.max(since, h.join);
    const items = h.seqs.filter((x) => x > since).slice(0, q.limit + 1);
    const more = items.length > q.limit;
    if (more) items.length = q.limit;
    const upto = more ? items[items.length - 1] : Math.max(since, head);
    return [{ batch: { kind: 'sync', group: q.group, since, upto, more, epoch: 'e1', reset, items: items.map((x) => gev(q.group, x)) } }];
  };
  const send = () => {
    for (const q of G.take(now)) {
      assert.ok(G.inflight.size <= 2, `seed ${seed}: ${G.inflight.size} in flight`);
      inflight.push(...(q.heads ? [{ heads: headsNow() }] : serveGroup(q)));
    }
  };
  const take = ({ out = [], left = [] }) => {
    for (const e of out) delivered.get(e.group).push(e.seq);
    for (const g of left) assert.ok(!srv.get(g).member, `seed ${seed}: ${g} dropped while a member`);
  };
  const step = () => {
    const it = inflight.shift();
    if (it.live) take(G.live(it.live));
    else if (it.heads) take(G.heads(it.heads));
    else if (it.batch) take(G.batch(it.batch, undefined, now));
    else take(G.error(it.error.group, it.error.code, now));
  };
  G.connected();
  send();
  for (let i = 0; i < 400; i++) {
    now += 100 + r.int(3000);
    const k = r.int(20);
    if (k < 8) {
      const g = names[r.int(names.length)];
      const h = srv.get(g);
      const next = (h.seqs.length ? h.seqs[h.seqs.length - 1] : 0) + 1;
      h.seqs.push(next);
      if (!h.member || r.int(8) === 0) continue; // not delivered, or lost
      const e = gev(g, next);
      let pos = inflight.length;
      if (r.int(4) === 0 && pos > 0) pos = r.int(pos + 1);
      inflight.splice(pos, 0, { live: e });
      if (r.int(5) === 0) inflight.push({ live: e });
    } else if (k < 15) {
      if (inflight.length) step();
    } else if (k === 15) {
      inflight.push({ live: gev(names[r.int(names.length)], 1000000 + r.int(100)) }); // forged
    } else if (k === 16) {
      inflight = []; // the connection drops
      G.connected();
    } else if (k === 17 && seed % 3 === 0 && srv.get('d').member) {
      srv.get('d').member = false; // removed; the live event asks the heads
      G.askHeads();
    } else if (k === 18) {
      inflight = inflight.filter(() => r.int(3) !== 0); // answers lost: timeouts
    }
    send();
  }
  for (let i = 0; i < 1000 && !(G.idle() && inflight.length === 0); i++) {
    while (inflight.length) {
      step();
      send();
    }
    now += 20000;
    send();
  }
  assert.ok(G.idle(), `seed ${seed}: never idle`);
  G.askHeads(); // the periodic resync: a last live message lost is found
  send();
  for (let i = 0; i < 1000 && inflight.length; i++) {
    step();
    send();
  }
  for (const g of names) {
    const h = srv.get(g);
    const got = delivered.get(g);
    got.forEach((q, i) => assert.ok(i === 0 || got[i - 1] < q, `seed ${seed}: ${g} delivered ${got}`));
    if (h.member) assert.deepEqual(got, h.seqs.filter((x) => x > h.join), `seed ${seed}: group ${g}`);
    else assert.equal(G.cursors()[g], undefined, `seed ${seed}: ${g} still has a cursor`);
  }
  assert.equal(held.n, [...G.seqs.values()].reduce((n, s) => n + s.pending.size, 0), `seed ${seed}: held budget`);
}

test('groups simulation: lost, repeated, reordered, forged events; drops, timeouts, busy, a removal', () => {
  for (let seed = 0; seed < 300; seed++) simulateGroups(seed);
});

test('groups: behind says how far a cursor is below the head the heads gave', () => {
  const { G } = online({ g1: { seq: 3, epoch: 'e1' } }, heads(['g1', 250], ['g2', 4, 1]));
  assert.equal(G.behind('g1'), 247);
  assert.equal(G.behind('g2'), 3);
  assert.equal(G.behind('g3'), 0);
  G.take(1);
  G.batch(gbatch('g1', 3, 250, false, []));
  assert.equal(G.behind('g1'), 0);
});
