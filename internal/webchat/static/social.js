// imqtt web chat: contacts, blocks, presence, user and conversation
// settings, group administration (docs/http.md#contacts-and-privacy,
// docs/http.md#group-administration, docs/protocol.md). chat.js makes one
// with imqttSocial(page) and calls it from its own paths; the pure helpers
// (imqttGroupLine, imqttLastSeen) are also tested in Node.
'use strict';

// imqttGroupLine is the system line a stored group item ({kind:"group",
// action, from, user, name, notice, avatar, until, muted}) shows in the
// group's log, as plain text.
function imqttGroupLine(ev, me) {
  const who = (u) => (u === me ? 'you' : u);
  const by = ev.from ? who(ev.from) : 'someone';
  switch (ev.action) {
    case 'updated': {
      const parts = [];
      if (typeof ev.name === 'string') parts.push(`renamed the group to “${ev.name}”`);
      if (typeof ev.notice === 'string') parts.push(ev.notice ? 'changed the notice' : 'cleared the notice');
      if (typeof ev.avatar === 'string') parts.push(ev.avatar ? 'changed the avatar' : 'removed the avatar');
      return by + ' ' + (parts.join(', ') || 'changed the group');
    }
    case 'disbanded':
      return by + ' disbanded the group';
    case 'owner':
      return `${by} made ${who(ev.user)} the owner`;
    case 'mute':
      if (ev.until > 0) return `${by} muted ${who(ev.user)} until ${new Date(ev.until).toLocaleString()}`;
      return `${by} unmuted ${who(ev.user)}`;
    case 'mute_all':
      return ev.muted ? by + ' muted the group: only the owner and admins can send' : by + ' unmuted the group';
    case 'added':
      return `${by} added ${who(ev.user)}`;
    case 'removed':
      return ev.user === ev.from ? who(ev.user) + ' left' : `${by} removed ${who(ev.user)}`;
    default:
      return by + ' changed the group';
  }
}

// imqttLastSeen is how a contact's presence reads: "online", "last seen
// 14:02" (today), "last seen 3 Dec 14:02", or "offline" when not known.
function imqttLastSeen(p, now) {
  if (!p) return '';
  if (p.online) return 'online';
  if (!(p.last_seen > 0)) return 'offline';
  const d = new Date(p.last_seen);
  const time = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  if (new Date(now).toDateString() === d.toDateString()) return 'last seen ' + time;
  return 'last seen ' + d.toLocaleDateString([], { day: 'numeric', month: 'short' }) + ' ' + time;
}

// imqttSocial builds the social part of the page. page gives what chat.js
// owns: S (its state, which this extends), api, el, button, row, me,
// renderConvs, renderMessages, openConversation, error (the chat error line).
function imqttSocial(page) {
  const { S, api, el, button, row, me } = page;
  const $ = (sel) => document.querySelector(sel);
  const enc = encodeURIComponent;
  const MUTE_FOR = 8 * 3600 * 1000; // "mute for 8 h"
  const PRESENCE_BATCH = 200; // wire.MaxPresenceUsers
  const PAGE = 1000; // the contact and block lists' largest page
  const MAX_PAGES = 10; // 10,000 contacts, or blocks: the server's caps
  const TTLS = [[0, 'off'], [5, '5 s'], [10, '10 s'], [60, '1 min'], [3600, '1 h'], [86400, '1 day']]; // burn after reading

  Object.assign(S, {
    contacts: new Map(), // user -> {user, state, since}
    presence: new Map(), // user -> {online, last_seen}
    blocks: new Set(), // users I blocked
    settings: null, // my user settings, as the server last said
    groupInfo: new Map(), // group -> wire.Group as GET /v1/groups[/{gid}] last said
    avatars: new Map(), // media ID -> {url}: a group avatar's image as a blob URL ('' until fetched)
    convMenu: false, // the open conversation's menu is shown
    groupPanel: false, // the open group's settings are shown
    disbandAsked: false, // the disband confirmation is shown
    ttl: 0, // burn after reading for the next 1:1 sends (seconds)
    contactsTimer: 0,
    groupsTimer: 0,
  });

  function reset() {
    S.contacts.clear();
    S.presence.clear();
    S.blocks.clear();
    S.blocksLoaded = false;
    S.groupInfo.clear();
    for (const a of S.avatars.values()) if (a.url) URL.revokeObjectURL(a.url);
    S.avatars.clear();
    S.settings = null;
    S.convMenu = S.groupPanel = S.disbandAsked = false;
    clearTimeout(S.contactsTimer);
    clearTimeout(S.groupsTimer);
    $('#settings').hidden = true;
  }

  // load fetches what the page shows besides conversations; each part on
  // its own, so a server without one of the routes still shows the rest.
  function load() {
    loadContacts().catch((e) => showError('#contacts-error', 'contacts', e));
    loadBlocks().catch(() => {});
    loadGroups().catch(() => {});
  }

  function showError(sel, what, e) {
    $(sel).textContent = what + ': ' + (e.code ? `(${e.code}) ` : '') + e.message;
  }

  // all reads a list of users page by page (GET /v1/contacts, /v1/blocks:
  // ?after=&limit=, at most PAGE a page, MAX_PAGES pages: the server's cap
  // of contacts and of blocks).
  async function all(path, field) {
    const rows = [];
    let after = '';
    for (let i = 0; i < MAX_PAGES; i++) {
      const got = (await api('GET', `${path}?limit=${PAGE}` + (after ? '&after=' + enc(after) : '')))[field] || [];
      rows.push(...got);
      if (got.length < PAGE || !got[got.length - 1] || typeof got[got.length - 1].user !== 'string') break;
      after = got[got.length - 1].user;
    }
    return rows;
  }

  // ---- contacts and presence ----
  async function loadContacts() {
    const list = await all('/v1/contacts', 'contacts');
    S.contacts.clear();
    for (const c of list) {
      if (c && typeof c.user === 'string' && typeof c.state === 'string') S.contacts.set(c.user, c);
    }
    renderContacts();
    page.renderConvs();
    await loadPresence();
  }

  // loadPresence asks for the presence of every accepted contact; the
  // events keep it current from then on.
  async function loadPresence() {
    const users = [...S.contacts.values()].filter((c) => c.state === 'accepted').map((c) => c.user);
    for (let i = 0; i < users.length; i += PRESENCE_BATCH) {
      const part = users.slice(i, i + PRESENCE_BATCH);
      const got = await api('GET', '/v1/presence?users=' + part.map(enc).join(','));
      for (const p of got.presence || []) {
        if (p && typeof p.user === 'string') S.presence.set(p.user, { online: p.online === true, last_seen: Number(p.last_seen) || 0 });
      }
    }
    renderContacts();
    page.renderConvs();
    if (S.open) drawHead();
  }

  // soon runs f once a little later for all the events until then.
  function soon(timer, f) {
    clearTimeout(S[timer]);
    S[timer] = setTimeout(() => f().catch(() => {}), 100);
  }

  async function contactAction(method, path, body) {
    $('#contacts-error').textContent = '';
    try {
      await api(method, path, body);
    } catch (e) {
      showError('#contacts-error', 'contacts', e);
    }
    await loadContacts().catch(() => {});
  }

  function presenceDot(user) {
    const p = S.presence.get(user);
    const c = S.contacts.get(user);
    if (!p || !c || c.state !== 'accepted') return null;
    const dot = el('span', 'dot');
    dot.dataset.online = String(p.online);
    dot.title = imqttLastSeen(p, Date.now());
    return dot;
  }

  function renderContacts() {
    const ul = $('#contacts');
    ul.replaceChildren();
    const order = { pending_in: 0, accepted: 1, pending_out: 2 };
    const rows = [...S.contacts.values()].sort((a, b) => (order[a.state] ?? 3) - (order[b.state] ?? 3) || (a.user < b.user ? -1 : 1));
    for (const c of rows) {
      const li = el('li', 'contact');
      li.dataset.user = c.user;
      li.dataset.state = c.state;
      const dot = presenceDot(c.user);
      if (dot) li.append(dot);
      const name = el('span', 'name', c.user);
      name.addEventListener('click', () => page.openConversation(c.user));
      li.append(name);
      const p = S.presence.get(c.user);
      if (c.state === 'accepted') {
        const seen = el('span', 'seen', p ? imqttLastSeen(p, Date.now()) : '');
        li.append(seen);
        li.append(button('c-remove', '✕', 'Remove ' + c.user + ' from contacts', () => contactAction('DELETE', '/v1/contacts/' + enc(c.user))));
      } else if (c.state === 'pending_in') {
        li.append(el('span', 'seen', 'wants to be a contact'));
        li.append(button('c-accept', 'Accept', 'Accept ' + c.user, () => contactAction('POST', '/v1/contacts/' + enc(c.user) + '/accept')));
        li.append(button('c-decline', 'Decline', 'Decline ' + c.user, () => contactAction('DELETE', '/v1/contacts/' + enc(c.user))));
      } else {
        li.append(el('span', 'seen', 'pending'));
        li.append(button('c-cancel', '✕', 'Withdraw the request', () => contactAction('DELETE', '/v1/contacts/' + enc(c.user))));
      }
      ul.append(li);
    }
    $('#contacts-none').hidden = rows.length > 0;
  }

  // ---- blocks ----
  async function loadBlocks() {
    const list = await all('/v1/blocks', 'blocks');
    S.blocks = new Set(list.filter((b) => b && typeof b.user === 'string').map((b) => b.user));
    S.blocksLoaded = true;
    page.renderConvs();
    if (S.open) page.renderMessages();
  }

  async function setBlock(user, blocked) {
    page.error('');
    closeMenu();
    try {
      await api(blocked ? 'PUT' : 'DELETE', '/v1/blocks/' + enc(user));
      if (blocked) S.blocks.add(user);
      else S.blocks.delete(user);
    } catch (e) {
      page.error(`Not ${blocked ? 'blocked' : 'unblocked'} (${e.code}): ${e.message}`);
    }
    page.renderConvs();
    page.renderMessages();
  }

  // closeMenu closes the conversation's menu as soon as a choice in it is
  // made, not when the server has answered: a click on the menu button
  // meanwhile would otherwise reopen a menu that then closes under it.
  function closeMenu() {
    S.convMenu = false;
    if (S.open) drawHead();
  }

  // hidden reports whether m, a message in conversation r, is from a user
  // I blocked in a shared group: shown collapsed. The server marks those
  // it sends (blocked); one shown before the block is hidden here.
  function hidden(r, m) {
    if (!r.group || m.from === me()) return false;
    return S.blocks.has(m.from) || (m.blocked === true && !S.blocksLoaded); // unblocked since: shown
  }

  // ---- groups ----
  async function loadGroups() {
    const list = await api('GET', '/v1/groups');
    for (const g of list.groups || []) {
      if (g && typeof g.id === 'string') S.groupInfo.set(g.id, { ...S.groupInfo.get(g.id), ...g, members: undefined });
    }
    page.renderConvs();
    if (S.open) page.renderMessages(); // the title: a group shows by its name
  }

  async function loadGroup(gid) {
    const g = await api('GET', '/v1/groups/' + enc(gid) + '?limit=0');
    if (g && g.id === gid) S.groupInfo.set(gid, { ...g, members: undefined });
    page.renderConvs();
    if (S.open === '#' + gid) page.renderMessages();
  }

  const info = (gid) => S.groupInfo.get(gid) || { id: gid };
  const gone = (gid) => info(gid).disbanded > 0;
  const admin = (gid) => ['owner', 'admin'].includes(info(gid).role);

  // groupItem applies a stored group item (live or synced, in seq order)
  // to what the page knows of the group; the group's own answer follows.
  function groupItem(ev) {
    const g = { ...info(ev.group) };
    switch (ev.action) {
      case 'updated':
        for (const f of ['name', 'notice', 'avatar']) if (typeof ev[f] === 'string') g[f] = ev[f];
        break;
      case 'disbanded':
        g.disbanded = ev.ts || Date.now();
        break;
      case 'owner':
        g.owner = ev.user;
        if (ev.user === me()) g.role = 'owner';
        else if (ev.from === me()) g.role = 'admin';
        break;
      case 'mute_all':
        g.muted = ev.muted === true;
        break;
    }
    S.groupInfo.set(ev.group, g);
    soon('groupsTimer', loadGroups);
  }

  // groupEvent takes a live membership event with no seq ({kind:"group",
  // group, action}): a disband shows at once.
  function groupEvent(ev) {
    if (ev.action === 'disbanded' && typeof ev.group === 'string') markGone(ev.group);
    soon('groupsTimer', loadGroups);
  }

  // markGone: the server said group gid is disbanded (its live event, a
  // head or sync answer with gone, a group_gone error).
  function markGone(gid) {
    if (gone(gid)) return;
    S.groupInfo.set(gid, { ...info(gid), disbanded: Date.now() });
    page.renderConvs();
    if (S.open === '#' + gid) page.renderMessages();
  }

  async function groupCall(gid, method, path, body, done) {
    const errLine = () => $('#group-error') || { textContent: '' };
    errLine().textContent = '';
    try {
      await api(method, '/v1/groups/' + enc(gid) + path, body);
      if (done) done();
    } catch (e) {
      errLine().textContent = `(${e.code}) ${e.message}`;
      return;
    }
    await loadGroup(gid).catch(() => {});
  }

  function field(label, name, value, type = 'text') {
    const l = el('label', 'g-field');
    l.append(el('span', '', label));
    const input = el(type === 'textarea' ? 'textarea' : 'input');
    input.name = name;
    if (type !== 'textarea') input.type = type;
    input.value = value || '';
    l.append(input);
    return [l, input];
  }

  function drawGroupPanel(gid) {
    const panel = $('#group-panel');
    const g = info(gid);
    panel.hidden = !S.groupPanel;
    // Drawn again only when what it shows changed: not under the typing
    // of a name on every message that arrives.
    const sig = JSON.stringify([gid, g, S.groupPanel, S.disbandAsked]);
    if (panel.dataset.sig === sig) return;
    panel.dataset.sig = sig;
    const keepError = ($('#group-error') || {}).textContent || '';
    const typed = new Map(); // what was typed and not yet sent stays
    for (const f of panel.querySelectorAll('[data-dirty=true]')) typed.set(f.name, f.value);
    panel.replaceChildren();
    if (panel.hidden) return;
    panel.append(el('h3', '', 'Group # ' + gid));
    const facts = el('dl', 'g-facts');
    for (const [k, v] of [['Name', g.name], ['Owner', g.owner], ['Members', g.count], ['Your role', g.role], ['Avatar', g.avatar]]) {
      if (v === undefined || v === '') continue;
      facts.append(el('dt', '', k), el('dd', '', String(v)));
    }
    panel.append(facts);
    if (!gone(gid) && admin(gid)) {
      const [nameL, name] = field('Name', 'name', g.name);
      panel.append(nameL, button('g-rename', 'Rename', 'Rename the group', () => groupCall(gid, 'PATCH', '', { name: name.value })));
      const [noticeL, notice] = field('Notice', 'notice', g.notice, 'textarea');
      panel.append(noticeL, button('g-set-notice', 'Save notice', 'Set the notice', () => groupCall(gid, 'PATCH', '', { notice: notice.value })));
      const [avatarL, avatar] = field('Avatar (a media ID or URL)', 'avatar', g.avatar);
      panel.append(avatarL, button('g-set-avatar', 'Set avatar', 'Set the avatar', () => groupCall(gid, 'PATCH', '', { avatar: avatar.value })));
      const muteAll = button('g-mute-all', g.muted ? 'Unmute the group' : 'Mute the group', 'Only the owner and admins may send', () => groupCall(gid, 'PATCH', '', { muted: !g.muted }));
      panel.append(el('div', 'g-row', ''), muteAll);
      const [memberL, member] = field('Member', 'member', '');
      const [hoursL, hours] = field('Hours (0 unmutes)', 'hours', '1', 'number');
      panel.append(memberL, hoursL, button('g-mute-member', 'Mute member', 'Mute a member', () => {
        const h = Number(hours.value);
        const until = h > 0 ? Date.now() + Math.round(h * 3600 * 1000) : 0;
        groupCall(gid, 'PUT', '/members/' + enc(member.value.trim()), { mute_until: until });
      }));
    }
    if (!gone(gid) && g.role === 'owner') {
      const [toL, to] = field('New owner', 'owner', '');
      panel.append(toL, button('g-transfer', 'Transfer ownership', 'Make a member the owner', () => groupCall(gid, 'POST', '/owner', { user: to.value.trim() })));
      if (!S.disbandAsked) {
        panel.append(button('g-disband', 'Disband…', 'Disband the group', () => {
          S.disbandAsked = true;
          drawGroupPanel(gid);
        }));
      } else {
        const ask = el('div', 'g-confirm');
        ask.append(el('span', '', `Disband # ${gid} for everyone? Nothing more can be sent; members keep its history.`));
        ask.append(button('g-disband-yes', 'Disband', 'Disband now', () => {
          S.disbandAsked = false;
          groupCall(gid, 'DELETE', '', undefined, () => S.groupInfo.set(gid, { ...info(gid), disbanded: Date.now() }));
        }));
        ask.append(button('g-disband-no', 'Keep it', 'Do not disband', () => {
          S.disbandAsked = false;
          drawGroupPanel(gid);
        }));
        panel.append(ask);
        requestAnimationFrame(() => ask.scrollIntoView({ block: 'nearest' }));
      }
    }
    for (const f of panel.querySelectorAll('input, textarea')) {
      if (typed.has(f.name)) {
        f.value = typed.get(f.name);
        f.dataset.dirty = 'true';
      }
      const dirty = () => { f.dataset.dirty = 'true'; };
      f.addEventListener('input', dirty);
      f.addEventListener('change', dirty);
    }
    const err = el('p', 'error', keepError);
    err.id = 'group-error';
    err.setAttribute('role', 'alert');
    panel.append(err);
  }

  // ---- conversation settings (mute, pin) ----
  function convPath(r) {
    return r.group ? '/v1/groups/' + enc(r.group) + '/settings' : '/v1/conversations/' + enc(r.peer) + '/settings';
  }

  function applySettings(r, s) {
    r.settings = { mute: s.mute === true, mute_until: Number(s.mute_until) || 0, pin: s.pin === true };
    r.muted = r.settings.mute || r.settings.mute_until > Date.now();
    r.pinned = r.settings.pin; // a muted conversation's unread stays its own but leaves the total (totalUnread)
  }

  async function putSettings(r, change) {
    page.error('');
    closeMenu();
    try {
      const cur = r.settings || (await api('GET', convPath(r)));
      const next = { mute: cur.mute === true, mute_until: Number(cur.mute_until) || 0, pin: cur.pin === true, ...change };
      applySettings(r, await api('PUT', convPath(r), next));
    } catch (e) {
      page.error(`Settings not saved (${e.code}): ${e.message}`);
    }
    page.renderConvs();
    page.renderMessages();
  }

  // settingsEvent: my settings of a conversation changed (on any device).
  function settingsEvent(ev) {
    const key = typeof ev.group === 'string' && ev.group ? '#' + ev.group : typeof ev.peer === 'string' && ev.peer ? ev.peer : '';
    if (!key) return;
    applySettings(row(key), ev);
    page.renderConvs();
    if (S.open === key) page.renderMessages();
  }

  function drawMenu(r) {
    const menu = $('#conv-menu');
    menu.hidden = !S.convMenu;
    const sig = JSON.stringify([r.key, S.convMenu, S.blocks.has(r.peer), S.contacts.has(r.peer), r.muted, r.pinned]);
    if (menu.dataset.sig === sig) return;
    menu.dataset.sig = sig;
    menu.replaceChildren();
    if (menu.hidden) return;
    if (r.peer) {
      const blocked = S.blocks.has(r.peer);
      menu.append(button('m-block', blocked ? 'Unblock' : 'Block', (blocked ? 'Unblock ' : 'Block ') + r.peer, () => setBlock(r.peer, !blocked)));
      if (!S.contacts.has(r.peer)) menu.append(button('m-contact', 'Add contact', 'Ask ' + r.peer + ' to be a contact', () => contactAction('POST', '/v1/contacts', { user: r.peer })));
    }
    if (r.muted) {
      menu.append(button('m-unmute', 'Unmute', 'Unmute this conversation', () => putSettings(r, { mute: false, mute_until: 0 })));
    } else {
      menu.append(button('m-mute', 'Mute', 'Mute this conversation', () => putSettings(r, { mute: true, mute_until: 0 })));
      menu.append(button('m-mute8', 'Mute 8 h', 'Mute for 8 hours', () => putSettings(r, { mute: false, mute_until: Date.now() + MUTE_FOR })));
      const until = el('input');
      until.type = 'datetime-local';
      until.name = 'mute-until';
      menu.append(until, button('m-mute-until', 'Mute until', 'Mute until the time chosen', () => {
        const t = new Date(until.value).getTime();
        if (t > Date.now()) putSettings(r, { mute: false, mute_until: t });
        else page.error('Pick a time ahead to mute until.');
      }));
    }
    menu.append(button('m-pin', r.pinned ? 'Unpin' : 'Pin', r.pinned ? 'Unpin' : 'Pin to the top', () => putSettings(r, { pin: !r.pinned })));
    if (r.group) {
      menu.append(button('m-group', 'Group settings', 'Name, notice, members', () => {
        S.convMenu = false;
        S.groupPanel = !S.groupPanel;
        S.disbandAsked = false;
        loadGroup(r.group).catch(() => {});
        page.renderMessages();
      }));
    }
  }

  // avatar returns the image of a group avatar that is a media ID, fetched
  // with the session's token (GET /v1/media/{id}) and shown from a blob;
  // null until it came, or for a URL (the page loads nothing from
  // elsewhere: the panel shows it as text).
  function avatar(id) {
    if (!id || !/^[A-Za-z0-9_-]{1,128}$/.test(id)) return null;
    let a = S.avatars.get(id);
    if (!a) {
      S.avatars.set(id, (a = { url: '' }));
      fetch('/v1/media/' + enc(id), { headers: { Authorization: 'Bearer ' + S.session.token } })
        .then((res) => (res.ok && /^image\//.test(res.headers.get('Content-Type') || '') ? res.blob() : null))
        .then((b) => {
          if (!b) return;
          a.url = URL.createObjectURL(b);
          if (S.open) drawHead();
        })
        .catch(() => {});
    }
    if (!a.url) return null;
    const img = el('img', 'g-avatar');
    img.src = a.url;
    img.alt = '';
    return img;
  }

  // drawHead draws what goes with the open conversation's title: presence,
  // the group's name and notice, notes, the menu, the group's panel and the
  // composer's burn-after-reading choice.
  function drawHead() {
    const key = S.open;
    if (!key) return;
    const r = row(key);
    const pres = $('#chat-presence');
    const p = r.peer && S.contacts.get(r.peer) && S.contacts.get(r.peer).state === 'accepted' ? S.presence.get(r.peer) : null;
    pres.hidden = !p;
    pres.textContent = p ? imqttLastSeen(p, Date.now()) : '';
    pres.dataset.online = String(!!(p && p.online));
    $('#conv-menu-btn').hidden = false;
    const g = r.group ? info(r.group) : null;
    const gi = $('#group-info');
    gi.replaceChildren();
    gi.hidden = !g;
    if (g) {
      const img = avatar(g.avatar);
      if (img) gi.append(img);
      gi.append(el('span', 'g-id', '# ' + r.group + (g.count > 0 ? ' · ' + g.count + (g.count === 1 ? ' member' : ' members') : ''))); // the title is its name
      if (g.notice) gi.append(el('span', 'g-notice', g.notice));
      if (g.muted && !gone(r.group)) gi.append(el('span', 'g-muted', 'Only the owner and admins can send.'));
    }
    const note = $('#chat-note');
    note.replaceChildren();
    if (g && gone(r.group)) {
      note.append(el('span', '', 'This group was disbanded. Its history stays readable; nothing more can be sent.'));
      note.dataset.what = 'disbanded';
    } else if (r.peer && S.blocks.has(r.peer)) {
      note.append(el('span', '', 'You blocked ' + r.peer + '.'), button('n-unblock', 'Unblock', 'Unblock ' + r.peer, () => setBlock(r.peer, false)));
      note.dataset.what = 'blocked';
    } else {
      delete note.dataset.what;
    }
    note.hidden = !note.dataset.what;
    const ttl = $('#ttl');
    ttl.hidden = !r.peer;
    drawMenu(r);
    if (r.group) drawGroupPanel(r.group);
    else $('#group-panel').hidden = true;
  }

  // readOnly reports whether nothing can be sent to conversation r.
  const readOnly = (r) => !!r.group && gone(r.group);

  // convMarks adds to a list row what this part shows there.
  function convMarks(li, r) {
    if (r.pinned) {
      li.classList.add('pinned');
      li.dataset.pinned = 'true';
    }
    if (r.muted) {
      li.classList.add('muted');
      li.dataset.muted = 'true';
    }
    const name = li.querySelector('.name');
    if (r.peer) {
      const dot = presenceDot(r.peer);
      if (dot) name.prepend(dot);
      if (S.blocks.has(r.peer)) li.dataset.blocked = 'true';
    } else if (r.group) {
      li.title = '# ' + r.group; // the name is the row's title (chat.js); the ID shows on hover
      if (gone(r.group)) li.dataset.disbanded = 'true';
    }
    if (r.pinned) name.append(el('span', 'mark pin', ' 📌'));
    if (r.muted) name.append(el('span', 'mark mute', ' 🔕'));
  }

  // event takes an unpositioned inbox event of this part; false if not one.
  function event(ev) {
    switch (ev.kind) {
      case 'contact':
        soon('contactsTimer', loadContacts); // which side asked is the list's to say
        return true;
      case 'presence':
        if (typeof ev.user !== 'string' || typeof ev.online !== 'boolean') return true;
        S.presence.set(ev.user, { online: ev.online, last_seen: Number(ev.last_seen) || (ev.online ? 0 : Date.now()) });
        renderContacts();
        page.renderConvs();
        if (S.open) drawHead();
        return true;
      case 'block':
        if (typeof ev.user !== 'string') return true;
        if (ev.blocked === true) S.blocks.add(ev.user);
        else S.blocks.delete(ev.user);
        page.renderConvs();
        if (S.open) page.renderMessages();
        return true;
      case 'settings':
        settingsEvent(ev);
        return true;
    }
    return false;
  }

  // ---- my settings ----
  async function openSettings() {
    const f = $('#settings');
    $('#settings-error').textContent = '';
    // Not editable until the settings are read: a choice made before
    // would be overwritten by what the server says.
    delete f.dataset.loaded;
    f.querySelector('fieldset').disabled = true;
    f.hidden = false;
    try {
      S.settings = await api('GET', '/v1/me/settings');
    } catch (e) {
      showError('#settings-error', 'settings', e);
      return;
    }
    f.accept_from.value = S.settings.accept_from || 'anyone';
    f.presence.value = S.settings.presence || 'contacts';
    f.read_receipts.checked = S.settings.read_receipts !== false;
    f.querySelector('fieldset').disabled = false;
    f.dataset.loaded = '1';
  }

  async function saveSettings() {
    const f = $('#settings');
    $('#settings-error').textContent = '';
    try {
      S.settings = await api('PUT', '/v1/me/settings', { accept_from: f.accept_from.value, presence: f.presence.value, read_receipts: f.read_receipts.checked });
      $('#settings-error').textContent = 'Saved.';
    } catch (e) {
      showError('#settings-error', 'settings', e);
    }
  }

  // ---- wiring ----
  const ttlSel = $('#ttl');
  for (const [v, label] of TTLS) {
    const o = el('option', '', v ? '🔥 ' + label : 'burn: off');
    o.value = String(v);
    ttlSel.append(o);
  }
  ttlSel.addEventListener('change', () => { S.ttl = Number(ttlSel.value) || 0; });
  $('#add-contact').addEventListener('submit', (e) => {
    e.preventDefault();
    const user = e.target.user.value.trim();
    if (user) contactAction('POST', '/v1/contacts', { user });
    e.target.reset();
  });
  $('#conv-menu-btn').addEventListener('click', () => {
    S.convMenu = !S.convMenu;
    const r = S.open && row(S.open);
    if (S.convMenu && r) {
      // The menu shows the settings as the server has them.
      api('GET', convPath(r)).then((s) => { applySettings(r, s); if (S.open === r.key) drawHead(); }).catch(() => {});
    }
    drawHead();
  });
  $('#settings-btn').addEventListener('click', () => openSettings());
  $('#settings-close').addEventListener('click', () => { $('#settings').hidden = true; });
  $('#settings').addEventListener('submit', (e) => {
    e.preventDefault();
    saveSettings();
  });

  // opened: a group's conversation was opened: its facts as they are now.
  const opened = (gid) => loadGroup(gid).catch(() => {});

  return { load, reset, event, groupItem, groupEvent, gone: markGone, hidden, drawHead, convMarks, readOnly, opened };
}

if (typeof module !== 'undefined') module.exports = { imqttGroupLine, imqttLastSeen };
