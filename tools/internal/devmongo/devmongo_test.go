package devmongo_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/imqtt/imqtt/tools/internal/devmongo"
)

// TestStart starts a server, writes a document through the driver, and
// finds it again after a restart on the same directory.
func TestStart(t *testing.T) {
	dir := t.TempDir()
	for round := range 2 {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		srv, err := devmongo.Start(ctx, devmongo.Options{Addr: "127.0.0.1:0", Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		u, err := url.Parse(srv.URI())
		if err != nil || u.Scheme != "mongodb" || u.Host != srv.Addr() {
			t.Fatalf("URI %q, addr %q: %v", srv.URI(), srv.Addr(), err)
		}
		client, err := mongo.Connect(options.Client().ApplyURI(srv.URI()))
		if err != nil {
			t.Fatal(err)
		}
		c := client.Database("test").Collection("docs")
		if round == 0 {
			if _, err := c.InsertOne(ctx, bson.D{{Key: "_id", Value: "a"}, {Key: "n", Value: 1}}); err != nil {
				t.Fatalf("insert: %v", err)
			}
		}
		var doc struct {
			N int `bson:"n"`
		}
		if err := c.FindOne(ctx, bson.D{{Key: "_id", Value: "a"}}).Decode(&doc); err != nil || doc.N != 1 {
			t.Fatalf("round %d: find: %+v %v", round, doc, err)
		}
		_ = client.Disconnect(ctx)
		if err := srv.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		cancel()
	}
}

func TestStartBadAddr(t *testing.T) {
	if _, err := devmongo.Start(t.Context(), devmongo.Options{Addr: "256.0.0.1:0", Dir: t.TempDir()}); err == nil {
		t.Fatal("started on a bad address")
	}
	if _, err := devmongo.Start(t.Context(), devmongo.Options{}); err == nil {
		t.Fatal("started without a directory")
	}
}

// TestStartConcurrent starts servers at once, as parallel tests do.
func TestStartConcurrent(t *testing.T) {
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			srv, err := devmongo.Start(t.Context(), devmongo.Options{Dir: t.TempDir()})
			if err == nil {
				err = srv.Close()
			}
			errs <- err
		}()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
