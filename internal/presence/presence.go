// Package presence shows users' presence to their contacts
// (docs/protocol.md#presence, docs/http.md#presence): the answer of
// GET /v1/presence, and `presence` events when a user's first device
// connects or its last one leaves, debounced so that a reconnect within
// Debounce (wire.PresenceDebounceSeconds) is no change.
//
// Which devices are connected is the hot state's (state.Presence: this
// node's memory, or Redis across a cluster). What contacts were last told
// is the store's (store.Social's last seen): 0 once a user was announced
// online, the time its last device left once it was announced offline.
// Every node reads and writes that one record, so a user whose device
// leaves node A and comes back on node B within the debounce changes
// nothing: B finds it announced online already, and A, when its debounce
// runs out, finds a device connected.
//
// Cost: the connect and disconnect hooks only queue (a bounded queue per
// worker; a full one drops the change, counted, since presence is a hint).
// A worker reads the user's accepted contacts a page of 1,000 at a time,
// the page's blockers in one call, and hands each page to the delivery
// path as one event for many users (marshalled once; to other nodes as a
// few bus records, not one per contact). A contact who is offline costs
// nothing more: nothing is written per contact.
package presence

import (
	"container/heap"
	"context"
	"errors"
	"hash/maphash"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/imqtt/imqtt/chat"
	"github.com/imqtt/imqtt/state"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/wire"
)

// Defaults of Options.
const (
	DefaultDebounce = wire.PresenceDebounceSeconds * time.Second
	DefaultQueueLen = 4096 // changes waiting per worker
	DefaultWorkers  = 4
	// DefaultRate and DefaultBurst bound a user's GET /v1/presence: each
	// reads up to wire.MaxPresenceUsers users' rows.
	DefaultRate  = 5
	DefaultBurst = 10
	// PageSize is how many contacts one fan-out step reads and delivers.
	PageSize = 1000
)

// Social is what presence reads of the social graph (store.Social).
type Social interface {
	Contacts(ctx context.Context, user, state, after string, limit int) ([]store.Contact, error)
	GetContact(ctx context.Context, user, peer string) (store.Contact, error)
	Blocks(ctx context.Context, user, after string, limit int) ([]store.Block, error)
	Blockers(ctx context.Context, peer string, users []string) (map[string]bool, error)
	SetLastSeen(ctx context.Context, user string, ts int64) error
	LastSeen(ctx context.Context, users []string) (map[string]int64, error)
}

// Sender delivers one event to many users' devices, here and on the other
// nodes (internal/deliver.Path).
type Sender interface {
	SendUsers(users []string, ev wire.Event) (int, error)
}

// DevicesOf is state.Presence's Devices for many users at once (state/redis
// has it: one round trip); without it Devices is asked per user.
type DevicesOf interface {
	DevicesOf(ctx context.Context, users []string) (map[string][]state.Device, error)
}

// Options configure a Service.
type Options struct {
	Social  Social
	Devices state.Presence // which devices are connected, on any node
	Sender  Sender
	// Hidden reports which of users hide their presence (their setting is
	// wire.PresenceNobody), in one call.
	Hidden  func(ctx context.Context, users []string) (map[string]bool, error)
	Limiter state.Limiter // GET's rate per user; nil: none
	Rate    int           // GETs a second per user (default DefaultRate)
	Burst   int           // (default DefaultBurst)

	Debounce time.Duration // default DefaultDebounce
	QueueLen int           // per worker; default DefaultQueueLen
	Workers  int           // default DefaultWorkers
	// Refused counts what a limit turned away: "presence_queue" (a change
	// dropped), "presence_rate" (a GET refused).
	Refused func(limit string)
	Now     func() time.Time // default time.Now
	Logger  *slog.Logger
}

// Service is the presence of one node: Online and Offline (hooks.Presence's
// Events) queue changes, Start's workers announce them, List answers GETs.
type Service struct {
	o       Options
	log     *slog.Logger
	seed    maphash.Seed
	workers []*worker
	wg      sync.WaitGroup
	stop    chan struct{}
	once    sync.Once
	dropped atomic.Int64
	warned  atomic.Bool
}

// New returns a Service; Start starts its workers.
func New(o Options) (*Service, error) {
	if o.Social == nil || o.Devices == nil || o.Sender == nil || o.Hidden == nil {
		return nil, errors.New("presence: Social, Devices, Sender and Hidden are required")
	}
	if o.Rate <= 0 {
		o.Rate = DefaultRate
	}
	if o.Burst <= 0 {
		o.Burst = DefaultBurst
	}
	if o.Debounce <= 0 {
		o.Debounce = DefaultDebounce
	}
	if o.QueueLen <= 0 {
		o.QueueLen = DefaultQueueLen
	}
	if o.Workers <= 0 {
		o.Workers = DefaultWorkers
	}
	if o.Refused == nil {
		o.Refused = func(string) {}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	s := &Service{o: o, log: o.Logger, seed: maphash.MakeSeed(), stop: make(chan struct{})}
	for range o.Workers {
		s.workers = append(s.workers, &worker{s: s, q: make(chan change, o.QueueLen), pending: map[string]int64{}})
	}
	return s, nil
}

// Start starts the workers; Close stops them.
func (s *Service) Start() {
	for _, w := range s.workers {
		s.wg.Add(1)
		go w.run()
	}
}

// Close stops the workers, then takes what they had queued and ends the
// debounces still running at once (within ctx): a user whose devices all
// left and are connected nowhere is recorded, and announced, offline now.
// So a node that stops (its devices' departures come last) leaves no user
// recorded online that is not. Changes that come after Close are dropped.
func (s *Service) Close(ctx context.Context) {
	s.once.Do(func() { close(s.stop) })
	s.wg.Wait()
	for _, w := range s.workers {
		for len(w.q) > 0 && ctx.Err() == nil {
			w.handle(<-w.q)
		}
		for user, left := range w.pending {
			if ctx.Err() != nil {
				return
			}
			delete(w.pending, user)
			w.offline(user, left)
		}
		w.due = nil
	}
}

// Dropped is how many changes a full queue dropped.
func (s *Service) Dropped() int64 { return s.dropped.Load() }

// change is a device of user coming (online) or leaving at at (unix ms).
type change struct {
	user   string
	online bool
	at     int64
	vis    int // visShown, visHidden: the setting changed (no device came or left)
}

const (
	visShown = iota + 1
	visHidden
)

// Online hears a device of user connect to node (hooks.PresenceEvents). It
// only queues: it runs on the connecting client's goroutine.
func (s *Service) Online(user, device, node string, at time.Time) {
	s.enqueue(change{user: user, online: true, at: at.UnixMilli()})
}

// Offline hears a device of user leave node.
func (s *Service) Offline(user, device, node string, at time.Time) {
	s.enqueue(change{user: user, at: at.UnixMilli()})
}

// Shown hears that user changed whom it shows its presence to: shown
// false (wire.PresenceNobody) or true (wire.PresenceContacts again). Its
// contacts then see it go offline at once, or, if a device of it is
// connected, come online: hiding is appearing offline, not staying
// shown online to those told so before.
func (s *Service) Shown(user string, shown bool) {
	vis := visHidden
	if shown {
		vis = visShown
	}
	s.enqueue(change{user: user, vis: vis, at: s.o.Now().UnixMilli()})
}

// enqueue hands c to its user's worker (one worker per user keeps a
// user's changes in order), or drops it if that worker's queue is full.
func (s *Service) enqueue(c change) {
	w := s.workers[maphash.String(s.seed, c.user)%uint64(len(s.workers))]
	select {
	case w.q <- c:
	default:
		s.dropped.Add(1)
		s.o.Refused("presence_queue")
		if s.warned.CompareAndSwap(false, true) { // once: a storm would flood the log
			s.log.Warn("presence: queue full, dropping changes (counted as imqtt_limit_refusals_total{limit=\"presence_queue\"})",
				"queue", s.o.QueueLen)
		}
	}
}

// worker announces the changes of its share of users, in order.
type worker struct {
	s *Service
	q chan change
	// pending: users whose device left here, by the time the last one
	// left (unix ms), waiting for the debounce; due orders them.
	pending map[string]int64
	due     dueHeap
}

func (w *worker) run() {
	defer w.s.wg.Done()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		wait := time.Hour
		if len(w.due) > 0 {
			wait = time.Duration(w.due[0].at-w.s.o.Now().UnixMilli()) * time.Millisecond
		}
		t.Reset(max(wait, 0))
		select {
		case <-w.s.stop:
			return
		case c := <-w.q:
			w.handle(c)
		case <-t.C:
			w.expire()
		}
	}
}

// ctx bounds one change's store and state work.
func (w *worker) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}

// handle takes one change: a device that came is announced at once if its
// user was not announced online already; a device that left waits for the
// debounce.
func (w *worker) handle(c change) {
	if c.vis != 0 {
		w.visibility(c)
		return
	}
	if !c.online {
		if c.at > w.pending[c.user] {
			w.pending[c.user] = c.at
			heap.Push(&w.due, due{at: c.at + w.s.o.Debounce.Milliseconds(), user: c.user, left: c.at})
		}
		return
	}
	delete(w.pending, c.user) // back within the debounce, here: no change
	ctx, cancel := w.ctx()
	defer cancel()
	seen, err := w.s.o.Social.LastSeen(ctx, []string{c.user})
	if err != nil {
		w.s.log.Warn("presence: last seen", "user", c.user, "err", err)
		return
	}
	if ts, ok := seen[c.user]; ok && ts == 0 {
		return // announced online already: another device, or back within the debounce
	}
	hidden, err := w.s.hidden(ctx, c.user)
	if err != nil {
		return
	}
	w.s.announce(ctx, wire.PresenceEvent{Kind: wire.KindPresence, User: c.user, Online: true}, hidden)
}

// visibility tells a user's contacts of its changed setting: hidden
// while announced online, it is offline to them from now on (no last
// seen: it hides that too);
// shown again while a device of it is connected, it is online. Its
// announced state (last seen) does not change: devices did not.
func (w *worker) visibility(c change) {
	ctx, cancel := w.ctx()
	defer cancel()
	ev := wire.PresenceEvent{Kind: wire.KindPresence, User: c.user}
	if c.vis == visHidden {
		seen, err := w.s.o.Social.LastSeen(ctx, []string{c.user})
		if err != nil {
			w.s.log.Warn("presence: last seen", "user", c.user, "err", err)
			return
		}
		if ts, ok := seen[c.user]; !ok || ts != 0 {
			return // away, as the contacts were last told
		}
	}
	if c.vis == visShown {
		devs, err := w.s.o.Devices.Devices(ctx, c.user)
		if err != nil {
			w.s.log.Warn("presence: devices", "user", c.user, "err", err)
			return
		}
		if len(devs) == 0 {
			return // offline, as the contacts were last told
		}
		ev.Online = true
	}
	w.s.fanOut(ctx, ev)
}

// expire announces offline the users whose debounce ran out with no
// device connected anywhere and who were announced online.
func (w *worker) expire() {
	now := w.s.o.Now().UnixMilli()
	for len(w.due) > 0 && w.due[0].at <= now {
		d := heap.Pop(&w.due).(due)
		if w.pending[d.user] != d.left {
			continue // came back here, or left again later: a later entry decides
		}
		delete(w.pending, d.user)
		w.offline(d.user, d.left)
	}
}

func (w *worker) offline(user string, left int64) {
	ctx, cancel := w.ctx()
	defer cancel()
	devs, err := w.s.o.Devices.Devices(ctx, user)
	if err != nil {
		w.s.log.Warn("presence: devices", "user", user, "err", err)
		return
	}
	if len(devs) > 0 {
		return // back within the debounce, here or on another node
	}
	// The setting first: then only a read and a write stand between
	// another node's seeing this user's record and this one's writing it.
	hidden, err := w.s.hidden(ctx, user)
	if err != nil {
		return
	}
	seen, err := w.s.o.Social.LastSeen(ctx, []string{user})
	if err != nil {
		w.s.log.Warn("presence: last seen", "user", user, "err", err)
		return
	}
	if ts, ok := seen[user]; ok && ts != 0 {
		return // announced offline already (by another node)
	}
	w.s.announce(ctx, wire.PresenceEvent{Kind: wire.KindPresence, User: user, LastSeen: left}, hidden)
}

// hidden reads whether user hides its presence (logged if it fails).
func (s *Service) hidden(ctx context.Context, user string) (bool, error) {
	h, err := s.o.Hidden(ctx, []string{user})
	if err != nil {
		s.log.Warn("presence: settings", "user", user, "err", err)
		return false, err
	}
	return h[user], nil
}

// announce records ev as the user's announced state (its last seen: 0
// online, else when it left) and sends it to ev.User's accepted contacts
// who may see it: none if the user hides its presence (hidden, read by
// the caller before the record, so a setting changed after the record
// holds for this change at the latest), not to a contact who blocked the
// user or whom the user blocked. It reads the contacts a page at a time
// and sends each page as one event for many users.
func (s *Service) announce(ctx context.Context, ev wire.PresenceEvent, hidden bool) {
	user := ev.User
	if err := s.o.Social.SetLastSeen(ctx, user, ev.LastSeen); err != nil {
		s.log.Warn("presence: set last seen", "user", user, "online", ev.Online, "err", err)
		return
	}
	if hidden {
		return
	}
	s.fanOut(ctx, ev)
}

// fanOut sends ev to ev.User's accepted contacts but those who blocked
// the user or whom the user blocked, a page of contacts at a time, each
// page as one event for many users.
func (s *Service) fanOut(ctx context.Context, ev wire.PresenceEvent) {
	user := ev.User
	blocked, err := s.blocks(ctx, user)
	if err != nil {
		s.log.Warn("presence: blocks", "user", user, "err", err)
		return
	}
	to := make([]string, 0, PageSize)
	for after := ""; ; {
		page, err := s.o.Social.Contacts(ctx, user, store.ContactAccepted, after, PageSize)
		if err != nil {
			s.log.Warn("presence: contacts", "user", user, "err", err)
			return
		}
		if len(page) == 0 {
			return
		}
		to = to[:0]
		for _, c := range page {
			if !blocked[c.Peer] {
				to = append(to, c.Peer)
			}
		}
		blockers, err := s.o.Social.Blockers(ctx, user, to)
		if err != nil {
			s.log.Warn("presence: blockers", "user", user, "err", err)
			return
		}
		if len(blockers) > 0 {
			kept := to[:0]
			for _, p := range to {
				if !blockers[p] {
					kept = append(kept, p)
				}
			}
			to = kept
		}
		if len(to) > 0 {
			_, _ = s.o.Sender.SendUsers(to, ev) // what a node cannot deliver, it logs and counts
		}
		if len(page) < PageSize {
			return
		}
		after = page[len(page)-1].Peer
	}
}

// blocks is the set of users user blocked (store.Social caps how many).
func (s *Service) blocks(ctx context.Context, user string) (map[string]bool, error) {
	var set map[string]bool
	for after := ""; ; {
		page, err := s.o.Social.Blocks(ctx, user, after, PageSize)
		if err != nil {
			return nil, err
		}
		for _, b := range page {
			if set == nil {
				set = map[string]bool{}
			}
			set[b.Peer] = true
		}
		if len(page) < PageSize {
			return set, nil
		}
		after = page[len(page)-1].Peer
	}
}

// List answers GET /v1/presence?users= for caller: the presence of those
// of users who share it with caller, in the order asked, each once. A
// user shares it with caller if it is caller (one sees one's own), or an
// accepted contact of caller who does not hide it and neither has blocked
// the other; any other user, known or not, is absent. The same reads are
// made whoever the users are, presence included, so neither the answer
// nor its time tells a stranger's presence or existence.
func (s *Service) List(ctx context.Context, caller string, users []string) (wire.PresenceList, error) {
	if s.o.Limiter != nil {
		d, err := s.o.Limiter.Allow(ctx, "presence:"+caller, state.Limit{Rate: s.o.Rate, Per: time.Second, Burst: s.o.Burst})
		if err == nil && !d.OK {
			s.o.Refused("presence_rate")
			return wire.PresenceList{}, &chat.Error{Err: chat.ErrRateLimited, Msg: "more than " + strconv.Itoa(s.o.Rate) + " presence requests a second"}
		}
	}
	asked, err := CheckUsers(users)
	if err != nil {
		return wire.PresenceList{}, err
	}
	out := wire.PresenceList{Presence: []wire.Presence{}}
	if len(asked) == 0 {
		return out, nil
	}
	contact := make([]bool, len(asked))
	for i, u := range asked { // a point read each, strangers too
		c, err := s.o.Social.GetContact(ctx, caller, u)
		switch {
		case err == nil:
			contact[i] = c.State == store.ContactAccepted
		case !errors.Is(err, store.ErrNotFound):
			return wire.PresenceList{}, err
		}
	}
	blockers, err := s.o.Social.Blockers(ctx, caller, asked)
	if err != nil {
		return wire.PresenceList{}, err
	}
	blocked, err := s.blocks(ctx, caller)
	if err != nil {
		return wire.PresenceList{}, err
	}
	hidden, err := s.o.Hidden(ctx, asked)
	if err != nil {
		return wire.PresenceList{}, err
	}
	devs, err := s.devicesOf(ctx, asked)
	if err != nil {
		return wire.PresenceList{}, err
	}
	seen, err := s.o.Social.LastSeen(ctx, asked)
	if err != nil {
		return wire.PresenceList{}, err
	}
	for i, u := range asked {
		if u != caller && (!contact[i] || blockers[u] || blocked[u] || hidden[u]) {
			continue
		}
		p := wire.Presence{User: u, Online: len(devs[u]) > 0}
		if !p.Online {
			p.LastSeen = seen[u]
		}
		out.Presence = append(out.Presence, p)
	}
	return out, nil
}

// CheckUsers checks the users of a GET: at most wire.MaxPresenceUsers,
// each a well-formed user ID; it returns them folded, each once, in the
// order first asked.
func CheckUsers(users []string) ([]string, error) {
	if len(users) > wire.MaxPresenceUsers {
		return nil, &chat.Error{Err: chat.ErrBadRequest, Msg: "at most " + strconv.Itoa(wire.MaxPresenceUsers) + " users"}
	}
	out := make([]string, 0, len(users))
	seen := make(map[string]bool, len(users))
	for _, u := range users {
		n, ok := wire.NormUser(u)
		if !ok {
			return nil, &chat.Error{Err: chat.ErrBadRequest, Msg: "not a user ID: " + strconv.Quote(u)}
		}
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out, nil
}

// devicesOf is the connected devices of users, in one call if the state
// can.
func (s *Service) devicesOf(ctx context.Context, users []string) (map[string][]state.Device, error) {
	if many, ok := s.o.Devices.(DevicesOf); ok {
		return many.DevicesOf(ctx, users)
	}
	out := make(map[string][]state.Device, len(users))
	for _, u := range users {
		ds, err := s.o.Devices.Devices(ctx, u)
		if err != nil {
			return nil, err
		}
		out[u] = ds
	}
	return out, nil
}

// due is a debounce that runs out at at (unix ms) for user, whose device
// left at left.
type due struct {
	at   int64
	user string
	left int64
}

type dueHeap []due

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)        { *h = append(*h, x.(due)) }
func (h *dueHeap) Pop() any {
	old := *h
	d := old[len(old)-1]
	*h = old[:len(old)-1]
	return d
}
