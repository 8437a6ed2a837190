// The HTTP API (docs/http.md) with fetch: accounts and sessions, the
// conversation list, history, read, groups, media, contacts, blocks,
// presence, settings and the HTTP forms of the message lifecycle. Browser
// and Node alike: nothing here but fetch, URL, Blob and TextDecoder.

// ImqttError is every refusal the SDK reports: code is the server's
// (docs/protocol.md#error-codes: 'unauthorized', 'not_member', ...) or one
// of the SDK's own ('closed', 'aborted', 'bad_request' for a call refused
// before it was sent); status is the HTTP status where there was one.
export class ImqttError extends Error {
  constructor(code, message, status = 0) {
    super(message || code);
    this.name = 'ImqttError';
    this.code = code;
    this.status = status;
  }
}

// codeForStatus reads a status without a JSON error body (a proxy's page)
// as wire.CodeForStatus does.
export function codeForStatus(status) {
  const codes = { 400: 'bad_request', 401: 'unauthorized', 403: 'forbidden', 404: 'not_found', 408: 'request_timeout', 409: 'exists', 413: 'too_large', 429: 'rate_limited', 502: 'unavailable', 503: 'unavailable', 504: 'unavailable' };
  return codes[status] || 'internal';
}

const enc = encodeURIComponent;

// Api is the HTTP client of one user (a token) or of no one (register and
// login). server is the base URL, "http://127.0.0.1:8080".
export class Api {
  constructor({ server, token = '', fetch: f = globalThis.fetch } = {}) {
    if (typeof server !== 'string' || !/^https?:\/\//.test(server)) throw new ImqttError('bad_request', 'imqtt: server must be an http(s) URL');
    if (typeof f !== 'function') throw new ImqttError('bad_request', 'imqtt: no fetch here; pass one');
    this.server = server.replace(/\/+$/, '');
    this.token = token;
    this.fetch = f;
  }

  url(path, query) {
    const u = new URL(this.server + path);
    for (const [k, v] of Object.entries(query || {})) if (v !== undefined && v !== null && v !== '') u.searchParams.set(k, String(v));
    return u.toString();
  }

  headers(extra) {
    const h = { ...extra };
    if (this.token) h.Authorization = 'Bearer ' + this.token;
    return h;
  }

  // raw sends a request and returns the Response, or throws the ImqttError
  // of a refusal. The token never appears in an error.
  async raw(method, path, { query, body, headers } = {}) {
    let res;
    try {
      res = await this.fetch(this.url(path, query), { method, headers: this.headers(headers), body });
    } catch (e) {
      throw new ImqttError('unavailable', `${method} ${path}: ${e && e.message}`);
    }
    if (res.ok) return res;
    const text = await res.text().catch(() => '');
    let data = null;
    try {
      data = JSON.parse(text);
    } catch {
      // a proxy's page: the status says what it was
    }
    const code = data && typeof data.code === 'string' ? data.code : codeForStatus(res.status);
    const message = data && typeof data.message === 'string' ? data.message : `${method} ${path}: ${res.status}`;
    throw new ImqttError(code, message, res.status);
  }

  // json sends a JSON request and returns the parsed answer (null for 204).
  async json(method, path, body, query) {
    const init = { query };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers = { 'Content-Type': 'application/json' };
    }
    const res = await this.raw(method, path, init);
    if (res.status === 204) return null;
    const text = await res.text();
    if (text === '') return null;
    try {
      return JSON.parse(text);
    } catch {
      throw new ImqttError('internal', `${method} ${path}: the answer is not JSON`, res.status);
    }
  }

  // Accounts and sessions.
  register(user, password) { return this.json('POST', '/v1/users', { user, password }); }
  login(user, password, device) { return this.json('POST', '/v1/sessions', { user, password, device }); }
  logout() { return this.json('DELETE', '/v1/sessions/current'); }
  endpoints() { return this.json('GET', '/v1/endpoints'); }

  // Messages over HTTP (the Client sends over MQTT, with resend until acked).
  sendHTTP(send) { return this.json('POST', '/v1/messages', send); }
  sync({ since = 0, limit, epoch, group } = {}) { return this.json('GET', '/v1/sync', undefined, { since, limit, epoch, group }); }
  heads() { return this.json('GET', '/v1/sync', undefined, { heads: 1 }); }

  // Conversations, history, read.
  conversations() { return this.json('GET', '/v1/conversations'); }
  history(peer, { before, limit } = {}) { return this.json('GET', `/v1/conversations/${enc(peer)}/messages`, undefined, { before, limit }); }
  // groupHistory is a group's log after seq since (GET /v1/sync?group=).
  groupHistory(group, { since = 0, limit } = {}) { return this.sync({ group, since, limit }); }
  read(r) { return this.json('POST', '/v1/read', r); }
  conversationSettings(peer) { return this.json('GET', `/v1/conversations/${enc(peer)}/settings`); }
  setConversationSettings(peer, s) { return this.json('PUT', `/v1/conversations/${enc(peer)}/settings`, s); }
  groupSettings(group) { return this.json('GET', `/v1/groups/${enc(group)}/settings`); }
  setGroupSettings(group, s) { return this.json('PUT', `/v1/groups/${enc(group)}/settings`, s); }
  settings() { return this.json('GET', '/v1/me/settings'); }
  setSettings(s) { return this.json('PUT', '/v1/me/settings', s); }

  // Groups and their administration.
  createGroup({ id, name, members } = {}) { return this.json('POST', '/v1/groups', { id, name, members }); }
  groups() { return this.json('GET', '/v1/groups'); }
  group(id, { after, limit } = {}) { return this.json('GET', `/v1/groups/${enc(id)}`, undefined, { after, limit }); }
  addMembers(id, users, role) { return this.json('POST', `/v1/groups/${enc(id)}/members`, role ? { users, role } : { users }); }
  removeMember(id, user) { return this.json('DELETE', `/v1/groups/${enc(id)}/members/${enc(user)}`); }
  updateGroup(id, patch) { return this.json('PATCH', `/v1/groups/${enc(id)}`, patch); }
  disbandGroup(id) { return this.json('DELETE', `/v1/groups/${enc(id)}`); }
  transferGroup(id, user) { return this.json('POST', `/v1/groups/${enc(id)}/owner`, { user }); }
  muteMember(id, user, until) { return this.json('PUT', `/v1/groups/${enc(id)}/members/${enc(user)}`, { mute_until: until }); }
  groupReads(id, seq, { after, limit } = {}) { return this.json('GET', `/v1/groups/${enc(id)}/messages/${seq}/reads`, undefined, { after, limit }); }

  // Contacts, blocks, presence.
  requestContact(user) { return this.json('POST', '/v1/contacts', { user }); }
  acceptContact(user) { return this.json('POST', `/v1/contacts/${enc(user)}/accept`); }
  removeContact(user) { return this.json('DELETE', `/v1/contacts/${enc(user)}`); }
  contacts({ after, limit } = {}) { return this.json('GET', '/v1/contacts', undefined, { after, limit }); }
  block(user) { return this.json('PUT', `/v1/blocks/${enc(user)}`); }
  unblock(user) { return this.json('DELETE', `/v1/blocks/${enc(user)}`); }
  blocks({ after, limit } = {}) { return this.json('GET', '/v1/blocks', undefined, { after, limit }); }
  presence(users) { return this.json('GET', '/v1/presence', undefined, { users: users.join(',') }); }

  // Media. data is a Blob, an ArrayBuffer or a typed array; type its
  // Content-Type (the server sniffs and refuses a mismatch).
  async upload(data, { type, name, private: priv } = {}) {
    const headers = {};
    if (type) headers['Content-Type'] = type;
    const res = await this.raw('POST', '/v1/media', { body: data, headers, query: { name, private: priv ? 1 : undefined } });
    return res.json();
  }

  // download returns {data: Uint8Array, type}; thumb: the thumbnail.
  async download(id, { thumb = false } = {}) {
    const res = await this.raw('GET', `/v1/media/${enc(id)}${thumb ? '/thumb' : ''}`);
    return { data: new Uint8Array(await res.arrayBuffer()), type: res.headers.get('Content-Type') || '' };
  }
}
