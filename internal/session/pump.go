package session

import (
	"context"
	"errors"
	"sync"
	"time"

	gojson "github.com/goccy/go-json"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/imqtt/imqtt/chat"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/wire"
)

// sess is one connection's persistent session, and the pump that delivers
// its inbox: a cursor per stream (the inbox by ver, each group by seq).
type sess struct {
	m            *Manager
	cl           *mqtt.Client
	user, device string
	holder       string
	resumed      bool  // found (on this node or in the store): CONNACK says Session Present
	broken       error // the store could not say whether there was one

	mu         sync.Mutex
	rec        store.Session // positions are the streams' acked, copied in by record
	inbox      *stream
	groups     map[string]*stream
	byPID      map[uint16]ref // what each packet ID in flight carries
	sub        packets.Subscription
	window     int
	queued     int  // entries in the streams' queues, at most one read's worth
	started    bool // attach ran: the inbox is (being) taken
	attached   bool // the inbox is delivered by this session
	running    bool // a pump goroutine runs (or the resume does): no event is sent past it
	placed     bool // the cursors are set (resume, startAtHeads): record takes their positions
	closed     bool
	superseded bool // taken over or dropped: saves nothing more
}

// stream is the cursor of one ordered sequence of events.
type stream struct {
	acked   uint64   // every position up to it is acknowledged
	sent    uint64   // every position up to it is sent (or acknowledged)
	pending []pend   // sent and not yet acknowledged, in position order
	base    uint64   // a session started here, at the head: events up to it are not the session's
	queue   []queued // read from the store after sent, in order, waiting for the window
	behind  bool     // events after the queue's end are in the store, not read
	gen     uint64   // counts Offers that marked it behind, so a read does not clear a newer mark
}

// queued is an event read ahead, or (payload nil) versions up to pos that
// hold no event (a hole: nothing to send).
type queued struct {
	pos     uint64
	payload []byte
}

// tail is the last position sent or queued.
func (st *stream) tail() uint64 {
	if n := len(st.queue); n > 0 {
		return st.queue[n-1].pos
	}
	return st.sent
}

type pend struct {
	pos  uint64
	done bool
}

// ref is what a packet in flight carries: a position of the inbox (group
// "") or of a group.
type ref struct {
	group string
	pos   uint64
}

func (s *sess) supersede() {
	s.mu.Lock()
	s.superseded = true
	s.mu.Unlock()
}

func (s *sess) discarded() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.superseded
}

// hadInbox reports whether the session's stored subscriptions held the
// inbox at QoS 1: its positions are where delivery stopped. Otherwise
// they mean nothing and delivery starts at the heads.
func (s *sess) hadInbox() bool {
	for _, sub := range s.rec.Subs {
		if sub.Filter == wire.InboxTopic(s.user) && sub.QoS > 0 {
			return true
		}
	}
	return false
}

// record is the session as it is to be saved.
func (s *sess) record() store.Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.rec
	if s.placed {
		rec.Inbox = s.inbox.acked
		rec.Groups = make(map[string]uint64, len(s.groups))
		for g, st := range s.groups {
			rec.Groups[g] = st.acked
		}
	}
	rec.Subs = append([]store.SessionSub(nil), s.rec.Subs...)
	return rec
}

func (s *sess) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	if s.attached {
		s.m.opts.Metrics.SessionActive(-1)
	}
	s.m.opts.Metrics.SessionUnacked(-len(s.byPID))
}

// attach has the session deliver the inbox, subscribed as sub. replay:
// from the session's positions (a resumed session that held the inbox);
// otherwise from the heads now.
func (s *sess) attach(sub packets.Subscription, replay bool) {
	s.mu.Lock()
	s.sub = sub
	if s.started || s.closed {
		s.mu.Unlock()
		return
	}
	s.started = true
	s.window = s.m.opts.Inflight
	if s.cl.Properties.ProtocolVersion >= 5 && s.cl.Properties.Props.ReceiveMaximum > 0 {
		s.window = min(s.window, int(s.cl.Properties.Props.ReceiveMaximum)) // MQTT 5 §4.9
	}
	s.running = true // the resume runs first; Offers only mark streams behind
	s.mu.Unlock()
	if replay {
		go s.resume()
		return
	}
	// A session starting at the heads starts before the SUBACK (mochi
	// calls OnSubscribed first): every event committed after the device
	// holds its SUBACK is the session's.
	s.startFresh()
}

// startFresh puts the cursors at the heads, then takes the inbox. An event
// committed before the heads were read and delivered after the inbox was
// taken goes out as direct delivery would have sent it (Offer, base).
func (s *sess) startFresh() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.startAtHeads(ctx); err != nil {
		s.fail("start at the heads", err)
		return
	}
	s.m.changed(s)
	s.mu.Lock()
	s.attachLocked()
	s.running = false
	s.mu.Unlock()
	s.kick()
}

// detach hands the inbox back to direct delivery at QoS 0.
func (s *sess) detach() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.started = false
	if !s.attached {
		return
	}
	s.attached = false
	s.m.b.SetInbox(s.cl, nil)
	s.m.opts.Metrics.SessionActive(-1)
}

// resume sets the cursors of a resumed session from its positions and
// starts delivery. It waits for a connection of the device on another
// node to let go of the session first (its last acknowledgements are
// saved as it does), so that nothing is sent twice in one session.
func (s *sess) resume() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m := s.m
	// Replay: the inbox first, so that nothing live is missed while the
	// positions are read; the streams are marked behind below.
	s.mu.Lock()
	s.attachLocked()
	s.mu.Unlock()
	head, err := m.st.Head(ctx, s.user)
	if err != nil {
		s.fail("inbox head", err)
		return
	}
	heads, err := m.rd.GroupHeads(ctx, s.user)
	if err != nil {
		s.fail("group heads", err)
		return
	}
	var resyncs []wire.Resync
	s.mu.Lock()
	epoch := m.st.Epoch()
	reason := wire.ResyncBacklog
	if s.rec.Epoch != "" && s.rec.Epoch != epoch {
		reason = wire.ResyncEpoch // the positions belong to a history that is gone
		s.rec.Inbox, s.rec.Groups = 0, nil
	}
	s.rec.Epoch = epoch
	budget := m.opts.ReplayMax
	set := func(group string, st *stream, pos, head uint64) {
		if pos > head {
			pos = head // a restored store behind the session's positions
		}
		st.acked, st.sent = pos, pos
		switch backlog := head - pos; {
		case backlog == 0:
		case reason == wire.ResyncEpoch || backlog > uint64(budget):
			resyncs = append(resyncs, wire.Resync{Kind: wire.KindResync, Group: group, Since: pos, Upto: head, Reason: reason})
		default:
			budget -= int(backlog)
			st.behind = true
		}
	}
	set("", s.inbox, s.rec.Inbox, head)
	for _, h := range heads.Groups {
		st := s.stream(h.Group)
		pos, ok := s.rec.Groups[h.Group]
		if !ok || pos < h.Join {
			pos = h.Join // joined while away
		}
		set(h.Group, st, pos, h.Seq)
	}
	s.placed = true
	s.mu.Unlock()
	for _, r := range resyncs {
		s.resync(r)
	}
	s.mu.Lock()
	s.running = false
	s.mu.Unlock()
	m.changed(s)
	s.kick()
}

func (s *sess) attachLocked() {
	if s.closed || s.attached {
		return
	}
	s.attached = s.m.b.SetInbox(s.cl, s)
	if s.attached {
		s.m.opts.Metrics.SessionActive(1)
	}
}

// startAtHeads puts every cursor at its stream's head.
func (s *sess) startAtHeads(ctx context.Context) error {
	head, err := s.m.st.Head(ctx, s.user)
	if err != nil {
		return err
	}
	heads, err := s.m.rd.GroupHeads(ctx, s.user)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rec.Epoch = s.m.st.Epoch()
	s.inbox = &stream{acked: head, sent: head, base: head}
	s.groups = map[string]*stream{}
	for _, h := range heads.Groups {
		s.groups[h.Group] = &stream{acked: h.Seq, sent: h.Seq, base: h.Seq}
	}
	s.placed = true
	return nil
}

// waitRelease waits, up to 3 s, for a connection of the device on another
// node to release the session (the new connection's presence has it
// kicked), then takes what that connection saved: its last
// acknowledgements and subscriptions. A node that died holding it never
// does; its last saved positions stand. Before the session is used.
func (s *sess) waitRelease(ctx context.Context) {
	held := s.rec.Holder
	for range 60 {
		if !s.m.heldElsewhere(s.rec) || s.rec.Holder != held {
			return // released, or taken by yet another connection (its last saved positions stand)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
		fresh, err := s.m.st.LoadSession(ctx, s.user, s.device)
		if err != nil {
			return
		}
		s.rec = fresh
	}
}

func (s *sess) fail(what string, err error) {
	s.m.opts.Logger.Warn("persistent session: "+what+"; the device is disconnected to retry", "client", s.cl.ID, "err", err)
	s.mu.Lock()
	s.running = false
	s.mu.Unlock()
	_ = s.m.b.Server().DisconnectClient(s.cl, packets.ErrServerUnavailable)
}

// stream returns group's stream ("" the inbox), made at 0 for a group not
// seen yet (a sync from 0 starts at the device's join). Under s.mu.
func (s *sess) stream(group string) *stream {
	if group == "" {
		return s.inbox
	}
	st := s.groups[group]
	if st == nil {
		st = &stream{}
		s.groups[group] = st
	}
	return st
}

// msgHead is the part of an inbox event the pump reads.
type msgHead struct {
	Kind  string `json:"kind"`
	Ver   uint64 `json:"ver"`
	Group string `json:"group"`
	Seq   uint64 `json:"seq"`
}

// Offer takes an inbox event from direct delivery (broker.InboxHandler).
// A message event (or a change of a message: wire.Versioned) next in its stream goes out at QoS 1 at once if the
// window is open and nothing is being read from the store; any other
// marks its stream behind for the pump. Other events go out at QoS 0.
func (s *sess) Offer(sub packets.Subscription, pk packets.Packet) {
	var h msgHead
	if err := gojson.Unmarshal(pk.Payload, &h); err != nil || !wire.Versioned(h.Kind) || (h.Ver == 0 && h.Seq == 0) {
		_, _ = s.m.b.Server().PublishToClient(s.cl, sub, pk) // at the packet's QoS 0
		return
	}
	group, pos := "", h.Ver
	if h.Group != "" {
		group, pos = h.Group, h.Seq
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || !s.attached {
		return // the session's cursor catches it up
	}
	s.sub = sub
	st := s.stream(group)
	switch {
	case pos <= st.base:
		// Committed before the session started at the head, delivered
		// after: as direct delivery would have sent it.
		_, _ = s.m.b.Server().PublishToClient(s.cl, sub, pk)
		return
	case pos <= st.tail():
		return // sent or queued already (read from the store first)
	case !s.running && !st.behind && len(st.queue) == 0 && pos == st.sent+1 && len(s.byPID) < s.window:
		if s.sendLocked(group, pos, pk.Payload) {
			return
		}
		time.AfterFunc(time.Second, s.kick) // mochi did not take it: read it from the store later
	}
	st.behind = true
	st.gen++
	s.kickLocked()
}

// sendLocked publishes payload at QoS 1 and records it in flight. It
// reports false if mochi did not take it (the connection is gone).
func (s *sess) sendLocked(group string, pos uint64, payload []byte) bool {
	if s.closed {
		return false // taken over: mochi would hand what is in flight to the next connection
	}
	st := s.stream(group)
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
		TopicName:   wire.InboxTopic(s.user),
		Payload:     payload,
		Origin:      mqtt.InlineClientId,
		Created:     time.Now().Unix(),
	}
	out, err := s.m.b.Server().PublishToClient(s.cl, s.sub, pk)
	if err != nil || out.FixedHeader.Qos == 0 {
		return false
	}
	if out.Expiry < 0 {
		// mochi holds a publish past the client's send quota without
		// sending it; the window keeps under the quota, so this is a
		// quota mochi lost count of: take it back and retry later.
		s.cl.State.Inflight.Delete(out.PacketID)
		return false
	}
	s.byPID[out.PacketID] = ref{group: group, pos: pos}
	st.pending = append(st.pending, pend{pos: pos})
	st.sent = pos
	s.m.opts.Metrics.SessionUnacked(1)
	return true
}

// resync sends r and moves its stream past the range when the device
// acknowledges it.
func (s *sess) resync(r wire.Resync) {
	payload, err := wire.Marshal(r)
	if err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sendLocked(r.Group, r.Upto, payload) {
		s.m.opts.Metrics.SessionResync(r.Reason)
	}
}

// ack takes the PUBACK of pid.
func (s *sess) ack(pid uint16) {
	s.mu.Lock()
	r, ok := s.byPID[pid]
	if !ok {
		s.mu.Unlock()
		return
	}
	delete(s.byPID, pid)
	s.m.opts.Metrics.SessionUnacked(-1)
	st := s.stream(r.group)
	for i := range st.pending {
		if st.pending[i].pos == r.pos {
			st.pending[i].done = true
			break
		}
	}
	moved := st.settle()
	s.drainLocked()
	s.kickLocked()
	s.mu.Unlock()
	if moved {
		s.m.changed(s)
	}
}

// settle moves acked past the acknowledged prefix of pending. A PUBACK out
// of order waits for those before it.
func (st *stream) settle() bool {
	n := 0
	for n < len(st.pending) && st.pending[n].done {
		st.acked = st.pending[n].pos
		n++
	}
	st.pending = st.pending[n:]
	if len(st.pending) == 0 && st.sent > st.acked {
		st.acked = st.sent // holes past the last event sent
	}
	return n > 0
}

// synced takes a device's own sync since pos as an acknowledgement of
// everything up to pos.
func (s *sess) synced(group string, pos uint64) {
	s.mu.Lock()
	if group != "" {
		if _, ok := s.groups[group]; !ok {
			s.mu.Unlock()
			return
		}
	}
	st := s.stream(group)
	if pos <= st.acked || pos > st.sent {
		s.mu.Unlock()
		return // only what was sent: a sync past it would skip what the device never got
	}
	for i := range st.pending {
		if st.pending[i].pos <= pos {
			st.pending[i].done = true
		}
	}
	st.settle()
	s.mu.Unlock()
	s.m.changed(s)
}

// kickLocked starts the pump if it has a read to make. Under s.mu.
func (s *sess) kickLocked() {
	if _, ok := s.toRead(); s.running || !ok {
		return
	}
	s.running = true
	go s.pump()
}

func (s *sess) kick() {
	s.mu.Lock()
	s.drainLocked()
	s.kickLocked()
	s.mu.Unlock()
}

// toRead is the stream the pump reads next, the inbox first: one that is
// behind, while nothing is queued and the window is open. Under s.mu.
func (s *sess) toRead() (group string, ok bool) {
	if s.closed || !s.attached || s.queued > 0 || len(s.byPID) >= s.window {
		return "", false
	}
	if s.inbox.behind {
		return "", true
	}
	for g, st := range s.groups {
		if st.behind {
			return g, true
		}
	}
	return "", false
}

// drainLocked sends what is queued, the inbox first, while the window is
// open: on the goroutine of the PUBACK that opened it, with no store read.
// Under s.mu.
func (s *sess) drainLocked() {
	if s.queued == 0 || s.closed || !s.attached {
		return
	}
	drain := func(group string, st *stream) bool {
		for len(st.queue) > 0 {
			q := st.queue[0]
			if q.payload == nil { // a hole: nothing to send
				st.pending = append(st.pending, pend{pos: q.pos, done: true})
				st.sent = q.pos
				st.settle()
			} else {
				if len(s.byPID) >= s.window {
					return false
				}
				if !s.sendLocked(group, q.pos, q.payload) {
					time.AfterFunc(time.Second, s.kick) // mochi did not take it: the connection is going
					return false
				}
			}
			s.queued--
			st.queue[0] = queued{}
			st.queue = st.queue[1:]
		}
		st.queue = nil
		return true
	}
	if !drain("", s.inbox) {
		return
	}
	for g, st := range s.groups {
		if len(st.queue) > 0 && !drain(g, st) {
			return
		}
	}
}

// readAhead is how many events the pump reads at once: twice the window,
// so that PUBACKs send what is queued and the store is read once per
// window's worth (at least 64, at most a sync batch).
func (s *sess) readAhead() int { return min(max(2*s.window, 64), 500) }

// pump reads from the store for a stream that is behind, when nothing is
// queued, and sends what the window takes; PUBACKs send the rest.
func (s *sess) pump() {
	for {
		s.mu.Lock()
		s.drainLocked()
		group, ok := s.toRead()
		if !ok {
			s.running = false
			s.mu.Unlock()
			return
		}
		st := s.stream(group)
		since, gen := st.tail(), st.gen
		s.mu.Unlock()

		items, upto, more, err := s.read(group, since, s.readAhead())
		s.mu.Lock()
		switch {
		case errors.Is(err, chat.ErrNotMember):
			delete(s.groups, group) // left the group
			s.mu.Unlock()
			continue
		case err != nil:
			s.running = false
			s.mu.Unlock()
			s.m.opts.Logger.Warn("persistent session: read the store; retried in 1s", "client", s.cl.ID, "err", err)
			time.AfterFunc(time.Second, s.kick)
			return
		}
		if s.closed || st.tail() != since {
			s.running = false
			s.mu.Unlock()
			return
		}
		for _, it := range items {
			pos := it.Ver
			if group != "" {
				pos = it.Seq
			}
			payload, err := wire.Marshal(it)
			if err != nil {
				continue // a Msg always marshals
			}
			st.queue = append(st.queue, queued{pos: pos, payload: payload})
			s.queued++
		}
		if upto > st.tail() {
			st.queue = append(st.queue, queued{pos: upto}) // versions with no event
			s.queued++
		}
		if !more && st.gen == gen {
			st.behind = false
		}
		s.mu.Unlock()
		s.m.opts.Metrics.SessionReplayed(len(items))
	}
}

// read returns up to n events of group ("" the inbox) after since, the
// position they cover up to, and whether more follow.
func (s *sess) read(group string, since uint64, n int) ([]wire.Msg, uint64, bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var items []wire.Msg
	upto, more := since, false
	err := s.m.rd.Sync(ctx, s.user, wire.SyncRequest{Since: since, Limit: n, Group: group}, func(b wire.Sync) error {
		if b.Reset {
			return errReset
		}
		items = append(items, b.Items...)
		upto, more = b.Upto, b.More
		return nil
	})
	return items, upto, more, err
}

var errReset = errors.New("the store's history changed under the session")
