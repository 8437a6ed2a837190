// The sequencer of the web chat: the Go SDK's client/sequencer.go in
// JavaScript. It turns live inbox events and sync batches into one stream in
// which every versioned event appears once, in version order (SPEC §5).
// Pure state: the caller sends the sync requests it asks for.
//
//   - the cursor is the highest version seen without a gap;
//   - while a sync is under way, live events wait; when it ends, the waiting
//     ones above the cursor follow the synced ones;
//   - outside a sync, a live event at cursor+1 is delivered at once, one at or
//     below the cursor is a repeat and dropped, one further on waits and asks
//     for a sync (a gap);
//   - a batch covers (since, upto]: its items above the cursor are delivered
//     and the cursor moves to upto; a batch starting past the cursor is ignored;
//   - only a batch continuing the latest request can end the sync;
//   - a batch with reset moves the cursor back to its since, once per epoch;
//   - a new connection drops the waiting events: its first sync brings them;
//   - events without a version (unread counts) pass straight through;
//   - a gap that three syncs in a row cannot fill is skipped.
'use strict';

class ImqttSequencer {
  constructor(cursor, epoch) {
    this.cursor = cursor || 0;
    this.epoch = epoch || '';
    this.syncing = false; // a sync request is outstanding
    this.reset = ''; // the epoch the cursor was last reset into
    this.budget = 0; // items the latest request may still bring
    this.from = 0; // the cursor when the latest sync began
    this.expect = 0; // the since of the latest request's next batch
    this.stalls = 0; // syncs in a row that left a gap without progress
    this.pending = new Map(); // ver -> event
  }

  // connected starts a new connection.
  connected() {
    this.pending.clear();
    this.syncing = false;
  }

  // begin records that a request for everything after the cursor is sent.
  begin(limit) {
    if (!this.syncing) this.from = this.cursor;
    this.syncing = true;
    this.budget = limit;
    this.expect = this.cursor;
  }

  // live takes an inbox event: {out: deliverable events, again: sync needed}.
  live(ev) {
    if (!ev.ver) return { out: [ev], again: false };
    if (this.syncing) {
      this.pending.set(ev.ver, ev);
      return { out: [], again: false };
    }
    if (ev.ver <= this.cursor) return { out: [], again: false };
    this.pending.set(ev.ver, ev);
    const out = this.drain([]);
    return { out, again: this.pending.size > 0 };
  }

  // resets reports whether batch b would reset the cursor.
  resets(b) {
    return !!b.reset && (b.epoch !== this.epoch || b.epoch !== this.reset);
  }

  // batch takes one sync batch: {out, again}.
  batch(b) {
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
    this.budget -= items.length;
    if (b.more) return { out, again: this.budget <= 0 };
    return this.finish(out);
  }

  finish(out) {
    this.syncing = false;
    const progress = this.cursor !== this.from;
    out = this.drain(out);
    if (this.pending.size === 0) {
      this.stalls = 0;
      return { out, again: false };
    }
    this.stalls = progress ? 0 : this.stalls + 1;
    if (this.stalls < 3) return { out, again: true };
    this.stalls = 0; // skip the hole up to the lowest waiting event
    this.cursor = Math.min(...this.pending.keys()) - 1;
    out = this.drain(out);
    return { out, again: this.pending.size > 0 };
  }

  drain(out) {
    for (const v of [...this.pending.keys()]) {
      if (v <= this.cursor) this.pending.delete(v);
    }
    for (;;) {
      const ev = this.pending.get(this.cursor + 1);
      if (!ev) return out;
      this.pending.delete(this.cursor + 1);
      out.push(ev);
      this.cursor++;
    }
  }
}

if (typeof module !== 'undefined') module.exports = { ImqttSequencer };
