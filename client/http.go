package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	gojson "github.com/goccy/go-json"

	"github.com/imqtt/imqtt/wire"
)

// defaultHTTPClient is used when HTTP.Client is nil.
var defaultHTTPClient = &http.Client{Timeout: 60 * time.Second}

// HTTP calls the short-connection API of docs/http.md. Server is the base URL
// ("http://127.0.0.1:8080"); Token is the bearer token from Login (empty for
// Register, Login and Endpoints); Client defaults to one with a 60 s timeout.
// A reply with an error status is returned as a *wire.Error, wrapped with
// what was being done (use errors.As). Logger (nil: discard) hears of sync
// items skipped because they did not decode; Skipped counts them.
type HTTP struct {
	Server string
	Token  string
	Client *http.Client
	Logger *slog.Logger

	skipped atomic.Uint64
}

// Skipped returns how many sync items Sync could not decode (bad JSON,
// nested deeper than wire.MaxDepth, wrong field types) and left out, each
// logged once without its payload. The batch's Upto still covers them, so
// SyncCursor moves past a bad item instead of failing on it forever.
func (h *HTTP) Skipped() uint64 { return h.skipped.Load() }

// Register creates the account user (POST /v1/users).
func Register(ctx context.Context, server, user, password string) error {
	return (&HTTP{Server: server}).Register(ctx, user, password)
}

// Login opens a session for user's device (POST /v1/sessions).
func Login(ctx context.Context, server, user, password, device string) (wire.Session, error) {
	return (&HTTP{Server: server}).Login(ctx, user, password, device)
}

// Register creates the account user (POST /v1/users).
func (h *HTTP) Register(ctx context.Context, user, password string) error {
	err := h.do(ctx, http.MethodPost, "/v1/users", nil, wire.Register{User: user, Password: password}, nil)
	if err != nil {
		return fmt.Errorf("register %s: %w", user, err)
	}
	return nil
}

// Login opens a session for user's device (POST /v1/sessions).
func (h *HTTP) Login(ctx context.Context, user, password, device string) (wire.Session, error) {
	var s wire.Session
	err := h.do(ctx, http.MethodPost, "/v1/sessions", nil, wire.Login{User: user, Password: password, Device: device}, &s)
	if err != nil {
		return wire.Session{}, fmt.Errorf("login %s/%s: %w", user, device, err)
	}
	if s.Token == "" {
		return wire.Session{}, fmt.Errorf("login %s/%s: the server returned no token", user, device)
	}
	if s.User == "" {
		s.User, _ = wire.NormUser(user)
	}
	if s.Device == "" {
		s.Device = device
	}
	return s, nil
}

// Logout revokes the bearer token (DELETE /v1/sessions/current).
func (h *HTTP) Logout(ctx context.Context) error {
	if err := h.do(ctx, http.MethodDelete, "/v1/sessions/current", nil, nil, nil); err != nil {
		return fmt.Errorf("logout: %w", err)
	}
	return nil
}

// Send sends a message (POST /v1/messages) and returns its ack. A send whose
// error is Retryable may be sent again with the same CMID; Send does not
// fill an empty CMID.
func (h *HTTP) Send(ctx context.Context, m wire.Send) (wire.Ack, error) {
	if err := checkTTL(m); err != nil {
		return wire.Ack{}, err
	}
	var a wire.Ack
	if err := h.do(ctx, http.MethodPost, "/v1/messages", nil, m, &a); err != nil {
		return wire.Ack{}, fmt.Errorf("send %s: %w", m.CMID, err)
	}
	if a.Kind == "" {
		a.Kind = wire.KindAck
	}
	return a, nil
}

// Sync returns one batch of what the device missed (GET /v1/sync): items
// with req.Since < ver <= Upto; call again from Upto while More. An item is
// a message (Kind msg) or a change of one (recall, edit, reaction, delete),
// in version order.
func (h *HTTP) Sync(ctx context.Context, req wire.SyncRequest) (wire.Sync, error) {
	q := url.Values{"since": {strconv.FormatUint(req.Since, 10)}}
	if req.Limit > 0 {
		q.Set("limit", strconv.Itoa(req.Limit))
	}
	if req.Epoch != "" {
		q.Set("epoch", req.Epoch)
	}
	if req.Group != "" {
		q.Set("group", req.Group)
	}
	_, raw, err := h.Call(ctx, http.MethodGet, "/v1/sync", q, nil)
	if err != nil {
		return wire.Sync{}, fmt.Errorf("sync since %d: %w", req.Since, err)
	}
	var rs rawSync
	if err := gojson.Unmarshal(raw, &rs); err != nil {
		// One poison item (too deep for a decoder) fails the whole reply:
		// split it, and keep the header and the other items.
		var serr error
		if rs, serr = splitSync(raw); serr != nil {
			return wire.Sync{}, fmt.Errorf("sync since %d: decode reply: %w", req.Since, err)
		}
	}
	s := rs.Sync
	if len(rs.Items) > 0 {
		s.Items = make([]wire.Msg, 0, len(rs.Items))
	}
	for i, item := range rs.Items {
		var m wire.Msg
		err := wire.CheckDepth(item, wire.MaxDepth)
		if err == nil {
			err = gojson.Unmarshal(item, &m)
		}
		if err != nil {
			h.skipped.Add(1)
			if h.Logger != nil {
				h.Logger.Warn("undecodable sync item skipped", "since", s.Since, "upto", s.Upto, "item", i, "err", err)
			}
			continue
		}
		if m.Kind == "" {
			m.Kind = wire.KindMsg // sync items may leave the kind out; changes never do
		}
		s.Items = append(s.Items, m)
	}
	return s, nil
}

// Heads returns where each of the user's groups is (GET /v1/sync?heads=1):
// one request, however many groups.
func (h *HTTP) Heads(ctx context.Context) (wire.Heads, error) {
	var hs wire.Heads
	if err := h.do(ctx, http.MethodGet, "/v1/sync", url.Values{"heads": {"1"}}, nil, &hs); err != nil {
		return wire.Heads{}, fmt.Errorf("group heads: %w", err)
	}
	return hs, nil
}

// SyncCursor fetches everything after the cursor in cur: the inbox, then
// every group whose head is past the group's cursor (found with one Heads
// request). It calls fn for each item (a message or a change of one)
// once, in version order for the inbox and in seq order within a group,
// and saves the cursor after each batch (so fn may see an item again only
// if the process dies between the two). Groups follow a Client's rules: a new group starts at the
// member's join, one no longer listed is dropped from the cursor, and a disbanded one is synced
// up to the disband (a sync the server answers group_gone ends there). A
// Reset reply drops the cursor and starts over from the server's history.
// limit 0 lets the server choose the batch size.
func (h *HTTP) SyncCursor(ctx context.Context, cur CursorStore, limit int, fn func(wire.Msg) error) error {
	c, err := cur.Load()
	if err != nil {
		return err
	}
	save := func() error { return cur.Save(c) }
	err = h.syncPages(ctx, wire.SyncRequest{Limit: limit}, &c.Ver, &c.Epoch, func(m wire.Msg) uint64 { return m.Ver }, save, fn)
	if err != nil {
		return err
	}
	heads, err := h.Heads(ctx)
	if err != nil {
		return err
	}
	listed := make(map[string]GroupCursor, len(heads.Groups))
	var moved []wire.GroupHead
	for _, hd := range heads.Groups {
		if !wire.CanonicalUser(hd.Group) { // group IDs follow the user ID rules
			continue
		}
		gc := c.Groups[hd.Group]
		gc.Seq = max(gc.Seq, hd.Join)
		listed[hd.Group] = gc
		if gc.Seq != hd.Seq { // above the head too: the server resets a cursor of lost history
			moved = append(moved, hd)
		}
	}
	c.Groups = listed
	if err := save(); err != nil {
		return err
	}
	for _, hd := range moved {
		gc := c.Groups[hd.Group]
		err := h.syncPages(ctx, wire.SyncRequest{Group: hd.Group, Limit: limit}, &gc.Seq, &gc.Epoch,
			func(m wire.Msg) uint64 { return m.Seq },
			func() error { c.Groups[hd.Group] = gc; return save() }, fn)
		var we *wire.Error
		if errors.As(err, &we) && we.Code == wire.CodeNotMember { // left since the heads
			delete(c.Groups, hd.Group)
			if err := save(); err != nil {
				return err
			}
			continue
		}
		if errors.As(err, &we) && we.Code == wire.CodeGroupGone { // disbanded: nothing more to fetch
			continue
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// syncPages syncs one sequence (the inbox, or the group of req) from
// *cursor, in epoch *epoch, by the rules of docs/protocol.md#versions-and-offline-sync: fn gets each item past
// the cursor, pos says where an item is, and save runs after each batch.
func (h *HTTP) syncPages(ctx context.Context, req wire.SyncRequest, cursor *uint64, epoch *string,
	pos func(wire.Msg) uint64, save func() error, fn func(wire.Msg) error) error {
	for {
		req.Since, req.Epoch = *cursor, *epoch
		b, err := h.Sync(ctx, req)
		if err != nil {
			return err
		}
		if b.Reset {
			*cursor = b.Since
		} else if b.Since > *cursor {
			return fmt.Errorf("sync since %d: the reply starts at %d", *cursor, b.Since)
		}
		if b.Epoch != "" {
			*epoch = b.Epoch
		}
		for _, m := range b.Items {
			if pos(m) <= *cursor {
				continue
			}
			if err := fn(m); err != nil {
				return err
			}
			*cursor = pos(m)
		}
		*cursor = max(*cursor, b.Upto)
		if err := save(); err != nil {
			return err
		}
		if !b.More {
			return nil
		}
	}
}

// Conversations returns the conversation list (GET /v1/conversations).
func (h *HTTP) Conversations(ctx context.Context) (wire.Conversations, error) {
	var c wire.Conversations
	if err := h.do(ctx, http.MethodGet, "/v1/conversations", nil, nil, &c); err != nil {
		return wire.Conversations{}, fmt.Errorf("conversations: %w", err)
	}
	return c, nil
}

// History returns the messages with peer, newest first, whose ID is below
// before (empty: the newest); limit 0 lets the server choose
// (GET /v1/conversations/{peer}/messages).
func (h *HTTP) History(ctx context.Context, peer, before string, limit int) (wire.History, error) {
	q := url.Values{}
	if before != "" {
		q.Set("before", before)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	seg, err := pathID("peer", peer)
	if err != nil {
		return wire.History{}, fmt.Errorf("history: %w", err)
	}
	var hist wire.History
	if err := h.do(ctx, http.MethodGet, "/v1/conversations/"+seg+"/messages", q, nil, &hist); err != nil {
		return wire.History{}, fmt.Errorf("history %s: %w", peer, err)
	}
	return hist, nil
}

// Read sets a read position (POST /v1/read) and returns the new counts.
func (h *HTTP) Read(ctx context.Context, r wire.Read) (wire.Unread, error) {
	var u wire.Unread
	if err := h.do(ctx, http.MethodPost, "/v1/read", nil, r, &u); err != nil {
		return wire.Unread{}, fmt.Errorf("read %s%s: %w", r.Peer, r.Group, err)
	}
	return u, nil
}

// Endpoints lists the MQTT endpoints, best first (GET /v1/endpoints, no auth).
func (h *HTTP) Endpoints(ctx context.Context) (wire.Endpoints, error) {
	var e wire.Endpoints
	if err := h.do(ctx, http.MethodGet, "/v1/endpoints", nil, nil, &e); err != nil {
		return wire.Endpoints{}, fmt.Errorf("endpoints: %w", err)
	}
	return e, nil
}

// do performs one JSON call: in (if not nil) is the body, out (if not nil)
// receives the reply. Error statuses become a *wire.Error.
func (h *HTTP) do(ctx context.Context, method, path string, q url.Values, in, out any) error {
	_, raw, err := h.Call(ctx, method, path, q, in)
	if err != nil {
		return err
	}
	if out == nil || len(bytes.TrimSpace(raw)) == 0 {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("decode reply: %w", err)
	}
	return nil
}

// Call performs one call for which HTTP has no method (an operator's
// call of the admin API, with the admin token as Token): path is under
// Server, q its query, in (if not nil) its JSON body. It returns the
// reply's status and its (decompressed) body; an error status is a
// *wire.Error, the status still returned.
func (h *HTTP) Call(ctx context.Context, method, path string, q url.Values, in any) (int, []byte, error) {
	resp, err := h.send(ctx, method, path, q, in, defaultHTTPClient)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxPayload+1))
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("read reply: %w", err)
	}
	if len(raw) > maxPayload {
		return resp.StatusCode, nil, errors.New("reply over 64 MiB")
	}
	if raw, err = Decompress(raw); err != nil {
		return resp.StatusCode, nil, err
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, nil, statusError(resp.StatusCode, raw)
	}
	return resp.StatusCode, raw, nil
}

// Stream is Call for a reply too large to hold (an admin backup): the
// caller reads and closes a 2xx reply's body. With no Client it has, like
// Upload and Download, no overall timeout: the read takes as long as the
// reply is long, bounded by ctx.
func (h *HTTP) Stream(ctx context.Context, method, path string, q url.Values, in any) (int, io.ReadCloser, error) {
	resp, err := h.send(ctx, method, path, q, in, mediaHTTPClient)
	if err != nil {
		return 0, nil, err
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10)) // the error, not a stream
		return resp.StatusCode, nil, statusError(resp.StatusCode, raw)
	}
	return resp.StatusCode, resp.Body, nil
}

// send sends one call with h.Client (else with hc) and returns the reply,
// whatever its status.
func (h *HTTP) send(ctx context.Context, method, path string, q url.Values, in any, hc *http.Client) (*http.Response, error) {
	u, err := h.url(path, q)
	if err != nil {
		return nil, err
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if h.Token != "" {
		req.Header.Set("Authorization", "Bearer "+h.Token)
	}
	if h.Client != nil {
		hc = h.Client
	}
	return hc.Do(req)
}

// statusError turns an error reply into a *wire.Error: its JSON body when it
// has one, else a code that matches the status.
func statusError(status int, body []byte) *wire.Error {
	var we wire.Error
	if json.Unmarshal(body, &we) == nil && we.Code != "" {
		return &we
	}
	msg := http.StatusText(status)
	if s := strings.TrimSpace(string(body)); s != "" {
		msg += ": " + truncate(s, 200)
	}
	return wire.NewError(wire.CodeForStatus(status), msg)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// pathID checks a user or group ID that goes into a URL path and returns
// its canonical form: "..", "." or "a/b" would name another route
// (GET /v1/conversations/../messages is GET /v1/messages), so they never
// leave the client.
func pathID(what, id string) (string, error) {
	n, ok := wire.NormUser(id)
	if !ok {
		return "", wire.NewError(wire.CodeBadRequest, fmt.Sprintf("%s %q is not an ID: 1 to 64 of A-Z a-z 0-9 _ . -, not starting with a dot", what, id))
	}
	return n, nil
}
