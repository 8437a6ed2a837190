package broker

import (
	"io"
	"log/slog"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// flakyListener fails its first Accepts with EMFILE, as a process out of file
// descriptors would, then accepts normally.
type flakyListener struct {
	net.Listener
	failures atomic.Int32
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if l.failures.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// TestAcceptSurvivesEMFILE: mochi's own TCP listener returns for good on an
// Accept error; ours waits and goes on accepting.
func TestAcceptSurvivesEMFILE(t *testing.T) {
	l := newTCPListener("t", "127.0.0.1:0", nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := l.Init(nil); err != nil {
		t.Fatal(err)
	}
	flaky := &flakyListener{Listener: l.ln}
	flaky.failures.Store(3)
	l.ln = flaky
	got := make(chan net.Conn, 1)
	go l.Serve(func(_ string, c net.Conn) error { got <- c; return nil })
	defer l.Close(func(string) {})

	c, err := net.Dial("tcp", l.Address())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case sc := <-got:
		sc.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("connection never established after EMFILE")
	}
	if flaky.failures.Load() >= 0 {
		t.Fatalf("the injected failures were not all hit")
	}
}

// TestStopAccepting: after stopAccepting the port refuses new connections
// and Serve returns.
func TestStopAccepting(t *testing.T) {
	l := newTCPListener("t", "127.0.0.1:0", nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := l.Init(nil); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { l.Serve(func(string, net.Conn) error { return nil }); close(done) }()
	addr := l.Address()
	l.stopAccepting()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatal("still accepting")
	}
}
