package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imqtt/imqtt/wire"
)

// The social graph's events and a group's stored changes decode to their
// typed fields; contact, block and presence events never take a place in
// the stream, whatever version they claim; a group event with a seq is an
// item of the group's log, one without is a membership event; a burnt
// message's recall and a blocked sender's group message keep their marks.
func TestDecodeSocialKinds(t *testing.T) {
	for _, c := range []struct {
		in    string
		check func(ev Event) bool
	}{
		{`{"kind":"contact","action":"request","user":"bob","since":77}`, func(ev Event) bool {
			return ev.Contact != nil && *ev.Contact == (wire.ContactEvent{Kind: wire.KindContact, Action: wire.ContactRequested, User: "bob", Since: 77}) && ev.Item() == nil
		}},
		{`{"kind":"contact","action":"accepted","user":"bob","ver":99}`, func(ev Event) bool {
			return ev.Contact != nil && ev.Contact.Action == wire.ContactAccepted && ev.Ver == 0
		}},
		{`{"kind":"block","user":"mallory","blocked":true}`, func(ev Event) bool {
			return ev.Block != nil && *ev.Block == (wire.BlockEvent{Kind: wire.KindBlock, User: "mallory", Blocked: true})
		}},
		{`{"kind":"block","user":"mallory","blocked":false,"ver":3}`, func(ev Event) bool {
			return ev.Block != nil && !ev.Block.Blocked && ev.Ver == 0
		}},
		{`{"kind":"presence","user":"bob","online":true}`, func(ev Event) bool {
			return ev.Presence != nil && *ev.Presence == (wire.PresenceEvent{Kind: wire.KindPresence, User: "bob", Online: true})
		}},
		{`{"kind":"presence","user":"bob","online":false,"last_seen":1800000000000,"ver":8}`, func(ev Event) bool {
			return ev.Presence != nil && !ev.Presence.Online && ev.Presence.LastSeen == 1800000000000 && ev.Ver == 0
		}},
		{`{"kind":"group","group":"g1","action":"added","by":"alice"}`, func(ev Event) bool {
			return ev.Group != nil && *ev.Group == (wire.GroupEvent{Kind: wire.KindGroup, Group: "g1", Action: wire.GroupAdded, By: "alice"}) &&
				ev.GroupChange == nil && ev.Item() == nil && !groupItem(ev)
		}},
		{`{"kind":"group","group":"g1","action":"disbanded","by":"alice"}`, func(ev Event) bool {
			return ev.Group != nil && ev.Group.Action == wire.GroupDisbanded && ev.GroupChange == nil
		}},
		{`{"kind":"group","id":"900","group":"g1","seq":12,"from":"alice","action":"updated","name":"Team","notice":"","ts":5}`, func(ev Event) bool {
			g := ev.GroupChange
			return g != nil && ev.Group == nil && g.Kind == wire.KindGroup && g.Action == wire.GroupUpdated && g.From == "alice" &&
				g.Name != nil && *g.Name == "Team" && g.Notice != nil && *g.Notice == "" && g.Avatar == nil &&
				g.Seq == 12 && ev.Item() == g && groupItem(ev)
		}},
		{`{"kind":"group","group":"g1","seq":13,"from":"alice","action":"mute","user":"bob","until":1800000000000}`, func(ev Event) bool {
			g := ev.GroupChange
			return g != nil && g.Action == wire.GroupMuteMember && g.User == "bob" && g.Until == 1800000000000
		}},
		{`{"kind":"group","group":"g1","seq":14,"from":"alice","action":"mute_all","muted":true}`, func(ev Event) bool {
			g := ev.GroupChange
			return g != nil && g.Action == wire.GroupMuteAll && g.Muted != nil && *g.Muted
		}},
		{`{"kind":"group","group":"g1","seq":15,"from":"alice","action":"owner","user":"bob"}`, func(ev Event) bool {
			return ev.GroupChange != nil && ev.GroupChange.Action == wire.GroupOwner && ev.GroupChange.User == "bob"
		}},
		{`{"kind":"group","group":"g1","seq":16,"from":"bob","action":"disbanded"}`, func(ev Event) bool {
			return ev.GroupChange != nil && ev.GroupChange.Action == wire.GroupDisbanded && ev.Group == nil
		}},
		{`{"kind":"recall","id":"7","ver":12,"expired":true,"ts":99}`, func(ev Event) bool {
			return ev.Recall != nil && ev.Recall.Expired && ev.Recall.By == "" && ev.Ver == 12
		}},
		{`{"kind":"msg","id":"8","from":"bob","to":"alice","type":"text","body":"gone soon","ttl":30,"ver":13}`, func(ev Event) bool {
			return ev.Msg != nil && ev.Msg.TTL == 30
		}},
		{`{"kind":"msg","id":"9","from":"mallory","group":"g1","seq":17,"type":"text","body":"x","blocked":true}`, func(ev Event) bool {
			return ev.Msg != nil && ev.Msg.Blocked && ev.Block == nil && groupItem(ev)
		}},
	} {
		for _, synced := range []bool{false, true} {
			ev, err := decodeEvent(json.RawMessage(c.in), synced)
			if err != nil || !c.check(ev) || ev.Synced != synced {
				t.Errorf("%s (synced %v): %+v, %v", c.in, synced, ev, err)
			}
		}
	}
	// A kind of ours that does not decode is skipped, not delivered raw.
	for _, in := range []string{`{"kind":"contact","user":7}`, `{"kind":"group","group":"g","seq":"x"}`, `{"kind":"presence","online":"yes"}`} {
		if ev, err := decodeEvent(json.RawMessage(in), false); err == nil {
			t.Errorf("%s decoded: %+v", in, ev)
		}
	}
}

// A group's stored change is an item of its log: the cursor moves over it
// live and in a sync exactly as over a message, and the live twin of a
// synced one does not come twice.
func TestGroupSetGroupChangeItems(t *testing.T) {
	l, got := loopFixture(t, map[string]GroupCursor{"g1": {Seq: 5}})
	inbox, device := l.c.inbox, l.c.device
	l.feed(device, `{"kind":"sync","since":0,"upto":0,"more":false,"epoch":"e1","items":[]}`)
	l.feed(device, `{"kind":"heads","groups":[{"group":"g1","seq":5,"join":0,"read":0}]}`)
	l.feed(inbox, `{"kind":"group","group":"g1","seq":6,"from":"alice","action":"updated","name":"Team"}`)
	l.feed(inbox, `{"kind":"group","group":"g1","seq":8,"from":"alice","action":"owner","user":"bob"}`) // past a gap: waits
	l.feed(device, `{"kind":"sync","group":"g1","since":6,"upto":8,"more":false,"epoch":"e1","items":[`+
		`{"kind":"msg","id":"70","from":"bob","group":"g1","seq":7,"type":"text","body":"hi"},`+
		`{"kind":"group","group":"g1","seq":8,"from":"alice","action":"owner","user":"bob"}]}`)
	var desc []string
	for _, ev := range *got {
		m := ev.Item()
		if m == nil {
			t.Fatalf("not an item: %+v", ev)
		}
		desc = append(desc, fmt.Sprintf("%s %s s%d", ev.Kind, m.Action, m.Seq))
	}
	want := []string{"group updated s6", "msg  s7", "group owner s8"}
	if !slices.Equal(desc, want) {
		t.Fatalf("delivered %q, want %q", desc, want)
	}
	if cur := l.groups.cursors()["g1"]; cur.Seq != 8 || l.seq.cursor != 0 {
		t.Fatalf("cursors: group %+v, inbox %d", cur, l.seq.cursor)
	}
}

// disbandedOf returns the groups of the disbanded group events in evs.
func disbandedOf(evs []Event) []string {
	var out []string
	for _, ev := range evs {
		if ev.Group != nil && ev.Group.Action == wire.GroupDisbanded {
			out = append(out, ev.Group.Group)
		}
	}
	return out
}

// A group heads say is gone is synced up to its head (the disband) and no
// further, its disbanded event comes once, the cursor remembers it (a
// restart does not tell it again), and when heads stop listing it, it is
// dropped without a "left" event.
func TestGroupSetGone(t *testing.T) {
	gs := newGroupSet(map[string]GroupCursor{"a": {Seq: 3}}, &room{}, 100, 10*time.Second)
	gs.connected(t0)
	out, reqs := gs.onHeads(heads(wire.GroupHead{Group: "a", Seq: 6, Gone: true}, wire.GroupHead{Group: "new", Seq: 4, Join: 2, Gone: true}), t0)
	if got := disbandedOf(out); !slices.Equal(got, []string{"a", "new"}) || len(out) != 2 || !out[0].Synced {
		t.Fatalf("events %+v, want a and new disbanded", out)
	}
	wantReqs(t, "gone groups' history", reqs, "a@3", "new@2")
	gs.batchAt(gbatch("a", 3, 6, false, 4, 5, 6))
	gs.batchAt(gbatch("new", 2, 4, false, 3, 4))
	cur := gs.cursors()
	if cur["a"] != (GroupCursor{Seq: 6, Epoch: "e1", Gone: true}) || cur["new"] != (GroupCursor{Seq: 4, Epoch: "e1", Gone: true}) {
		t.Fatalf("cursors %+v", cur)
	}
	// Heads again: nothing to sync, nothing to tell.
	out, reqs = gs.onHeads(heads(wire.GroupHead{Group: "a", Seq: 6, Gone: true}, wire.GroupHead{Group: "new", Seq: 4, Join: 2, Gone: true}), t0.Add(2*time.Second))
	if len(out) != 0 || len(reqs) != 0 || !gs.settled() {
		t.Fatalf("second heads: %+v %v", out, described(reqs))
	}
	// A restart from the saved cursor: still nothing to tell.
	gs = newGroupSet(cur, &room{}, 100, 10*time.Second)
	gs.connected(t0)
	out, reqs = gs.onHeads(heads(wire.GroupHead{Group: "a", Seq: 6, Gone: true}, wire.GroupHead{Group: "new", Seq: 4, Join: 2, Gone: true}), t0)
	if len(out) != 0 || len(reqs) != 0 {
		t.Fatalf("after a restart: %+v %v", out, described(reqs))
	}
	// No longer listed: dropped, without a left event.
	out, _ = gs.onHeads(heads(wire.GroupHead{Group: "a", Seq: 6}), t0.Add(2*time.Second))
	if len(out) != 0 || gs.groups["new"] != nil {
		t.Fatalf("a gone group unlisted: %+v", out)
	}
}

// The loop: a live disbanded event is delivered and heads saying the same
// do not tell it again; a group sync reply with gone tells it after the
// history; a group_gone error tells it and is not retried.
func TestLoopGroupGone(t *testing.T) {
	l, got := loopFixture(t, map[string]GroupCursor{"g1": {Seq: 5}, "g2": {Seq: 1}, "g3": {Seq: 1}})
	inbox, device := l.c.inbox, l.c.device
	l.feed(device, `{"kind":"sync","since":0,"upto":0,"more":false,"epoch":"e1","items":[]}`)
	l.feed(device, `{"kind":"heads","groups":[{"group":"g1","seq":5,"join":0},{"group":"g2","seq":3,"join":0},{"group":"g3","seq":3,"join":0}]}`)
	l.feed(inbox, `{"kind":"group","group":"g1","action":"disbanded","by":"owner"}`)
	l.feed(inbox, `{"kind":"group","group":"g1","action":"disbanded","by":"owner"}`) // a repeat
	l.feed(device, `{"kind":"sync","group":"g2","since":1,"upto":3,"more":false,"gone":true,"epoch":"e1","items":[`+
		`{"kind":"msg","id":"70","from":"bob","group":"g2","seq":2,"type":"text","body":"bye"},`+
		`{"kind":"group","group":"g2","seq":3,"from":"owner","action":"disbanded"}]}`)
	l.feed(device, `{"kind":"error","group":"g3","code":"group_gone","message":"disbanded"}`)
	l.groups.heads.next = time.Time{} // let the next heads out at once
	l.feed(device, `{"kind":"heads","groups":[{"group":"g1","seq":6,"join":0,"gone":true},{"group":"g2","seq":3,"join":0,"gone":true},{"group":"g3","seq":3,"join":0,"gone":true}]}`)
	var desc []string
	for _, ev := range *got {
		switch {
		case ev.Group != nil:
			desc = append(desc, ev.Group.Group+" "+ev.Group.Action)
		case ev.Item() != nil:
			desc = append(desc, fmt.Sprintf("%s %s s%d", ev.Kind, ev.Item().Group, ev.Item().Seq))
		}
	}
	want := []string{"g1 disbanded", "msg g2 s2", "group g2 s3", "g2 disbanded", "g3 disbanded"}
	if !slices.Equal(desc, want) {
		t.Fatalf("delivered %q, want %q", desc, want)
	}
	cur := l.groups.cursors()
	for _, g := range []string{"g1", "g2", "g3"} {
		if !cur[g].Gone {
			t.Errorf("cursor of %s %+v: not gone", g, cur[g])
		}
	}
	if g3 := l.groups.groups["g3"]; !g3.retryAt.IsZero() || g3.queued {
		t.Fatalf("g3 after group_gone: a retry is due %v, queued %v", g3.retryAt, g3.queued)
	}
}

// Every new HTTP call: its method, path and body, IDs checked before they
// leave, and the replies decoded.
func TestHTTPSocial(t *testing.T) {
	type seen struct{ method, uri, body string }
	var got []seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body json.RawMessage
		_ = json.NewDecoder(r.Body).Decode(&body)
		got = append(got, seen{r.Method, r.URL.RequestURI(), string(body)})
		switch {
		case r.URL.Path == "/v1/contacts" && r.Method == http.MethodGet:
			fmt.Fprint(w, `{"contacts":[{"user":"bob","state":"accepted","since":5}]}`)
		case strings.HasPrefix(r.URL.Path, "/v1/contacts") && r.Method == http.MethodPost:
			fmt.Fprint(w, `{"user":"bob","state":"pending_out","since":5}`)
		case r.URL.Path == "/v1/blocks":
			fmt.Fprint(w, `{"blocks":[{"user":"eve","since":6}]}`)
		case r.URL.Path == "/v1/presence":
			fmt.Fprint(w, `{"presence":[{"user":"bob","online":true,"last_seen":0}]}`)
		case strings.HasPrefix(r.URL.Path, "/v1/groups/") && (r.Method == http.MethodPatch || r.Method == http.MethodPost):
			fmt.Fprint(w, `{"id":"team","name":"Team","owner":"bob","created":1,"count":2,"seq":4,"muted":true}`)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	h := &HTTP{Server: srv.URL, Token: "tok"}
	if c, err := h.RequestContact(ctx, "Bob"); err != nil || c.State != wire.ContactPendingOut {
		t.Fatalf("RequestContact = %+v, %v", c, err)
	}
	if _, err := h.AcceptContact(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if err := h.RemoveContact(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if cs, err := h.Contacts(ctx, "alice", 50); err != nil || len(cs.Contacts) != 1 || cs.Contacts[0].State != wire.ContactAccepted {
		t.Fatalf("Contacts = %+v, %v", cs, err)
	}
	if err := h.Block(ctx, "eve"); err != nil {
		t.Fatal(err)
	}
	if err := h.Unblock(ctx, "eve"); err != nil {
		t.Fatal(err)
	}
	if bs, err := h.Blocks(ctx, "", 0); err != nil || len(bs.Blocks) != 1 || bs.Blocks[0].User != "eve" {
		t.Fatalf("Blocks = %+v, %v", bs, err)
	}
	if pl, err := h.Presence(ctx, "bob", "Carol"); err != nil || len(pl.Presence) != 1 || !pl.Presence[0].Online {
		t.Fatalf("Presence = %+v, %v", pl, err)
	}
	name, muted := "Team", true
	if g, err := h.UpdateGroup(ctx, "team", wire.GroupPatch{Name: &name, Muted: &muted}); err != nil || !g.Muted {
		t.Fatalf("UpdateGroup = %+v, %v", g, err)
	}
	if g, err := h.TransferGroup(ctx, "team", "bob"); err != nil || g.Owner != "bob" {
		t.Fatalf("TransferGroup = %+v, %v", g, err)
	}
	until := time.UnixMilli(1_800_000_000_000)
	if err := h.MuteMember(ctx, "team", "bob", until); err != nil {
		t.Fatal(err)
	}
	if err := h.MuteMember(ctx, "team", "bob", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := h.DisbandGroup(ctx, "team"); err != nil {
		t.Fatal(err)
	}
	want := []seen{
		{"POST", "/v1/contacts", `{"user":"bob"}`},
		{"POST", "/v1/contacts/bob/accept", ""},
		{"DELETE", "/v1/contacts/bob", ""},
		{"GET", "/v1/contacts?after=alice&limit=50", ""},
		{"PUT", "/v1/blocks/eve", ""},
		{"DELETE", "/v1/blocks/eve", ""},
		{"GET", "/v1/blocks", ""},
		{"GET", "/v1/presence?users=bob%2Ccarol", ""},
		{"PATCH", "/v1/groups/team", `{"name":"Team","muted":true}`},
		{"POST", "/v1/groups/team/owner", `{"user":"bob"}`},
		{"PUT", "/v1/groups/team/members/bob", `{"mute_until":1800000000000}`},
		{"PUT", "/v1/groups/team/members/bob", `{"mute_until":0}`},
		{"DELETE", "/v1/groups/team", ""},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("requests\n%q\nwant\n%q", got, want)
	}

	// Refused before anything is sent.
	got = nil
	many := make([]string, wire.MaxPresenceUsers+1)
	for i := range many {
		many[i] = fmt.Sprint("u", i)
	}
	for what, err := range map[string]error{
		"contact ..":         func() error { _, err := h.RequestContact(ctx, ".."); return err }(),
		"accept a/b":         func() error { _, err := h.AcceptContact(ctx, "a/b"); return err }(),
		"block empty":        h.Block(ctx, ""),
		"presence of none":   func() error { _, err := h.Presence(ctx); return err }(),
		"presence of a,b":    func() error { _, err := h.Presence(ctx, "a,b"); return err }(),
		"presence of many":   func() error { _, err := h.Presence(ctx, many...); return err }(),
		"empty group update": func() error { _, err := h.UpdateGroup(ctx, "team", wire.GroupPatch{}); return err }(),
		"transfer to ..":     func() error { _, err := h.TransferGroup(ctx, "team", ".."); return err }(),
		"mute in ..":         h.MuteMember(ctx, "..", "bob", until),
		"disband .":          h.DisbandGroup(ctx, "."),
		"burn in a group": func() error {
			_, err := h.Send(ctx, wire.Send{CMID: "c", Group: "team", Type: "text", Body: "x", TTL: 5})
			return err
		}(),
		"burn too long": func() error {
			_, err := h.Send(ctx, wire.Send{CMID: "c", To: "bob", Type: "text", Body: "x", TTL: wire.MaxTTL + 1})
			return err
		}(),
		"burn negative": func() error {
			_, err := h.Send(ctx, wire.Send{CMID: "c", To: "bob", Type: "text", Body: "x", TTL: -1})
			return err
		}(),
	} {
		var we *wire.Error
		if !errors.As(err, &we) || we.Code != wire.CodeBadRequest {
			t.Errorf("%s: %v, want bad_request", what, err)
		}
	}
	if len(got) != 0 {
		t.Fatalf("refused calls reached the server: %q", got)
	}
}

// SyncCursor over HTTP: a group whose sync the server answers group_gone
// (disbanded) ends there, keeps its cursor, and does not fail the sync of
// the other groups.
func TestSyncCursorGroupGone(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		switch {
		case q.Get("heads") == "1":
			fmt.Fprint(w, `{"kind":"heads","groups":[{"group":"gone","seq":9,"join":0,"gone":true},{"group":"live","seq":2,"join":0}]}`)
		case q.Get("group") == "gone":
			w.WriteHeader(http.StatusGone)
			fmt.Fprint(w, `{"kind":"error","code":"group_gone","message":"disbanded"}`)
		case q.Get("group") == "live":
			fmt.Fprint(w, `{"kind":"sync","group":"live","since":1,"upto":2,"more":false,"epoch":"e","items":[{"kind":"msg","id":"5","group":"live","seq":2,"type":"text","body":"hi"}]}`)
		default:
			fmt.Fprint(w, `{"kind":"sync","since":0,"upto":0,"more":false,"epoch":"e","items":[]}`)
		}
	}))
	defer srv.Close()
	cur := &MemoryCursor{}
	_ = cur.Save(Cursor{Groups: map[string]GroupCursor{"gone": {Seq: 4, Epoch: "e"}, "live": {Seq: 1, Epoch: "e"}}})
	var got []string
	err := (&HTTP{Server: srv.URL}).SyncCursor(context.Background(), cur, 0, func(m wire.Msg) error {
		got = append(got, m.Group+":"+m.Body)
		return nil
	})
	if err != nil || !slices.Equal(got, []string{"live:hi"}) {
		t.Fatalf("SyncCursor: %v, delivered %v", err, got)
	}
	if c, _ := cur.Load(); c.Groups["gone"].Seq != 4 || c.Groups["live"].Seq != 2 {
		t.Fatalf("cursor %+v", c)
	}
}
