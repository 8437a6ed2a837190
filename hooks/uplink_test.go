package hooks_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/imqtt/imqtt/chat"
	"github.com/imqtt/imqtt/hooks"
	"github.com/imqtt/imqtt/internal/deliver"
	"github.com/imqtt/imqtt/internal/drain"
	"github.com/imqtt/imqtt/internal/metrics"
	"github.com/imqtt/imqtt/internal/oplog"
	"github.com/imqtt/imqtt/wire"
)

// fakeCore is the core as the uplink sees it; each test sets the calls it
// expects, and a call it did not set fails the test.
type fakeCore struct {
	t      *testing.T
	submit func(ctx context.Context, from chat.Sender, req wire.Send, done func(chat.Result))
	sync   func(ctx context.Context, user string, req wire.SyncRequest, emit func(wire.Sync) error) error
	heads  func(ctx context.Context, user string) (wire.Heads, error)
	read   func(ctx context.Context, user string, req wire.Read) (wire.Unread, error)
	change func(ctx context.Context, from chat.Sender, req any, done func(chat.Result))
	admit  func(user string, req *wire.Typing) (bool, error)
	relay  func(ctx context.Context, user string, req wire.Typing) (bool, error)
}

func (c *fakeCore) changed(ctx context.Context, from chat.Sender, req any, done func(chat.Result)) {
	if c.change == nil {
		c.t.Errorf("unexpected change from %+v: %+v", from, req)
		return
	}
	c.change(ctx, from, req, done)
}

func (c *fakeCore) Recall(ctx context.Context, from chat.Sender, req wire.Recall, done func(chat.Result)) {
	c.changed(ctx, from, req, done)
}

func (c *fakeCore) Edit(ctx context.Context, from chat.Sender, req wire.Edit, done func(chat.Result)) {
	c.changed(ctx, from, req, done)
}

func (c *fakeCore) React(ctx context.Context, from chat.Sender, req wire.React, done func(chat.Result)) {
	c.changed(ctx, from, req, done)
}

func (c *fakeCore) Delete(ctx context.Context, from chat.Sender, req wire.Delete, done func(chat.Result)) {
	c.changed(ctx, from, req, done)
}

func (c *fakeCore) AdmitTyping(user string, req *wire.Typing) (bool, error) {
	if c.admit == nil {
		c.t.Errorf("unexpected AdmitTyping of %s: %+v", user, req)
		return false, nil
	}
	return c.admit(user, req)
}

func (c *fakeCore) RelayTyping(ctx context.Context, user string, req wire.Typing) (bool, error) {
	if c.relay == nil {
		c.t.Errorf("unexpected RelayTyping of %s: %+v", user, req)
		return false, nil
	}
	return c.relay(ctx, user, req)
}

func (c *fakeCore) Submit(ctx context.Context, from chat.Sender, req wire.Send, done func(chat.Result)) {
	if c.submit == nil {
		c.t.Errorf("unexpected Submit from %+v: %+v", from, req)
		return
	}
	c.submit(ctx, from, req, done)
}

func (c *fakeCore) Sync(ctx context.Context, user string, req wire.SyncRequest, emit func(wire.Sync) error) error {
	if c.sync == nil {
		c.t.Errorf("unexpected Sync of %s: %+v", user, req)
		return nil
	}
	return c.sync(ctx, user, req, emit)
}

func (c *fakeCore) GroupHeads(ctx context.Context, user string) (wire.Heads, error) {
	if c.heads == nil {
		c.t.Errorf("unexpected GroupHeads of %s", user)
		return wire.Heads{}, nil
	}
	return c.heads(ctx, user)
}

func (c *fakeCore) Read(ctx context.Context, user string, req wire.Read) (wire.Unread, error) {
	if c.read == nil {
		c.t.Errorf("unexpected Read of %s: %+v", user, req)
		return wire.Unread{}, nil
	}
	return c.read(ctx, user, req)
}

type uplinkRig struct {
	h     *hooks.Uplink
	drain *drain.State
	core  *fakeCore
	pub   *pubRec
	m     *metrics.Metrics
}

func newUplink(t *testing.T, perClient int) *uplinkRig {
	t.Helper()
	r := &uplinkRig{h: new(hooks.Uplink), drain: drain.New(nil), core: &fakeCore{t: t}, pub: newPubRec(), m: metrics.New()}
	if err := r.h.Init(hooks.UplinkConfig{Chat: r.core, Sender: deliver.New(deliver.Options{Local: r.pub}), Drain: r.drain,
		Metrics: r.m, PerClient: perClient}); err != nil {
		t.Fatal(err)
	}
	return r
}

// publish hands the hook a client's publish; the hook must consume it
// (CodeSuccessIgnore: PUBACKed, routed to nobody).
func (r *uplinkRig) publish(t *testing.T, clientID, topic, payload string) {
	t.Helper()
	user, _, _ := strings.Cut(clientID, "/")
	pk := packets.Packet{TopicName: topic, Payload: []byte(payload)}
	if _, err := r.h.OnPublish(client(clientID, user, 5), pk); err != packets.CodeSuccessIgnore {
		t.Fatalf("OnPublish %s: %v, want CodeSuccessIgnore", topic, err)
	}
}

const aliceTopic = "im/u/alice/d/phone" // alice/phone's device topic

// TestUplinkSend: a send goes to Submit as its client's user and device;
// the ack or the error Submit answers with goes to that device's topic.
func TestUplinkSend(t *testing.T) {
	r := newUplink(t, 0)
	var got []chat.Sender
	r.core.submit = func(ctx context.Context, from chat.Sender, req wire.Send, done func(chat.Result)) {
		if ctx == nil || ctx.Err() != nil {
			t.Errorf("Submit's context: nil or ended")
		}
		got = append(got, from)
		switch req.CMID {
		case "c1":
			if req.To != "bob" || req.Type != "text" || req.Body != "hi" {
				t.Errorf("Submit got %+v", req)
			}
			go done(chat.Result{Ack: wire.Ack{Kind: wire.KindAck, CMID: req.CMID, ID: "77", Ver: 5}}) // later, from the dispatcher
		case "c2":
			done(chat.Result{Err: &chat.Error{Err: chat.ErrRateLimited, Msg: "slow down"}})
		}
	}
	r.publish(t, "alice/phone", wire.TopicSend, `{"cmid":"c1","to":"bob","type":"text","body":"hi"}`)
	m := r.pub.next(t)
	var ack wire.Ack
	if err := json.Unmarshal(m.payload, &ack); err != nil || m.topic != aliceTopic || ack.Kind != wire.KindAck || ack.CMID != "c1" || ack.ID != "77" || ack.Ver != 5 {
		t.Fatalf("ack: %s on %s", m.payload, m.topic)
	}
	r.publish(t, "alice/phone", wire.TopicSend, `{"cmid":"c2","to":"bob","type":"text","body":"hi"}`)
	if e := r.pub.nextError(t, aliceTopic); e.Code != wire.CodeRateLimited || e.CMID != "c2" || e.Message != "slow down" {
		t.Fatalf("refused send: %+v", e)
	}
	if want := (chat.Sender{User: "alice", Device: "phone"}); len(got) != 2 || got[0] != want || got[1] != want {
		t.Fatalf("Submit senders %+v, want alice/phone twice", got)
	}
	if n := testutil.ToFloat64(r.m.Publishes.WithLabelValues("in", "send")); n != 2 {
		t.Errorf("%v sends counted in, want 2", n)
	}
	r.pub.none(t)
}

// TestUplinkRefusals: what cannot be decoded never reaches the core: a
// bad_request error event, a depth refusal counted; an unknown topic is
// unknown_topic; the server's own (inline) publishes pass untouched.
func TestUplinkRefusals(t *testing.T) {
	r := newUplink(t, 0)
	deep := strings.Repeat("[", wire.MaxDepth+1) + strings.Repeat("]", wire.MaxDepth+1)
	for _, topic := range []string{wire.TopicSend, wire.TopicSync, wire.TopicRead} {
		before := count(r.m.Refusals, "json_depth")
		r.publish(t, "alice/phone", topic, `{"cmid":`)
		if e := r.pub.nextError(t, aliceTopic); e.Code != wire.CodeBadRequest || !strings.Contains(e.Message, "malformed JSON") {
			t.Errorf("%s, malformed: %+v", topic, e)
		}
		r.publish(t, "alice/phone", topic, `{"x":`+deep+`}`)
		if e := r.pub.nextError(t, aliceTopic); e.Code != wire.CodeBadRequest || !strings.Contains(e.Message, "nested too deeply") {
			t.Errorf("%s, too deep: %+v", topic, e)
		}
		if n := count(r.m.Refusals, "json_depth") - before; n != 1 {
			t.Errorf("%s: %v depth refusals counted, want 1", topic, n)
		}
	}
	// A read's fields are checked before any I/O.
	r.publish(t, "alice/phone", wire.TopicRead, `{}`)
	if e := r.pub.nextError(t, aliceTopic); e.Code != wire.CodeBadRequest {
		t.Errorf("read of nothing: %+v", e)
	}
	// Another topic never gets here (the ACL refuses it first); if it
	// did, it is rejected, and nothing of it is echoed back.
	if _, err := r.h.OnPublish(client("alice/phone", "alice", 5), packets.Packet{TopicName: "im/elsewhere", Payload: []byte(`{}`)}); err != packets.ErrRejectPacket {
		t.Errorf("OnPublish im/elsewhere: %v, want ErrRejectPacket", err)
	}
	if n := count(r.m.Errors, wire.CodeBadRequest); n != 7 {
		t.Errorf("%v bad_request replies counted, want 7", n)
	}
	// The operator log names the client, as the core's refusals do.
	if got := r.m.Recent.Recent(oplog.Error, 0, 1); len(got) != 1 || got[0].Client != "alice/phone" {
		t.Errorf("operator log: %+v, want the client alice/phone", got)
	}
	inline := client("inline", "", 5)
	inline.Net.Inline = true
	pk := packets.Packet{TopicName: wire.TopicSend, Payload: []byte(`{`)}
	if out, err := r.h.OnPublish(inline, pk); err != nil || out.TopicName != pk.TopicName {
		t.Errorf("inline publish: %v", err)
	}
	r.pub.none(t)
	r.h.OnPublishDropped(client("alice/phone", "alice", 5), pk)
	if n := testutil.ToFloat64(r.m.Dropped); n != 1 {
		t.Errorf("%v drops counted, want 1", n)
	}
}

// gunzip returns p, or its gunzipped bytes if it is gzip.
func gunzip(t *testing.T, p []byte) []byte {
	t.Helper()
	if len(p) < 2 || p[0] != 0x1f || p[1] != 0x8b {
		return p
	}
	zr, err := gzip.NewReader(bytes.NewReader(p))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestUplinkSync: a sync runs the core's Sync as the client's user and
// publishes each batch it emits, compressed if asked; heads asks GroupHeads;
// a refusal keeps its code and names the group, a store failure is
// unavailable.
func TestUplinkSync(t *testing.T) {
	r := newUplink(t, 0)
	r.core.sync = func(ctx context.Context, user string, req wire.SyncRequest, emit func(wire.Sync) error) error {
		if user != "alice" {
			t.Errorf("Sync as %q", user)
		}
		switch req.Group {
		case "g1":
			return fmt.Errorf("sync: %w", &chat.Error{Err: chat.ErrNotMember, Msg: "not a member of g1"})
		case "g2":
			return errors.New("disk on fire")
		}
		for _, b := range []wire.Sync{{Kind: wire.KindSync, Since: req.Since, Upto: 50, More: true},
			{Kind: wire.KindSync, Since: 50, Upto: 60}} {
			if err := emit(b); err != nil {
				return err
			}
		}
		return nil
	}
	for _, compress := range []string{"", "gzip"} {
		r.publish(t, "alice/phone", wire.TopicSync, `{"since":41,"compress":"`+compress+`"}`)
		for _, upto := range []uint64{50, 60} {
			m := r.pub.next(t)
			if compress == "gzip" && !bytes.HasPrefix(m.payload, []byte{0x1f, 0x8b}) {
				t.Errorf("gzip asked for, got %.40q", m.payload)
			}
			var b wire.Sync
			if err := json.Unmarshal(gunzip(t, m.payload), &b); err != nil || m.topic != aliceTopic || b.Kind != wire.KindSync || b.Upto != upto {
				t.Fatalf("batch: %s on %s, want upto %d", m.payload, m.topic, upto)
			}
		}
	}
	if n := testutil.ToFloat64(r.m.SyncBatches.WithLabelValues("mqtt")); n != 4 {
		t.Errorf("%v batches counted, want 4", n)
	}
	r.publish(t, "alice/phone", wire.TopicSync, `{"group":"g1"}`)
	if e := r.pub.nextError(t, aliceTopic); e.Code != wire.CodeNotMember || e.Group != "g1" || e.Message != "not a member of g1" {
		t.Errorf("refused group sync: %+v", e)
	}
	r.publish(t, "alice/phone", wire.TopicSync, `{"group":"g2"}`)
	if e := r.pub.nextError(t, aliceTopic); e.Code != wire.CodeUnavailable || e.Group != "g2" || strings.Contains(e.Message, "fire") {
		t.Errorf("store failure: %+v (the store's error is logged, not told)", e)
	}

	r.core.heads = func(ctx context.Context, user string) (wire.Heads, error) {
		if user != "alice" {
			t.Errorf("GroupHeads of %q", user)
		}
		return wire.Heads{Kind: wire.KindHeads, Groups: []wire.GroupHead{{Group: "g1", Seq: 9, Join: 2, Read: 4}}}, nil
	}
	r.publish(t, "alice/phone", wire.TopicSync, `{"heads":true,"since":3}`)
	m := r.pub.next(t)
	var heads wire.Heads
	if err := json.Unmarshal(m.payload, &heads); err != nil || heads.Kind != wire.KindHeads || len(heads.Groups) != 1 || heads.Groups[0].Seq != 9 {
		t.Fatalf("heads: %s", m.payload)
	}
	r.pub.none(t)
}

// TestUplinkRead: a read runs the core's Read as the client's user; its
// answer goes out from the core (the inbox), an error comes back here.
func TestUplinkRead(t *testing.T) {
	r := newUplink(t, 0)
	reads := make(chan wire.Read, 2)
	r.core.read = func(ctx context.Context, user string, req wire.Read) (wire.Unread, error) {
		if user != "alice" {
			t.Errorf("Read as %q", user)
		}
		reads <- req
		if req.Group != "" {
			return wire.Unread{}, &chat.Error{Err: chat.ErrNotMember, Msg: "not a member of " + req.Group}
		}
		return wire.Unread{Kind: wire.KindUnread, Peer: req.Peer}, nil
	}
	r.publish(t, "alice/phone", wire.TopicRead, `{"peer":"bob","upto":"123"}`)
	if req := <-reads; req.Peer != "bob" || req.Upto != "123" {
		t.Errorf("Read got %+v", req)
	}
	r.publish(t, "alice/phone", wire.TopicRead, `{"group":"g1","seq":7}`)
	if e := r.pub.nextError(t, aliceTopic); e.Code != wire.CodeNotMember || e.Message != "not a member of g1" {
		t.Errorf("refused read: %+v", e)
	}
	if req := <-reads; req.Group != "g1" || req.Seq != 7 {
		t.Errorf("Read got %+v", req)
	}
	r.pub.none(t) // the successful read answered nothing here
}

// TestUplinkPerClientBound: a client with PerClient syncs and reads in
// flight gets busy for one more, naming its group; other clients are not
// held up by it.
func TestUplinkPerClientBound(t *testing.T) {
	r := newUplink(t, 2)
	started, release := make(chan string, 8), make(chan struct{})
	r.core.sync = func(ctx context.Context, user string, req wire.SyncRequest, emit func(wire.Sync) error) error {
		started <- user
		<-release
		return emit(wire.Sync{Kind: wire.KindSync})
	}
	wait := func(want string) {
		t.Helper()
		select {
		case u := <-started:
			if u != want {
				t.Fatalf("sync of %s started, want %s", u, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("sync of %s did not start", want)
		}
	}
	for range 2 {
		r.publish(t, "alice/phone", wire.TopicSync, `{"since":1}`)
		wait("alice")
	}
	r.publish(t, "alice/phone", wire.TopicSync, `{"group":"g9"}`)
	if e := r.pub.nextError(t, aliceTopic); e.Code != wire.CodeBusy || e.Group != "g9" {
		t.Fatalf("past the bound: %+v", e)
	}
	r.publish(t, "alice/phone", wire.TopicRead, `{"peer":"bob"}`)
	if e := r.pub.nextError(t, aliceTopic); e.Code != wire.CodeBusy {
		t.Fatalf("a read past the bound: %+v", e)
	}
	if n := count(r.m.Refusals, "client_requests"); n != 2 {
		t.Errorf("%v refusals counted, want 2", n)
	}
	r.publish(t, "bob/tab", wire.TopicSync, `{"since":1}`)
	wait("bob")
	close(release)
	for range 3 {
		if m := r.pub.next(t); !bytes.Contains(m.payload, []byte(`"kind":"sync"`)) {
			t.Errorf("after release: %s", m.payload)
		}
	}
}

// TestUplinkTyping: the gate runs as the publish is taken; the relay,
// which reads the store, runs on a worker, so a slow relay does not hold
// the client's read goroutine (OnPublish returns while it waits). A
// refusal of either is answered on the device topic; past the client's
// requests in flight a typing hint is dropped and counted, not answered.
func TestUplinkTyping(t *testing.T) {
	r := newUplink(t, 1)
	release := make(chan struct{})
	relayed := make(chan wire.Typing, 4)
	r.core.admit = func(user string, req *wire.Typing) (bool, error) {
		if req.Peer == "nobody." {
			return false, &chat.Error{Err: chat.ErrBadRequest, Msg: "peer: not a user ID"}
		}
		return req.Peer != "gated", nil
	}
	r.core.relay = func(ctx context.Context, user string, req wire.Typing) (bool, error) {
		if req.Peer == "carol" {
			return false, &chat.Error{Err: chat.ErrNoSuchUser, Msg: "no such user: carol"}
		}
		<-release
		relayed <- req
		return true, nil
	}
	done := make(chan struct{})
	go func() {
		r.publish(t, "alice/phone", wire.TopicTyping, `{"peer":"bob","state":"start"}`) // blocks in relay until released
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("OnPublish waited for the relay: it runs on the client's read goroutine")
	}
	r.publish(t, "alice/phone", wire.TopicTyping, `{"peer":"dave","state":"start"}`) // the one in flight fills the bound
	if n := count(r.m.Refusals, "typing_in_flight"); n != 1 {
		t.Errorf("%v typing past the bound counted, want 1", n)
	}
	r.publish(t, "alice/phone", wire.TopicTyping, `{"peer":"gated","state":"start"}`)
	r.publish(t, "alice/phone", wire.TopicTyping, `{"peer":"nobody.","state":"start"}`)
	if e := r.pub.nextError(t, aliceTopic); e.Code != wire.CodeBadRequest {
		t.Errorf("a refused admit: %+v", e)
	}
	close(release)
	if req := <-relayed; req.Peer != "bob" {
		t.Errorf("relayed %+v", req)
	}
	r.publish(t, "alice/tab", wire.TopicTyping, `{"peer":"carol","state":"start"}`) // another client: its own bound
	if e := r.pub.nextError(t, "im/u/alice/d/tab"); e.Code != wire.CodeNoSuchUser {
		t.Errorf("a refused relay: %+v", e)
	}
	r.pub.none(t) // dave's and gated's hints answered nothing
}

// TestUplinkQuiesce: the drain state's Quiesce waits for the client's sends in
// flight to be answered, and from then on its sends are refused
// (unavailable, with their cmid) without reaching the core.
func TestUplinkQuiesce(t *testing.T) {
	r := newUplink(t, 0)
	var mu sync.Mutex
	held := map[string]func(chat.Result){}
	r.core.submit = func(_ context.Context, from chat.Sender, req wire.Send, done func(chat.Result)) {
		mu.Lock()
		defer mu.Unlock()
		held[from.User+":"+req.CMID] = done
	}
	r.publish(t, "carol/tab", wire.TopicSend, `{"cmid":"c3","to":"bob","type":"text","body":"hi"}`)
	quiesced := make(chan struct{})
	go func() {
		r.drain.Quiesce([]string{"carol/tab"})
		close(quiesced)
	}()
	select {
	case <-quiesced:
		t.Fatal("Quiesce returned with a send in flight")
	case <-time.After(100 * time.Millisecond):
	}
	mu.Lock()
	done := held["carol:c3"]
	mu.Unlock()
	done(chat.Result{Ack: wire.Ack{Kind: wire.KindAck, CMID: "c3", ID: "1"}})
	select {
	case <-quiesced:
	case <-time.After(5 * time.Second):
		t.Fatal("Quiesce did not return once the send in flight was answered")
	}
	if m := r.pub.next(t); m.topic != "im/u/carol/d/tab" || !bytes.Contains(m.payload, []byte(`"cmid":"c3"`)) {
		t.Fatalf("the ack of the send in flight: %s on %s", m.payload, m.topic)
	}
	r.publish(t, "carol/tab", wire.TopicSend, `{"cmid":"c4","to":"bob","type":"text","body":"hi"}`)
	if e := r.pub.nextError(t, "im/u/carol/d/tab"); e.Code != wire.CodeUnavailable || e.CMID != "c4" {
		t.Fatalf("a send after Quiesce: %+v", e)
	}
	// Other clients still send.
	r.publish(t, "alice/phone", wire.TopicSend, `{"cmid":"c5","to":"bob","type":"text","body":"hi"}`)
	mu.Lock()
	defer mu.Unlock()
	if held["carol:c4"] != nil || held["alice:c5"] == nil {
		t.Fatalf("submitted: %v", held)
	}
}

// TestUplinkInit refuses a config without its core, publisher, drain
// state or metrics.
func TestUplinkInit(t *testing.T) {
	full := hooks.UplinkConfig{Chat: &fakeCore{t: t}, Sender: deliver.New(deliver.Options{Local: newPubRec()}),
		Drain: drain.New(nil), Metrics: metrics.New()}
	without := func(f func(*hooks.UplinkConfig)) hooks.UplinkConfig { c := full; f(&c); return c }
	for name, cfg := range map[string]any{
		"no chat":    without(func(c *hooks.UplinkConfig) { c.Chat = nil }),
		"no sender":  without(func(c *hooks.UplinkConfig) { c.Sender = nil }),
		"no drain":   without(func(c *hooks.UplinkConfig) { c.Drain = nil }),
		"no metrics": without(func(c *hooks.UplinkConfig) { c.Metrics = nil }),
		"wrong type": &full,
	} {
		if err := new(hooks.Uplink).Init(cfg); err == nil {
			t.Errorf("%s: Init accepted it", name)
		}
	}
	if err := new(hooks.Uplink).Init(full); err != nil {
		t.Fatal(err)
	}
}
