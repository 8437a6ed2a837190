package broker

import (
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"
)

// tcpListener is mochi's TCP listener with two differences that matter: an
// Accept error (EMFILE when file descriptors run out, ECONNABORTED) does not
// end the accept loop for good; it waits and tries again. And a plain TCP
// connection is read through a pooled buffer (pooledConn), so an idle one
// holds no read buffer.
type tcpListener struct {
	id, address string
	tlsConfig   *tls.Config
	log         *slog.Logger

	mu     sync.Mutex
	ln     net.Listener
	closed atomic.Bool
	wg     sync.WaitGroup
}

var _ listeners.Listener = (*tcpListener)(nil)

func newTCPListener(id, address string, tlsConfig *tls.Config, log *slog.Logger) *tcpListener {
	return &tcpListener{id: id, address: address, tlsConfig: tlsConfig, log: log}
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
		if tc, ok := conn.(*net.TCPConn); ok {
			conn = newPooledConn(tc)
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			if err := establish(l.id, conn); err != nil {
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
	raw  syscall.RawConn
	buf  *[]byte // bytes read and not yet returned are (*buf)[r:w]; nil when there are none
	r, w int
}

func newPooledConn(c *net.TCPConn) net.Conn {
	raw, err := c.SyscallConn()
	if err != nil {
		return c
	}
	return &pooledConn{TCPConn: c, raw: raw}
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
	var (
		buf  *[]byte
		n    int
		rerr error
	)
	err := c.raw.Read(func(fd uintptr) bool {
		b := tcpReadBufs.Get().(*[]byte)
		for {
			n, rerr = syscall.Read(int(fd), *b)
			if rerr != syscall.EINTR {
				break
			}
		}
		if rerr == syscall.EAGAIN {
			tcpReadBufs.Put(b) // not readable yet: wait without a buffer
			return false
		}
		buf = b
		return true
	})
	if err != nil { // the wait failed: deadline passed, connection closed
		if oe, ok := err.(*net.OpError); ok {
			oe.Op = "read" // not "raw-read": the error a Read would have returned
		}
		return err
	}
	if rerr != nil || n <= 0 {
		tcpReadBufs.Put(buf)
		if rerr == nil {
			return io.EOF
		}
		return &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError("read", rerr)}
	}
	c.buf, c.r, c.w = buf, 0, n
	return nil
}

// release gives the buffer back to the pool.
func (c *pooledConn) release() {
	tcpReadBufs.Put(c.buf)
	c.buf, c.r, c.w = nil, 0, 0
}
