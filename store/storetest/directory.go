package storetest

import (
	"slices"
	"testing"

	"github.com/imqtt/imqtt/store"
)

// DirectoryStore is what the Directory part opens: accounts (with their
// tombstones) and groups to search.
type DirectoryStore interface {
	store.Directory
	store.Users
	store.Erasure
	store.Groups
}

// Directory tests the Directory role.
func Directory(t *testing.T, open func(t *testing.T) DirectoryStore) {
	run(t, open, []testCase{
		{"SearchUsers", testSearchUsers},
		{"SearchGroups", testSearchGroups},
	})
}

func testSearchUsers(t *testing.T, f *fixture) {
	d := f.store.(DirectoryStore)
	for _, id := range []string{"bob", "al", "alice", "Alfred", "alz", "am", "ak", "gone"} {
		if err := f.users.CreateUser(f.ctx, store.User{ID: id, PasswordHash: "h", Created: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.TombstoneUser(f.ctx, "alice", 5); err != nil {
		t.Fatal(err)
	}
	ids := func(prefix, after string, limit int) []string {
		t.Helper()
		us, err := d.SearchUsers(f.ctx, prefix, after, limit)
		if err != nil {
			t.Fatalf("search %q after %q: %v", prefix, after, err)
		}
		var out []string
		for _, u := range us {
			if u.PasswordHash != "h" || u.Created != 1 {
				t.Errorf("search %q: %+v is not the row stored", prefix, u)
			}
			out = append(out, u.ID)
		}
		return out
	}
	for _, c := range []struct {
		prefix, after string
		limit         int
		want          []string
	}{
		{"al", "", 0, []string{"al", "alfred", "alz"}}, // folded at create, tombstone skipped
		{"al", "", 2, []string{"al", "alfred"}},
		{"al", "alfred", 2, []string{"alz"}}, // the next page
		{"al", "alz", 2, nil},
		{"al", "b", 2, nil},                             // after past the prefix
		{"al", "a", 0, []string{"al", "alfred", "alz"}}, // after before it
		{"", "", 0, []string{"ak", "al", "alfred", "alz", "am", "bob", "gone"}},
		{"", "am", 1, []string{"bob"}},
		{"x", "", 0, nil},
		{"alfredo", "", 0, nil},
	} {
		if got := ids(c.prefix, c.after, c.limit); !slices.Equal(got, c.want) {
			t.Errorf("search %q after %q limit %d: %v, want %v", c.prefix, c.after, c.limit, got, c.want)
		}
	}
}

func testSearchGroups(t *testing.T, f *fixture) {
	d := f.store.(DirectoryStore)
	for _, id := range []string{"g-team", "g-tea", "g-other", "h-1"} {
		g := store.Group{ID: id, Name: "name " + id, Owner: "alice", Created: 1}
		if err := f.groups.CreateGroup(f.ctx, g, []store.Member{{User: "alice", Role: store.RoleOwner, Joined: 1}}); err != nil {
			t.Fatal(err)
		}
	}
	gs, err := d.SearchGroups(f.ctx, "g-tea", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(gs) != 2 || gs[0].ID != "g-tea" || gs[1].ID != "g-team" || gs[1].Name != "name g-team" || gs[1].Members != 1 || gs[1].Owner != "alice" {
		t.Errorf("search g-tea: %+v", gs)
	}
	gs, err = d.SearchGroups(f.ctx, "g-", "g-other", 1)
	if err != nil || len(gs) != 1 || gs[0].ID != "g-tea" {
		t.Errorf("search g- after g-other, 1: %+v, %v", gs, err)
	}
	gs, err = d.SearchGroups(f.ctx, "", "g-team", 0)
	if err != nil || len(gs) != 1 || gs[0].ID != "h-1" {
		t.Errorf("search all after g-team: %+v, %v", gs, err)
	}
}
