package e2e

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/imqtt/imqtt/internal/daemon"
	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/state"
	"github.com/imqtt/imqtt/wire"
)

// --max-send-rate and --max-send-burst: past the burst a send is refused
// with rate_limited (429 with Retry-After over HTTP, an error event over
// MQTT), the SDK resends it later, and the limit is one per user over all
// its devices and nodes. The bucket refills at one send a second here, so
// a test's few sends do not race the refill.
func TestSendRateLimit(t *testing.T) {
	s := testserver.Start(t, func(c *daemon.Config) { c.SendRate, c.SendBurst = 1, 5 })
	tok := account(t, s, "alice", "http")
	account(t, s, "bob", "x")
	codes := map[int]int{}
	for i := range 7 {
		var e wire.Error
		code := httpJSON(t, "POST", s.HTTP+"/v1/messages", tok, wire.Send{CMID: "h" + strconv.Itoa(i), To: "bob", Type: "text", Body: "hi"}, &e)
		codes[code]++
		if code == http.StatusTooManyRequests && e.Code != wire.CodeRateLimited {
			t.Fatalf("429 with code %q", e.Code)
		}
	}
	if codes[200]+codes[201] != 5 || codes[429] != 2 {
		t.Fatalf("statuses of 7 sends, burst 5: %v", codes)
	}

	// MQTT: the refusal is an error event; the SDK resends until it passes.
	account(t, s, "dave", "raw")
	raw := connect(t, s.MQTT, "dave", "raw", login(t, s, "dave", "raw"))
	for i := range 6 {
		raw.publish(wire.TopicSend, wire.Send{CMID: "m" + strconv.Itoa(i), To: "bob", Type: "text", Body: "hi"})
	}
	if _, werr := raw.awaitReply("m5"); werr == nil || werr.Code != wire.CodeRateLimited {
		t.Fatalf("the sixth send in a second: %+v, want rate_limited", werr)
	}
	var got received
	account(t, s, "erin", "sdk")
	sdk := dial(t, s.HTTP, s.MQTT, "erin", "sdk", login(t, s, "erin", "sdk"), &got)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 7 { // more than the burst: some are resent
		if _, err := sdk.Send(ctx, wire.Send{To: "bob", Body: "sdk " + strconv.Itoa(i)}); err != nil {
			t.Fatalf("SDK send %d: %v", i, err)
		}
	}
}

// In scale-out the limits are counted in Redis: a user's sends through two
// nodes share one bucket, and so do failed logins at one account.
func TestSendRateLimitCluster(t *testing.T) {
	c := newCluster(t, sharedPebble(t))
	c.edit = func(cfg *daemon.Config) {
		cfg.SendRate, cfg.SendBurst = 1, 4
		cfg.Throttle.LoginUser = state.Limit{Rate: 1, Per: time.Hour, Burst: 2}
	}
	n1, n2 := c.start("n1"), c.start("n2")
	t1 := account(t, n1, "alice", "a")
	t2 := login(t, n2, "alice", "b")
	account(t, n1, "bob", "x")
	refused := 0
	for i := range 6 {
		n, tok := n1, t1
		if i%2 == 1 {
			n, tok = n2, t2
		}
		if httpJSON(t, "POST", n.HTTP+"/v1/messages", tok, wire.Send{CMID: "c" + strconv.Itoa(i), To: "bob", Type: "text", Body: "hi"}, nil) == http.StatusTooManyRequests {
			refused++
		}
	}
	if refused != 2 {
		t.Fatalf("%d of 6 sends over two nodes refused, burst 4, want 2", refused)
	}

	// Two failed logins, one through each node, spend the account's
	// budget of 2: the next is refused on either node, even with the
	// right password.
	for _, n := range []string{n1.HTTP, n2.HTTP} {
		if code := httpJSON(t, "POST", n+"/v1/sessions", "", wire.Login{User: "bob", Password: "guess", Device: "x"}, nil); code != 401 {
			t.Fatalf("a wrong password: %d", code)
		}
	}
	for _, n := range []string{n1.HTTP, n2.HTTP} {
		if code := httpJSON(t, "POST", n+"/v1/sessions", "", wire.Login{User: "bob", Password: "secret-bob", Device: "x"}, nil); code != 429 {
			t.Fatalf("a login past the account's failures: %d, want 429", code)
		}
	}
}
