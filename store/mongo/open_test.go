package mongo_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/imqtt/imqtt/internal/mongotest"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/store/mongo"
)

func TestOpenBadURI(t *testing.T) {
	for _, uri := range []string{"mongodb://127.0.0.1:1/", "not-a-uri"} {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		start := time.Now()
		s, err := mongo.Open(ctx, uri, mongo.Options{})
		cancel()
		if err == nil {
			s.Close()
			t.Errorf("open %s: no error", uri)
			continue
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("open %s: failed after %v, past the deadline", uri, d)
		}
		t.Logf("open %s: %v", uri, err)
	}
}

// TestServerGone: once the server is gone, calls fail within their
// context's deadline instead of hanging.
func TestServerGone(t *testing.T) {
	srv := mongotest.New(t) // a server of its own, to kill, whatever IMQTT_TEST_MONGO_URI says
	s, err := mongo.Open(t.Context(), srv.URI(), mongo.Options{Database: "gone"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b := send(t, s, "alice", "bob", 1, 1)
	commit(t, s, b)
	srv.Kill()
	calls := map[string]func(ctx context.Context) error{
		"Ping":   s.Ping,
		"Commit": func(ctx context.Context) error { return s.Commit(ctx, b) },
		"Range":  func(ctx context.Context) error { _, err := s.Range(ctx, "bob", 0, 0); return err },
		"ReserveVersions": func(ctx context.Context) error {
			_, err := s.ReserveVersions(ctx, "bob", 1)
			return err
		},
		"SetRead": func(ctx context.Context) error { _, err := s.SetRead(ctx, "bob", "alice", 0); return err },
	}
	for name, call := range calls {
		ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
		start := time.Now()
		err := call(ctx)
		cancel()
		if err == nil {
			t.Errorf("%s: no error with the server gone", name)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%s: returned after %v, past the deadline", name, d)
		}
	}
	if err := s.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if err := s.Ping(t.Context()); !errors.Is(err, store.ErrClosed) {
		t.Errorf("ping after close: %v", err)
	}
}
