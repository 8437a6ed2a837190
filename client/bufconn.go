package client

import (
	"bufio"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/net/proxy"
)

// OpenBufferedTCP is a paho OpenConnectionFunc for tcp:// and mqtt:// broker
// URLs whose connection is buffered both ways.
//
// Reads go through a 4 KiB buffer: paho reads each packet's fixed header a
// byte at a time, one read(2) each on a bare TCP connection (20% of the load
// tool's CPU in a profile); buffered, one read serves many packets.
//
// Writes are coalesced: paho writes each packet on its own (a write(2) per
// publish, 12% of the load tool's CPU), so Write queues the bytes and returns,
// and one flusher goroutine writes whatever has queued in one write(2). It
// never waits for more: a lone packet goes out at once, and packets written
// while a write(2) is in progress go out together in the next. At most
// maxPending bytes queue before Write blocks; a failed write(2) fails every
// later Write and closes the connection, so paho's reader sees it too; Close
// sends what is queued first (for a second at most).
//
// It dials like paho does (the options' Dialer, through a proxy from the
// environment). Other schemes are paho's own business: use it only for tcp
// and mqtt URLs.
func OpenBufferedTCP(uri *url.URL, o mqtt.ClientOptions) (net.Conn, error) {
	d := o.Dialer
	if d == nil {
		d = &net.Dialer{Timeout: o.ConnectTimeout}
	}
	conn, err := proxy.FromEnvironmentUsing(d).Dial("tcp", uri.Host)
	if err != nil {
		return nil, err
	}
	return newBufferedConn(conn), nil
}

// maxPending bounds the bytes a bufferedConn queues before Write blocks.
const maxPending = 256 << 10

// bufferedConn is a net.Conn whose reads go through r and whose writes are
// coalesced by a flusher goroutine.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader

	kick chan struct{} // a token: there is something to flush
	stop chan struct{} // closed by Close: the flusher returns
	done chan struct{} // closed by the flusher when it returns

	mu      sync.Mutex
	drained *sync.Cond // broadcast after each write(2), and on failure
	pending []byte     // queued, not yet handed to write(2)
	spare   []byte     // the previous write's buffer, reused
	err     error      // the first write(2) failure
	closing bool
}

func newBufferedConn(conn net.Conn) *bufferedConn {
	c := &bufferedConn{Conn: conn, r: bufio.NewReaderSize(conn, 4<<10),
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	c.drained = sync.NewCond(&c.mu)
	go c.flush()
	return c
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// Write queues p for the flusher.
func (c *bufferedConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	for len(c.pending) >= maxPending && c.err == nil && !c.closing {
		c.drained.Wait()
	}
	switch {
	case c.err != nil:
		err := c.err
		c.mu.Unlock()
		return 0, err
	case c.closing:
		c.mu.Unlock()
		return 0, net.ErrClosed
	}
	c.pending = append(c.pending, p...)
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default: // a kick is waiting already
	}
	return len(p), nil
}

// flush writes what has queued, one write(2) per turn, until Close or a
// failure.
func (c *bufferedConn) flush() {
	defer close(c.done)
	for {
		select {
		case <-c.kick:
		case <-c.stop:
			return
		}
		c.mu.Lock()
		buf := c.pending
		c.pending, c.spare = c.spare[:0], nil
		c.mu.Unlock()
		if len(buf) == 0 {
			continue
		}
		_, err := c.Conn.Write(buf)
		c.mu.Lock()
		if cap(buf) <= maxPending {
			c.spare = buf[:0]
		}
		if err != nil && c.err == nil {
			c.err = err
		}
		c.drained.Broadcast()
		c.mu.Unlock()
		if err != nil {
			c.Conn.Close() // paho's reader learns of it
			return
		}
	}
}

// Close sends what is queued (for a second at most), then closes.
func (c *bufferedConn) Close() error {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return net.ErrClosed
	}
	c.closing = true
	c.drained.Broadcast() // Writes blocked on a full queue give up
	// A write(2) in progress, or the last one, ends within a second even if
	// the peer reads nothing.
	_ = c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
	if len(c.pending) > 0 && c.err == nil {
		select {
		case c.kick <- struct{}{}:
		default:
		}
		for len(c.pending) > 0 && c.err == nil {
			c.drained.Wait()
		}
	}
	c.mu.Unlock()
	close(c.stop)
	<-c.done
	return c.Conn.Close()
}

// isTCPURL reports whether OpenBufferedTCP handles the broker URL u.
func isTCPURL(u string) bool {
	return strings.HasPrefix(u, "tcp://") || strings.HasPrefix(u, "mqtt://")
}
