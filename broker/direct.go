package broker

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/imqtt/imqtt/wire"
)

// Direct delivery. Every event imqtt publishes goes to one user's topics
// (im/u/{user}/...), and the ACL lets only that user's own clients subscribe
// there (docs/protocol.md#topics). So instead of mochi's inline Publish (the packet goes
// through processPacket, every OnPublish hook, and a walk of the topic tree
// that builds maps for each publish: 19% of imqttd's CPU in a p2p run, and a
// quarter of its allocations) the broker keeps its own index of connected
// clients by user and hands the packet to mochi's per-client enqueue for
// each of that user's clients whose subscriptions match. What happens from
// there is mochi's own code, unchanged: the ACL check, QoS downgrade,
// subscription identifiers, topic aliases, the bounded queue and
// OnPublishDropped when it is full. What it leaves out: mochi's inline
// subscriptions (Server.Subscribe) on user topics, which nothing in imqtt
// makes, and retained messages, which imqtt never publishes.
//
// The per-client enqueue is Server.PublishToClient, which imqtt's fork of
// mochi exports (third_party/mochi/IMQTT.md); on a client of the event loop
// (loop.go) it writes the packet at once instead of queueing it.

// route is one connected client and the filters it holds under its user's
// topics.
type route struct {
	cl      *mqtt.Client
	inbox   string // the user's inbox topic
	filters atomic.Pointer[filterIndex]
	session atomic.Pointer[InboxHandler] // set: the inbox goes to the client's persistent session
}

// InboxHandler takes the inbox events of a client whose persistent session
// delivers them itself (internal/session: QoS 1, in version order, from
// the store when it falls behind). Offer must not block: it is called on
// the delivery path, for every event to the user.
type InboxHandler interface {
	// Offer takes pk, published on the inbox topic, for a client whose
	// inbox subscription is sub.
	Offer(sub packets.Subscription, pk packets.Packet)
}

// filterIndex is a snapshot of one client's subscriptions under its user's
// topics, taken whenever they change. A delivery costs one map lookup for the
// exact filters (the inbox and the device topic, all a legitimate client
// holds) plus one match per wildcard filter, so it does not grow with how
// many exact filters a client holds; the wildcard list is bounded by the
// per-client subscription cap (hooks.SubCap).
type filterIndex struct {
	exact map[string]packets.Subscription
	wild  []packets.Subscription
}

// routes indexes the connected clients by user. It is a hook: mochi tells it
// of every established session, subscription change and disconnect. Each
// user's slice is replaced, never changed in place, so Publish reads it
// under a read lock and walks it without one.
type routes struct {
	mqtt.HookBase
	mu    sync.RWMutex
	users map[string][]*route

	// checks counts filter lookups and matches made by deliveries, so a
	// test can tell that a delivery's cost is bounded.
	checks atomic.Uint64
}

func newRoutes() *routes { return &routes{users: map[string][]*route{}} }

func (r *routes) ID() string { return "imqtt-routes" }

func (r *routes) Provides(b byte) bool {
	switch b {
	case mqtt.OnSessionEstablished, mqtt.OnSubscribed, mqtt.OnUnsubscribed, mqtt.OnDisconnect:
		return true
	}
	return false
}

// clientUser is the user a client's topics are under: its CONNECT username
// (auth makes the client ID {username}/{device}).
func clientUser(cl *mqtt.Client) string {
	if cl.Net.Inline {
		return ""
	}
	return string(cl.Properties.Username)
}

func (r *routes) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	user := clientUser(cl)
	if user == "" {
		return
	}
	rt := &route{cl: cl, inbox: wire.InboxTopic(user)}
	rt.refresh(user) // a resumed session brings its subscriptions
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.users[user]
	r.users[user] = append(old[:len(old):len(old)], rt)
}

func (r *routes) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	user := clientUser(cl)
	if user == "" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.users[user]
	next := make([]*route, 0, len(old))
	for _, rt := range old {
		if rt.cl != cl {
			next = append(next, rt)
		}
	}
	if len(next) == 0 {
		delete(r.users, user)
		return
	}
	r.users[user] = next
}

func (r *routes) OnSubscribed(cl *mqtt.Client, _ packets.Packet, _ []byte) { r.changed(cl) }

func (r *routes) OnUnsubscribed(cl *mqtt.Client, _ packets.Packet) { r.changed(cl) }

func (r *routes) changed(cl *mqtt.Client) {
	user := clientUser(cl)
	if user == "" {
		return
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, rt := range r.users[user] {
		if rt.cl == cl {
			rt.refresh(user)
		}
	}
}

// refresh snapshots the client's filters under its user's topics (the ACL
// refused any other). mochi has already stored a change when it calls
// OnSubscribed or OnUnsubscribed, and the client's read goroutine makes
// every change, so snapshots are taken in order.
func (rt *route) refresh(user string) {
	prefix := wire.UserPrefix(user)
	idx := &filterIndex{exact: map[string]packets.Subscription{}}
	for f, s := range rt.cl.State.Subscriptions.GetAll() {
		switch {
		case !strings.HasPrefix(f, prefix):
		case strings.ContainsAny(f, "+#"):
			idx.wild = append(idx.wild, s)
		default:
			idx.exact[f] = s
		}
	}
	rt.filters.Store(idx)
}

// subscription is the client's subscription matching topic, merged as mochi
// merges overlapping ones [MQTT-3.3.4-2], and how many filters it looked at.
func (rt *route) subscription(topic string) (packets.Subscription, bool, int) {
	idx := rt.filters.Load()
	sub, found := idx.exact[topic]
	for _, s := range idx.wild {
		if !matches(s.Filter, topic) {
			continue
		}
		if !found {
			sub, found = s, true
		} else {
			sub = sub.Merge(s)
		}
	}
	if found && sub.Identifier > 0 && sub.Identifiers == nil {
		sub = sub.Merge(sub) // carries the subscription identifier [MQTT-3.3.4-3]
	}
	return sub, found, 1 + len(idx.wild)
}

// matches reports whether an MQTT topic filter matches a topic name
// (neither starting with $, which user topics never do).
func matches(filter, topic string) bool {
	for {
		f, fRest, fMore := strings.Cut(filter, "/")
		if f == "#" {
			return true // [MQTT-4.7.1-2]: also matches the parent level
		}
		t, tRest, tMore := strings.Cut(topic, "/")
		if f != "+" && f != t {
			return false
		}
		if !fMore || !tMore {
			if fMore && !tMore {
				return fRest == "#" // "a/#" matches "a"
			}
			return fMore == tMore
		}
		filter, topic = fRest, tRest
	}
}

// deliver hands a QoS 0 publish to each of user's clients subscribed to
// topic, as mochi's Publish would, and reports whether it could (false:
// the caller publishes through mochi instead).
func (b *Broker) deliver(user, topic string, payload []byte) bool {
	b.routes.mu.RLock()
	rts := b.routes.users[user]
	b.routes.mu.RUnlock()
	if len(rts) == 0 {
		return true
	}
	now := time.Now().Unix()
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish},
		TopicName:   topic,
		Payload:     payload,
		Origin:      mqtt.InlineClientId,
		Created:     now,
	}
	if exp := b.srv.Options.Capabilities.MaximumMessageExpiryInterval; exp > 0 {
		pk.Expiry = now + exp // as mochi's processPublish sets it
	}
	checks := 0
	for _, rt := range rts {
		sub, ok, n := rt.subscription(topic)
		checks += n
		if !ok {
			continue
		}
		if h := rt.session.Load(); h != nil && topic == rt.inbox {
			(*h).Offer(sub, pk)
			continue
		}
		_, _ = b.srv.PublishToClient(rt.cl, sub, pk) // a full queue is counted by OnPublishDropped
	}
	b.routes.checks.Add(uint64(checks))
	return true
}

// SetInbox routes cl's inbox events to h (nil: back to direct QoS 0
// delivery). It reports false if cl has no route (not connected, or not a
// user's client).
func (b *Broker) SetInbox(cl *mqtt.Client, h InboxHandler) bool {
	user := clientUser(cl)
	b.routes.mu.RLock()
	defer b.routes.mu.RUnlock()
	for _, rt := range b.routes.users[user] {
		if rt.cl == cl {
			if h == nil {
				rt.session.Store(nil)
			} else {
				rt.session.Store(&h)
			}
			return true
		}
	}
	return false
}

// RestoreSubscriptions gives cl, resuming a persistent session imqtt kept
// (internal/session), the subscriptions it held, as mochi's takeover gives
// a session it kept in memory [MQTT-3.1.2-4]. Only filters under the
// client's user's topics are taken (the ACL allowed no others).
func (b *Broker) RestoreSubscriptions(cl *mqtt.Client, subs []packets.Subscription) {
	prefix := wire.UserPrefix(clientUser(cl))
	for _, sub := range subs {
		if !strings.HasPrefix(sub.Filter, prefix) {
			continue
		}
		if !b.srv.Topics.Subscribe(cl.ID, sub) {
			atomic.AddInt64(&b.srv.Info.Subscriptions, 1)
		}
		cl.State.Subscriptions.Add(sub.Filter, sub)
	}
	b.routes.changed(cl)
}

// ForgetSession removes a disconnected client of a persistent session
// from mochi's memory: imqtt keeps the session in its store instead
// (internal/session), where it survives restarts and moves between nodes.
// A client taken over by a new connection is left to mochi.
func (b *Broker) ForgetSession(cl *mqtt.Client) {
	if cl.IsTakenOver() {
		return
	}
	if cur, ok := b.srv.Clients.Get(cl.ID); ok && cur == cl {
		cl.ClearInflights()
		b.srv.UnsubscribeClient(cl)
		b.srv.Clients.Delete(cl.ID)
	}
}

// FilterChecks is how many filter lookups and wildcard matches direct
// deliveries have made, for tests: per delivery to one client it is one (the
// exact filters' map) plus its wildcard filters.
func (b *Broker) FilterChecks() uint64 { return b.routes.checks.Load() }
