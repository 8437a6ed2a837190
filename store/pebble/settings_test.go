package pebble_test

import (
	"testing"

	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/store/pebble"
)

// TestConvSettingsApartFromConversations: the settings rows (cs/, cr/)
// sit next to the conversation rows (c/) in key order; a read, export or
// count of conversations never meets them, and the export of settings
// has exactly the rows by user.
func TestConvSettingsApartFromConversations(t *testing.T) {
	s, err := pebble.Open(t.TempDir(), pebble.Options{MinFreeDisk: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	if err := s.Commit(ctx, &store.Batch{
		Messages: []store.Message{{ID: 1, From: "bob", To: "alice", Type: "text", TS: 1}},
		Entries:  []store.Entry{{User: "alice", Ver: 1, Peer: "bob", MsgID: 1}},
		Convs:    []store.ConvUpdate{{User: "alice", Peer: "bob", MsgID: 1, TS: 1, Ver: 1, Incoming: true}},
	}); err != nil {
		t.Fatal(err)
	}
	for _, cs := range []store.ConvSettings{
		{User: "alice", Conv: "u:bob", Mute: true, Updated: 1},
		{User: "alice", Conv: "g:team", Pin: true, Updated: 1},
		{User: "carol", Conv: "g:team", Mute: true, Updated: 1},
	} {
		if err := s.PutConvSettings(ctx, cs); err != nil {
			t.Fatal(err)
		}
	}
	convs, err := s.Conversations(ctx, "alice")
	if err != nil || len(convs) != 1 || convs[0].Peer != "bob" {
		t.Fatalf("alice's conversations: %+v %v", convs, err)
	}
	var exported []store.Conversation
	err = pebble.Export(ctx, s, pebble.Conversations, nil, func(_ []byte, c store.Conversation) error {
		exported = append(exported, c)
		return nil
	})
	if err != nil || len(exported) != 1 {
		t.Fatalf("exported conversations: %+v %v", exported, err)
	}
	if n, err := pebble.Count(ctx, s, pebble.Conversations); err != nil || n != 1 {
		t.Fatalf("count of conversations %d %v", n, err)
	}
	var rows []store.ConvSettings
	err = pebble.Export(ctx, s, pebble.ConvSettings, nil, func(_ []byte, c store.ConvSettings) error {
		rows = append(rows, c)
		return nil
	})
	if err != nil || len(rows) != 3 || rows[0].User != "alice" || rows[2].User != "carol" {
		t.Fatalf("exported settings: %+v %v", rows, err)
	}
}
