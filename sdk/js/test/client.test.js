// The SDK against a real imqttd (harness.js): chat exactly once and in
// order, catch-up after a disconnect (inbox and a group), and the faults
// the Go SDK's tests inject: a lost event, a repeated event, malformed
// events and sync batches, a revoked token, a restart of imqttd mid-send.
// Faults are injected between MQTT.js and the SDK (faulty below), the
// SDK's pluggable mqtt option: the server is real, only delivery is
// tampered with.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import mqtt from 'mqtt';
import { Client, MemoryCursor, ImqttError } from '../src/index.js';
import { Server, waitFor } from './lib/harness.js';

let server;
const clients = [];
const SERVER_KEY = 'k'.repeat(40); // opens /v1/server/ (minting short tokens)
before(async () => {
  server = await Server.start(['--server-key', SERVER_KEY]);
});
after(async () => {
  await Promise.all(clients.map((c) => c.close().catch(() => {})));
  if (server) await server.stop();
});

const PASSWORD = 'secret-password';
let users = 0;
// account registers a fresh user (unique per test) and returns its ID.
async function account(name) {
  const user = `${name}${++users}`;
  await Client.register({ server: server.url, user, password: PASSWORD });
  return user;
}

// faulty wraps MQTT.js: fault(topic, payload) returns the payloads to hand
// on (none: lost; two: repeated; another: corrupted).
function faulty(fault) {
  return {
    connect(url, opts) {
      const c = mqtt.connect(url, opts);
      const emit = c.emit.bind(c);
      c.emit = (name, ...args) => {
        if (name !== 'message') return emit(name, ...args);
        const [topic, payload, packet] = args;
        for (const p of fault(topic, payload)) emit('message', topic, typeof p === 'string' ? Buffer.from(p) : p, packet);
        return true;
      };
      return c;
    },
  };
}

const json = (p) => {
  try {
    return JSON.parse(p.toString());
  } catch {
    return null;
  }
};

// login returns a connected client of user that records its messages.
async function login(user, opts = {}) {
  const c = await Client.login({ server: server.url, user, password: PASSWORD, device: opts.device || 'd1', minBackoff: 50, maxBackoff: 500, mqtt, ...opts });
  clients.push(c);
  c.got = [];
  c.on('message', (m) => c.got.push(m));
  return c;
}

const bodies = (c, from) => c.got.filter((m) => !from || m.from === from).map((m) => m.body);

test('chat: each message once and in order, live', { timeout: 60000 }, async () => {
  const [alice, bob] = [await account('alice'), await account('bob')];
  const a = await login(alice);
  const b = await login(bob);
  await a.connect();
  await b.connect();
  await Promise.all([a.synced(), b.synced()]);
  const want = Array.from({ length: 20 }, (_, i) => `hi ${i}`);
  const acks = await Promise.all(want.map((body) => b.send({ to: alice, body })));
  assert.equal(new Set(acks.map((x) => x.id)).size, 20);
  await waitFor(() => a.got.length >= 20, 5000, 'alice gets 20');
  assert.deepEqual(bodies(a), want);
  const vers = a.got.map((m) => m.ver);
  assert.deepEqual(vers, [...vers].sort((x, y) => x - y));
  assert.equal(new Set(a.got.map((m) => m.id)).size, 20);
  // The sender's own inbox has them too (its other devices see them).
  await waitFor(() => b.got.length >= 20, 5000, 'bob sees his own');
  assert.deepEqual(bodies(b), want);
  // A reply comes back the same way.
  await a.send({ to: bob, body: 'back' });
  await waitFor(() => b.got.length === 21);
  assert.equal(b.got[20].body, 'back');
  assert.equal(a.skipped + b.skipped, 0);
});

test('catch-up after a disconnect: the inbox and a group, each missed message once, in order', { timeout: 60000 }, async () => {
  const [alice, bob] = [await account('alice'), await account('bob')];
  const store = new MemoryCursor();
  let gzipped = 0; // sync batches that came compressed (the default where DecompressionStream is)
  const countGzip = faulty((_, p) => {
    if (p[0] === 0x1f && p[1] === 0x8b) gzipped++;
    return [p];
  });
  const a = await login(alice, { cursor: store, mqtt: countGzip });
  const b = await login(bob);
  await a.connect();
  await b.connect();
  const g = await b.createGroup({ name: 'friends', members: [alice] });
  await b.send({ group: g.id, body: 'g0' });
  await b.send({ to: alice, body: 'd0' });
  await waitFor(() => bodies(a).includes('g0') && bodies(a).includes('d0'), 5000, 'live g0 and d0');
  const seen = a.got.length;

  await a.disconnect();
  for (let i = 1; i <= 3; i++) {
    await b.send({ to: alice, body: `d${i}` });
    await b.send({ group: g.id, body: `g${i}` });
  }
  await a.connect();
  await a.synced();
  await waitFor(() => a.got.length >= seen + 6, 5000, 'six missed');
  const missed = a.got.slice(seen);
  assert.deepEqual(missed.filter((m) => !m.group).map((m) => m.body), ['d1', 'd2', 'd3']);
  assert.deepEqual(missed.filter((m) => m.group).map((m) => m.body), ['g1', 'g2', 'g3']);
  assert.deepEqual(missed.filter((m) => m.group).map((m) => m.seq), [2, 3, 4]);
  assert.ok(gzipped > 0, 'no sync batch came gzip-compressed');

  // A new process with the same cursor store resumes where this one was:
  // nothing again, and what came since, once.
  await a.close();
  await b.send({ to: alice, body: 'd4' });
  await b.send({ group: g.id, body: 'g4' });
  const a2 = await login(alice, { cursor: store, device: 'd1' });
  await a2.connect();
  await a2.synced();
  await waitFor(() => a2.got.length >= 2, 5000, 'd4 and g4');
  assert.deepEqual(bodies(a2).sort(), ['d4', 'g4']);
  // The cursor is saved after the handler had the event: soon after.
  await waitFor(() => store.load().groups[g.id].seq === 5, 5000, 'the group cursor saved at seq 5');
});

test('a lost event: the next one shows the gap, and the sync fills it', { timeout: 60000 }, async () => {
  const [alice, bob] = [await account('alice'), await account('bob')];
  let lost = 0;
  const a = await login(alice, {
    mqtt: faulty((topic, p) => {
      const ev = json(p);
      if (ev && ev.kind === 'msg' && ev.body === 'lost' && !topic.includes('/d/')) {
        lost++;
        return [];
      }
      return [p];
    }),
  });
  const b = await login(bob);
  await a.connect();
  await b.connect();
  await a.synced();
  await b.send({ to: alice, body: 'lost' });
  await b.send({ to: alice, body: 'after' });
  await waitFor(() => a.got.length >= 2, 5000, 'both');
  assert.equal(lost, 1);
  assert.deepEqual(bodies(a), ['lost', 'after']);
  assert.equal(a.got[0].ver + 1, a.got[1].ver);
});

test('a repeated event (and a repeated sync batch) is delivered once', { timeout: 60000 }, async () => {
  const [alice, bob] = [await account('alice'), await account('bob')];
  const a = await login(alice, { mqtt: faulty((_, p) => [p, p]) });
  const b = await login(bob);
  await b.connect();
  await b.send({ to: alice, body: 'before' }); // comes by sync, twice
  await a.connect();
  await a.synced();
  for (let i = 0; i < 5; i++) await b.send({ to: alice, body: `m${i}` });
  await waitFor(() => a.got.length >= 6, 5000, 'six');
  await a.send({ to: bob, body: 'flush' }); // its echo comes after all of them
  await waitFor(() => bodies(a).includes('flush'), 5000, 'the echo');
  assert.deepEqual(bodies(a), ['before', 'm0', 'm1', 'm2', 'm3', 'm4', 'flush']);
});

test('malformed events are refused and counted; a forged far-ahead ver is never delivered; the client keeps going', { timeout: 60000 }, async () => {
  const [alice, bob] = [await account('alice'), await account('bob')];
  let injected = false;
  const a = await login(alice, {
    mqtt: faulty((topic, p) => {
      const ev = json(p);
      if (!injected && ev && ev.kind === 'msg' && ev.body === 'real') {
        injected = true;
        const deep = '['.repeat(100) + ']'.repeat(100);
        return [
          'not json', '[1,2]', 'null', `{"kind":"msg","ver":"7","id":"1","from":"${bob}","to":"${alice}"}`,
          `{"kind":"msg","ver":${ev.ver},"id":"x","from":"${bob}","to":"${alice}"}`,
          `{"kind":"msg","ver":${ev.ver},"id":"1","from":"${bob}","to":"${alice}","meta":${deep}}`,
          `{"kind":"msg","ver":${ev.ver},"id":"1","from":"mallory","to":"eve"}`,
          `{"kind":"msg","ver":1000000,"id":"99","from":"${bob}","to":"${alice}","body":"forged"}`,
          Buffer.from([0x1f, 0x8b, 0x08, 0x00, 1, 2, 3]), p,
        ];
      }
      return [p];
    }),
    syncTimeout: 500,
  });
  const b = await login(bob);
  await a.connect();
  await b.connect();
  await a.synced();
  await b.send({ to: alice, body: 'real' });
  await b.send({ to: alice, body: 'next' });
  await waitFor(() => a.got.length >= 2, 5000, 'real and next');
  assert.ok(a.skipped >= 7, `skipped ${a.skipped}`);
  await waitFor(() => a.unconfirmed === 1, 5000, 'the forged one dropped unconfirmed');
  await b.send({ to: alice, body: 'last' });
  await waitFor(() => a.got.length >= 3, 5000, 'last');
  assert.deepEqual(bodies(a), ['real', 'next', 'last']);
  assert.ok(a.cursor().ver < 1000000);
});

test('a malformed sync batch is refused and asked again; a malformed item is skipped and the batch goes on', { timeout: 60000 }, async () => {
  const [alice, bob] = [await account('alice'), await account('bob')];
  const b = await login(bob);
  await b.connect();
  for (let i = 0; i < 4; i++) await b.send({ to: alice, body: `m${i}` });
  let batches = 0;
  const a = await login(alice, {
    compress: false,
    syncTimeout: 300,
    mqtt: faulty((topic, p) => {
      const ev = json(p);
      if (!ev || ev.kind !== 'sync') return [p];
      batches++;
      if (batches === 1) return ['{"kind":"sync","since":"zero","upto":-1,"items":7}'];
      if (batches === 2) return [Buffer.from([0x1f, 0x8b, 0, 0])];
      if (batches === 3) {
        ev.items[1] = { kind: 'msg', ver: ev.items[1].ver, id: 'not-an-id' };
        return [JSON.stringify(ev)];
      }
      return [p];
    }),
  });
  await a.connect();
  await a.synced();
  assert.equal(batches, 3);
  assert.deepEqual(bodies(a), ['m0', 'm2', 'm3']);
  assert.ok(a.skipped >= 3);
  await b.send({ to: alice, body: 'live' });
  await waitFor(() => a.got.length === 4, 5000, 'live after');
});

test('a revoked token: a clear error and status, no reconnect storm; a bad or expired token fails connect()', { timeout: 60000 }, async () => {
  const dave = await account('dave');
  // The send's acks are hidden: it stays pending until the logout, which
  // the server could otherwise process after acking it.
  const d = await login(dave, { mqtt: faulty((topic, p) => (json(p) && json(p).cmid === 'pending-1' ? [] : [p])) });
  const statuses = [];
  d.on('status', (s) => statuses.push(s));
  await d.connect();
  await d.synced();
  const pending = d.send({ to: dave, body: 'never acked', cmid: 'pending-1' });
  await d.api.logout(); // the token is revoked; the server ends the device's connection
  await assert.rejects(pending, (e) => e instanceof ImqttError && e.code === 'unauthorized');
  await waitFor(() => d.state === 'closed', 5000, 'closed');
  const last = statuses.at(-1);
  assert.equal(last.state, 'closed');
  assert.equal(last.error.code, 'unauthorized');
  const n = d.connects;
  assert.ok(n <= 2, `${n} connects`);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(d.connects, n, 'no reconnects after the refusal');
  await assert.rejects(d.connect(), { code: 'unauthorized' });

  const bad = new Client({ server: server.url, user: dave, device: 'd2', token: 'not-a-token', mqtt, minBackoff: 10 });
  clients.push(bad);
  await assert.rejects(bad.connect(), { code: 'unauthorized' });
  assert.equal(bad.connects, 1);

  // An expired token: minted for half a second, used after it.
  const res = await fetch(server.url + '/v1/server/tokens', {
    method: 'POST', headers: { Authorization: 'Bearer ' + SERVER_KEY }, body: JSON.stringify({ user: dave, device: 'd3', ttl: '500ms' }),
  });
  const minted = await res.json();
  assert.equal(res.status, 200, JSON.stringify(minted));
  await waitFor(() => Date.now() > minted.expires_at + 50, 3000, 'the token expired');
  const old = new Client({ server: server.url, user: dave, device: 'd3', token: minted.token, mqtt, minBackoff: 10 });
  clients.push(old);
  await assert.rejects(old.connect(), { code: 'unauthorized' });
  assert.equal(old.connects, 1);
  assert.equal(old.state, 'closed');
});

test('a restart of imqttd mid-send: the send resolves once, with one stored message', { timeout: 60000 }, async () => {
  const [alice, bob] = [await account('alice'), await account('bob')];
  let hideAcks = true;
  let hidden = 0;
  const b = await login(bob, {
    resendInterval: 60000, // only the reconnect resends
    mqtt: faulty((topic, p) => {
      const ev = json(p);
      if (hideAcks && ev && ev.kind === 'ack' && ev.cmid === 'restart-1') {
        hidden++;
        return [];
      }
      return [p];
    }),
  });
  const a = await login(alice);
  await a.connect();
  await b.connect();
  let resolved = 0;
  const sent = b.send({ to: alice, body: 'through a restart', cmid: 'restart-1' }).then((ack) => {
    resolved++;
    return ack;
  });
  await waitFor(() => hidden === 1 && a.got.length === 1, 5000, 'stored, ack lost');
  hideAcks = false;
  await server.restart();
  const ack = await sent;
  assert.equal(resolved, 1);
  assert.equal(ack.id, a.got[0].id);
  const h = await a.history(bob);
  assert.equal(h.messages.filter((m) => m.cmid === 'restart-1').length, 1);
  await a.synced();
  await b.send({ to: alice, body: 'after' });
  await waitFor(() => a.got.length === 2, 10000, 'after the restart');
  assert.deepEqual(bodies(a), ['through a restart', 'after']);
});

test('the rest of the surface: groups, changes, read, conversations, history, media, group events', { timeout: 60000 }, async () => {
  const [alice, bob] = [await account('alice'), await account('bob')];
  const a = await login(alice);
  const b = await login(bob);
  const evs = [];
  a.on('event', (ev) => evs.push(ev));
  await a.connect();
  await b.connect();
  await a.synced();

  // A group: bob creates it with alice in it; alice hears she was added.
  const g = await b.createGroup({ name: 'team', members: [alice] });
  await waitFor(() => evs.some((e) => e.kind === 'group' && e.action === 'added' && e.group === g.id), 5000, 'added');
  assert.deepEqual((await a.listGroups()).groups.map((x) => x.id), [g.id]);
  assert.equal((await a.group(g.id)).count, 2);

  // Media: up, into a message, down again.
  const png = Uint8Array.from(atob('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=='), (c) => c.charCodeAt(0));
  const info = await b.upload(png, { type: 'image/png', name: 'dot.png' });
  assert.equal(info.type, 'image/png');
  const ack = await b.send({ group: g.id, type: 'image', media: info.id });
  await waitFor(() => a.got.some((m) => m.id === ack.id), 5000, 'the image');
  const down = await a.download(info.id);
  assert.deepEqual(down.data, png);

  // Changes, in order with the messages, once each.
  const text = await b.send({ to: alice, body: 'typo' });
  await b.edit(text.id, 'fixed');
  await a.react(text.id, '👍');
  await b.recall(ack.id);
  await waitFor(() => ['edit', 'reaction', 'recall'].every((k) => evs.some((e) => e.kind === k)), 5000, 'the changes');
  assert.equal(evs.filter((e) => e.kind === 'edit').length, 1);
  const h = await a.history(bob);
  assert.equal(h.messages[0].body, 'fixed');
  assert.equal(h.messages[0].reactions['👍'].count, 1);
  assert.equal((await a.groupHistory(g.id)).items.find((m) => m.id === ack.id).recalled, true);

  // Typing: once a second at most per conversation; the peer hears it.
  const typed = [];
  b.on('typing', (t) => typed.push(t));
  assert.equal(a.typing({ peer: bob }), true);
  assert.equal(a.typing({ peer: bob }), false);
  await waitFor(() => typed.length === 1, 5000, 'the typing');
  assert.deepEqual([typed[0].from, typed[0].state], [alice, 'start']);

  // Read and the conversation list.
  const unread = await a.read({ peer: bob });
  assert.equal(unread.count, 0);
  const convs = await a.conversations();
  assert.ok(convs.conversations.some((c) => c.peer === bob));
  await assert.rejects(a.send({ group: 'no-such-group', body: 'x' }), { code: 'not_member' });
  await assert.rejects(a.send({ to: bob, group: g.id, body: 'x' }), { code: 'bad_request' });

  // Disbanded: told once, whatever comes live and from the heads.
  await b.api.disbandGroup(g.id);
  await waitFor(() => evs.some((e) => e.kind === 'group' && e.action === 'disbanded' && e.seq === undefined), 5000, 'disbanded');
  await a.disconnect();
  await a.connect();
  await a.synced();
  assert.equal(evs.filter((e) => e.kind === 'group' && e.action === 'disbanded' && e.seq === undefined).length, 1);
  assert.equal(a.skipped, 0);
});
