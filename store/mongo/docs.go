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
}

// inlineDoc's MIME type is not in a field named "type": FerretDB v1 loses
// a nested document's field of that name.
type inlineDoc struct {
	Type string `bson:"mime"`
	Data []byte `bson:"data"`
}

func toMessageDoc(m *store.Message) messageDoc {
	d := messageDoc{ID: m.ID, From: m.From, To: m.To, Group: m.Group, Seq: int64(m.Seq), Type: m.Type,
		Body: m.Body, Media: m.Media, Meta: string(m.Meta), CMID: m.CMID, TS: m.TS, Mentions: m.Mentions}
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
		Body: d.Body, Media: d.Media, CMID: d.CMID, TS: d.TS, Mentions: d.Mentions}
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
type entryDoc struct {
	ID      bson.ObjectID `bson:"_id"`
	User    string        `bson:"user"`
	Ver     int64         `bson:"ver"`
	Peer    string        `bson:"peer"`
	Out     bool          `bson:"out"`
	MsgID   int64         `bson:"msg"`
	Pending bool          `bson:"pending,omitempty"`
}

func (d *entryDoc) entry() store.Entry {
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
}

func (d *convDoc) conversation() store.Conversation {
	return store.Conversation{User: d.User, Peer: d.Peer, Last: d.Last, LastTS: d.LastTS, Ver: uint64(d.Ver),
		Unread: d.Unread, ReadUpto: d.ReadUpto}
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
}

type groupDoc struct {
	ID      string `bson:"_id"`
	Name    string `bson:"name"`
	Owner   string `bson:"owner"`
	Created int64  `bson:"created"`
	Members int64  `bson:"members"`
}

type memberDoc struct {
	Group   string `bson:"group"`
	User    string `bson:"user"`
	Role    string `bson:"role"`
	JoinSeq int64  `bson:"join_seq"`
	ReadSeq int64  `bson:"read_seq"`
	Joined  int64  `bson:"joined"`
}

func (d *memberDoc) member() store.Member {
	return store.Member{Group: d.Group, User: d.User, Role: d.Role, JoinSeq: uint64(d.JoinSeq),
		ReadSeq: uint64(d.ReadSeq), Joined: d.Joined}
}

type headDoc struct {
	Group string `bson:"_id"`
	Seq   int64  `bson:"seq"`
	MsgID int64  `bson:"msg"`
	TS    int64  `bson:"ts"`
}

type groupMsgDoc struct {
	Group string `bson:"group"`
	Seq   int64  `bson:"seq"`
	MsgID int64  `bson:"msg"`
}
