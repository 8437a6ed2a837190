package pebble_test

import (
	"reflect"
	"testing"

	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/store/pebble"
)

// TestExportSocial: the social rows export whole (store/migrate copies
// them), both sides of a contact, and apart from the rows beside them
// (c/, cs/ and us/ share first letters with ct/; u/ and us/ with none).
func TestExportSocial(t *testing.T) {
	ctx := t.Context()
	s := openLife(t)
	if _, err := s.RequestContact(ctx, "alice", "bob", 5); err != nil {
		t.Fatal(err)
	}
	if err := s.PutBlock(ctx, store.Block{User: "alice", Peer: "spam", Since: 6}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetLastSeen(ctx, "bob", 7); err != nil {
		t.Fatal(err)
	}
	if err := s.PutUserSettings(ctx, store.UserSettings{User: "alice", AcceptFrom: store.AcceptContacts, Updated: 8}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutConvSettings(ctx, store.ConvSettings{User: "alice", Conv: store.ConvUser("bob"), Pin: true, Updated: 9}); err != nil {
		t.Fatal(err)
	}
	wantC := []store.Contact{{User: "alice", Peer: "bob", State: store.ContactPendingOut, Since: 5},
		{User: "bob", Peer: "alice", State: store.ContactPendingIn, Since: 5}}
	if got := exportAll(t, s, pebble.Contacts); !reflect.DeepEqual(got, wantC) {
		t.Errorf("contacts: %+v, want %+v", got, wantC)
	}
	if got, want := exportAll(t, s, pebble.Blocks), []store.Block{{User: "alice", Peer: "spam", Since: 6}}; !reflect.DeepEqual(got, want) {
		t.Errorf("blocks: %+v, want %+v", got, want)
	}
	if got, want := exportAll(t, s, pebble.LastSeens), []pebble.LastSeenRow{{User: "bob", TS: 7}}; !reflect.DeepEqual(got, want) {
		t.Errorf("last seen: %+v, want %+v", got, want)
	}
	if got := exportAll(t, s, pebble.UserSettings); len(got) != 1 || got[0].AcceptFrom != store.AcceptContacts {
		t.Errorf("user settings: %+v", got)
	}
	if got := exportAll(t, s, pebble.ConvSettings); len(got) != 1 {
		t.Errorf("conversation settings: %+v", got)
	}
	if got, err := s.Conversations(ctx, "alice"); err != nil || len(got) != 0 {
		t.Errorf("conversations among the social rows: %+v, %v", got, err)
	}
}
