package daemon

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/imqtt/imqtt/internal/account"
	"github.com/imqtt/imqtt/internal/metrics"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/state"
)

// TestConnectionLogs: a real MQTT client's connect and disconnect are
// logged at info with user, device, remote, protocol and clean; a flood
// of wrong passwords is logged at most metrics.RefusalLogBurst lines at
// once, then with a count of what was left out; HTTP requests are
// access-logged by route; no line carries a password or token.
func TestConnectionLogs(t *testing.T) {
	var logs syncBuffer
	log, err := NewLogger("json", "info", &logs)
	if err != nil {
		t.Fatal(err)
	}
	// Throttles off: the refusals stay bad credentials, not rate limits.
	off := account.Limits{LoginIP: offLimit, LoginUserIP: offLimit, LoginUser: offLimit, RegisterIP: offLimit}
	d, err := Start(context.Background(), Config{MQTTAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", DataDir: t.TempDir(), Logger: log,
		PasswordParams: account.Params{Memory: 64, Time: 1, Threads: 1}, Throttle: off, AccessLogSample: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Shutdown(context.Background()) })
	const password = "s3cret-pass-word"
	res, err := http.Post("http://"+d.HTTPAddr()+"/v1/users?debug=query-secret", "application/json",
		strings.NewReader(`{"user":"alice","password":"`+password+`"}`))
	if err != nil || res.StatusCode != http.StatusCreated {
		t.Fatalf("register: %v %v", res, err)
	}
	res.Body.Close()

	dial := func(pw string) (paho.Client, error) {
		o := paho.NewClientOptions().AddBroker("tcp://" + d.MQTTAddr()).SetClientID("alice/phone").
			SetUsername("alice").SetPassword(pw).SetCleanSession(true).SetProtocolVersion(4).SetAutoReconnect(false).
			SetConnectRetry(false).SetConnectTimeout(5 * time.Second)
		c := paho.NewClient(o)
		tok := c.Connect()
		tok.WaitTimeout(5 * time.Second)
		return c, tok.Error()
	}
	const wrong = 3 * metrics.RefusalLogBurst
	for range wrong {
		if _, err := dial("wrong-" + password); err == nil {
			t.Fatal("a wrong password connected")
		}
	}
	c, err := dial(password)
	if err != nil {
		t.Fatal(err)
	}
	c.Disconnect(100)

	records := func(msg string) []map[string]any {
		var out []map[string]any
		for line := range strings.SplitSeq(logs.String(), "\n") {
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == msg {
				out = append(out, rec)
			}
		}
		return out
	}
	wait.For(t, "the disconnect logged", 10*time.Second, func() bool { return len(records("mqtt disconnect")) == 1 })
	conn := records("mqtt connect")
	if len(conn) != 1 || conn[0]["user"] != "alice" || conn[0]["device"] != "phone" || conn[0]["protocol"] != 4.0 ||
		conn[0]["clean"] != true || !strings.HasPrefix(conn[0]["remote"].(string), "127.0.0.1:") {
		t.Fatalf("connects %v", conn)
	}
	refused := records("refused")
	if n := len(refused); n == 0 || n > metrics.RefusalLogBurst {
		t.Fatalf("%d refusal lines for %d wrong passwords, want 1 to %d", n, wrong, metrics.RefusalLogBurst)
	}
	if refused[0]["kind"] != "auth_credentials" || refused[0]["user"] != "alice" || refused[0]["level"] != "WARN" {
		t.Fatalf("refusal %v", refused[0])
	}
	// The next refusal past the rate says how many were left out.
	wait.For(t, "a line with the suppressed count", 5*time.Second, func() bool {
		_, _ = dial("wrong-again")
		for _, r := range records("refused") {
			if n, _ := r["suppressed"].(float64); n > 0 {
				return true
			}
		}
		return false
	})
	access := records("http")
	if len(access) != 1 || access[0]["route"] != "POST /v1/users" || access[0]["status"] != 201.0 {
		t.Fatalf("access log %v", access)
	}
	for _, secret := range []string{password, "query-secret"} {
		if strings.Contains(logs.String(), secret) {
			t.Fatalf("the log holds %q", secret)
		}
	}
}

// offLimit turns a throttle off (a negative Rate).
var offLimit = state.Limit{Rate: -1}
