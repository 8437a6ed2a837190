package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/imqtt/imqtt/client"
	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/wire"
)

// repoRoot is the module root (this file is in e2e/).
func repoRoot(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

// echoPeer is an SDK client that answers every message it gets.
func echoPeer(t *testing.T, s *testserver.Server, user string) {
	t.Helper()
	tok := account(t, s, user, "bot")
	var peer *client.Client
	ready := make(chan struct{})
	peer, err := client.Dial(context.Background(), client.Config{Server: s.HTTP, MQTT: s.MQTT, User: user, Device: "bot", Token: tok,
		OnEvent: func(ev client.Event) {
			<-ready
			if ev.Kind == wire.KindMsg && ev.Msg.From != user {
				_, _ = peer.Send(context.Background(), wire.Send{CMID: "re-" + ev.Msg.ID, To: ev.Msg.From, Type: "text", Body: "re: " + ev.Msg.Body})
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	close(ready)
	t.Cleanup(func() { peer.Close() })
}

// TestInterop: MQTT.js (TCP 3.1.1 and WebSocket 5) and Python paho (3.1.1
// and 5, with user properties and a response topic) log in, send, receive,
// sync, read and recall against imqttd, each step checked by its JSON output.
func TestInterop(t *testing.T) {
	node := requireTool(t, "node")
	python := "/usr/bin/python3" // Debian's, where python3-paho-mqtt installs
	if out, err := exec.Command(python, "-c", "import paho.mqtt").CombinedOutput(); err != nil {
		t.Fatalf("python3-paho-mqtt missing (./scripts/test.sh installs it): %v %s", err, out)
	}
	root := repoRoot(t)
	if _, err := os.Stat(filepath.Join(root, "test/node/node_modules/mqtt")); err != nil {
		t.Fatalf("MQTT.js missing: run ./scripts/test.sh (npm ci --prefix test/node): %v", err)
	}
	s := testserver.Start(t)
	echoPeer(t, s, "echo")
	host, port := hostPort(s.MQTT)
	cases := []struct {
		name string
		cmd  []string
		env  map[string]string
	}{
		{"mqtt.js tcp 3.1.1", []string{node, filepath.Join(root, "test/node/interop.mjs")}, map[string]string{"URL": "mqtt://" + s.MQTT, "PROTO": "4"}},
		{"mqtt.js tcp 5", []string{node, filepath.Join(root, "test/node/interop.mjs")}, map[string]string{"URL": "mqtt://" + s.MQTT, "PROTO": "5"}},
		{"mqtt.js websocket 3.1.1", []string{node, filepath.Join(root, "test/node/interop.mjs")}, map[string]string{"URL": s.WS, "PROTO": "4"}},
		{"mqtt.js websocket 5", []string{node, filepath.Join(root, "test/node/interop.mjs")}, map[string]string{"URL": s.WS, "PROTO": "5"}},
		{"python paho 3.1.1", []string{python, filepath.Join(root, "test/python/interop.py")}, map[string]string{"HOST": host, "PORT": port, "PROTO": "4"}},
		{"python paho 5", []string{python, filepath.Join(root, "test/python/interop.py")}, map[string]string{"HOST": host, "PORT": port, "PROTO": "5"}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			user := "interop" + string(rune('a'+i))
			tok := account(t, s, user, "dev")
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, c.cmd[0], c.cmd[1:]...)
			cmd.Env = append(os.Environ(), "USER="+user, "DEVICE=dev", "TOKEN="+tok, "PEER=echo")
			for k, v := range c.env {
				cmd.Env = append(cmd.Env, k+"="+v)
			}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("%v: %v\n%s\n%s", c.cmd, err, out, stderr.Bytes())
			}
			steps := map[string]json.RawMessage{}
			sc := bufio.NewScanner(bytes.NewReader(out))
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				var probe struct{ Step string }
				if json.Unmarshal(sc.Bytes(), &probe) == nil {
					steps[probe.Step] = append(json.RawMessage(nil), sc.Bytes()...)
				}
			}
			var ack wire.Ack
			var msg wire.Msg
			var sync, gz struct {
				wire.Sync
				Gzip bool `json:"gzip"` // the payload was gzip-compressed
			}
			var unread wire.Unread
			var rest struct{ Events []wire.Msg }
			var recallAck wire.Ack
			var recall wire.Msg
			for step, v := range map[string]any{"ack": &ack, "msg": &msg, "sync": &sync, "gzsync": &gz, "unread": &unread, "rest": &rest,
				"recallack": &recallAck, "recall": &recall} {
				if steps[step] == nil {
					t.Fatalf("no %s step in %s", step, out)
				}
				mustUnmarshal(t, steps[step], v)
			}
			if ack.ID == "" || ack.Ver != 1 {
				t.Errorf("ack %+v", ack)
			}
			if msg.From != "echo" || !strings.HasPrefix(msg.Body, "re: from ") || msg.Ver != 2 {
				t.Errorf("live answer %+v", msg)
			}
			if len(sync.Items) != 2 || sync.Upto != 2 || sync.Items[0].ID != ack.ID || sync.Gzip {
				t.Errorf("sync %+v", sync)
			}
			// The same batch gzip-compressed, as asked, and unpacked by the client's own gzip.
			if !gz.Gzip || gz.Upto != 2 || len(gz.Items) != 2 || gz.Items[0].ID != ack.ID || gz.Items[1].ID != msg.ID {
				t.Errorf("gzip sync %+v", gz)
			}
			for _, ev := range rest.Events {
				if ev.Kind == wire.KindMsg && ev.From == "echo" {
					t.Errorf("the answer came twice: %+v", ev)
				}
			}
			if unread.Peer != "echo" || unread.Count != 0 || unread.Total != 0 {
				t.Errorf("unread %+v", unread)
			}
			// A change made by a client nobody here wrote, seen live.
			if recallAck.ID == "" || recallAck.Ver <= msg.Ver {
				t.Errorf("recall ack %+v", recallAck)
			}
			if recall.Kind != wire.KindRecall || recall.ID != ack.ID || recall.By != user || recall.Ver != recallAck.Ver || recall.Body != "" {
				t.Errorf("recall event %+v", recall)
			}
		})
	}
}
