package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/imqtt/imqtt/wire"
)

// Contacts, blocks, presence and group administration
// (docs/http.md#contacts-and-privacy, docs/http.md#group-administration).
// All of them are HTTP calls; what they cause reaches every device of the
// users concerned as events (Event.Contact, Block, Presence, and a group's
// GroupChange items).

// RequestContact asks user to become a contact (POST /v1/contacts) and
// returns the contact as the server then shows it to the caller: pending_out,
// or accepted when user had asked the caller first. A request to a user who
// blocked the caller looks like one to a user who does not answer.
func (h *HTTP) RequestContact(ctx context.Context, user string) (wire.Contact, error) {
	n, err := pathID("user", user)
	if err != nil {
		return wire.Contact{}, err
	}
	var c wire.Contact
	if err := h.do(ctx, http.MethodPost, "/v1/contacts", nil, wire.ContactAsk{User: n}, &c); err != nil {
		return wire.Contact{}, fmt.Errorf("contact request to %s: %w", user, err)
	}
	return c, nil
}

// AcceptContact accepts user's request (POST /v1/contacts/{user}/accept);
// wire.CodeNoRequest if there was none.
func (h *HTTP) AcceptContact(ctx context.Context, user string) (wire.Contact, error) {
	seg, err := pathID("user", user)
	if err != nil {
		return wire.Contact{}, err
	}
	var c wire.Contact
	if err := h.do(ctx, http.MethodPost, "/v1/contacts/"+seg+"/accept", nil, nil, &c); err != nil {
		return wire.Contact{}, fmt.Errorf("accept contact %s: %w", user, err)
	}
	return c, nil
}

// RemoveContact declines user's request, withdraws the caller's, or ends
// the contact (DELETE /v1/contacts/{user}).
func (h *HTTP) RemoveContact(ctx context.Context, user string) error {
	seg, err := pathID("user", user)
	if err != nil {
		return err
	}
	if err := h.do(ctx, http.MethodDelete, "/v1/contacts/"+seg, nil, nil, nil); err != nil {
		return fmt.Errorf("remove contact %s: %w", user, err)
	}
	return nil
}

// Contacts lists the caller's contacts and pending requests, both ways
// (GET /v1/contacts), a page by user ID after after; limit 0 lets the
// server choose.
func (h *HTTP) Contacts(ctx context.Context, after string, limit int) (wire.Contacts, error) {
	var cs wire.Contacts
	if err := h.do(ctx, http.MethodGet, "/v1/contacts", pageQuery(after, limit), nil, &cs); err != nil {
		return wire.Contacts{}, fmt.Errorf("contacts: %w", err)
	}
	return cs, nil
}

// Block blocks user (PUT /v1/blocks/{user}): its 1:1 sends, typing and
// contact requests no longer reach the caller, and the caller's clients
// hide its group messages (wire.Msg.Blocked). Blocking twice changes
// nothing.
func (h *HTTP) Block(ctx context.Context, user string) error {
	seg, err := pathID("user", user)
	if err != nil {
		return err
	}
	if err := h.do(ctx, http.MethodPut, "/v1/blocks/"+seg, nil, nil, nil); err != nil {
		return fmt.Errorf("block %s: %w", user, err)
	}
	return nil
}

// Unblock lifts a block (DELETE /v1/blocks/{user}).
func (h *HTTP) Unblock(ctx context.Context, user string) error {
	seg, err := pathID("user", user)
	if err != nil {
		return err
	}
	if err := h.do(ctx, http.MethodDelete, "/v1/blocks/"+seg, nil, nil, nil); err != nil {
		return fmt.Errorf("unblock %s: %w", user, err)
	}
	return nil
}

// Blocks lists the users the caller blocked (GET /v1/blocks), a page by
// user ID after after; limit 0 lets the server choose.
func (h *HTTP) Blocks(ctx context.Context, after string, limit int) (wire.Blocks, error) {
	var bs wire.Blocks
	if err := h.do(ctx, http.MethodGet, "/v1/blocks", pageQuery(after, limit), nil, &bs); err != nil {
		return wire.Blocks{}, fmt.Errorf("blocks: %w", err)
	}
	return bs, nil
}

// Presence asks whether users are online (GET /v1/presence?users=a,b): at
// most wire.MaxPresenceUsers. Only the users who share their presence with
// the caller are in the reply (accepted contacts whose setting allows it);
// the others are absent, exactly as unknown IDs are.
func (h *HTTP) Presence(ctx context.Context, users ...string) (wire.PresenceList, error) {
	switch {
	case len(users) == 0:
		return wire.PresenceList{}, wire.NewError(wire.CodeBadRequest, "presence of whom? no users")
	case len(users) > wire.MaxPresenceUsers:
		return wire.PresenceList{}, wire.NewError(wire.CodeBadRequest, fmt.Sprintf("presence of %d users: at most %d at a time", len(users), wire.MaxPresenceUsers))
	}
	ids := make([]string, len(users))
	for i, u := range users {
		n, err := pathID("user", u) // a comma in one would split it in two
		if err != nil {
			return wire.PresenceList{}, err
		}
		ids[i] = n
	}
	var pl wire.PresenceList
	if err := h.do(ctx, http.MethodGet, "/v1/presence", url.Values{"users": {strings.Join(ids, ",")}}, nil, &pl); err != nil {
		return wire.PresenceList{}, fmt.Errorf("presence: %w", err)
	}
	return pl, nil
}

// UpdateGroup changes the fields of p that are set (PATCH /v1/groups/{gid};
// owner and admins) and returns the group as it now is. Every member gets
// the change as a group item (Event.GroupChange, action updated or
// mute_all).
func (h *HTTP) UpdateGroup(ctx context.Context, group string, p wire.GroupPatch) (wire.Group, error) {
	if p.Name == nil && p.Notice == nil && p.Avatar == nil && p.Muted == nil {
		return wire.Group{}, wire.NewError(wire.CodeBadRequest, "a group update changes nothing")
	}
	seg, err := pathID("group", group)
	if err != nil {
		return wire.Group{}, err
	}
	var g wire.Group
	if err := h.do(ctx, http.MethodPatch, "/v1/groups/"+seg, nil, p, &g); err != nil {
		return wire.Group{}, fmt.Errorf("update group %s: %w", group, err)
	}
	return g, nil
}

// DisbandGroup disbands the group (DELETE /v1/groups/{gid}; the owner
// only): nothing more can be sent to it, and its members keep its history
// up to the disband. A second disband gets wire.CodeGroupGone.
func (h *HTTP) DisbandGroup(ctx context.Context, group string) error {
	seg, err := pathID("group", group)
	if err != nil {
		return err
	}
	if err := h.do(ctx, http.MethodDelete, "/v1/groups/"+seg, nil, nil, nil); err != nil {
		return fmt.Errorf("disband group %s: %w", group, err)
	}
	return nil
}

// TransferGroup makes user, a member, the group's owner (POST
// /v1/groups/{gid}/owner; the owner only), and the caller an admin.
func (h *HTTP) TransferGroup(ctx context.Context, group, user string) (wire.Group, error) {
	seg, err := pathID("group", group)
	if err != nil {
		return wire.Group{}, err
	}
	n, err := pathID("user", user)
	if err != nil {
		return wire.Group{}, err
	}
	var g wire.Group
	if err := h.do(ctx, http.MethodPost, "/v1/groups/"+seg+"/owner", nil, wire.GroupTransfer{User: n}, &g); err != nil {
		return wire.Group{}, fmt.Errorf("transfer group %s to %s: %w", group, user, err)
	}
	return g, nil
}

// MuteMember keeps user from sending to the group until until (PUT
// /v1/groups/{gid}/members/{user}; owner and admins, and an admin cannot
// mute the owner or another admin); the zero time unmutes.
func (h *HTTP) MuteMember(ctx context.Context, group, user string, until time.Time) error {
	gseg, err := pathID("group", group)
	if err != nil {
		return err
	}
	useg, err := pathID("user", user)
	if err != nil {
		return err
	}
	var ms int64
	if !until.IsZero() {
		ms = until.UnixMilli()
	}
	if err := h.do(ctx, http.MethodPut, "/v1/groups/"+gseg+"/members/"+useg, nil, wire.MemberMute{MuteUntil: ms}, nil); err != nil {
		return fmt.Errorf("mute %s in %s: %w", user, group, err)
	}
	return nil
}

// pageQuery is the ?after=&limit= of a paged list.
func pageQuery(after string, limit int) url.Values {
	q := url.Values{}
	if after != "" {
		q.Set("after", after)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	return q
}

// checkTTL refuses what the server would refuse of a burn-after-reading
// send (wire.Send.TTL) before it leaves: a TTL out of 0..wire.MaxTTL
// seconds, or one on a group message (1:1 only).
func checkTTL(m wire.Send) error {
	switch {
	case m.TTL < 0 || m.TTL > wire.MaxTTL:
		return wire.NewError(wire.CodeBadRequest, fmt.Sprintf("ttl %d: from 1 to %d seconds (0: kept)", m.TTL, wire.MaxTTL))
	case m.TTL > 0 && m.Group != "":
		return wire.NewError(wire.CodeBadRequest, "burn after reading (ttl) is for 1:1 messages")
	}
	return nil
}
