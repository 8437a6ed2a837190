package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/wire"
)

// TestMosquittoClients: mosquitto_sub (MQTT 3.1.1) receives what
// mosquitto_pub (MQTT 5) sends through im/send, and their refusals carry
// the CONNACK codes of docs/protocol.md#identity.
func TestMosquittoClients(t *testing.T) {
	sub := requireTool(t, "mosquitto_sub")
	pub := requireTool(t, "mosquitto_pub")
	s := testserver.Start(t)
	host, port := hostPort(s.MQTT)
	bobTok := account(t, s, "bob", "cli")
	account(t, s, "alice", "cli")

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	subCmd := exec.CommandContext(ctx, sub, "-h", host, "-p", port, "-V", "mqttv311", "-i", "bob/cli", "-u", "bob", "-P", bobTok,
		"-q", "1", "-t", wire.InboxTopic("bob"), "-C", "1")
	var out bytes.Buffer
	subCmd.Stdout, subCmd.Stderr = &out, &out
	if err := subCmd.Start(); err != nil {
		t.Fatal(err)
	}
	wait.For(t, "mosquitto_sub subscribed", 10*time.Second, func() bool { return subscribed(s, "bob/cli", wire.InboxTopic("bob")) })
	msg := `{"cmid":"m-1","to":"bob","type":"text","body":"from mosquitto"}`
	if b, err := exec.CommandContext(ctx, pub, "-h", host, "-p", port, "-V", "mqttv5", "-i", "alice/cli", "-u", "alice", "-P", "secret-alice",
		"-q", "1", "-t", wire.TopicSend, "-m", msg).CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub: %v %s", err, b)
	}
	if err := subCmd.Wait(); err != nil {
		t.Fatalf("mosquitto_sub: %v %s", err, out.Bytes())
	}
	var got wire.Msg
	mustUnmarshal(t, bytes.TrimSpace(out.Bytes()), &got)
	if got.Kind != "msg" || got.From != "alice" || got.Body != "from mosquitto" || got.Ver != 1 {
		t.Fatalf("mosquitto_sub got %+v", got)
	}

	for _, c := range []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"v5 client ID of another user", []string{"-V", "mqttv5", "-i", "bob/x", "-u", "alice", "-P", "secret-alice"}, "Client Identifier not valid"},
		{"v3 client ID of another user", []string{"-V", "mqttv311", "-i", "bob/x", "-u", "alice", "-P", "secret-alice"}, "identifier rejected"},
		{"v5 wrong password", []string{"-V", "mqttv5", "-i", "alice/x", "-u", "alice", "-P", "nope"}, "Bad User Name or Password"},
		{"v3 wrong password", []string{"-V", "mqttv311", "-i", "alice/x", "-u", "alice", "-P", "nope"}, "bad user name or password"},
	} {
		args := append([]string{"-h", host, "-p", port, "-q", "1", "-t", wire.TopicSend, "-m", msg}, c.args...)
		b, err := exec.CommandContext(ctx, pub, args...).CombinedOutput()
		if err == nil || !strings.Contains(string(b), c.wantErr) {
			t.Errorf("%s: err %v, output %q, want %q", c.name, err, b, c.wantErr)
		}
	}
	// None of the refused publishes was stored.
	var sync wire.Sync
	httpJSON(t, "GET", s.HTTP+"/v1/sync", bobTok, nil, &sync)
	if raw, _ := json.Marshal(sync.Items); len(sync.Items) != 1 {
		t.Fatalf("bob's messages: %s", raw)
	}
}
