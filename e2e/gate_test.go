package e2e

import (
	"io"
	"net"
	"sync"
	"testing"
)

// gate is a TCP proxy that can cut its path: while closed it drops every
// connection through it and refuses new ones at once, as a store that
// became unreachable would look to its clients.
type gate struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
}

func newGate(t *testing.T, target string) *gate {
	t.Helper()
	g := &gate{ln: listen(t), target: target, conns: map[net.Conn]struct{}{}}
	go g.accept()
	t.Cleanup(func() { g.ln.Close(); g.cut() })
	return g
}

// Addr is where clients connect.
func (g *gate) Addr() string { return g.ln.Addr().String() }

// close cuts every connection and refuses new ones until open.
func (g *gate) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.cut()
}

func (g *gate) open() {
	g.mu.Lock()
	g.closed = false
	g.mu.Unlock()
}

func (g *gate) cut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for c := range g.conns {
		c.Close()
	}
	clear(g.conns)
}

func (g *gate) accept() {
	for {
		c, err := g.ln.Accept()
		if err != nil {
			return
		}
		go g.link(c)
	}
}

func (g *gate) track(cs ...net.Conn) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	for _, c := range cs {
		g.conns[c] = struct{}{}
	}
	return true
}

func (g *gate) link(c net.Conn) {
	s, err := net.Dial("tcp", g.target)
	if err != nil {
		c.Close()
		return
	}
	if !g.track(c, s) {
		c.Close()
		s.Close()
		return
	}
	go func() { io.Copy(s, c); s.Close() }()
	io.Copy(c, s)
	c.Close()
}
