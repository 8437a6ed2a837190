package wire

import "strings"

// Event is anything the server sends a client on one of its topics: a
// message, an ack, an error, a sync batch, unread counts, a group change,
// group heads, a notice. EventKind is the "kind" the event carries on the
// wire, whatever its Kind field holds (an Error is sent over HTTP without
// one): the server counts and routes events by it without reading them back.
type Event interface {
	EventKind() string
}

// KindNotice is an operator's notice on the inbox (POST /v1/admin/notice).
const KindNotice = "notice"

// Notice is an operator's message to users:
// {"kind":"notice","text":"...","ts":1764300000000}. Notices are not stored
// and carry no ver: a device that is offline does not get them.
type Notice struct {
	Kind string `json:"kind"` // "notice"
	Text string `json:"text"`
	TS   int64  `json:"ts"`
}

// EventKind of each event type.
func (m Msg) EventKind() string {
	if m.Kind != "" {
		return m.Kind
	}
	return KindMsg
}
func (Ack) EventKind() string          { return KindAck }
func (*Error) EventKind() string       { return KindError }
func (Sync) EventKind() string         { return KindSync }
func (Resync) EventKind() string       { return KindResync }
func (Unread) EventKind() string       { return KindUnread }
func (GroupEvent) EventKind() string   { return KindGroup }
func (Heads) EventKind() string        { return KindHeads }
func (Notice) EventKind() string       { return KindNotice }
func (ConvSettings) EventKind() string { return KindSettings }
func (Receipt) EventKind() string      { return KindReceipt }
func (TypingEvent) EventKind() string  { return KindTyping }
func (ContactEvent) EventKind() string { return KindContact }
func (BlockEvent) EventKind() string   { return KindBlock }

// EventKinds are the kinds of every Event above.
var EventKinds = []string{KindAck, KindError, KindMsg, KindSync, KindUnread, KindGroup, KindHeads, KindNotice, KindResync,
	KindSettings, KindRecall, KindEdit, KindDelete, KindReaction, KindReceipt, KindTyping,
	KindContact, KindBlock, KindPresence}

var (
	_ Event = Msg{}
	_ Event = Ack{}
	_ Event = (*Error)(nil)
	_ Event = Sync{}
	_ Event = Unread{}
	_ Event = GroupEvent{}
	_ Event = Heads{}
	_ Event = Notice{}
	_ Event = Resync{}
	_ Event = ConvSettings{}
	_ Event = Receipt{}
	_ Event = TypingEvent{}
)

// userTopics is the root of every topic the server publishes on; no other
// file writes it.
const userTopics = "im/u/"

// TopicUser is the user whose topics topic is under (im/u/{user}/...), or
// "" if it is under none.
func TopicUser(topic string) string {
	rest, ok := strings.CutPrefix(topic, userTopics)
	if !ok {
		return ""
	}
	user, _, ok := strings.Cut(rest, "/")
	if !ok {
		return ""
	}
	return user
}
