// Package devmongo runs a MongoDB-compatible server inside the calling
// process: FerretDB v1 on its SQLite backend, one directory, no other
// process. It is for development and tests of store/mongo only, never for
// production: FerretDB v1 lacks transactions and change streams, and its
// updates read and write a document in two steps, so two concurrent
// updates of one document can lose one (see store/mongo's doc comment).
//
// It lives in the tools module, apart from the server's: FerretDB and SQLite
// never enter the server's module graph. The server's tests reach it as a
// process (internal/mongotest runs tools/devmongo).
package devmongo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// newMu serializes ferretdb.New, which writes package-level state of
// FerretDB's (its version info) without a lock.
var newMu sync.Mutex

// Options configures Start.
type Options struct {
	// Addr is the TCP address to listen on; "127.0.0.1:0" (the default)
	// picks a free port.
	Addr string
	// Dir holds the SQLite files, one per database; created if missing.
	// Required.
	Dir string
	// Logger receives FerretDB's log. Nil keeps only its errors, on
	// standard error.
	Logger *slog.Logger
}

// Server is a running FerretDB.
type Server struct {
	db     *ferretdb.FerretDB
	uri    string
	addr   string
	cancel context.CancelFunc
	done   chan struct{}
}

// Start starts FerretDB listening on opts.Addr. The server runs until
// Close (ctx only bounds the start).
func Start(ctx context.Context, opts Options) (*Server, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("start devmongo: %w", err)
	}
	if opts.Dir == "" {
		return nil, errors.New("start devmongo: no data directory")
	}
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("start devmongo: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("start devmongo: %w", err)
	}
	// FerretDB wants a file: URI of a directory, ending in a slash.
	sqlite := (&url.URL{Scheme: "file", Path: dir + "/"}).String()
	newMu.Lock()
	db, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: opts.Addr},
		Logger:    opts.Logger,
		Handler:   "sqlite",
		SQLiteURL: sqlite,
	})
	newMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("start devmongo on %s: %w", opts.Addr, err)
	}
	// New has bound the listener, so the URI is known before Run.
	uri := db.MongoDBURI()
	u, err := url.Parse(uri)
	if err != nil {
		return nil, fmt.Errorf("start devmongo: bad URI %q: %w", uri, err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	s := &Server{db: db, uri: uri, addr: u.Host, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		_ = db.Run(runCtx) // Run returns nil once runCtx is canceled
	}()
	// Wait until it answers on TCP, so the caller can connect at once.
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("start devmongo: dial %s: %w", s.addr, err)
	}
	_ = conn.Close()
	return s, nil
}

// URI is the server's connection string, mongodb://host:port/.
func (s *Server) URI() string { return s.uri }

// Addr is the host:port the server listens on.
func (s *Server) Addr() string { return s.addr }

// Close stops listening, closes the connections (FerretDB gives connected
// clients a few seconds to go first) and the SQLite files. It is safe to
// call more than once.
func (s *Server) Close() error {
	s.cancel()
	<-s.done
	return nil
}
