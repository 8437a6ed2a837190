// Package cluster joins imqttd nodes into one service over Redis (scale-out
// mode): the bus carries events between nodes, the registry lists the live
// nodes for GET /v1/endpoints, and the lease gives each node its own
// snowflake node number. The store (MongoDB) and the shared state
// (state/redis) are elsewhere; this package only moves things between nodes.
//
// # Routing
//
// A user event (a 1:1 message, an unread count, a group membership change
// for that user) goes to exactly the nodes that hold one of the user's
// devices, found in the presence records (state/redis DevicesOf, one
// pipelined round trip per batch of events). A group message goes to every
// node once, on one broadcast channel, and each node delivers it to its own
// connected members from its fan-out index (chat/fanout.go).
//
// Why the two: at 100 nodes, broadcasting a 1:1 message would make Redis
// send it to 100 nodes and 99 of them parse and drop it, so every node's
// inbound traffic would be the whole cluster's; exact routing costs one
// presence lookup (pipelined) and usually one PUBLISH. For a group of 10,000
// members, exact routing would cost 10,000 presence lookups per message,
// while the broadcast costs one PUBLISH that Redis copies to 100
// subscribers, and each node walks only its own online members. A
// group→nodes map would save the copies to nodes without members, at the
// price of keeping that map right through every connect and disconnect.
//
// Delivery between nodes is at most once, like delivery to a client whose
// queue is full. During a Redis outage events wait and are retried for up
// to 10 s; past that, or for a device whose node had not yet re-recorded it
// after Redis lost its data (at most a second), an event is not delivered
// live, but it is in the store and the device gets it by sync (it sees the
// gap at its next event, or syncs when it reconnects). Events from one node reach another in the order sent: one
// goroutine sends them, pipelined on one connection.
package cluster

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/imqtt/imqtt/state"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/wire"
)

// Locator finds the nodes of users' devices (state/redis).
type Locator interface {
	DevicesOf(ctx context.Context, users []string) (map[string][]state.Device, error)
}

// Local is what a node does with what other nodes send it (the delivery
// path's Arrived, chat.Service's fan-out).
type Local interface {
	// Arrived delivers an event for user (its wire form) to the user's
	// devices connected to this node.
	Arrived(user string, payload []byte)
	FanOutLocal(m store.Message)
	MemberLocal(group, user string, joined bool)
	// TypingLocal relays a group's typing event to its members connected
	// to this node.
	TypingLocal(group string, ev wire.TypingEvent)
	// KickLocal disconnects a client connected to this node, if it is.
	KickLocal(clientID string)
	// EveryoneLocal delivers an event to every user connected to this node
	// (an operator's notice to all).
	EveryoneLocal(payload []byte)
	// ForgetToken drops a revoked token from this node's cache.
	ForgetToken(hash string)
}

// BusOptions configure a Bus.
type BusOptions struct {
	Prefix  string // key and channel prefix, shared by the cluster's nodes
	Node    string // this node's ID
	Locator Locator
	Local   Local
	Logger  *slog.Logger
	// QueueLen bounds the events waiting to be sent (default 65,536);
	// past it events are dropped and counted, and devices sync.
	QueueLen int
	// Dropped, if set, is called for each event dropped (full queue, Redis
	// down).
	Dropped func(n int)
}

// record kinds on the wire. An event travels as its wire form only: the
// node that sent it has counted it (internal/deliver), so the receiving
// node neither reads nor counts it. A node skips a kind it does not know.
const (
	kindUser   = 'u' // key: user, payload: the event
	kindGroup  = 'g' // payload: a store.Message as JSON
	kindMember = 'm' // key: group, payload: user, then 1 joined / 0 left
	kindKick   = 'k' // key: user, payload: client ID
	kindAll    = 'a' // payload: an event for every connected user
	kindToken  = 't' // key: the hash of a revoked token
	kindTyping = 'y' // key: group, payload: a wire.TypingEvent as JSON
	// kindUsers: one event for many users (a presence change to a page of
	// contacts). Queued with the users apart; routed, one record per node
	// and usersPerRecord users: payload the users (a count, then each),
	// then the event.
	kindUsers = 'n'
)

// usersPerRecord bounds the users of one routed kindUsers record, so a
// record stays well under maxMessage.
const usersPerRecord = 1000

type record struct {
	kind    byte
	key     string
	payload []byte
	node    string   // set: sent to this node's channel, not routed by user (KickOn, and a routed record kept for a retry)
	users   []string // kindUsers before routing: whom payload is for
}

// maxMessage bounds one PUBLISH; a pass's records for a node are split
// into messages of about this size.
const maxMessage = 256 << 10

// Bus carries events between the nodes of a cluster. It implements
// chat.Remote and deliver.Remote. Create it with NewBus, then Start; Close flushes and stops.
type Bus struct {
	rdb  goredis.UniversalClient
	opts BusOptions
	log  *slog.Logger

	q       chan record
	mu      sync.RWMutex // guards closed against sends on q
	closed  bool
	sent    chan struct{} // closed when the sender has flushed q
	ps      *goredis.PubSub
	recvEnd chan struct{}
	dropped atomic.Int64
}

// NewBus returns a Bus on rdb.
func NewBus(rdb goredis.UniversalClient, opts BusOptions) *Bus {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.QueueLen <= 0 {
		opts.QueueLen = 65536
	}
	return &Bus{rdb: rdb, opts: opts, log: opts.Logger, q: make(chan record, opts.QueueLen),
		sent: make(chan struct{}), recvEnd: make(chan struct{})}
}

func (b *Bus) nodeChannel(node string) string { return b.opts.Prefix + "bus:node:" + node }
func (b *Bus) allChannel() string             { return b.opts.Prefix + "bus:all" }

// Start subscribes to this node's channel and the broadcast channel, and
// starts sending. go-redis resubscribes by itself after Redis comes back.
func (b *Bus) Start(ctx context.Context) error {
	b.ps = b.rdb.Subscribe(ctx, b.nodeChannel(b.opts.Node), b.allChannel())
	for range 2 { // one confirmation per channel
		if _, err := b.ps.Receive(ctx); err != nil {
			b.ps.Close()
			return fmt.Errorf("cluster bus: subscribe: %w", err)
		}
	}
	go b.receive(b.ps.Channel(goredis.WithChannelSize(4096)))
	go b.send()
	return nil
}

// Close sends what is queued (for at most ctx), then unsubscribes.
func (b *Bus) Close(ctx context.Context) error {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		close(b.q)
	}
	b.mu.Unlock()
	var err error
	select {
	case <-b.sent:
	case <-ctx.Done():
		err = fmt.Errorf("cluster bus: flush: %w", ctx.Err())
	}
	if b.ps != nil {
		b.ps.Close()
		<-b.recvEnd
	}
	return err
}

// Dropped is how many events this node could not send.
func (b *Bus) Dropped() int64 { return b.dropped.Load() }

// User queues an event for user's devices on other nodes.
func (b *Bus) User(user string, payload []byte) {
	b.put(record{kind: kindUser, key: user, payload: payload})
}

// Users queues one event for many users' devices on other nodes: each
// node that holds any of them gets one record (per usersPerRecord users),
// not one per user. users must not change after the call.
func (b *Bus) Users(users []string, payload []byte) {
	if len(users) > 0 {
		b.put(record{kind: kindUsers, users: users, payload: payload})
	}
}

// Group queues a committed group message for every other node's fan-out.
func (b *Bus) Group(m store.Message) {
	payload, err := json.Marshal(m)
	if err != nil {
		b.log.Error("cluster bus: encode group message", "err", err)
		return
	}
	b.put(record{kind: kindGroup, key: m.Group, payload: payload})
}

// Member queues a membership change for every other node.
func (b *Bus) Member(group, user string, joined bool) {
	flag := byte('0')
	if joined {
		flag = '1'
	}
	b.put(record{kind: kindMember, key: group, payload: append([]byte(user), flag)})
}

// Typing queues a group's typing event for every other node's members.
func (b *Bus) Typing(group string, ev wire.TypingEvent) {
	payload, err := json.Marshal(ev)
	if err != nil {
		return
	}
	b.put(record{kind: kindTyping, key: group, payload: payload})
}

// Kick disconnects clientID, one of user's devices, wherever it is
// connected (a revoked token).
func (b *Bus) Kick(user, clientID string) {
	b.put(record{kind: kindKick, key: user, payload: []byte(clientID)})
}

// KickOn disconnects clientID on node: a device that reconnected here
// while its old connection there has not yet been noticed dead.
func (b *Bus) KickOn(node, clientID string) {
	if node != b.opts.Node {
		b.put(record{kind: kindKick, payload: []byte(clientID), node: node})
	}
}

// Everyone queues an event for every user connected to another node.
func (b *Bus) Everyone(payload []byte) {
	b.put(record{kind: kindAll, payload: payload})
}

// Revoked tells every other node to forget a revoked token.
func (b *Bus) Revoked(hash string) { b.put(record{kind: kindToken, key: hash}) }

// SetLocal sets what receives other nodes' events; call it before Start
// (a Bus and its chat.Service refer to each other).
func (b *Bus) SetLocal(l Local) { b.opts.Local = l }

func (b *Bus) put(r record) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		b.drop(1)
		return
	}
	select {
	case b.q <- r:
	default:
		b.drop(1)
	}
}

func (b *Bus) drop(n int) {
	b.dropped.Add(int64(n))
	if b.opts.Dropped != nil {
		b.opts.Dropped(n)
	}
}

// Retrying: while Redis is away, what could not be routed or published is
// kept and tried again every retryEvery for up to retryFor, so a short
// outage delays events instead of losing them; past that they are dropped
// (counted) and devices sync.
const (
	retryEvery = 200 * time.Millisecond
	retryFor   = 10 * time.Second
)

// send takes whatever is queued, finds the nodes of the users concerned,
// and publishes it in one pipeline, until q is closed and empty.
func (b *Bus) send() {
	defer close(b.sent)
	var (
		retry       []record
		failedSince time.Time
	)
	batch := make([]record, 0, 1024)
	for {
		batch = append(batch[:0], retry...)
		closed := false
		if len(retry) == 0 {
			r, ok := <-b.q
			if !ok {
				return
			}
			batch = append(batch, r)
		} else { // retry at the next event, or after retryEvery
			t := time.NewTimer(retryEvery)
			select {
			case r, ok := <-b.q:
				if ok {
					batch = append(batch, r)
				} else {
					closed = true
				}
			case <-t.C:
			}
			t.Stop()
		}
	fill:
		for !closed && len(batch) < cap(batch) {
			select {
			case r, ok := <-b.q:
				if !ok {
					closed = true
					break fill
				}
				batch = append(batch, r)
			default:
				break fill
			}
		}
		retry = b.publish(batch)
		switch {
		case len(retry) == 0:
			failedSince = time.Time{}
		case failedSince.IsZero():
			failedSince = time.Now()
		}
		if len(retry) > 0 && (closed || time.Since(failedSince) > retryFor) {
			b.log.Warn("cluster bus: giving up on events", "events", len(retry))
			b.drop(len(retry))
			retry, failedSince = nil, time.Time{}
		}
		if closed { // Close: q is drained, nothing is retried
			return
		}
	}
}

// publish routes and sends one batch, and returns the records to try again:
// those whose devices could not be looked up or whose PUBLISH failed.
func (b *Bus) publish(batch []record) (retry []record) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var users []string
	for _, r := range batch {
		switch {
		case r.node != "":
		case r.kind == kindUser || r.kind == kindKick:
			users = append(users, r.key)
		case r.kind == kindUsers:
			users = append(users, r.users...)
		}
	}
	slices.Sort(users)
	users = slices.Compact(users)
	var where map[string][]state.Device
	if len(users) > 0 {
		var err error
		if where, err = b.opts.Locator.DevicesOf(ctx, users); err != nil {
			b.log.Warn("cluster bus: locate devices", "users", len(users), "err", err)
		}
	}
	out := map[string]*frames{} // channel -> messages
	add := func(ch string, r record) {
		f := out[ch]
		if f == nil {
			f = &frames{origin: b.opts.Node}
			out[ch] = f
		}
		f.add(r)
	}
	for _, r := range batch {
		switch {
		case r.node != "":
			add(b.nodeChannel(r.node), r)
		case r.kind == kindUsers:
			if where == nil {
				retry = append(retry, r) // the lookup failed
				continue
			}
			for _, routed := range b.routeUsers(r, where) {
				add(b.nodeChannel(routed.node), routed)
			}
		case r.kind != kindUser && r.kind != kindKick:
			add(b.allChannel(), r)
		default:
			ds, ok := where[r.key]
			if !ok {
				retry = append(retry, r) // the lookup failed
				continue
			}
			var nodes []string
			for _, d := range ds {
				if d.Node != b.opts.Node && !slices.Contains(nodes, d.Node) {
					nodes = append(nodes, d.Node)
				}
			}
			for _, n := range nodes {
				routed := r
				routed.node = n
				add(b.nodeChannel(n), routed)
			}
		}
	}
	if len(out) == 0 {
		return retry
	}
	channels := slices.Sorted(maps.Keys(out)) // the broadcast channel and each node's in a fixed order
	pipe := b.rdb.Pipeline()
	type sent struct {
		cmd  *goredis.IntCmd
		recs []record
	}
	var cmds []sent
	for _, ch := range channels {
		f := out[ch]
		for i, msg := range f.done() {
			cmds = append(cmds, sent{pipe.Publish(ctx, ch, msg), f.recs[i]})
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		b.log.Warn("cluster bus: publish", "channels", len(channels), "err", err)
	}
	for _, c := range cmds {
		// A node's channel that reached no subscriber: the node is
		// resubscribing after a Redis restart (or died, and its devices'
		// records will expire): try again. Routed records keep their node.
		if c.cmd.Err() != nil || (c.cmd.Val() == 0 && c.recs[0].node != "") {
			retry = append(retry, c.recs...)
		}
	}
	return retry
}

// routeUsers splits a kindUsers record into one record per other node
// that holds any of its users' devices (and per usersPerRecord users),
// each naming only the users on that node.
func (b *Bus) routeUsers(r record, where map[string][]state.Device) []record {
	on := map[string][]string{} // node -> users
	var nodes []string
	for _, u := range r.users {
		var seen []string
		for _, d := range where[u] {
			if d.Node == b.opts.Node || slices.Contains(seen, d.Node) {
				continue
			}
			seen = append(seen, d.Node)
			if _, ok := on[d.Node]; !ok {
				nodes = append(nodes, d.Node)
			}
			on[d.Node] = append(on[d.Node], u)
		}
	}
	var out []record
	for _, n := range nodes {
		for us := range slices.Chunk(on[n], usersPerRecord) {
			out = append(out, record{kind: kindUsers, node: n, payload: encodeUsers(us, r.payload)})
		}
	}
	return out
}

// encodeUsers is a routed kindUsers payload: the users, then the event.
func encodeUsers(users []string, ev []byte) []byte {
	n := binary.MaxVarintLen64 + len(ev)
	for _, u := range users {
		n += binary.MaxVarintLen64 + len(u)
	}
	p := binary.AppendUvarint(make([]byte, 0, n), uint64(len(users)))
	for _, u := range users {
		p = appendString(p, u)
	}
	return append(p, ev...)
}

// decodeUsers splits a routed kindUsers payload; ok false if malformed.
func decodeUsers(p []byte) (users []string, ev []byte, ok bool) {
	n, k := binary.Uvarint(p)
	if k <= 0 || n > uint64(len(p)) {
		return nil, nil, false
	}
	p = p[k:]
	users = make([]string, 0, n)
	for range n {
		var u []byte
		if u, p, ok = cut(p); !ok {
			return nil, nil, false
		}
		users = append(users, string(u))
	}
	return users, p, true
}

// frames packs records into messages of about maxMessage bytes:
// origin, then records of kind, key and payload, lengths as uvarints.
type frames struct {
	origin  string
	msgs    [][]byte
	recs    [][]record // the records of each message
	cur     []byte
	curRecs []record
}

func (f *frames) add(r record) {
	if len(f.cur) > maxMessage {
		f.msgs, f.recs = append(f.msgs, f.cur), append(f.recs, f.curRecs)
		f.cur, f.curRecs = nil, nil
	}
	if f.cur == nil {
		f.cur = appendString(make([]byte, 0, 4096), f.origin)
	}
	f.curRecs = append(f.curRecs, r)
	f.cur = append(f.cur, r.kind)
	f.cur = appendString(f.cur, r.key)
	f.cur = binary.AppendUvarint(f.cur, uint64(len(r.payload)))
	f.cur = append(f.cur, r.payload...)
}

func (f *frames) done() [][]byte {
	if f.cur != nil {
		f.msgs, f.recs = append(f.msgs, f.cur), append(f.recs, f.curRecs)
		f.cur, f.curRecs = nil, nil
	}
	return f.msgs
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

var errFrame = errors.New("cluster bus: bad frame")

// decode splits a message into its origin and records.
func decode(msg []byte) (origin string, recs []record, err error) {
	o, msg, ok := cut(msg)
	if !ok {
		return "", nil, errFrame
	}
	for len(msg) > 0 {
		r := record{kind: msg[0]}
		var key, p []byte
		if key, msg, ok = cut(msg[1:]); !ok {
			return "", nil, errFrame
		}
		if p, msg, ok = cut(msg); !ok {
			return "", nil, errFrame
		}
		// A copy: a client's queue may hold the payload long after the rest
		// of the message is done with.
		r.key, r.payload = string(key), slices.Clone(p)
		recs = append(recs, r)
	}
	return string(o), recs, nil
}

// cut splits a length-prefixed field off the front of b (sharing its memory).
func cut(b []byte) (field, rest []byte, ok bool) {
	n, k := binary.Uvarint(b)
	if k <= 0 || uint64(len(b)-k) < n {
		return nil, nil, false
	}
	return b[k : k+int(n) : k+int(n)], b[k+int(n):], true
}

// receive hands what other nodes send to this node's Local.
func (b *Bus) receive(ch <-chan *goredis.Message) {
	defer close(b.recvEnd)
	for m := range ch {
		origin, recs, err := decode([]byte(m.Payload))
		if err != nil {
			b.log.Warn("cluster bus: receive", "channel", m.Channel, "err", err)
			continue
		}
		if origin == b.opts.Node {
			continue // our own broadcast
		}
		for _, r := range recs {
			switch r.kind {
			case kindUser:
				b.opts.Local.Arrived(r.key, r.payload)
			case kindUsers:
				users, ev, ok := decodeUsers(r.payload)
				if !ok {
					b.log.Warn("cluster bus: users record", "from", origin, "err", errFrame)
					continue
				}
				for _, u := range users {
					b.opts.Local.Arrived(u, ev)
				}
			case kindGroup:
				var msg store.Message
				if err := json.Unmarshal(r.payload, &msg); err != nil {
					b.log.Warn("cluster bus: group message", "from", origin, "err", err)
					continue
				}
				b.opts.Local.FanOutLocal(msg)
			case kindKick:
				b.opts.Local.KickLocal(string(r.payload))
			case kindAll:
				b.opts.Local.EveryoneLocal(r.payload)
			case kindToken:
				b.opts.Local.ForgetToken(r.key)
			case kindTyping:
				var ev wire.TypingEvent
				if json.Unmarshal(r.payload, &ev) == nil && ev.Kind == wire.KindTyping {
					b.opts.Local.TypingLocal(r.key, ev)
				}
			case kindMember:
				if n := len(r.payload); n > 0 {
					b.opts.Local.MemberLocal(r.key, string(r.payload[:n-1]), r.payload[n-1] == '1')
				}
			}
		}
	}
}
