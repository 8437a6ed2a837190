package api

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/imqtt/imqtt/internal/metrics"
)

// deadlineServer serves one handler that reads its whole body under
// withBodyDeadline and answers 200 with the byte count, or 408. Before it
// answers it waits hold: a slow handler.
func deadlineServer(t *testing.T, cfg Config, hold time.Duration) string {
	t.Helper()
	cfg.Metrics = metrics.New()
	a := &API{cfg: cfg}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r = a.withBodyDeadline(w, r)
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			if slowBody(r) {
				a.bodyTimedOut(w)
				return
			}
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		select {
		case <-time.After(hold):
		case <-r.Context().Done():
			http.Error(w, "context ended", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, n)
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// trickle posts size bytes to path in chunks of chunk bytes every every,
// and returns the status and body of the answer.
func trickle(t *testing.T, addr, path string, size, chunk int, every time.Duration) (int, string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", path, size)
	go func() {
		for sent := 0; sent < size; sent += chunk {
			if _, err := conn.Write([]byte(strings.Repeat("x", min(chunk, size-sent)))); err != nil {
				return
			}
			time.Sleep(every) // the client's pace, which is what is under test
		}
	}()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(body)
}

func TestBodyDeadline(t *testing.T) {
	cfg := Config{BodyTimeout: 300 * time.Millisecond, UploadMinRate: 1024, UploadWindow: 300 * time.Millisecond}
	addr := deadlineServer(t, cfg, 0)
	// A JSON body must be complete within BodyTimeout, however steady.
	if code, _ := trickle(t, addr, "/v1/users", 2000, 100, 50*time.Millisecond); code != http.StatusRequestTimeout {
		t.Errorf("a 1s body to /v1/users: %d, want 408", code)
	}
	if code, body := trickle(t, addr, "/v1/users", 200, 100, 50*time.Millisecond); code != http.StatusOK || body != "200" {
		t.Errorf("a quick body to /v1/users: %d %s, want 200", code, body)
	}
	// An upload may take far longer than the window at the minimum rate...
	if code, body := trickle(t, addr, "/v1/media", 4000, 200, 50*time.Millisecond); code != http.StatusOK || body != "4000" {
		t.Errorf("an upload at 4 KB/s for 1s: %d %s, want 200", code, body)
	}
	// ...but not below it.
	if code, _ := trickle(t, addr, "/v1/media", 4000, 100, 200*time.Millisecond); code != http.StatusRequestTimeout {
		t.Errorf("an upload at 500 B/s: %d, want 408", code)
	}
}

// TestBodyDeadlineLifted: once the body is read, the deadline no longer
// applies: a handler slower than it keeps its request. (net/http lifts it
// when the body ends; were it left, the server's background read would hit
// it and cancel the request's context.)
func TestBodyDeadlineLifted(t *testing.T) {
	addr := deadlineServer(t, Config{BodyTimeout: 200 * time.Millisecond, UploadMinRate: 1024, UploadWindow: time.Second}, 600*time.Millisecond)
	if code, body := trickle(t, addr, "/v1/messages", 10, 10, 0); code != http.StatusOK || body != "10" {
		t.Errorf("a slow handler after a quick body: %d %s, want 200", code, body)
	}
}
