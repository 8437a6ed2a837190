package bench

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imqtt/imqtt/bench/baseline"
	"github.com/imqtt/imqtt/broker"
	"github.com/imqtt/imqtt/internal/daemon"
	"github.com/imqtt/imqtt/internal/testserver"
)

// The scenarios end to end, tiny: a real imqttd (internal/testserver) or
// bare mochi (the baseline) on loopback, the bench's own clients.

func imqttd(t *testing.T) Target {
	s := testserver.Start(t)
	return Target{Server: s.HTTP, MQTT: s.MQTT}
}

func mochi(t *testing.T) Target {
	b, err := baseline.StartMochi("127.0.0.1:0", broker.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return Target{MQTT: b.MQTTAddr(), Plain: true, Label: LabelMochi}
}

// passed fails the test unless r passed with want deliveries.
func passed(t *testing.T, r *Result, err error, want int64) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	if r.Err() != nil || r.Delivered != want || r.Acked != want || r.Lost != 0 || r.Duplicated != 0 {
		var b strings.Builder
		_ = r.WriteTable(&b)
		t.Fatalf("want %d delivered, no problems; got\n%s", want, b.String())
	}
}

func TestP2PImqttd(t *testing.T) {
	r, err := P2P(context.Background(), P2POptions{Target: imqttd(t), Pairs: 2, Messages: 200, InFlight: 8})
	passed(t, r, err, 200)
	if r.Latency == nil || r.Latency.Count != 200 {
		t.Fatalf("latency samples: %+v", r.Latency)
	}
	if r.Target != LabelImqttd || r.Extra["store_commits"] == 0 {
		t.Fatalf("target %q, store commits %v", r.Target, r.Extra["store_commits"])
	}
}

func TestP2PPlainMochi(t *testing.T) {
	r, err := P2P(context.Background(), P2POptions{Target: mochi(t), Pairs: 2, Messages: 200, InFlight: 8})
	passed(t, r, err, 200)
	if r.Synced != 0 || r.Target != LabelMochi {
		t.Fatalf("plain run: %+v", r)
	}
}

func TestP2PAtARate(t *testing.T) {
	// A fixed rate: no timing is asserted (the machine may be busy), only
	// that every message is accounted for, and that a shortfall, if any, is
	// the only problem and is reported.
	r, err := P2P(context.Background(), P2POptions{Target: imqttd(t), Pairs: 2, Messages: 60, Rate: 200})
	if err != nil {
		t.Fatal(err)
	}
	if r.Delivered != 60 || r.Lost != 0 || r.Duplicated != 0 || r.TargetRate != 200 {
		t.Fatalf("%+v", r)
	}
	for _, p := range r.Problems {
		if !strings.HasPrefix(p, "target load not reached") {
			t.Fatalf("problem %q", p)
		}
	}
}

// TestP2PSessions: the receivers are plain MQTT devices with persistent
// sessions, so every message reaches them at QoS 1 from imqttd's session
// (none by the SDK's sync), and the result is its own case.
func TestP2PSessions(t *testing.T) {
	tg := imqttd(t)
	r, err := P2P(context.Background(), P2POptions{Target: tg, Pairs: 2, Messages: 200, InFlight: 8, Sessions: true})
	passed(t, r, err, 200)
	if r.Synced != 0 || r.Extra["server_sessions_active"] != 2 || !strings.HasSuffix(r.Case, " receivers=qos1-sessions") {
		t.Fatalf("synced %d, sessions %v, case %q", r.Synced, r.Extra["server_sessions_active"], r.Case)
	}
	clean, err := P2P(context.Background(), P2POptions{Target: tg, Pairs: 2, Messages: 20, InFlight: 8})
	passed(t, clean, err, 20)
	if clean.Case == r.Case {
		t.Fatalf("clean and session runs share the case %q: compare would set them side by side", r.Case)
	}
	if _, err := P2P(context.Background(), P2POptions{Target: mochi(t), Pairs: 1, Messages: 1, Sessions: true}); err == nil {
		t.Fatal("sessions against a plain broker: no error")
	}
}

// TestReplay: devices with persistent sessions miss messages, reconnect
// at once and get each once, in order, replayed by imqttd.
func TestReplay(t *testing.T) {
	tg := imqttd(t)
	r, err := Replay(context.Background(), ReplayOptions{Target: tg, Devices: 3, Missed: 40, InFlight: 4, PerIP: 2, Timeout: 30 * time.Second})
	passed(t, r, err, 120)
	var b strings.Builder
	_ = r.WriteTable(&b)
	t.Log(b.String())
	if r.Extra["devices_complete"] != 3 || r.Extra["server_session_replayed"] < 120 || r.Extra["events_per_s"] <= 0 ||
		r.Extra["device_events_per_s_p50"] <= 0 || r.Latency == nil || r.Latency.Count != 3 {
		t.Fatalf("%+v", r)
	}
	if r.Case != "devices=3 missed=40 concurrency=3 size=64" {
		t.Fatalf("case %q", r.Case)
	}
}

// TestReplayPastTheBound: more missed than imqttd replays in one reconnect
// is reported, with the resync events that replaced the replay.
func TestReplayPastTheBound(t *testing.T) {
	s := testserver.Start(t, func(c *daemon.Config) { c.Sessions.ReplayMax = 10 })
	r, err := Replay(context.Background(), ReplayOptions{Target: Target{Server: s.HTTP, MQTT: s.MQTT}, Missed: 30, Timeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if r.Err() == nil || r.Extra["resyncs"] == 0 || r.Lost == 0 || !slices.ContainsFunc(r.Problems, func(p string) bool {
		return strings.Contains(p, "resync events")
	}) {
		t.Fatalf("%+v", r)
	}
}

func TestConns(t *testing.T) {
	for _, tg := range []Target{imqttd(t), mochi(t)} {
		r, err := Conns(context.Background(), ConnsOptions{Target: tg, Conns: 30, Users: 4, Concurrency: 8,
			ServerPID: os.Getpid(), Settle: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if r.Err() != nil || r.Extra["conns"] != 30 || r.Extra["conns_failed"] != 0 {
			t.Fatalf("%s: %+v", tg.label(), r)
		}
		if _, ok := r.Extra["server_kib_per_conn"]; !ok {
			t.Fatalf("%s: no memory figure: %+v", tg.label(), r.Extra)
		}
		if !tg.Plain && r.Extra["server_connections"] < 30 {
			t.Fatalf("server counted %v connections", r.Extra["server_connections"])
		}
	}
}

// TestConnsSessions: the idle connections hold persistent sessions
// (imqttd counts them active), and the result is its own case.
func TestConnsSessions(t *testing.T) {
	tg := imqttd(t)
	r, err := Conns(context.Background(), ConnsOptions{Target: tg, Conns: 12, Users: 3, Concurrency: 4,
		ServerPID: os.Getpid(), Settle: time.Millisecond, Sessions: true})
	if err != nil {
		t.Fatal(err)
	}
	if r.Err() != nil || r.Extra["conns"] != 12 || r.Case != "conns=12 sessions" {
		t.Fatalf("%+v", r)
	}
	if r.Extra["server_sessions_active"] != 12 {
		t.Fatalf("imqttd counts %v active sessions, want 12", r.Extra["server_sessions_active"])
	}
}

func TestSync(t *testing.T) {
	r, err := Sync(context.Background(), SyncOptions{Target: imqttd(t), Messages: 300, SyncLimit: 100})
	passed(t, r, err, 300)
	var b strings.Builder
	_ = r.WriteTable(&b)
	t.Log(b.String())
	if r.Synced != 300 || r.Extra["http_sync_msgs_per_s"] == 0 {
		t.Fatalf("synced %d, extra %v", r.Synced, r.Extra)
	}
}

func TestGroup(t *testing.T) {
	r, err := Group(context.Background(), GroupOptions{Target: imqttd(t), Members: 8, Online: 4, Messages: 10, InFlight: 2})
	passed(t, r, err, 40)
	if r.Extra["messages"] != 10 {
		t.Fatalf("%+v", r.Extra)
	}
}

// TestGroupRecoversLiveDrops: members miss live messages (member 0 every
// seventh, member 1 all from the 50th, as full client queues would drop
// them); each recovers them by its own group sync from its cursor, and
// the run counts every message once: a message a member holds above its
// gap is not a duplicate.
func TestGroupRecoversLiveDrops(t *testing.T) {
	r, err := Group(context.Background(), GroupOptions{Target: imqttd(t), Members: 8, Online: 4, Messages: 100, InFlight: 8,
		Drain: time.Second, dropLive: func(j int, n uint64) bool { return j == 0 && n%7 == 0 || j == 1 && n >= 50 }})
	passed(t, r, err, 400)
	if want := int64(100/7 + 51); r.Synced != want {
		t.Fatalf("synced %d, want %d", r.Synced, want)
	}
	if note := r.Notes[len(r.Notes)-1]; !strings.HasPrefix(note, "every online member got every message exactly once") {
		t.Fatalf("verdict %q", note)
	}
}

// TestGroupVerdict: a delivery still missing after recovery, or a
// duplicate, fails the run (imqtt bench exits non-zero) and says so.
func TestGroupVerdict(t *testing.T) {
	tr := NewTracker(2)
	now := time.Now()
	for k := range 3 {
		tr.Ack(0, k)
		tr.Ack(1, k)
		tr.Deliver(0, k, now, now, false)
	}
	tr.Deliver(1, 0, now, now, false)
	tr.Deliver(1, 1, now, now, true)
	r := &Result{Scenario: "group", Target: LabelImqttd, Counts: tr.Counts()}
	r.checkMessages()
	note := groupVerdict(tr, 2, 3)
	if r.Err() == nil || !strings.HasPrefix(note, "NOT every online member") || !strings.Contains(note, "1 deliveries lost after recovery (1 of 2 members short)") {
		t.Fatalf("one lost: err %v, verdict %q", r.Err(), note)
	}
	tr.Deliver(1, 2, now, now, true)
	tr.Deliver(0, 2, now, now, false)
	r = &Result{Scenario: "group", Target: LabelImqttd, Counts: tr.Counts()}
	r.checkMessages()
	if note := groupVerdict(tr, 2, 3); r.Err() == nil || !strings.Contains(note, "0 deliveries lost after recovery (0 of 2 members short), 1 duplicates") {
		t.Fatalf("one duplicate: err %v, verdict %q", r.Err(), note)
	}
}

func TestUnreachable(t *testing.T) {
	ctx := context.Background()
	dead := Target{Server: "http://127.0.0.1:1", MQTT: "127.0.0.1:1"}
	plain := Target{MQTT: "127.0.0.1:1", Plain: true}
	runs := map[string]func() error{
		"p2p":         func() error { _, err := P2P(ctx, P2POptions{Target: dead, Pairs: 1, Messages: 1}); return err },
		"p2p plain":   func() error { _, err := P2P(ctx, P2POptions{Target: plain, Pairs: 1, Messages: 1}); return err },
		"conns":       func() error { _, err := Conns(ctx, ConnsOptions{Target: dead, Conns: 1}); return err },
		"conns plain": func() error { _, err := Conns(ctx, ConnsOptions{Target: plain, Conns: 1}); return err },
		"sync":        func() error { _, err := Sync(ctx, SyncOptions{Target: dead, Messages: 1}); return err },
		"group":       func() error { _, err := Group(ctx, GroupOptions{Target: dead, Messages: 1}); return err },
		"replay":      func() error { _, err := Replay(ctx, ReplayOptions{Target: dead, Missed: 1}); return err },
	}
	for _, name := range slices.Sorted(mapsKeys(runs)) {
		if err := runs[name](); !errors.Is(err, ErrUnreachable) {
			t.Errorf("%s: %v, want ErrUnreachable", name, err)
		}
	}
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}
