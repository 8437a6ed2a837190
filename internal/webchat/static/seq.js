// The sequencer of the web chat: the Go SDK's client/sequencer.go in
// JavaScript, and the page's statement of docs/contract.md §5 (sync) and §7
// (groups). One sequencer class turns live events and sync batches into one
// stream in which every event appears once, in order of its position: the
// inbox's ver for the user's inbox, a group's seq for each of its groups.
// Pure state: the caller sends the requests it asks for.
//
// A live event is a claim, a sync reply is the server's word: anyone who can
// get a publish onto the inbox topic can claim any position, and a cursor
// moved to a forged ver 1000000 would drop every real message below it.
//
//   - the cursor is the highest position seen without a gap, and it moves
//     only on positions a sync reply vouched for (its items and upto) or on a
//     live event that directly continues it (cursor+1);
//   - while a sync is under way, live events wait; when it ends, the waiting
//     ones that then continue the cursor follow the synced ones;
//   - outside a sync, a live event at cursor+1 is delivered at once, one at or
//     below the cursor (or of a position already waiting) is a repeat and
//     dropped, one further on waits and asks for a sync (a gap);
//   - a waiting event that MAX_STALLS syncs end without reaching is dropped,
//     unconfirmed (counted in dropped): forged, or above a hole a scale-out
//     server still waits for, which a later sync brings;
//   - at most MAX_HELD events wait, in the inbox and all groups together (one
//     ImqttHeld budget); one past that is dropped and a sync asked for;
//   - a batch covers (since, upto]: its items above the cursor are delivered
//     and the cursor moves to upto; a batch starting past the cursor is ignored;
//   - only a batch continuing the latest request can end the sync;
//   - a batch with reset moves the cursor back to its since, once per epoch;
//   - a new connection drops the waiting events: its first sync brings them;
//   - events without a position (unread counts) pass straight through.
//
// Groups (ImqttGroups): group messages come live on the inbox with their
// group and seq and no ver. The page keeps a cursor {seq, epoch} per group
// next to the inbox cursor and one sequencer per group, keyed by seq:
//
//   - on every (re)connect, and at the periodic resync, it asks for the heads
//     ({"heads":true}), the server's word on which groups the user is in;
//   - a page that has no group cursors saved (a new device) starts each group
//     the conversation list shows at that list's last seq: what came before
//     is history, fetched when the conversation is opened, as for the inbox;
//   - on the heads answer, a listed group without a cursor starts at its
//     join (never before it), one with a cursor takes max(cursor, join) (a
//     re-join); a listed group whose head differs from its cursor is synced
//     from the cursor, page after page while more is set (a cursor past the
//     head is answered with a reset from the join); a group with a cursor that
//     is not listed was left or is gone: its cursor is dropped, nothing more
//     is synced for it, and the page is told (left);
//   - a group sync batch follows the sequencer rules above by seq; one that
//     starts past the cursor is ignored and asks for the heads (the join is
//     above the cursor: the user left and joined again);
//   - a live group message of a group with a cursor follows the sequencer
//     rules above by seq (a gap starts a sync of that group); one of a group
//     without a cursor is dropped and the heads asked for: their answer
//     starts the cursor and the sync brings the message;
//   - a live membership event ({"kind":"group"}) only makes the page ask for
//     the heads: it never starts or drops a cursor by itself;
//   - at most 2 group requests (group syncs and heads; the window option) are
//     in flight at once, the others wait their turn (the server answers 4 sync and read
//     requests per client at once; the inbox sync takes one); one with no
//     answer after the sync timeout is sent again;
//   - an error for a group sync (it names the group): not_member drops that
//     group's cursor as if the heads no longer listed it; busy or unavailable
//     sends the request again after a short delay. An error naming no group
//     that says not_member makes the page ask for the heads; one that says
//     busy or unavailable while the heads are asked sends them again.
'use strict';

const MAX_STALLS = 3;
const MAX_HELD = 4096; // as the Go SDK: a real gap needs a handful

// ImqttHeld is the budget of live events waiting for a sync, shared by the
// sequencers of one page (the inbox and every group).
class ImqttHeld {
  constructor(max) {
    this.max = max || MAX_HELD;
    this.n = 0;
  }
}

// imqttHeld is the page's budget: the default of every sequencer.
const imqttHeld = new ImqttHeld();

class ImqttSequencer {
  // key names the position field: 'ver' (the inbox) or 'seq' (a group).
  constructor(cursor, epoch, { key = 'ver', held = imqttHeld } = {}) {
    this.key = key;
    this.held = held;
    this.cursor = cursor || 0;
    this.epoch = epoch || '';
    this.syncing = false; // a sync request is outstanding
    this.reset = ''; // the epoch the cursor was last reset into
    this.budget = 0; // items the latest request may still bring
    this.expect = 0; // the since of the latest request's next batch
    this.pending = new Map(); // position -> {ev, syncs: syncs that ended without reaching it}
    this.overflow = false; // a live event was dropped for want of room: sync again
    this.dropped = 0; // waiting events given up unconfirmed, until takeDropped
  }

  pos(ev) {
    return ev[this.key];
  }

  hold(p, ev) {
    this.pending.set(p, { ev, syncs: 0 });
    this.held.n++;
  }

  unhold(p) {
    if (this.pending.delete(p)) this.held.n--;
  }

  // close gives the waiting events' room back: the sequencer is done with.
  close() {
    this.held.n -= this.pending.size;
    this.pending.clear();
  }

  // connected starts a new connection.
  connected() {
    this.close();
    this.syncing = false;
    this.overflow = false;
  }

  // begin records that a request for everything after the cursor is sent.
  begin(limit) {
    this.syncing = true;
    this.budget = limit;
    this.expect = this.cursor;
  }

  // live takes a live event: {out: deliverable events, again: sync needed}.
  live(ev) {
    const p = this.pos(ev);
    if (!p) return { out: [ev], again: false };
    if (!this.syncing && p <= this.cursor) return { out: [], again: false };
    // During a sync even one at or below the cursor waits: a reset may move it.
    if (!this.pending.has(p)) {
      if (this.held.n >= this.held.max) this.overflow = true;
      else this.hold(p, ev);
    }
    if (this.syncing) return { out: [], again: false };
    const out = this.drain([]);
    return { out, again: this.pending.size > 0 || this.overflow };
  }

  // raise moves the cursor up to p on the server's word (a group's join
  // floor): what waits at or below it goes, what continues it follows.
  raise(p) {
    if (p <= this.cursor) return [];
    this.cursor = p;
    return this.syncing ? [] : this.drain([]);
  }

  // resets reports whether batch b would reset the cursor.
  resets(b) {
    return !!b.reset && (b.epoch !== this.epoch || b.epoch !== this.reset);
  }

  // batch takes one sync batch: {out, again}. n is how many items the server
  // sent (default: b.items.length); items the page could not use and left
  // out of b.items use up the request's limit all the same.
  batch(b, n) {
    let current = this.syncing && b.since === this.expect;
    if (b.reset) {
      if (!this.resets(b)) return { out: [], again: false };
      this.cursor = b.since;
      this.reset = b.epoch;
      current = this.syncing;
    }
    if (b.since > this.cursor) return { out: [], again: false };
    if (b.epoch) this.epoch = b.epoch;
    const items = (b.items || []).slice().sort((x, y) => (this.pos(x) || 0) - (this.pos(y) || 0));
    let out = [];
    for (const ev of items) {
      const p = this.pos(ev);
      if (!p) {
        out.push(ev);
        continue;
      }
      if (p <= this.cursor) continue;
      out.push(ev);
      this.cursor = p;
    }
    this.cursor = Math.max(this.cursor, b.upto || 0);
    if (!this.syncing) return { out: this.drain(out), again: false };
    if (!current) return { out, again: false };
    this.expect = b.upto;
    this.budget -= n === undefined ? items.length : n;
    if (b.more) return { out, again: this.budget <= 0 };
    return this.finish(out);
  }

  // finish ends a sync: the waiting events that continue the cursor follow;
  // the others waited one more sync, and those that waited MAX_STALLS go.
  finish(out) {
    this.syncing = false;
    out = this.drain(out);
    for (const [p, h] of [...this.pending]) {
      if (++h.syncs >= MAX_STALLS) {
        this.unhold(p);
        this.dropped++;
      }
    }
    const again = this.pending.size > 0 || this.overflow;
    this.overflow = false;
    return { out, again };
  }

  // takeDropped returns how many waiting events were dropped unconfirmed
  // since it was last called.
  takeDropped() {
    const n = this.dropped;
    this.dropped = 0;
    return n;
  }

  drain(out) {
    for (const p of [...this.pending.keys()]) {
      if (p <= this.cursor) this.unhold(p);
    }
    for (;;) {
      const h = this.pending.get(this.cursor + 1);
      if (!h) return out;
      this.unhold(this.cursor + 1);
      out.push(h.ev);
      this.cursor++;
    }
  }
}

const HEADS = ''; // the heads request's key among group requests (no group is named '')

// ImqttGroups keeps the page's group cursors and decides which group
// requests to send (see the rules at the top). Pure state: take(now) returns
// the requests to publish on im/sync; the answers come back through heads,
// batch and error. Every method that delivers returns {out} (group messages
// in seq order per group) and those that learn of groups left {left}.
class ImqttGroups {
  // saved: {group: {seq, epoch}}, the cursors the page persisted.
  constructor(saved, { held = imqttHeld, limit = 200, window = 2, timeout = 10000, retry = () => 1000 + Math.random() * 1000 } = {}) {
    this.held = held;
    this.limit = limit;
    this.window = window;
    this.timeout = timeout;
    this.retry = retry;
    this.seqs = new Map(); // group -> ImqttSequencer keyed by seq
    for (const [g, c] of Object.entries(saved || {})) {
      if (g !== HEADS && c && Number.isSafeInteger(c.seq) && c.seq >= 0) this.seqs.set(g, this.sequencer(c.seq, c.epoch));
    }
    this.queue = new Set(); // request keys waiting for a place in the window, in order
    this.inflight = new Map(); // request key -> time sent
    this.again = new Set(); // in-flight keys to ask again once answered (they may predate what asked)
    this.notBefore = new Map(); // request key -> time it may be sent again (after busy)
    this.dropped = 0; // live group events dropped unconfirmed, until takeDropped
    this.sent = 0; // group requests sent, heads included
  }

  sequencer(seq, epoch) {
    return new ImqttSequencer(seq, epoch, { key: 'seq', held: this.held });
  }

  // cursors returns what the page persists: {group: {seq, epoch}}.
  cursors() {
    const c = {};
    for (const [g, s] of this.seqs) c[g] = { seq: s.cursor, epoch: s.epoch };
    return c;
  }

  // idle reports whether no group request is waiting or in flight.
  idle() {
    return this.queue.size === 0 && this.inflight.size === 0;
  }

  // connected starts a new connection: what was in flight is gone, and the
  // heads are asked first.
  connected() {
    for (const s of this.seqs.values()) s.connected();
    this.queue.clear();
    this.inflight.clear();
    this.again.clear();
    this.notBefore.clear();
    this.want(HEADS);
  }

  // close gives the room of every group's waiting events back.
  close() {
    for (const s of this.seqs.values()) s.close();
  }

  // askHeads asks for the heads (on a membership event, a message of an
  // unknown group, the periodic resync).
  askHeads() {
    this.want(HEADS);
  }

  want(key) {
    if (this.inflight.has(key)) this.again.add(key);
    else this.queue.add(key);
  }

  // done frees key's place in the window; asked again meanwhile, it queues.
  done(key) {
    if (!this.inflight.delete(key)) return;
    if (this.again.delete(key)) this.queue.add(key);
  }

  // take returns the requests to send now: those with no answer after the
  // timeout again, then queued ones while the window has room (heads first).
  take(now) {
    const reqs = [];
    const late = [];
    for (const [key, at] of this.inflight) {
      if (now - at >= this.timeout) {
        this.inflight.delete(key);
        late.push(key); // waited longest: first in line
      }
    }
    if (late.length) this.queue = new Set([...late, ...this.queue]);
    const order = this.queue.has(HEADS) ? [HEADS, ...this.queue] : [...this.queue];
    for (const key of order) {
      if (this.inflight.size >= this.window) break;
      if (!this.queue.has(key) || this.notBefore.get(key) > now) continue;
      this.queue.delete(key);
      this.notBefore.delete(key);
      let req = { heads: true };
      if (key !== HEADS) {
        const s = this.seqs.get(key);
        if (!s) continue;
        s.begin(this.limit);
        req = { group: key, since: s.cursor, limit: this.limit, epoch: s.epoch || undefined };
      }
      this.inflight.set(key, now);
      this.sent++;
      reqs.push(req);
    }
    return reqs;
  }

  // deadline returns when take should next be called for timeouts and
  // delayed retries (Infinity: not before something else happens).
  deadline() {
    let t = Infinity;
    for (const at of this.inflight.values()) t = Math.min(t, at + this.timeout);
    if (this.inflight.size < this.window) {
      for (const [key, at] of this.notBefore) if (this.queue.has(key)) t = Math.min(t, at);
    }
    return t;
  }

  drop(g) {
    const s = this.seqs.get(g);
    if (!s) return false;
    s.close();
    this.seqs.delete(g);
    this.queue.delete(g);
    this.inflight.delete(g); // its answer, if any, finds no cursor
    this.again.delete(g);
    this.notBefore.delete(g);
    return true;
  }

  // heads takes a heads answer: {out, left}.
  heads(h) {
    this.done(HEADS);
    const listed = new Map();
    for (const x of h.groups || []) listed.set(x.group, x);
    const left = [];
    for (const g of [...this.seqs.keys()]) {
      if (!listed.has(g) && this.drop(g)) left.push(g);
    }
    const out = [];
    for (const [g, x] of listed) {
      let s = this.seqs.get(g);
      if (!s) this.seqs.set(g, (s = this.sequencer(x.join, '')));
      else out.push(...s.raise(x.join));
      s.head = x.seq;
      if (x.seq !== s.cursor) this.want(g);
    }
    return { out, left };
  }

  // live takes a live group message (group and seq set): {out}.
  live(ev) {
    const s = this.seqs.get(ev.group);
    if (!s) {
      this.askHeads();
      return { out: [] };
    }
    const { out, again } = s.live(ev);
    if (again) this.want(ev.group);
    return { out };
  }

  // behind returns how many seqs group g's cursor is below its head as the
  // last heads answer gave it (0 if unknown or not below).
  behind(g) {
    const s = this.seqs.get(g);
    return s && s.head > s.cursor ? s.head - s.cursor : 0;
  }

  // resets reports whether group batch b would reset its group's cursor.
  resets(b) {
    const s = this.seqs.get(b.group);
    return !!s && s.resets(b);
  }

  // batch takes one group sync batch: {out}. n as for ImqttSequencer.batch.
  batch(b, n) {
    const s = this.seqs.get(b.group);
    if (!s) return { out: [] }; // a group left meanwhile
    // A batch starting past the cursor (ignored) says the join floor is
    // above it: the user left and joined again. The heads tell the floor.
    if (!b.reset && b.since > s.cursor) this.askHeads();
    const { out, again } = s.batch(b, n);
    this.dropped += s.takeDropped();
    if (!s.syncing) {
      this.done(b.group);
      if (again) this.want(b.group);
    } else if (again) { // the request's limit reached with more to come: the next page
      this.inflight.delete(b.group);
      this.queue.add(b.group);
    }
    return { out };
  }

  // error takes an error event answering a group request: group is the
  // group it names ('' if none), code its code. Returns {left} (and {gone}:
  // the group was disbanded).
  error(group, code, now) {
    if (code === 'not_member') {
      if (group && this.drop(group)) return { left: [group] };
      if (!group) this.askHeads();
      return { left: [] };
    }
    if (code === 'group_gone') {
      // Disbanded (docs/protocol.md#groups): nothing more to sync. The
      // cursor stays, and so does the history shown; the page marks it.
      if (group) {
        this.inflight.delete(group);
        this.again.delete(group);
        this.queue.delete(group);
        this.notBefore.delete(group);
      }
      return { left: [], gone: group ? [group] : [] };
    }
    if (code !== 'busy' && code !== 'unavailable') return { left: [] };
    const key = group || HEADS;
    if (!this.inflight.has(key)) return { left: [] };
    this.inflight.delete(key);
    this.again.delete(key);
    this.queue.add(key);
    this.notBefore.set(key, now + this.retry());
    return { left: [] };
  }

  // takeDropped returns how many live group events were dropped unconfirmed
  // since it was last called.
  takeDropped() {
    const n = this.dropped;
    this.dropped = 0;
    return n;
  }
}

// MAX_DEPTH is wire.MaxDepth: the SDK and the server refuse JSON nested
// deeper, and the page skips such an event too, so that one message is
// shown alike everywhere (and a poison one costs no deep recursion later).
const MAX_DEPTH = 32;

// tooDeep reports whether v nests objects and arrays deeper than max, the
// event itself being level 1 (as wire.CheckDepth counts brackets). It keeps
// its own stack: any depth costs only time.
function tooDeep(v, max) {
  const stack = [[v, 1]];
  while (stack.length) {
    const [x, d] = stack.pop();
    if (d > max) return true;
    for (const k in x) {
      const c = x[k];
      if (c !== null && typeof c === 'object') stack.push([c, d + 1]);
    }
  }
  return false;
}

// The message lifecycle's bounds, as wire's: MaxEmojiBytes, ReactionUsers,
// MaxDeleteIDs, and the most emojis one message carries.
const MAX_EMOJI_BYTES = 32;
const REACTION_USERS = 20;
const MAX_EMOJIS = 50;
const MAX_DELETE_IDS = 100;

const isID = (v) => typeof v === 'string' && /^[0-9]{1,20}$/.test(v); // a snowflake ID

// imqttValidEmoji is wire.ValidEmoji: one grapheme cluster of at most
// MAX_EMOJI_BYTES bytes holding a pictograph or a symbol ("👍🏽" is one, "a"
// and "👍👍" are none). Where Intl.Segmenter is missing, the cluster is not
// counted: the text is shown with textContent whatever it holds.
function imqttValidEmoji(s) {
  if (typeof s !== 'string' || s === '' || new TextEncoder().encode(s).length > MAX_EMOJI_BYTES) return false;
  if (typeof Intl !== 'undefined' && Intl.Segmenter) {
    const it = new Intl.Segmenter(undefined, { granularity: 'grapheme' }).segment(s)[Symbol.iterator]();
    const first = it.next();
    if (first.done || first.value.segment !== s) return false;
  }
  for (const ch of s) {
    const c = ch.codePointAt(0);
    if (c >= 0x1f000 || (c >= 0x2000 && /\p{So}/u.test(ch))) return true;
  }
  return false;
}

// checkState says why a message's lifecycle state (reply_to, quote,
// recalled, edited, reactions) is unusable, or returns ''.
function checkState(ev) {
  if (ev.reply_to !== undefined && !isID(ev.reply_to)) return 'bad reply_to';
  if (ev.recalled !== undefined && typeof ev.recalled !== 'boolean') return 'bad recalled';
  if (ev.edited !== undefined && !(Number.isSafeInteger(ev.edited) && ev.edited >= 0)) return 'bad edited';
  const q = ev.quote;
  if (q !== undefined) {
    if (q === null || typeof q !== 'object' || Array.isArray(q)) return 'bad quote';
    if (typeof q.from !== 'string' || q.from === '') return 'bad quote';
    if ((q.type !== undefined && typeof q.type !== 'string') || (q.body !== undefined && typeof q.body !== 'string')) return 'bad quote';
    if (q.recalled !== undefined && typeof q.recalled !== 'boolean') return 'bad quote';
  }
  const r = ev.reactions;
  if (r !== undefined) {
    if (r === null || typeof r !== 'object' || Array.isArray(r)) return 'bad reactions';
    const emojis = Object.keys(r);
    if (emojis.length > MAX_EMOJIS) return 'too many reactions';
    for (const e of emojis) {
      const c = r[e];
      if (!imqttValidEmoji(e)) return 'bad reaction emoji';
      if (c === null || typeof c !== 'object' || !(Number.isSafeInteger(c.count) && c.count >= 0)) return 'bad reaction count';
      if (!Array.isArray(c.users) || c.users.length > REACTION_USERS || c.users.length > c.count) return 'bad reaction users';
      if (!c.users.every((u) => typeof u === 'string' && u !== '')) return 'bad reaction users';
    }
  }
  return '';
}

// imqttCheckEvent says why an inbox event or sync item (already parsed) is
// not one the page can use, or returns '' if it is. me is the page's user:
// a 1:1 message in my inbox is from me or to me. Unknown kinds pass, if
// their ver is sound (the sequencer still orders them).
//
// A change of a message (recall, edit, reaction) must have a position, the
// inbox's ver or its group's seq, so the sequencer applies it once and in
// order; so must a delete (the inbox's ver: it is one's own). A receipt and
// typing have none: they are never stored, never sequenced.
function imqttCheckEvent(ev, me) {
  if (ev === null || typeof ev !== 'object' || Array.isArray(ev)) return 'not an object';
  if (ev.kind !== undefined && typeof ev.kind !== 'string') return 'bad kind';
  if (tooDeep(ev, MAX_DEPTH)) return 'nested too deep';
  if (ev.ver !== undefined && !(Number.isSafeInteger(ev.ver) && ev.ver >= 0)) return 'bad ver';
  const str = (v) => typeof v === 'string' && v !== '';
  const optStr = (v) => v === undefined || typeof v === 'string';
  const num = (v) => typeof v === 'number' && Number.isFinite(v);
  // positioned: a ver in the inbox, or a group and its seq.
  const positioned = () => {
    if (ev.group === undefined) return Number.isSafeInteger(ev.ver) && ev.ver > 0 ? '' : 'no ver';
    if (!str(ev.group)) return 'bad group';
    return Number.isSafeInteger(ev.seq) && ev.seq > 0 ? '' : 'bad seq';
  };
  switch (ev.kind === undefined ? 'msg' : ev.kind) {
    case 'msg':
      if (!str(ev.id) || !/^[0-9]{1,20}$/.test(ev.id)) return 'bad id';
      if (!str(ev.from)) return 'no from';
      if (!optStr(ev.body) || !optStr(ev.type) || !optStr(ev.cmid)) return 'bad field';
      if (ev.ts !== undefined && !num(ev.ts)) return 'bad ts';
      if (ev.group !== undefined) {
        if (!str(ev.group)) return 'bad group';
        if (!(Number.isSafeInteger(ev.seq) && ev.seq > 0)) return 'bad seq';
      } else if (!str(ev.to) || (me && ev.from !== me && ev.to !== me)) {
        return 'not in this inbox';
      }
      return checkState(ev);
    case 'recall':
      if (!isID(ev.id)) return 'bad id';
      if (!optStr(ev.by) || (ev.ts !== undefined && !num(ev.ts))) return 'bad field';
      return positioned();
    case 'edit':
      if (!isID(ev.id)) return 'bad id';
      if (!optStr(ev.body)) return 'bad body';
      if (ev.edited !== undefined && !(Number.isSafeInteger(ev.edited) && ev.edited >= 0)) return 'bad edited';
      return positioned();
    case 'reaction':
      if (!isID(ev.id)) return 'bad id';
      if (!str(ev.from)) return 'no from';
      if (!imqttValidEmoji(ev.emoji)) return 'bad emoji';
      if (ev.op !== 'add' && ev.op !== 'remove') return 'bad op';
      return positioned();
    case 'delete':
      if (ev.group !== undefined) return 'a group delete';
      if (ev.ids !== undefined) {
        if (ev.peer !== undefined) return 'ids and peer';
        if (!Array.isArray(ev.ids) || ev.ids.length === 0 || ev.ids.length > MAX_DELETE_IDS || !ev.ids.every(isID)) return 'bad ids';
      } else if (!str(ev.peer)) {
        return 'no ids or peer';
      }
      return positioned();
    case 'receipt':
      if (ev.ver !== undefined || ev.seq !== undefined) return 'a receipt with a position';
      if (!str(ev.peer) || (me && ev.peer === me)) return 'bad peer';
      if (!isID(ev.upto)) return 'bad upto';
      if (ev.ts !== undefined && !num(ev.ts)) return 'bad ts';
      return '';
    case 'typing':
      if (ev.ver !== undefined || ev.seq !== undefined) return 'typing with a position';
      if (!str(ev.from)) return 'no from';
      if (ev.state !== 'start' && ev.state !== 'stop') return 'bad state';
      if (!optStr(ev.peer) || !optStr(ev.group) || str(ev.peer) === str(ev.group)) return 'no conversation';
      return '';
    case 'group':
      // A stored administration record has its group's seq; a live
      // membership event has none (the heads then say what it changed).
      if (ev.seq === undefined) return '';
      if (!str(ev.group)) return 'bad group';
      if (!str(ev.action) || !optStr(ev.from) || !optStr(ev.user)) return 'bad field';
      if (![ev.name, ev.notice, ev.avatar].every(optStr)) return 'bad field';
      if (ev.until !== undefined && !num(ev.until)) return 'bad until';
      if (ev.muted !== undefined && typeof ev.muted !== 'boolean') return 'bad muted';
      return positioned();
    case 'unread':
      if (!num(ev.total) || !num(ev.count)) return 'bad counts';
      if (!optStr(ev.peer) || !optStr(ev.group) || (!str(ev.peer) && !str(ev.group))) return 'no conversation';
      return '';
    default:
      return '';
  }
}

// imqttCheckHeads says why a heads answer is unusable, or returns ''.
function imqttCheckHeads(h) {
  const pos = (v) => Number.isSafeInteger(v) && v >= 0;
  if (!Array.isArray(h.groups)) return 'no groups';
  for (const x of h.groups) {
    if (x === null || typeof x !== 'object' || typeof x.group !== 'string' || x.group === '') return 'bad group';
    if (!pos(x.seq) || !pos(x.join)) return 'bad seq or join';
  }
  return '';
}

// imqttCheckBatch says why a sync batch's header is unusable, or returns ''.
function imqttCheckBatch(b) {
  const ver = (v) => Number.isSafeInteger(v) && v >= 0;
  if (!ver(b.since) || !ver(b.upto) || b.upto < b.since) return 'bad since or upto';
  if (b.items !== undefined && b.items !== null && !Array.isArray(b.items)) return 'bad items';
  if (b.epoch !== undefined && typeof b.epoch !== 'string') return 'bad epoch';
  if (b.group !== undefined && (typeof b.group !== 'string' || b.group === '')) return 'bad group';
  return '';
}

if (typeof module !== 'undefined') module.exports = { ImqttSequencer, ImqttGroups, ImqttHeld, imqttHeld, imqttCheckEvent, imqttCheckBatch, imqttCheckHeads, imqttValidEmoji };
