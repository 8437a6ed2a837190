// Package e2e drives a real imqttd through real MQTT clients over real
// sockets: paho (Go), and mosquitto_pub/mosquitto_sub as clients nobody here wrote.
package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/wire"
)

// httpJSON sends a JSON request and decodes the reply into out (if non-nil),
// returning the status code.
func httpJSON(t testing.TB, method, url, token string, body, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: decode %q: %v", method, url, raw, err)
		}
	}
	return resp.StatusCode
}

// account registers user (password "secret-"+user) and logs in device.
func account(t testing.TB, s *testserver.Server, user, device string) string {
	t.Helper()
	if code := httpJSON(t, "POST", s.HTTP+"/v1/users", "", wire.Register{User: user, Password: "secret-" + user}, nil); code != 201 && code != 409 {
		t.Fatalf("register %s: %d", user, code)
	}
	return login(t, s, user, device)
}

func login(t testing.TB, s *testserver.Server, user, device string) string {
	t.Helper()
	var sess wire.Session
	if code := httpJSON(t, "POST", s.HTTP+"/v1/sessions", "", wire.Login{User: user, Password: "secret-" + user, Device: device}, &sess); code != 200 {
		t.Fatalf("login %s: %d", user, code)
	}
	return sess.Token
}

// device is one MQTT connection of a user, recording everything it receives.
type device struct {
	t            testing.TB
	user, device string
	c            paho.Client

	mu     sync.Mutex
	inbox  []json.RawMessage
	direct []json.RawMessage
}

// connect opens an MQTT 3.1.1 connection as user/dev with secret, subscribed
// to its inbox and device topics.
func connect(t testing.TB, addr, user, dev, secret string) *device {
	t.Helper()
	return connectClean(t, addr, user, dev, secret, true)
}

// connectSession is connect with a persistent session (MQTT 3.1.1
// cleanSession=0): its inbox comes at QoS 1, and what it missed is
// replayed when it connects again (docs/protocol.md#persistent-sessions).
func connectSession(t testing.TB, addr, user, dev, secret string) *device {
	t.Helper()
	return connectClean(t, addr, user, dev, secret, false)
}

func connectClean(t testing.TB, addr, user, dev, secret string, clean bool) *device {
	t.Helper()
	d := &device{t: t, user: user, device: dev}
	opts := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(user + "/" + dev).
		SetUsername(user).SetPassword(secret).SetCleanSession(clean).SetAutoReconnect(false).
		SetConnectRetry(false).SetOrderMatters(true).SetKeepAlive(30 * time.Second)
	d.c = paho.NewClient(opts)
	// The handlers are in place before the CONNECT: a resumed session's
	// events may come right after the CONNACK, before the SUBSCRIBEs, and
	// paho does not acknowledge a message no handler takes.
	lists := map[string]*[]json.RawMessage{wire.InboxTopic(user): &d.inbox, wire.DeviceTopic(user, dev): &d.direct}
	for topic, list := range lists {
		d.c.AddRoute(topic, func(_ paho.Client, m paho.Message) {
			d.mu.Lock()
			*list = append(*list, append(json.RawMessage(nil), m.Payload()...))
			d.mu.Unlock()
		})
	}
	if tok := d.c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s/%s: %v", user, dev, tok.Error())
	}
	t.Cleanup(func() { d.c.Disconnect(50) })
	for topic := range lists {
		tok := d.c.Subscribe(topic, 1, nil) // the route above takes its messages
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("subscribe %s: %v", topic, tok.Error())
		}
		if st := tok.(*paho.SubscribeToken).Result()[topic]; st != 1 {
			t.Fatalf("subscribe %s: granted %d", topic, st)
		}
	}
	return d
}

// publish sends v (or raw bytes) to topic at QoS 1 and waits for the PUBACK.
func (d *device) publish(topic string, v any) {
	d.t.Helper()
	payload, ok := v.([]byte)
	if !ok {
		var err error
		if payload, err = json.Marshal(v); err != nil {
			d.t.Fatal(err)
		}
	}
	if tok := d.c.Publish(topic, 1, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		d.t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// send publishes a text message and waits for its ack or error on the device topic.
func (d *device) send(to, cmid, body string) (wire.Ack, *wire.Error) {
	d.t.Helper()
	d.publish(wire.TopicSend, wire.Send{CMID: cmid, To: to, Type: "text", Body: body})
	return d.awaitReply(cmid)
}

// awaitReply waits for the ack or error of cmid (the latest one).
func (d *device) awaitReply(cmid string) (wire.Ack, *wire.Error) {
	d.t.Helper()
	return d.awaitReplyWithin(cmid, 10*time.Second)
}

// awaitReplyWithin is awaitReply with its own deadline.
func (d *device) awaitReplyWithin(cmid string, within time.Duration) (wire.Ack, *wire.Error) {
	d.t.Helper()
	var ack wire.Ack
	var werr *wire.Error
	wait.For(d.t, "reply to "+cmid, within, func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		for _, raw := range d.direct {
			var probe struct{ Kind, CMID string }
			_ = json.Unmarshal(raw, &probe)
			if probe.CMID != cmid {
				continue
			}
			switch probe.Kind {
			case wire.KindAck:
				_ = json.Unmarshal(raw, &ack)
				return true
			case wire.KindError:
				werr = &wire.Error{}
				_ = json.Unmarshal(raw, werr)
				return true
			}
		}
		return false
	})
	return ack, werr
}

// msgs returns the msg events received on the inbox so far.
func (d *device) msgs() []wire.Msg {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []wire.Msg
	for _, raw := range d.inbox {
		var m wire.Msg
		if json.Unmarshal(raw, &m) == nil && m.Kind == wire.KindMsg {
			out = append(out, m)
		}
	}
	return out
}

// directOf returns the device-topic payloads of one kind.
func (d *device) directOf(kind string) []json.RawMessage { return d.ofKind(&d.direct, kind) }

// inboxOf returns the inbox payloads of one kind.
func (d *device) inboxOf(kind string) []json.RawMessage { return d.ofKind(&d.inbox, kind) }

func (d *device) ofKind(list *[]json.RawMessage, kind string) []json.RawMessage {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []json.RawMessage
	for _, raw := range *list {
		var probe struct{ Kind string }
		if json.Unmarshal(raw, &probe) == nil && probe.Kind == kind {
			out = append(out, raw)
		}
	}
	return out
}

// requireTool finds a command-line tool. A missing tool fails the test, never
// skips it: ./scripts/test.sh installs every tool the tests use.
func requireTool(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: run ./scripts/test.sh, which installs it", name)
	}
	return path
}

func hostPort(addr string) (string, string) {
	i := strings.LastIndex(addr, ":")
	return addr[:i], addr[i+1:]
}

func mustUnmarshal(t testing.TB, raw []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("decode %q: %v", raw, err)
	}
}

func decodeBody(t testing.TB, resp *http.Response, v any) {
	t.Helper()
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("decode %q: %v", raw, err)
	}
}

// packetsErr is the error paho reports for a CONNACK return code.
func packetsErr(code byte) error { return packets.ConnErrors[code] }

// subscribed reports whether clientID is subscribed to topic on s.
func subscribed(s *testserver.Server, clientID, topic string) bool {
	return s.Broker().HasSubscriber(topic, clientID)
}
