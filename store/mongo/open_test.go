package mongo_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	driver "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

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

// TestFormat: a new database is stamped with this build's format; one a
// later release wrote (a newer format) is refused, before anything is
// written, with a message that says so.
func TestFormat(t *testing.T) {
	db := newDB(t)
	s := open(t, db)
	s.Close()
	client, err := driver.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Disconnect(context.Background())
	meta := client.Database(db).Collection("meta")
	var d struct {
		Value int `bson:"value"`
	}
	if err := meta.FindOne(t.Context(), bson.D{{Key: "_id", Value: "format"}}).Decode(&d); err != nil || d.Value != mongo.Format {
		t.Fatalf("format stamp %d, %v; want %d", d.Value, err, mongo.Format)
	}
	if _, err := meta.UpdateOne(t.Context(), bson.D{{Key: "_id", Value: "format"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "value", Value: mongo.Format + 1}}}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	s2, err := mongo.Open(ctx, uri, mongo.Options{Database: db})
	if err == nil {
		s2.Close()
		t.Fatal("a database of a newer format opened")
	}
	if !errors.Is(err, store.ErrFormat) || !strings.Contains(err.Error(), "newer than this imqttd's") {
		t.Fatalf("open of a newer format: %v", err)
	}
	if _, err := meta.UpdateOne(t.Context(), bson.D{{Key: "_id", Value: "format"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "value", Value: "x"}}}}); err != nil {
		t.Fatal(err)
	}
	if s3, err := mongo.Open(ctx, uri, mongo.Options{Database: db}); !errors.Is(err, store.ErrFormat) {
		if err == nil {
			s3.Close()
		}
		t.Fatalf("open of a garbled format: %v", err)
	}
}
