package e2e

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/wire"
)

// groupEventBy reports whether d heard a "group" event of action on group
// by whom.
func (d *device) groupEventBy(group, action, by string) bool {
	for _, raw := range d.inboxOf(wire.KindGroup) {
		var ev struct{ Group, Action, By string }
		if json.Unmarshal(raw, &ev) == nil && ev.Group == group && ev.Action == action && ev.By == by {
			return true
		}
	}
	return false
}

// TestAdminUsersAndGroups: an operator finds users and groups by prefix,
// sees one user's devices, groups and bans, revokes its tokens (which
// disconnects it), deletes a user, removes a member and disbands a group;
// members hear it was "system". Bad input is refused and changes nothing.
func TestAdminUsersAndGroups(t *testing.T) {
	s := startAdmin(t)
	tokA := account(t, s, "ursula", "phone")
	tokB := account(t, s, "umberto", "phone")
	account(t, s, "uwe", "phone")
	account(t, s, "victor", "phone")
	var g wire.Group
	if code := httpJSON(t, "POST", s.HTTP+"/v1/groups", tokA, wire.GroupCreate{ID: "uteam", Name: "U team", Members: []string{"umberto", "uwe"}}, &g); code != 201 && code != 200 {
		t.Fatalf("create group: %d", code)
	}
	ursula := connect(t, s.MQTT, "ursula", "phone", tokA)
	umberto := connect(t, s.MQTT, "umberto", "phone", tokB)

	var page struct {
		Users []struct {
			ID string `json:"id"`
		} `json:"users"`
		NextAfter string `json:"next_after"`
	}
	if code := adminDo(t, s, "GET", "users?prefix=U&limit=2", nil, &page); code != 200 || len(page.Users) != 2 ||
		page.Users[0].ID != "umberto" || page.Users[1].ID != "ursula" || page.NextAfter != "ursula" {
		t.Fatalf("search u, 2: %d %+v", code, page)
	}
	page.NextAfter = ""
	if code := adminDo(t, s, "GET", "users?prefix=u&after=ursula&limit=2", nil, &page); code != 200 || len(page.Users) != 1 || page.Users[0].ID != "uwe" || page.NextAfter != "" {
		t.Fatalf("search u, next page: %d %+v", code, page)
	}
	for _, q := range []string{"users?prefix=%25", "users?prefix=u*", "users?limit=0", "users?limit=201", "users?bogus=1", "groups?prefix=a/b"} {
		var e wire.Error
		wantError(t, q, 400, e, adminDo(t, s, "GET", q, nil, &e), wire.CodeBadRequest)
	}
	if code := rawDo(t, "GET", s.HTTP+"/v1/admin/users?prefix=u", tokA, nil, nil); code != 403 {
		t.Errorf("a user token searched users: %d", code)
	}

	var ban struct{ ID string }
	if code := adminDo(t, s, "POST", "bans", map[string]any{"user": "victor", "reason": "spam"}, &ban); code != 201 {
		t.Fatalf("ban: %d", code)
	}
	var shown struct {
		ID      string `json:"id"`
		Online  bool   `json:"online"`
		Devices []struct{ Device, Node string }
		Groups  []struct{ Group, Role string }
		Bans    []struct{ ID string }
	}
	if code := adminDo(t, s, "GET", "users/Ursula", nil, &shown); code != 200 || shown.ID != "ursula" || !shown.Online ||
		len(shown.Devices) != 1 || shown.Devices[0].Device != "phone" || len(shown.Groups) != 1 || shown.Groups[0].Role != "owner" || len(shown.Bans) != 0 {
		t.Fatalf("show ursula: %d %+v", code, shown)
	}
	if code := adminDo(t, s, "GET", "users/victor", nil, &shown); code != 200 || shown.Online || len(shown.Bans) != 1 || shown.Bans[0].ID != ban.ID {
		t.Fatalf("show victor: %d %+v", code, shown)
	}
	var e wire.Error
	wantError(t, "show nobody", 404, e, adminDo(t, s, "GET", "users/nobody", nil, &e), wire.CodeNoSuchUser)

	// Groups: search, show with members, remove one, refuse the owner.
	var groups struct {
		Groups []struct {
			ID      string `json:"id"`
			Members int    `json:"members"`
		} `json:"groups"`
	}
	if code := adminDo(t, s, "GET", "groups?prefix=ut", nil, &groups); code != 200 || len(groups.Groups) != 1 || groups.Groups[0].ID != "uteam" || groups.Groups[0].Members != 3 {
		t.Fatalf("search groups: %d %+v", code, groups)
	}
	var grp struct {
		Owner   string                        `json:"owner"`
		Members []struct{ User, Role string } `json:"member_list"`
	}
	if code := adminDo(t, s, "GET", "groups/uteam?limit=2", nil, &grp); code != 200 || grp.Owner != "ursula" || len(grp.Members) != 2 || grp.Members[0].User != "umberto" {
		t.Fatalf("show group: %d %+v", code, grp)
	}
	wantError(t, "remove the owner", 403, e, adminDo(t, s, "DELETE", "groups/uteam/members/ursula", nil, &e), wire.CodeForbidden)
	wantError(t, "remove a non-member", 404, e, adminDo(t, s, "DELETE", "groups/uteam/members/victor", nil, &e), wire.CodeNotFound)
	wantError(t, "remove from no group", 404, e, adminDo(t, s, "DELETE", "groups/nogroup/members/uwe", nil, &e), wire.CodeNotFound)
	if code := adminDo(t, s, "DELETE", "groups/uteam/members/umberto", nil, nil); code != 204 {
		t.Fatalf("remove umberto: %d", code)
	}
	wait.For(t, "umberto hears system removed him", 10*time.Second, func() bool { return umberto.groupEventBy("uteam", wire.GroupRemoved, "system") })
	if code := adminDo(t, s, "DELETE", "groups/uteam", nil, nil); code != 204 {
		t.Fatalf("disband: %d", code)
	}
	wait.For(t, "ursula hears system disbanded her group", 10*time.Second, func() bool { return ursula.groupEventBy("uteam", wire.GroupDisbanded, "system") })
	wantError(t, "disband again", 410, e, adminDo(t, s, "DELETE", "groups/uteam", nil, &e), wire.CodeGroupGone)
	wantError(t, "disband no group", 404, e, adminDo(t, s, "DELETE", "groups/nogroup", nil, &e), wire.CodeNotFound)

	// Revoke: ursula's device is disconnected and her token is dead.
	var rev struct{ Revoked int }
	if code := adminDo(t, s, "POST", "users/ursula/revoke", nil, &rev); code != 200 || rev.Revoked != 1 {
		t.Fatalf("revoke: %d %+v", code, rev)
	}
	wait.For(t, "ursula's device is disconnected", 10*time.Second, func() bool { return !ursula.c.IsConnected() })
	if err := tryConnect(s.MQTT, "ursula", "phone", tokA); err == nil {
		t.Error("a revoked token connected")
	}
	wantError(t, "revoke nobody", 404, e, adminDo(t, s, "POST", "users/nobody/revoke", nil, &e), wire.CodeNoSuchUser)

	// Delete: the server API's deletion.
	wantError(t, "delete a reserved ID", 400, e, adminDo(t, s, "DELETE", "users/system", nil, &e), wire.CodeBadRequest)
	if code := adminDo(t, s, "DELETE", "users/uwe", nil, nil); code != 200 {
		t.Fatalf("delete uwe: %d", code)
	}
	wantError(t, "show deleted uwe", 404, e, adminDo(t, s, "GET", "users/uwe", nil, &e), wire.CodeNoSuchUser)
	if code := adminDo(t, s, "GET", "users?prefix=uw", nil, &page); code != 200 || len(page.Users) != 0 {
		t.Errorf("search finds deleted uwe: %d %+v", code, page)
	}
}
