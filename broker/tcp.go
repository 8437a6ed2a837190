package broker

import (
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"
)

// tcpListener is mochi's TCP listener with three differences that matter: an
// Accept error (EMFILE when file descriptors run out, ECONNABORTED) does not
// end the accept loop for good; it waits and tries again. A plain TCP
// connection goes to the event loop (loop.go), or, with
// Options.GoroutineIO, is read through a pooled buffer (pooledConn), so an
// idle one holds no read buffer; TLS is read by mochi's goroutines. And
// every connection passes the gate (gate.go) before mochi sees it.
type tcpListener struct {
	id, address string
	tlsConfig   *tls.Config
	gate        *gate // nil: none (tests of the listener alone)
	loop        *loop // connections go to this event loop; nil: to mochi's goroutines (TLS)
	log         *slog.Logger

	mu     sync.Mutex
	ln     net.Listener
	closed atomic.Bool
	wg     sync.WaitGroup
}

var _ listeners.Listener = (*tcpListener)(nil)

func newTCPListener(id, address string, tlsConfig *tls.Config, g *gate, log *slog.Logger) *tcpListener {
	return &tcpListener{id: id, address: address, tlsConfig: tlsConfig, gate: g, log: log}
}

func (l *tcpListener) ID() string { return l.id }

func (l *tcpListener) Address() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ln != nil {
		return l.ln.Addr().String()
	}
	return l.address
}

func (l *tcpListener) Protocol() string {
	if l.tlsConfig != nil {
		return "tls"
	}
	return "tcp"
}

func (l *tcpListener) Init(log *slog.Logger) error {
	ln, err := net.Listen("tcp", l.address)
	if err != nil {
		return err
	}
	if l.tlsConfig != nil {
		ln = tls.NewListener(ln, l.tlsConfig)
	}
	l.mu.Lock()
	l.ln = ln
	l.mu.Unlock()
	return nil
}

func (l *tcpListener) Serve(establish listeners.EstablishFn) {
	var delay time.Duration
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			if l.closed.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			delay = acceptBackoff(delay)
			l.log.Warn("accept failed; retrying", "listener", l.id, "err", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		var key netip.Addr
		if l.gate != nil {
			var ok bool
			if key, ok = l.gate.admit(conn.RemoteAddr()); !ok {
				_ = conn.Close() // over an unauthenticated-connection cap: at once, before any read
				continue
			}
		}
		if tc, ok := conn.(*net.TCPConn); ok && l.loop != nil {
			l.loop.add(tc, key)
			continue
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			conn = newPooledConn(tc)
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			var err error
			if l.gate != nil {
				err = l.gate.serve(conn, key, func(c net.Conn) error { return establish(l.id, c) })
			} else {
				err = establish(l.id, conn)
			}
			if err != nil {
				l.log.Debug("connection ended", "listener", l.id, "err", err)
			}
		}()
	}
}

// stopAccepting closes the socket so no new connection is accepted.
func (l *tcpListener) stopAccepting() {
	if l.closed.CompareAndSwap(false, true) && l.ln != nil {
		_ = l.ln.Close()
	}
}

func (l *tcpListener) Close(closeClients listeners.CloseFn) {
	l.stopAccepting()
	closeClients(l.id)
	if l.loop != nil {
		l.loop.stop()
	}
}

// tcpReadSize is how much a TCP connection reads from its socket at once:
// what mochi's own 2 KiB bufio.Reader read before it became a pooled buffer.
const tcpReadSize = 2 << 10

var tcpReadBufs = sync.Pool{New: func() any { b := make([]byte, tcpReadSize); return &b }}

// pooledConn is a TCP connection whose reads go through a buffer taken from
// a pool only while the socket has bytes for it, and given back once the
// reader has taken them all. mochi reads each connection on a goroutine of
// its own that, between packets, blocks in Read: with a buffer of its own
// (bufio, 2 KiB) every idle connection held one. pooledConn waits for the
// socket to be readable through RawConn.Read, which parks the goroutine in
// Go's poller with no buffer, and only then takes one and reads into it.
// Reads are as many and as large as bufio's were: one read(2) of up to
// tcpReadSize bytes when the buffer is empty, straight into the caller's
// slice when that is larger. Deadlines (mochi's keepalive) and Close
// interrupt the wait as they do a Read.
//
// Read is not safe for concurrent use (mochi has one reader per
// connection); everything else is the *net.TCPConn's.
type pooledConn struct {
	*net.TCPConn
	raw      syscall.RawConn
	readFunc func(fd uintptr) bool // c.readSocket, made once: a fill allocates nothing
	buf      *[]byte               // bytes read and not yet returned are (*buf)[r:w]; nil when there are none
	r, w     int
	rerr     error // the last read(2)'s error
}

func newPooledConn(tc *net.TCPConn) net.Conn {
	raw, err := tc.SyscallConn()
	if err != nil {
		return tc
	}
	c := &pooledConn{TCPConn: tc, raw: raw}
	c.readFunc = c.readSocket
	return c
}

func (c *pooledConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if c.buf == nil {
		if len(p) >= tcpReadSize {
			return c.TCPConn.Read(p) // as bufio.Reader does with a large read
		}
		if err := c.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, (*c.buf)[c.r:c.w])
	c.r += n
	if c.r == c.w {
		c.release()
	}
	return n, nil
}

// fill waits until the socket is readable, then reads what it has (up to
// tcpReadSize bytes) into a pooled buffer. Errors are a Read's: io.EOF, or
// a *net.OpError "read" wrapping the cause.
func (c *pooledConn) fill() error {
	if err := c.raw.Read(c.readFunc); err != nil { // the wait failed: deadline passed, connection closed
		if oe, ok := err.(*net.OpError); ok {
			oe.Op = "read" // not "raw-read": the error a Read would have returned
		}
		return err
	}
	if c.w > 0 {
		return nil
	}
	rerr := c.rerr
	c.release()
	if rerr == nil {
		return io.EOF
	}
	return &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError("read", rerr)}
}

// readSocket is what RawConn.Read calls: it reads the socket into a pooled
// buffer, or, if the socket has nothing yet, gives the buffer back and
// returns false so that RawConn.Read waits (holding no buffer) and calls it
// again.
func (c *pooledConn) readSocket(fd uintptr) bool {
	b := tcpReadBufs.Get().(*[]byte)
	var (
		n   int
		err error
	)
	for {
		n, err = syscall.Read(int(fd), *b)
		if err != syscall.EINTR {
			break
		}
	}
	if err == syscall.EAGAIN {
		tcpReadBufs.Put(b)
		return false
	}
	c.buf, c.r, c.w, c.rerr = b, 0, max(n, 0), err
	if err != nil {
		c.w = 0
	}
	return true
}

// release gives the buffer back to the pool.
func (c *pooledConn) release() {
	tcpReadBufs.Put(c.buf)
	c.buf, c.r, c.w, c.rerr = nil, 0, 0, nil
}
