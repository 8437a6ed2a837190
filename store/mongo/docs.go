package mongo

import (
	"encoding/json"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/imqtt/imqtt/store"
)

// The documents as stored. Numbers the store declares unsigned are int64
// here: MongoDB has no unsigned integers, and versions and seqs stay far
// below 2^63.

type messageDoc struct {
	ID     int64      `bson:"_id"`
	From   string     `bson:"from"`
	To     string     `bson:"to,omitempty"`
	Group  string     `bson:"group,omitempty"`
	Seq    int64      `bson:"seq,omitempty"`
	Type   string     `bson:"type"`
	Body   string     `bson:"body"`
	Media  string     `bson:"media,omitempty"`
	Meta   string     `bson:"meta,omitempty"` // JSON text
	CMID   string     `bson:"cmid,omitempty"`
	TS     int64      `bson:"ts"`
	Inline *inlineDoc `bson:"inline,omitempty"`
	// Mentions: absent in documents written before them, and when none.
	Mentions []string `bson:"mentions,omitempty"`
	// The lifecycle (change.go): absent in documents written before it,
	// which is their zero value. Recalled and Edited are written by atomic
	// updates (life.go), never by a replace.
	ReplyTo    int64      `bson:"reply_to,omitempty"`
	Recalled   int64      `bson:"recalled,omitempty"`
	RecalledBy string     `bson:"recalled_by,omitempty"`
	Edited     int64      `bson:"edited,omitempty"`
	Reacted    bool       `bson:"reacted,omitempty"`
	Change     *changeDoc `bson:"change,omitempty"`
	// TTL: burn after reading (retention.go); absent: none.
	TTL int `bson:"ttl,omitempty"`
}

// changeDoc is a change record's store.Change. The emoji is a value, never
// a field name.
type changeDoc struct {
	Kind   string  `bson:"kind"`
	Target int64   `bson:"target,omitempty"`
	Emoji  string  `bson:"emoji,omitempty"`
	Add    bool    `bson:"add,omitempty"`
	IDs    []int64 `bson:"ids,omitempty"`
	Peer   string  `bson:"peer,omitempty"`
	Count  int64   `bson:"count,omitempty"`
	// Admin is a group administration record's store.GroupChange, as JSON
	// (its optional fields stay apart from absent ones).
	Admin string `bson:"admin,omitempty"`
}

// inlineDoc's MIME type is not in a field named "type": FerretDB v1 loses
// a nested document's field of that name.
type inlineDoc struct {
	Type string `bson:"mime"`
	Data []byte `bson:"data"`
}

func toMessageDoc(m *store.Message) messageDoc {
	d := messageDoc{ID: m.ID, From: m.From, To: m.To, Group: m.Group, Seq: int64(m.Seq), Type: m.Type,
		Body: m.Body, Media: m.Media, Meta: string(m.Meta), CMID: m.CMID, TS: m.TS, Mentions: m.Mentions,
		ReplyTo: m.ReplyTo, Recalled: m.Recalled, RecalledBy: m.RecalledBy, Edited: m.Edited, Reacted: m.Reacted, TTL: m.TTL}
	if c := m.Change; c != nil {
		d.Change = &changeDoc{Kind: c.Kind, Target: c.Target, Emoji: c.Emoji, Add: c.Add, IDs: c.IDs, Peer: c.Peer,
			Count: int64(c.Count)}
		if c.Admin != nil {
			admin, _ := json.Marshal(c.Admin) // strings, ints and bools: cannot fail
			d.Change.Admin = string(admin)
		}
	}
	if m.Inline != nil {
		d.Inline = &inlineDoc{Type: m.Inline.Type, Data: m.Inline.Data}
		if d.Inline.Data == nil {
			d.Inline.Data = []byte{}
		}
	}
	return d
}

func (d *messageDoc) message() store.Message {
	m := store.Message{ID: d.ID, From: d.From, To: d.To, Group: d.Group, Seq: uint64(d.Seq), Type: d.Type,
		Body: d.Body, Media: d.Media, CMID: d.CMID, TS: d.TS, Mentions: d.Mentions,
		ReplyTo: d.ReplyTo, Recalled: d.Recalled, RecalledBy: d.RecalledBy, Edited: d.Edited, Reacted: d.Reacted, TTL: d.TTL}
	if c := d.Change; c != nil {
		m.Change = &store.Change{Kind: c.Kind, Target: c.Target, Emoji: c.Emoji, Add: c.Add, IDs: c.IDs, Peer: c.Peer,
			Count: uint64(c.Count)}
		if c.Admin != "" {
			m.Change.Admin = new(store.GroupChange)
			_ = json.Unmarshal([]byte(c.Admin), m.Change.Admin) // written by toMessageDoc
		}
	}
	if d.Meta != "" {
		m.Meta = json.RawMessage(d.Meta)
	}
	if d.Inline != nil {
		m.Inline = &store.Inline{Type: d.Inline.Type, Data: d.Inline.Data}
	}
	return m
}

// entryDoc is one index row. Pending marks an incoming entry whose
// conversation row has not yet counted it as unread (see commit.go).
// A change record's entry (store.Entry.Change: Change set) keeps its peer
// in CPeer and has no peer: it is in the inbox ({user, ver}) but not in
// the history index ({user, peer, msg}), so History, SetRead's count and
// the hides never meet it.
type entryDoc struct {
	ID      bson.ObjectID `bson:"_id"`
	User    string        `bson:"user"`
	Ver     int64         `bson:"ver"`
	Peer    string        `bson:"peer,omitempty"`
	CPeer   string        `bson:"cpeer,omitempty"`
	Change  bool          `bson:"change,omitempty"`
	Out     bool          `bson:"out"`
	MsgID   int64         `bson:"msg"`
	Pending bool          `bson:"pending,omitempty"`
}

func toEntryDoc(e *store.Entry) entryDoc {
	d := entryDoc{ID: bson.NewObjectID(), User: e.User, Ver: int64(e.Ver), Peer: e.Peer, Out: e.Out, MsgID: e.MsgID}
	if e.Change {
		d.Peer, d.CPeer, d.Change = "", e.Peer, true
	}
	return d
}

func (d *entryDoc) entry() store.Entry {
	if d.Change {
		return store.Entry{User: d.User, Ver: uint64(d.Ver), Peer: d.CPeer, Out: d.Out, MsgID: d.MsgID, Change: true}
	}
	return store.Entry{User: d.User, Ver: uint64(d.Ver), Peer: d.Peer, Out: d.Out, MsgID: d.MsgID}
}

type convDoc struct {
	User     string `bson:"user"`
	Peer     string `bson:"peer"`
	Last     int64  `bson:"last"`
	LastTS   int64  `bson:"last_ts"`
	Ver      int64  `bson:"ver"`
	Unread   int64  `bson:"unread"`
	ReadUpto int64  `bson:"read_upto"`
	PeerRead int64  `bson:"peer_read,omitempty"` // absent: 0
}

func (d *convDoc) conversation() store.Conversation {
	return store.Conversation{User: d.User, Peer: d.Peer, Last: d.Last, LastTS: d.LastTS, Ver: uint64(d.Ver),
		Unread: d.Unread, ReadUpto: d.ReadUpto, PeerRead: d.PeerRead}
}

type ackDoc struct {
	From  string `bson:"from"`
	CMID  string `bson:"cmid"`
	ID    int64  `bson:"msg"`
	Ver   int64  `bson:"ver"`
	TS    int64  `bson:"ts"`
	Group string `bson:"group,omitempty"`
	Seq   int64  `bson:"seq,omitempty"`
}

func (d *ackDoc) ack() store.Ack {
	return store.Ack{From: d.From, CMID: d.CMID, ID: d.ID, Ver: uint64(d.Ver), TS: d.TS, Group: d.Group, Seq: uint64(d.Seq)}
}

type grantDoc struct {
	Media     string `bson:"media"`
	Principal string `bson:"principal"`
	MsgID     int64  `bson:"msg"` // absent in rows from before it
}

type groupDoc struct {
	ID      string `bson:"_id"`
	Name    string `bson:"name"`
	Owner   string `bson:"owner"`
	Created int64  `bson:"created"`
	Members int64  `bson:"members"`
	// Administration (store.GroupUpdate); absent in rows from before it.
	Notice    string `bson:"notice,omitempty"`
	Avatar    string `bson:"avatar,omitempty"`
	Muted     bool   `bson:"muted,omitempty"`
	Disbanded int64  `bson:"disbanded,omitempty"`
	Changed   int64  `bson:"changed,omitempty"`
}

func (d *groupDoc) group() store.Group {
	return store.Group{ID: d.ID, Name: d.Name, Owner: d.Owner, Created: d.Created, Members: int(d.Members),
		Notice: d.Notice, Avatar: d.Avatar, Muted: d.Muted, Disbanded: d.Disbanded, Changed: uint64(d.Changed)}
}

// memberDoc: the change counts and MentionSeq are absent in rows written
// before the lifecycle, where 0 is right (there were no change records).
type memberDoc struct {
	Group       string `bson:"group"`
	User        string `bson:"user"`
	Role        string `bson:"role"`
	JoinSeq     int64  `bson:"join_seq"`
	ReadSeq     int64  `bson:"read_seq"`
	Joined      int64  `bson:"joined"`
	JoinChanges int64  `bson:"join_changes,omitempty"`
	ReadChanges int64  `bson:"read_changes,omitempty"`
	MentionSeq  int64  `bson:"mention_seq,omitempty"`
	MuteUntil   int64  `bson:"mute_until,omitempty"`
	Changed     int64  `bson:"changed,omitempty"`
}

func (d *memberDoc) member() store.Member {
	return store.Member{Group: d.Group, User: d.User, Role: d.Role, JoinSeq: uint64(d.JoinSeq),
		ReadSeq: uint64(d.ReadSeq), Joined: d.Joined, JoinChanges: uint64(d.JoinChanges),
		ReadChanges: uint64(d.ReadChanges), MentionSeq: uint64(d.MentionSeq), MuteUntil: d.MuteUntil,
		Changed: uint64(d.Changed)}
}

// headDoc is a group's head. MsgSeq is the seq of the message MsgID (a
// change record's head moves Seq but not MsgID), so a message head moves
// MsgID and TS only past it, whatever order the heads of several nodes
// land in. Heads written before the lifecycle have no MsgSeq: their Seq is
// their message's (moveHeads).
type headDoc struct {
	Group      string `bson:"_id"`
	Seq        int64  `bson:"seq"`
	MsgID      int64  `bson:"msg"`
	TS         int64  `bson:"ts"`
	MsgSeq     int64  `bson:"msg_seq"`
	Changes    int64  `bson:"changes,omitempty"`
	MentionAll int64  `bson:"mention_all,omitempty"`
	Disbanded  int64  `bson:"disbanded,omitempty"`
	// A retention sweep's (retention.go); absent: never swept.
	Floor        int64 `bson:"floor,omitempty"`
	FloorChanges int64 `bson:"floor_changes,omitempty"`
}

func (d *headDoc) head(group string) store.GroupHead {
	return store.GroupHead{Group: group, Seq: uint64(d.Seq), MsgID: d.MsgID, TS: d.TS, Changes: uint64(d.Changes),
		MentionAll: uint64(d.MentionAll), Disbanded: d.Disbanded, Floor: uint64(d.Floor), FloorChanges: uint64(d.FloorChanges)}
}

type groupMsgDoc struct {
	Group string `bson:"group"`
	Seq   int64  `bson:"seq"`
	MsgID int64  `bson:"msg"`
}

// groupChangeDoc indexes a group's change records by seq: Count is the
// record's store.Change.Count, so the change count up to a read position
// is one seek ({group, seq} descending from it).
type groupChangeDoc struct {
	Group string `bson:"group"`
	Seq   int64  `bson:"seq"`
	Count int64  `bson:"n"`
}
