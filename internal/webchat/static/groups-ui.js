// imqtt web chat: groups by name, creating a group (docs/http.md#groups),
// and the narrow layout, where the conversation list and the open
// conversation take turns (a back button returns to the list). chat.js
// makes one with imqttGroupsUI(page).
'use strict';

// imqttMembers splits what was typed in the members field ("bob, carol
// dave") into user IDs; a word that is no user ID is returned in bad.
function imqttMembers(text) {
  const users = [];
  const bad = [];
  for (const w of String(text).split(/[\s,;]+/)) {
    if (!w) continue;
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(w)) bad.push(w);
    else if (!users.some((u) => u.toLowerCase() === w.toLowerCase())) users.push(w);
  }
  return { users, bad };
}

// imqttGroupsUI builds this part. page gives S (chat.js's state, with
// social.js's groupInfo), api, el, renderConvs, renderMessages and
// openConversation.
function imqttGroupsUI(page) {
  const { S, api } = page;
  const $ = (sel) => document.querySelector(sel);
  const MAX_MEMBERS = 1000; // a create's members, as the server's add

  // label is how a group is called: its name, or "# id" while it has none.
  function label(gid) {
    const g = S.groupInfo && S.groupInfo.get(gid);
    return g && typeof g.name === 'string' && g.name.trim() ? g.name : '# ' + gid;
  }

  // ---- create a group ----
  function toggleCreate(show) {
    const f = $('#new-group');
    f.hidden = !show;
    $('#new-group-btn').setAttribute('aria-expanded', String(show));
    $('#new-group-error').textContent = '';
    if (show) f.gname.focus();
  }

  async function create(f) {
    const err = $('#new-group-error');
    err.textContent = '';
    const name = f.gname.value.trim();
    const { users, bad } = imqttMembers(f.members.value);
    if (!name) return void (err.textContent = 'Give the group a name.');
    if (bad.length) return void (err.textContent = 'Not a user ID: ' + bad.slice(0, 3).join(', '));
    if (users.length > MAX_MEMBERS) return void (err.textContent = `At most ${MAX_MEMBERS} members at once.`);
    const fields = f.querySelector('fieldset');
    fields.disabled = true;
    try {
      const g = await api('POST', '/v1/groups', { name, members: users });
      if (!g || typeof g.id !== 'string') throw new Error('the server answered without a group');
      S.groupInfo.set(g.id, { ...g, members: undefined });
      f.reset();
      toggleCreate(false);
      page.openConversation('#' + g.id);
    } catch (e) {
      err.textContent = 'Not created' + (e.code ? ` (${e.code})` : '') + ': ' + e.message;
    } finally {
      fields.disabled = false;
    }
  }

  // ---- the narrow layout: the list or the conversation ----
  function opened() {
    $('#app').dataset.view = 'chat';
  }

  // back shows the list; the conversation is closed, so what arrives in it
  // counts as unread again.
  function back() {
    $('#app').dataset.view = 'list';
    S.open = null;
    history.replaceState(null, '', location.pathname + location.search);
    $('#chat-title').textContent = 'Pick a conversation';
    for (const id of ['#composer', '#conv-menu-btn', '#conv-menu', '#group-info', '#group-panel', '#chat-note', '#typing', '#compose-ctx', '#chat-presence']) $(id).hidden = true;
    $('#messages').replaceChildren();
    page.renderConvs();
  }

  $('#new-group-btn').addEventListener('click', () => toggleCreate($('#new-group').hidden));
  $('#new-group-cancel').addEventListener('click', () => toggleCreate(false));
  $('#new-group').addEventListener('submit', (e) => {
    e.preventDefault();
    create(e.target);
  });
  $('#back').addEventListener('click', back);

  return { label, opened, reset: () => { $('#app').dataset.view = 'list'; toggleCreate(false); } };
}

if (typeof module !== 'undefined') module.exports = { imqttMembers };
