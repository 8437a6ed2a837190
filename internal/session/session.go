// Package session gives plain MQTT devices persistent sessions backed by
// the store (docs/protocol.md#persistent-sessions). A device that connects
// with a persistent session (MQTT 3.1.1 cleanSession=0, MQTT 5 Session
// Expiry Interval > 0) and subscribes to its inbox at QoS 1 gets every
// message event at QoS 1; its PUBACKs move the session's acknowledged
// position (per inbox, and per group), which is saved in batches. When it
// comes back (after a disconnect, a restart of the node, on another node),
// everything after that position is read from the store and sent to it in
// order before live events: a sync the server does on the device's behalf.
//
// mochi keeps no persistent session of its own: a persistent client is
// forgotten when it disconnects (broker.ForgetSession), and the session
// lives in the store (store.Sessions) instead, so a session costs no
// memory while its device is away, survives a kill -9 and follows the
// device to another node.
//
// Where a message event goes, for a device whose session has taken its
// inbox:
//
//	deliver ─► broker (direct delivery) ─► pump.Offer
//	    next in order, window open ─► PUBLISH QoS 1 now (no store read)
//	    otherwise                    ─► marked behind: the pump reads the
//	                                    store after what it sent (chat's sync)
//	PUBACK (read by OnPacketRead) ─► acknowledged position ─► saved ≤ 1 s later
//
// A device that stops reading holds at most its window of unacknowledged
// events and nothing else: later events only mark its pump behind.
package session

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/imqtt/imqtt/broker"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/wire"
)

// Defaults of Options.
const (
	DefaultExpiryMax     = 7 * 24 * 3600 // seconds a disconnected session is kept, at most
	DefaultReplayMax     = 10000         // events replayed per reconnect; past it, a resync event
	DefaultInflight      = 32            // QoS 1 events unacknowledged per device
	DefaultFlushInterval = time.Second   // how often acknowledged positions are saved
	DefaultMaxPerUser    = 16            // persistent sessions one user may hold (devices)
)

// Store is the part of the store sessions use.
type Store interface {
	store.Sessions
	Head(ctx context.Context, user string) (uint64, error)
	Epoch() string
}

// Reader reads what a session replays: chat's sync, which a device would
// otherwise ask for itself.
type Reader interface {
	Sync(ctx context.Context, user string, req wire.SyncRequest, emit func(wire.Sync) error) error
	GroupHeads(ctx context.Context, user string) (wire.Heads, error)
}

// Broker is what sessions need of the broker.
type Broker interface {
	Server() *mqtt.Server
	SetInbox(cl *mqtt.Client, h broker.InboxHandler) bool
	RestoreSubscriptions(cl *mqtt.Client, subs []packets.Subscription)
	ForgetSession(cl *mqtt.Client)
}

// Metrics counts what sessions do.
type Metrics interface {
	SessionReplayed(n int)       // events read from the store and sent
	SessionResync(reason string) // resync events sent instead of a replay
	SessionActive(delta int)     // sessions delivering an inbox now
	SessionUnacked(delta int)    // events sent and not yet acknowledged
	SessionSaveFailed()          // a batch of positions not saved (retried)
}

// Options configure the Manager; zero values take the defaults.
type Options struct {
	Node string // this node's ID: a session's holder is "{node}/{nonce}"
	// Cluster says other nodes share the store: a resumed session is
	// then written as held before its CONNACK, so that a takeover on
	// another node waits for it. One node keeps that in memory, and a
	// device reconnecting in a loop costs no synced write each time.
	Cluster       bool
	ExpiryMax     uint32 // seconds; also given to mochi as its maximum session expiry
	ReplayMax     int
	Inflight      int
	MaxPerUser    int // persistent sessions per user; a new one past it is refused (0x97)
	FlushInterval time.Duration
	Logger        *slog.Logger
	Metrics       Metrics
}

// Manager is the mochi hook that runs persistent sessions.
type Manager struct {
	mqtt.HookBase
	st   Store
	rd   Reader
	b    Broker
	opts Options

	// saving orders the writes of records against deletes: a save that
	// read a record before a delete (a ban) must not write it after.
	saving sync.Mutex

	mu      sync.RWMutex
	byCl    map[*mqtt.Client]*sess
	byID    map[string]*sess             // the newest connection of each client ID
	dirty   map[*sess]struct{}           // positions or subscriptions to save
	deletes map[store.SessionID]struct{} // clean connections' devices, whose sessions the saver deletes

	stop chan struct{}
	done chan struct{}
}

// New returns a Manager; Start starts its saver.
func New(st Store, rd Reader, b Broker, opts Options) *Manager {
	if opts.ExpiryMax == 0 {
		opts.ExpiryMax = DefaultExpiryMax
	}
	if opts.ReplayMax <= 0 {
		opts.ReplayMax = DefaultReplayMax
	}
	if opts.Inflight <= 0 {
		opts.Inflight = DefaultInflight
	}
	if opts.MaxPerUser <= 0 {
		opts.MaxPerUser = DefaultMaxPerUser
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = DefaultFlushInterval
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Metrics == nil {
		opts.Metrics = nopMetrics{}
	}
	return &Manager{st: st, rd: rd, b: b, opts: opts,
		byCl: map[*mqtt.Client]*sess{}, byID: map[string]*sess{}, dirty: map[*sess]struct{}{}, deletes: map[store.SessionID]struct{}{},
		stop: make(chan struct{}), done: make(chan struct{})}
}

// ID names the hook.
func (m *Manager) ID() string { return "imqtt-sessions" }

// Provides lists the mochi events the Manager handles.
func (m *Manager) Provides(b byte) bool {
	switch b {
	case mqtt.OnSessionEstablish, mqtt.OnSessionEstablished, mqtt.OnPacketEncode, mqtt.OnSubscribed,
		mqtt.OnUnsubscribed, mqtt.OnDisconnect, mqtt.OnPacketRead:
		return true
	}
	return false
}

// Start runs the saver, which writes changed positions every FlushInterval.
func (m *Manager) Start() { go m.saver() }

// Close saves what is left and stops the saver. Connections still open
// keep their sessions held; their positions are saved.
func (m *Manager) Close() {
	select {
	case <-m.stop:
		return
	default:
	}
	close(m.stop)
	<-m.done
}

// persistent reports whether a CONNECT asks for a session that outlives
// the connection: cleanSession=0 in MQTT 3.1.1 [MQTT-3.1.2-4], a Session
// Expiry Interval above 0 in MQTT 5 (§3.1.2.11.2; absent is 0).
func persistent(cl *mqtt.Client, pk packets.Packet) bool {
	if cl.Properties.ProtocolVersion >= 5 {
		return pk.Properties.SessionExpiryInterval > 0
	}
	return !pk.Connect.Clean
}

// OnSessionEstablish runs once the client is authenticated, before mochi
// looks for a session it kept: it finds the device's session (a
// connection of it on this node, or the store) or starts one.
func (m *Manager) OnSessionEstablish(cl *mqtt.Client, pk packets.Packet) {
	user, device, ok := wire.SplitClientID(cl.ID)
	if !ok || cl.Net.Inline {
		return
	}
	m.mu.Lock()
	prev := m.byID[cl.ID]
	m.mu.Unlock()
	if prev != nil {
		prev.close() // its connection is being taken over: it sends nothing more
	}
	if old, ok := m.b.Server().Clients.Get(cl.ID); ok && old != cl {
		// mochi would resend what is in flight to the connection it takes
		// over; the session resends from its positions instead. After the
		// close above: a publish of its pump after this would be resent.
		old.ClearInflights()
	}
	if prev != nil && prev.discarded() {
		// Ending (its disconnect is saving it) or dropped: wait for its
		// last write, then read the store.
		m.saving.Lock()
		m.saving.Unlock() //nolint:staticcheck // an empty critical section: a barrier
		prev = nil
	}
	if prev != nil {
		prev.supersede() // taken over: it saves nothing more
	}
	if !persistent(cl, pk) {
		// A clean session discards the device's previous one [MQTT-3.1.2-6]
		// (MQTT 5: Clean Start, §3.1.2.4).
		m.forget(user, device)
		m.mu.Lock()
		delete(m.byID, cl.ID)
		m.mu.Unlock()
		return
	}
	s := &sess{m: m, cl: cl, user: user, device: device, inbox: &stream{}, groups: map[string]*stream{}, byPID: map[uint16]ref{},
		holder: m.opts.Node + "/" + nonce()}
	s.rec = store.Session{User: user, Device: device}
	switch {
	case pk.Connect.Clean: // MQTT 5 Clean Start with an expiry: a new session, kept after this connection
		m.forget(user, device) // create deletes the old one first
	case prev != nil:
		s.resumed = true
		s.rec = prev.record()
	default:
		rec, err := m.load(user, device)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			s.broken = err
		case rec.Expired(time.Now().UnixMilli()):
			m.forget(user, device)
		default:
			s.resumed, s.rec = true, rec
			if m.opts.Cluster && !m.heldElsewhere(rec) {
				// This connection holds it now, in the store before its
				// CONNACK: a connection of the device to another node then
				// waits for this one to let go (OnSessionEstablished).
				s.broken = m.hold(rec, s.holder)
			}
		}
	}
	if !s.resumed && s.broken == nil {
		// A new session is in the store before its CONNACK: a connection
		// of the device to another node finds it, whenever it comes.
		s.rec.Epoch, s.rec.Expiry, s.rec.Holder = m.st.Epoch(), m.expiry(cl, pk), s.holder
		if err := m.create(s.rec); err != nil {
			s.broken = err
		}
	}
	m.mu.Lock()
	m.byCl[cl] = s
	m.byID[cl.ID] = s
	m.mu.Unlock()
}

// errTooManySessions refuses a new session past Options.MaxPerUser.
var errTooManySessions = errors.New("the user holds the most persistent sessions allowed")

// create writes a new session, after the delete of the device's old one
// if a clean connection queued it (the saver must not delete the new one).
func (m *Manager) create(rec store.Session) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	m.saving.Lock()
	defer m.saving.Unlock()
	id := store.SessionID{User: rec.User, Device: rec.Device}
	m.mu.Lock()
	_, queued := m.deletes[id]
	delete(m.deletes, id)
	m.mu.Unlock()
	if queued {
		if err := m.st.DeleteSession(ctx, rec.User, rec.Device); err != nil {
			return err
		}
	}
	// Each session is a row kept for days: one account must not make
	// them without end (a device ID is anything the account password opens).
	n, err := m.st.CountUserSessions(ctx, rec.User, m.opts.MaxPerUser)
	if err != nil {
		return err
	}
	if n >= m.opts.MaxPerUser {
		return errTooManySessions
	}
	return m.st.SaveSessions(ctx, []store.Session{rec})
}

// hold writes rec as held by holder, connected.
func (m *Manager) hold(rec store.Session, holder string) error {
	rec.Holder, rec.Disconnected = holder, 0
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return m.st.SaveSessions(ctx, []store.Session{rec})
}

// heldElsewhere reports whether rec is held by a connection on another
// node: one that has not released it.
func (m *Manager) heldElsewhere(rec store.Session) bool {
	return rec.Holder != "" && rec.Disconnected == 0 && !strings.HasPrefix(rec.Holder, m.opts.Node+"/")
}

// expiry is how long the session of a CONNECT is kept after a disconnect,
// in seconds: MQTT 5's Session Expiry Interval, at most ExpiryMax (mochi
// tells the client so in the CONNACK); 3.1.1's, ExpiryMax.
func (m *Manager) expiry(cl *mqtt.Client, pk packets.Packet) uint32 {
	if cl.Properties.ProtocolVersion >= 5 {
		return min(pk.Properties.SessionExpiryInterval, m.opts.ExpiryMax)
	}
	return m.opts.ExpiryMax
}

func nonce() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// load reads a session, unless a clean connection of the device asked for
// it to be deleted and the delete is still queued.
func (m *Manager) load(user, device string) (store.Session, error) {
	m.mu.Lock()
	_, gone := m.deletes[store.SessionID{User: user, Device: device}]
	m.mu.Unlock()
	if gone {
		return store.Session{}, store.ErrNotFound
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return m.st.LoadSession(ctx, user, device)
}

// forget queues the delete of a device's stored session: the saver
// deletes every queued one in one write a second, so clean connections
// (every SDK connection) neither wait for the store nor cost a write each.
func (m *Manager) forget(user, device string) {
	m.mu.Lock()
	m.deletes[store.SessionID{User: user, Device: device}] = struct{}{}
	m.mu.Unlock()
}

// OnPacketEncode says in a persistent session's CONNACK whether it was
// resumed [MQTT-3.2.2-2]: the sessions are imqtt's, not mochi's (mochi
// knows only a connection it is taking over, whose session may have been
// ended meanwhile).
func (m *Manager) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type != packets.Connack || pk.ReasonCode != 0 {
		return pk
	}
	if s := m.get(cl); s != nil {
		pk.SessionPresent = s.resumed
	}
	return pk
}

func (m *Manager) get(cl *mqtt.Client) *sess {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.byCl[cl]
}

// OnSessionEstablished restores a resumed session's subscriptions and, if
// it holds the inbox at QoS 1, starts its replay.
func (m *Manager) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	s := m.get(cl)
	if s == nil {
		return
	}
	if errors.Is(s.broken, errTooManySessions) {
		// mochi has sent the CONNACK (this hook cannot refuse it): the
		// DISCONNECT says why (MQTT 5 0x97; 3.1.1: closed).
		// A user can do this at will: counted and logged at a bounded rate
		// by the daemon's metrics when they can (metrics.Refused).
		if r, ok := m.opts.Metrics.(interface{ Refused(limit string) }); ok {
			r.Refused("session_quota")
		} else {
			m.opts.Logger.Info("persistent session refused: the user holds the most allowed", "client", cl.ID, "max", m.opts.MaxPerUser)
		}
		_ = m.b.Server().DisconnectClient(cl, packets.ErrQuotaExceeded)
		return
	}
	if s.broken != nil {
		m.opts.Logger.Warn("persistent session not loaded; the device is disconnected to retry", "client", cl.ID, "err", s.broken)
		_ = m.b.Server().DisconnectClient(cl, packets.ErrServerUnavailable)
		return
	}
	if s.resumed && m.heldElsewhere(s.rec) {
		// Held by a connection on another node: wait for it to let go
		// (presence, which runs before this hook, has it kicked), so that
		// nothing it had acknowledged is sent again, then hold it. The
		// device's packets wait meanwhile.
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
		s.waitRelease(ctx)
		cancel()
		if err := m.hold(s.rec, s.holder); err != nil {
			m.opts.Logger.Warn("persistent session: hold it after a takeover", "client", cl.ID, "err", err)
		}
	}
	s.mu.Lock()
	s.rec.Expiry = m.opts.ExpiryMax
	if cl.Properties.ProtocolVersion >= 5 {
		s.rec.Expiry = min(cl.Properties.Props.SessionExpiryInterval, m.opts.ExpiryMax) // mochi caps it in the CONNACK
	}
	s.rec.Holder, s.rec.Disconnected = s.holder, 0
	replay := s.resumed && s.hadInbox()
	subs := make([]packets.Subscription, 0, len(s.rec.Subs))
	for _, sub := range s.rec.Subs {
		subs = append(subs, packets.Subscription{Filter: sub.Filter, Qos: sub.QoS})
	}
	s.mu.Unlock()
	if s.resumed && len(subs) > 0 {
		m.b.RestoreSubscriptions(cl, subs)
	}
	m.changed(s)
	if sub, ok := cl.State.Subscriptions.Get(wire.InboxTopic(s.user)); ok && sub.Qos > 0 {
		s.attach(sub, replay)
	}
}

// OnSubscribed records the session's subscriptions; a subscription to the
// inbox at QoS 1 has the session deliver it, one at QoS 0 leaves it to
// direct delivery at QoS 0, as the device asked.
func (m *Manager) OnSubscribed(cl *mqtt.Client, _ packets.Packet, _ []byte) {
	m.subscriptionsChanged(cl)
}

// OnUnsubscribed is OnSubscribed for an unsubscribe.
func (m *Manager) OnUnsubscribed(cl *mqtt.Client, _ packets.Packet) { m.subscriptionsChanged(cl) }

func (m *Manager) subscriptionsChanged(cl *mqtt.Client) {
	s := m.get(cl)
	if s == nil {
		return
	}
	prefix := wire.UserPrefix(s.user)
	var subs []store.SessionSub
	for f, sub := range cl.State.Subscriptions.GetAll() {
		if len(f) > len(prefix) && f[:len(prefix)] == prefix {
			subs = append(subs, store.SessionSub{Filter: f, QoS: sub.Qos})
		}
	}
	s.mu.Lock()
	hadInbox := s.hadInbox()
	s.rec.Subs = subs
	s.mu.Unlock()
	m.changed(s)
	sub, ok := cl.State.Subscriptions.Get(wire.InboxTopic(s.user))
	switch {
	case ok && sub.Qos > 0:
		s.attach(sub, s.resumed && hadInbox)
	default:
		s.detach()
	}
}

// OnPacketRead takes the device's PUBACKs, and its own im/sync as an
// acknowledgement too: a device that asks for everything after N has
// everything up to N. (Not mochi's OnQosComplete: mochi calls it for the
// PUBACKs it sends for the device's own QoS 1 publishes too, whose IDs are
// the device's, not the server's.)
func (m *Manager) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	switch {
	case pk.FixedHeader.Type == packets.Puback:
		if s := m.get(cl); s != nil {
			s.ack(pk.PacketID)
		}
		return pk, nil
	case pk.FixedHeader.Type == packets.Disconnect && pk.Properties.SessionExpiryIntervalFlag && pk.Properties.SessionExpiryInterval == 0:
		// The device ends its session (MQTT 5 §3.14.2.2.2): now, before
		// its connection closes, so that a CONNECT right after it finds none.
		if s := m.get(cl); s != nil {
			m.end(s)
		}
		return pk, nil
	case pk.FixedHeader.Type != packets.Publish || pk.TopicName != wire.TopicSync:
		return pk, nil
	}
	s := m.get(cl)
	if s == nil {
		return pk, nil
	}
	var req wire.SyncRequest
	if e, _ := wire.DecodeRequest("sync", pk.Payload, &req); e != nil || req.Heads || req.Since == 0 {
		return pk, nil // the uplink answers a bad request
	}
	if req.Epoch != "" && req.Epoch != m.st.Epoch() {
		return pk, nil
	}
	s.synced(req.Group, req.Since)
	return pk, nil
}

// OnDisconnect releases the session: its positions are saved with the
// time of the disconnect, from which its expiry counts, and mochi forgets
// the client.
func (m *Manager) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	s := m.get(cl)
	if s == nil {
		return
	}
	s.close()
	m.release(s)
	m.mu.Lock()
	delete(m.byCl, cl)
	if m.byID[cl.ID] == s {
		delete(m.byID, cl.ID)
	}
	delete(m.dirty, s)
	m.mu.Unlock()
	m.b.ForgetSession(cl)
}

// release is a session's last write, unless it was taken over or dropped:
// its positions with the time of the disconnect, or its delete if the
// device ended it. A connection of the device that comes meanwhile waits
// for it (OnSessionEstablish).
func (m *Manager) release(s *sess) {
	m.saving.Lock()
	defer m.saving.Unlock()
	if s.broken != nil || s.discarded() {
		return
	}
	s.supersede() // this is its last write: a save the saver began before it is not made
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	cl := s.cl
	rec := s.record()
	rec.Disconnected = time.Now().UnixMilli()
	if err := m.st.SaveSessions(ctx, []store.Session{rec}); err != nil {
		m.opts.Metrics.SessionSaveFailed()
		m.opts.Logger.Warn("save session at disconnect; it resumes from its last saved position", "client", cl.ID, "err", err)
	}
}

// end deletes s's session, which its device ended: nothing of it is
// saved after.
func (m *Manager) end(s *sess) {
	m.saving.Lock()
	defer m.saving.Unlock()
	s.supersede()
	s.close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := m.st.DeleteSession(ctx, s.user, s.device); err != nil {
		m.opts.Logger.Warn("delete a session its device ended", "client", s.cl.ID, "err", err)
	}
}

// DropUser deletes every session of user (a ban).
func (m *Manager) DropUser(ctx context.Context, user string) error {
	var held []*sess
	m.mu.Lock()
	for _, s := range m.byCl {
		if s.user == user {
			held = append(held, s)
		}
	}
	m.mu.Unlock()
	m.saving.Lock()
	defer m.saving.Unlock()
	for _, s := range held {
		s.supersede()
		s.close()
	}
	return m.st.DeleteUserSessions(ctx, user)
}

// changed queues s's record for the saver.
func (m *Manager) changed(s *sess) {
	m.mu.Lock()
	if _, ok := m.byCl[s.cl]; ok {
		m.dirty[s] = struct{}{}
	}
	m.mu.Unlock()
}

// saver writes queued deletes and changed records every FlushInterval,
// and once more when the Manager closes.
func (m *Manager) saver() {
	defer close(m.done)
	t := time.NewTicker(m.opts.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			_ = m.flushDeletes()
			m.flush()
			return
		case <-t.C:
			_ = m.flushDeletes()
			m.flush()
		}
	}
}

func (m *Manager) flushDeletes() error {
	m.saving.Lock()
	defer m.saving.Unlock()
	m.mu.Lock()
	dels := m.deletes
	m.deletes = map[store.SessionID]struct{}{}
	m.mu.Unlock()
	if len(dels) == 0 {
		return nil
	}
	ids := slices.Collect(maps.Keys(dels))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.st.DeleteSessions(ctx, ids); err != nil {
		m.mu.Lock()
		maps.Copy(m.deletes, dels) // retried next time
		m.mu.Unlock()
		m.opts.Metrics.SessionSaveFailed()
		return err
	}
	return nil
}

func (m *Manager) flush() {
	m.mu.Lock()
	ss := make([]*sess, 0, len(m.dirty))
	for s := range m.dirty {
		ss = append(ss, s)
	}
	m.dirty = map[*sess]struct{}{}
	m.mu.Unlock()
	if len(ss) == 0 {
		return
	}
	m.saving.Lock()
	defer m.saving.Unlock()
	recs := make([]store.Session, 0, len(ss))
	for _, s := range ss {
		if !s.discarded() {
			recs = append(recs, s.record())
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.st.SaveSessions(ctx, recs); err != nil {
		m.opts.Metrics.SessionSaveFailed()
		m.opts.Logger.Warn("save session positions; retried", "sessions", len(recs), "err", err)
		for _, s := range ss {
			m.changed(s)
		}
	}
}

type nopMetrics struct{}

func (nopMetrics) SessionReplayed(int)  {}
func (nopMetrics) SessionResync(string) {}
func (nopMetrics) SessionActive(int)    {}
func (nopMetrics) SessionUnacked(int)   {}
func (nopMetrics) SessionSaveFailed()   {}
