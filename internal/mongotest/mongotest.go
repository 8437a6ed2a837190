// Package mongotest runs a MongoDB-compatible server for tests, in a process
// of its own: tools/devmongo (FerretDB on SQLite). tools is a module of its
// own, so FerretDB and SQLite never enter the server's module graph, and a
// server outside the test binary keeps -race from slowing every database
// call (FerretDB in-process under -race made store/mongo's tests several
// times slower) and lets a test kill it outright.
//
// Tests use New (one server for a test) or Start (one for a package, from
// TestMain), and call Cleanup from TestMain after m.Run to remove the built
// binary (Main does both for a package with no more to set up).
package mongotest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binDir    string
	bin       string
	buildErr  error
)

// toolsDir is tools/devmongo in this checkout.
func toolsDir() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("mongotest: no source path")
	}
	return filepath.Join(filepath.Dir(file), "..", "..", "tools", "devmongo"), nil
}

// Binary builds tools/devmongo (once per process, without -race) and
// returns the path of the binary.
func Binary() (string, error) {
	buildOnce.Do(func() {
		dir, err := toolsDir()
		if err != nil {
			buildErr = err
			return
		}
		if binDir, err = os.MkdirTemp("", "imqtt-devmongo-"); err != nil {
			buildErr = err
			return
		}
		bin = filepath.Join(binDir, "devmongo")
		build := exec.Command("go", "build", "-o", bin, ".")
		build.Dir = dir
		build.Env = append(os.Environ(), "GOFLAGS=") // not the test's -race
		if out, err := build.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("build tools/devmongo: %v\n%s", err, out)
		}
	})
	return bin, buildErr
}

// Cleanup removes the built binary. TestMain calls it after m.Run.
func Cleanup() {
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
}

// Main is the TestMain of a package whose tests use New: it runs them,
// removes the built binary and exits with their code.
func Main(m *testing.M) {
	code := m.Run()
	Cleanup()
	os.Exit(code)
}

// Shared runs a package's tests against one MongoDB: the one at
// IMQTT_TEST_MONGO_URI if set (own false), else a devmongo started for
// the package (own true), stopped and removed after. set is given the URI
// before any test runs. It returns the exit code for TestMain.
func Shared(m *testing.M, set func(uri string, own bool)) int {
	if uri := os.Getenv("IMQTT_TEST_MONGO_URI"); uri != "" {
		set(uri, false)
		return m.Run()
	}
	defer Cleanup()
	dir, err := os.MkdirTemp("", "devmongo-data-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	srv, err := Start(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer srv.Stop()
	set(srv.URI(), true)
	return m.Run()
}

// Server is a running tools/devmongo process.
type Server struct {
	cmd  *exec.Cmd
	uri  string
	addr string
	done chan struct{}
}

// Start runs devmongo on a free port with its data in dir and waits for the
// URI it prints.
func Start(dir string) (*Server, error) {
	path, err := Binary()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path, "-addr", "127.0.0.1:0", "-data", dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start devmongo: %w", err)
	}
	s := &Server{cmd: cmd, done: make(chan struct{})}
	lines := bufio.NewScanner(out)
	if !lines.Scan() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("devmongo printed no URI: %v", lines.Err())
	}
	s.uri = strings.TrimSpace(lines.Text())
	host, ok := strings.CutPrefix(s.uri, "mongodb://")
	if !ok {
		s.Kill()
		return nil, fmt.Errorf("devmongo printed %q, not a mongodb:// URI", s.uri)
	}
	s.addr, _, _ = strings.Cut(host, "/")
	go func() {
		defer close(s.done)
		_, _ = io.Copy(io.Discard, out)
		_ = cmd.Wait()
	}()
	return s, nil
}

// New starts a server for one test, stopped when the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	s, err := Start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// URI is the server's connection string, mongodb://host:port/.
func (s *Server) URI() string { return s.uri }

// Addr is the host:port it listens on.
func (s *Server) Addr() string { return s.addr }

// Stop ends the server with SIGTERM, or SIGKILL after 10s. It is safe to
// call more than once.
func (s *Server) Stop() {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.Kill()
	}
}

// Kill ends the server at once, as a crash would.
func (s *Server) Kill() {
	_ = s.cmd.Process.Kill()
	<-s.done
}
