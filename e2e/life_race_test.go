package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/wire"
)

// recallProber plays bob's devices while alice recalls: in a loop, a
// device reconnects and syncs (im/sync from 0), and the HTTP sync, history
// and conversation list are read. What a probe returns about a message
// whose recall was acked before the probe began must carry no body.
type recallProber struct {
	s     *testserver.Server
	token string

	mu       sync.Mutex
	acked    map[string]bool // message IDs whose recall alice has been acked
	problems []string
	probes   int
	straddle int // probes in flight while a recall was acked
}

// ack records that the recall of id is acked: probes from now on check it.
func (p *recallProber) ack(id string) {
	p.mu.Lock()
	p.acked[id] = true
	p.mu.Unlock()
}

func (p *recallProber) snapshot() map[string]bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]bool, len(p.acked))
	for id := range p.acked {
		out[id] = true
	}
	return out
}

func (p *recallProber) fail(format string, args ...any) {
	p.mu.Lock()
	p.problems = append(p.problems, fmt.Sprintf(format, args...))
	p.mu.Unlock()
}

// check reports any message of acked in ms that still shows its body.
func (p *recallProber) check(where string, acked map[string]bool, ms ...wire.Msg) {
	for _, m := range ms {
		if acked[m.ID] && (m.Kind == wire.KindMsg || m.Kind == "") && (m.Body != "" || !m.Recalled) {
			p.fail("%s after the recall's ack: %+v", where, m)
		}
	}
}

// probe is one round of bob's reads, reconnecting his device dev.
func (p *recallProber) probe(dev string) {
	acked := p.snapshot()
	// A device reconnecting and syncing over MQTT.
	batches := make(chan []byte, 4)
	user := "bob"
	opts := paho.NewClientOptions().AddBroker("tcp://" + p.s.MQTT).SetClientID(user + "/" + dev).
		SetUsername(user).SetPassword("secret-bob").SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false)
	opts.SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
		if m.Topic() == wire.DeviceTopic(user, dev) {
			batches <- append([]byte(nil), m.Payload()...)
		}
	})
	c := paho.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		p.fail("connect: %v", tok.Error())
		return
	}
	defer c.Disconnect(0)
	if tok := c.Subscribe(wire.DeviceTopic(user, dev), 1, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		p.fail("subscribe: %v", tok.Error())
		return
	}
	req, _ := json.Marshal(wire.SyncRequest{Since: 0, Limit: 1000})
	if tok := c.Publish(wire.TopicSync, 1, false, req); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		p.fail("publish sync: %v", tok.Error())
		return
	}
	select {
	case raw := <-batches:
		var b wire.Sync
		if err := json.Unmarshal(raw, &b); err != nil || b.Kind != wire.KindSync {
			p.fail("im/sync answered %s", raw)
			return
		}
		p.check("im/sync", acked, b.Items...)
	case <-time.After(10 * time.Second):
		p.fail("no sync batch")
		return
	}
	// And over HTTP.
	var b wire.Sync
	if p.get("/v1/sync?since=0&limit=1000", &b) {
		p.check("GET /v1/sync", acked, b.Items...)
	}
	var h wire.History
	if p.get("/v1/conversations/alice/messages", &h) {
		p.check("history", acked, h.Messages...)
	}
	var cs wire.Conversations
	if p.get("/v1/conversations", &cs) {
		for _, c := range cs.Conversations {
			if c.Last != nil {
				p.check("the list's last", acked, *c.Last)
			}
		}
	}
	p.mu.Lock()
	p.probes++
	if len(p.acked) > len(acked) {
		p.straddle++
	}
	p.mu.Unlock()
}

func (p *recallProber) get(path string, out any) bool {
	req, _ := http.NewRequest("GET", p.s.HTTP+path, nil)
	req.Header.Set("Authorization", "Bearer "+p.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.fail("GET %s: %v", path, err)
		return false
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || json.Unmarshal(raw, out) != nil {
		p.fail("GET %s: %d %s", path, resp.StatusCode, raw)
		return false
	}
	return true
}

// TestLifeRecallRace: "a recall racing with the recipient's sync, or with
// a device reconnecting, never leaves the body visible anywhere once the
// recall is acked". Round after round alice sends and recalls while bob's
// devices reconnect and sync in a loop; no probe begun after the recall's
// ack sees the body (im/sync, GET /v1/sync, history, the list's last).
// bob's live connection gets each message and then its recall, in order.
func TestLifeRecallRace(t *testing.T) {
	s := testserver.Start(t)
	aliceTok := account(t, s, "alice", "phone")
	bobTok := account(t, s, "bob", "phone")
	alice := mqttActor{connect(t, s.MQTT, "alice", "phone", aliceTok)}
	bobLive := connect(t, s.MQTT, "bob", "phone", bobTok)
	p := &recallProber{s: s, token: bobTok, acked: map[string]bool{}}
	ok := mustOK(t)

	const rounds = 30
	ids := make([]string, 0, rounds)
	for i := range rounds {
		m := ok(alice.send(wire.Send{CMID: fmt.Sprintf("m%d", i), To: "bob", Type: "text", Body: fmt.Sprintf("secret body %d", i)}))
		ids = append(ids, m.ID)
		// Three of bob's devices probe at once, so that probes are in
		// flight while the recall is taken, stored and acked.
		stop, started := make(chan struct{}), make(chan struct{})
		var wg sync.WaitGroup
		for g := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				dev := fmt.Sprintf("tab%d", g)
				for n := 0; ; n++ {
					p.probe(dev)
					if g == 0 && n == 0 {
						close(started)
					}
					select {
					case <-stop:
						p.probe(dev) // one more, wholly after the ack
						return
					default:
					}
				}
			}()
		}
		<-started
		ok(alice.recall(fmt.Sprintf("r%d", i), m.ID))
		p.ack(m.ID)
		close(stop)
		wg.Wait()
	}
	p.mu.Lock()
	problems, probes, straddle := p.problems, p.probes, p.straddle
	p.mu.Unlock()
	for _, pr := range problems {
		t.Error(pr)
	}
	t.Logf("%d probes over %d rounds, %d of them in flight as a recall was acked", probes, rounds, straddle)
	if straddle == 0 {
		t.Errorf("no probe raced a recall")
	}

	// The live stream: each message, then its recall, once each.
	wait.For(t, "bob's live device gets every recall", 10*time.Second, func() bool { return len(bobLive.find(wire.KindRecall, "")) == rounds })
	evs := bobLive.events()
	for _, id := range ids {
		msgAt, recallAt := -1, -1
		for i, ev := range evs {
			switch {
			case ev.ID != id:
			case ev.Kind == wire.KindMsg && msgAt < 0:
				msgAt = i
			case ev.Kind == wire.KindRecall && recallAt < 0:
				recallAt = i
			}
		}
		if msgAt < 0 || recallAt < msgAt {
			t.Errorf("message %s at %d, its recall at %d on bob's live stream", id, msgAt, recallAt)
		}
	}
}
