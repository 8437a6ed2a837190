// What the SDK accepts from the server: every event, sync batch and heads
// answer is checked before it is sequenced or delivered, so a malformed one
// is skipped (and counted), never crashes the client, never stalls it.

// MAX_DEPTH is wire.MaxDepth: the SDK and the server refuse JSON nested
// deeper, and the client skips such an event too, so that one message is
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

// validEmoji is wire.ValidEmoji: one grapheme cluster of at most
// MAX_EMOJI_BYTES bytes holding a pictograph or a symbol ("👍🏽" is one, "a"
// and "👍👍" are none). Where Intl.Segmenter is missing, the cluster is not
// counted: the text is shown with textContent whatever it holds.
export function validEmoji(s) {
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
      if (!validEmoji(e)) return 'bad reaction emoji';
      if (c === null || typeof c !== 'object' || !(Number.isSafeInteger(c.count) && c.count >= 0)) return 'bad reaction count';
      if (!Array.isArray(c.users) || c.users.length > REACTION_USERS || c.users.length > c.count) return 'bad reaction users';
      if (!c.users.every((u) => typeof u === 'string' && u !== '')) return 'bad reaction users';
    }
  }
  return '';
}

// checkEvent says why an inbox event or sync item (already parsed) is
// not one the client can use, or returns '' if it is. me is the client's user:
// a 1:1 message in my inbox is from me or to me. Unknown kinds pass, if
// their ver is sound (the sequencer still orders them).
//
// A change of a message (recall, edit, reaction) must have a position, the
// inbox's ver or its group's seq, so the sequencer applies it once and in
// order; so must a delete (the inbox's ver: it is one's own). A receipt and
// typing have none: they are never stored, never sequenced.
export function checkEvent(ev, me) {
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
      if (!validEmoji(ev.emoji)) return 'bad emoji';
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

// checkHeads says why a heads answer is unusable, or returns ''.
export function checkHeads(h) {
  const pos = (v) => Number.isSafeInteger(v) && v >= 0;
  if (!Array.isArray(h.groups)) return 'no groups';
  for (const x of h.groups) {
    if (x === null || typeof x !== 'object' || typeof x.group !== 'string' || x.group === '') return 'bad group';
    if (!pos(x.seq) || !pos(x.join)) return 'bad seq or join';
  }
  return '';
}

// checkBatch says why a sync batch's header is unusable, or returns ''.
export function checkBatch(b) {
  const ver = (v) => Number.isSafeInteger(v) && v >= 0;
  if (!ver(b.since) || !ver(b.upto) || b.upto < b.since) return 'bad since or upto';
  if (b.items !== undefined && b.items !== null && !Array.isArray(b.items)) return 'bad items';
  if (b.epoch !== undefined && typeof b.epoch !== 'string') return 'bad epoch';
  if (b.group !== undefined && (typeof b.group !== 'string' || b.group === '')) return 'bad group';
  return '';
}
