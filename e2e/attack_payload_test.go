package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/imqtt/imqtt/internal/daemon"
	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/wire"
)

// deepSend is the attack's poison message: a send whose meta nests 9,998
// levels (one object, then arrays), just inside encoding/json's own limit
// of 10,000, so the old server stored it and every client that synced it
// broke (Go's decoder past its limit, Python's json.loads long before).
func deepSend(cmid string) []byte {
	const levels = 9998
	return []byte(`{"cmid":"` + cmid + `","to":"bob","type":"text","body":"x","meta":{"a":` +
		strings.Repeat("[", levels-1) + strings.Repeat("]", levels-1) + `}}`)
}

// bobSyncIsEmpty reads bob's sync raw: a poisoned item would not decode.
func bobSyncIsEmpty(t *testing.T, s *testserver.Server, token string) {
	t.Helper()
	req, _ := http.NewRequest("GET", s.HTTP+"/v1/sync", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(raw, []byte(`"items":[]`)) || len(raw) > 1000 {
		t.Fatalf("bob's sync: %d, %d bytes %.200q; want no items", resp.StatusCode, len(raw), raw)
	}
}

// TestAttackDeepMetaMQTT covers Why item 4 (server side): the 9,998-deep
// meta published to im/send is refused with bad_request, counted, and
// nothing is stored.
func TestAttackDeepMetaMQTT(t *testing.T) {
	s := testserver.Start(t)
	bob := account(t, s, "bob", "phone")
	alice := connect(t, s.MQTT, "alice", "phone", account(t, s, "alice", "phone"))

	alice.publish(wire.TopicSend, deepSend("deep"))
	wait.For(t, "an error for the deep send", 10*time.Second, func() bool { return len(alice.directOf(wire.KindError)) > 0 })
	var e wire.Error
	mustUnmarshal(t, alice.directOf(wire.KindError)[0], &e)
	if e.Code != wire.CodeBadRequest || !strings.Contains(e.Message, "nested too deeply") {
		t.Fatalf("error %+v, want bad_request about nesting", e)
	}
	if n := testutil.ToFloat64(s.Metrics().Refusals.WithLabelValues("json_depth")); n != 1 {
		t.Errorf("json_depth refusals %v, want 1", n)
	}
	// The same nesting inside meta alone, under MaxDepth for the payload
	// but over MaxMetaDepth, is refused by chat's check.
	alice.publish(wire.TopicSend, []byte(`{"cmid":"m20","to":"bob","type":"text","body":"x","meta":`+
		strings.Repeat(`{"a":`, 20)+"1"+strings.Repeat("}", 20)+`}`))
	_, werr := alice.awaitReply("m20")
	if werr == nil || werr.Code != wire.CodeBadRequest || !strings.Contains(werr.Message, "meta nested too deeply") {
		t.Fatalf("meta 20 deep: %+v, want bad_request about meta", werr)
	}
	bobSyncIsEmpty(t, s, bob)
}

// TestAttackDeepMetaHTTP covers Why item 4 (server side) over HTTP: POST
// /v1/messages with the 9,998-deep meta is a 400, and nothing is stored.
func TestAttackDeepMetaHTTP(t *testing.T) {
	s := testserver.Start(t)
	bob := account(t, s, "bob", "phone")
	alice := account(t, s, "alice", "phone")

	req, _ := http.NewRequest("POST", s.HTTP+"/v1/messages", bytes.NewReader(deepSend("deep")))
	req.Header.Set("Authorization", "Bearer "+alice)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var e wire.Error
	decodeBody(t, resp, &e)
	if resp.StatusCode != http.StatusBadRequest || e.Code != wire.CodeBadRequest || !strings.Contains(e.Message, "nested too deeply") {
		t.Fatalf("deep send over HTTP: %d %+v, want 400 bad_request about nesting", resp.StatusCode, e)
	}
	if n := testutil.ToFloat64(s.Metrics().Refusals.WithLabelValues("json_depth")); n != 1 {
		t.Errorf("json_depth refusals %v, want 1", n)
	}
	bobSyncIsEmpty(t, s, bob)
}

// slowBody opens a raw connection, sends the head of a POST declaring a
// body of size bytes, and then the body at one byte a second until the
// server answers. It returns the response's status and body, and when it
// came; an error if none came, or the connection stayed open after it.
func slowBody(addr, path, head string, size int) (status int, body []byte, took time.Duration, err error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, nil, 0, err
	}
	defer conn.Close()
	start := time.Now()
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: imqtt\r\n%sContent-Length: %d\r\n\r\n", path, head, size)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			if _, err := conn.Write([]byte("x")); err != nil {
				return
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	_ = conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return 0, nil, time.Since(start), fmt.Errorf("no response after %v: %w", time.Since(start), err)
	}
	took = time.Since(start)
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	// The server is done with the connection: it closes it.
	if _, err := br.ReadByte(); err == nil {
		return resp.StatusCode, body, took, errors.New("connection still open after the response")
	}
	return resp.StatusCode, body, took, nil
}

// TestAttackSlowBody covers Why item 8: a body sent at 1 byte/s to the
// unauthenticated POST /v1/users, and to POST /v1/media, is cut off with
// 408 within its deadline (short ones here), counted, its connection
// closed, and other requests are served meanwhile.
func TestAttackSlowBody(t *testing.T) {
	s := testserver.Start(t, func(c *daemon.Config) {
		c.HTTPBodyTimeout, c.HTTPUploadWindow = 2*time.Second, 2*time.Second
	})
	token := account(t, s, "alice", "phone")

	results := make(chan string, 2)
	for _, c := range []struct{ path, head string }{
		{"/v1/users", "Content-Type: application/json\r\n"},
		{"/v1/media", "Authorization: Bearer " + token + "\r\nContent-Type: image/png\r\n"},
	} {
		go func() {
			status, body, took, err := slowBody(s.HTTPAddr(), c.path, c.head, 100_000)
			var e wire.Error
			_ = json.Unmarshal(body, &e)
			if err != nil || status != http.StatusRequestTimeout || e.Code != wire.CodeTimeout || took > 6*time.Second {
				results <- fmt.Sprintf("POST %s at 1 byte/s: %d %s after %v (%v); want 408 request_timeout within the 2s deadline",
					c.path, status, body, took, err)
				return
			}
			results <- ""
		}()
	}
	// While both slow bodies trickle (2s at least), the API answers others.
	if code := httpJSON(t, "POST", s.HTTP+"/v1/users", "", wire.Register{User: "bob", Password: "secret-bob"}, nil); code != http.StatusCreated {
		t.Errorf("register during the slow bodies: %d", code)
	}
	if code := httpJSON(t, "GET", s.HTTP+"/healthz", "", nil, nil); code != http.StatusOK {
		t.Errorf("healthz during the slow bodies: %d", code)
	}
	select {
	case msg := <-results:
		t.Fatalf("a slow body ended before the others were served: %q", msg)
	default:
	}
	for range 2 {
		if msg := <-results; msg != "" {
			t.Error(msg)
		}
	}
	if n := testutil.ToFloat64(s.Metrics().Refusals.WithLabelValues("slow_body")); n != 2 {
		t.Errorf("slow_body refusals %v, want 2", n)
	}
}
