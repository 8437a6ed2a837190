package hooks_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/imqtt/imqtt/hooks"
	"github.com/imqtt/imqtt/internal/account"
	"github.com/imqtt/imqtt/internal/bans"
	"github.com/imqtt/imqtt/internal/metrics"
)

// fakeAccounts answers Authenticate by the secret, and records the calls.
type fakeAccounts struct{ calls []string }

func (f *fakeAccounts) Authenticate(ctx context.Context, from, user, device, secret string) error {
	f.calls = append(f.calls, from+" "+user+"/"+device+" "+secret)
	switch secret {
	case "good-token", "good-password":
		return nil
	case "expired-token", "wrong-password":
		return account.ErrBadCredentials
	case "other-device-token":
		return account.ErrWrongDevice
	case "throttled":
		return &account.Throttled{Limit: "login_user_ip", RetryAfter: time.Minute}
	}
	return errors.New("store down")
}

// TestAuth: the client ID must be the username's canonical ID and a
// device; the credentials are the Authenticator's to judge; each refusal
// gets its CONNACK code, in MQTT 5 and in 3.1.1, and is counted.
func TestAuth(t *testing.T) {
	for _, c := range []struct {
		name, id, user, secret string
		want                   packets.Code // 0: accepted
		v3                     byte
		reason                 string // the refusal's metrics label
		called                 bool   // whether Authenticate is asked
	}{
		{name: "token", id: "alice/phone", user: "alice", secret: "good-token", called: true},
		{name: "password", id: "alice/phone", user: "alice", secret: "good-password", called: true},
		{name: "wrong password", id: "alice/phone", user: "alice", secret: "wrong-password", want: packets.ErrBadUsernameOrPassword, v3: 4, reason: "credentials", called: true},
		{name: "expired token", id: "alice/phone", user: "alice", secret: "expired-token", want: packets.ErrBadUsernameOrPassword, v3: 4, reason: "credentials", called: true},
		{name: "another device's token", id: "alice/tab", user: "alice", secret: "other-device-token", want: packets.ErrBadUsernameOrPassword, v3: 4, reason: "credentials", called: true},
		{name: "store down", id: "alice/phone", user: "alice", secret: "?", want: packets.ErrBadUsernameOrPassword, v3: 4, reason: "credentials", called: true},
		{name: "throttled", id: "alice/phone", user: "alice", secret: "throttled", want: packets.ErrConnectionRateExceeded, v3: 3, called: true},
		{name: "no device", id: "alice", user: "alice", secret: "good-token", want: packets.ErrClientIdentifierNotValid, v3: 2, reason: "client_id"},
		{name: "another user", id: "bob/phone", user: "alice", secret: "good-token", want: packets.ErrClientIdentifierNotValid, v3: 2, reason: "client_id"},
		{name: "not canonical", id: "Alice/phone", user: "Alice", secret: "good-token", want: packets.ErrClientIdentifierNotValid, v3: 2, reason: "client_id"},
		{name: "empty device", id: "alice/", user: "alice", secret: "good-token", want: packets.ErrClientIdentifierNotValid, v3: 2, reason: "client_id"},
	} {
		for _, ver := range []byte{5, 4} {
			m, acks, accts := metrics.New(), new(connacks), new(fakeAccounts)
			h := new(hooks.Auth)
			if err := h.Init(hooks.AuthConfig{Accounts: accts, Server: acks, Keepalive: 30, Metrics: m}); err != nil {
				t.Fatal(err)
			}
			cl := client(c.id, c.user, ver)
			pk := packets.Packet{Connect: packets.ConnectParams{Password: []byte(c.secret)}}
			err := h.OnConnect(cl, pk)
			if len(accts.calls) > 0 != c.called {
				t.Errorf("%s v%d: Authenticate asked %v", c.name, ver, accts.calls)
			}
			if c.called && (len(accts.calls) != 1 || accts.calls[0] != "10.0.0.7:4242 "+c.id+" "+c.secret) {
				t.Errorf("%s v%d: Authenticate(%v)", c.name, ver, accts.calls)
			}
			sent := acks.take()
			if c.want == (packets.Code{}) {
				if err != nil || len(sent) != 0 {
					t.Errorf("%s v%d: refused (%v, CONNACK %x)", c.name, ver, err, codes(sent))
				}
				continue
			}
			var code packets.Code
			if !errors.As(err, &code) || code.Code != c.want.Code {
				t.Errorf("%s v%d: OnConnect = %v, want %v", c.name, ver, err, c.want)
			}
			wantAck := c.want.Code
			if ver < 5 {
				wantAck = c.v3
			}
			if len(sent) != 1 || sent[0].Code != wantAck {
				t.Errorf("%s v%d: CONNACK %x, want %x", c.name, ver, codes(sent), wantAck)
			}
			if c.reason != "" && count(m.AuthFailures, c.reason) != 1 {
				t.Errorf("%s v%d: not counted as an auth failure %q", c.name, ver, c.reason)
			}
			if c.want == packets.ErrConnectionRateExceeded && count(m.Refusals, "login_user_ip") != 1 {
				t.Errorf("%s v%d: the throttle's refusal not counted", c.name, ver)
			}
			if c.name == "not canonical" && ver == 5 && !strings.Contains(sent[0].Reason, "connect as alice/phone with username alice") {
				t.Errorf("%s: reason %q does not say the canonical ID", c.name, sent[0].Reason)
			}
		}
	}
}

// TestAuthKeepalive: a client asking for no keepalive gets the server's,
// and is told so; one asking for its own keeps it.
func TestAuthKeepalive(t *testing.T) {
	h := new(hooks.Auth)
	if err := h.Init(hooks.AuthConfig{Accounts: new(fakeAccounts), Server: new(connacks), Keepalive: 30, Metrics: metrics.New()}); err != nil {
		t.Fatal(err)
	}
	pk := packets.Packet{Connect: packets.ConnectParams{Password: []byte("good-token")}}
	cl := client("alice/phone", "alice", 5)
	if err := h.OnConnect(cl, pk); err != nil || cl.State.Keepalive != 30 || !cl.State.ServerKeepalive {
		t.Errorf("keepalive 0: %v, keepalive %d, server's %v", err, cl.State.Keepalive, cl.State.ServerKeepalive)
	}
	cl = client("alice/phone", "alice", 5)
	cl.State.Keepalive = 90
	if err := h.OnConnect(cl, pk); err != nil || cl.State.Keepalive != 90 || cl.State.ServerKeepalive {
		t.Errorf("keepalive 90: %v, keepalive %d, server's %v", err, cl.State.Keepalive, cl.State.ServerKeepalive)
	}
	if !h.OnConnectAuthenticate(cl, pk) {
		t.Error("OnConnectAuthenticate refuses what OnConnect let through")
	}
	if err := new(hooks.Auth).Init(hooks.AuthConfig{Server: new(connacks), Metrics: metrics.New()}); err == nil {
		t.Error("Init without Accounts accepted")
	}
}

// fakeBans bans one user and one address.
type fakeBans struct{}

func (fakeBans) Banned(user string, addr netip.Addr) (bans.Ban, bool) {
	if user == "mallory" || addr == netip.MustParseAddr("10.6.6.6") {
		return bans.Ban{ID: "b-1", User: user}, true
	}
	return bans.Ban{}, false
}

// TestBan: a banned user or address is refused with 0x8A (3.1.1: 5),
// counted as banned; anyone else passes to the next hook untouched.
func TestBan(t *testing.T) {
	for _, ver := range []byte{5, 4} {
		m, acks := metrics.New(), new(connacks)
		h := new(hooks.Ban)
		if err := h.Init(hooks.BanConfig{Bans: fakeBans{}, Server: acks, Metrics: m}); err != nil {
			t.Fatal(err)
		}
		if err := h.OnConnect(client("alice/phone", "alice", ver), packets.Packet{}); err != nil || len(acks.take()) != 0 {
			t.Errorf("v%d: alice refused: %v", ver, err)
		}
		fromBanned := client("alice/phone", "alice", ver)
		fromBanned.Net.Remote = "10.6.6.6:1000"
		for _, cl := range []string{"mallory", "address"} {
			c := client("mallory/x", "mallory", ver)
			if cl == "address" {
				c = fromBanned
			}
			err := h.OnConnect(c, packets.Packet{})
			want := byte(0x8A)
			if ver < 5 {
				want = 5
			}
			if sent := acks.take(); !errors.Is(err, packets.ErrBanned) || len(sent) != 1 || sent[0].Code != want {
				t.Errorf("v%d: banned %s: %v, CONNACK %x", ver, cl, err, codes(sent))
			}
		}
		if n := count(m.AuthFailures, "banned"); n != 2 {
			t.Errorf("v%d: %v bans counted, want 2", ver, n)
		}
	}
}

// TestACL: a client subscribes only under its own im/u/{user}/ and
// publishes only to the uplink topics; refusals are counted by action.
func TestACL(t *testing.T) {
	m := metrics.New()
	h := new(hooks.ACL)
	if err := h.Init(m); err != nil {
		t.Fatal(err)
	}
	cl := client("alice/phone", "alice", 5)
	for _, c := range []struct {
		topic string
		write bool
		want  bool
	}{
		{"im/u/alice/inbox", false, true},
		{"im/u/alice/d/phone", false, true},
		{"im/u/alice/#", false, true},
		{"im/u/bob/inbox", false, false},
		{"im/u/alicex/inbox", false, false},
		{"im/u/ali/inbox", false, false},
		{"im/u/alice", false, false},
		{"im/u/+/inbox", false, false},
		{"#", false, false},
		{"im/send", false, false},
		{"im/send", true, true},
		{"im/sync", true, true},
		{"im/read", true, true},
		{"im/u/alice/inbox", true, false},
		{"im/u/bob/inbox", true, false},
		{"im/other", true, false},
	} {
		if got := h.OnACLCheck(cl, c.topic, c.write); got != c.want {
			t.Errorf("alice, %s (write %v): %v, want %v", c.topic, c.write, got, c.want)
		}
	}
	if sub, pub := count(m.ACLDenials, "subscribe"), count(m.ACLDenials, "publish"); sub != 7 || pub != 3 {
		t.Errorf("denials counted: %v subscribe, %v publish; want 7, 3", sub, pub)
	}
	if hooks.Allowed(nil, "im/u//inbox", false) {
		t.Error("a client without a username may subscribe")
	}
}

// codes are the reason codes of CONNACKs, to print.
func codes(cs []packets.Code) []byte {
	out := make([]byte, len(cs))
	for i, c := range cs {
		out[i] = c.Code
	}
	return out
}
