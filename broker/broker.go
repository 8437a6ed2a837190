// Package broker wraps the embedded mochi-mqtt server: its listeners (TCP,
// TLS, WebSocket on the HTTP port), the limits imqtt sets on purpose, and the
// inline publish the IM core delivers through.
package broker

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/imqtt/imqtt/wire"
)

// The defaults of Options' limits, taken by their zero values (each is
// explained at its field); cmd/imqttd's flags default to the same constants.
const (
	DefaultMaxPacketSize    = 256 << 10
	DefaultMaxWritesPending = 256
	DefaultKeepalive        = 60   // seconds
	DefaultSessionExpiry    = 3600 // seconds
	DefaultMaxInflight      = 1024
	DefaultReadBuffer       = 16
	DefaultWriteBuffer      = 2 << 10
	DefaultConnectTimeout   = 10 * time.Second
	DefaultMaxPreauthPerIP  = 128
	DefaultMaxPreauth       = 4096
	DefaultMaxReadBacklog   = 16 << 20
	DefaultMaxWriteBacklog  = 2 << 20
)

// Options are the broker's limits and addresses; zero values take defaults.
type Options struct {
	MQTTAddr string      // plain MQTT over TCP, e.g. ":1883"; "" for none
	TLSAddr  string      // MQTT over TLS, e.g. ":8883"; used only with TLS
	TLS      *tls.Config // nil: no TLS listener

	// MaxPacketSize bounds one MQTT packet; a client that sends a larger one is
	// disconnected. mochi's 0 would let any client make the server allocate
	// 256 MB. Default 256 KiB.
	MaxPacketSize uint32
	// MaxWritesPending is each client's outbound queue in packets. mochi's
	// default (8192) costs ~64 KiB per connection; what overflows is dropped
	// (counted) and recovered by sync. Default 256.
	MaxWritesPending int32
	// Keepalive is imposed, in seconds, on clients that ask for 0 (mochi would
	// never reap them). Default 60.
	Keepalive uint16
	// SessionExpiry caps how long a disconnected persistent session is kept, in
	// seconds. Default 3600.
	SessionExpiry uint32
	// MaxInflight bounds unacknowledged QoS 1 deliveries per client. Default 1024.
	MaxInflight uint16
	// ReadBuffer sizes mochi's read buffer (a bufio.Reader), which each
	// connection holds for its whole life, idle or not. Default 16 bytes,
	// bufio's least: a plain TCP connection reads its socket 2 KiB at a time
	// into a buffer it holds only while those bytes wait (tcp.go), TLS and
	// WebSocket connections are buffered by their own layer, so a larger
	// one here only saves a few calls, and costs its size per connection.
	ReadBuffer int
	// WriteBuffer is how many bytes of queued packets mochi gathers into one
	// write (a buffer it allocates only while packets queue). Default 2 KiB.
	WriteBuffer int

	// ConnectTimeout is how long a new connection (TCP, TLS or WebSocket)
	// has to send its CONNECT; then it is closed. Default 10s.
	ConnectTimeout time.Duration
	// MaxPreauthPerIP bounds the connections from one address (an IPv6 /64)
	// that have not yet logged in; more are closed at once. Default 128.
	MaxPreauthPerIP int
	// MaxPreauth bounds the connections that have not yet logged in, from
	// all addresses together. Default 4096.
	MaxPreauth int
	// Refused, if set, is called with a fixed label for each connection or
	// packet a limit refuses (metrics.Metrics.Refused).
	Refused func(limit string)

	// GoroutineIO serves plain TCP as TLS is served, with mochi's two
	// goroutines per connection, instead of on the event loop (loop.go).
	GoroutineIO bool
	// MaxReadBacklog bounds the bytes a connection on the event loop may
	// have sent that have not been processed yet; past it the client is
	// disconnected (MQTT 5: DISCONNECT 0x96). Default 16 MiB, and at least
	// two packets of MaxPacketSize.
	MaxReadBacklog int
	// MaxWriteBacklog bounds the bytes written to a connection on the event
	// loop that its socket has not taken yet; past it the connection is
	// closed (a subscriber that stopped reading). It also bounds one packet
	// written. Default 2 MiB, and at least two packets of MaxPacketSize.
	MaxWriteBacklog int

	Logger *slog.Logger
}

func (o *Options) fill() {
	if o.MaxPacketSize == 0 {
		o.MaxPacketSize = DefaultMaxPacketSize
	}
	if o.MaxWritesPending <= 0 {
		o.MaxWritesPending = DefaultMaxWritesPending
	}
	if o.Keepalive == 0 {
		o.Keepalive = DefaultKeepalive
	}
	if o.SessionExpiry == 0 {
		o.SessionExpiry = DefaultSessionExpiry
	}
	if o.MaxInflight == 0 {
		o.MaxInflight = DefaultMaxInflight
	}
	if o.ReadBuffer <= 0 {
		o.ReadBuffer = DefaultReadBuffer
	}
	if o.WriteBuffer <= 0 {
		o.WriteBuffer = DefaultWriteBuffer
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.MaxPreauthPerIP <= 0 {
		o.MaxPreauthPerIP = DefaultMaxPreauthPerIP
	}
	if o.MaxPreauth <= 0 {
		o.MaxPreauth = DefaultMaxPreauth
	}
	if o.MaxReadBacklog <= 0 {
		o.MaxReadBacklog = DefaultMaxReadBacklog
	}
	if o.MaxWriteBacklog <= 0 {
		o.MaxWriteBacklog = DefaultMaxWriteBacklog
	}
	// Room for two of the largest packets, whatever was asked: a backlog
	// smaller than one packet would cut off a client that sent it.
	o.MaxReadBacklog = max(o.MaxReadBacklog, 2*int(o.MaxPacketSize))
	o.MaxWriteBacklog = max(o.MaxWriteBacklog, 2*int(o.MaxPacketSize))
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Broker is the embedded MQTT broker.
type Broker struct {
	srv  *mqtt.Server
	opts Options
	tcp  *tcpListener
	tls  *tcpListener
	ws   *wsListener
	gate *gate // counts and checks connections until they log in (gate.go)

	routes *routes // connected clients by user, for direct delivery
}

// New configures a broker; add hooks, then Start.
func New(opts Options) *Broker {
	opts.fill()
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = opts.MaxPacketSize
	caps.MaximumClientWritesPending = opts.MaxWritesPending
	caps.MaximumSessionExpiryInterval = opts.SessionExpiry
	caps.MaximumInflight = opts.MaxInflight
	// QoS 2 stays allowed: a 3.1.1 client cannot be told a maximum QoS, and
	// with MaximumQos 1 mochi answers its QoS 2 PUBLISH with a PUBACK instead
	// of a PUBREC, which standard clients treat as a protocol error. Uplink
	// sends are deduplicated by cmid anyway, and delivery is QoS 0 (Publish).
	// An ack must not echo the publish's properties (user properties,
	// response topic) back to the client.
	caps.Compatibilities.NoInheritedPropertiesOnAck = true
	// imqtt keeps no retained messages: with RetainAvailable 0 mochi stores
	// none and refuses a will with retain (0x9A) [MQTT-3.2.2-13]; the
	// protocolHook tells MQTT 5 clients and refuses PUBLISH with retain.
	caps.RetainAvailable = 0
	// mochi checks a PUBLISH's Topic Alias against this maximum, but never
	// sends it in CONNACK, where an absent Topic Alias Maximum means 0
	// (MQTT 5 §3.2.2.3.8): with 0 here, any alias is refused with
	// DISCONNECT 0x94 (Topic Alias invalid) as the client was told
	// [MQTT-3.2.2-17] [MQTT-3.3.2-9]. imqtt's uplink topics are a few bytes;
	// aliases would save nothing and cost a map per client.
	caps.TopicAliasMaximum = 0
	// mochi logs packets a client sent, password and payload included: its
	// logger drops them and rate-limits each source (log.go).
	mlog := newMochiLog(opts.Logger.With("component", "mqtt").Handler())
	srv := mqtt.New(&mqtt.Options{
		Capabilities:             caps,
		InlineClient:             true,
		Logger:                   slog.New(mlog),
		ClientNetReadBufferSize:  opts.ReadBuffer,
		ClientNetWriteBufferSize: opts.WriteBuffer,
	})
	mlog.lim.remote = func(id string) string {
		if cl, ok := srv.Clients.Get(id); ok {
			return cl.Net.Remote
		}
		return ""
	}
	b := &Broker{srv: srv, opts: opts, routes: newRoutes(), gate: newGate(opts)}
	b.ws = newWSListener("ws", b.gate)
	for _, h := range []mqtt.Hook{b.routes, &protocolHook{b: b}} {
		if err := srv.AddHook(h, nil); err != nil {
			panic(err) // only a duplicate hook ID fails, and these are the first hooks
		}
	}
	return b
}

// Server exposes mochi's server to the hooks that need it (CONNACK codes, kicks).
func (b *Broker) Server() *mqtt.Server { return b.srv }

// Keepalive is the keepalive imposed on clients that ask for none.
func (b *Broker) Keepalive() uint16 { return b.opts.Keepalive }

// AddHook adds a mochi hook; call before Start.
func (b *Broker) AddHook(h mqtt.Hook, config any) error { return b.srv.AddHook(h, config) }

// Start binds the listeners and serves. It returns once they are bound.
func (b *Broker) Start() error {
	if b.opts.MQTTAddr != "" {
		b.tcp = newTCPListener("tcp", b.opts.MQTTAddr, nil, b.gate, b.opts.Logger)
		if !b.opts.GoroutineIO {
			lp, err := newLoop("tcp", b.srv, b.gate, b.opts, b.opts.Logger)
			if err != nil {
				return err
			}
			b.tcp.loop = lp
		}
		if err := b.srv.AddListener(b.tcp); err != nil {
			return fmt.Errorf("mqtt listener %s: %w", b.opts.MQTTAddr, err)
		}
	}
	if b.opts.TLS != nil && b.opts.TLSAddr != "" {
		b.tls = newTCPListener("tls", b.opts.TLSAddr, b.opts.TLS, b.gate, b.opts.Logger)
		if err := b.srv.AddListener(b.tls); err != nil {
			return fmt.Errorf("mqtt tls listener %s: %w", b.opts.TLSAddr, err)
		}
	}
	if !b.opts.GoroutineIO {
		lp, err := newLoop("ws", b.srv, b.gate, b.opts, b.opts.Logger)
		if err != nil {
			return err
		}
		b.ws.loop = lp
	}
	if err := b.srv.AddListener(b.ws); err != nil {
		return fmt.Errorf("websocket listener: %w", err)
	}
	return b.srv.Serve()
}

// MQTTAddr is the bound address of the TCP listener ("" if none).
func (b *Broker) MQTTAddr() string {
	if b.tcp == nil {
		return ""
	}
	return b.tcp.Address()
}

// TLSAddr is the bound address of the TLS listener ("" if none).
func (b *Broker) TLSAddr() string {
	if b.tls == nil {
		return ""
	}
	return b.tls.Address()
}

// WebSocket is the handler to mount at /mqtt on the HTTP server.
func (b *Broker) WebSocket() http.Handler { return b.ws }

// Publish delivers payload to the topic's subscribers without ever blocking
// on one of them. It publishes at QoS 0 on purpose: reliability comes from
// versions and sync (docs/protocol.md#versions-and-offline-sync), not from MQTT redelivery. mochi's QoS 1 path
// takes each subscriber's client lock to pick a packet ID, and that lock is
// held by the subscriber's writer while it is blocked on a full socket, so one
// stalled subscriber would stall every delivery. At QoS 0 a full client queue
// drops the packet (counted by OnPublishDropped) and the client syncs it.
//
// A topic under a user (im/u/{user}/...) goes straight to that user's
// connected clients (direct.go, PublishUser); any other through mochi's
// Publish.
func (b *Broker) Publish(topic string, payload []byte) error {
	if user := wire.TopicUser(topic); user != "" {
		return b.PublishUser(user, topic, payload)
	}
	return b.srv.Publish(topic, payload, false, 0)
}

// PublishUser is Publish for a topic of user's (wire.InboxTopic,
// wire.DeviceTopic), named by the caller so that the topic is not read
// back: the delivery path (internal/deliver) knows both. It goes to user's
// connected clients subscribed to topic (direct.go), or through mochi's
// Publish where direct delivery is not available.
func (b *Broker) PublishUser(user, topic string, payload []byte) error {
	if b.deliver(user, topic, payload) {
		return nil
	}
	return b.srv.Publish(topic, payload, false, 0)
}

// Clients is the number of connected clients.
func (b *Broker) Clients() int64 { return atomic.LoadInt64(&b.srv.Info.ClientsConnected) }

// Kick disconnects the client with this ID if it is connected.
func (b *Broker) Kick(clientID string, code packets.Code) bool {
	cl, ok := b.srv.Clients.Get(clientID)
	if !ok || cl.Closed() {
		return false
	}
	b.disconnect(cl, code)
	return true
}

// disconnect ends a client's connection: with a DISCONNECT carrying code
// for MQTT 5, without one below, where the server sends no DISCONNECT
// (MQTT 3.1.1 §3.14 defines it from client to server only).
func (b *Broker) disconnect(cl *mqtt.Client, code packets.Code) {
	if cl.Properties.ProtocolVersion < 5 {
		cl.Stop(code)
		return
	}
	_ = b.srv.DisconnectClient(cl, code)
}

// refused counts a refusal by one of the broker's limits.
func (b *Broker) refused(limit string) {
	if b.opts.Refused != nil {
		b.opts.Refused(limit)
	}
}

// StopAccepting closes the listeners to new connections; clients already
// connected stay until Close.
func (b *Broker) StopAccepting() {
	for _, l := range []*tcpListener{b.tcp, b.tls} {
		if l != nil {
			l.stopAccepting()
		}
	}
	b.ws.stopAccepting()
}

// closeWait bounds how long Close waits for connections to end before it
// stops mochi anyway.
const closeWait = 10 * time.Second

// Close disconnects every client and stops the broker.
//
// It disconnects the clients itself and waits for their connections to end
// before mochi's Close: mochi 2.7.9's Close lists a listener's clients under
// a read lock that it takes twice (Clients.GetByListener calls Len), so a
// connection ending at that moment (Clients.Delete, a writer) deadlocks it
// and shutdown hangs for good (mochi-mqtt/server#488; seen once in seven
// SIGTERMs with 10,000 clients leaving). With no connection left, nothing
// writes to the clients map while mochi reads it.
func (b *Broker) Close() error {
	for _, cl := range b.srv.Clients.GetAll() {
		if !cl.Net.Inline && !cl.Closed() {
			b.disconnect(cl, packets.ErrServerShuttingDown)
		}
	}
	deadline := time.Now().Add(closeWait)
	for b.Clients() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	err := b.srv.Close()
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// acceptBackoff is how long the accept loop waits after a temporary error
// such as EMFILE, doubling up to a second, as net/http does.
func acceptBackoff(d time.Duration) time.Duration {
	if d == 0 {
		return 5 * time.Millisecond
	}
	return min(2*d, time.Second)
}

// HasSubscriber reports whether clientID is subscribed to a filter matching topic.
func (b *Broker) HasSubscriber(topic, clientID string) bool {
	_, ok := b.srv.Topics.Subscribers(topic).Subscriptions[clientID]
	return ok
}

// ClientInfo describes one connected client for operators.
type ClientInfo struct {
	ID            string
	User          string // the CONNECT username
	Remote        string // remote address, host:port
	Listener      string // tcp, tls or ws
	Protocol      byte   // 4: MQTT 3.1.1, 5: MQTT 5
	Keepalive     uint16 // seconds, as granted
	Clean         bool
	Inflight      int // unacknowledged QoS 1 deliveries
	Subscriptions int
}

// Subscription is one filter a client holds.
type Subscription struct {
	Filter string
	QoS    byte
}

func clientInfo(cl *mqtt.Client) ClientInfo {
	return ClientInfo{
		ID: cl.ID, User: string(cl.Properties.Username), Remote: cl.Net.Remote, Listener: cl.Net.Listener,
		Protocol: cl.Properties.ProtocolVersion, Keepalive: cl.State.Keepalive, Clean: cl.Properties.Clean,
		Inflight: cl.State.Inflight.Len(), Subscriptions: cl.State.Subscriptions.Len(),
	}
}

// ClientList returns the connected clients, in no order: not the inline
// client, not persistent sessions whose connection has ended.
func (b *Broker) ClientList() []ClientInfo {
	all := b.srv.Clients.GetAll()
	out := make([]ClientInfo, 0, len(all))
	for _, cl := range all {
		if cl.Net.Inline || cl.Closed() {
			continue
		}
		out = append(out, clientInfo(cl))
	}
	return out
}

// ClientDetail returns a connected client and its subscriptions, sorted by filter.
func (b *Broker) ClientDetail(id string) (ClientInfo, []Subscription, bool) {
	cl, ok := b.srv.Clients.Get(id)
	if !ok || cl.Net.Inline || cl.Closed() {
		return ClientInfo{}, nil, false
	}
	subs := []Subscription{}
	for filter, s := range cl.State.Subscriptions.GetAll() {
		subs = append(subs, Subscription{Filter: filter, QoS: s.Qos})
	}
	slices.SortFunc(subs, func(a, b Subscription) int { return strings.Compare(a.Filter, b.Filter) })
	return clientInfo(cl), subs, true
}
