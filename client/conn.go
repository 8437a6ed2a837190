package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"strings"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/imqtt/imqtt/wire"
)

// fatalError is a connect failure that retrying cannot fix: the server
// refused the credentials, the client ID or the subscriptions.
type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }
func (e *fatalError) Unwrap() error { return e.err }

// ErrRefused is wrapped by connect errors the server gave at CONNACK or
// SUBACK: bad credentials, a client ID not of the user, a refused topic.
var ErrRefused = errors.New("refused by the server")

// connection is one MQTT connection, up and subscribed.
type connection struct {
	gen   uint64 // counts connections from 1
	mc    mqtt.Client
	addr  string
	lost  chan error // receives once when the connection drops
	since time.Time
}

// stableAfter is how long a connection must last for the next reconnect to
// start again from the shortest backoff (so a takeover ping-pong between two
// processes of one device slows down).
const stableAfter = 10 * time.Second

// supervise keeps the client connected: when conn drops it reconnects with
// jittered exponential backoff until ctx ends or the server refuses.
func (c *Client) supervise(ctx context.Context, conn *connection) {
	defer c.wg.Done()
	c.setUp(conn)
	attempt := 0
	for {
		select {
		case err := <-conn.lost:
			c.log.Warn("connection lost", "addr", conn.addr, "err", err)
		case <-ctx.Done():
			c.setDown(conn)
			conn.mc.Disconnect(250)
			return
		}
		c.setDown(conn)
		if time.Since(conn.since) >= stableAfter {
			attempt = 0
		}
		for {
			if !sleepCtx(ctx, c.backoff(attempt)) {
				return
			}
			attempt++
			next, err := c.connect(ctx, attempt)
			if err == nil {
				conn = next
				break
			}
			var fe *fatalError
			if errors.As(err, &fe) {
				c.log.Error("reconnect refused; stopping", "err", err)
				c.stop(err)
				return
			}
			if ctx.Err() != nil {
				return
			}
			c.log.Warn("reconnect failed", "attempt", attempt, "err", err)
		}
		c.log.Info("reconnected", "addr", conn.addr)
		c.setUp(conn)
	}
}

// setUp publishes conn as the current connection and tells the loop to sync.
func (c *Client) setUp(conn *connection) {
	c.mu.Lock()
	c.mc = conn.mc
	close(c.up)
	c.up = make(chan struct{})
	c.mu.Unlock()
	c.queue.push(item{kind: itemUp, gen: conn.gen})
}

// setDown forgets conn and tells the loop.
func (c *Client) setDown(conn *connection) {
	c.mu.Lock()
	if c.mc == conn.mc {
		c.mc = nil
	}
	c.mu.Unlock()
	c.queue.push(item{kind: itemDown, gen: conn.gen})
}

// connect opens one connection and subscribes to the inbox and device
// topics at QoS 1. attempt picks among several endpoints.
func (c *Client) connect(ctx context.Context, attempt int) (*connection, error) {
	addr, err := c.brokerAddr(ctx, attempt)
	if err != nil {
		return nil, err
	}
	conn := &connection{gen: c.gens.Add(1), addr: addr, lost: make(chan error, 1)}
	opts := mqtt.NewClientOptions().
		AddBroker(brokerURL(addr)).
		SetClientID(wire.ClientID(c.cfg.User, c.cfg.Device)).
		SetUsername(c.cfg.User).
		SetPassword(c.cfg.Token).
		SetProtocolVersion(4).
		SetCleanSession(true).
		SetAutoReconnect(false). // supervise reconnects, with jitter and a fresh endpoint
		SetConnectRetry(false).
		SetOrderMatters(true).
		SetKeepAlive(c.cfg.KeepAlive).
		SetConnectTimeout(10 * time.Second).
		SetWriteTimeout(10 * time.Second).
		SetDefaultPublishHandler(c.handler(conn.gen)).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			select {
			case conn.lost <- err:
			default:
			}
		})
	if isTCPURL(brokerURL(addr)) {
		opts.SetCustomOpenConnectionFn(OpenBufferedTCP)
	}
	conn.mc = mqtt.NewClient(opts)
	tok := conn.mc.Connect()
	if err := waitToken(ctx, tok); err != nil {
		conn.mc.Disconnect(0)
		// The return code only once the token is done: paho writes it on
		// its own goroutine, and ctx may have ended first (a data race).
		if ct, ok := tok.(*mqtt.ConnectToken); ok && tokenDone(tok) && refusedForGood(ct.ReturnCode()) {
			return nil, &fatalError{fmt.Errorf("connect %s: %w: %v", addr, ErrRefused, err)}
		}
		return nil, fmt.Errorf("connect %s: %w", addr, err)
	}
	sub := conn.mc.SubscribeMultiple(map[string]byte{c.inbox: 1, c.device: 1}, c.handler(conn.gen))
	if err := waitToken(ctx, sub); err != nil {
		conn.mc.Disconnect(0)
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	if st, ok := sub.(*mqtt.SubscribeToken); ok {
		for topic, code := range st.Result() {
			if code >= 0x80 {
				conn.mc.Disconnect(0)
				return nil, &fatalError{fmt.Errorf("subscribe %s: %w (code %#x)", topic, ErrRefused, code)}
			}
		}
	}
	conn.since = time.Now()
	return conn, nil
}

// refusedForGood reports CONNACK codes that the same credentials will get again.
func refusedForGood(rc byte) bool {
	switch rc {
	case packets.ErrRefusedBadUsernameOrPassword, packets.ErrRefusedNotAuthorised, packets.ErrRefusedIDRejected:
		return true
	}
	return false
}

// tokenDone reports whether a paho token has completed.
func tokenDone(tok mqtt.Token) bool {
	select {
	case <-tok.Done():
		return true
	default:
		return false
	}
}

// waitToken waits for a paho token or ctx.
func waitToken(ctx context.Context, tok mqtt.Token) error {
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// brokerAddr is Config.MQTT, or an endpoint from the server (rotating with
// attempt), or Server's host at port 1883.
func (c *Client) brokerAddr(ctx context.Context, attempt int) (string, error) {
	if c.cfg.MQTT != "" {
		return c.cfg.MQTT, nil
	}
	h := &HTTP{Server: c.cfg.Server, Client: c.cfg.HTTPClient}
	ectx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	eps, err := h.Endpoints(ectx)
	if err != nil {
		c.log.Debug("no endpoints from the server; deriving the broker from the server URL", "err", err)
	}
	var addrs []string
	for _, e := range eps.Endpoints {
		if e.MQTT != "" {
			addrs = append(addrs, e.MQTT)
		}
	}
	return PickBroker(c.cfg.Server, addrs, attempt)
}

// PickBroker chooses the MQTT address for a connect attempt: endpoints
// (best first) in turn, starting again after the last; with none, the host
// of server at port 1883. An endpoint without a usable host (":1883",
// "0.0.0.0:1883", "[::]:1883": a server bound to all interfaces) takes
// server's host.
func PickBroker(server string, endpoints []string, attempt int) (string, error) {
	u, err := url.Parse(server)
	host := ""
	if err == nil {
		host = u.Hostname()
	}
	if len(endpoints) == 0 {
		if host == "" {
			return "", fmt.Errorf("no MQTT endpoint and no host in server URL %q", server)
		}
		return net.JoinHostPort(host, "1883"), nil
	}
	ep := endpoints[attempt%len(endpoints)]
	if strings.Contains(ep, "://") {
		return ep, nil
	}
	h, port, err := net.SplitHostPort(ep)
	if err != nil {
		return "", fmt.Errorf("bad MQTT endpoint %q: %w", ep, err)
	}
	if ip := net.ParseIP(h); h == "" || (ip != nil && ip.IsUnspecified()) {
		if host == "" {
			return "", fmt.Errorf("MQTT endpoint %q has no host and neither has server URL %q", ep, server)
		}
		h = host
	}
	return net.JoinHostPort(h, port), nil
}

// brokerURL turns host:port into a paho broker URL; a URL stays as it is.
func brokerURL(addr string) string {
	if strings.Contains(addr, "://") {
		return addr
	}
	return "tcp://" + addr
}

// backoff is the delay before reconnect attempt n (from 0): MinBackoff
// doubled per attempt up to MaxBackoff, then "equal jitter": a uniformly
// random point in its upper half, so a fleet of clients does not reconnect
// in step.
func (c *Client) backoff(n int) time.Duration {
	return jitteredBackoff(c.cfg.MinBackoff, c.cfg.MaxBackoff, n, rand.Float64())
}

// jitteredBackoff is backoff with the random number r in [0, 1) given.
func jitteredBackoff(lo, hi time.Duration, n int, r float64) time.Duration {
	d := lo
	for i := 0; i < n && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return d/2 + time.Duration(r*float64(d/2))
}

// sleepCtx sleeps for d or until ctx ends; it reports whether it slept fully.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
