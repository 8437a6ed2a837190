// Package deliver is the one way out for every event the server sends. The
// core (chat), the MQTT hooks and the HTTP API hand it typed events
// (wire.Event) addressed to a user or to one device; it marshals each event
// once, counts it by kind, and hands the same bytes to this node's
// connections (Local: the broker), to the other nodes of a cluster (Remote:
// the bus) and to every Subscriber (the hook for webhooks and push; it
// sees what this node sends, so a group message only for the members online
// here). Nothing on the way reads the payload back: the node that sends an
// event counts it, so the node it arrives at needs neither its kind nor
// its contents, and the user travels with the topic.
//
// Counting: each event once per user it is addressed to, in the whole
// cluster, by the node that sends it. Send counts one (wherever the
// user's devices are); SendMany one per member handed to (every node fans
// a group message out to its own members); Broadcast one per user here and
// one for the other nodes together (this node cannot know their users).
// What Arrived from another node is not counted again.
//
//	chat / hooks / api ─► Sender (a *Path): marshal once, count by kind
//	    ├─► Local.PublishUser(user, topic, payload)   this node's clients
//	    ├─► Remote.User(user, payload)                other nodes (user-addressed only)
//	    └─► Subscriber.Sent(to, ev)                   typed, in-process consumers
//	other node's bus ─► Path.Arrived(user, payload) ─► Local (not counted or forwarded again)
//
// Delivery is at most once and never blocks on a slow client: a full client
// queue or a full bus queue drops the event, and the device recovers it by
// sync (events that carry a ver) or never sees it (notices).
package deliver

import (
	"fmt"
	"log/slog"

	"github.com/imqtt/imqtt/wire"
)

// To addresses an event: every device of User (its inbox topic), or, with
// Device set, that one device (its device topic: acks, errors, sync
// batches, the answers to what the device asked).
type To struct {
	User   string
	Device string // "": every device of User
}

// User addresses every device of user.
func User(user string) To { return To{User: user} }

// Device addresses one device of user.
func Device(user, device string) To { return To{User: user, Device: device} }

// Topic is the MQTT topic the event goes out on.
func (t To) Topic() string {
	if t.Device == "" {
		return wire.InboxTopic(t.User)
	}
	return wire.DeviceTopic(t.User, t.Device)
}

// Sender is what the core, the hooks and the API send events through; a
// *Path is one. Every method marshals its event once (SendEncoded takes it
// encoded), counts it by kind once per user it goes to, and does not block
// on a slow client. An error is one the Path has logged already; the event
// may have reached some of its recipients.
type Sender interface {
	// Send delivers ev to to: on this node, and for a user-addressed event
	// also to the user's devices on other nodes.
	Send(to To, ev wire.Event) error
	// SendEncoded is Send for an event encoded by the caller (a sync batch,
	// gzip-compressed per request): payload is ev's wire form, sent as it
	// is and counted by ev's kind.
	SendEncoded(to To, ev wire.Event, payload []byte) error
	// SendMany delivers ev to the inbox of each of users connected to this
	// node, and nowhere else: a group message, which every node fans out
	// to its own members. It returns how many users it was handed to.
	SendMany(users []string, ev wire.Event) (int, error)
	// Broadcast delivers ev to the inbox of each of here (the users
	// connected to this node) and of every user connected to another node:
	// an operator's notice to everyone. It returns how many of here it was
	// handed to.
	Broadcast(here []string, ev wire.Event) (int, error)
}

// Local delivers to this node's connections (*broker.Broker). PublishUser
// hands payload to user's clients subscribed to topic, one of user's
// topics, without blocking on any of them (a full client queue drops it).
type Local interface {
	PublishUser(user, topic string, payload []byte) error
}

// Remote carries events to the other nodes of a cluster (*cluster.Bus).
// Its methods queue and return at once; what cannot be delivered is
// dropped, and devices recover it by sync. The receiving node hands it to
// its Path's Arrived.
type Remote interface {
	// User forwards an event to user's devices connected to other nodes.
	User(user string, payload []byte)
	// Everyone forwards an event to every user connected to another node.
	Everyone(payload []byte)
}

// RemoteUsers is a Remote that forwards one event to many users at once
// (*cluster.Bus: a few records, one per node that holds any of them,
// instead of one per user). Path.SendUsers uses it when Remote has it.
type RemoteUsers interface {
	Users(users []string, payload []byte)
}

// Subscriber sees every event this node sends, typed, with its address:
// once per user for SendMany and Broadcast (the users of this node), and
// not for what Arrived from another node, whose own subscribers saw it.
// Sent runs on the sender's goroutine (the dispatcher, a client's read
// loop, an HTTP handler): it must return at once, handing anything slow to
// a queue of its own, and must not change ev.
type Subscriber interface {
	Sent(to To, ev wire.Event)
}

// Counter counts outgoing events by kind (*metrics.Metrics).
type Counter interface {
	PublishedOut(kind string)
}

// Options configure a Path. Local is required.
type Options struct {
	Local       Local
	Remote      Remote // nil on a single node
	Subscribers []Subscriber
	Counter     Counter // nil: not counted
	Logger      *slog.Logger
}

// Path is the delivery path of one node. It is safe for concurrent use;
// its sinks and subscribers are fixed by New.
type Path struct {
	local  Local
	remote Remote
	subs   []Subscriber
	count  Counter
	log    *slog.Logger
}

var _ Sender = (*Path)(nil)

// New returns a Path delivering to o's sinks.
func New(o Options) *Path {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Counter == nil {
		o.Counter = uncounted{}
	}
	return &Path{local: o.Local, remote: o.Remote, subs: o.Subscribers, count: o.Counter, log: o.Logger}
}

type uncounted struct{}

func (uncounted) PublishedOut(string) {}

// Send delivers ev to to; see Sender.
func (p *Path) Send(to To, ev wire.Event) error {
	payload, err := p.marshal(ev)
	if err != nil {
		return err
	}
	return p.send(to, ev, payload)
}

// SendEncoded delivers ev, encoded by the caller as payload; see Sender.
func (p *Path) SendEncoded(to To, ev wire.Event, payload []byte) error {
	return p.send(to, ev, payload)
}

func (p *Path) send(to To, ev wire.Event, payload []byte) error {
	kind := ev.EventKind()
	p.count.PublishedOut(kind)
	err := p.local.PublishUser(to.User, to.Topic(), payload)
	if err != nil {
		p.log.Warn("deliver", "user", to.User, "device", to.Device, "kind", kind, "err", err)
	}
	if to.Device == "" && p.remote != nil {
		p.remote.User(to.User, payload)
	}
	for _, s := range p.subs {
		s.Sent(to, ev)
	}
	return err
}

// SendMany delivers ev to users on this node only; see Sender.
func (p *Path) SendMany(users []string, ev wire.Event) (int, error) {
	if len(users) == 0 {
		return 0, nil
	}
	payload, err := p.marshal(ev)
	if err != nil {
		return 0, err
	}
	return p.many(users, ev, payload)
}

// SendUsers delivers ev to the inboxes of users on every node: what Send
// to each would do, but marshalled once and handed to the other nodes as
// one event for them all (RemoteUsers). The presence fan-out sends a
// user's change to a page of its contacts with it. It returns how many of
// users it was handed to here.
func (p *Path) SendUsers(users []string, ev wire.Event) (int, error) {
	if len(users) == 0 {
		return 0, nil
	}
	payload, err := p.marshal(ev)
	if err != nil {
		return 0, err
	}
	sent, err := p.many(users, ev, payload)
	switch r := p.remote.(type) {
	case nil:
	case RemoteUsers:
		r.Users(users, payload)
	default:
		for _, u := range users {
			r.User(u, payload)
		}
	}
	return sent, err
}

// Broadcast delivers ev to here and to every user of the other nodes; see
// Sender.
func (p *Path) Broadcast(here []string, ev wire.Event) (int, error) {
	payload, err := p.marshal(ev)
	if err != nil {
		return 0, err
	}
	sent, err := p.many(here, ev, payload)
	if p.remote != nil {
		p.count.PublishedOut(ev.EventKind())
		p.remote.Everyone(payload)
	}
	return sent, err
}

// many hands payload to each user's inbox here, and reports the first error.
func (p *Path) many(users []string, ev wire.Event, payload []byte) (int, error) {
	kind := ev.EventKind()
	sent := 0
	var first error
	for _, u := range users {
		p.count.PublishedOut(kind)
		if err := p.local.PublishUser(u, wire.InboxTopic(u), payload); err != nil {
			p.log.Warn("deliver", "user", u, "kind", kind, "err", err)
			if first == nil {
				first = err
			}
		} else {
			sent++
		}
		for _, s := range p.subs {
			s.Sent(User(u), ev)
		}
	}
	return sent, first
}

// Arrived delivers an event another node sent (through its Remote) to
// user's devices connected here. The sending node counted it and showed it
// to its subscribers; it is not forwarded again.
func (p *Path) Arrived(user string, payload []byte) {
	if err := p.local.PublishUser(user, wire.InboxTopic(user), payload); err != nil {
		p.log.Warn("deliver", "user", user, "from", "remote", "err", err)
	}
}

func (p *Path) marshal(ev wire.Event) ([]byte, error) {
	payload, err := wire.Marshal(ev)
	if err != nil {
		p.log.Error("marshal event", "kind", ev.EventKind(), "err", err)
		return nil, fmt.Errorf("marshal %s event: %w", ev.EventKind(), err)
	}
	return payload, nil
}
