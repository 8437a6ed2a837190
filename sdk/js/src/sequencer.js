// The sequencer: the Go SDK's client/sequencer.go and groupset.go in
// JavaScript, the statement of docs/protocol.md's client rules (versions and
// sync, groups). One sequencer class turns live events and sync batches into one
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
//   - at most MAX_HELD events, of MAX_HELD_BYTES in all, wait, in the inbox
//     and all groups together (one Held budget); one past that is dropped and
//     a sync asked for;
//   - a batch covers (since, upto]: its items above the cursor are delivered
//     and the cursor moves to upto; a batch starting past the cursor is ignored;
//   - only a batch continuing the latest request can end the sync;
//   - a batch with reset moves the cursor back to its since, once per epoch;
//   - a new connection drops the waiting events: its first sync brings them;
//   - events without a position (unread counts) pass straight through.
//
// Groups (Groups): group messages come live on the inbox with their
// group and seq and no ver. The client keeps a cursor {seq, epoch} per group
// next to the inbox cursor and one sequencer per group, keyed by seq:
//
//   - on every (re)connect, and at the periodic resync, it asks for the heads
//     ({"heads":true}), the server's word on which groups the user is in; at
//     most once a second but on a connect;
//   - a group without a cursor (a new device, or an application that saved
//     none) starts where the heads say it joined; an application may seed
//     cursors (the web chat starts each group at its list's last seq);
//   - on the heads answer, a listed group without a cursor starts at its
//     join (never before it), one with a cursor takes max(cursor, join) (a
//     re-join); a listed group whose head differs from its cursor is synced
//     from the cursor, page after page while more is set (a cursor past the
//     head is answered with a reset from the join); a group with a cursor that
//     is not listed was left or is gone: its cursor is dropped, nothing more
//     is synced for it, and the application is told (left);
//   - a group sync that ends below the head the heads gave (a hole a
//     scale-out server is settling) is asked again after a short delay, and
//     the groups are not caught up until it reaches the head;
//   - a group sync batch follows the sequencer rules above by seq; one that
//     starts past the cursor is ignored and asks for the heads (the join is
//     above the cursor: the user left and joined again);
//   - a live group message of a group with a cursor follows the sequencer
//     rules above by seq (a gap starts a sync of that group); one of a group
//     without a cursor is dropped and the heads asked for: their answer
//     starts the cursor and the sync brings the message;
//   - a live membership event ({"kind":"group"}) only makes the client ask for
//     the heads: it never starts or drops a cursor by itself;
//   - at most 2 group requests (group syncs and heads; the window option) are
//     in flight at once, the others wait their turn (the server answers 4 sync and read
//     requests per client at once; the inbox sync takes one); one with no
//     answer after the sync timeout is sent again;
//   - an error for a group sync (it names the group) ends that sync:
//     not_member asks for the heads (which drop the group if it is really
//     gone); any other but group_gone sends the request again after a short
//     delay. An error naming no group that says not_member makes the client
//     ask for the heads; one that says busy or unavailable while the heads
//     are asked sends them again;
//   - a group the server calls gone (a head or a group batch with
//     "gone":true, a group_gone error) keeps its cursor and is synced up to
//     its head, the disband, and no further (one whose sync was answered
//     group_gone is not synced again until a restart); the cursor remembers
//     that the application was told (gone: true), and once the heads no
//     longer list it the cursor is dropped without a left. A live disbanded
//     event of a group without a cursor is remembered (a few), so that the
//     heads that make its cursor do not tell it again.

const MAX_STALLS = 3;
// As the Go SDK's maxHeld and maxHeldBytes: a real gap needs a handful.
const MAX_HELD = 4096;
const MAX_HELD_BYTES = 8 << 20;

// Held is the budget of live events waiting for a sync, shared by the
// sequencers of one client (the inbox and every group): how many, and their
// payloads' bytes.
export class Held {
  constructor(max, maxBytes) {
    this.max = max || MAX_HELD;
    this.maxBytes = maxBytes || MAX_HELD_BYTES;
    this.n = 0;
    this.bytes = 0;
  }

  // room reports whether one more event of size bytes may wait.
  room(size) {
    return this.n < this.max && this.bytes + size <= this.maxBytes;
  }
}

export class Sequencer {
  // key names the position field: 'ver' (the inbox) or 'seq' (a group).
  constructor(cursor, epoch, { key = 'ver', held = new Held() } = {}) {
    this.key = key;
    this.held = held;
    this.cursor = cursor || 0;
    this.epoch = epoch || '';
    this.syncing = false; // a sync request is outstanding
    this.reset = ''; // the epoch the cursor was last reset into
    this.budget = 0; // items the latest request may still bring
    this.expect = 0; // the since of the latest request's next batch
    this.pending = new Map(); // position -> {ev, size, syncs: syncs that ended without reaching it}
    this.overflow = false; // a live event was dropped for want of room: sync again
    this.dropped = 0; // waiting events given up unconfirmed, until takeDropped
  }

  pos(ev) {
    return ev[this.key];
  }

  hold(p, ev, size) {
    this.pending.set(p, { ev, size, syncs: 0 });
    this.held.n++;
    this.held.bytes += size;
  }

  unhold(p) {
    const h = this.pending.get(p);
    if (!h) return;
    this.pending.delete(p);
    this.held.n--;
    this.held.bytes -= h.size;
  }

  // close gives the waiting events' room back: the sequencer is done with.
  close() {
    for (const p of [...this.pending.keys()]) this.unhold(p);
  }

  // connected starts a new connection.
  connected() {
    this.close();
    this.syncing = false;
    this.overflow = false;
  }

  // abort ends a sync whose request failed: the waiting events wait on, for
  // the sync sent again.
  abort() {
    this.syncing = false;
  }

  // begin records that a request for everything after the cursor is sent.
  begin(limit) {
    this.syncing = true;
    this.budget = limit;
    this.expect = this.cursor;
  }

  // live takes a live event of size bytes (its payload's): {out:
  // deliverable events, again: sync needed}.
  live(ev, size = 0) {
    const p = this.pos(ev);
    if (!p) return { out: [ev], again: false };
    if (!this.syncing && p <= this.cursor) return { out: [], again: false };
    // During a sync even one at or below the cursor waits: a reset may move it.
    if (!this.pending.has(p)) {
      if (this.held.room(size)) this.hold(p, ev, size);
      else this.overflow = true;
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
  // sent (default: b.items.length); items the client could not use and left
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
const HEADS_INTERVAL = 1000; // the least time between two heads requests but on a connect
const MAX_TOLD_EARLY = 64; // bounds Groups.toldEarly

// Groups keeps the client's group cursors and decides which group
// requests to send (see the rules at the top). Pure state: take(now) returns
// the requests to publish on im/sync; the answers come back through heads,
// batch and error. Every method that delivers returns {out} (group messages
// in seq order per group) and those that learn of groups left {left}.
export class Groups {
  // saved: {group: {seq, epoch}}, the cursors the client persisted.
  constructor(saved, { held = new Held(), limit = 200, window = 2, timeout = 10000, retry = () => 1000 + Math.random() * 1000 } = {}) {
    this.held = held;
    this.limit = limit;
    this.window = window;
    this.timeout = timeout;
    this.retry = retry;
    this.seqs = new Map(); // group -> Sequencer keyed by seq
    for (const [g, c] of Object.entries(saved || {})) {
      if (g === HEADS || !c || !Number.isSafeInteger(c.seq) || c.seq < 0) continue;
      const s = this.sequencer(c.seq, typeof c.epoch === 'string' ? c.epoch : '');
      s.gone = c.gone === true;
      this.seqs.set(g, s);
    }
    this.queue = new Set(); // request keys waiting for a place in the window, in order
    this.inflight = new Map(); // request key -> time sent
    this.again = new Set(); // in-flight keys to ask again once answered (they may predate what asked)
    this.notBefore = new Map(); // request key -> time it may be sent again (after busy)
    this.dropped = 0; // live group events dropped unconfirmed, until takeDropped
    this.sent = 0; // group requests sent, heads included
    // toldEarly: groups without a cursor whose live disbanded event the
    // application had, so that the heads do not tell it again (a few).
    this.toldEarly = new Set();
  }

  sequencer(seq, epoch) {
    return new Sequencer(seq, epoch, { key: 'seq', held: this.held });
  }

  // cursors returns what the client persists: {group: {seq, epoch[, gone]}}.
  cursors() {
    const c = {};
    for (const [g, s] of this.seqs) c[g] = s.gone ? { seq: s.cursor, epoch: s.epoch, gone: true } : { seq: s.cursor, epoch: s.epoch };
    return c;
  }

  // disbanded records that group g is gone and reports whether the
  // application is yet to be told (once per group, kept in the cursor).
  disbanded(g) {
    const s = this.seqs.get(g);
    if (!s || s.gone) return false;
    s.gone = true;
    return !this.toldEarly.delete(g);
  }

  // liveDisbanded takes a live disbanded event of group g and reports
  // whether to deliver it: not if the application had one.
  liveDisbanded(g) {
    if (this.seqs.has(g)) return this.disbanded(g);
    if (this.toldEarly.has(g)) return false;
    if (this.toldEarly.size < MAX_TOLD_EARLY) this.toldEarly.add(g);
    return true;
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
      if (key === HEADS) {
        this.notBefore.set(HEADS, now + HEADS_INTERVAL);
      } else {
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
    for (const [g, s] of [...this.seqs]) {
      if (listed.has(g)) continue;
      const told = s.gone; // a disbanded group, already told: no left
      if (this.drop(g) && !told) left.push(g);
    }
    const out = [];
    for (const [g, x] of listed) {
      let s = this.seqs.get(g);
      if (!s) this.seqs.set(g, (s = this.sequencer(x.join, '')));
      else out.push(...s.raise(x.join));
      s.head = x.seq;
      if (x.seq !== s.cursor && !s.closed) this.want(g);
    }
    return { out, left };
  }

  // live takes a live group message (group and seq set) of size bytes: {out}.
  live(ev, size) {
    const s = this.seqs.get(ev.group);
    if (!s) {
      this.askHeads();
      return { out: [] };
    }
    const { out, again } = s.live(ev, size);
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

  // batch takes one group sync batch at time now: {out}. n as for
  // Sequencer.batch.
  batch(b, n, now) {
    const s = this.seqs.get(b.group);
    if (!s) return { out: [] }; // a group left meanwhile
    // A batch starting past the cursor (ignored) says the join floor is
    // above it: the user left and joined again. The heads tell the floor.
    if (!b.reset && b.since > s.cursor) this.askHeads();
    const before = s.cursor;
    const ended = this.inflight.has(b.group);
    const { out, again } = s.batch(b, n);
    this.dropped += s.takeDropped();
    if (!s.syncing) {
      this.done(b.group);
      if (again) {
        this.want(b.group);
      } else if (ended && s.cursor < s.head) { // below the head the heads gave
        this.want(b.group);
        // No step forward: a hole a scale-out server is settling; not in a loop.
        if (s.cursor <= before) this.notBefore.set(b.group, now + this.retry());
      }
    } else if (again) { // the request's limit reached with more to come: the next page
      this.inflight.delete(b.group);
      this.queue.add(b.group);
    }
    return { out };
  }

  // error takes an error event answering a group request: group is the
  // group it names ('' if none), code its code. Returns {gone}: the groups
  // the server says were disbanded. An error naming a group frees its place
  // and ends its sync (the waiting events wait on for the next one):
  // not_member asks the heads, which drop the group if it is really gone;
  // group_gone asks nothing more of it; any other sends it again a little
  // later.
  error(group, code, now) {
    if (!group) { // the heads', or the inbox sync's
      if (code === 'not_member') this.askHeads();
      else if ((code === 'busy' || code === 'unavailable') && this.inflight.has(HEADS)) this.later(HEADS, now);
      return { gone: [] };
    }
    const s = this.seqs.get(group);
    if (!s || !this.inflight.delete(group)) return { gone: [] };
    this.again.delete(group);
    s.abort();
    if (code === 'not_member') {
      this.askHeads();
      return { gone: [] };
    }
    if (code === 'group_gone') {
      // Disbanded (docs/protocol.md#groups): nothing more to sync. The
      // cursor stays, and so does the history shown; the client marks it.
      s.closed = true;
      return { gone: [group] };
    }
    this.later(group, now);
    return { gone: [] };
  }

  // later queues key to be sent again after a short delay.
  later(key, now) {
    this.inflight.delete(key);
    this.again.delete(key);
    this.queue.add(key);
    this.notBefore.set(key, Math.max(this.notBefore.get(key) || 0, now + this.retry()));
  }

  // takeDropped returns how many live group events were dropped unconfirmed
  // since it was last called.
  takeDropped() {
    const n = this.dropped;
    this.dropped = 0;
    return n;
  }
}

