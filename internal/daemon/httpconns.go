package daemon

import (
	"crypto/tls"
	"net"
	"net/http"
	"sync"

	"github.com/imqtt/imqtt/broker"
)

// The HTTP listeners' connection caps. net/http bounds how long a connection
// may take over its headers (ReadHeaderTimeout) and body (internal/api/deadline.go),
// but not how many connections one address holds open: about 20,000 idle
// sockets took every file descriptor, and MQTT and HTTP both stopped
// answering. Like nginx's limit_conn, each address (an IPv6 /64) may hold
// HTTPConnsPerIP connections and all together HTTPConns; past either a new
// connection is closed at once, before a byte is read, and counted
// (http_conns_per_ip, http_conns_total). A connection leaves the count when
// it closes, or when it is hijacked for MQTT over WebSocket: from then on it
// is an MQTT connection, which the broker's gate counts until it logs in.

// The defaults: a browser opens six connections to a host, a NAT of a few
// dozen users a few hundred; the total leaves room under a typical 65,536
// descriptor limit for the MQTT connections.
const (
	DefaultHTTPConnsPerIP = 256
	DefaultHTTPConns      = 16384
)

// limitedListener admits the connections its counter allows.
type limitedListener struct {
	net.Listener
	conns   *broker.ConnCounter
	refused func(limit string)
}

func (l *limitedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key, over := l.conns.Admit(c.RemoteAddr())
		switch over {
		case broker.OverPerIP:
			l.refused("http_conns_per_ip")
		case broker.OverAll:
			l.refused("http_conns_total")
		}
		if over != broker.Under {
			_ = c.Close()
			continue
		}
		cc := &countedConn{Conn: c}
		cc.leave = sync.OnceFunc(func() { l.conns.Leave(key) })
		return cc, nil
	}
}

// countedConn leaves its counter once: when it closes or is hijacked.
type countedConn struct {
	net.Conn
	leave func()
}

func (c *countedConn) Close() error {
	c.leave()
	return c.Conn.Close()
}

// NetConn is the TCP connection under the count: once hijacked for MQTT
// over WebSocket (and so out of the count), the broker moves a plain one
// onto its event loop (broker/loop.go), which needs the *net.TCPConn.
func (c *countedConn) NetConn() net.Conn { return c.Conn }

// releaseHijacked is the http.Server's ConnState hook: a hijacked
// connection (MQTT over WebSocket) leaves the HTTP count.
func releaseHijacked(c net.Conn, state http.ConnState) {
	if state != http.StateHijacked {
		return
	}
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if cc, ok := c.(*countedConn); ok {
		cc.leave()
	}
}

// httpCaps fills in the defaults (0) of the HTTP connection caps; a negative
// cap is no cap.
func httpCaps(perIP, all int) (int, int) {
	fill := func(v, def int) int {
		switch {
		case v == 0:
			return def
		case v < 0:
			return int(^uint(0) >> 1)
		}
		return v
	}
	return fill(perIP, DefaultHTTPConnsPerIP), fill(all, DefaultHTTPConns)
}
