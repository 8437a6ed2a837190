package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imqtt/imqtt/internal/daemon"
	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/wire"
)

// presenceDebounce is the tests' debounce: short, so that a reconnect
// within it and a departure past it both fit in a test (the 10 s default
// is internal/presence's unit tests', on a clock they move).
const presenceDebounce = 1500 * time.Millisecond

// befriend makes a and b accepted contacts in the store (the contacts API
// is tested where it is built).
func befriend(t testing.TB, st store.Store, a, b string) {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UnixMilli()
	if _, err := st.RequestContact(ctx, a, b, now); err != nil {
		t.Fatal(err)
	}
	if _, err := st.AcceptContact(ctx, b, a, now); err != nil {
		t.Fatal(err)
	}
}

// presences are the presence events a device got about user, as
// "online" or "offline"; with once, a repeated state once: two nodes
// that see a user's last devices leave at once may both announce it,
// which a client takes as no change (docs/protocol.md#presence).
func (d *device) presences(user string, once bool) []string {
	var out []string
	for _, raw := range d.inboxOf(wire.KindPresence) {
		var ev wire.PresenceEvent
		if json.Unmarshal(raw, &ev) != nil || ev.User != user {
			continue
		}
		s := "online"
		if !ev.Online {
			s = "offline"
			if ev.LastSeen <= 0 {
				s += " without last_seen"
			}
		}
		if !once || len(out) == 0 || out[len(out)-1] != s {
			out = append(out, s)
		}
	}
	return out
}

func (d *device) allPresences() int { return len(d.inboxOf(wire.KindPresence)) }

// waitPresences waits for d's presence events of user to be want; on a
// cluster (once), a repeated state counts once.
func waitPresences(t *testing.T, d *device, user string, once bool, want ...string) {
	t.Helper()
	wait.ForErr(t, d.user+"'s presence events of "+user, 10*time.Second, func() error {
		if got := d.presences(user, once); !slices.Equal(got, want) {
			return fmt.Errorf("%q, want %q", got, want)
		}
		return nil
	})
}

// getPresence is GET /v1/presence?users= as token's user.
func getPresence(t *testing.T, base, token string, users ...string) (int, []wire.Presence) {
	t.Helper()
	var got wire.PresenceList
	code := httpJSON(t, "GET", base+"/v1/presence?users="+url.QueryEscape(strings.Join(users, ",")), token, nil, &got)
	return code, got.Presence
}

func withPresenceDebounce(cfg *daemon.Config) { cfg.PresenceDebounce = presenceDebounce }

// TestPresence: a contact sees alice come online and, once she has been
// away past the debounce, go offline; a reconnect within the debounce is
// no change; a stranger, a contact who blocked her and everyone while she
// hides it see nothing; GET /v1/presence answers the same.
func TestPresence(t *testing.T) {
	s := testserver.Start(t, withPresenceDebounce)
	st := s.Store()
	tok := map[string]string{}
	for _, u := range []string{"alice", "bob", "carol", "dave"} {
		tok[u] = account(t, s, u, "x")
	}
	befriend(t, st, "alice", "bob")
	befriend(t, st, "alice", "dave")
	if err := st.PutBlock(context.Background(), store.Block{User: "dave", Peer: "alice", Since: 1}); err != nil {
		t.Fatal(err)
	}
	bob := connect(t, s.MQTT, "bob", "phone", "secret-bob")
	carol := connect(t, s.MQTT, "carol", "phone", "secret-carol") // a stranger
	dave := connect(t, s.MQTT, "dave", "phone", "secret-dave")    // blocked alice

	alice := connect(t, s.MQTT, "alice", "phone", "secret-alice")
	waitPresences(t, bob, "alice", false, "online")
	code, got := getPresence(t, s.HTTP, tok["bob"], "alice", "carol", "dave", "nosuchuser")
	if code != 200 || !slices.Equal(got, []wire.Presence{{User: "alice", Online: true}}) {
		t.Fatalf("bob's GET: %d %+v", code, got)
	}
	for _, u := range []string{"carol", "dave"} {
		if code, got := getPresence(t, s.HTTP, tok[u], "alice", "bob"); code != 200 || len(got) != 0 {
			t.Errorf("%s's GET: %d %+v, want nothing", u, code, got)
		}
	}

	// Away and back within the debounce, on another device too: nothing.
	alice.c.Disconnect(0)
	alice = connect(t, s.MQTT, "alice", "laptop", "secret-alice")
	// Away for good: offline once the debounce has passed, and no online
	// or offline before it (so the reconnect above was no change; the
	// last check below sees the whole sequence).
	left := time.Now().UnixMilli()
	alice.c.Disconnect(0)
	waitPresences(t, bob, "alice", false, "online", "offline")
	code, got = getPresence(t, s.HTTP, tok["bob"], "alice")
	if code != 200 || len(got) != 1 || got[0].Online || got[0].LastSeen < left-1000 {
		t.Fatalf("bob's GET after: %d %+v (left at %d)", code, got, left)
	}

	// Hidden: no online; shown again, the next change (offline) is told.
	var us wire.UserSettings
	if code := httpJSON(t, "PUT", s.HTTP+"/v1/me/settings", tok["alice"], wire.UserSettings{Presence: wire.PresenceNobody}, &us); code != 200 || us.Presence != wire.PresenceNobody {
		t.Fatalf("hide: %d %+v", code, us)
	}
	alice = connect(t, s.MQTT, "alice", "phone", "secret-alice")
	wait.For(t, "alice's online to be taken (and not told)", 5*time.Second, func() bool {
		seen, _ := st.LastSeen(context.Background(), []string{"alice"})
		ts, ok := seen["alice"]
		return ok && ts == 0
	})
	if code, got := getPresence(t, s.HTTP, tok["bob"], "alice"); code != 200 || len(got) != 0 {
		t.Errorf("bob's GET of hidden alice: %d %+v", code, got)
	}
	// Shown again while connected: online at once; then offline.
	if code := httpJSON(t, "PUT", s.HTTP+"/v1/me/settings", tok["alice"], wire.UserSettings{Presence: wire.PresenceContacts}, &us); code != 200 || us.Presence != wire.PresenceContacts {
		t.Fatalf("show: %d %+v", code, us)
	}
	waitPresences(t, bob, "alice", false, "online", "offline", "online")
	// Hidden while online: offline to bob at once (hiding its last seen
	// too), not left shown online.
	if code := httpJSON(t, "PUT", s.HTTP+"/v1/me/settings", tok["alice"], wire.UserSettings{Presence: wire.PresenceNobody}, &us); code != 200 {
		t.Fatalf("hide again: %d %+v", code, us)
	}
	waitPresences(t, bob, "alice", false, "online", "offline", "online", "offline without last_seen")
	if code := httpJSON(t, "PUT", s.HTTP+"/v1/me/settings", tok["alice"], wire.UserSettings{Presence: wire.PresenceContacts}, &us); code != 200 {
		t.Fatalf("show again: %d %+v", code, us)
	}
	waitPresences(t, bob, "alice", false, "online", "offline", "online", "offline without last_seen", "online")
	alice.c.Disconnect(0)
	waitPresences(t, bob, "alice", false, "online", "offline", "online", "offline without last_seen", "online", "offline")

	if n := carol.allPresences() + dave.allPresences(); n != 0 {
		t.Errorf("a stranger and a blocker got %d presence events", n)
	}
}

// TestPresenceBadInput: GET /v1/presence refuses what it cannot answer
// and keeps each user within its rate.
func TestPresenceBadInput(t *testing.T) {
	s := testserver.Start(t)
	tok := account(t, s, "alice", "x")
	many := make([]string, wire.MaxPresenceUsers+1)
	for i := range many {
		many[i] = fmt.Sprintf("u%d", i)
	}
	for name, q := range map[string]string{
		"no users":  "",
		"empty":     "?users=",
		"too many":  "?users=" + strings.Join(many, ","),
		"malformed": "?users=bob,a%2Fb",
		"empty id":  "?users=bob,,carol",
	} {
		var e wire.Error
		if code := httpJSON(t, "GET", s.HTTP+"/v1/presence"+q, tok, nil, &e); code != 400 || e.Code != wire.CodeBadRequest {
			t.Errorf("%s: %d %+v", name, code, e)
		}
	}
	if code := httpJSON(t, "GET", s.HTTP+"/v1/presence?users=bob", "", nil, nil); code != 401 {
		t.Errorf("no token: %d", code)
	}
	limited := 0
	for range 30 {
		if code, _ := getPresence(t, s.HTTP, tok, "bob"); code == 429 {
			limited++
		}
	}
	if limited == 0 {
		t.Error("30 GETs at once: none rate_limited")
	}
}

// TestClusterPresence: three nodes; alice's contact bob on n2 sees her come
// online on n1, move to n3 within the debounce (no change) and leave.
func TestClusterPresence(t *testing.T) { runClusterPresence(t, sharedPebble(t)) }

// The same on MongoDB (FerretDB in tests): the social graph and the
// announced state in its collections, one Store shared by the nodes.
func TestClusterPresenceMongo(t *testing.T) { runClusterPresence(t, sharedMongo(t)) }

func runClusterPresence(t *testing.T, st store.Store) {
	c := newCluster(t, st)
	c.edit = withPresenceDebounce
	n1, n2, n3 := c.start("n1"), c.start("n2"), c.start("n3")
	tok := map[string]string{}
	for _, u := range []string{"alice", "bob", "carol"} {
		tok[u] = account(t, n1, u, "x")
	}
	befriend(t, c.st, "alice", "bob")
	bob := connect(t, n2.MQTT, "bob", "phone", "secret-bob")
	carol := connect(t, n2.MQTT, "carol", "phone", "secret-carol") // a stranger on bob's node

	alice := connect(t, n1.MQTT, "alice", "phone", "secret-alice")
	waitPresences(t, bob, "alice", true, "online")
	if code, got := getPresence(t, n3.HTTP, tok["bob"], "alice"); code != 200 || !slices.Equal(got, []wire.Presence{{User: "alice", Online: true}}) {
		t.Fatalf("bob's GET on n3: %d %+v", code, got)
	}

	alice.c.Disconnect(0)
	alice = connect(t, n3.MQTT, "alice", "phone", "secret-alice")
	left := time.Now().UnixMilli()
	alice.c.Disconnect(0)
	waitPresences(t, bob, "alice", true, "online", "offline")
	code, got := getPresence(t, n1.HTTP, tok["bob"], "alice")
	if code != 200 || len(got) != 1 || got[0].Online || got[0].LastSeen < left-1000 {
		t.Fatalf("bob's GET on n1 after: %d %+v", code, got)
	}
	if n := carol.allPresences(); n != 0 {
		t.Errorf("a stranger got %d presence events", n)
	}
}

// TestPresenceRestart: a node that stops records its users offline (no
// one is left announced online), so after the restart a user who comes
// back is announced online again.
func TestPresenceRestart(t *testing.T) {
	s := testserver.Start(t, withPresenceDebounce)
	for _, u := range []string{"alice", "bob"} {
		account(t, s, u, "x")
	}
	befriend(t, s.Store(), "alice", "bob")
	connect(t, s.MQTT, "alice", "phone", "secret-alice")
	wait.For(t, "alice announced online", 5*time.Second, func() bool {
		seen, _ := s.Store().LastSeen(context.Background(), []string{"alice"})
		ts, ok := seen["alice"]
		return ok && ts == 0
	})
	s.Restart(t)
	seen, err := s.Store().LastSeen(context.Background(), []string{"alice"})
	if err != nil || seen["alice"] == 0 {
		t.Fatalf("after the restart alice's last seen is %v (%v): still announced online", seen, err)
	}
	bob := connect(t, s.MQTT, "bob", "phone", "secret-bob")
	connect(t, s.MQTT, "alice", "phone", "secret-alice")
	waitPresences(t, bob, "alice", false, "online")
}
