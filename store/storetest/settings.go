package storetest

import (
	"errors"
	"reflect"
	"testing"

	"github.com/imqtt/imqtt/store"
)

// Settings tests the Settings role: users' conversation settings, read by
// user and by conversation.
func Settings(t *testing.T, open func(t *testing.T) store.Settings) {
	run(t, open, []testCase{
		{"ConvSettingsMissing", testConvSettingsMissing},
		{"ConvSettingsRoundTrip", testConvSettingsRoundTrip},
		{"ConvSettingsReplaced", testConvSettingsReplaced},
		{"ConvSettingsZeroDeletes", testConvSettingsZero},
		{"UserConvSettings", testUserConvSettings},
		{"ConvSettingsFor", testConvSettingsFor},
		{"DeleteUserConvSettings", testDeleteUserConvSettings},
		{"ConvSettingsInvalid", testConvSettingsInvalid},
	})
}

func (f *fixture) putConvSettings(cs ...store.ConvSettings) {
	f.t.Helper()
	for _, c := range cs {
		if err := f.settings.PutConvSettings(f.ctx, c); err != nil {
			f.t.Fatalf("put conversation settings %+v: %v", c, err)
		}
	}
}

func (f *fixture) userConvSettings(user string) []store.ConvSettings {
	f.t.Helper()
	got, err := f.settings.UserConvSettings(f.ctx, user)
	if err != nil {
		f.t.Fatalf("user conversation settings of %s: %v", user, err)
	}
	return got
}

func (f *fixture) convSettingsFor(conv string) []store.ConvSettings {
	f.t.Helper()
	got, err := f.settings.ConvSettingsFor(f.ctx, conv)
	if err != nil {
		f.t.Fatalf("conversation settings for %s: %v", conv, err)
	}
	return got
}

func testConvSettingsMissing(t *testing.T, f *fixture) {
	if _, err := f.settings.GetConvSettings(f.ctx, "alice", store.ConvUser("bob")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get of nothing: %v, want ErrNotFound", err)
	}
	if got := f.userConvSettings("alice"); len(got) != 0 {
		t.Fatalf("user rows of nobody: %+v", got)
	}
	if got := f.convSettingsFor(store.ConvGroup("team")); len(got) != 0 {
		t.Fatalf("conversation rows of nothing: %+v", got)
	}
}

func testConvSettingsRoundTrip(t *testing.T, f *fixture) {
	want := []store.ConvSettings{ // in Conv order
		{User: "alice", Conv: store.ConvGroup("friends.2024"), MuteUntil: 1 << 42, Updated: 5},
		{User: "alice", Conv: store.ConvGroup("x"), Pin: true, Updated: 6},
		{User: "alice", Conv: store.ConvUser("bob"), Mute: true, Pin: true, Updated: 1700000000123},
	}
	f.putConvSettings(want[2], want[0], want[1])
	for _, w := range want {
		got, err := f.settings.GetConvSettings(f.ctx, w.User, w.Conv)
		if err != nil || got != w {
			t.Errorf("get %s %s: %+v %v; want %+v", w.User, w.Conv, got, err, w)
		}
	}
	if got := f.userConvSettings("alice"); !reflect.DeepEqual(got, want) {
		t.Errorf("user rows %+v\nwant %+v", got, want)
	}
}

func testConvSettingsReplaced(t *testing.T, f *fixture) {
	conv := store.ConvGroup("team")
	f.putConvSettings(store.ConvSettings{User: "alice", Conv: conv, Mute: true, MuteUntil: 99, Updated: 1})
	// A put replaces the row: no field of the old one survives.
	second := store.ConvSettings{User: "alice", Conv: conv, Pin: true, Updated: 2}
	f.putConvSettings(second)
	got, err := f.settings.GetConvSettings(f.ctx, "alice", conv)
	if err != nil || got != second {
		t.Fatalf("after replace: %+v %v; want %+v", got, err, second)
	}
	if got := f.convSettingsFor(conv); !reflect.DeepEqual(got, []store.ConvSettings{second}) {
		t.Fatalf("conversation rows after replace: %+v", got)
	}
}

func testConvSettingsZero(t *testing.T, f *fixture) {
	conv := store.ConvUser("bob")
	f.putConvSettings(store.ConvSettings{User: "alice", Conv: conv, Mute: true, Updated: 1})
	f.putConvSettings(store.ConvSettings{User: "alice", Conv: conv, Updated: 2}) // sets nothing
	if _, err := f.settings.GetConvSettings(f.ctx, "alice", conv); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get after a zero put: %v, want ErrNotFound", err)
	}
	if got := f.userConvSettings("alice"); len(got) != 0 {
		t.Fatalf("user rows after a zero put: %+v", got)
	}
	if got := f.convSettingsFor(conv); len(got) != 0 {
		t.Fatalf("conversation rows after a zero put: %+v", got)
	}
	// A zero put of a row never written is no error.
	f.putConvSettings(store.ConvSettings{User: "carol", Conv: conv})
}

func testUserConvSettings(t *testing.T, f *fixture) {
	// "bob" is a prefix of "bobby": neither sees the other's rows.
	f.putConvSettings(
		store.ConvSettings{User: "bobby", Conv: store.ConvUser("alice"), Mute: true, Updated: 1},
		store.ConvSettings{User: "bob", Conv: store.ConvUser("zed"), Pin: true, Updated: 2},
		store.ConvSettings{User: "bob", Conv: store.ConvGroup("team"), Mute: true, Updated: 3},
		store.ConvSettings{User: "bob", Conv: store.ConvUser("alice"), Mute: true, Updated: 4},
		store.ConvSettings{User: "bo", Conv: store.ConvUser("alice"), Pin: true, Updated: 5},
	)
	got := f.userConvSettings("bob")
	var convs []string
	for _, c := range got {
		if c.User != "bob" {
			t.Errorf("row of %s among bob's: %+v", c.User, c)
		}
		convs = append(convs, c.Conv)
	}
	if want := []string{"g:team", "u:alice", "u:zed"}; !reflect.DeepEqual(convs, want) {
		t.Fatalf("bob's conversations %q, want %q (ordered by Conv)", convs, want)
	}
}

func testConvSettingsFor(t *testing.T, f *fixture) {
	// "g:team" is a prefix of "g:team2", and "u:team" names another
	// conversation: none sees another's rows.
	f.putConvSettings(
		store.ConvSettings{User: "zoe", Conv: store.ConvGroup("team"), Mute: true, Updated: 1},
		store.ConvSettings{User: "alice", Conv: store.ConvGroup("team"), MuteUntil: 77, Updated: 2},
		store.ConvSettings{User: "mike", Conv: store.ConvGroup("team2"), Mute: true, Updated: 3},
		store.ConvSettings{User: "bob", Conv: store.ConvUser("team"), Mute: true, Updated: 4},
		store.ConvSettings{User: "carol", Conv: store.ConvGroup("team"), Pin: true, Updated: 5},
	)
	want := []store.ConvSettings{
		{User: "alice", Conv: "g:team", MuteUntil: 77, Updated: 2},
		{User: "carol", Conv: "g:team", Pin: true, Updated: 5},
		{User: "zoe", Conv: "g:team", Mute: true, Updated: 1},
	}
	if got := f.convSettingsFor(store.ConvGroup("team")); !reflect.DeepEqual(got, want) {
		t.Fatalf("rows of g:team %+v\nwant %+v (ordered by User)", got, want)
	}
}

func testDeleteUserConvSettings(t *testing.T, f *fixture) {
	team := store.ConvGroup("team")
	f.putConvSettings(
		store.ConvSettings{User: "alice", Conv: team, Mute: true, Updated: 1},
		store.ConvSettings{User: "alice", Conv: store.ConvUser("bob"), Pin: true, Updated: 1},
		store.ConvSettings{User: "alicea", Conv: team, Mute: true, Updated: 1},
		store.ConvSettings{User: "bob", Conv: team, Pin: true, Updated: 1},
	)
	for range 2 { // idempotent
		if err := f.settings.DeleteUserConvSettings(f.ctx, "alice"); err != nil {
			t.Fatalf("delete alice's rows: %v", err)
		}
	}
	if got := f.userConvSettings("alice"); len(got) != 0 {
		t.Fatalf("alice's rows after delete: %+v", got)
	}
	// Gone from the conversation's side too; others' rows kept.
	var users []string
	for _, c := range f.convSettingsFor(team) {
		users = append(users, c.User)
	}
	if want := []string{"alicea", "bob"}; !reflect.DeepEqual(users, want) {
		t.Fatalf("users of g:team after alice's delete %q, want %q", users, want)
	}
	if err := f.settings.DeleteUserConvSettings(f.ctx, "nobody"); err != nil {
		t.Fatalf("delete the rows of a user who has none: %v", err)
	}
}

func testConvSettingsInvalid(t *testing.T, f *fixture) {
	for _, c := range []store.ConvSettings{
		{User: "alice", Conv: "bob", Mute: true},
		{User: "alice", Conv: "x:bob", Mute: true},
		{User: "alice", Conv: "u:", Mute: true},
		{User: "", Conv: "u:bob", Mute: true},
	} {
		if err := f.settings.PutConvSettings(f.ctx, c); err == nil {
			t.Errorf("put %+v: no error", c)
		}
	}
	if got := f.userConvSettings("alice"); len(got) != 0 {
		t.Fatalf("rows after refused puts: %+v", got)
	}
}
