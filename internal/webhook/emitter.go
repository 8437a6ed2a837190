package webhook

import (
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bwmarrin/snowflake"
	"golang.org/x/time/rate"

	"github.com/imqtt/imqtt/store"
	imsync "github.com/imqtt/imqtt/sync"
)

// Defaults of EmitterOptions.
const (
	DefaultQueue      = 10_000                // events waiting for the writer
	DefaultFlushEvery = 10 * time.Millisecond // how long the writer gathers events
	DefaultFlushMax   = 256                   // events in one write
)

// Presence events one user may emit: a burst of presenceBurst (a user's
// 16 devices connecting and leaving), then one every presenceEvery. Past
// it they are dropped and counted: an account reconnecting in a loop would
// otherwise fill the writer's queue, shared by every user, and the
// durable outbox with events the backend cannot use.
const (
	presenceBurst = 32
	presenceEvery = 3 * time.Second
	// presenceUsers bounds the limiters kept; past it they are all
	// forgotten (each user's burst starts over).
	presenceUsers = 100_000
)

// EmitterOptions configure an Emitter; zero values take the defaults.
type EmitterOptions struct {
	Events map[string]bool // the events to emit (ParseEvents); nil: all
	Node   int64           // the snowflake node number of event IDs, 0–1023
	// Queue bounds the events (all but message.after_send, which is
	// committed with its message) waiting for the writer; past it an
	// event is dropped, counted and logged.
	Queue      int
	FlushEvery time.Duration // the writer writes what it has after this
	FlushMax   int           // or once it has this many
	// Written, when set, is called after each write of events (it must
	// not block): the Outbox's Notify.
	Written func()
	Logger  *slog.Logger
	Metrics Metrics
}

// Emitter turns what happens into webhook events in the outbox: it names
// each (a unique ID, "evt-" and a snowflake) and puts it in its lane. It
// is the seam every source calls:
//
//   - chat's batcher: AfterSend gives a batch's message.after_send events,
//     committed with the messages (store.Batch.Webhooks), then Committed;
//   - the presence hook: Online and Offline;
//   - the account service, and any other path that creates a user (the
//     server API, a JWT's first use): Registered;
//   - chat's groups: GroupChanged;
//   - chat's batcher, for a recall: Recalled gives the event to commit
//     with the recall.
//
// Online and Offline never block (they run on a connection's goroutine):
// they queue the event for a writer that writes what gathered every
// FlushEvery (or FlushMax events) in one store write. Registered and
// GroupChanged write their event before they return (a store write, on an
// HTTP request that is rare and slow anyway): so it is in the outbox
// before anything its caller does next, such as a message to the group
// just created, whose after_send must come after it in the group's lane.
// A nil *Emitter emits nothing.
type Emitter struct {
	st    store.Webhooks
	opts  EmitterOptions
	ids   atomic.Pointer[snowflake.Node]
	queue chan store.WebhookEvent

	mu     sync.RWMutex // guards closed against a send on queue
	closed bool
	done   chan struct{}

	plMu   sync.Mutex
	limits map[string]*rate.Limiter // presence events, by user
}

// NewEmitter returns an Emitter writing to st; Start runs its writer.
func NewEmitter(st store.Webhooks, o EmitterOptions) (*Emitter, error) {
	if o.Queue <= 0 {
		o.Queue = DefaultQueue
	}
	if o.FlushEvery <= 0 {
		o.FlushEvery = DefaultFlushEvery
	}
	if o.FlushMax <= 0 {
		o.FlushMax = DefaultFlushMax
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Metrics == nil {
		o.Metrics = nopMetrics{}
	}
	if o.Events == nil {
		o.Events, _ = ParseEvents("")
	}
	e := &Emitter{st: st, opts: o, queue: make(chan store.WebhookEvent, o.Queue), done: make(chan struct{})}
	if err := e.SetNode(o.Node); err != nil {
		return nil, err
	}
	return e, nil
}

// SetNode changes the snowflake node number of the IDs given from now on
// (in scale-out a node leases its number: chat.Service.SetNode's).
func (e *Emitter) SetNode(n int64) error {
	ids, err := snowflake.NewNode(n)
	if err != nil {
		return err
	}
	e.ids.Store(ids)
	return nil
}

// Wants reports whether event is emitted (--webhook-events).
func (e *Emitter) Wants(event string) bool { return e != nil && e.opts.Events[event] }

// Lanes: the order events of one lane are delivered in (SPEC §14: in
// order per conversation).

// DirectLane is the lane of the 1:1 conversation of a and b: the sorted pair.
func DirectLane(a, b string) string {
	if b < a {
		a, b = b, a
	}
	return "c:" + a + ":" + b
}

// GroupLane is a group's lane: its messages and its changes.
func GroupLane(group string) string { return "g:" + group }

// UserLane is a user's own lane: online, offline, registered.
func UserLane(user string) string { return "u:" + user }

// MessageLane is the lane of m's conversation.
func MessageLane(m *store.Message) string {
	if m.Group != "" {
		return GroupLane(m.Group)
	}
	return DirectLane(m.From, m.To)
}

// event makes an event with a new ID. IDs are snowflakes from
// github.com/bwmarrin/snowflake, the generator of message IDs (chat):
// 64-bit, time-ordered (a lane's order is its IDs'), unique across nodes
// by the node number each leases, and already a dependency. Compared:
// github.com/sony/sonyflake (also 64-bit and time-ordered, but 10 ms
// ticks and 256 IDs a tick: a burst of presence events would wait for
// the clock) and github.com/google/uuid v7 (time-ordered too, but 128
// bits, which the stores' keys and sort would carry as strings).
func (e *Emitter) event(typ, lane string, ts int64, data any) (store.WebhookEvent, bool) {
	raw, err := json.Marshal(data)
	if err != nil {
		e.opts.Logger.Error("webhook: encode an event; dropped", "event", typ, "err", err)
		return store.WebhookEvent{}, false
	}
	return store.WebhookEvent{ID: e.ids.Load().Generate().Int64(), Lane: lane, Type: typ, TS: ts, Data: raw}, true
}

// AfterSend returns the message.after_send events of ms, for the batch
// that commits them: data is each message as a client sees it (the
// message of a msg event).
func (e *Emitter) AfterSend(ms []store.Message) []store.WebhookEvent {
	if !e.Wants(AfterSend) || len(ms) == 0 {
		return nil
	}
	out := make([]store.WebhookEvent, 0, len(ms))
	for i := range ms {
		m := &ms[i]
		if m.Change != nil {
			continue // a recall, edit, reaction or delete: not a message sent
		}
		if ev, ok := e.event(AfterSend, MessageLane(m), m.TS, imsync.ToMsg(store.Event{Msg: *m})); ok {
			ev.MsgID = m.ID
			out = append(out, ev)
		}
	}
	return out
}

// Committed says a commit wrote events: the outbox looks now.
func (e *Emitter) Committed() {
	if e != nil && e.opts.Written != nil {
		e.opts.Written()
	}
}

// Recalled returns the message.recalled event of m, recalled by by at
// at, for the commit that records the recall, and whether the event is
// wanted. Data:
// {id, from, to or group, by, ts}.
func (e *Emitter) Recalled(m store.Message, by string, at time.Time) (store.WebhookEvent, bool) {
	if !e.Wants(Recalled) {
		return store.WebhookEvent{}, false
	}
	return e.event(Recalled, MessageLane(&m), at.UnixMilli(), RecalledData{ID: strconv.FormatInt(m.ID, 10), From: m.From, To: m.To,
		Group: m.Group, By: by, TS: at.UnixMilli()})
}

// PresenceData is the data of user.online and user.offline.
type PresenceData struct {
	User   string `json:"user"`
	Device string `json:"device"`
	Node   string `json:"node"`
	TS     int64  `json:"ts"`
}

// RegisteredData is the data of user.registered.
type RegisteredData struct {
	User string `json:"user"`
	TS   int64  `json:"ts"`
}

// GroupData is the data of group.changed.
type GroupData struct {
	Group  string   `json:"group"`
	Action string   `json:"action"` // created, added, removed, left
	By     string   `json:"by"`
	Users  []string `json:"users"`
	TS     int64    `json:"ts"`
}

// RecalledData is the data of message.recalled.
type RecalledData struct {
	ID    string `json:"id"` // the message's, as a msg event has it (not an event's evt- ID)
	From  string `json:"from"`
	To    string `json:"to,omitempty"`
	Group string `json:"group,omitempty"`
	By    string `json:"by"`
	TS    int64  `json:"ts"`
}

// Online queues user.online of the device connected to node.
func (e *Emitter) Online(user, device, node string, at time.Time) {
	e.presence(UserOnline, user, device, node, at)
}

// Offline queues user.offline.
func (e *Emitter) Offline(user, device, node string, at time.Time) {
	e.presence(UserOffline, user, device, node, at)
}

func (e *Emitter) presence(typ, user, device, node string, at time.Time) {
	if !e.Wants(typ) {
		return
	}
	if !e.presenceAllowed(user, at) {
		e.opts.Metrics.Webhook(typ, ResultRateLimited)
		return
	}
	ts := at.UnixMilli()
	if ev, ok := e.event(typ, UserLane(user), ts, PresenceData{User: user, Device: device, Node: node, TS: ts}); ok {
		e.enqueue(ev)
	}
}

// presenceAllowed takes one of user's presence events at at.
func (e *Emitter) presenceAllowed(user string, at time.Time) bool {
	e.plMu.Lock()
	defer e.plMu.Unlock()
	l := e.limits[user]
	if l == nil {
		if e.limits == nil || len(e.limits) >= presenceUsers {
			e.limits = make(map[string]*rate.Limiter)
		}
		l = rate.NewLimiter(rate.Every(presenceEvery), presenceBurst)
		e.limits[user] = l
	}
	return l.AllowN(at, 1)
}

// Registered writes user.registered: every path that creates a user
// calls it once the user is stored.
func (e *Emitter) Registered(user string, at time.Time) {
	if !e.Wants(UserRegistered) {
		return
	}
	ts := at.UnixMilli()
	if ev, ok := e.event(UserRegistered, UserLane(user), ts, RegisteredData{User: user, TS: ts}); ok {
		e.writeNow(ev)
	}
}

// GroupChanged writes group.changed, in the group's lane (so that its
// membership changes and its messages keep their order).
func (e *Emitter) GroupChanged(group, action, by string, users []string) {
	if !e.Wants(GroupChanged) {
		return
	}
	ts := time.Now().UnixMilli()
	if ev, ok := e.event(GroupChanged, GroupLane(group), ts, GroupData{Group: group, Action: action, By: by, Users: users, TS: ts}); ok {
		e.writeNow(ev)
	}
}

// writeNow writes ev at once (within 5 s), or drops and counts it.
func (e *Emitter) writeNow(ev store.WebhookEvent) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.st.AddWebhookEvents(ctx, []store.WebhookEvent{ev}); err != nil {
		e.opts.Metrics.Webhook(ev.Type, ResultDropped)
		e.opts.Logger.Error("webhook: write an event; dropped", "event", ev.Type, "id", formatID(ev.ID), "err", err)
		return
	}
	e.Committed()
}

// enqueue hands ev to the writer, or drops it if the queue is full.
func (e *Emitter) enqueue(ev store.WebhookEvent) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		e.dropped(ev, "closed")
		return
	}
	select {
	case e.queue <- ev:
	default:
		e.dropped(ev, "queue full")
	}
}

func (e *Emitter) dropped(ev store.WebhookEvent, why string) {
	e.opts.Metrics.Webhook(ev.Type, ResultOverflow)
	e.opts.Logger.Warn("webhook: an event was not queued; dropped", "event", ev.Type, "id", formatID(ev.ID), "why", why)
}

// Start runs the writer until Close.
func (e *Emitter) Start() { go e.write() }

// Close stops taking events and waits (up to ctx) for the writer to write
// those queued.
func (e *Emitter) Close(ctx context.Context) {
	e.mu.Lock()
	if !e.closed {
		e.closed = true
		close(e.queue)
	}
	e.mu.Unlock()
	select {
	case <-e.done:
	case <-ctx.Done():
	}
}

// write is the group-commit writer: one store write for what gathered.
func (e *Emitter) write() {
	defer close(e.done)
	batch := make([]store.WebhookEvent, 0, e.opts.FlushMax)
	t := time.NewTimer(time.Hour)
	t.Stop()
	for {
		ev, ok := <-e.queue
		if !ok {
			return
		}
		batch = append(batch[:0], ev)
		t.Reset(e.opts.FlushEvery)
	gather:
		for len(batch) < e.opts.FlushMax {
			select {
			case ev, ok := <-e.queue:
				if !ok {
					break gather
				}
				batch = append(batch, ev)
			case <-t.C:
				break gather
			}
		}
		t.Stop()
		e.flush(batch)
	}
}

// flush writes batch, trying a few times over a few seconds: the store
// may be failing over. What it cannot write is dropped and counted.
func (e *Emitter) flush(batch []store.WebhookEvent) {
	var err error
	for try := range 4 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = e.st.AddWebhookEvents(ctx, batch)
		cancel()
		if err == nil {
			e.Committed()
			return
		}
		time.Sleep(time.Duration(100<<try) * time.Millisecond)
	}
	e.opts.Logger.Error("webhook: write events; dropped", "events", len(batch), "err", err)
	for _, ev := range batch {
		e.opts.Metrics.Webhook(ev.Type, ResultDropped)
	}
}
