package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/imqtt/imqtt/store"
)

// SocialStore is what the Social part opens: Gates reads user settings.
type SocialStore interface {
	store.Social
	store.Lives
}

// Social tests the Social role: contacts (both sides' rows), blocks,
// Blockers of many users at once, last seen, Gates, and a deleted user's
// rows.
func Social(t *testing.T, open func(t *testing.T) SocialStore) {
	run(t, open, []testCase{
		{"RequestBothSides", testRequestBothSides},
		{"RequestIdempotent", testRequestIdempotent},
		{"RequestCrossing", testRequestCrossing},
		{"Accept", testAcceptContact},
		{"AcceptNoRequest", testAcceptNoRequest},
		{"Remove", testRemoveContact},
		{"ContactsPaged", testContactsPaged},
		{"Blocks", testBlocks},
		{"BlocksPaged", testBlocksPaged},
		{"Blockers", testBlockers},
		{"LastSeen", testLastSeen},
		{"SocialSelf", testSocialSelf},
		{"DeleteUserSocial", testDeleteUserSocial},
		{"Gates", testGates},
	})
}

func (f *fixture) social() store.Social { return f.store.(store.Social) }

// contact returns user's row with peer, or a zero Contact if none.
func (f *fixture) contact(user, peer string) store.Contact {
	f.t.Helper()
	c, err := f.social().GetContact(f.ctx, user, peer)
	if errors.Is(err, store.ErrNotFound) {
		return store.Contact{}
	}
	if err != nil {
		f.t.Fatalf("get contact %s–%s: %v", user, peer, err)
	}
	return c
}

func (f *fixture) request(from, to string, ts int64) store.Contact {
	f.t.Helper()
	c, err := f.social().RequestContact(f.ctx, from, to, ts)
	if err != nil {
		f.t.Fatalf("request %s→%s: %v", from, to, err)
	}
	return c
}

func (f *fixture) contacts(user, state, after string, limit int) []store.Contact {
	f.t.Helper()
	cs, err := f.social().Contacts(f.ctx, user, state, after, limit)
	if err != nil {
		f.t.Fatalf("contacts of %s: %v", user, err)
	}
	return cs
}

// wantPair checks both rows of a contact between a and b, a's in state.
func (f *fixture) wantPair(a, b, state string, since int64) {
	f.t.Helper()
	mirror := map[string]string{store.ContactPendingOut: store.ContactPendingIn, store.ContactPendingIn: store.ContactPendingOut,
		store.ContactAccepted: store.ContactAccepted}[state]
	if got, want := f.contact(a, b), (store.Contact{User: a, Peer: b, State: state, Since: since}); got != want {
		f.t.Errorf("%s's row: %+v, want %+v", a, got, want)
	}
	if got, want := f.contact(b, a), (store.Contact{User: b, Peer: a, State: mirror, Since: since}); got != want {
		f.t.Errorf("%s's row: %+v, want %+v", b, got, want)
	}
}

func testRequestBothSides(t *testing.T, f *fixture) {
	if c := f.request("alice", "bob", 10); c != (store.Contact{User: "alice", Peer: "bob", State: store.ContactPendingOut, Since: 10}) {
		t.Errorf("request: %+v", c)
	}
	f.wantPair("alice", "bob", store.ContactPendingOut, 10)
	if got := f.contacts("bob", "", "", 0); len(got) != 1 || got[0].State != store.ContactPendingIn || got[0].Peer != "alice" {
		t.Errorf("bob's contacts: %+v", got)
	}
	if got := f.contacts("carol", "", "", 0); len(got) != 0 {
		t.Errorf("a stranger's contacts: %+v", got)
	}
}

// testRequestIdempotent: a request again, pending or accepted, changes
// nothing (Since stays).
func testRequestIdempotent(t *testing.T, f *fixture) {
	f.request("alice", "bob", 10)
	if c := f.request("alice", "bob", 20); c.State != store.ContactPendingOut || c.Since != 10 {
		t.Errorf("second request: %+v", c)
	}
	f.wantPair("alice", "bob", store.ContactPendingOut, 10)
	if _, err := f.social().AcceptContact(f.ctx, "bob", "alice", 30); err != nil {
		t.Fatal(err)
	}
	for _, from := range []string{"alice", "bob"} {
		if c := f.request(from, map[string]string{"alice": "bob", "bob": "alice"}[from], 40); c.State != store.ContactAccepted || c.Since != 30 {
			t.Errorf("request of %s once accepted: %+v", from, c)
		}
	}
	f.wantPair("alice", "bob", store.ContactAccepted, 30)
}

// testRequestCrossing: a request to one who asked already accepts both.
func testRequestCrossing(t *testing.T, f *fixture) {
	f.request("alice", "bob", 10)
	if c := f.request("bob", "alice", 20); c != (store.Contact{User: "bob", Peer: "alice", State: store.ContactAccepted, Since: 20}) {
		t.Errorf("crossing request: %+v", c)
	}
	f.wantPair("alice", "bob", store.ContactAccepted, 20)
}

func testAcceptContact(t *testing.T, f *fixture) {
	f.request("alice", "bob", 10)
	c, err := f.social().AcceptContact(f.ctx, "bob", "alice", 20)
	if err != nil || c != (store.Contact{User: "bob", Peer: "alice", State: store.ContactAccepted, Since: 20}) {
		t.Fatalf("accept: %+v, %v", c, err)
	}
	f.wantPair("alice", "bob", store.ContactAccepted, 20)
	if c, err := f.social().AcceptContact(f.ctx, "bob", "alice", 30); err != nil || c.Since != 20 {
		t.Errorf("accept again: %+v, %v", c, err)
	}
	if got := f.contacts("alice", store.ContactAccepted, "", 0); len(got) != 1 || got[0].Peer != "bob" {
		t.Errorf("alice's accepted: %+v", got)
	}
}

// testAcceptNoRequest: accepting what was never asked, or one's own
// request, is ErrNotFound and writes nothing.
func testAcceptNoRequest(t *testing.T, f *fixture) {
	if _, err := f.social().AcceptContact(f.ctx, "bob", "alice", 20); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("accept of nothing: %v", err)
	}
	if c := f.contact("bob", "alice"); c != (store.Contact{}) {
		t.Errorf("accept of nothing wrote %+v", c)
	}
	f.request("alice", "bob", 10)
	if _, err := f.social().AcceptContact(f.ctx, "alice", "bob", 20); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the asker accepting: %v", err)
	}
	f.wantPair("alice", "bob", store.ContactPendingOut, 10)
}

// testRemoveContact: either side's removal removes both rows, whatever
// the state; a second is ErrNotFound.
func testRemoveContact(t *testing.T, f *fixture) {
	f.request("alice", "bob", 10)
	f.request("alice", "carol", 11)
	f.request("dave", "alice", 12)
	if _, err := f.social().AcceptContact(f.ctx, "carol", "alice", 13); err != nil {
		t.Fatal(err)
	}
	for _, rm := range [][2]string{{"alice", "bob"}, {"carol", "alice"}, {"alice", "dave"}} { // withdraw, remove, decline
		c, err := f.social().RemoveContact(f.ctx, rm[0], rm[1])
		if err != nil || c.User != rm[0] || c.Peer != rm[1] || c.State == "" {
			t.Errorf("remove %v: %+v, %v", rm, c, err)
		}
		if a, b := f.contact(rm[0], rm[1]), f.contact(rm[1], rm[0]); a != (store.Contact{}) || b != (store.Contact{}) {
			t.Errorf("after remove %v: %+v, %+v", rm, a, b)
		}
		if _, err := f.social().RemoveContact(f.ctx, rm[1], rm[0]); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("remove %v again: %v", rm, err)
		}
	}
	if got := f.contacts("alice", "", "", 0); len(got) != 0 {
		t.Errorf("alice's contacts after removals: %+v", got)
	}
}

// testContactsPaged: by peer, after, limit, a state's; counts stop at most.
func testContactsPaged(t *testing.T, f *fixture) {
	var want, accepted []string
	for i := range 25 {
		peer := fmt.Sprintf("u%02d", i)
		want = append(want, peer)
		if i%3 == 0 {
			f.request(peer, "alice", int64(i))
			if _, err := f.social().AcceptContact(f.ctx, "alice", peer, int64(100+i)); err != nil {
				t.Fatal(err)
			}
			accepted = append(accepted, peer)
		} else {
			f.request("alice", peer, int64(i))
		}
	}
	f.request("bob", "zed", 1) // another user's rows are not alice's
	var got []string
	for after := ""; ; {
		page := f.contacts("alice", "", after, 7)
		if len(page) > 7 {
			t.Fatalf("page of %d, limit 7", len(page))
		}
		if len(page) == 0 {
			break
		}
		for _, c := range page {
			got = append(got, c.Peer)
		}
		after = page[len(page)-1].Peer
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("alice's contacts paged: %v, want %v", got, want)
	}
	got = got[:0]
	for _, c := range f.contacts("alice", store.ContactAccepted, "", 0) {
		got = append(got, c.Peer)
	}
	if !reflect.DeepEqual(got, accepted) {
		t.Errorf("alice's accepted: %v, want %v", got, accepted)
	}
	if page := f.contacts("alice", store.ContactAccepted, "u03", 2); len(page) != 2 || page[0].Peer != "u06" || page[1].Peer != "u09" {
		t.Errorf("accepted after u03, 2: %+v", page)
	}
	for most, want := range map[int]int{0: 25, 10: 10, 30: 25} {
		if n, err := f.social().CountContacts(f.ctx, "alice", most); err != nil || n != want {
			t.Errorf("count contacts, most %d: %d, %v; want %d", most, n, err, want)
		}
	}
}

func (f *fixture) blocks(user, after string, limit int) []store.Block {
	f.t.Helper()
	bs, err := f.social().Blocks(f.ctx, user, after, limit)
	if err != nil {
		f.t.Fatalf("blocks of %s: %v", user, err)
	}
	return bs
}

// testBlocks: a block is idempotent (Since stays), one way, and lifted
// idempotently.
func testBlocks(t *testing.T, f *fixture) {
	sc := f.social()
	for _, ts := range []int64{10, 20} {
		if err := sc.PutBlock(f.ctx, store.Block{User: "alice", Peer: "bob", Since: ts}); err != nil {
			t.Fatal(err)
		}
	}
	if got := f.blocks("alice", "", 0); !reflect.DeepEqual(got, []store.Block{{User: "alice", Peer: "bob", Since: 10}}) {
		t.Errorf("alice's blocks: %+v", got)
	}
	if got := f.blocks("bob", "", 0); len(got) != 0 {
		t.Errorf("bob's blocks: %+v (a block is one way)", got)
	}
	for range 2 {
		if err := sc.DeleteBlock(f.ctx, "alice", "bob"); err != nil {
			t.Fatal(err)
		}
	}
	if got := f.blocks("alice", "", 0); len(got) != 0 {
		t.Errorf("alice's blocks after delete: %+v", got)
	}
	if by, err := sc.Blockers(f.ctx, "bob", []string{"alice"}); err != nil || len(by) != 0 {
		t.Errorf("blockers of bob after delete: %v, %v", by, err)
	}
}

func testBlocksPaged(t *testing.T, f *fixture) {
	var want []string
	for i := range 12 {
		peer := fmt.Sprintf("u%02d", i)
		want = append(want, peer)
		if err := f.social().PutBlock(f.ctx, store.Block{User: "alice", Peer: peer, Since: int64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for after := ""; ; {
		page := f.blocks("alice", after, 5)
		if len(page) == 0 {
			break
		}
		for _, b := range page {
			got = append(got, b.Peer)
		}
		after = page[len(page)-1].Peer
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("blocks paged: %v, want %v", got, want)
	}
	if n, err := f.social().CountBlocks(f.ctx, "alice", 5); err != nil || n != 5 {
		t.Errorf("count blocks, most 5: %d, %v", n, err)
	}
	if n, err := f.social().CountBlocks(f.ctx, "alice", 0); err != nil || n != 12 {
		t.Errorf("count blocks: %d, %v", n, err)
	}
}

// testBlockers: one call answers for more users than one chunk of a
// query, naming only those who blocked that peer.
func testBlockers(t *testing.T, f *fixture) {
	sc := f.social()
	var users []string
	want := map[string]bool{}
	for i := range 1200 {
		u := fmt.Sprintf("m%04d", i)
		users = append(users, u)
		switch i % 97 {
		case 0:
			want[u] = true
			if err := sc.PutBlock(f.ctx, store.Block{User: u, Peer: "spam", Since: 1}); err != nil {
				t.Fatal(err)
			}
		case 1: // blocks someone else
			if err := sc.PutBlock(f.ctx, store.Block{User: u, Peer: "other", Since: 1}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// spam's own blocks do not count.
	if err := sc.PutBlock(f.ctx, store.Block{User: "spam", Peer: "m0005", Since: 1}); err != nil {
		t.Fatal(err)
	}
	got, err := sc.Blockers(f.ctx, "spam", append(users, "nobody", "spam"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("blockers of spam: %d users %v, want %d %v", len(got), got, len(want), want)
	}
	if got, err := sc.Blockers(f.ctx, "spam", nil); err != nil || len(got) != 0 {
		t.Errorf("blockers among nobody: %v, %v", got, err)
	}
	// Blocked by more users than are asked about, a few and many at once.
	for i := range 60 {
		if err := sc.PutBlock(f.ctx, store.Block{User: fmt.Sprintf("w%02d", i), Peer: "troll", Since: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if err := sc.DeleteBlock(f.ctx, "w07", "troll"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{3, 20} {
		ask := []string{"w07"}
		want := map[string]bool{}
		for i := range n {
			u := fmt.Sprintf("w%02d", 20+i)
			ask, want[u] = append(ask, u, "x"+u), true
		}
		if got, err := sc.Blockers(f.ctx, "troll", ask); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("blockers of troll among %d: %v, %v; want %v", len(ask), got, err, want)
		}
	}
}

func testLastSeen(t *testing.T, f *fixture) {
	sc := f.social()
	if got, err := sc.LastSeen(f.ctx, []string{"alice", "bob"}); err != nil || len(got) != 0 {
		t.Errorf("never seen: %v, %v", got, err)
	}
	for _, s := range []struct {
		user string
		ts   int64
	}{{"alice", 10}, {"bob", 20}, {"alice", 0}} {
		if err := sc.SetLastSeen(f.ctx, s.user, s.ts); err != nil {
			t.Fatal(err)
		}
	}
	got, err := sc.LastSeen(f.ctx, []string{"alice", "bob", "carol"})
	if err != nil || !reflect.DeepEqual(got, map[string]int64{"alice": 0, "bob": 20}) {
		t.Errorf("last seen: %v, %v", got, err)
	}
}

// testSocialSelf: a contact or block of oneself is refused and writes
// nothing.
func testSocialSelf(t *testing.T, f *fixture) {
	sc := f.social()
	if _, err := sc.RequestContact(f.ctx, "alice", "alice", 1); err == nil {
		t.Error("a request to oneself was taken")
	}
	if err := sc.PutBlock(f.ctx, store.Block{User: "alice", Peer: "alice", Since: 1}); err == nil {
		t.Error("a block of oneself was taken")
	}
	if _, err := sc.RequestContact(f.ctx, "", "bob", 1); err == nil {
		t.Error("a request from nobody was taken")
	}
	if got := f.contacts("alice", "", "", 0); len(got) != 0 {
		t.Errorf("contacts after refusals: %+v", got)
	}
	if got := f.blocks("alice", "", 0); len(got) != 0 {
		t.Errorf("blocks after refusals: %+v", got)
	}
}

// testDeleteUserSocial: a deleted user's contacts go on both sides, its
// blocks and last seen go, in batches; others' blocks of it stay.
func testDeleteUserSocial(t *testing.T, f *fixture) {
	sc := f.social()
	for i := range 5 {
		f.request("gone", fmt.Sprintf("p%d", i), int64(i))
		if err := sc.PutBlock(f.ctx, store.Block{User: "gone", Peer: fmt.Sprintf("b%d", i), Since: 1}); err != nil {
			t.Fatal(err)
		}
	}
	f.request("p0", "stay", 1)
	if err := sc.PutBlock(f.ctx, store.Block{User: "p1", Peer: "gone", Since: 1}); err != nil {
		t.Fatal(err)
	}
	if err := sc.SetLastSeen(f.ctx, "gone", 5); err != nil {
		t.Fatal(err)
	}
	total := 0
	for range 10 {
		n, err := sc.DeleteUserSocial(f.ctx, "gone", 3)
		if err != nil {
			t.Fatal(err)
		}
		if n > 3 {
			t.Fatalf("deleted %d, limit 3", n)
		}
		if n == 0 {
			break
		}
		total += n
	}
	if total != 11 {
		t.Errorf("deleted %d rows, want 11 (5 contacts, 5 blocks, last seen)", total)
	}
	if got := f.contacts("gone", "", "", 0); len(got) != 0 {
		t.Errorf("gone's contacts: %+v", got)
	}
	if c := f.contact("p3", "gone"); c != (store.Contact{}) {
		t.Errorf("p3's side remains: %+v", c)
	}
	if got := f.blocks("gone", "", 0); len(got) != 0 {
		t.Errorf("gone's blocks: %+v", got)
	}
	if got, err := sc.LastSeen(f.ctx, []string{"gone"}); err != nil || len(got) != 0 {
		t.Errorf("gone's last seen: %v, %v", got, err)
	}
	if got := f.contacts("p0", "", "", 0); len(got) != 1 || got[0].Peer != "stay" {
		t.Errorf("p0's other contact: %+v", got)
	}
	if by, err := sc.Blockers(f.ctx, "gone", []string{"p1"}); err != nil || !by["p1"] {
		t.Errorf("p1's block of gone: %v, %v", by, err)
	}
	many := []string{"gone"}
	for i := range 20 {
		many = append(many, fmt.Sprintf("q%02d", i))
	}
	if by, err := sc.Blockers(f.ctx, "b0", many); err != nil || len(by) != 0 {
		t.Errorf("gone's block of b0 remains: %v, %v", by, err)
	}
}

// testGates: one call answers blocks, accept_from and contacts for many
// pairs, in both directions kept apart.
func testGates(t *testing.T, f *fixture) {
	sc := f.social()
	if err := sc.PutBlock(f.ctx, store.Block{User: "bob", Peer: "spam", Since: 1}); err != nil {
		t.Fatal(err)
	}
	lives := f.store.(store.Lives)
	if err := lives.PutUserSettings(f.ctx, store.UserSettings{User: "carol", AcceptFrom: store.AcceptContacts, Updated: 1}); err != nil {
		t.Fatal(err)
	}
	f.request("carol", "friend", 1)
	if _, err := sc.AcceptContact(f.ctx, "friend", "carol", 2); err != nil {
		t.Fatal(err)
	}
	f.request("asker", "carol", 3) // pending: not a contact
	pairs := []store.Pair{{User: "bob", Peer: "spam"}, {User: "spam", Peer: "bob"}, {User: "bob", Peer: "alice"},
		{User: "carol", Peer: "friend"}, {User: "carol", Peer: "asker"}, {User: "carol", Peer: "stranger"},
		{User: "friend", Peer: "carol"}, {User: "bob", Peer: "spam"}}
	for i := range 600 { // past one chunk of a query
		pairs = append(pairs, store.Pair{User: fmt.Sprintf("n%03d", i), Peer: "spam"})
	}
	got, err := sc.Gates(f.ctx, pairs)
	if err != nil {
		t.Fatal(err)
	}
	want := map[store.Pair]store.Gate{
		{User: "bob", Peer: "spam"}:       {Blocked: true},
		{User: "carol", Peer: "friend"}:   {ContactsOnly: true, Contact: true},
		{User: "carol", Peer: "asker"}:    {ContactsOnly: true},
		{User: "carol", Peer: "stranger"}: {ContactsOnly: true},
	}
	for _, p := range pairs {
		g, ok := got[p]
		if !ok {
			t.Errorf("no gate for %+v", p)
		}
		if g != want[p] {
			t.Errorf("gate of %+v: %+v, want %+v", p, g, want[p])
		}
	}
}
