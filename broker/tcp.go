package broker

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"
)

// tcpListener is mochi's TCP listener with one difference that matters: an
// Accept error (EMFILE when file descriptors run out, ECONNABORTED) does not
// end the accept loop for good; it waits and tries again.
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
