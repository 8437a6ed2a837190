package storetest

import (
	"testing"

	"github.com/imqtt/imqtt/store"
)

// Accounts tests the Users and Tokens roles.
func Accounts(t *testing.T, open func(t *testing.T) store.Accounts) {
	run(t, open, []testCase{
		{"Users", testUsers},
		{"UserCase", testUserCase},
		{"Tokens", testTokens},
	})
}

func testUsers(t *testing.T, f *fixture) {
	alice := store.User{ID: "alice", Display: "Alice", PasswordHash: "$argon2id$v=19$m=65536,t=1,p=4$c2FsdA$aGFzaA", Created: 1700000000000}
	if err := f.users.CreateUser(f.ctx, alice); err != nil {
		t.Fatalf("create: %v", err)
	}
	got, err := f.users.GetUser(f.ctx, "alice")
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if got != alice {
		t.Errorf("get: got %+v, want %+v", got, alice)
	}
	dup := store.User{ID: "alice", PasswordHash: "other"}
	wantErr(t, "create taken ID", f.users.CreateUser(f.ctx, dup), store.ErrExists)
	if got, _ := f.users.GetUser(f.ctx, "alice"); got != alice {
		t.Errorf("a refused create changed the user: %+v", got)
	}
	_, err = f.users.GetUser(f.ctx, "bob")
	wantErr(t, "get unknown", err, store.ErrNotFound)
	if err := f.users.CreateUser(f.ctx, store.User{ID: "bob"}); err != nil {
		t.Errorf("create second user: %v", err)
	}
	if got, err := f.users.GetUser(f.ctx, "bob"); err != nil || got.Display != "" {
		t.Errorf("get user without a display name: %+v, %v", got, err)
	}
}

// testUserCase: user IDs are case-insensitive (attack finding 10: alice,
// Alice and ALICE were three accounts). A store folds the ID it is given,
// so a case variant of a taken ID is taken, and any case finds the account.
func testUserCase(t *testing.T, f *fixture) {
	carol := store.User{ID: "Carol", Display: "Carol", PasswordHash: "h", Created: 1}
	if err := f.users.CreateUser(f.ctx, carol); err != nil {
		t.Fatalf("create: %v", err)
	}
	for _, id := range []string{"carol", "CAROL", "cArOl"} {
		wantErr(t, "create "+id, f.users.CreateUser(f.ctx, store.User{ID: id, PasswordHash: "other"}), store.ErrExists)
		got, err := f.users.GetUser(f.ctx, id)
		if want := (store.User{ID: "carol", Display: "Carol", PasswordHash: "h", Created: 1}); err != nil || got != want {
			t.Errorf("get %s: %+v, %v; want %+v", id, got, err, want)
		}
	}
}

func testTokens(t *testing.T, f *fixture) {
	tok := store.Token{Hash: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		User: "alice", Device: "phone", Expires: 2000, Created: 1000}
	if err := f.tokens.PutToken(f.ctx, tok); err != nil {
		t.Fatalf("put: %v", err)
	}
	got, err := f.tokens.GetToken(f.ctx, tok.Hash)
	if err != nil || got != tok {
		t.Fatalf("get: %+v, %v; want %+v", got, err, tok)
	}
	tok.Expires = 3000
	if err := f.tokens.PutToken(f.ctx, tok); err != nil {
		t.Fatalf("put again: %v", err)
	}
	if got, _ := f.tokens.GetToken(f.ctx, tok.Hash); got != tok {
		t.Errorf("put did not replace: got %+v, want %+v", got, tok)
	}
	other := store.Token{Hash: "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752", User: "bob"}
	if err := f.tokens.PutToken(f.ctx, other); err != nil {
		t.Fatalf("put other: %v", err)
	}
	for i := range 2 {
		if err := f.tokens.DeleteToken(f.ctx, tok.Hash); err != nil {
			t.Fatalf("delete #%d: %v", i+1, err)
		}
		_, err = f.tokens.GetToken(f.ctx, tok.Hash)
		wantErr(t, "get deleted", err, store.ErrNotFound)
	}
	if err := f.tokens.DeleteToken(f.ctx, "unknown"); err != nil {
		t.Errorf("delete unknown: %v", err)
	}
	if got, err := f.tokens.GetToken(f.ctx, other.Hash); err != nil || got != other {
		t.Errorf("delete removed another token: %+v, %v", got, err)
	}
}
