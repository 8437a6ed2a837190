package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/imqtt/imqtt/wire"
)

// The message lifecycle (docs/protocol.md#message-lifecycle): recall, edit,
// reactions, delete for me, typing, read receipts' setting and group reads.
// A change is acked like a send, with the change's own ID and version (the
// actor's Ver; Group and Seq in a group; Ver 0 for a reaction that changed
// nothing), and resent with the same cmid until then: the server makes it
// once however often it arrives.
// Everyone concerned, the caller's other devices included, gets it as an
// event (Event.Recall, Edit, Reaction, Delete).

// Apply makes a change of a message on the long connection and waits for
// its ack: req is a wire.Recall, wire.Edit, wire.React or wire.Delete (or a
// pointer to one), whose empty CMID is filled with a random one. It is sent
// again with the same CMID as Send is (see Send), and an error event comes
// back as a *wire.Error: CodeNotAllowed, CodeTooLate, CodeNotFound, ...
// Recall, Edit, React, Unreact, Delete and ClearConversation are Apply with
// a request built for them.
func (c *Client) Apply(ctx context.Context, req any) (wire.Ack, error) {
	topic, cmid, what, req, err := changeRequest(req)
	if err != nil {
		return wire.Ack{}, err
	}
	payload, err := json.Marshal(req)
	if err != nil {
		return wire.Ack{}, err
	}
	ack, err := c.request(ctx, topic, cmid, payload)
	if err != nil {
		return wire.Ack{}, fmt.Errorf("%s: %w", what, err)
	}
	return ack, nil
}

// changeRequest checks a change request, fills its CMID and says where it
// goes.
func changeRequest(req any) (topic, cmid, what string, out any, err error) {
	fill := func(c *string) string {
		if *c == "" {
			*c = NewCMID()
		}
		return *c
	}
	switch r := req.(type) {
	case *wire.Recall:
		return changeRequest(*r)
	case *wire.Edit:
		return changeRequest(*r)
	case *wire.React:
		return changeRequest(*r)
	case *wire.Delete:
		return changeRequest(*r)
	case wire.Recall:
		if err := needID(r.ID); err != nil {
			return "", "", "", nil, err
		}
		return wire.TopicRecall, fill(&r.CMID), "recall " + r.ID, r, nil
	case wire.Edit:
		if err := needID(r.ID); err != nil {
			return "", "", "", nil, err
		}
		return wire.TopicEdit, fill(&r.CMID), "edit " + r.ID, r, nil
	case wire.React:
		if err := checkReact(r); err != nil {
			return "", "", "", nil, err
		}
		return wire.TopicReact, fill(&r.CMID), r.Op + " reaction on " + r.ID, r, nil
	case wire.Delete:
		if err := checkDelete(r); err != nil {
			return "", "", "", nil, err
		}
		what := fmt.Sprintf("delete %d messages", len(r.IDs))
		if r.Peer != "" {
			what = "clear the conversation with " + r.Peer
		}
		return wire.TopicDelete, fill(&r.CMID), what, r, nil
	}
	return "", "", "", nil, fmt.Errorf("client: %T is not a change of a message", req)
}

// needID refuses what is not a message ID (a snowflake: decimal digits)
// before it leaves the client: "" or ".." in a path would name another
// route (POST /v1/messages/../recall).
func needID(id string) error {
	if id == "" || len(id) > 20 {
		return wire.NewError(wire.CodeBadRequest, fmt.Sprintf("%q is not a message ID", id))
	}
	for i := 0; i < len(id); i++ {
		if id[i] < '0' || id[i] > '9' {
			return wire.NewError(wire.CodeBadRequest, fmt.Sprintf("%q is not a message ID", id))
		}
	}
	return nil
}

func checkReact(r wire.React) error {
	if err := needID(r.ID); err != nil {
		return err
	}
	if r.Op != wire.ReactAdd && r.Op != wire.ReactRemove {
		return wire.NewError(wire.CodeBadRequest, fmt.Sprintf("reaction op %q is neither add nor remove", r.Op))
	}
	if r.Emoji == "" {
		return wire.NewError(wire.CodeBadRequest, "no emoji")
	}
	return nil
}

func checkDelete(r wire.Delete) error {
	switch {
	case (len(r.IDs) == 0) == (r.Peer == ""):
		return wire.NewError(wire.CodeBadRequest, "delete wants message IDs or a peer, not both")
	case len(r.IDs) > wire.MaxDeleteIDs:
		return wire.NewError(wire.CodeBadRequest, fmt.Sprintf("%d message IDs: at most %d at a time", len(r.IDs), wire.MaxDeleteIDs))
	case r.Peer != "" && !wire.ValidUser(r.Peer):
		return wire.NewError(wire.CodeBadRequest, fmt.Sprintf("peer %q is not a user ID", r.Peer))
	}
	for _, id := range r.IDs {
		if err := needID(id); err != nil {
			return err
		}
	}
	return nil
}

// Recall unsends the message id for everyone (its sender; in a group also
// the owner and admins), within the server's recall window.
func (c *Client) Recall(ctx context.Context, id string) (wire.Ack, error) {
	return c.Apply(ctx, wire.Recall{ID: id})
}

// Edit replaces the body of the text message id (its sender's, within the
// server's edit window).
func (c *Client) Edit(ctx context.Context, id, body string) (wire.Ack, error) {
	return c.Apply(ctx, wire.Edit{ID: id, Body: body})
}

// React adds the caller's reaction emoji (one grapheme cluster, see
// wire.ValidEmoji) to the message id. Adding one that is there changes
// nothing.
func (c *Client) React(ctx context.Context, id, emoji string) (wire.Ack, error) {
	return c.Apply(ctx, wire.React{ID: id, Emoji: emoji, Op: wire.ReactAdd})
}

// Unreact removes the caller's reaction emoji from the message id.
func (c *Client) Unreact(ctx context.Context, id, emoji string) (wire.Ack, error) {
	return c.Apply(ctx, wire.React{ID: id, Emoji: emoji, Op: wire.ReactRemove})
}

// Delete hides messages from the caller's own devices ("delete for me"; at
// most wire.MaxDeleteIDs at a time); the other side keeps them.
func (c *Client) Delete(ctx context.Context, ids ...string) (wire.Ack, error) {
	return c.Apply(ctx, wire.Delete{IDs: ids})
}

// ClearConversation hides the whole conversation with peer from the
// caller's own devices.
func (c *Client) ClearConversation(ctx context.Context, peer string) (wire.Ack, error) {
	return c.Apply(ctx, wire.Delete{Peer: peer})
}

// ErrOffline is returned by Typing while the client has no connection.
var ErrOffline = errors.New("not connected")

// Typing tells the peer t.Peer, or the members of t.Group, that the user
// is typing (t.State wire.TypingStart) or has stopped (wire.TypingStop;
// empty means start). It is sent once, at QoS 0 as the server relays it:
// no ack, no resend, nothing stored. The server relays at most one a
// second per conversation, so Typing sends the same notice (conversation
// and state) at most once a second and skips the repeats, returning nil:
// an application may call it on every keystroke. While the client is down
// it returns ErrOffline.
func (c *Client) Typing(ctx context.Context, t wire.Typing) error {
	if err := checkTyping(&t); err != nil {
		return err
	}
	if !c.typing.allow(t, time.Now()) {
		return nil
	}
	payload, err := json.Marshal(t)
	if err != nil {
		return err
	}
	c.mu.Lock()
	mc := c.mc
	c.mu.Unlock()
	if mc == nil {
		return fmt.Errorf("typing: %w", ErrOffline)
	}
	tok := mc.Publish(wire.TopicTyping, 0, false, payload)
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			return fmt.Errorf("typing: %w", err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("typing: %w", ctx.Err())
	case <-c.dead:
		return fmt.Errorf("typing: %w", c.Err())
	}
}

// typingGate lets the same typing notice out at most once a typingEvery.
type typingGate struct {
	mu   sync.Mutex
	last map[wire.Typing]time.Time
}

// typingEvery is the server's rate of typing notices per conversation.
const typingEvery = time.Second

// maxTypingGate bounds the notices a typingGate remembers.
const maxTypingGate = 1024

// allow reports whether t may be sent at now, and if so records it.
func (g *typingGate) allow(t wire.Typing, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if last, ok := g.last[t]; ok && now.Sub(last) < typingEvery {
		return false
	}
	if g.last == nil {
		g.last = map[wire.Typing]time.Time{}
	}
	if len(g.last) >= maxTypingGate {
		for k, at := range g.last {
			if now.Sub(at) >= typingEvery {
				delete(g.last, k)
			}
		}
		if len(g.last) >= maxTypingGate {
			clear(g.last) // a second of thousands of conversations: forget, at worst a repeat goes out
		}
	}
	g.last[t] = now
	return true
}

func checkTyping(t *wire.Typing) error {
	if t.State == "" {
		t.State = wire.TypingStart
	}
	switch {
	case (t.Peer == "") == (t.Group == ""):
		return wire.NewError(wire.CodeBadRequest, "typing wants a peer or a group, not both")
	case t.State != wire.TypingStart && t.State != wire.TypingStop:
		return wire.NewError(wire.CodeBadRequest, fmt.Sprintf("typing state %q is neither start nor stop", t.State))
	}
	return nil
}

// Recall unsends a message for everyone (POST /v1/messages/{id}/recall).
// Like every change over HTTP, the reply is the change's ack, and a
// request whose error is Retryable may be sent again with the same CMID;
// these methods do not fill an empty CMID (see Send).
func (h *HTTP) Recall(ctx context.Context, r wire.Recall) (wire.Ack, error) {
	if err := needID(r.ID); err != nil {
		return wire.Ack{}, err
	}
	return h.change(ctx, http.MethodPost, "/v1/messages/"+url.PathEscape(r.ID)+"/recall", r, "recall "+r.ID)
}

// Edit replaces a text message's body (PATCH /v1/messages/{id}).
func (h *HTTP) Edit(ctx context.Context, e wire.Edit) (wire.Ack, error) {
	if err := needID(e.ID); err != nil {
		return wire.Ack{}, err
	}
	return h.change(ctx, http.MethodPatch, "/v1/messages/"+url.PathEscape(e.ID), e, "edit "+e.ID)
}

// React adds (r.Op wire.ReactAdd: PUT) or removes (wire.ReactRemove:
// DELETE) a reaction: /v1/messages/{id}/reactions/{emoji}, the emoji
// path-escaped.
func (h *HTTP) React(ctx context.Context, r wire.React) (wire.Ack, error) {
	if err := checkReact(r); err != nil {
		return wire.Ack{}, err
	}
	method := http.MethodPut
	if r.Op == wire.ReactRemove {
		method = http.MethodDelete
	}
	path := "/v1/messages/" + url.PathEscape(r.ID) + "/reactions/" + url.PathEscape(r.Emoji)
	return h.change(ctx, method, path, r, r.Op+" reaction on "+r.ID)
}

// Delete hides messages (d.IDs: POST /v1/messages/delete) or the whole
// conversation with d.Peer (DELETE /v1/conversations/{peer}) from the
// caller's own devices.
func (h *HTTP) Delete(ctx context.Context, d wire.Delete) (wire.Ack, error) {
	if err := checkDelete(d); err != nil {
		return wire.Ack{}, err
	}
	if d.Peer != "" {
		seg, err := pathID("peer", d.Peer)
		if err != nil {
			return wire.Ack{}, err
		}
		return h.change(ctx, http.MethodDelete, "/v1/conversations/"+seg, d, "clear the conversation with "+d.Peer)
	}
	return h.change(ctx, http.MethodPost, "/v1/messages/delete", d, fmt.Sprintf("delete %d messages", len(d.IDs)))
}

// Typing tells a peer or a group's members that the caller is typing
// (POST /v1/typing); no ack, nothing stored.
func (h *HTTP) Typing(ctx context.Context, t wire.Typing) error {
	if err := checkTyping(&t); err != nil {
		return err
	}
	if err := h.do(ctx, http.MethodPost, "/v1/typing", nil, t, nil); err != nil {
		return fmt.Errorf("typing: %w", err)
	}
	return nil
}

// UserSettings reads the caller's own settings (GET /v1/me/settings).
func (h *HTTP) UserSettings(ctx context.Context) (wire.UserSettings, error) {
	var s wire.UserSettings
	if err := h.do(ctx, http.MethodGet, "/v1/me/settings", nil, nil, &s); err != nil {
		return wire.UserSettings{}, fmt.Errorf("user settings: %w", err)
	}
	return s, nil
}

// SetUserSettings changes the fields of s that are set (PUT
// /v1/me/settings) and returns the settings as stored. ReadReceipts false
// turns read receipts off both ways; AcceptFrom wire.AcceptContacts
// refuses 1:1 sends from non-contacts (not_contact); Presence
// wire.PresenceNobody hides the user's presence from its contacts.
func (h *HTTP) SetUserSettings(ctx context.Context, s wire.UserSettings) (wire.UserSettings, error) {
	var out wire.UserSettings
	if err := h.do(ctx, http.MethodPut, "/v1/me/settings", nil, s, &out); err != nil {
		return wire.UserSettings{}, fmt.Errorf("set user settings: %w", err)
	}
	return out, nil
}

// GroupReads says how many members of group have read its message at seq
// and how many not, with a page of those who have, by user ID after after
// (GET /v1/groups/{gid}/messages/{seq}/reads); limit 0 lets the server
// choose.
func (h *HTTP) GroupReads(ctx context.Context, group string, seq uint64, after string, limit int) (wire.GroupReads, error) {
	seg, err := pathID("group", group)
	if err != nil {
		return wire.GroupReads{}, err
	}
	q := url.Values{}
	if after != "" {
		q.Set("after", after)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var r wire.GroupReads
	path := "/v1/groups/" + seg + "/messages/" + strconv.FormatUint(seq, 10) + "/reads"
	if err := h.do(ctx, http.MethodGet, path, q, nil, &r); err != nil {
		return wire.GroupReads{}, fmt.Errorf("reads of %s@%d: %w", group, seq, err)
	}
	return r, nil
}

// change performs one change over HTTP (body carries the cmid, for every
// method): the reply is its ack.
func (h *HTTP) change(ctx context.Context, method, path string, body any, what string) (wire.Ack, error) {
	var a wire.Ack
	if err := h.do(ctx, method, path, nil, body, &a); err != nil {
		return wire.Ack{}, fmt.Errorf("%s: %w", what, err)
	}
	if a.Kind == "" {
		a.Kind = wire.KindAck
	}
	return a, nil
}
