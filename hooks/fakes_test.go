package hooks_test

import (
	"encoding/json"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/imqtt/imqtt/chat"
	"github.com/imqtt/imqtt/hooks"
	"github.com/imqtt/imqtt/internal/account"
	"github.com/imqtt/imqtt/internal/bans"
	"github.com/imqtt/imqtt/state"
	"github.com/imqtt/imqtt/wire"
)

// The server's implementations satisfy the hooks' interfaces unchanged.
var (
	_ hooks.Core             = (*chat.Service)(nil)
	_ hooks.LocalIndex       = (*chat.Service)(nil)
	_ hooks.Authenticator    = (*account.Service)(nil)
	_ hooks.BanChecker       = bans.List(nil)
	_ hooks.PresenceRecorder = state.Presence(nil)
	_ hooks.ConnackSender    = (*mqtt.Server)(nil)
)

// client is a mochi client as a hook sees it: an ID, a username, a protocol
// version and a remote address; no connection.
func client(id, user string, ver byte) *mqtt.Client {
	return &mqtt.Client{ID: id, Net: mqtt.ClientConnection{Remote: "10.0.0.7:4242"},
		Properties: mqtt.ClientProperties{Username: []byte(user), ProtocolVersion: ver}}
}

// published is one payload a hook published.
type published struct {
	topic   string
	payload []byte
}

// pubRec records what a hook publishes, in order.
type pubRec struct{ ch chan published }

func newPubRec() *pubRec { return &pubRec{ch: make(chan published, 256)} }

// PublishUser makes pubRec the delivery path's local sink (the broker).
func (p *pubRec) PublishUser(_, topic string, payload []byte) error { return p.Publish(topic, payload) }

func (p *pubRec) Publish(topic string, payload []byte) error {
	p.ch <- published{topic, append([]byte(nil), payload...)}
	return nil
}

// next returns the next publish, failing the test if none comes in 5s.
func (p *pubRec) next(t *testing.T) published {
	t.Helper()
	select {
	case m := <-p.ch:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("nothing published in 5s")
		return published{}
	}
}

// none fails the test if anything was published.
func (p *pubRec) none(t *testing.T) {
	t.Helper()
	select {
	case m := <-p.ch:
		t.Fatalf("unexpected publish on %s: %s", m.topic, m.payload)
	default:
	}
}

// nextError returns the next publish, which must be an error event on topic.
func (p *pubRec) nextError(t *testing.T, topic string) wire.Error {
	t.Helper()
	m := p.next(t)
	var e wire.Error
	if err := json.Unmarshal(m.payload, &e); err != nil || m.topic != topic || e.Kind != wire.KindError || e.Message == "" {
		t.Fatalf("want an error event on %s, got %s on %s (%v)", topic, m.payload, m.topic, err)
	}
	return e
}

// connacks records the CONNACKs a hook sends.
type connacks struct {
	mu    sync.Mutex
	codes []packets.Code
}

func (c *connacks) SendConnack(cl *mqtt.Client, reason packets.Code, present bool, properties *packets.Properties) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.codes = append(c.codes, reason)
	return nil
}

// take returns the CONNACKs sent since the last take.
func (c *connacks) take() []packets.Code {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.codes
	c.codes = nil
	return out
}

// count reads one child of a counter vector.
func count(v *prometheus.CounterVec, label string) float64 {
	return testutil.ToFloat64(v.WithLabelValues(label))
}
