package e2e

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/imqtt/imqtt/daemon"
	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/wire"
)

// startAligned waits for the start of a second, so a burst stays in one
// rate-limit window.
func startAligned() {
	if off := time.Now().UnixNano() % int64(time.Second); off > int64(200*time.Millisecond) {
		time.Sleep(time.Second - time.Duration(off))
	}
}

// --max-send-rate: past it a send is refused with rate_limited (429 over
// HTTP, an error event over MQTT), the SDK resends it later, and the limit
// is one per user over all its devices and nodes.
func TestSendRateLimit(t *testing.T) {
	s := testserver.Start(t, func(c *daemon.Config) { c.SendRate = 5 })
	tok := account(t, s, "alice", "http")
	account(t, s, "bob", "x")
	startAligned()
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
		t.Fatalf("statuses of 7 sends at 5 a second: %v", codes)
	}

	// MQTT: the refusal is an error event; the SDK resends until it passes.
	time.Sleep(time.Second)
	startAligned()
	raw := connect(t, s.MQTT, "alice", "raw", login(t, s, "alice", "raw"))
	for i := range 6 {
		raw.publish(wire.TopicSend, wire.Send{CMID: "m" + strconv.Itoa(i), To: "bob", Type: "text", Body: "hi"})
	}
	if _, werr := raw.awaitReply("m5"); werr == nil || werr.Code != wire.CodeRateLimited {
		t.Fatalf("the sixth send in a second: %+v, want rate_limited", werr)
	}
	var got received
	sdk := dial(t, s.HTTP, s.MQTT, "alice", "sdk", login(t, s, "alice", "sdk"), &got)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 8 { // more than a window's worth: some are resent
		if _, err := sdk.Send(ctx, wire.Send{To: "bob", Body: "sdk " + strconv.Itoa(i)}); err != nil {
			t.Fatalf("SDK send %d: %v", i, err)
		}
	}
}

// In scale-out the limit is counted in Redis: a user's sends through two
// nodes share it.
func TestSendRateLimitCluster(t *testing.T) {
	c := newCluster(t, sharedPebble(t))
	c.sendRate = 4
	n1, n2 := c.start("n1"), c.start("n2")
	t1 := account(t, n1, "alice", "a")
	t2 := login(t, n2, "alice", "b")
	account(t, n1, "bob", "x")
	startAligned()
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
		t.Fatalf("%d of 6 sends over two nodes refused at 4 a second, want 2", refused)
	}
}
