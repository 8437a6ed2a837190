// The sequencer of the web chat: the Go SDK's client/sequencer.go in
// JavaScript. It turns live inbox events and sync batches into one stream in
// which every versioned event appears once, in version order (SPEC §5).
// Pure state: the caller sends the sync requests it asks for.
//
// A live event is a claim, a sync reply is the server's word: anyone who can
// get a publish onto the inbox topic can claim any version, and a cursor
// moved to a forged ver 1000000 would drop every real message below it.
//
//   - the cursor is the highest version seen without a gap, and it moves only
//     on versions a sync reply vouched for (its items and upto) or on a live
//     event that directly continues it (cursor+1);
//   - while a sync is under way, live events wait; when it ends, the waiting
//     ones that then continue the cursor follow the synced ones;
//   - outside a sync, a live event at cursor+1 is delivered at once, one at or
//     below the cursor (or of a version already waiting) is a repeat and
//     dropped, one further on waits and asks for a sync (a gap);
//   - a waiting event that MAX_STALLS syncs end without reaching is dropped,
//     unconfirmed (counted in dropped): forged, or above a hole a scale-out
//     server still waits for, which a later sync brings;
//   - at most MAX_HELD events wait; one past that is dropped and a sync asked for;
//   - a batch covers (since, upto]: its items above the cursor are delivered
//     and the cursor moves to upto; a batch starting past the cursor is ignored;
//   - only a batch continuing the latest request can end the sync;
//   - a batch with reset moves the cursor back to its since, once per epoch;
//   - a new connection drops the waiting events: its first sync brings them;
//   - events without a version (unread counts) pass straight through.
'use strict';

const MAX_STALLS = 3;
const MAX_HELD = 4096; // as the Go SDK: a real gap needs a handful

class ImqttSequencer {
  constructor(cursor, epoch) {
    this.cursor = cursor || 0;
    this.epoch = epoch || '';
    this.syncing = false; // a sync request is outstanding
    this.reset = ''; // the epoch the cursor was last reset into
    this.budget = 0; // items the latest request may still bring
    this.expect = 0; // the since of the latest request's next batch
    this.pending = new Map(); // ver -> {ev, syncs: syncs that ended without reaching it}
    this.overflow = false; // a live event was dropped for want of room: sync again
    this.dropped = 0; // waiting events given up unconfirmed, until takeDropped
  }

  // connected starts a new connection.
  connected() {
    this.pending.clear();
    this.syncing = false;
    this.overflow = false;
  }

  // begin records that a request for everything after the cursor is sent.
  begin(limit) {
    this.syncing = true;
    this.budget = limit;
    this.expect = this.cursor;
  }

  // live takes an inbox event: {out: deliverable events, again: sync needed}.
  live(ev) {
    if (!ev.ver) return { out: [ev], again: false };
    if (!this.syncing && ev.ver <= this.cursor) return { out: [], again: false };
    // During a sync even one at or below the cursor waits: a reset may move it.
    if (!this.pending.has(ev.ver)) {
      if (this.pending.size >= MAX_HELD) this.overflow = true;
      else this.pending.set(ev.ver, { ev, syncs: 0 });
    }
    if (this.syncing) return { out: [], again: false };
    const out = this.drain([]);
    return { out, again: this.pending.size > 0 || this.overflow };
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
    const items = (b.items || []).slice().sort((x, y) => (x.ver || 0) - (y.ver || 0));
    let out = [];
    for (const ev of items) {
      if (!ev.ver) {
        out.push(ev);
        continue;
      }
      if (ev.ver <= this.cursor) continue;
      out.push(ev);
      this.cursor = ev.ver;
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
    for (const [v, h] of [...this.pending]) {
      if (++h.syncs >= MAX_STALLS) {
        this.pending.delete(v);
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
    for (const v of [...this.pending.keys()]) {
      if (v <= this.cursor) this.pending.delete(v);
    }
    for (;;) {
      const h = this.pending.get(this.cursor + 1);
      if (!h) return out;
      this.pending.delete(this.cursor + 1);
      out.push(h.ev);
      this.cursor++;
    }
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

// imqttCheckEvent says why an inbox event or sync item (already parsed) is
// not one the page can use, or returns '' if it is. me is the page's user:
// a 1:1 message in my inbox is from me or to me. Unknown kinds pass, if
// their ver is sound (the sequencer still orders them).
function imqttCheckEvent(ev, me) {
  if (ev === null || typeof ev !== 'object' || Array.isArray(ev)) return 'not an object';
  if (ev.kind !== undefined && typeof ev.kind !== 'string') return 'bad kind';
  if (tooDeep(ev, MAX_DEPTH)) return 'nested too deep';
  if (ev.ver !== undefined && !(Number.isSafeInteger(ev.ver) && ev.ver >= 0)) return 'bad ver';
  const str = (v) => typeof v === 'string' && v !== '';
  const optStr = (v) => v === undefined || typeof v === 'string';
  const num = (v) => typeof v === 'number' && Number.isFinite(v);
  switch (ev.kind === undefined ? 'msg' : ev.kind) {
    case 'msg':
      if (!str(ev.id) || !/^[0-9]{1,20}$/.test(ev.id)) return 'bad id';
      if (!str(ev.from)) return 'no from';
      if (!optStr(ev.body) || !optStr(ev.type) || !optStr(ev.cmid)) return 'bad field';
      if (ev.ts !== undefined && !num(ev.ts)) return 'bad ts';
      if (ev.group !== undefined) {
        if (!str(ev.group)) return 'bad group';
      } else if (!str(ev.to) || (me && ev.from !== me && ev.to !== me)) {
        return 'not in this inbox';
      }
      return '';
    case 'unread':
      if (!num(ev.total) || !num(ev.count)) return 'bad counts';
      if (!optStr(ev.peer) || !optStr(ev.group) || (!str(ev.peer) && !str(ev.group))) return 'no conversation';
      return '';
    default:
      return '';
  }
}

// imqttCheckBatch says why a sync batch's header is unusable, or returns ''.
function imqttCheckBatch(b) {
  const ver = (v) => Number.isSafeInteger(v) && v >= 0;
  if (!ver(b.since) || !ver(b.upto) || b.upto < b.since) return 'bad since or upto';
  if (b.items !== undefined && b.items !== null && !Array.isArray(b.items)) return 'bad items';
  if (b.epoch !== undefined && typeof b.epoch !== 'string') return 'bad epoch';
  return '';
}

if (typeof module !== 'undefined') module.exports = { ImqttSequencer, imqttCheckEvent, imqttCheckBatch };
