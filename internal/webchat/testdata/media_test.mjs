// Tests of the web chat's pure media and group helpers (static/media.js,
// static/groups-ui.js). Run by internal/webchat/media_test.go: node --test.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { imqttLinkParts, imqttHumanSize, imqttMediaLabel } = require('../static/media.js');
const { imqttMembers } = require('../static/groups-ui.js');

const links = (text) => imqttLinkParts(text).filter((p) => p.href).map((p) => p.href);

test('imqttLinkParts: http and https URLs become links, the text around stays', () => {
  assert.deepEqual(imqttLinkParts('see https://example.com/a?b=1 now'), [
    { text: 'see ' }, { text: 'https://example.com/a?b=1', href: 'https://example.com/a?b=1' }, { text: ' now' },
  ]);
  assert.deepEqual(links('HTTP://EXAMPLE.COM and http://x.org'), ['http://example.com/', 'http://x.org/']);
  const text = 'a https://a.org, b (https://b.org/x) c https://en.wikipedia.org/wiki/A_(b). d https://d.org/?q=1&r=2!';
  assert.deepEqual(links(text), ['https://a.org/', 'https://b.org/x', 'https://en.wikipedia.org/wiki/A_(b)', 'https://d.org/?q=1&r=2']);
  assert.equal(imqttLinkParts(text).map((p) => p.text).join(''), text, 'every character kept, once');
});

test('imqttLinkParts: other schemes and malformed URLs stay text', () => {
  for (const text of [
    'javascript:alert(1)',
    'JaVaScRiPt:alert(document.cookie)',
    'data:text/html,<script>alert(1)</script>',
    'vbscript:msgbox(1)',
    'file:///etc/passwd',
    'http://',
    'https:// spaced.org',
    'xhttp://glued.org',
    'ftp://files.org/a',
    '<a href="javascript:alert(1)">x</a>',
  ]) {
    assert.deepEqual(imqttLinkParts(text), [{ text }], text);
  }
  // A javascript: URL that hides an http one links only the http one.
  assert.deepEqual(links('javascript:alert(1)//http://x.org'), ['http://x.org/']);
  assert.deepEqual(links('https://ok.org/"onmouseover="alert(1)'), ['https://ok.org/']);
});

test('imqttLinkParts: bounded', () => {
  assert.deepEqual(links('https://' + 'a'.repeat(3000) + '.org'), []);
  const many = Array.from({ length: 80 }, (_, i) => `https://h${i}.org`).join(' ');
  assert.equal(links(many).length, 50);
  assert.equal(imqttLinkParts(many).map((p) => p.text).join(''), many);
  const t0 = Date.now();
  imqttLinkParts('http:// '.repeat(8000)); // 64 KiB of near misses
  assert.ok(Date.now() - t0 < 2000);
});

test('imqttHumanSize', () => {
  assert.equal(imqttHumanSize(812), '812 B');
  assert.equal(imqttHumanSize(3200), '3.1 KiB');
  assert.equal(imqttHumanSize(48213), '47 KiB');
  assert.equal(imqttHumanSize(3.1 * 1024 * 1024), '3.1 MiB');
  assert.equal(imqttHumanSize(undefined), '');
});

test('imqttMembers: the members field', () => {
  assert.deepEqual(imqttMembers(' bob, carol  Dave;bob\n'), { users: ['bob', 'carol', 'Dave'], bad: [] });
  assert.deepEqual(imqttMembers('bob, <b>x</b>, a@b'), { users: ['bob'], bad: ['<b>x</b>', 'a@b'] });
  assert.deepEqual(imqttMembers(''), { users: [], bad: [] });
});

test('imqttMediaLabel: a media message is named as people say it, never by its wire type', () => {
  assert.equal(imqttMediaLabel('image', { name: 'beach.png', w: 640, h: 480 }), 'Photo');
  assert.equal(imqttMediaLabel('video'), 'Video');
  assert.equal(imqttMediaLabel('audio', {}), 'Voice message');
  assert.equal(imqttMediaLabel('audio', { name: 'song.ogg' }), 'Audio: song.ogg');
  assert.equal(imqttMediaLabel('file', { name: ' packing list.txt ', size: 3200 }), 'packing list.txt');
  assert.equal(imqttMediaLabel('file', { name: 42 }), 'File');
  assert.equal(imqttMediaLabel('file', ['x']), 'File');
  assert.equal(imqttMediaLabel('file', { name: '<img src=x onerror=alert(1)>' }), '<img src=x onerror=alert(1)>', 'kept as text');
  assert.equal([...imqttMediaLabel('file', { name: 'a'.repeat(1000) })].length, 200);
  assert.equal(imqttMediaLabel('custom'), 'Message');
  assert.equal(imqttMediaLabel(undefined), 'Message');
});
