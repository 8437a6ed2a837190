package pebble

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/imqtt/imqtt/store"
)

// applyAdmin applies group administration (store.GroupUpdate,
// store.MemberUpdate) to the rows through wb, each only if its seq is
// above the row's Changed: a replayed batch changes nothing more. The
// caller holds s.groups, as AddMembers and RemoveMember do for the same
// rows.
func applyAdmin(wb *pebble.Batch, gs []store.GroupUpdate, ms []store.MemberUpdate) error {
	for _, u := range gs {
		key := groupKey(u.Group)
		var g store.Group
		switch err := getJSONFrom(wb, key, &g); {
		case errors.Is(err, store.ErrNotFound):
			continue
		case err != nil:
			return fmt.Errorf("group %s: %w", u.Group, err)
		}
		if !applyGroupUpdate(&g, u) {
			continue
		}
		if err := setJSON(wb, key, g); err != nil {
			return err
		}
	}
	for _, u := range ms {
		key := pair(pfxMember, u.Group, u.User)
		var m store.Member
		switch err := getJSONFrom(wb, key, &m); {
		case errors.Is(err, store.ErrNotFound):
			continue // not a member (any more)
		case err != nil:
			return fmt.Errorf("member %s of %s: %w", u.User, u.Group, err)
		}
		if u.Seq <= m.Changed {
			continue
		}
		m.Changed = u.Seq
		if u.Role != "" {
			m.Role = u.Role
		}
		if u.MuteUntil != nil {
			m.MuteUntil = *u.MuteUntil
		}
		if err := setJSON(wb, key, m); err != nil {
			return err
		}
	}
	return nil
}

// applyGroupUpdate changes g by u and reports whether it did.
func applyGroupUpdate(g *store.Group, u store.GroupUpdate) bool {
	if u.Seq <= g.Changed {
		return false
	}
	g.Changed = u.Seq
	if u.Name != nil {
		g.Name = *u.Name
	}
	if u.Notice != nil {
		g.Notice = *u.Notice
	}
	if u.Avatar != nil {
		g.Avatar = *u.Avatar
	}
	if u.Muted != nil {
		g.Muted = *u.Muted
	}
	if u.Owner != "" {
		g.Owner = u.Owner
	}
	if u.Disbanded != 0 && g.Disbanded == 0 {
		g.Disbanded = u.Disbanded
	}
	return true
}
