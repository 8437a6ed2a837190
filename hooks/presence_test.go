package hooks_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/imqtt/imqtt/broker"
	"github.com/imqtt/imqtt/hooks"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/state"
)

// fakePresence records Online and Offline; prev is what Online answers
// per client ID, failing for "down".
type fakePresence struct {
	mu      sync.Mutex
	prev    map[string]string
	online  []state.Device
	offline []string // user/device@node
	calls   []string // "+user/device@node" and "-user/device@node", in order
}

func (f *fakePresence) Online(ctx context.Context, d state.Device) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.online = append(f.online, d)
	f.calls = append(f.calls, "+"+d.User+"/"+d.Device+"@"+d.Node)
	if f.prev[d.User+"/"+d.Device] == "down" {
		return "", errors.New("redis away")
	}
	return f.prev[d.User+"/"+d.Device], nil
}

func (f *fakePresence) Offline(ctx context.Context, user, device, node string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.offline = append(f.offline, user+"/"+device+"@"+node)
	f.calls = append(f.calls, "-"+user+"/"+device+"@"+node)
	return nil
}

// last returns the last Online or Offline call ("" if none).
func (f *fakePresence) last() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) == 0 {
		return ""
	}
	return f.calls[len(f.calls)-1]
}

func (f *fakePresence) offlines() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.offline)
}

// fakeLocal records the fan-out index's calls, as "+user" and "-user";
// DeviceOnline fails for fail.
type fakeLocal struct {
	mu    sync.Mutex
	fail  string
	calls []string
}

func (f *fakeLocal) DeviceOnline(ctx context.Context, user string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "+"+user)
	if user == f.fail {
		return errors.New("store away")
	}
	if _, ok := ctx.Deadline(); !ok {
		return errors.New("no deadline")
	}
	return nil
}

func (f *fakeLocal) DeviceOffline(user string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "-"+user)
}

func (f *fakeLocal) took() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.calls
	f.calls = nil
	return out
}

// TestPresence: a session established records the device online on this
// node, ends its connection on the node it was on before, and counts it in
// the fan-out index (even when the store or the hot state fails); a
// disconnect undoes both. The server's inline client is nobody.
func TestPresence(t *testing.T) {
	ps := &fakePresence{prev: map[string]string{"alice/phone": "node-2", "bob/tab": "node-1", "dave/x": "down"}}
	local := &fakeLocal{fail: "carol"}
	var elsewhere []string
	h := new(hooks.Presence)
	if err := h.Init(hooks.PresenceConfig{State: ps, Local: local, Node: "node-1", Logger: slog.New(slog.DiscardHandler),
		Elsewhere: func(node, id string) { elsewhere = append(elsewhere, id+"@"+node) }}); err != nil {
		t.Fatal(err)
	}
	before := time.Now().UnixMilli()
	for _, id := range []string{"alice/phone", "bob/tab", "carol/web", "dave/x"} {
		user, _, _ := strings.Cut(id, "/")
		h.OnSessionEstablished(client(id, user, 5), packets.Packet{})
	}
	if len(ps.online) != 4 {
		t.Fatalf("Online calls %+v", ps.online)
	}
	if d := ps.online[0]; d.User != "alice" || d.Device != "phone" || d.Node != "node-1" || d.Since < before {
		t.Errorf("Online(%+v)", d)
	}
	if !slices.Equal(elsewhere, []string{"alice/phone@node-2"}) {
		t.Errorf("ended elsewhere: %v, want alice/phone on node-2 only (bob was here already)", elsewhere)
	}
	if got := local.took(); !slices.Equal(got, []string{"+alice", "+bob", "+carol", "+dave"}) {
		t.Errorf("fan-out index: %v", got)
	}

	h.OnDisconnect(client("alice/phone", "alice", 5), nil, false)
	if got := local.took(); !slices.Equal(got, []string{"-alice"}) {
		t.Errorf("fan-out index after a disconnect: %v", got)
	}
	if got := ps.offlines(); !slices.Equal(got, []string{"alice/phone@node-1"}) {
		t.Errorf("Offline calls %v", got)
	}

	inline := client("inline/x", "", 5)
	inline.Net.Inline = true
	h.OnSessionEstablished(inline, packets.Packet{})
	h.OnDisconnect(inline, nil, false)
	h.OnSessionEstablished(client("no-device", "", 5), packets.Packet{})
	if len(ps.online) != 4 || len(ps.offlines()) != 1 || len(local.took()) != 0 {
		t.Errorf("the inline client or a bad ID was recorded: %+v %v", ps.online, ps.offlines())
	}
	if err := new(hooks.Presence).Init(hooks.PresenceConfig{Node: "n"}); err == nil {
		t.Error("Init without State accepted")
	}
}

// TestPresenceTakeover: when a second connection of a device takes the
// session over, the old connection's disconnect leaves the device online
// (it is still connected), while the fan-out index counts each connection.
// Real mochi broker: only it marks a client taken over.
func TestPresenceTakeover(t *testing.T) {
	ps, local := &fakePresence{}, &fakeLocal{}
	b := broker.New(broker.Options{MQTTAddr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
	for _, h := range []struct {
		h   mqtt.Hook
		cfg any
	}{{new(letIn), nil}, {new(hooks.Presence), hooks.PresenceConfig{State: ps, Local: local, Node: "n1"}}} {
		if err := b.AddHook(h.h, h.cfg); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })

	first := dial(t, b.MQTTAddr(), "alice", "phone", 5)
	dial(t, b.MQTTAddr(), "alice", "phone", 5) // takes the session over
	var calls []string
	wait.ForErr(t, "3 fan-out index calls", 5*time.Second, func() error { return took(local, &calls, 3) })
	slices.Sort(calls) // mochi ends the old connection before or after the new one is established
	if !slices.Equal(calls, []string{"+alice", "+alice", "-alice"}) {
		t.Fatalf("fan-out index: %v", calls)
	}
	// mochi may end the old connection (its OnDisconnect) before it marks
	// it taken over; the hook then records it offline, but always before
	// the new connection's OnSessionEstablished records it online again:
	// the device must end online.
	if got := ps.last(); got != "+alice/phone@n1" {
		t.Fatalf("after the takeover the last presence call is %q, want the new connection's online (calls %v)", got, ps.calls)
	}
	offlinesBefore := len(ps.offlines())
	_ = first.conn.Close() // already ended by the takeover: no second disconnect
	if !b.Kick("alice/phone", packets.ErrAdministrativeAction) {
		t.Fatal("the second connection is not there to kick")
	}
	calls = nil
	wait.ForErr(t, "1 fan-out index call", 5*time.Second, func() error { return took(local, &calls, 1) })
	wait.For(t, "the last connection's disconnect to mark the device offline", 5*time.Second, func() bool { return len(ps.offlines()) > offlinesBefore })
	if got := ps.offlines()[offlinesBefore:]; !slices.Equal(got, []string{"alice/phone@n1"}) {
		t.Fatalf("Offline calls after the kick %v", got)
	}
}

// took adds local's new calls to got; an error until it holds n.
func took(local *fakeLocal, got *[]string, n int) error {
	if *got = append(*got, local.took()...); len(*got) < n {
		return fmt.Errorf("fan-out index calls %v", *got)
	}
	return nil
}
