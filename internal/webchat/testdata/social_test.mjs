// Tests of the web chat's social helpers (static/social.js) and of how the
// SDK's checks (sdk/js/src/check.js) take the group administration items
// the page shows. Run by internal/webchat/social_test.go: node --test.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { imqttGroupLine, imqttLastSeen } = require('../static/social.js');
import { checkEvent as imqttCheckEvent } from '../../../sdk/js/src/check.js';

test('imqttGroupLine: each administration record as a system line', () => {
  const g = { kind: 'group', group: 'g1', seq: 4, from: 'alice' };
  const lines = [
    [{ action: 'updated', name: 'Friends' }, 'alice renamed the group to “Friends”'],
    [{ action: 'updated', notice: 'be nice', avatar: '' }, 'alice changed the notice, removed the avatar'],
    [{ action: 'updated', notice: '' }, 'alice cleared the notice'],
    [{ action: 'disbanded' }, 'alice disbanded the group'],
    [{ action: 'owner', user: 'bob' }, 'alice made bob the owner'],
    [{ action: 'owner', user: 'carol' }, 'alice made you the owner'],
    [{ action: 'mute', user: 'bob', until: 0 }, 'alice unmuted bob'],
    [{ action: 'mute_all', muted: true }, 'alice muted the group: only the owner and admins can send'],
    [{ action: 'mute_all', muted: false }, 'alice unmuted the group'],
    [{ action: 'added', user: 'bob' }, 'alice added bob'],
    [{ action: 'removed', user: 'alice' }, 'alice left'],
    [{ action: 'removed', user: 'bob' }, 'alice removed bob'],
    [{ action: 'something new' }, 'alice changed the group'],
  ];
  for (const [ev, want] of lines) assert.equal(imqttGroupLine({ ...g, ...ev }, 'carol'), want, JSON.stringify(ev));
  assert.match(imqttGroupLine({ ...g, action: 'mute', user: 'bob', until: Date.UTC(2030, 0, 1) }, 'carol'), /^alice muted bob until .*2030/);
  assert.equal(imqttGroupLine({ ...g, action: 'updated', name: 'x' }, 'alice'), 'you renamed the group to “x”');
});

test('imqttLastSeen: online, last seen, unknown', () => {
  const now = Date.UTC(2026, 11, 7, 12, 0);
  assert.equal(imqttLastSeen(undefined, now), '');
  assert.equal(imqttLastSeen({ online: true, last_seen: 0 }, now), 'online');
  assert.equal(imqttLastSeen({ online: false, last_seen: 0 }, now), 'offline');
  assert.match(imqttLastSeen({ online: false, last_seen: now - 60000 }, now), /^last seen \d/);
  assert.match(imqttLastSeen({ online: false, last_seen: now - 5 * 86400000 }, now), /^last seen \S+ \S+/);
});

test('imqttCheckEvent: group administration items and events', () => {
  const good = [
    { kind: 'group', group: 'g1', action: 'added', by: 'alice' }, // live membership event: no position
    { kind: 'group', group: 'g1', seq: 3, action: 'updated', from: 'alice', name: 'n', notice: '', avatar: 'm1' },
    { kind: 'group', group: 'g1', seq: 4, action: 'mute', from: 'alice', user: 'bob', until: 1764300000000 },
    { kind: 'group', group: 'g1', seq: 5, action: 'mute_all', from: 'alice', muted: true },
    { kind: 'contact', action: 'request', user: 'bob' },
    { kind: 'presence', user: 'bob', online: true },
    { kind: 'block', user: 'bob', blocked: true },
    { kind: 'settings', peer: 'bob', mute: true, mute_until: 0, pin: false },
  ];
  for (const ev of good) assert.equal(imqttCheckEvent(ev, 'carol'), '', JSON.stringify(ev));
  const bad = [
    [{ kind: 'group', group: 'g1', seq: 0, action: 'updated' }, 'seq 0'],
    [{ kind: 'group', group: '', seq: 3, action: 'updated' }, 'no group'],
    [{ kind: 'group', seq: 3, action: 'updated' }, 'no group at all'],
    [{ kind: 'group', group: 'g1', seq: 3 }, 'no action'],
    [{ kind: 'group', group: 'g1', seq: 3, action: 'updated', name: 5 }, 'number name'],
    [{ kind: 'group', group: 'g1', seq: 3, action: 'mute', until: 'soon' }, 'string until'],
    [{ kind: 'group', group: 'g1', seq: 3, action: 'mute_all', muted: 'yes' }, 'string muted'],
  ];
  for (const [ev, why] of bad) assert.notEqual(imqttCheckEvent(ev, 'carol'), '', why);
});
