// Cursor stores: where a Client keeps its place in the inbox and in each
// group between connections and runs. A cursor is a plain JSON value,
//
//   {ver, epoch, groups: {g1: {seq, epoch[, gone]}, ...}}
//
// the inbox's highest ver seen without a gap and the epoch of the sync
// batch it came from, and the same per group by seq. The Client saves it
// after every delivery, so a program that is restarted resumes where its
// handler left off: each event is delivered once. A store is any object with
// load() and save(cursor), either of which may return a promise.

// emptyCursor is where a new device starts: the whole inbox, and each group
// from its join.
export function emptyCursor() {
  return { ver: 0, epoch: '', groups: {} };
}

// normalCursor returns c if it is a sound cursor, else the empty one (a
// store written by something else, or damaged, costs a full sync, never a
// crash or a skipped message).
export function normalCursor(c) {
  if (c === null || typeof c !== 'object' || Array.isArray(c)) return emptyCursor();
  const ver = Number.isSafeInteger(c.ver) && c.ver >= 0 ? c.ver : 0;
  const epoch = typeof c.epoch === 'string' ? c.epoch : '';
  const groups = {};
  if (c.groups !== null && typeof c.groups === 'object' && !Array.isArray(c.groups)) {
    for (const [g, x] of Object.entries(c.groups)) {
      if (x && Number.isSafeInteger(x.seq) && x.seq >= 0) {
        groups[g] = { seq: x.seq, epoch: typeof x.epoch === 'string' ? x.epoch : '' };
        if (x.gone === true) groups[g].gone = true;
      }
    }
  }
  return { ...c, ver, epoch, groups };
}

// MemoryCursor keeps the cursor in memory: a Client made again with the same
// MemoryCursor resumes, a new process starts again (and syncs everything).
export class MemoryCursor {
  constructor(initial) {
    this.cursor = initial ? structuredClone(initial) : null;
  }

  load() {
    return this.cursor ? structuredClone(this.cursor) : null;
  }

  save(cursor) {
    this.cursor = structuredClone(cursor);
  }
}

// LocalStorageCursor keeps the cursor in a browser's localStorage (or any
// object with getItem and setItem) under key: one per user and device.
export class LocalStorageCursor {
  constructor(key, storage = globalThis.localStorage) {
    if (!storage) throw new Error('imqtt: no localStorage here; use MemoryCursor or a store of your own');
    this.key = key;
    this.storage = storage;
  }

  load() {
    try {
      return JSON.parse(this.storage.getItem(this.key));
    } catch {
      return null;
    }
  }

  save(cursor) {
    this.storage.setItem(this.key, JSON.stringify(cursor));
  }
}
