package e2e

import (
	"bytes"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/wire"
)

// TestBadSends: each malformed send gets an error event with a code on the
// device topic, nothing is stored, and the connection stays usable.
func TestBadSends(t *testing.T) {
	s := testserver.Start(t)
	account(t, s, "bob", "phone")
	alice := connect(t, s.MQTT, "alice", "phone", account(t, s, "alice", "phone"))

	cases := []struct {
		name    string
		payload any
		code    string
	}{
		{"malformed JSON", []byte(`{"cmid":"x",`), wire.CodeBadRequest},
		{"unknown type", wire.Send{CMID: "t1", To: "bob", Type: "sticker", Body: "x"}, wire.CodeBadType},
		{"missing to", wire.Send{CMID: "t2", Type: "text", Body: "x"}, wire.CodeMissingTo},
		{"missing cmid", wire.Send{To: "bob", Type: "text", Body: "x"}, wire.CodeMissingCMID},
		{"body over the limit", wire.Send{CMID: "t3", To: "bob", Type: "text", Body: strings.Repeat("x", 65<<10)}, wire.CodeTooLarge},
		{"no such user", wire.Send{CMID: "t4", To: "nobody", Type: "text", Body: "x"}, wire.CodeNoSuchUser},
		{"malformed user", wire.Send{CMID: "t5", To: "bad/user", Type: "text", Body: "x"}, wire.CodeNoSuchUser},
		{"group nobody is in", wire.Send{CMID: "t6", Group: "g1", Type: "text", Body: "x"}, wire.CodeNotMember},
	}
	for i, c := range cases {
		alice.publish(wire.TopicSend, c.payload)
		wait.For(t, c.name+" error", 10*time.Second, func() bool { return len(alice.directOf("error")) == i+1 })
		var e wire.Error
		mustUnmarshal(t, alice.directOf("error")[i], &e)
		if e.Code != c.code || e.Message == "" {
			t.Errorf("%s: error %+v, want code %s", c.name, e, c.code)
		}
	}
	// The connection stays; a good send still works, and it is bob's first message.
	ack, werr := alice.send("bob", "good", "still here")
	if werr != nil || ack.Ver != 1 {
		t.Fatalf("good send after bad ones: %+v %v", ack, werr)
	}
	var sync wire.Sync
	httpJSON(t, "GET", s.HTTP+"/v1/sync", login(t, s, "bob", "phone"), nil, &sync)
	if len(sync.Items) != 1 {
		t.Fatalf("bob has %d messages, want 1", len(sync.Items))
	}
}

// TestBadHTTP: the same faults over HTTP are 4xx with a JSON code.
func TestBadHTTP(t *testing.T) {
	s := testserver.Start(t)
	account(t, s, "bob", "phone")
	tok := account(t, s, "alice", "phone")
	for _, c := range []struct {
		name, method, path, token, body string
		status                          int
		code                            string
	}{
		{"malformed JSON", "POST", "/v1/messages", tok, `{"cmid":`, 400, wire.CodeBadRequest},
		{"unknown type", "POST", "/v1/messages", tok, `{"cmid":"a","to":"bob","type":"x","body":""}`, 400, wire.CodeBadType},
		{"missing to", "POST", "/v1/messages", tok, `{"cmid":"a","type":"text","body":""}`, 400, wire.CodeMissingTo},
		{"missing cmid", "POST", "/v1/messages", tok, `{"to":"bob","type":"text","body":""}`, 400, wire.CodeMissingCMID},
		{"no such user", "POST", "/v1/messages", tok, `{"cmid":"a","to":"carol","type":"text","body":""}`, 404, wire.CodeNoSuchUser},
		{"body over the request limit", "POST", "/v1/messages", tok, `{"cmid":"a","to":"bob","type":"text","body":"` + strings.Repeat("x", 300<<10) + `"}`, 413, wire.CodeTooLarge},
		{"no token", "POST", "/v1/messages", "", `{}`, 401, wire.CodeUnauthorized},
		{"bad token", "GET", "/v1/conversations", "not-a-token", ``, 401, wire.CodeUnauthorized},
		{"register twice", "POST", "/v1/users", "", `{"user":"bob","password":"secret-bob"}`, 409, wire.CodeExists},
		{"register bad user", "POST", "/v1/users", "", `{"user":"a b","password":"secret-x"}`, 400, wire.CodeBadRequest},
		{"wrong password", "POST", "/v1/sessions", "", `{"user":"bob","password":"nope","device":"d"}`, 401, wire.CodeUnauthorized},
		{"bad since", "GET", "/v1/sync?since=x", tok, ``, 400, wire.CodeBadRequest},
		{"read without conversation", "POST", "/v1/read", tok, `{"peer":"carol"}`, 404, wire.CodeNotFound},
		{"read bad upto", "POST", "/v1/read", tok, `{"peer":"bob","upto":"x"}`, 400, wire.CodeBadRequest},
		{"unknown endpoint", "GET", "/v1/nothing", tok, ``, 404, wire.CodeNotFound},
	} {
		req, _ := http.NewRequest(c.method, s.HTTP+c.path, bytes.NewBufferString(c.body))
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		var e wire.Error
		decodeBody(t, resp, &e)
		if resp.StatusCode != c.status || e.Code != c.code {
			t.Errorf("%s: %d %+v, want %d %s", c.name, resp.StatusCode, e, c.status, c.code)
		}
	}
}

// TestConnectRefusals: a client ID that does not match the username, a wrong
// password, a revoked token: refused at CONNACK with the right code, counted.
func TestConnectRefusals(t *testing.T) {
	s := testserver.Start(t)
	tok := account(t, s, "alice", "phone")
	account(t, s, "bob", "phone")
	try := func(clientID, user, pass string) error {
		opts := paho.NewClientOptions().AddBroker("tcp://" + s.MQTT).SetClientID(clientID).
			SetUsername(user).SetPassword(pass).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).
			SetProtocolVersion(4) // no fallback to 3.1: one attempt, one refusal
		c := paho.NewClient(opts)
		tk := c.Connect()
		tk.WaitTimeout(10 * time.Second)
		if tk.Error() == nil {
			c.Disconnect(0)
		}
		return tk.Error()
	}
	// 3.1.1 return codes: 2 identifier rejected, 4 bad user name or password.
	for _, c := range []struct {
		name, clientID, user, pass string
		want                       error
	}{
		{"client ID of another user", "bob/phone", "alice", tok, packetsErr(2)},
		{"client ID without device", "alice", "alice", tok, packetsErr(2)},
		{"wrong password", "alice/phone", "alice", "wrong", packetsErr(4)},
		{"another user's token", "bob/phone", "bob", tok, packetsErr(4)},
	} {
		if err := try(c.clientID, c.user, c.pass); err == nil || err.Error() != c.want.Error() {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	if err := try("alice/phone", "alice", tok); err != nil {
		t.Fatalf("good token refused: %v", err)
	}
	// Revoke the token: MQTT and HTTP refuse it from then on.
	if code := httpJSON(t, "DELETE", s.HTTP+"/v1/sessions/current", tok, nil, nil); code != 204 {
		t.Fatalf("revoke: %d", code)
	}
	if err := try("alice/phone", "alice", tok); err == nil || err.Error() != packetsErr(4).Error() {
		t.Fatalf("revoked token: %v", err)
	}
	if code := httpJSON(t, "GET", s.HTTP+"/v1/conversations", tok, nil, nil); code != 401 {
		t.Fatalf("revoked token over HTTP: %d", code)
	}
	m := s.Metrics()
	if n := testutil.ToFloat64(m.AuthFailures.WithLabelValues("client_id")); n != 2 {
		t.Errorf("client_id refusals counted %v, want 2", n)
	}
	if n := testutil.ToFloat64(m.AuthFailures.WithLabelValues("credentials")); n != 3 {
		t.Errorf("credential refusals counted %v, want 3", n)
	}
}

// TestACL: another user's topics, '#', publishing to an inbox: refused,
// nothing delivered, denials counted.
func TestACL(t *testing.T) {
	s := testserver.Start(t)
	bob := connect(t, s.MQTT, "bob", "phone", account(t, s, "bob", "phone"))
	alice := connect(t, s.MQTT, "alice", "phone", account(t, s, "alice", "phone"))
	var leaked []string
	for _, filter := range []string{"im/u/bob/inbox", "im/u/bob/#", "#", "im/u/+/inbox", "im/send", "$SYS/#", "im/u/bobby/inbox"} {
		tok := alice.c.Subscribe(filter, 1, func(_ paho.Client, m paho.Message) {
			if !strings.HasPrefix(m.Topic(), wire.UserPrefix("alice")) { // paho routes her own topics here too
				leaked = append(leaked, m.Topic())
			}
		})
		tok.WaitTimeout(5 * time.Second)
		if got := tok.(*paho.SubscribeToken).Result()[filter]; got != 0x80 {
			t.Errorf("subscribe %q granted %#x, want 0x80", filter, got)
		}
	}
	// QoS 0 publish to bob's inbox: dropped silently by MQTT rules, not delivered.
	alice.c.Publish(wire.InboxTopic("bob"), 0, false, `{"kind":"msg","body":"forged"}`).WaitTimeout(5 * time.Second)
	// A real message afterwards proves ordering: bob sees it and nothing forged.
	if _, werr := alice.send("bob", "real", "real"); werr != nil {
		t.Fatal(werr)
	}
	wait.For(t, "bob's real message", 10*time.Second, func() bool { return len(bob.msgs()) == 1 })
	if len(bob.inbox) != 1 || bob.msgs()[0].Body != "real" {
		t.Fatalf("bob's inbox: %q", bob.inbox)
	}
	// QoS 1 publish to a topic outside the uplink: a 3.1.1 client is disconnected.
	alice.c.Publish(wire.InboxTopic("bob"), 1, false, `{"forged":true}`).WaitTimeout(2 * time.Second)
	wait.For(t, "alice disconnected", 10*time.Second, func() bool { return !alice.c.IsConnectionOpen() })
	if len(leaked) != 0 {
		t.Fatalf("leaked to alice: %v", leaked)
	}
	m := s.Metrics()
	if n := testutil.ToFloat64(m.ACLDenials.WithLabelValues("subscribe")); n != 7 {
		t.Errorf("subscribe denials counted %v, want 7", n)
	}
	if n := testutil.ToFloat64(m.ACLDenials.WithLabelValues("publish")); n != 2 {
		t.Errorf("publish denials counted %v, want 2", n)
	}
}

// TestPacketTooLarge: a packet over the limit closes that connection only.
func TestPacketTooLarge(t *testing.T) {
	s := testserver.Start(t)
	bob := connect(t, s.MQTT, "bob", "phone", account(t, s, "bob", "phone"))
	alice := connect(t, s.MQTT, "alice", "phone", account(t, s, "alice", "phone"))
	alice.c.Publish(wire.TopicSend, 1, false, bytes.Repeat([]byte("x"), 300<<10)).WaitTimeout(2 * time.Second)
	wait.For(t, "alice disconnected", 10*time.Second, func() bool { return !alice.c.IsConnectionOpen() })

	// A raw client announcing a 200 MB packet is cut off without the server allocating it.
	conn, err := net.Dial("tcp", s.MQTT)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// CONNECT header claiming a remaining length of 200,000,000 bytes.
	conn.Write([]byte{0x10, 0x80, 0x84, 0xaf, 0x5f})
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Fatal("server answered a 200 MB CONNECT")
	}

	alice2 := connect(t, s.MQTT, "alice", "tablet", "secret-alice")
	if _, werr := alice2.send("bob", "after", "server is fine"); werr != nil {
		t.Fatal(werr)
	}
	wait.For(t, "bob gets it", 10*time.Second, func() bool { return len(bob.msgs()) == 1 })
}
