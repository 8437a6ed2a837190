package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/imqtt/imqtt/broker"
	"github.com/imqtt/imqtt/chat"
	"github.com/imqtt/imqtt/internal/account"
	"github.com/imqtt/imqtt/internal/api"
	"github.com/imqtt/imqtt/internal/bans"
	"github.com/imqtt/imqtt/internal/deliver"
	"github.com/imqtt/imqtt/internal/media"
	"github.com/imqtt/imqtt/internal/metrics"
	"github.com/imqtt/imqtt/state"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/wire"
)

// The server's implementations satisfy the API's interfaces unchanged.
var (
	_ api.Accounts     = (*account.Service)(nil)
	_ api.Core         = (*chat.Service)(nil)
	_ api.MediaStore   = (*media.Service)(nil)
	_ api.DeviceLister = state.Presence(nil)
	_ api.AdminBroker  = (*broker.Broker)(nil)
)

// errStore stands for a store failure: the API must not show it.
var errStore = errors.New("pebble: disk on fire")

// fakeAccounts: tokens "tok-<user>-<device>" are live; "tok-expired" and
// unknown tokens are not; "tok-down" fails the store. Addresses 10.9.9.9
// are throttled.
type fakeAccounts struct {
	mu      sync.Mutex
	revoked []string
	users   map[string]string // user -> password
}

func (f *fakeAccounts) RegisterFrom(ctx context.Context, from, user, password string) (string, error) {
	if strings.HasPrefix(from, "10.9.9.9:") {
		return "", &account.Throttled{Limit: "register_ip", RetryAfter: 1500 * time.Millisecond}
	}
	id, ok := wire.NormUser(user)
	switch {
	case !ok || len(password) < 6:
		return "", account.ErrInvalid
	case wire.ReservedUser(id):
		return "", account.ErrReserved
	case id == "down":
		return "", errStore
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.users[id]; ok {
		return "", account.ErrExists
	}
	f.users[id] = password
	return id, nil
}

func (f *fakeAccounts) LoginFrom(ctx context.Context, from, user, password, device string) (wire.Session, error) {
	if strings.HasPrefix(from, "10.9.9.9:") {
		return wire.Session{}, &account.Throttled{Limit: "login_ip", RetryAfter: time.Minute}
	}
	if !wire.ValidUser(user) || !wire.ValidDevice(device) {
		return wire.Session{}, account.ErrInvalid
	}
	if user == "down" {
		return wire.Session{}, errStore
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if pw, ok := f.users[user]; !ok || pw != password {
		return wire.Session{}, account.ErrBadCredentials
	}
	return wire.Session{Token: "tok-" + user + "-" + device, User: user, Device: device, ExpiresAt: 1}, nil
}

func (f *fakeAccounts) Verify(ctx context.Context, token string) (store.Token, error) {
	if token == "tok-down" {
		return store.Token{}, errStore
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.revoked {
		if r == token {
			return store.Token{}, account.ErrBadCredentials
		}
	}
	user, device, ok := strings.Cut(strings.TrimPrefix(token, "tok-"), "-")
	if !ok || !strings.HasPrefix(token, "tok-") || user == "expired" {
		return store.Token{}, account.ErrBadCredentials
	}
	return store.Token{User: user, Device: device}, nil
}

func (f *fakeAccounts) Revoke(ctx context.Context, token string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.revoked = append(f.revoked, token)
	return nil
}

// fakeCore answers by its inputs: a send whose body is "err:<code>" is
// refused with that code, "timeout" ends with the context's error, "store"
// fails the store; a group or peer named like a code likewise.
type fakeCore struct {
	mu    sync.Mutex
	calls []string
}

func (c *fakeCore) called(format string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, format)
}

func (c *fakeCore) took() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.calls
	c.calls = nil
	return out
}

// sentinels are the core's refusals by their wire code.
var sentinels = map[string]error{
	wire.CodeBadRequest: chat.ErrBadRequest, wire.CodeBadType: chat.ErrBadType, wire.CodeMissingTo: chat.ErrMissingTo,
	wire.CodeMissingCMID: chat.ErrMissingCMID, wire.CodeTooLarge: chat.ErrTooLarge, wire.CodeNoSuchUser: chat.ErrNoSuchUser,
	wire.CodeNotMember: chat.ErrNotMember, wire.CodeForbidden: chat.ErrForbidden, wire.CodeNotFound: chat.ErrNotFound,
	wire.CodeExists: chat.ErrExists, wire.CodeGroupFull: chat.ErrGroupFull, wire.CodeRateLimited: chat.ErrRateLimited,
	wire.CodeBusy: chat.ErrBusy, wire.CodeUnavailable: chat.ErrUnavailable,
	wire.CodeNotAllowed: chat.ErrNotAllowed, wire.CodeTooLate: chat.ErrTooLate,
}

// outcome maps a name to the error the core answers with: "err:CODE" is
// the refusal of that code's sentinel, with the message "refused: err:CODE".
func outcome(name string) error {
	switch {
	case name == "timeout":
		return context.DeadlineExceeded
	case name == "store":
		return errStore
	case strings.HasPrefix(name, "err:"):
		sentinel, ok := sentinels[strings.TrimPrefix(name, "err:")]
		if !ok {
			panic("no sentinel for " + name)
		}
		return fmt.Errorf("core: %w", &chat.Error{Err: sentinel, Msg: "refused: " + name})
	}
	return nil
}

func (c *fakeCore) Send(ctx context.Context, from chat.Sender, req wire.Send) (wire.Ack, error) {
	c.called("send " + from.User + "/" + from.Device + " " + req.CMID)
	if err := outcome(req.Body); err != nil {
		return wire.Ack{}, err
	}
	return wire.Ack{Kind: wire.KindAck, CMID: req.CMID, ID: "99", Ver: 3}, nil
}

// change answers a change by its message ID (outcome), else an ack.
func (c *fakeCore) change(what string, from chat.Sender, id, cmid string, done func(chat.Result)) {
	c.called(what + " " + from.User + "/" + from.Device + " " + id)
	if err := outcome(id); err != nil {
		done(chat.Result{Err: err})
		return
	}
	done(chat.Result{Ack: wire.Ack{Kind: wire.KindAck, CMID: cmid, ID: "77", Ver: 5}})
}

func (c *fakeCore) Recall(ctx context.Context, from chat.Sender, req wire.Recall, done func(chat.Result)) {
	c.change("recall", from, req.ID, req.CMID, done)
}

func (c *fakeCore) Edit(ctx context.Context, from chat.Sender, req wire.Edit, done func(chat.Result)) {
	c.change("edit "+req.Body, from, req.ID, req.CMID, done)
}

func (c *fakeCore) React(ctx context.Context, from chat.Sender, req wire.React, done func(chat.Result)) {
	c.change("react "+req.Op+" "+req.Emoji, from, req.ID, req.CMID, done)
}

func (c *fakeCore) Delete(ctx context.Context, from chat.Sender, req wire.Delete, done func(chat.Result)) {
	c.change("delete "+req.Peer+strings.Join(req.IDs, ","), from, "", req.CMID, done)
}

func (c *fakeCore) Typing(ctx context.Context, user string, req wire.Typing) (bool, error) {
	c.called("typing " + user + " " + req.Peer + req.Group + " " + req.State)
	return true, outcome(req.Peer)
}

func (c *fakeCore) UserSettings(ctx context.Context, user string) (wire.UserSettings, error) {
	c.called("user settings " + user)
	on := true
	return wire.UserSettings{ReadReceipts: &on}, nil
}

func (c *fakeCore) SetUserSettings(ctx context.Context, user string, req wire.UserSettings) (wire.UserSettings, error) {
	c.called("set user settings " + user)
	return req, nil
}

func (c *fakeCore) GroupReads(ctx context.Context, user, group string, seq uint64, after string, limit int) (wire.GroupReads, error) {
	c.called(fmt.Sprintf("reads %s %s %d %s %d", user, group, seq, after, limit))
	if err := outcome(group); err != nil {
		return wire.GroupReads{}, err
	}
	return wire.GroupReads{Read: 1, Unread: 2, Users: []string{"bob"}}, nil
}

func (c *fakeCore) Sync(ctx context.Context, user string, req wire.SyncRequest, emit func(wire.Sync) error) error {
	c.called("sync " + user)
	if err := outcome(req.Group); err != nil {
		return err
	}
	for _, b := range []wire.Sync{
		{Kind: wire.KindSync, Since: req.Since, Upto: req.Since + 2, More: true, Items: []wire.Msg{{ID: "1"}, {ID: "2"}}},
		{Kind: wire.KindSync, Since: req.Since + 2, Upto: req.Since + 3, Items: []wire.Msg{{ID: "3"}}},
	} {
		if err := emit(b); err != nil {
			return err
		}
	}
	return nil
}

func (c *fakeCore) GroupHeads(ctx context.Context, user string) (wire.Heads, error) {
	c.called("heads " + user)
	return wire.Heads{Kind: wire.KindHeads, Groups: []wire.GroupHead{{Group: "g1", Seq: 4}}}, nil
}

func (c *fakeCore) Conversations(ctx context.Context, user string) (wire.Conversations, error) {
	c.called("conversations " + user)
	return wire.Conversations{TotalUnread: 2, Conversations: []wire.Conversation{{Peer: "bob", Unread: 2}}}, nil
}

func (c *fakeCore) History(ctx context.Context, user, peer string, before int64, limit int) (wire.History, error) {
	c.called("history " + user + " " + peer + " " + itoa(before) + " " + itoa(int64(limit)))
	if err := outcome(peer); err != nil {
		return wire.History{}, err
	}
	return wire.History{Messages: []wire.Msg{{ID: "5"}}}, nil
}

func (c *fakeCore) Read(ctx context.Context, user string, req wire.Read) (wire.Unread, error) {
	c.called("read " + user + " " + req.Peer)
	if err := outcome(req.Group); err != nil {
		return wire.Unread{}, err
	}
	return wire.Unread{Kind: wire.KindUnread, Peer: req.Peer, Total: 1}, nil
}

func (c *fakeCore) CreateGroup(ctx context.Context, owner string, req wire.GroupCreate) (wire.Group, error) {
	c.called("create " + owner + " " + req.Name)
	if err := outcome(req.Name); err != nil {
		return wire.Group{}, err
	}
	return wire.Group{ID: "g1", Name: req.Name, Owner: owner, Count: 1 + len(req.Members)}, nil
}

func (c *fakeCore) Groups(ctx context.Context, user string) (wire.Groups, error) {
	c.called("groups " + user)
	return wire.Groups{Groups: []wire.Group{{ID: "g1"}}}, nil
}

func (c *fakeCore) Group(ctx context.Context, user, group, after string, limit int) (wire.Group, error) {
	c.called("group " + user + " " + group + " " + after + " " + itoa(int64(limit)))
	if err := outcome(group); err != nil {
		return wire.Group{}, err
	}
	return wire.Group{ID: group}, nil
}

func (c *fakeCore) AddMembers(ctx context.Context, actor, group string, req wire.GroupMembers) (wire.Group, error) {
	c.called("add " + actor + " " + group + " " + strings.Join(req.Users, ","))
	if err := outcome(group); err != nil {
		return wire.Group{}, err
	}
	return wire.Group{ID: group, Count: 1 + len(req.Users)}, nil
}

func (c *fakeCore) RemoveMember(ctx context.Context, actor, group, user string) error {
	c.called("remove " + actor + " " + group + " " + user)
	return outcome(group)
}

func (c *fakeCore) SetConvSettings(ctx context.Context, user string, cs wire.ConvSettings) (wire.ConvSettings, error) {
	c.called("settings " + user + " " + cs.Peer + cs.Group)
	return cs, nil
}

func (c *fakeCore) GetConvSettings(ctx context.Context, user, peer, group string) (wire.ConvSettings, error) {
	return wire.ConvSettings{Peer: peer, Group: group}, nil
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// fakeMedia keeps uploads in memory. An upload named like a media error
// fails with it.
type fakeMedia struct {
	mu    sync.Mutex
	blobs map[string][]byte
}

var mediaErrs = map[string]error{
	"big": media.ErrTooLarge, "lie": media.ErrTypeMismatch, "empty": media.ErrEmpty,
	"nohls": media.ErrNoHLS, "badvideo": media.ErrBadVideo, "full": store.ErrNoSpace, "boom": errors.New("boom"),
}

const mediaID = "m-aaaaaaaaaaaaaaaaaaaaaaaaaa"

func (m *fakeMedia) MaxLimit() int64 { return 1 << 20 }

func (m *fakeMedia) Put(ctx context.Context, up media.Upload, body io.Reader) (media.Info, error) {
	if err, ok := mediaErrs[up.Name]; ok {
		return media.Info{}, err
	}
	data, err := io.ReadAll(body)
	if err != nil {
		return media.Info{}, media.ErrTruncated
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.blobs[mediaID] = data
	return media.Info{ID: mediaID, Owner: up.Owner, Name: up.Name, Size: int64(len(data)), Type: up.Declared, SHA256: "abc"}, nil
}

type readSeekCloser struct{ *bytes.Reader }

func (readSeekCloser) Close() error { return nil }

func (m *fakeMedia) Open(ctx context.Context, user, id, part string) (media.Info, io.ReadSeekCloser, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	data, ok := m.blobs[id]
	if !ok || user == "mallory" || part != media.PartData {
		return media.Info{}, nil, media.ErrNotFound
	}
	return media.Info{ID: id, Type: "image/png", SHA256: "abc", Name: "a.png", Created: 1}, readSeekCloser{bytes.NewReader(data)}, nil
}

// fakeBroker is this node's broker: a fixed client list; Kick records.
type fakeBroker struct {
	mu       sync.Mutex
	clients  []broker.ClientInfo
	kicked   []string
	stopped  bool
	drainReq chan int
	waves    broker.Waves // told of the drain's waves
}

func (b *fakeBroker) ClientList() []broker.ClientInfo {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]broker.ClientInfo(nil), b.clients...)
}

func (b *fakeBroker) ClientDetail(id string) (broker.ClientInfo, []broker.Subscription, bool) {
	for _, c := range b.ClientList() {
		if c.ID == id {
			return c, []broker.Subscription{{Filter: "im/u/" + c.User + "/inbox", QoS: 1}}, true
		}
	}
	return broker.ClientInfo{}, nil, false
}

func (b *fakeBroker) Kick(clientID string, code packets.Code) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.clients {
		if c.ID == clientID {
			b.kicked = append(b.kicked, clientID)
			return true
		}
	}
	return false
}

func (b *fakeBroker) Clients() int64 { return int64(len(b.ClientList())) }

func (b *fakeBroker) StopAccepting() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.stopped = true
}

func (b *fakeBroker) Drain(per int, interval time.Duration, stop <-chan struct{}, w broker.Waves) bool {
	b.mu.Lock()
	b.waves = w
	b.mu.Unlock()
	b.drainReq <- per
	<-stop
	return false
}

// fakeBans is a ban list in memory.
type fakeBans struct {
	mu  sync.Mutex
	all []bans.Ban
}

func (l *fakeBans) Add(ctx context.Context, b bans.Ban) (bans.Ban, error) {
	if (b.User == "") == (b.IP == "") {
		return bans.Ban{}, bans.ErrInvalid
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b.ID = "b-" + itoa(int64(len(l.all)+1))
	l.all = append(l.all, b)
	return b, nil
}

func (l *fakeBans) Remove(ctx context.Context, id string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, b := range l.all {
		if b.ID == id {
			l.all = append(l.all[:i], l.all[i+1:]...)
			return nil
		}
	}
	return bans.ErrNotFound
}

func (l *fakeBans) All(ctx context.Context) ([]bans.Ban, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]bans.Ban{}, l.all...), nil
}

func (l *fakeBans) Banned(user string, addr netip.Addr) (bans.Ban, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, b := range l.all {
		if b.Covers(user, addr) {
			return b, true
		}
	}
	return bans.Ban{}, false
}

// published records notices.
type published struct {
	mu     sync.Mutex
	topics []string
}

// PublishUser makes published the delivery path's local sink (the broker).
func (p *published) PublishUser(_, topic string, payload []byte) error {
	return p.Publish(topic, payload)
}

func (p *published) Publish(topic string, payload []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.topics = append(p.topics, topic)
	return nil
}

type kicker struct{ kicked []string }

func (k *kicker) KickDevice(id string) bool { k.kicked = append(k.kicked, id); return true }

// rig is an API on fakes.
type rig struct {
	api      *api.API
	accounts *fakeAccounts
	core     *fakeCore
	media    *fakeMedia
	broker   *fakeBroker
	bans     *fakeBans
	pub      *published
	kicker   *kicker
	m        *metrics.Metrics
}

const adminToken = "admin-secret"

func newRig(t *testing.T, edit func(*api.Config)) *rig {
	t.Helper()
	r := &rig{accounts: &fakeAccounts{users: map[string]string{"alice": "alice-pw"}}, core: new(fakeCore),
		media: &fakeMedia{blobs: map[string][]byte{}}, bans: new(fakeBans), pub: new(published), kicker: new(kicker),
		broker: &fakeBroker{drainReq: make(chan int, 1), clients: []broker.ClientInfo{
			{ID: "alice/phone", User: "alice", Remote: "10.0.0.1:1", Protocol: 5},
			{ID: "bob/tab", User: "bob", Remote: "10.0.0.2:1", Protocol: 4},
			{ID: "bob/web", User: "bob", Remote: "[2001:db8::1]:1", Protocol: 5}}},
		m: metrics.New()}
	cfg := api.Config{Accounts: r.accounts, Chat: r.core, Media: r.media, Metrics: r.m, Kicker: r.kicker, MaxBody: 4096,
		Logger: slog.New(slog.DiscardHandler),
		Endpoints: func(ctx context.Context) ([]wire.Endpoint, error) {
			return []wire.Endpoint{{Node: "n1", MQTT: "mqtt://n1:1883"}}, nil
		},
		Ready: func(ctx context.Context) error { return nil },
		Admin: api.AdminConfig{Token: adminToken, Node: "n1", Broker: r.broker, Sender: deliver.New(deliver.Options{Local: r.pub}), Bans: r.bans,
			SampleEvery: time.Hour}}
	if edit != nil {
		edit(&cfg)
	}
	r.api = api.New(cfg)
	t.Cleanup(r.api.Close)
	return r
}

// do serves one request from 192.0.2.1 and returns the recorder.
func (r *rig) do(method, path, token, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.RemoteAddr = "192.0.2.1:5555"
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return r.serve(req)
}

// serve serves req as it was built (its own headers and address) and
// returns the recorder.
func (r *rig) serve(req *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	r.api.ServeHTTP(w, req)
	return w
}

// wantError checks an error answer: its status and its JSON code.
func wantError(t *testing.T, w *httptest.ResponseRecorder, status int, code string) {
	t.Helper()
	var e wire.Error
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || w.Code != status || e.Code != code || e.Message == "" {
		t.Errorf("got %d %s, want %d %s", w.Code, strings.TrimSpace(w.Body.String()), status, code)
	}
}

// wantJSON checks a success answer's status and decodes its body into v.
func wantJSON(t *testing.T, w *httptest.ResponseRecorder, status int, v any) {
	t.Helper()
	if w.Code != status {
		t.Fatalf("got %d %s, want %d", w.Code, strings.TrimSpace(w.Body.String()), status)
	}
	if v != nil {
		if err := json.Unmarshal(w.Body.Bytes(), v); err != nil {
			t.Fatalf("body %q: %v", w.Body.String(), err)
		}
	}
}

var _ http.Handler = (*api.API)(nil)
