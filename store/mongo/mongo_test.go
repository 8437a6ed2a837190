package mongo_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imqtt/imqtt/internal/devmongo"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/store/mongo"
	"github.com/imqtt/imqtt/store/storetest"
)

// uri is the server every test of the package uses: FerretDB started once
// in this process by TestMain (devmongo), or the MongoDB at
// IMQTT_TEST_MONGO_URI if that is set.
var uri string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if uri = os.Getenv("IMQTT_TEST_MONGO_URI"); uri != "" {
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "devmongo-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := devmongo.Start(ctx, devmongo.Options{Dir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer srv.Close()
	uri = srv.URI()
	return m.Run()
}

// dbSeq numbers the databases: one new database per store.
var dbSeq atomic.Int64

// newDB is a database name no other test uses.
func newDB(t *testing.T) string {
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	if len(name) > 40 {
		name = name[:40]
	}
	return fmt.Sprintf("t%d_%s", dbSeq.Add(1), name)
}

func open(t *testing.T, db string) *mongo.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	s, err := mongo.Open(ctx, uri, mongo.Options{Database: db})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return open(t, newDB(t)) })
}

// TestReopen runs the reopen suite with a database for a directory:
// reopening is connecting again to the same database.
func TestReopen(t *testing.T) {
	dbs := map[string]string{}
	storetest.RunReopen(t, func(t *testing.T, dir string) store.Store {
		db, ok := dbs[dir]
		if !ok {
			db = newDB(t)
			dbs[dir] = db
		}
		return open(t, db)
	})
}
