package client

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	gojson "github.com/goccy/go-json"
	"github.com/klauspost/compress/gzip"

	"github.com/imqtt/imqtt/wire"
)

// Event is one downlink event handed to Config.OnEvent: a message (Msg set),
// a change of a message (Recall, Edit, Reaction or Delete set), a change of
// a group stored in its log (GroupChange set), an unread update (Unread
// set), a read receipt (Receipt set), a typing notice (Typing set), a
// membership change (Group set), a change of a conversation's settings
// (Settings set), a contact's request, acceptance or removal (Contact
// set), a block the user made or lifted (Block set), a contact coming
// online or going offline (Presence set), or another kind a newer server
// sends (only Kind and Raw set). Exactly one of the pointers is set, the
// one of Kind (kind group sets Group or GroupChange: see GroupChange).
//
// A message and a change of a message are items of one stream
// (docs/protocol.md#message-lifecycle): each has a version (Ver; in a group,
// its Seq in the group's log), comes live or from a sync, and is delivered
// exactly once and in order with the messages, so the cursor moves over
// changes as over messages. A device that missed a message and its recall
// gets the message as a tombstone (Msg.Recalled) and then the recall.
// Receipts and typing are not stored, carry no version and bypass the
// cursor: a device that was away does not get them.
type Event struct {
	Kind   string           // wire.KindMsg, wire.KindUnread, wire.KindGroup, ...
	Ver    uint64           // the user's inbox version; 0 for unversioned events and group items (their Seq orders those)
	Msg    *wire.Msg        // for Kind msg
	Unread *wire.Unread     // for Kind unread
	Group  *wire.GroupEvent // for Kind group: "added" and "removed" as they happened, or ActionLeft
	// Settings, for Kind settings: the user changed a conversation's
	// settings (on this device or another).
	Settings *wire.ConvSettings

	// The changes of a message, each the wire.Msg of its kind (its doc
	// comment lists the fields), with Ver, or Group and Seq.
	Recall   *wire.Msg // Kind recall: ID recalled by By at TS; show the message as a tombstone
	Edit     *wire.Msg // Kind edit: ID's new Body (and Meta), edited at Edited
	Reaction *wire.Msg // Kind reaction: From added (Op wire.ReactAdd) or removed (wire.ReactRemove) Emoji on ID
	Delete   *wire.Msg // Kind delete: IDs, or the whole conversation with Peer, hidden from the user's own devices

	// GroupChange, for Kind group with a Group and Seq: a change of the group
	// itself (docs/protocol.md#group-administration), stored in its log
	// as an item like a message: Action is wire.GroupUpdated (Name,
	// Notice, Avatar: those set), GroupDisbanded, GroupOwner (User is the
	// new owner), GroupMuteMember (User muted until Until, 0: unmuted),
	// GroupMuteAll (Muted), or GroupAdded / GroupRemoved; From made it.
	// A kind group event without a Seq is a membership event (Group).
	GroupChange *wire.Msg

	Receipt *wire.Receipt     // Kind receipt: the peer Peer has read the conversation up to the message Upto
	Typing  *wire.TypingEvent // Kind typing: From is typing (State start) or stopped, to the user or in Group

	// The social graph's events (docs/protocol.md#contacts-and-privacy):
	// not stored, no version, like receipts.
	Contact  *wire.ContactEvent  // Kind contact: User asked (Action request), accepted, or removed the contact
	Block    *wire.BlockEvent    // Kind block: the user (on one of its devices) blocked User, or unblocked (Blocked false)
	Presence *wire.PresenceEvent // Kind presence: the contact User came online or went offline (LastSeen)

	Raw    json.RawMessage // the event's JSON as the server sent it
	Synced bool            // it came from a sync reply rather than live on the inbox
}

// Item returns the message or the change the event carries (Msg, Recall,
// Edit, Reaction, Delete or GroupChange), or nil for any other event.
func (e Event) Item() *wire.Msg {
	switch {
	case e.Msg != nil:
		return e.Msg
	case e.Recall != nil:
		return e.Recall
	case e.Edit != nil:
		return e.Edit
	case e.Reaction != nil:
		return e.Reaction
	case e.GroupChange != nil:
		return e.GroupChange
	}
	return e.Delete
}

// groupItem reports whether ev is an item of a group's stream, ordered by
// its seq there, rather than of the inbox. A delete never is: it hides
// messages from the user's own devices only, so it takes a version in the
// user's inbox, whatever conversation it names.
func groupItem(ev Event) bool {
	m := ev.Item()
	return m != nil && m.Group != "" && ev.Kind != wire.KindDelete
}

// ActionLeft is the action of the group event a Client delivers when the
// server's list of the user's groups no longer has one it had a cursor for:
// the user left or was removed while the device was away (or the group is
// gone), and the Client syncs it no further.
const ActionLeft = "left"

// envelope is the part of every downlink payload that says what it is.
type envelope struct {
	Kind string `json:"kind"`
	Ver  uint64 `json:"ver"`
	CMID string `json:"cmid"`
}

// rawSync is a sync batch whose items keep their raw JSON, so an event from
// a sync is delivered exactly as its live twin would be.
type rawSync struct {
	wire.Sync
	Items []json.RawMessage `json:"items"`
}

// maxPayload bounds a decompressed payload (a defence against gzip bombs).
const maxPayload = 64 << 20

// gzipMagic starts every gzip stream (RFC 1952).
var gzipMagic = []byte{0x1f, 0x8b}

// gzipReaders keeps gzip readers (each with its ~40 KiB of decoder state)
// for the next payload.
var gzipReaders sync.Pool

// Decompress returns p itself, or its decompressed content when p is gzip
// (a sync reply to a request with "compress":"gzip" is). Output is limited
// to 64 MiB.
func Decompress(p []byte) ([]byte, error) {
	if !bytes.HasPrefix(p, gzipMagic) {
		return p, nil
	}
	zr, _ := gzipReaders.Get().(*gzip.Reader)
	var err error
	if zr == nil {
		zr, err = gzip.NewReader(bytes.NewReader(p))
	} else {
		err = zr.Reset(bytes.NewReader(p))
	}
	if err != nil {
		return nil, fmt.Errorf("gunzip payload: %w", err)
	}
	defer gzipReaders.Put(zr)
	// The trailer's ISIZE is the decompressed length (mod 2^32, RFC 1952
	// §2.3.1): a hint for the buffer, not trusted beyond the limit.
	size := 512
	if len(p) >= 18 {
		size = max(size, min(int(binary.LittleEndian.Uint32(p[len(p)-4:]))+1, maxPayload+1))
	}
	buf := bytes.NewBuffer(make([]byte, 0, size))
	if _, err := buf.ReadFrom(io.LimitReader(zr, maxPayload+1)); err != nil {
		return nil, fmt.Errorf("gunzip payload: %w", err)
	}
	if buf.Len() > maxPayload {
		return nil, errors.New("gunzip payload: over 64 MiB")
	}
	return buf.Bytes(), nil
}

// eventJSON holds every field of the events the SDK decodes (a message or
// a change of one, an unread update, a group event, a settings event, a
// receipt, a typing notice: they share kind, peer, group, from and ts), so
// that one Unmarshal reads an event of any kind.
type eventJSON struct {
	wire.Msg       // its Action, User and Blocked serve the group, contact and block events too
	Total    int64 `json:"total"`
	Count    int64 `json:"count"`
	// a contact event's and a presence event's
	Since    int64 `json:"since"`
	Online   bool  `json:"online"`
	LastSeen int64 `json:"last_seen"`
	// a settings event's
	Mute      bool  `json:"mute"`
	MuteUntil int64 `json:"mute_until"`
	Pin       bool  `json:"pin"`
	// a receipt's and a typing notice's
	Upto  string `json:"upto"`
	State string `json:"state"`
}

// decodeEvent turns one event's JSON into an Event, in one decoding pass.
// JSON nested deeper than wire.MaxDepth is refused before it is decoded: no
// event the server makes is, and a poison one (a meta nested 10,000 levels)
// would otherwise cost a deep recursion or hit the decoder's own limit.
func decodeEvent(raw json.RawMessage, synced bool) (Event, error) {
	if err := wire.CheckDepth(raw, wire.MaxDepth); err != nil {
		return Event{}, fmt.Errorf("decode event: %w", err)
	}
	e := new(eventJSON)
	if err := gojson.Unmarshal(raw, e); err != nil {
		// A kind this SDK does not know may use a field name of ours with
		// another type: it is still delivered, with its kind and version.
		var env envelope
		if gojson.Unmarshal(raw, &env) != nil {
			return Event{}, fmt.Errorf("decode event: %w", err)
		}
		switch env.Kind {
		case wire.KindMsg, "", wire.KindUnread, wire.KindRecall, wire.KindEdit, wire.KindReaction, wire.KindDelete,
			wire.KindReceipt, wire.KindTyping, wire.KindGroup, wire.KindContact, wire.KindBlock, wire.KindPresence:
			// A kind of ours that does not decode: a versioned one is
			// skipped, and the sync the next one's gap starts covers it.
			return Event{}, fmt.Errorf("decode %s ver %d: %w", cmp.Or(env.Kind, wire.KindMsg), env.Ver, err)
		}
		return Event{Kind: env.Kind, Ver: env.Ver, Raw: raw, Synced: synced}, nil
	}
	ev := Event{Kind: e.Kind, Ver: e.Ver, Raw: raw, Synced: synced}
	switch e.Kind {
	case wire.KindMsg, "":
		e.Msg.Kind = wire.KindMsg // sync items may leave the kind out
		ev.Kind, ev.Msg = wire.KindMsg, &e.Msg
	case wire.KindRecall:
		ev.Recall = &e.Msg
	case wire.KindEdit:
		ev.Edit = &e.Msg
	case wire.KindReaction:
		ev.Reaction = &e.Msg
	case wire.KindDelete:
		ev.Delete = &e.Msg
	case wire.KindUnread:
		ev.Unread = &wire.Unread{Kind: e.Kind, Total: e.Total, Peer: e.Peer, Group: e.Group, Count: e.Count}
	case wire.KindGroup:
		if e.Seq > 0 && e.Group != "" { // stored in the group's log: an item of its stream
			ev.GroupChange = &e.Msg
			break
		}
		ev.Group = &wire.GroupEvent{Kind: e.Kind, Group: e.Group, Action: e.Action, By: e.By}
	case wire.KindSettings:
		ev.Settings = &wire.ConvSettings{Kind: e.Kind, Peer: e.Peer, Group: e.Group, Mute: e.Mute, MuteUntil: e.MuteUntil, Pin: e.Pin}
	case wire.KindReceipt:
		ev.Ver = 0 // not stored: never a place in the stream, whatever it claims
		ev.Receipt = &wire.Receipt{Kind: e.Kind, Peer: e.Peer, Upto: e.Upto, TS: e.TS}
	case wire.KindTyping:
		ev.Ver = 0
		ev.Typing = &wire.TypingEvent{Kind: e.Kind, From: e.From, Peer: e.Peer, Group: e.Group, State: e.State}
	case wire.KindContact:
		ev.Ver = 0
		ev.Contact = &wire.ContactEvent{Kind: e.Kind, Action: e.Action, User: e.User, Since: e.Since}
	case wire.KindBlock:
		ev.Ver = 0
		ev.Block = &wire.BlockEvent{Kind: e.Kind, User: e.User, Blocked: e.Blocked}
	case wire.KindPresence:
		ev.Ver = 0
		ev.Presence = &wire.PresenceEvent{Kind: e.Kind, User: e.User, Online: e.Online, LastSeen: e.LastSeen}
	}
	return ev, nil
}

// deviceJSON holds every field of the events on the device topic the loop
// handles (a sync batch, an error), decoded in one pass.
type deviceJSON struct {
	rawSync
	Groups  []wire.GroupHead `json:"groups"` // a heads answer's
	CMID    string           `json:"cmid"`
	Code    string           `json:"code"`
	Message string           `json:"message"`
}

// decodeDevice decodes an event on the device topic. A sync batch too deep
// or odd for one decoding pass (one poison item: a meta nested 10,000 levels
// fails the whole document) is split instead, so that its other items and
// its Upto still arrive (see splitSync).
func decodeDevice(p []byte) (deviceJSON, error) {
	var d deviceJSON
	err := gojson.Unmarshal(p, &d)
	if err == nil {
		return d, nil
	}
	rs, serr := splitSync(p)
	if serr != nil || rs.Kind != wire.KindSync {
		return deviceJSON{}, err
	}
	return deviceJSON{rawSync: rs}, nil
}

// parallelItems is the batch size from which sync items are decoded on
// several goroutines (a catch-up's batches hold hundreds).
const parallelItems = 64

// decodeSyncItems decodes the items of a sync batch, in order; a big batch
// on up to GOMAXPROCS goroutines, each decoding a contiguous share. An item
// that does not decode is left out, and bad says why, one error per item:
// one bad item must not hold up the others, and the batch's Upto covers it.
func decodeSyncItems(rs *rawSync) (b wire.Sync, evs []Event, bad []error) {
	evs = make([]Event, len(rs.Items))
	errs := make([]error, len(rs.Items))
	decode := func(from, to int) {
		for i := from; i < to; i++ {
			evs[i], errs[i] = decodeEvent(rs.Items[i], true)
		}
	}
	n := len(evs)
	workers := min(runtime.GOMAXPROCS(0), 4, n/(parallelItems/2))
	if workers <= 1 {
		decode(0, n)
	} else {
		var wg sync.WaitGroup
		for w := 1; w < workers; w++ {
			wg.Go(func() { decode(w*n/workers, (w+1)*n/workers) })
		}
		decode(0, n/workers)
		wg.Wait()
	}
	for i, err := range errs {
		if err != nil {
			bad = append(bad, fmt.Errorf("item %d: %w", i, err))
		}
	}
	if len(bad) > 0 {
		good := evs[:0]
		for i, ev := range evs {
			if errs[i] == nil {
				good = append(good, ev)
			}
		}
		evs = good
	}
	return rs.Sync, evs, bad
}

// decodeSync decodes a (decompressed) sync batch and its items, leaving out
// (and saying why in bad) the items that do not decode.
func decodeSync(p []byte) (b wire.Sync, evs []Event, bad []error, err error) {
	var rs rawSync
	if err := gojson.Unmarshal(p, &rs); err != nil {
		var serr error
		if rs, serr = splitSync(p); serr != nil {
			return wire.Sync{}, nil, nil, fmt.Errorf("decode sync: %w", err)
		}
	}
	b, evs, bad = decodeSyncItems(&rs)
	return b, evs, bad, nil
}

// splitSync decodes a sync batch whose JSON as a whole does not decode
// because of what is inside its items (too deep for the decoder, or not the
// types an item has): it finds the items array with a scan that keeps no
// stack (so any depth costs only time), decodes the batch without its
// items, and returns each item's raw JSON, to be decoded, or not, alone.
// The items array is the top-level object's last "items" key, as a decoder
// would take it.
func splitSync(p []byte) (rawSync, error) {
	open, end, items, err := scanItems(p)
	if err != nil {
		return rawSync{}, fmt.Errorf("split sync: %w", err)
	}
	head := make([]byte, 0, open+1+len(p)-end)
	head = append(append(head, p[:open+1]...), p[end:]...)
	var rs rawSync
	if err := gojson.Unmarshal(head, &rs); err != nil {
		return rawSync{}, fmt.Errorf("split sync: %w", err)
	}
	rs.Items = items
	return rs, nil
}

// errNoItems says a payload is not an object with an items array.
var errNoItems = errors.New("no items array")

// scanItems finds the items array of the JSON object p: the offsets of its
// '[' and ']', and each element's bytes. It checks only what it needs to:
// the strings and the nesting of brackets, not the JSON grammar.
func scanItems(p []byte) (open, end int, items []json.RawMessage, err error) {
	var (
		depth    int
		inString bool
		escaped  bool
		strStart int
		lastStr  []byte // the last string that ended at depth 1
		key      []byte // the key whose value is being read at depth 1
		inItems  bool   // between the '[' and ']' of a candidate items array
		elem     = -1   // where the current element starts
		cur      []json.RawMessage
		curOpen  int
	)
	open, end = -1, -1
	first := true
	for i, c := range p {
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
				if depth == 1 {
					lastStr = p[strStart+1 : i]
				}
			}
			continue
		}
		if first {
			if isSpace(c) {
				continue
			}
			if c != '{' {
				return 0, 0, nil, errNoItems
			}
			first = false
		}
		if inItems && depth == 2 && elem < 0 && !isSpace(c) && c != ',' && c != ']' {
			elem = i
		}
		switch c {
		case '"':
			inString, strStart = true, i
		case ':':
			if depth == 1 {
				key = lastStr
			}
		case ',':
			if depth == 1 {
				key = nil
			}
			if inItems && depth == 2 && elem >= 0 {
				cur = append(cur, trimSpace(p[elem:i]))
				elem = -1
			}
		case '{', '[':
			depth++
			if depth == 2 && c == '[' && string(key) == "items" {
				inItems, curOpen, cur, elem = true, i, nil, -1
			}
		case '}', ']':
			if inItems && depth == 2 {
				if c != ']' {
					return 0, 0, nil, errNoItems
				}
				if elem >= 0 {
					cur = append(cur, trimSpace(p[elem:i]))
				}
				inItems, elem = false, -1
				open, end, items = curOpen, i, cur
			}
			depth--
			if depth < 0 {
				return 0, 0, nil, errNoItems
			}
		}
	}
	if open < 0 || inString || depth != 0 {
		return 0, 0, nil, errNoItems
	}
	return open, end, items, nil
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func trimSpace(b []byte) json.RawMessage {
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// replyJSON holds every field of an ack and of an error event, which
// answer a Send on the device topic, decoded in one pass.
type replyJSON struct {
	Kind    string `json:"kind"`
	CMID    string `json:"cmid"`
	ID      string `json:"id"`
	Ver     uint64 `json:"ver"`
	TS      int64  `json:"ts"`
	Group   string `json:"group"`
	Seq     uint64 `json:"seq"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// syncPrefix starts every sync batch the server sends uncompressed (Kind is
// wire.Sync's first field): such a payload is not a reply to a Send.
var syncPrefix = []byte(`{"kind":"sync"`)

// NewCMID returns a random client message ID ("c-" and 24 hex digits).
func NewCMID() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return "c-" + hex.EncodeToString(b[:])
}

// Retryable reports whether err is a server answer that says "nothing was
// done, send the same thing again later": codes unavailable and busy.
func Retryable(err error) bool {
	var we *wire.Error
	return errors.As(err, &we) && (we.Code == wire.CodeUnavailable || we.Code == wire.CodeBusy || we.Code == wire.CodeRateLimited)
}
