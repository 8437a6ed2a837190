package e2e

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/wire"
)

// TestInteropMosquittoV5Properties: an MQTT 5 send carrying user
// properties, a response topic, correlation data, a content type, a payload
// format and an expiry is accepted and acked like any other, and its payload
// is stored untouched. The server consumes uplink publishes (nothing routes
// them on), so the properties have nowhere to pass through to: replies come
// on the device topic, which this client names as its response topic.
// QoS 2 publishes, from MQTT 5 and 3.1.1 clients, complete their
// PUBREC/PUBREL/PUBCOMP exchange and are stored once each.
func TestInteropMosquittoV5Properties(t *testing.T) {
	sub := requireTool(t, "mosquitto_sub")
	pub := requireTool(t, "mosquitto_pub")
	s := testserver.Start(t)
	host, port := hostPort(s.MQTT)
	account(t, s, "alice", "cli")
	bobTok := account(t, s, "bob", "cli")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	replies := wire.DeviceTopic("alice", "pub")
	watch := exec.CommandContext(ctx, sub, "-h", host, "-p", port, "-V", "mqttv5", "-i", "alice/watch", "-u", "alice", "-P", "secret-alice",
		"-q", "1", "-t", replies, "-C", "1")
	var out bytes.Buffer
	watch.Stdout, watch.Stderr = &out, &out
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	wait.For(t, "mosquitto_sub subscribed", 10*time.Second, func() bool { return subscribed(s, "alice/watch", replies) })

	const payload = `{"cmid":"v5-1","to":"bob","type":"text","body":"with properties","meta":{"k":[1,2]}}`
	args := []string{"-h", host, "-p", port, "-V", "mqttv5", "-i", "alice/pub", "-u", "alice", "-P", "secret-alice",
		"-q", "1", "-t", wire.TopicSend, "-m", payload,
		"-D", "publish", "user-property", "trace", "abc",
		"-D", "publish", "user-property", "app", "interop",
		"-D", "publish", "response-topic", replies,
		"-D", "publish", "correlation-data", "c-1",
		"-D", "publish", "content-type", "application/json",
		"-D", "publish", "payload-format-indicator", "1",
		"-D", "publish", "message-expiry-interval", "60"}
	if b, err := exec.CommandContext(ctx, pub, args...).CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub with MQTT 5 properties: %v %s", err, b) // a PUBACK reason >= 0x80 fails it
	}
	if err := watch.Wait(); err != nil {
		t.Fatalf("mosquitto_sub: %v %s", err, out.Bytes())
	}
	var ack wire.Ack
	mustUnmarshal(t, bytes.TrimSpace(out.Bytes()), &ack)
	if ack.Kind != wire.KindAck || ack.CMID != "v5-1" || ack.ID == "" {
		t.Fatalf("reply %s", out.Bytes())
	}
	var sync wire.Sync
	httpJSON(t, "GET", s.HTTP+"/v1/sync", bobTok, nil, &sync)
	if len(sync.Items) != 1 {
		t.Fatalf("bob's messages: %+v", sync.Items)
	}
	if m := sync.Items[0]; m.ID != ack.ID || m.Body != "with properties" || string(m.Meta) != `{"k":[1,2]}` || m.CMID != "v5-1" {
		t.Fatalf("stored %+v", m)
	}

	for _, v := range []string{"mqttv5", "mqttv311"} {
		cmid := "q2-" + v
		b, err := exec.CommandContext(ctx, pub, "-h", host, "-p", port, "-V", v, "-i", "alice/pub", "-u", "alice", "-P", "secret-alice",
			"-q", "2", "-t", wire.TopicSend, "-m", strings.Replace(payload, "v5-1", cmid, 1)).CombinedOutput()
		if err != nil {
			t.Fatalf("QoS 2 publish over %s: %v %s", v, err, b)
		}
	}
	wait.For(t, "both QoS 2 sends stored", 10*time.Second, func() bool {
		httpJSON(t, "GET", s.HTTP+"/v1/sync", bobTok, nil, &sync)
		return len(sync.Items) == 3
	})
	if sync.Items[1].CMID != "q2-mqttv5" || sync.Items[2].CMID != "q2-mqttv311" {
		t.Fatalf("stored %+v", sync.Items)
	}
}
