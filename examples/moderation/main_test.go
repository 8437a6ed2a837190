package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/imqtt/imqtt/chat"
	"github.com/imqtt/imqtt/internal/daemon"
	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/internal/webhook"
	"github.com/imqtt/imqtt/wire"
)

// TestModeration: the service behind a real imqttd, a real MQTT client
// sending: a spam term is refused (rejected, nothing delivered), a mask
// term is delivered masked, the rest as sent.
func TestModeration(t *testing.T) {
	secret := []byte("moderation-example-secret")
	backend := httptest.NewServer(New(secret, []string{"free money"}, []string{"darn"}))
	defer backend.Close()
	s := testserver.Start(t, func(c *daemon.Config) {
		c.Webhook = daemon.WebhookOptions{URL: backend.URL, Secret: secret, Events: map[string]bool{webhook.BeforeSend: true},
			Timeout: 5 * time.Second, Fail: chat.FailClosed}
	})
	alice := mqttUser(t, s, "alice")
	bob := mqttUser(t, s, "bob")

	var got []string
	if tok := bob.c.Subscribe(wire.InboxTopic("bob"), 1, func(_ paho.Client, m paho.Message) {
		var msg wire.Msg
		if json.Unmarshal(m.Payload(), &msg) == nil && msg.Kind == wire.KindMsg {
			bob.bodies <- msg.Body
		}
	}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	replies := make(chan []byte, 10)
	if tok := alice.c.Subscribe(wire.DeviceTopic("alice", "d"), 1, func(_ paho.Client, m paho.Message) {
		replies <- m.Payload()
	}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	for i, body := range []string{"hi bob", "FREE MONEY here", "darn, Darn it"} {
		raw, _ := json.Marshal(wire.Send{CMID: "c" + strconv.Itoa(i), To: "bob", Type: "text", Body: body})
		if tok := alice.c.Publish(wire.TopicSend, 1, false, raw); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
		var reply struct{ Kind, Code string }
		select {
		case r := <-replies:
			_ = json.Unmarshal(r, &reply)
		case <-time.After(10 * time.Second):
			t.Fatalf("no reply to %q", body)
		}
		if want := map[int]string{0: wire.KindAck, 1: wire.KindError, 2: wire.KindAck}[i]; reply.Kind != want {
			t.Errorf("%q: %s %s, want %s", body, reply.Kind, reply.Code, want)
		}
		if i == 1 && reply.Code != wire.CodeRejected {
			t.Errorf("spam: code %s", reply.Code)
		}
	}
	wait.For(t, "bob's two messages", 10*time.Second, func() bool {
		for len(got) < 2 {
			select {
			case b := <-bob.bodies:
				got = append(got, b)
			default:
				return false
			}
		}
		return true
	})
	if got[0] != "hi bob" || got[1] != "****, **** it" {
		t.Errorf("bob got %q", got)
	}
}

type mqttClient struct {
	c      paho.Client
	bodies chan string // msg bodies from the inbox, as they come
}

func mqttUser(t *testing.T, s *testserver.Server, user string) *mqttClient {
	t.Helper()
	body, _ := json.Marshal(wire.Register{User: user, Password: "secret-" + user})
	resp, err := http.Post(s.HTTP+"/v1/users", "application/json", strings.NewReader(string(body)))
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("register %s: %v %v", user, resp, err)
	}
	resp.Body.Close()
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + s.MQTT).SetClientID(user + "/d").
		SetUsername(user).SetPassword("secret-" + user).SetAutoReconnect(false))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", user, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(50) })
	return &mqttClient{c: c, bodies: make(chan string, 10)}
}

// TestRefusals: a wrong signature, an old timestamp and a replayed event
// are refused before any verdict.
func TestRefusals(t *testing.T) {
	secret := []byte("k")
	m := New(secret, nil, nil)
	body := []byte(`{"id":"evt-1","type":"message.before_send","data":{"type":"text","body":"x"}}`)
	post := func(key []byte, at time.Time) int {
		ts := strconv.FormatInt(at.Unix(), 10)
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(ts + "."))
		mac.Write(body)
		r := httptest.NewRequest("POST", "/", strings.NewReader(string(body)))
		r.Header.Set("X-Imqtt-Timestamp", ts)
		r.Header.Set("X-Imqtt-Signature", "v1="+hex.EncodeToString(mac.Sum(nil)))
		w := httptest.NewRecorder()
		m.ServeHTTP(w, r)
		return w.Code
	}
	if code := post([]byte("wrong"), time.Now()); code != http.StatusUnauthorized {
		t.Errorf("wrong key: %d", code)
	}
	if code := post(secret, time.Now().Add(-time.Hour)); code != http.StatusUnauthorized {
		t.Errorf("old timestamp: %d", code)
	}
	if code := post(secret, time.Now()); code != http.StatusOK {
		t.Errorf("good: %d", code)
	}
	if code := post(secret, time.Now()); code != http.StatusConflict {
		t.Errorf("replayed: %d", code)
	}
}
