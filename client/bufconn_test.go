package client

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// gatedConn records each Write and holds the first until the gate opens.
type gatedConn struct {
	net.Conn
	gate   chan struct{}
	mu     sync.Mutex
	writes [][]byte
	fail   error
}

func (c *gatedConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	first := len(c.writes) == 0
	c.writes = append(c.writes, bytes.Clone(p))
	fail := c.fail
	c.mu.Unlock()
	if first {
		<-c.gate
	}
	if fail != nil {
		return 0, fail
	}
	return len(p), nil
}

func (c *gatedConn) Close() error                       { return nil }
func (c *gatedConn) SetWriteDeadline(t time.Time) error { return nil }

func (c *gatedConn) written() (n int, all []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, w := range c.writes {
		all = append(all, w...)
	}
	return len(c.writes), all
}

// TestBufferedConnCoalesces: packets written while a write(2) is in
// progress go out together in the next one, in order, and a lone packet
// goes out at once.
func TestBufferedConnCoalesces(t *testing.T) {
	g := &gatedConn{gate: make(chan struct{})}
	c := newBufferedConn(g)
	var want []byte
	for i := range 100 {
		p := []byte{byte(i), byte(i), byte(i)}
		want = append(want, p...)
		if n, err := c.Write(p); n != 3 || err != nil {
			t.Fatalf("write %d: %d, %v", i, n, err)
		}
	}
	close(g.gate)
	waitUntil(t, func() bool { _, all := g.written(); return len(all) == len(want) })
	n, all := g.written()
	if !bytes.Equal(all, want) {
		t.Fatalf("bytes out of order or lost")
	}
	if n > 2 {
		t.Fatalf("100 packets took %d writes; want at most 2 (the one in progress and the rest)", n)
	}
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool { k, _ := g.written(); return k == n+1 })
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("y")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
}

// TestBufferedConnCloseFlushes: what is queued when Close is called (paho's
// DISCONNECT) reaches the peer before the connection closes.
func TestBufferedConnCloseFlushes(t *testing.T) {
	a, b := net.Pipe()
	c := newBufferedConn(a)
	got := make(chan []byte)
	go func() { all, _ := io.ReadAll(b); got <- all }()
	for range 50 {
		_, _ = c.Write([]byte("packet"))
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if all := <-got; !bytes.Equal(all, bytes.Repeat([]byte("packet"), 50)) {
		t.Fatalf("peer got %d bytes, want %d", len(all), 50*6)
	}
}

// TestBufferedConnWriteError: a failed write(2) fails the Writes after it.
func TestBufferedConnWriteError(t *testing.T) {
	g := &gatedConn{gate: make(chan struct{}), fail: io.ErrClosedPipe}
	close(g.gate)
	c := newBufferedConn(g)
	_, _ = c.Write([]byte("lost"))
	waitUntil(t, func() bool {
		_, err := c.Write([]byte("next"))
		return errors.Is(err, io.ErrClosedPipe)
	})
	_ = c.Close()
}

// TestBufferedConnCloseStuckPeer: Close returns even when the peer reads
// nothing (the write deadline ends the write in progress).
func TestBufferedConnCloseStuckPeer(t *testing.T) {
	a, b := net.Pipe() // unbuffered: a write blocks until b reads
	defer b.Close()
	c := newBufferedConn(a)
	_, _ = c.Write([]byte("never read"))
	done := make(chan error, 1)
	go func() { done <- c.Close() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hung on a peer that reads nothing")
	}
}

func waitUntil(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(time.Millisecond)
	}
}
