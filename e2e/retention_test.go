package e2e

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/imqtt/imqtt/internal/daemon"
	"github.com/imqtt/imqtt/internal/media"
	"github.com/imqtt/imqtt/internal/media/mediatest"
	"github.com/imqtt/imqtt/internal/retention"
	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/wire"
)

// Retention and burn after reading (docs/operations.md#retention,
// docs/protocol.md#burn-after-reading) end to end.

// TestRetentionSweep: messages older than the retention vanish from sync,
// history and the conversation list; younger ones stay; a device whose
// cursor points into the deleted history gets reset, over HTTP and MQTT;
// one past it does not. The sweep is the daemon's own sweeper code run
// on the running server's store, with a clock an hour on.
func TestRetentionSweep(t *testing.T) {
	s := testserver.Start(t, func(c *daemon.Config) { c.Retention = time.Hour })
	alice := account(t, s, "alice", "phone")
	bob := account(t, s, "bob", "phone")
	account(t, s, "carol", "phone")
	send := func(tok, to, body string) wire.Ack {
		t.Helper()
		var ack wire.Ack
		if code := httpJSON(t, "POST", s.HTTP+"/v1/messages", tok, wire.Send{CMID: body, To: to, Type: "text", Body: body}, &ack); code != 200 {
			t.Fatalf("send %s: %d", body, code)
		}
		return ack
	}
	var old []wire.Ack
	for i := range 5 {
		old = append(old, send(alice, "bob", fmt.Sprintf("old%d", i)))
	}
	send(alice, "carol", "old-carol")
	if code := httpJSON(t, "POST", s.HTTP+"/v1/groups", alice, wire.GroupCreate{ID: "g1", Name: "g", Members: []string{"bob"}}, nil); code/100 != 2 {
		t.Fatalf("create group: %d", code)
	}
	sendGroup := func(body string) wire.Ack {
		t.Helper()
		var ack wire.Ack
		if code := httpJSON(t, "POST", s.HTTP+"/v1/messages", alice, wire.Send{CMID: body, Group: "g1", Type: "text", Body: body}, &ack); code != 200 {
			t.Fatalf("send %s: %d", body, code)
		}
		return ack
	}
	sendGroup("gold0")
	sendGroup("gold1")
	// bob's phone has seen the first three (its cursor) and read two.
	cursor := getSync(t, s, bob, "", 0).Items[2].Ver
	httpJSON(t, "POST", s.HTTP+"/v1/read", bob, wire.Read{Peer: "alice", Upto: old[1].ID}, nil)

	cut := time.Now()
	wait.For(t, "the clock passes the cut", time.Second, func() bool { return time.Since(cut) > 2*time.Millisecond })
	var young []string
	for i := range 3 {
		young = append(young, send(alice, "bob", fmt.Sprintf("young%d", i)).ID)
	}
	floorCursor := getSync(t, s, bob, "", 0).Items[4].Ver // the last old message's
	gyoung := sendGroup("gyoung").ID

	j := retention.New(s.Store(), nil, retention.Options{Period: time.Hour,
		Now: func() time.Time { return cut.Add(time.Hour) }})
	if n, err := j.Sweep(t.Context()); err != nil || n != 8 {
		t.Fatalf("sweep: %d, %v; want 8", n, err)
	}

	ids := func(items []wire.Msg) []string {
		var out []string
		for _, m := range items {
			out = append(out, m.ID)
		}
		return out
	}
	full := getSync(t, s, bob, "", 0)
	if got := ids(full.Items); !slices.Equal(got, young) || full.Reset {
		t.Errorf("bob's sync from 0: %v (reset %v), want %v", got, full.Reset, young)
	}
	stale := getSync(t, s, bob, "", cursor)
	if !stale.Reset || !slices.Equal(ids(stale.Items), young) {
		t.Errorf("a cursor into the swept history: reset %v, items %v; want reset and %v", stale.Reset, ids(stale.Items), young)
	}
	ms := mqttSync(t, s, "bob", "tablet", wire.SyncRequest{Since: cursor})
	if !ms.Reset || !slices.Equal(ids(ms.Items), young) {
		t.Errorf("im/sync from a cursor into the swept history: reset %v, items %v", ms.Reset, ids(ms.Items))
	}
	past := getSync(t, s, bob, "", floorCursor)
	if past.Reset || !slices.Equal(ids(past.Items), young) {
		t.Errorf("a cursor at the floor: reset %v, items %v; want no reset and %v", past.Reset, ids(past.Items), young)
	}
	for _, tok := range []string{alice, bob} {
		peer := map[string]string{alice: "bob", bob: "alice"}[tok]
		h := ids(history(t, s, tok, peer))
		slices.Reverse(h)
		if !slices.Equal(h, young) {
			t.Errorf("history with %s: %v, want %v", peer, h, young)
		}
	}
	cs := conversations(t, s, bob)
	if c, ok := conv(cs, "alice"); !ok || c.Unread != 3 || c.Last == nil || c.Last.ID != young[2] || cs.TotalUnread != 4 {
		t.Errorf("bob's list: %+v; want alice with unread 3 (the young ones), last %s, total 4 (and the group's 1)", cs, young[2])
	}
	if c, ok := conv(cs, "g1"); !ok || c.Unread != 1 {
		t.Errorf("bob's group: %+v; want unread 1 (the young one)", c)
	}
	gs := getSync(t, s, bob, "g1", 1)
	if !gs.Reset || !slices.Equal(ids(gs.Items), []string{gyoung}) {
		t.Errorf("a group cursor into the swept log: reset %v, items %v", gs.Reset, ids(gs.Items))
	}
	if gs := getSync(t, s, bob, "g1", 2); gs.Reset || !slices.Equal(ids(gs.Items), []string{gyoung}) {
		t.Errorf("a group cursor at the floor: reset %v, items %v", gs.Reset, ids(gs.Items))
	}
	if _, ok := conv(conversations(t, s, alice), "carol"); ok {
		t.Error("alice's conversation with carol, all swept, is still listed")
	}
	// What is left works on: a send, a read.
	send(alice, "bob", "after")
	httpJSON(t, "POST", s.HTTP+"/v1/read", bob, wire.Read{Peer: "alice"}, nil)
	if c, _ := conv(conversations(t, s, bob), "alice"); c.Unread != 0 {
		t.Errorf("unread after reading all: %d", c.Unread)
	}
}

// TestRetentionMedia: the sweep deletes the media of swept messages and an
// old upload never sent (404 to everyone, the uploader too), while media
// of a younger message serves on, and so does an old object a younger
// message forwarded.
func TestRetentionMedia(t *testing.T) {
	s := testserver.Start(t, func(c *daemon.Config) { c.Retention = time.Hour })
	alice := account(t, s, "alice", "phone")
	bob := account(t, s, "bob", "phone")
	carol := account(t, s, "carol", "phone")
	send := func(tok, to, cmid, mediaID string) {
		t.Helper()
		if code := httpJSON(t, "POST", s.HTTP+"/v1/messages", tok, wire.Send{CMID: cmid, To: to, Type: "image", Media: mediaID}, nil); code != 200 {
			t.Fatalf("send %s: %d", cmid, code)
		}
	}
	old := mustUpload(t, s, alice, "", mediatest.PNG(t, 40, 30))
	send(alice, "bob", "old", old.ID)
	fwd := mustUpload(t, s, alice, "", mediatest.PNG(t, 50, 30))
	send(alice, "bob", "fwd-old", fwd.ID)
	unsent := mustUpload(t, s, alice, "", mediatest.PNG(t, 60, 30))

	cut := time.Now()
	wait.For(t, "the clock passes the cut", time.Second, func() bool { return time.Since(cut) > 2*time.Millisecond })
	young := mustUpload(t, s, alice, "", mediatest.PNG(t, 70, 30))
	send(alice, "bob", "young", young.ID)
	send(bob, "carol", "fwd-young", fwd.ID) // bob forwards the old image

	blobs, ok := s.Blobs().(media.Deleting)
	if !ok {
		t.Fatalf("the server's media store %T cannot delete", s.Blobs())
	}
	j := retention.New(s.Store(), nil, retention.Options{Period: time.Hour, Media: blobs,
		Now: func() time.Time { return cut.Add(time.Hour) }})
	if n, err := j.Sweep(t.Context()); err != nil || n != 2 {
		t.Fatalf("sweep: %d, %v; want the 2 old messages", n, err)
	}
	for _, c := range []struct {
		what, tok, id, part string
		want                int
	}{
		{"a swept message's media, to its recipient", bob, old.ID, "", 404},
		{"a swept message's media, to its sender", alice, old.ID, "", 404},
		{"a swept message's thumbnail", bob, old.ID, "/thumb", 404},
		{"an old upload never sent, to its owner", alice, unsent.ID, "", 404},
		{"a young message's media", bob, young.ID, "", 200},
		{"a young message's thumbnail", bob, young.ID, "/thumb", 200},
		{"an old image forwarded by a young message, to the forward's recipient", carol, fwd.ID, "", 200},
		{"an old image forwarded by a young message, to its owner", alice, fwd.ID, "", 200},
	} {
		if resp, _ := request(t, "GET", s.HTTP+"/v1/media/"+c.id+c.part, c.tok, nil, nil); resp.StatusCode != c.want {
			t.Errorf("%s: %d, want %d", c.what, resp.StatusCode, c.want)
		}
	}
	// The sweep deleted the files, not only the access.
	for _, id := range []string{old.ID, unsent.ID} {
		if _, err := blobs.Stat(t.Context(), id); !errors.Is(err, media.ErrNotFound) {
			t.Errorf("media %s after the sweep: %v, want gone", id, err)
		}
	}
}

// TestBurnAfterReading: over MQTT and HTTP, a 1:1 send with a ttl is
// recalled for both sides ttl seconds after the recipient reads it — a
// recall event with expired, live on both parties' devices and replayed
// by sync — and its body is gone from history for both; an unread one
// stays. A ttl in a group, or out of range, is refused and stores nothing.
func TestBurnAfterReading(t *testing.T) {
	transports(t, func(t *testing.T, s *testserver.Server, act func(user string) (actor, *device)) {
		a, ad := act("alice")
		b, bd := act("bob")
		ok := mustOK(t)
		for _, bad := range []wire.Send{
			{CMID: "bad1", Group: "g1", Type: "text", Body: "x", TTL: 5},
			{CMID: "bad2", To: "bob", Type: "text", Body: "x", TTL: wire.MaxTTL + 1},
			{CMID: "bad3", To: "bob", Type: "text", Body: "x", TTL: -1},
		} {
			_, werr := a.send(bad)
			refused(t, fmt.Sprintf("ttl %d to %q", bad.TTL, bad.To+bad.Group), werr, wire.CodeBadRequest)
		}
		burn := ok(a.send(wire.Send{CMID: "b1", To: "bob", Type: "text", Body: "secret", TTL: 1}))
		keep := ok(a.send(wire.Send{CMID: "b2", To: "bob", Type: "text", Body: "later", TTL: 1}))
		if m := bd.await(wire.KindMsg, burn.ID); m.TTL != 1 || m.Body != "secret" {
			t.Errorf("bob's live message: %+v", m)
		}
		// Not read: not burnt, however long it waits.
		b.read(wire.Read{Peer: "alice", Upto: burn.ID})
		for _, d := range []*device{ad, bd} {
			if r := d.await(wire.KindRecall, burn.ID); !r.Expired || r.By != "" {
				t.Errorf("%s's recall: %+v; want expired, no by", d.user, r)
			}
		}
		tok := login(t, s, "bob", "laptop")
		sy := getSync(t, s, tok, "", 0)
		var sawRecall bool
		for _, it := range sy.Items {
			switch {
			case it.Kind == wire.KindMsg && it.ID == burn.ID:
				if !it.Recalled || !it.Expired || it.Body != "" {
					t.Errorf("the burnt message in sync: %+v", it)
				}
			case it.Kind == wire.KindRecall && it.ID == burn.ID:
				sawRecall = it.Expired
			case it.Kind == wire.KindMsg && it.ID == keep.ID:
				if it.Body != "later" || it.Recalled {
					t.Errorf("the unread one in sync: %+v", it)
				}
			}
		}
		if !sawRecall {
			t.Errorf("sync has no expired recall: %s", kinds(sy.Items))
		}
		for _, side := range []struct{ user, peer string }{{"alice", "bob"}, {"bob", "alice"}} {
			for _, m := range history(t, s, login(t, s, side.user, "h"), side.peer) {
				if m.ID == burn.ID && (m.Body != "" || !m.Recalled) {
					t.Errorf("%s's history keeps the burnt message: %+v", side.user, m)
				}
				if m.ID == keep.ID && m.Body != "later" {
					t.Errorf("%s's history lost the unread one: %+v", side.user, m)
				}
			}
		}
		if n := len(bd.find(wire.KindRecall, keep.ID)); n != 0 {
			t.Errorf("the unread one was recalled")
		}
		// Recalled once, however often it is read.
		b.read(wire.Read{Peer: "alice", Upto: burn.ID})
		if n := len(ad.find(wire.KindRecall, burn.ID)); n != 1 {
			t.Errorf("alice got %d recalls", n)
		}
	})
}
