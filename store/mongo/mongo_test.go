package mongo_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	driver "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/imqtt/imqtt/internal/mongotest"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/store/mongo"
	"github.com/imqtt/imqtt/store/storetest"
)

// uri is the server every test of the package uses: a tools/devmongo
// process started once by TestMain (internal/mongotest), or the MongoDB at
// IMQTT_TEST_MONGO_URI if that is set.
var uri string

// ownServer says uri is TestMain's devmongo, which tests may also start
// more of (and kill).
var ownServer bool

func TestMain(m *testing.M) {
	os.Exit(mongotest.Shared(m, func(u string, own bool) { uri, ownServer = u, own }))
}

// dbSeq numbers the databases: one new database per store. runID keeps
// runs apart on a server that outlives them (IMQTT_TEST_MONGO_URI).
var (
	dbSeq atomic.Int64
	runID = rand.Text()[:6]
)

// newDB is a database name no other test uses. On a server of its own
// (IMQTT_TEST_MONGO_URI) the database is dropped when the test ends.
func newDB(t testing.TB) string {
	name := strings.NewReplacer("/", "_", " ", "_", "=", "_").Replace(t.Name())
	if len(name) > 40 {
		name = name[:40]
	}
	db := fmt.Sprintf("t%s%d_%s", runID, dbSeq.Add(1), name)
	if !ownServer {
		t.Cleanup(func() {
			client, err := driver.Connect(options.Client().ApplyURI(uri))
			if err != nil {
				t.Errorf("drop %s: %v", db, err)
				return
			}
			defer client.Disconnect(context.Background())
			if err := client.Database(db).Drop(context.Background()); err != nil {
				t.Errorf("drop %s: %v", db, err)
			}
		})
	}
	return db
}

func open(t testing.TB, db string) *mongo.Store {
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
