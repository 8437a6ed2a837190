package deliver_test

import (
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"

	"github.com/imqtt/imqtt/internal/deliver"
	"github.com/imqtt/imqtt/wire"
)

// delivery is one payload a sink was handed.
type delivery struct {
	op, user, topic string
	payload         []byte
}

// sinks is every end of a Path at once: Local, Remote, Counter and
// Subscriber, recording in order.
type sinks struct {
	mu      sync.Mutex
	local   []delivery
	remote  []delivery
	counted map[string]int
	seen    []string // "to.Topic() kind"
	events  []wire.Event
	fail    string // a user whose local delivery fails
}

func (s *sinks) PublishUser(user, topic string, payload []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if user == s.fail {
		return errors.New("injected")
	}
	s.local = append(s.local, delivery{op: "local", user: user, topic: topic, payload: payload})
	return nil
}

func (s *sinks) User(user string, payload []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.remote = append(s.remote, delivery{op: "user", user: user, payload: payload})
}

func (s *sinks) Everyone(payload []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.remote = append(s.remote, delivery{op: "everyone", payload: payload})
}

func (s *sinks) PublishedOut(kind string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.counted == nil {
		s.counted = map[string]int{}
	}
	s.counted[kind]++
}

func (s *sinks) Sent(to deliver.To, ev wire.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen = append(s.seen, to.Topic()+" "+ev.EventKind())
	s.events = append(s.events, ev)
}

func newPath(remote bool) (*deliver.Path, *sinks) {
	s := &sinks{}
	o := deliver.Options{Local: s, Counter: s, Subscribers: []deliver.Subscriber{s},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if remote {
		o.Remote = s
	}
	return deliver.New(o), s
}

// same reports whether two payloads are one buffer: marshalled once.
func same(a, b []byte) bool { return len(a) > 0 && len(a) == len(b) && &a[0] == &b[0] }

func mustMarshal(t *testing.T, ev wire.Event) []byte {
	t.Helper()
	b, err := wire.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A user-addressed event goes to the user's inbox here and, as the same
// bytes with its kind, to the other nodes; subscribers see it typed.
func TestSendToUser(t *testing.T) {
	p, s := newPath(true)
	msg := wire.Msg{Kind: wire.KindMsg, ID: "7", Ver: 3, From: "alice", To: "bob", Type: "text", Body: "hi"}
	if err := p.Send(deliver.User("bob"), msg); err != nil {
		t.Fatal(err)
	}
	if len(s.local) != 1 || s.local[0].user != "bob" || s.local[0].topic != "im/u/bob/inbox" {
		t.Fatalf("local %+v", s.local)
	}
	if want := mustMarshal(t, msg); string(s.local[0].payload) != string(want) {
		t.Fatalf("payload %s, want %s", s.local[0].payload, want)
	}
	if len(s.remote) != 1 || s.remote[0].op != "user" || s.remote[0].user != "bob" {
		t.Fatalf("remote %+v", s.remote)
	}
	if !same(s.local[0].payload, s.remote[0].payload) {
		t.Error("local and remote got different buffers: marshalled twice")
	}
	if s.counted["msg"] != 1 || len(s.counted) != 1 {
		t.Errorf("counted %v", s.counted)
	}
	if got, ok := s.events[0].(wire.Msg); !ok || got.ID != msg.ID || got.Body != msg.Body {
		t.Errorf("subscriber saw %#v", s.events[0])
	}
	if !slices.Equal(s.seen, []string{"im/u/bob/inbox msg"}) {
		t.Errorf("subscriber saw %q", s.seen)
	}
}

// A device-addressed event (an answer to what the device asked) goes to
// that device's topic here, never to other nodes.
func TestSendToDevice(t *testing.T) {
	p, s := newPath(true)
	if err := p.Send(deliver.Device("bob", "phone"), wire.Ack{Kind: wire.KindAck, CMID: "c-1", ID: "9"}); err != nil {
		t.Fatal(err)
	}
	if err := p.Send(deliver.Device("bob", "phone"), &wire.Error{Kind: wire.KindError, Code: wire.CodeBusy}); err != nil {
		t.Fatal(err)
	}
	if len(s.local) != 2 || s.local[0].topic != "im/u/bob/d/phone" || s.local[1].user != "bob" {
		t.Fatalf("local %+v", s.local)
	}
	if len(s.remote) != 0 {
		t.Fatalf("device events forwarded to other nodes: %+v", s.remote)
	}
	if s.counted["ack"] != 1 || s.counted["error"] != 1 {
		t.Errorf("counted %v", s.counted)
	}
	if !slices.Equal(s.seen, []string{"im/u/bob/d/phone ack", "im/u/bob/d/phone error"}) {
		t.Errorf("subscriber saw %q", s.seen)
	}
}

// odd is an event whose kind is not what its JSON says: the path counts
// and forwards by EventKind, never by reading the payload.
type odd struct {
	Kind string `json:"kind"`
}

func (odd) EventKind() string { return wire.KindNotice }

func TestCountedByKindNotPayload(t *testing.T) {
	p, s := newPath(true)
	if err := p.Send(deliver.User("bob"), odd{Kind: "msg"}); err != nil {
		t.Fatal(err)
	}
	if s.counted["notice"] != 1 || s.counted["msg"] != 0 {
		t.Errorf("counted %v, want by EventKind", s.counted)
	}
}

// An encoded event (a gzip sync batch) goes out as the caller's bytes,
// counted by the event's kind.
func TestSendEncoded(t *testing.T) {
	p, s := newPath(true)
	gz := []byte("\x1f\x8b\x08 compressed batch")
	if err := p.SendEncoded(deliver.Device("bob", "phone"), wire.Sync{Kind: wire.KindSync, Upto: 5}, gz); err != nil {
		t.Fatal(err)
	}
	if len(s.local) != 1 || !same(s.local[0].payload, gz) || s.local[0].topic != "im/u/bob/d/phone" {
		t.Fatalf("local %+v", s.local)
	}
	if s.counted["sync"] != 1 || len(s.remote) != 0 {
		t.Errorf("counted %v, remote %+v", s.counted, s.remote)
	}
	if b, ok := s.events[0].(wire.Sync); !ok || b.Upto != 5 {
		t.Errorf("subscriber saw %#v", s.events[0])
	}
}

// Group fan-out: one marshal for every member here, each counted and seen,
// and nothing forwarded (the other nodes fan out their own members).
func TestSendManyMarshalsOnce(t *testing.T) {
	p, s := newPath(true)
	users := []string{"a", "b", "c"}
	n, err := p.SendMany(users, wire.Msg{Kind: wire.KindMsg, Group: "g1", Seq: 4, Body: "x"})
	if err != nil || n != 3 {
		t.Fatalf("SendMany = %d, %v", n, err)
	}
	if len(s.local) != 3 {
		t.Fatalf("local %+v", s.local)
	}
	for i, d := range s.local {
		if d.user != users[i] || d.topic != wire.InboxTopic(users[i]) || !same(d.payload, s.local[0].payload) {
			t.Errorf("delivery %d: %s %s, shared buffer %v", i, d.user, d.topic, same(d.payload, s.local[0].payload))
		}
	}
	if len(s.remote) != 0 {
		t.Errorf("group fan-out forwarded: %+v", s.remote)
	}
	if s.counted["msg"] != 3 || len(s.seen) != 3 || s.seen[2] != "im/u/c/inbox msg" {
		t.Errorf("counted %v, seen %q", s.counted, s.seen)
	}
	if n, err := p.SendMany(nil, wire.Msg{}); n != 0 || err != nil || len(s.local) != 3 {
		t.Errorf("SendMany(nil) = %d, %v", n, err)
	}
}

// Broadcast: each user here, and one forward for every other node's users,
// counted once (this node cannot know their number).
func TestBroadcast(t *testing.T) {
	p, s := newPath(true)
	n, err := p.Broadcast([]string{"a", "b"}, wire.Notice{Kind: wire.KindNotice, Text: "maintenance"})
	if err != nil || n != 2 {
		t.Fatalf("Broadcast = %d, %v", n, err)
	}
	if len(s.remote) != 1 || s.remote[0].op != "everyone" || !same(s.remote[0].payload, s.local[1].payload) {
		t.Fatalf("remote %+v", s.remote)
	}
	if s.counted["notice"] != 3 {
		t.Errorf("counted %v, want 2 here and 1 for the other nodes", s.counted)
	}
	// One node: no remote, no panic.
	p1, s1 := newPath(false)
	if n, err := p1.Broadcast([]string{"a"}, wire.Notice{Kind: wire.KindNotice}); n != 1 || err != nil || len(s1.remote) != 0 {
		t.Fatalf("one node: %d %v %+v", n, err, s1.remote)
	}
}

// What another node forwarded is delivered here, but not counted, forwarded
// again or shown to subscribers: the sending node did each once.
func TestArrived(t *testing.T) {
	p, s := newPath(true)
	payload := []byte(`{"kind":"unread","total":1}`)
	p.Arrived("bob", payload)
	if len(s.local) != 1 || s.local[0].topic != "im/u/bob/inbox" || !same(s.local[0].payload, payload) {
		t.Fatalf("local %+v", s.local)
	}
	if len(s.remote) != 0 || len(s.seen) != 0 {
		t.Fatalf("arrived event re-forwarded %+v or shown to subscribers %q", s.remote, s.seen)
	}
	if len(s.counted) != 0 {
		t.Errorf("counted again on arrival: %v", s.counted)
	}
}

// A local failure is returned (and logged), and does not stop the other
// sinks or the other users of a fan-out.
func TestLocalFailure(t *testing.T) {
	p, s := newPath(true)
	s.fail = "bob"
	if err := p.Send(deliver.User("bob"), wire.Unread{Kind: wire.KindUnread}); err == nil {
		t.Fatal("no error from a failed local delivery")
	}
	if len(s.remote) != 1 || len(s.seen) != 1 {
		t.Fatalf("remote %+v, seen %q", s.remote, s.seen)
	}
	n, err := p.SendMany([]string{"a", "bob", "c"}, wire.Msg{Kind: wire.KindMsg})
	if err == nil || n != 2 || len(s.local) != 2 {
		t.Fatalf("SendMany = %d, %v; local %+v", n, err, s.local)
	}
}

// unmarshallable cannot be encoded: nothing is delivered or counted.
type unmarshallable struct{ C chan int }

func (unmarshallable) EventKind() string { return "msg" }

func TestMarshalFailure(t *testing.T) {
	p, s := newPath(true)
	err := p.Send(deliver.User("bob"), unmarshallable{C: make(chan int)})
	if err == nil {
		t.Fatal("no error")
	}
	if _, err := p.SendMany([]string{"a"}, unmarshallable{}); err == nil {
		t.Fatal("SendMany: no error")
	}
	if len(s.local)+len(s.remote)+len(s.seen)+len(s.counted) != 0 {
		t.Fatalf("something went out: %+v %+v %q %v", s.local, s.remote, s.seen, s.counted)
	}
}

func TestTopic(t *testing.T) {
	for _, c := range []struct {
		to   deliver.To
		want string
	}{
		{deliver.User("bob"), wire.InboxTopic("bob")},
		{deliver.Device("bob", "phone"), wire.DeviceTopic("bob", "phone")},
	} {
		if got := c.to.Topic(); got != c.want {
			t.Errorf("%+v.Topic() = %s, want %s", c.to, got, c.want)
		}
	}
}

type discard struct{}

func (discard) PublishUser(string, string, []byte) error { return nil }

// BenchmarkSend is the path's own cost for a message event to one user on
// one node: marshal, count, topic, hand-off (the broker's share is not in it).
func BenchmarkSend(b *testing.B) {
	p := deliver.New(deliver.Options{Local: discard{}, Counter: &sinks{}})
	msg := wire.Msg{Kind: wire.KindMsg, ID: "1864712345678901248", Ver: 41, From: "alice", To: "bob", Type: "text",
		Body: "hello there", TS: 1764300000000, CMID: "c-1"}
	b.ReportAllocs()
	for b.Loop() {
		if err := p.Send(deliver.User("bob"), msg); err != nil {
			b.Fatal(err)
		}
	}
}

// manySinks is a Remote that takes one event for many users at once.
type manySinks struct {
	*sinks
	many [][]string
}

func (m *manySinks) Users(users []string, payload []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.many = append(m.many, users)
	m.remote = append(m.remote, delivery{op: "users", payload: payload})
}

// SendUsers: one marshal, each user's inbox here, and to the other nodes
// one call for them all when the Remote can (else one per user).
func TestSendUsers(t *testing.T) {
	s := &sinks{}
	m := &manySinks{sinks: s}
	p := deliver.New(deliver.Options{Local: s, Remote: m, Counter: s, Subscribers: []deliver.Subscriber{s},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ev := wire.PresenceEvent{Kind: wire.KindPresence, User: "alice", Online: true}
	n, err := p.SendUsers([]string{"a", "b", "c"}, ev)
	if err != nil || n != 3 {
		t.Fatalf("SendUsers = %d, %v", n, err)
	}
	if len(s.local) != 3 || s.local[2].topic != "im/u/c/inbox" || !same(s.local[0].payload, s.local[2].payload) {
		t.Fatalf("local %+v", s.local)
	}
	if len(m.many) != 1 || !slices.Equal(m.many[0], []string{"a", "b", "c"}) || len(s.remote) != 1 || !same(s.remote[0].payload, s.local[0].payload) {
		t.Fatalf("remote %+v %q", s.remote, m.many)
	}
	if s.counted["presence"] != 3 || len(s.seen) != 3 {
		t.Errorf("counted %v, seen %q", s.counted, s.seen)
	}

	p1, s1 := newPath(true) // a Remote of one user at a time
	if n, err := p1.SendUsers([]string{"a", "b"}, ev); n != 2 || err != nil || len(s1.remote) != 2 || s1.remote[1].user != "b" {
		t.Fatalf("per user: %d %v %+v", n, err, s1.remote)
	}
	p2, s2 := newPath(false)
	if n, err := p2.SendUsers([]string{"a"}, ev); n != 1 || err != nil || len(s2.remote) != 0 {
		t.Fatalf("one node: %d %v %+v", n, err, s2.remote)
	}
	if n, err := p.SendUsers(nil, ev); n != 0 || err != nil || len(m.many) != 1 {
		t.Fatalf("SendUsers(nil) = %d, %v, remote %q", n, err, m.many)
	}
}
