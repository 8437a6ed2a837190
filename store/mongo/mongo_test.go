package mongo_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	driver "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/store/mongo"
	"github.com/imqtt/imqtt/store/storetest"
)

// uri is the server every test of the package uses: FerretDB started once
// by TestMain, or the MongoDB at IMQTT_TEST_MONGO_URI if that is set.
//
// FerretDB runs as a subprocess (tools/devmongo, built without -race by
// TestMain), not in this process through internal/devmongo: under -race,
// FerretDB and its SQLite in the test binary made every database call
// several times slower, and the package took over 40 s instead of about
// 6 (storetest's Limits alone reserves 240 versions one by one). The
// subprocess also lets TestServerGone kill a server outright.
var uri string

// devmongoBin is the built tools/devmongo.
var devmongoBin string

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
	devmongoBin = filepath.Join(dir, "devmongo")
	build := exec.Command("go", "build", "-o", devmongoBin, "github.com/imqtt/imqtt/tools/devmongo")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build devmongo: %v\n%s", err, out)
		return 1
	}
	srv, err := startServer(filepath.Join(dir, "data"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer srv.stop()
	uri = srv.uri
	return m.Run()
}

// server is a devmongo process.
type server struct {
	cmd  *exec.Cmd
	uri  string
	done chan struct{}
}

// startServer runs devmongo on a free port with its data in dir and waits
// for the URI it prints.
func startServer(dir string) (*server, error) {
	cmd := exec.Command(devmongoBin, "-addr", "127.0.0.1:0", "-data", dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start devmongo: %w", err)
	}
	s := &server{cmd: cmd, done: make(chan struct{})}
	lines := bufio.NewScanner(out)
	if !lines.Scan() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("devmongo printed no URI: %v", lines.Err())
	}
	s.uri = strings.TrimSpace(lines.Text())
	go func() {
		defer close(s.done)
		_, _ = io.Copy(io.Discard, out)
		_ = cmd.Wait()
	}()
	return s, nil
}

// stop ends the server with SIGTERM, or SIGKILL after 10s.
func (s *server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// kill ends the server at once, as a crash would.
func (s *server) kill() {
	_ = s.cmd.Process.Kill()
	<-s.done
}

// dbSeq numbers the databases: one new database per store. runID keeps
// runs apart on a server that outlives them (IMQTT_TEST_MONGO_URI).
var (
	dbSeq atomic.Int64
	runID = rand.Text()[:6]
)

// newDB is a database name no other test uses. On a server of its own
// (IMQTT_TEST_MONGO_URI) the database is dropped when the test ends.
func newDB(t *testing.T) string {
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	if len(name) > 40 {
		name = name[:40]
	}
	db := fmt.Sprintf("t%s%d_%s", runID, dbSeq.Add(1), name)
	if devmongoBin == "" {
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
