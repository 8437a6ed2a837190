// Package client is the Go SDK of imqtt: an MQTT long connection (on paho)
// that delivers a user's messages in order and exactly once, sends with
// acknowledgement and retry, and an HTTP client for the short-connection API.
// The CLI (cmd/imqtt), bots, tests and the load tool are built on it.
//
// A Client keeps a sync cursor (docs/protocol.md#versions-and-offline-sync): on every (re)connect it holds live
// events back, syncs from the cursor until the server says it is complete,
// delivers what it missed and then the held events, dropping anything at or
// below the cursor, and syncs again whenever it sees a gap. A live event's
// version is only a claim (anyone who gets a publish onto the inbox can
// make it): the cursor moves only on what a sync reply vouched for, or on a
// live event that directly continues it, and a live event no sync confirms
// is dropped (Unconfirmed). An event or sync item that does not decode is
// skipped (Skipped), never waited for.
//
// Groups get the same promise per group, ordered by seq: the cursor holds a
// seq per group, one heads request on every (re)connect finds which groups
// moved, and a gap in a group's seq syncs that group (see groupSet for the
// rules). A group the user left while the device was away is dropped from
// the cursor and delivered as a group event with action ActionLeft.
//
// The message lifecycle (docs/protocol.md#message-lifecycle): Recall, Edit,
// React, Unreact, Delete and ClearConversation (Apply for any of them with
// a cmid of one's own) are acked and resent like Send; Typing is sent once
// at QoS 0; a reply is a Send with ReplyTo. Their events arrive typed
// (Event.Recall, Edit, Reaction, Delete, Receipt, Typing). A change of a
// message is an item of the stream like a message, with its own version
// (a seq in a group), so the exactly-once rules above hold for it too;
// receipts and typing are not stored and bypass the cursor. The HTTP
// client has the same calls, plus user settings (read receipts on or off)
// and group reads.
//
// Contacts, blocks, privacy, presence and group administration
// (docs/protocol.md#contacts-and-privacy, docs/http.md#group-administration)
// are HTTP calls (RequestContact, AcceptContact, RemoveContact, Contacts,
// Block, Unblock, Blocks, Presence, UserSettings, UpdateGroup,
// DisbandGroup, TransferGroup, MuteMember); what they cause arrives typed
// (Event.Contact, Block, Presence). A change of a group (renamed, muted,
// a new owner, disbanded) is stored in the group's log and arrives as an
// item of the group's stream, in seq order and exactly once like a message
// (Event.GroupChange). A disbanded group is synced up to the disband and
// no further, and heard once as a group event with action
// wire.GroupDisbanded. A group message whose sender the user blocked
// comes with Msg.Blocked set: the server marks it rather than drops it
// (the group's log is shared), and applications hide it. A send with TTL
// (1:1) burns after reading: both sides get a recall with Expired set.
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/imqtt/imqtt/wire"
)

// ErrClosed is returned by a Client's methods after Close.
var ErrClosed = errors.New("client closed")

// Config describes a Client. Server, User, Device and Token are required.
type Config struct {
	Server string // HTTP base URL, "http://127.0.0.1:8080"
	// MQTT is the broker as host:port (or a URL such as ssl://host:8883).
	// Empty: the endpoints of GET /v1/endpoints, best first, tried in turn;
	// failing that, Server's host with port 1883.
	MQTT   string
	User   string // in any case: Dial connects as its canonical (lower-case) form
	Device string
	Token  string // from Login; never logged

	Cursor  CursorStore  // where the sync cursor lives; nil: in memory from 0
	OnEvent func(Event)  // called from one goroutine, in order; nil: events are dropped
	Logger  *slog.Logger // nil: discard

	// Optional tuning; zero values take the defaults in parentheses.
	SyncLimit          int           // items per sync request (5000, the server's most; it answers in batches of 500)
	DisableCompression bool          // do not ask for gzip-compressed sync replies
	ResendInterval     time.Duration // Send resends an unacked message this often (3s)
	SyncTimeout        time.Duration // a sync request with no answer is sent again after (10s)
	// ResyncInterval: sync this often even without a sign of a gap (5m), so a
	// last event the broker dropped (a full client queue) is not missed for
	// long; negative turns it off.
	ResyncInterval time.Duration
	MinBackoff     time.Duration // first reconnect delay (250ms), doubled per failure
	MaxBackoff     time.Duration // reconnect delay cap (30s); each delay is jittered
	KeepAlive      time.Duration // MQTT keep-alive (30s)
	HTTPClient     *http.Client  // for /v1/endpoints (a 60s-timeout client)
}

// withDefaults fills the zero fields of the optional settings.
func (c Config) withDefaults() Config {
	if c.Cursor == nil {
		c.Cursor = &MemoryCursor{}
	}
	if c.OnEvent == nil {
		c.OnEvent = func(Event) {}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.SyncLimit <= 0 {
		// The server's most per request: it sends batches of 500 items
		// whatever the limit, so a larger one only saves round trips (a
		// catch-up of 50,000 messages: ~70k msgs/s at 500, ~130k at 5000).
		c.SyncLimit = 5000
	}
	if c.ResendInterval <= 0 {
		c.ResendInterval = 3 * time.Second
	}
	if c.SyncTimeout <= 0 {
		c.SyncTimeout = 10 * time.Second
	}
	if c.ResyncInterval == 0 {
		c.ResyncInterval = 5 * time.Minute
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = 250 * time.Millisecond
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 30 * time.Second
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = c.MinBackoff
	}
	if c.KeepAlive <= 0 {
		c.KeepAlive = 30 * time.Second
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.Server == "" && c.MQTT == "":
		return errors.New("client: Server or MQTT is required")
	case !wire.ValidUser(c.User):
		return fmt.Errorf("client: bad user ID %q", c.User)
	case !wire.ValidDevice(c.Device):
		return fmt.Errorf("client: bad device ID %q", c.Device)
	case c.Token == "":
		return errors.New("client: Token is required")
	}
	return nil
}

// Client is a live MQTT connection of one device. It reconnects by itself
// until Close, or until the server refuses its credentials (see Done).
// Its methods are safe for concurrent use.
type Client struct {
	cfg      Config
	log      *slog.Logger
	inbox    string // topics
	device   string
	queue    queue
	gens     atomic.Uint64 // numbers connections
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	dead     chan struct{} // closed when the client stops for good
	stopOnce sync.Once

	mu      sync.Mutex
	mc      mqtt.Client                  // the current connection; nil while down
	up      chan struct{}                // closed at the next connect
	synced  chan struct{}                // closed when a sync since the latest connect ended
	waiters map[string][]chan sendResult // Sends waiting for an ack, by cmid
	cur     Cursor                       // a copy of the loop's, for Cursor
	err     error                        // why the client stopped

	typing typingGate // the typing notices sent in the last second

	skipped     atomic.Uint64 // events and sync items that did not decode
	unconfirmed atomic.Uint64 // live events dropped because no sync confirmed them
}

type sendResult struct {
	ack wire.Ack
	err *wire.Error
}

// Dial connects the device and subscribes to its topics, retrying with
// backoff until ctx ends; refused credentials fail at once. After Dial the
// client syncs from the saved cursor and then delivers live events to
// OnEvent; ctx bounds only the dialling.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.User, _ = wire.NormUser(cfg.User) // the server takes only the canonical ID on MQTT
	cfg = cfg.withDefaults()
	cur, err := cfg.Cursor.Load()
	if err != nil {
		return nil, fmt.Errorf("dial %s/%s: %w", cfg.User, cfg.Device, err)
	}
	c := &Client{
		cfg:     cfg,
		log:     cfg.Logger.With("user", cfg.User, "device", cfg.Device),
		inbox:   wire.InboxTopic(cfg.User),
		device:  wire.DeviceTopic(cfg.User, cfg.Device),
		dead:    make(chan struct{}),
		up:      make(chan struct{}),
		synced:  make(chan struct{}),
		waiters: map[string][]chan sendResult{},
		cur:     cur.clone(),
	}
	c.queue.init()

	var conn *connection
	for attempt := 0; ; attempt++ {
		conn, err = c.connect(ctx, attempt)
		if err == nil {
			break
		}
		var fe *fatalError
		if errors.As(err, &fe) {
			return nil, fmt.Errorf("dial %s/%s: %w", cfg.User, cfg.Device, err)
		}
		c.log.Warn("connect failed", "attempt", attempt+1, "err", err)
		if !sleepCtx(ctx, c.backoff(attempt)) {
			return nil, fmt.Errorf("dial %s/%s: %w (last error: %v)", cfg.User, cfg.Device, ctx.Err(), err)
		}
	}

	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c.cancel = cancel
	r := &room{}
	seq := newSequencer(cur.Ver, cur.Epoch, ver, r)
	groups := newGroupSet(cur.Groups, r, cfg.SyncLimit, cfg.SyncTimeout)
	c.wg.Add(2)
	go c.loop(runCtx, seq, groups)
	go c.supervise(runCtx, conn)
	return c, nil
}

// Done is closed when the client has stopped: after Close, or when the
// server refused its credentials on a reconnect. Err says which.
func (c *Client) Done() <-chan struct{} { return c.dead }

// Err is nil while the client runs, ErrClosed after Close, or the reason it
// stopped by itself.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close disconnects and stops the client. The cursor was saved as events were
// delivered. Close is idempotent and waits for the client's goroutines, so it
// must not be called from OnEvent.
func (c *Client) Close() error {
	c.stop(ErrClosed)
	c.wg.Wait()
	return nil
}

// stop ends the client with err (once).
func (c *Client) stop(err error) {
	c.stopOnce.Do(func() {
		c.mu.Lock()
		c.err = err
		c.mu.Unlock()
		c.cancel()
		close(c.dead)
	})
}

// Cursor returns where the client is: the highest inbox version delivered
// without a gap and its epoch, and the same per group by seq.
func (c *Client) Cursor() Cursor {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur.clone()
}

// Connections returns how many times the client has dialled the broker,
// failed attempts included: 1 while the first connection holds, more after
// each reconnect.
func (c *Client) Connections() uint64 { return c.gens.Load() }

// Skipped returns how many inbox events and sync items the client could not
// decode (bad JSON, nested deeper than wire.MaxDepth, wrong field types) and
// skipped, each logged once (never with its payload). A sync batch's Upto
// moves the cursor past a skipped item, so one bad message never stalls the
// ones after it.
func (c *Client) Skipped() uint64 { return c.skipped.Load() }

// Unconfirmed returns how many live events the client dropped because the
// syncs they started did not confirm their version: a forged event, most
// likely, or one above a hole the server still waited for, which a later
// sync brought. Such an event never moves the cursor.
func (c *Client) Unconfirmed() uint64 { return c.unconfirmed.Load() }

// skip counts and logs an event or sync item that could not be decoded.
func (c *Client) skip(msg string, args ...any) {
	c.skipped.Add(1)
	c.log.Warn(msg, args...)
}

// WaitSynced waits until the client has caught up since the latest connect
// it has processed: the inbox sync has ended, the group heads have been
// answered and every group sync they started has ended, so everything the
// device missed has been delivered.
func (c *Client) WaitSynced(ctx context.Context) error {
	c.mu.Lock()
	ch := c.synced
	c.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-c.dead:
		return c.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Send sends a message and waits for its ack. An empty CMID is filled with a
// random one, an empty Type means text. Until the ack (or a final error) comes, the message is sent
// again with the same CMID every ResendInterval and after every reconnect;
// the server stores and delivers it once however often it arrives (docs/protocol.md#events).
// An error event from the server is returned as a *wire.Error, except the
// retryable codes unavailable and busy, which lead to another resend.
// A reply sets m.ReplyTo to the ID of a message of the same conversation:
// the event then carries a Quote of it. m.TTL (seconds, 1:1 only) makes
// it burn after reading: TTL seconds after the peer reads it, both sides
// get a recall with Expired set.
func (c *Client) Send(ctx context.Context, m wire.Send) (wire.Ack, error) {
	if err := checkTTL(m); err != nil {
		return wire.Ack{}, err
	}
	if m.CMID == "" {
		m.CMID = NewCMID()
	}
	if m.Type == "" {
		m.Type = "text"
	}
	payload, err := json.Marshal(m)
	if err != nil {
		return wire.Ack{}, err
	}
	ack, err := c.request(ctx, wire.TopicSend, m.CMID, payload)
	if err != nil {
		return wire.Ack{}, fmt.Errorf("send %s: %w", m.CMID, err)
	}
	return ack, nil
}

// request publishes payload on topic and waits for the ack of cmid on the
// device topic: a send's, or a change's (docs/protocol.md#message-lifecycle),
// which the server acks alike. Until the ack or a final error comes, it
// publishes the same payload again every ResendInterval and after every
// reconnect; the server does what it asks once however often it arrives.
// A Retryable error leads to another resend at the next tick.
func (c *Client) request(ctx context.Context, topic, cmid string, payload []byte) (wire.Ack, error) {
	ch := make(chan sendResult, 1)
	c.mu.Lock()
	c.waiters[cmid] = append(c.waiters[cmid], ch)
	c.mu.Unlock()
	defer c.unwait(cmid, ch)

	ticker := time.NewTicker(c.cfg.ResendInterval)
	defer ticker.Stop()
	for {
		up := c.publish(topic, payload)
		select {
		case r := <-ch:
			if r.err == nil {
				return r.ack, nil
			}
			if !Retryable(r.err) {
				return wire.Ack{}, r.err
			}
			c.log.Debug("server asks to retry", "topic", topic, "cmid", cmid, "code", r.err.Code)
			select { // resend at the next tick, not at once
			case <-ticker.C:
			case <-ctx.Done():
				return wire.Ack{}, ctx.Err()
			case <-c.dead:
				return wire.Ack{}, c.Err()
			}
		case <-ticker.C:
		case <-up:
		case <-ctx.Done():
			return wire.Ack{}, ctx.Err()
		case <-c.dead:
			return wire.Ack{}, c.Err()
		}
	}
}

// unwait removes a Send's waiter.
func (c *Client) unwait(cmid string, ch chan sendResult) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ws := c.waiters[cmid]
	for i, w := range ws {
		if w == ch {
			ws = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) == 0 {
		delete(c.waiters, cmid)
	} else {
		c.waiters[cmid] = ws
	}
}

// Read sets the read position with peer to the message uptoID (empty:
// everything so far). It returns once the server has the request; the new
// counts come to every device as an unread event.
func (c *Client) Read(ctx context.Context, peer, uptoID string) error {
	payload, err := json.Marshal(wire.Read{Peer: peer, Upto: uptoID})
	if err != nil {
		return err
	}
	for {
		c.mu.Lock()
		mc, up := c.mc, c.up
		c.mu.Unlock()
		if mc != nil {
			tok := mc.Publish(wire.TopicRead, 1, false, payload)
			select {
			case <-tok.Done():
				if tok.Error() == nil {
					return nil
				}
				c.log.Debug("read: publish failed", "err", tok.Error())
			case <-ctx.Done():
				return fmt.Errorf("read %s: %w", peer, ctx.Err())
			}
		}
		select { // wait for a connection that may work
		case <-up:
		case <-ctx.Done():
			return fmt.Errorf("read %s: %w", peer, ctx.Err())
		case <-c.dead:
			return fmt.Errorf("read %s: %w", peer, c.Err())
		}
	}
}

// publish sends payload at QoS 1 on the current connection, if any, without
// waiting for the broker. It returns a channel closed at the next connect.
func (c *Client) publish(topic string, payload []byte) <-chan struct{} {
	c.mu.Lock()
	mc, up := c.mc, c.up
	c.mu.Unlock()
	if mc != nil {
		mc.Publish(topic, 1, false, payload)
	}
	return up
}

// reply hands an ack or error event from the device topic to the Sends
// waiting for its cmid. It reports whether any was.
func (c *Client) reply(cmid string, r sendResult) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	ws := c.waiters[cmid]
	for _, w := range ws {
		select {
		case w <- r:
		default: // that Send has an answer already
		}
	}
	return len(ws) > 0
}
