// imqtt web chat: what a message shows besides plain text, and attaching a
// file (docs/http.md#media). chat.js makes one with imqttMedia(page) and
// asks it for each message's body; imqttLinkParts and imqttHumanSize are
// pure helpers, also tested in Node (testdata/media_test.mjs).
//
// Media needs the session's token, so nothing is loaded by URL: each image
// and file is fetched with it (GET /v1/media/{id}[/thumb]) and shown from a
// blob: URL (the page's CSP allows img-src blob:). Links are built with DOM
// APIs from the text, never from HTML, and only for http and https.
'use strict';

const IMQTT_MAX_LINKS = 50; // links made in one message; the rest stays text
const IMQTT_MAX_URL = 2048; // a longer "URL" stays text

// imqttLinkParts splits text into its parts: {text} and, for each http(s)
// URL, {text, href} (href as the URL parser writes it). A URL of any other
// scheme (javascript:, data:) is never matched and stays text; so does one
// longer than IMQTT_MAX_URL, one without a host, and any after the
// IMQTT_MAX_LINKS-th. Trailing punctuation is left out of a URL, and so is
// a closing bracket it did not open ("(see https://x.org/a)", but
// "https://en.wikipedia.org/wiki/A_(b)" keeps its own).
function imqttLinkParts(text) {
  const parts = [];
  const re = /\bhttps?:\/\/[^\s<>"]+/gi;
  const trail = /[.,;:!?'*]+$/;
  const pairs = { ')': '(', ']': '[', '}': '{' };
  const count = (s, c) => s.split(c).length - 1;
  let at = 0;
  let links = 0;
  for (let m; links < IMQTT_MAX_LINKS && (m = re.exec(text));) {
    let raw = m[0].replace(trail, '');
    for (let c = raw[raw.length - 1]; pairs[c] && count(raw, c) > count(raw, pairs[c]); c = raw[raw.length - 1]) {
      raw = raw.slice(0, -1).replace(trail, '');
    }
    let url = null;
    try {
      url = raw.length <= IMQTT_MAX_URL ? new URL(raw) : null;
    } catch {
      url = null;
    }
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || !url.hostname) continue;
    if (m.index > at) parts.push({ text: text.slice(at, m.index) });
    parts.push({ text: raw, href: url.href });
    links++;
    at = m.index + raw.length;
    re.lastIndex = at;
  }
  if (at < text.length) parts.push({ text: text.slice(at) });
  return parts;
}

// imqttLinkify returns text as a fragment of text nodes and links, each
// link <a target=_blank rel="noopener noreferrer">, made with DOM APIs.
function imqttLinkify(text) {
  const frag = document.createDocumentFragment();
  for (const p of imqttLinkParts(text)) {
    if (!p.href) {
      frag.append(document.createTextNode(p.text));
      continue;
    }
    const a = document.createElement('a');
    a.href = p.href;
    a.target = '_blank';
    a.rel = 'noopener noreferrer';
    a.textContent = p.text;
    frag.append(a);
  }
  return frag;
}

// imqttHumanSize is a size as people read it: 812 B, 48.2 KiB, 3.1 MiB.
function imqttHumanSize(n) {
  if (!(n >= 0)) return '';
  if (n < 1024) return n + ' B';
  const units = ['KiB', 'MiB', 'GiB'];
  let i = -1;
  do { n /= 1024; i++; } while (n >= 1024 && i < units.length - 1);
  return (n < 10 ? n.toFixed(1) : Math.round(n)) + ' ' + units[i];
}

// imqttMediaLabel is what a list preview or a reply quote says of a
// message with no text: "Photo", "Video", "Voice message" (audio with no
// name: one recorded), "Audio: name", the file's name (meta.name, as the
// sender's page put it), else "File" or "Message". Plain text: shown
// through textContent.
function imqttMediaLabel(type, meta) {
  const n = meta && typeof meta === 'object' && typeof meta.name === 'string' ? [...meta.name.trim()].slice(0, 200).join('') : '';
  switch (type) {
    case 'image': return 'Photo';
    case 'video': return 'Video';
    case 'audio': return n ? 'Audio: ' + n : 'Voice message';
    case 'file': return n || 'File';
  }
  return 'Message';
}

// imqttMedia builds the media part of the page. page gives what chat.js
// owns: S (its state), el, me, send(key, body, extra) and error (the chat
// error line).
function imqttMedia(page) {
  const { S, el } = page;
  const $ = (sel) => document.querySelector(sel);
  const ID = /^m-[a-z2-7]{26}$/; // media.ValidID
  const INLINE_TYPES = new Set(['image/jpeg', 'image/png', 'image/webp', 'image/gif']);
  const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
  const CACHE = 200; // thumbnails kept as blob URLs; the oldest is let go past it
  const PARALLEL = 4; // media fetches at once
  const RETRY = 30000; // a failed fetch is tried again when drawn after this long
  const FALLBACK_MAX = 2 << 20; // an image the server made no thumbnail of is shown in its place up to this size
  const THUMB = 240; // the largest side a thumbnail is drawn at, CSS px
  const MAX_NAME = 200; // characters of a file's name put in meta

  const thumbs = new Map(); // media ID -> {url, state: 'loading' | 'ok' | 'failed' | 'large', at}
  const queue = []; // media IDs waiting for a fetch slot
  let running = 0;
  let viewing = null; // {id, url}: the full view's image
  let upload = null; // {xhr, name}: the upload under way

  const token = () => (S.session ? S.session.token : '');
  const validID = (id) => typeof id === 'string' && ID.test(id);
  const meta = (m) => (m.meta && typeof m.meta === 'object' && !Array.isArray(m.meta) ? m.meta : {});

  // name is what a message's media is called: the name its sender put in
  // meta, else the kind.
  function name(m) {
    const n = meta(m).name;
    return typeof n === 'string' && n.trim() ? [...n].slice(0, MAX_NAME).join('') : m.type === 'image' ? 'image' : m.type + ' ' + m.media.slice(2, 8);
  }

  // get asks for one medium (or its thumbnail) with the session's token.
  async function get(id, thumb) {
    const res = await fetch('/v1/media/' + id + (thumb ? '/thumb' : ''), { headers: { Authorization: 'Bearer ' + token() } });
    if (!res.ok) throw Object.assign(new Error('media: ' + res.status), { status: res.status });
    return res;
  }

  // fetchMedia fetches one medium, whatever it is (a download asked for).
  const fetchMedia = async (id) => (await get(id, false)).blob();

  // fetchImage fetches an image to show, no larger than max bytes (0: any
  // size). The headers are checked before the body is read: a sender who
  // labels a video as an image, or sends one too large to thumbnail, does
  // not make every page that draws the message download it.
  async function fetchImage(id, thumb, max) {
    const res = await get(id, thumb);
    const size = Number(res.headers.get('Content-Length'));
    let why = '';
    if (!/^image\//.test(res.headers.get('Content-Type') || '')) why = 'not an image';
    else if (max > 0 && !(size <= max)) why = 'large';
    if (why) {
      res.body?.cancel().catch(() => {});
      throw Object.assign(new Error(why), { why });
    }
    return res.blob();
  }

  // ---- thumbnails ----
  function wantThumb(id) {
    let t = thumbs.get(id);
    if (t && (t.state !== 'failed' || Date.now() - t.at < RETRY)) return t; // 'large' waits for a tap, not a retry
    if (t) thumbs.delete(id);
    t = { url: '', state: 'loading', at: Date.now() };
    thumbs.set(id, t);
    while (thumbs.size > CACHE) {
      const [old, o] = thumbs.entries().next().value;
      if (o.url) URL.revokeObjectURL(o.url);
      thumbs.delete(old);
    }
    queue.push(id);
    pump();
    return t;
  }

  function pump() {
    while (running < PARALLEL && queue.length) {
      const id = queue.shift();
      const t = thumbs.get(id);
      if (!t || t.state !== 'loading') continue;
      running++;
      loadThumb(id, t).finally(() => {
        running--;
        pump();
      });
    }
  }

  // loadThumb fetches the thumbnail, or the image itself when the server
  // made none (an image it could not decode, or too large to) and it is
  // small (FALLBACK_MAX); a larger one waits for a tap on it.
  async function loadThumb(id, t) {
    let blob;
    try {
      blob = await fetchImage(id, true, 0);
    } catch (e) {
      try {
        if (e.status !== 404) throw e;
        blob = await fetchImage(id, false, FALLBACK_MAX);
      } catch (e) {
        const state = e.why === 'large' ? 'large' : 'failed';
        Object.assign(t, { state, at: Date.now() });
        for (const img of shown(id)) img.closest('.thumb').dataset.state = state;
        return;
      }
    }
    if (thumbs.get(id) !== t) {
      Object.assign(t, { state: 'failed', at: Date.now() });
      return;
    }
    t.url = URL.createObjectURL(blob);
    t.state = 'ok';
    for (const img of shown(id)) {
      img.src = t.url;
      img.closest('.thumb').dataset.state = 'ok';
    }
  }

  // shown lists the images of id the page shows now (the list is drawn
  // again on every event: the fetch that ends finds today's nodes).
  const shown = (id) => [...document.querySelectorAll('#messages img.thumb-img')].filter((img) => img.dataset.media === id);

  // inline is the small preview an event may carry (docs/protocol.md#msg),
  // as a data: URL, or ''.
  function inline(m) {
    const x = m.inline;
    if (!x || typeof x !== 'object' || !INLINE_TYPES.has(x.type) || typeof x.data !== 'string') return '';
    if (x.data.length > 16384 || !BASE64.test(x.data)) return '';
    return 'data:' + x.type + ';base64,' + x.data;
  }

  function thumb(m) {
    const b = el('button', 'thumb');
    b.type = 'button';
    b.title = 'Open ' + name(m);
    const img = el('img', 'thumb-img');
    img.alt = name(m);
    img.dataset.media = m.media;
    const w = Number(meta(m).w), h = Number(meta(m).h);
    if (w > 0 && h > 0) { // room kept before the image comes: the list does not jump
      const k = Math.min(1, THUMB / Math.max(w, h));
      img.width = Math.max(1, Math.round(w * k));
      img.height = Math.max(1, Math.round(h * k));
    }
    const t = wantThumb(m.media);
    b.dataset.state = t.state;
    if (t.url) img.src = t.url;
    else if (inline(m)) img.src = inline(m);
    b.append(img);
    b.addEventListener('click', (e) => {
      e.stopPropagation();
      view(m);
    });
    return b;
  }

  // ---- the full view ----
  function view(m) {
    close();
    const box = $('#viewer');
    const img = $('#viewer-img');
    const t = thumbs.get(m.media);
    if (t && t.url) img.src = t.url; // the thumbnail until the image comes
    else img.removeAttribute('src');
    img.alt = name(m);
    $('#viewer-name').textContent = name(m);
    box.dataset.state = 'loading';
    box.dataset.media = m.media;
    box.hidden = false;
    const v = (viewing = { id: m.media, url: '' });
    fetchImage(m.media, false, 0).then((blob) => {
      if (viewing !== v) return;
      v.url = URL.createObjectURL(blob);
      img.src = v.url;
      box.dataset.state = 'ok';
    }).catch(() => {
      if (viewing === v) box.dataset.state = 'failed';
    });
    $('#viewer-close').focus();
  }

  function close() {
    const box = $('#viewer');
    if (viewing && viewing.url) URL.revokeObjectURL(viewing.url);
    viewing = null;
    box.hidden = true;
    $('#viewer-img').removeAttribute('src');
    delete box.dataset.media;
  }

  // ---- files: a named link that fetches with the token, then saves ----
  function fileLink(m) {
    const a = el('a', 'file');
    const n = name(m);
    const size = Number(meta(m).size);
    const ext = /\.([A-Za-z0-9]{1,4})$/.exec(n);
    a.append(el('span', 'file-icon', ext ? ext[1].toUpperCase() : m.type.toUpperCase().slice(0, 4))); // no emoji: not every system has the font
    a.append(el('span', 'file-name', n));
    if (size > 0) a.append(el('span', 'file-size', imqttHumanSize(size)));
    a.href = '#';
    a.title = 'Download ' + n;
    a.dataset.media = m.media;
    a.addEventListener('click', (e) => {
      e.preventDefault();
      e.stopPropagation();
      if (a.dataset.state === 'loading') return;
      a.dataset.state = 'loading';
      fetchMedia(m.media).then((blob) => {
        const url = URL.createObjectURL(blob);
        const save = document.createElement('a');
        save.href = url;
        save.download = n;
        save.rel = 'noopener';
        document.body.append(save);
        save.click();
        save.remove();
        setTimeout(() => URL.revokeObjectURL(url), 60000);
        a.dataset.state = 'ok';
      }).catch((err) => {
        a.dataset.state = 'failed';
        page.error('Download failed: ' + err.message);
      });
    });
    return a;
  }

  // body is the .body of message m: its media, then its text with links.
  function body(m) {
    const div = el('div', 'body');
    const text = typeof m.body === 'string' ? m.body : '';
    if (validID(m.media)) {
      if (m.type === 'image') div.append(thumb(m));
      else div.append(fileLink(m));
      if (text) div.append(el('div', 'caption'));
    }
    const at = div.querySelector('.caption') || div;
    if (text) at.append(imqttLinkify(text));
    else if (!div.firstChild) div.textContent = '[' + m.type + ']';
    return div;
  }

  // ---- attach: upload with progress, then send with the media ID ----
  const KINDS = ['image', 'audio', 'video'];
  const kindOf = (type) => KINDS.find((k) => typeof type === 'string' && type.startsWith(k + '/')) || 'file';

  function attach(file) {
    const key = S.open;
    if (!key || !file || upload) return;
    page.error('');
    const xhr = new XMLHttpRequest();
    upload = { xhr, name: file.name };
    drawUpload(0);
    xhr.open('POST', '/v1/media?name=' + encodeURIComponent(file.name));
    xhr.setRequestHeader('Authorization', 'Bearer ' + token());
    if (file.type) xhr.setRequestHeader('Content-Type', file.type); // checked against the bytes: a lie is type_mismatch
    xhr.responseType = 'json';
    xhr.upload.addEventListener('progress', (e) => e.lengthComputable && drawUpload(e.loaded / e.total));
    const done = (why) => {
      upload = null;
      drawUpload(-1);
      if (why) page.error(`Not sent: ${file.name}: ${why}`);
    };
    xhr.addEventListener('load', () => {
      const r = xhr.response || {};
      if (xhr.status !== 201 || !validID(r.id)) return done(r.code ? `(${r.code}) ${r.message || ''}` : 'upload failed (' + xhr.status + ')');
      done('');
      const text = $('#composer').text.value;
      const info = { name: [...(r.name || file.name)].slice(0, MAX_NAME).join(''), size: r.size };
      if (r.width > 0 && r.height > 0) Object.assign(info, { w: r.width, h: r.height });
      page.send(key, text, { type: kindOf(r.type), media: r.id, meta: info });
      $('#composer').text.value = '';
    });
    xhr.addEventListener('error', () => done('the upload failed; try again'));
    xhr.addEventListener('abort', () => done(''));
    xhr.send(file);
  }

  function drawUpload(part) {
    const box = $('#upload');
    box.hidden = part < 0;
    $('#attach-btn').disabled = part >= 0;
    if (part < 0) return;
    $('#upload-what').textContent = 'Uploading ' + upload.name;
    $('#upload-progress').value = part;
    box.dataset.done = String(Math.round(part * 100));
  }

  function reset() {
    close();
    if (upload) upload.xhr.abort();
    for (const t of thumbs.values()) if (t.url) URL.revokeObjectURL(t.url);
    thumbs.clear();
    queue.length = 0;
  }

  // ---- wiring ----
  $('#viewer').addEventListener('click', close);
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && !$('#viewer').hidden) close();
  });
  $('#attach-btn').addEventListener('click', () => $('#attach').click());
  $('#attach').addEventListener('change', (e) => {
    const f = e.target.files && e.target.files[0];
    e.target.value = ''; // the same file may be chosen again
    attach(f);
  });
  $('#upload-cancel').addEventListener('click', () => upload && upload.xhr.abort());

  return { body, reset };
}

if (typeof module !== 'undefined') module.exports = { imqttLinkParts, imqttHumanSize, imqttMediaLabel };
