// Types of the imqtt SDK (hand-written: the package is plain ES modules
// with no build step). The payloads are docs/protocol.md's; fields the
// server may add later pass through as they come.

export type ErrorCode =
  | 'bad_request' | 'bad_type' | 'missing_to' | 'missing_cmid' | 'too_large' | 'no_such_user' | 'not_member'
  | 'unauthorized' | 'forbidden' | 'exists' | 'group_full' | 'too_many_groups' | 'not_found' | 'unavailable'
  | 'busy' | 'rate_limited' | 'request_timeout' | 'rejected' | 'not_allowed' | 'too_late' | 'blocked'
  | 'not_contact' | 'muted' | 'group_gone' | 'signup_closed' | 'type_mismatch' | 'internal' | 'closed' | 'aborted'
  | (string & {});

export class ImqttError extends Error {
  constructor(code: ErrorCode, message?: string, status?: number);
  readonly code: ErrorCode;
  /** The HTTP status, where there was one (else 0). */
  readonly status: number;
}

export type MessageType = 'text' | 'image' | 'audio' | 'video' | 'file' | 'custom';

export interface Quote { from: string; type?: string; body?: string; recalled?: boolean }
export interface Reactions { [emoji: string]: { count: number; users: string[] } }

/** A message: 1:1 (ver, to) or in a group (group, seq). */
export interface Msg {
  kind: 'msg';
  id: string;
  from: string;
  to?: string;
  group?: string;
  ver?: number;
  seq?: number;
  type: MessageType | string;
  body?: string;
  media?: string;
  meta?: Record<string, unknown>;
  ts: number;
  cmid?: string;
  inline?: { type: string; data: string };
  mentions?: string[];
  reply_to?: string;
  quote?: Quote;
  reactions?: Reactions;
  recalled?: boolean;
  expired?: boolean;
  edited?: number;
  ttl?: number;
  blocked?: boolean;
}

export interface Ack { kind: 'ack'; cmid: string; id: string; ver: number; ts: number; group?: string; seq?: number }

export interface Recall { kind: 'recall'; id: string; ver?: number; group?: string; seq?: number; by?: string; ts?: number; expired?: boolean }
export interface Edit { kind: 'edit'; id: string; ver?: number; group?: string; seq?: number; body?: string; meta?: Record<string, unknown>; edited?: number }
export interface Reaction { kind: 'reaction'; id: string; ver?: number; group?: string; seq?: number; from: string; emoji: string; op: 'add' | 'remove' }
export interface Delete { kind: 'delete'; ver: number; ids?: string[]; peer?: string }
export interface Receipt { kind: 'receipt'; peer: string; upto: string; ts?: number }
export interface Typing { kind: 'typing'; from: string; peer?: string; group?: string; state: 'start' | 'stop' }
export interface Unread { kind: 'unread'; total: number; count: number; peer?: string; group?: string }
/** A membership event (no seq; 'left' and 'disbanded' may come from the SDK), or a stored change of a group (with seq). */
export interface GroupEvent {
  kind: 'group'; group: string; action: 'added' | 'removed' | 'disbanded' | 'left' | 'updated' | 'mute_all' | 'mute' | 'owner' | (string & {});
  by?: string; from?: string; id?: string; seq?: number; ts?: number;
  name?: string; notice?: string; avatar?: string; muted?: boolean; user?: string; until?: number;
}
export interface Settings { kind: 'settings'; peer?: string; group?: string; mute: boolean; mute_until: number; pin: boolean }
export interface Contact { kind: 'contact'; action: 'request' | 'accepted' | 'removed' | (string & {}); user: string; since?: number }
export interface Block { kind: 'block'; user: string; blocked: boolean }
export interface Presence { kind: 'presence'; user: string; online: boolean; last_seen?: number }
export interface Notice { kind: 'notice'; text: string; ts: number }

export type Event = Msg | Recall | Edit | Reaction | Delete | Receipt | Typing | Unread | GroupEvent | Settings | Contact | Block | Presence | Notice | { kind: string; [k: string]: unknown };

export interface EventMap {
  message: Msg; msg: Msg; recall: Recall; edit: Edit; reaction: Reaction; delete: Delete; receipt: Receipt;
  typing: Typing; unread: Unread; group: GroupEvent; settings: Settings; contact: Contact; block: Block;
  presence: Presence; notice: Notice; event: Event;
  /** A sync reset: the history that stream's cursor came from is gone; drop what you keep of it. */
  reset: { group?: string; since: number; epoch: string };
  status: Status;
  /** The heads answer (docs/protocol.md#heads), after the SDK took it: which groups the user is in, as the server says. */
  heads: { kind: 'heads'; groups: { group: string; seq: number; join: number; read: number; gone?: boolean }[] };
}

export interface Status {
  state: 'connecting' | 'syncing' | 'online' | 'offline' | 'closed';
  /** Set when the client stopped for good (a refused token: code 'unauthorized'). */
  error?: ImqttError;
  /** 'taken_over': the server disconnected this device because it connected elsewhere (it reconnects unless you disconnect()). */
  reason?: 'taken_over';
}

/** Where a client keeps its place: the inbox's ver and each group's seq, with their epochs. */
export interface Cursor {
  ver: number;
  epoch: string;
  groups: Record<string, { seq: number; epoch: string; gone?: boolean }>;
  [k: string]: unknown;
}

export interface CursorStore {
  load(): Cursor | null | Promise<Cursor | null>;
  save(cursor: Cursor): void | Promise<void>;
}

export class MemoryCursor implements CursorStore {
  constructor(initial?: Cursor);
  load(): Cursor | null;
  save(cursor: Cursor): void;
}

export class LocalStorageCursor implements CursorStore {
  constructor(key: string, storage?: { getItem(k: string): string | null; setItem(k: string, v: string): void });
  load(): Cursor | null;
  save(cursor: Cursor): void;
}

export function emptyCursor(): Cursor;
export function normalCursor(c: unknown): Cursor;

/** An MQTT implementation: the `mqtt` package (MQTT.js) or its browser build's global. */
export interface MqttImpl { connect(url: string, opts: object): unknown }

/** The tuning options take their default where not a positive number (0, null, NaN, a negative). */
export interface ClientOptions {
  /** HTTP base URL of imqttd, "http://127.0.0.1:8080". */
  server: string;
  user: string;
  /** Default "default". */
  device?: string;
  token: string;
  /** MQTT.js; default globalThis.mqtt, else import('mqtt'). */
  mqtt?: MqttImpl;
  /** Default: server's ws(s)://host/mqtt. */
  mqttUrl?: string;
  /** Default: a MemoryCursor (a new process syncs the whole inbox). */
  cursor?: CursorStore;
  fetch?: typeof fetch;
  /** Items per sync request (5000). */
  syncLimit?: number;
  /** Ask for gzip sync replies where DecompressionStream exists (true). */
  compress?: boolean;
  /** ms between resends of an unacked send (3000). */
  resendInterval?: number;
  /** ms before an unanswered sync is asked again (10000). */
  syncTimeout?: number;
  /** ms between syncs without a sign of a gap (300000; 0 or negative: off). */
  resyncInterval?: number;
  /** Reconnect backoff in ms: min (250) doubled per failure up to max (30000, at least min), jittered. */
  minBackoff?: number;
  maxBackoff?: number;
  /** MQTT keepalive in seconds (30). */
  keepalive?: number;
  /** Called with what the client skipped, retried or refused; never a token or a body. */
  log?: (level: 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;
}

export interface Send {
  to?: string;
  group?: string;
  /** Default 'text'. */
  type?: MessageType;
  body?: string;
  media?: string;
  meta?: Record<string, unknown>;
  reply_to?: string;
  mentions?: string[];
  ttl?: number;
  /** Default: a random one. The same cmid is stored once. */
  cmid?: string;
}

export interface ConversationRow { peer?: string; group?: string; last?: Msg; unread: number; muted?: boolean; pinned?: boolean; mentioned?: boolean; peer_read?: string }
export interface Group {
  id: string; name?: string; owner: string; created: number; count: number; role?: string; seq: number;
  notice?: string; avatar?: string; muted?: boolean; disbanded?: number;
  members?: { user: string; role: string; join_seq: number; mute_until?: number }[];
}
export interface SyncBatch { kind: 'sync'; since: number; upto: number; more: boolean; epoch: string; reset?: boolean; group?: string; gone?: boolean; items: Event[] }
export interface Session { token: string; expires_at: number; user: string; display?: string; device: string }
export interface MediaInfo { id: string; size: number; type: string; sha256: string; name?: string; width?: number; height?: number; thumb?: boolean; hls?: boolean }

export class Api {
  constructor(opts: { server: string; token?: string; fetch?: typeof fetch });
  readonly server: string;
  token: string;
  register(user: string, password: string): Promise<{ user: string; display: string }>;
  login(user: string, password: string, device?: string): Promise<Session>;
  logout(): Promise<null>;
  endpoints(): Promise<{ endpoints: { node: string; mqtt: string; ws: string; load: number }[] }>;
  sendHTTP(send: Send & { cmid: string }): Promise<Ack>;
  sync(req?: { since?: number; limit?: number; epoch?: string; group?: string }): Promise<SyncBatch>;
  heads(): Promise<{ kind: 'heads'; groups: { group: string; seq: number; join: number; read: number; gone?: boolean }[] }>;
  conversations(): Promise<{ total_unread: number; conversations: ConversationRow[] }>;
  history(peer: string, opts?: { before?: string; limit?: number }): Promise<{ messages: Msg[] }>;
  groupHistory(group: string, opts?: { since?: number; limit?: number }): Promise<SyncBatch>;
  read(r: { peer: string; upto?: string } | { group: string; seq?: number }): Promise<Unread>;
  conversationSettings(peer: string): Promise<Omit<Settings, 'kind'>>;
  setConversationSettings(peer: string, s: Partial<Omit<Settings, 'kind'>>): Promise<Omit<Settings, 'kind'>>;
  groupSettings(group: string): Promise<Omit<Settings, 'kind'>>;
  setGroupSettings(group: string, s: Partial<Omit<Settings, 'kind'>>): Promise<Omit<Settings, 'kind'>>;
  settings(): Promise<{ read_receipts: boolean; accept_from: string; presence: string }>;
  setSettings(s: { read_receipts?: boolean; accept_from?: 'anyone' | 'contacts'; presence?: 'contacts' | 'nobody' }): Promise<{ read_receipts: boolean; accept_from: string; presence: string }>;
  createGroup(g: { id?: string; name?: string; members?: string[] }): Promise<Group>;
  groups(): Promise<{ groups: Group[] }>;
  group(id: string, opts?: { after?: string; limit?: number }): Promise<Group>;
  addMembers(id: string, users: string[], role?: 'admin'): Promise<Group>;
  removeMember(id: string, user: string): Promise<null>;
  updateGroup(id: string, patch: { name?: string; notice?: string; avatar?: string; muted?: boolean }): Promise<Group>;
  disbandGroup(id: string): Promise<null>;
  transferGroup(id: string, user: string): Promise<Group>;
  muteMember(id: string, user: string, until: number): Promise<unknown>;
  groupReads(id: string, seq: number, opts?: { after?: string; limit?: number }): Promise<{ read: number; unread: number; users: string[] }>;
  requestContact(user: string): Promise<{ user: string; state: string; since: number }>;
  acceptContact(user: string): Promise<{ user: string; state: string; since: number }>;
  removeContact(user: string): Promise<null>;
  contacts(opts?: { after?: string; limit?: number }): Promise<{ contacts: { user: string; state: string; since: number }[] }>;
  block(user: string): Promise<{ user: string; since: number }>;
  unblock(user: string): Promise<null>;
  blocks(opts?: { after?: string; limit?: number }): Promise<{ blocks: { user: string; since: number }[] }>;
  presence(users: string[]): Promise<{ presence: { user: string; online: boolean; last_seen: number }[] }>;
  upload(data: Blob | ArrayBuffer | ArrayBufferView, opts?: { type?: string; name?: string; private?: boolean }): Promise<MediaInfo>;
  download(id: string, opts?: { thumb?: boolean }): Promise<{ data: Uint8Array; type: string }>;
}

export class Client {
  /** Opens a session (POST /v1/sessions) and returns a client for it (not yet connected). */
  static login(opts: Omit<ClientOptions, 'token' | 'user' | 'device'> & { user: string; password: string; device?: string }): Promise<Client>;
  /** Creates an account (POST /v1/users). */
  static register(opts: { server: string; user: string; password: string; fetch?: typeof fetch }): Promise<{ user: string; display: string }>;
  constructor(opts: ClientOptions);

  /** The HTTP API as this user. */
  readonly api: Api;
  /** The canonical (lower-case) user ID. */
  readonly user: string;
  readonly device: string;
  readonly state: Status['state'];
  /** Events, items, batches the client could not use and skipped. */
  readonly skipped: number;
  /** Live events dropped because no sync confirmed them. */
  readonly unconfirmed: number;
  /** Group syncs and heads requests sent. */
  readonly groupRequests: number;

  on<K extends keyof EventMap>(kind: K, fn: (ev: EventMap[K], info?: { synced: boolean }) => void): () => void;
  on(kind: string, fn: (ev: Event, info?: { synced: boolean }) => void): () => void;

  /** Resolves once connected and subscribed; rejects when the server refuses the credentials. Reconnects by itself until disconnect() or close(). */
  connect(): Promise<void>;
  /** Resolves when the inbox and every group have caught up since the latest connect. */
  synced(): Promise<void>;
  cursor(): Cursor | null;
  /**
   * Resolves with the ack once stored; resent with the same cmid until then. An abort of
   * opts.signal stops the resends and rejects with code 'aborted': a copy sent before may
   * still have reached the server and be stored (send again with the same cmid to find out).
   */
  send(m: Send, opts?: { signal?: AbortSignal }): Promise<Ack>;
  recall(id: string, opts?: { cmid?: string; signal?: AbortSignal }): Promise<Ack>;
  edit(id: string, body: string, opts?: { meta?: Record<string, unknown>; cmid?: string; signal?: AbortSignal }): Promise<Ack>;
  react(id: string, emoji: string, opts?: { cmid?: string; signal?: AbortSignal }): Promise<Ack>;
  unreact(id: string, emoji: string, opts?: { cmid?: string; signal?: AbortSignal }): Promise<Ack>;
  deleteMessages(ids: string[], opts?: { cmid?: string; signal?: AbortSignal }): Promise<Ack>;
  clearConversation(peer: string, opts?: { cmid?: string; signal?: AbortSignal }): Promise<Ack>;
  /** Sent once at QoS 0 while connected; returns whether it was. */
  typing(t: { peer?: string; group?: string; state?: 'start' | 'stop' }): boolean;
  read(r: { peer: string; upto?: string } | { group: string; seq?: number }): Promise<Unread>;
  conversations(): Promise<{ total_unread: number; conversations: ConversationRow[] }>;
  history(peer: string, opts?: { before?: string; limit?: number }): Promise<{ messages: Msg[] }>;
  groupHistory(group: string, opts?: { since?: number; limit?: number }): Promise<SyncBatch>;
  createGroup(g: { id?: string; name?: string; members?: string[] }): Promise<Group>;
  listGroups(): Promise<{ groups: Group[] }>;
  group(id: string, opts?: { after?: string; limit?: number }): Promise<Group>;
  addMembers(id: string, users: string[], role?: 'admin'): Promise<Group>;
  removeMember(id: string, user: string): Promise<null>;
  leaveGroup(id: string): Promise<null>;
  upload(data: Blob | ArrayBuffer | ArrayBufferView, opts?: { type?: string; name?: string; private?: boolean }): Promise<MediaInfo>;
  download(id: string, opts?: { thumb?: boolean }): Promise<{ data: Uint8Array; type: string }>;
  /** Ends the connection; connect() again resumes from the cursor, and unacked sends are sent again then. */
  disconnect(): Promise<void>;
  /** Disconnects for good: waiting sends are rejected with code 'closed'. */
  close(): Promise<void>;
  /** Revokes the token (DELETE /v1/sessions/current) and closes. */
  logout(): Promise<void>;
}

export function decode(payload: Uint8Array): Promise<unknown>;
export function backoff(min: number, max: number, attempt: number, r?: number): number;
export function codeForStatus(status: number): ErrorCode;
export function checkEvent(ev: unknown, me?: string): string;
export function checkBatch(b: unknown): string;
export function checkHeads(h: unknown): string;
export function validEmoji(s: string): boolean;

/** The sequencer of one stream (the inbox by ver, a group by seq); see src/sequencer.js. */
export class Sequencer {
  constructor(cursor?: number, epoch?: string, opts?: { key?: 'ver' | 'seq'; held?: Held });
  cursor: number;
  epoch: string;
  syncing: boolean;
}
export class Groups {
  constructor(saved?: Cursor['groups'], opts?: { held?: Held; limit?: number; window?: number; timeout?: number });
  cursors(): Cursor['groups'];
}
/** The budget of live events waiting for a sync (4096 events, 8 MiB of payload), shared by one client's sequencers. */
export class Held {
  constructor(max?: number, maxBytes?: number);
}
