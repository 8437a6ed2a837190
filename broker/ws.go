package broker

import (
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// wsListener serves MQTT over WebSocket from the HTTP server's /mqtt route
// rather than a port of its own (docs/operations.md), for networks where only the HTTP
// ports pass. gorilla answers the handshake; then a plain TCP connection
// moves to the event loop (loop.go), where nbio's WebSocket parser feeds
// the MQTT framer, and an HTTPS one stays on mochi's goroutines (wsConn).
type wsListener struct {
	id        string
	gate      *gate
	loop      *loop // connections go to this event loop; nil: to mochi's goroutines
	upgrader  websocket.Upgrader
	establish atomic.Pointer[listeners.EstablishFn]
	closed    atomic.Bool
}

var _ listeners.Listener = (*wsListener)(nil)

func newWSListener(id string, g *gate) *wsListener {
	return &wsListener{id: id, gate: g, upgrader: websocket.Upgrader{
		Subprotocols:    []string{"mqtt", "mqttv3.1"},
		CheckOrigin:     func(*http.Request) bool { return true }, // auth is MQTT's CONNECT
		ReadBufferSize:  2 << 10,
		WriteBufferSize: 2 << 10,
		// A connection takes a write buffer for each message it sends and
		// gives it back, instead of holding one for its whole life: most
		// connections are idle most of the time.
		WriteBufferPool: wsWriteBufs,
	}}
}

// wsWriteBufs is the Upgrader's WriteBufferPool (one pool per buffer size,
// as gorilla asks).
var wsWriteBufs = new(sync.Pool)

func (l *wsListener) ID() string              { return l.id }
func (l *wsListener) Address() string         { return "/mqtt" }
func (l *wsListener) Protocol() string        { return "ws" }
func (l *wsListener) Init(*slog.Logger) error { return nil }

// Serve records mochi's establish callback; connections arrive via ServeHTTP.
func (l *wsListener) Serve(establish listeners.EstablishFn) {
	l.establish.Store(&establish)
}

func (l *wsListener) stopAccepting() { l.closed.Store(true) }

func (l *wsListener) Close(closeClients listeners.CloseFn) {
	l.stopAccepting()
	closeClients(l.id)
	if l.loop != nil {
		l.loop.stop()
	}
}

// ServeHTTP upgrades the request and hands the connection to mochi on a
// goroutine of its own, then returns. Were mochi to read the connection on
// the HTTP server's goroutine, the server's per-connection state (its 4 KiB
// read and write buffers, the request, a deeper stack) would live as long
// as the connection; once the handler of a hijacked connection returns,
// net/http keeps none of it.
func (l *wsListener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	establish := l.establish.Load()
	if establish == nil || l.closed.Load() {
		http.Error(w, `{"code":"unavailable","message":"mqtt over websocket is not serving"}`, http.StatusServiceUnavailable)
		return
	}
	key, ok := l.gate.admit(remoteAddr(r))
	if !ok {
		http.Error(w, `{"code":"unavailable","message":"too many connections are logging in; retry later"}`, http.StatusServiceUnavailable)
		return
	}
	c, err := l.upgrader.Upgrade(w, r, nil)
	if err != nil {
		l.gate.leave(key)
		return // the upgrader has written the HTTP error
	}
	if tc, ok := plainTCP(c.NetConn()); l.loop != nil && ok {
		// gorilla's Conn is left to the garbage collector: the handshake
		// is done and no frame has been read (gorilla refuses a client
		// that sends one before the handshake's answer).
		l.loop.addWS(tc, key, c.Subprotocol())
		return
	}
	go func() {
		defer c.Close()
		_ = l.gate.serve(&wsConn{Conn: c.NetConn(), ws: c}, key, func(conn net.Conn) error { return (*establish)(l.id, conn) })
	}()
}

// plainTCP is the TCP connection a hijacked connection is, if it can move
// to the event loop: plain TCP, possibly wrapped by something that tells
// what it wraps (NetConn: the daemon's counted HTTP connection), and not
// TLS, whose records nbio would have to decrypt. nbio takes a
// *net.TCPConn only: anything else it would neither read nor close.
func plainTCP(conn net.Conn) (*net.TCPConn, bool) {
	for {
		switch c := conn.(type) {
		case *net.TCPConn:
			return c, true
		case *tls.Conn:
			return nil, false
		case interface{ NetConn() net.Conn }:
			conn = c.NetConn()
		default:
			return nil, false
		}
	}
}

// remoteAddr is the request's remote address as a net.Addr.
func remoteAddr(r *http.Request) net.Addr {
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return net.TCPAddrFromAddrPort(ap)
	}
	return &net.TCPAddr{}
}

// wsConn presents a WebSocket as the byte stream mochi reads MQTT from: each
// binary message is a run of bytes, which may split or join MQTT packets.
type wsConn struct {
	net.Conn
	ws *websocket.Conn
	r  io.Reader
	wm sync.Mutex
}

func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			typ, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if typ != websocket.BinaryMessage {
				return 0, errTextFrame
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if err == io.EOF {
			c.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

func (c *wsConn) Write(p []byte) (int, error) {
	c.wm.Lock()
	defer c.wm.Unlock()
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *wsConn) SetDeadline(t time.Time) error {
	if err := c.ws.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

func (c *wsConn) SetReadDeadline(t time.Time) error { return c.ws.SetReadDeadline(t) }

// SetWriteDeadline takes the write lock: gorilla allows one writer at a time,
// and the deadline is writer state.
func (c *wsConn) SetWriteDeadline(t time.Time) error {
	c.wm.Lock()
	defer c.wm.Unlock()
	return c.ws.SetWriteDeadline(t)
}

var errTextFrame = errors.New("websocket text frame: MQTT over WebSocket uses binary frames")
