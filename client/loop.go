package client

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	gojson "github.com/goccy/go-json"

	"github.com/imqtt/imqtt/wire"
)

// item is one thing for the loop goroutine, in arrival order.
type item struct {
	kind    int
	gen     uint64 // the connection it came from
	topic   string
	payload []byte
}

const (
	itemMsg  = iota // a publish on the inbox or device topic
	itemUp          // connected and subscribed: sync
	itemDown        // the connection dropped
)

// queue is an unbounded FIFO from paho's handler to the loop, so the handler
// never blocks (and acks keep flowing while OnEvent is busy).
type queue struct {
	mu    sync.Mutex
	items []item
	ready chan struct{} // has a value when items is not empty
}

func (q *queue) init() { q.ready = make(chan struct{}, 1) }

func (q *queue) push(it item) {
	q.mu.Lock()
	q.items = append(q.items, it)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

func (q *queue) take() []item {
	q.mu.Lock()
	defer q.mu.Unlock()
	its := q.items
	q.items = nil
	return its
}

// handler returns paho's handler for both topics of connection gen. Acks and
// errors for a cmid go straight to the waiting Send; everything else is
// queued for the loop.
func (c *Client) handler(gen uint64) mqtt.MessageHandler {
	return func(_ mqtt.Client, m mqtt.Message) { c.onMessage(gen, m) }
}

func (c *Client) onMessage(gen uint64, m mqtt.Message) {
	p := m.Payload()
	if m.Topic() == c.device && len(p) > 0 && p[0] == '{' && !bytes.HasPrefix(p, syncPrefix) {
		var r replyJSON
		if gojson.Unmarshal(p, &r) == nil && r.CMID != "" {
			switch r.Kind {
			case wire.KindAck:
				c.reply(r.CMID, sendResult{ack: wire.Ack{Kind: r.Kind, CMID: r.CMID, ID: r.ID, Ver: r.Ver, TS: r.TS, Group: r.Group, Seq: r.Seq}})
				return
			case wire.KindError:
				e := &wire.Error{Kind: r.Kind, CMID: r.CMID, Code: r.Code, Message: r.Message}
				if !c.reply(e.CMID, sendResult{err: e}) {
					c.log.Debug("error event for no waiting send", "cmid", e.CMID, "code", e.Code)
				}
				return
			}
		}
	}
	c.queue.push(item{kind: itemMsg, gen: gen, topic: m.Topic(), payload: p})
}

// loop owns the sequencers, the inbox's and the groups': it turns queued
// publishes and connection changes into sync requests and ordered OnEvent
// calls, and saves the cursor.
func (c *Client) loop(ctx context.Context, seq *sequencer, groups *groupSet) {
	defer c.wg.Done()
	l := &loopState{c: c, seq: seq, groups: groups, timer: time.NewTimer(time.Hour), recheck: time.NewTimer(time.Hour)}
	l.timer.Stop()
	l.recheck.Stop()
	defer l.timer.Stop()
	defer l.recheck.Stop()
	var resync <-chan time.Time
	if c.cfg.ResyncInterval > 0 {
		t := time.NewTicker(c.cfg.ResyncInterval)
		defer t.Stop()
		resync = t.C
	}
	// Group requests' deadlines and retries are checked on a tick: one
	// timer per group would cost more than a look at each now and then.
	gtick := time.NewTicker(min(groupRetry, c.cfg.SyncTimeout) / 4)
	defer gtick.Stop()
	for {
		select {
		case <-resync:
			if l.up && !seq.syncing {
				l.requestSync()
			}
			if l.up {
				l.sendGroups(groups.askHeads(time.Now()))
			}
		case now := <-gtick.C:
			if l.up {
				l.sendGroups(groups.tick(now))
				l.checkSynced()
			}
		case <-ctx.Done():
			return
		case <-c.queue.ready:
			for _, it := range c.queue.take() {
				if ctx.Err() != nil {
					return
				}
				l.handle(it)
			}
			l.checkSynced()
		case <-l.timer.C:
			if l.up && seq.syncing {
				c.log.Warn("sync request unanswered; asking again", "ver", seq.cursor)
				l.requestSync()
			}
		case <-l.recheck.C:
			if l.up && !seq.syncing {
				l.requestSync()
			}
		}
	}
}

// loopState is what the loop goroutine alone touches.
type loopState struct {
	c         *Client
	seq       *sequencer // the inbox's
	groups    *groupSet
	timer     *time.Timer // the deadline of the outstanding inbox sync request
	recheck   *time.Timer // one more sync after live events were dropped unconfirmed
	gen       uint64      // the current connection
	up        bool
	inboxDone bool // an inbox sync ended since the latest connect
}

func (l *loopState) handle(it item) {
	c := l.c
	switch it.kind {
	case itemUp:
		l.gen, l.up = it.gen, true
		c.mu.Lock()
		select {
		case <-c.synced: // a new connect needs a new sync
			c.synced = make(chan struct{})
		default:
		}
		c.mu.Unlock()
		l.seq.connected()
		l.inboxDone = false
		l.requestSync()
		l.sendGroups(l.groups.connected(time.Now()))
		return
	case itemDown:
		if it.gen == l.gen {
			l.up = false
			l.timer.Stop()
		}
		return
	}
	if it.gen != l.gen {
		// Left over from an earlier connection: the sync of the current one
		// brings whatever it held.
		return
	}
	p, err := Decompress(it.payload)
	if err != nil {
		c.skip("bad payload skipped", "topic", it.topic, "err", err)
		return
	}
	if it.topic == c.device {
		l.deviceEvent(p)
		return
	}
	ev, err := decodeEvent(p, false)
	if err != nil {
		// The sync that the next event's gap starts covers its version.
		c.skip("undecodable inbox event skipped", "err", err)
		return
	}
	switch {
	case groupItem(ev): // a group's message, or a change of one: ordered by seq like them
		if m := ev.Item(); m.Seq == 0 {
			c.skip("group item without a seq skipped", "kind", ev.Kind, "group", m.Group)
			return
		}
		out, reqs := l.groups.live(ev, time.Now())
		l.deliver(out)
		l.sendGroups(reqs)
		return
	case ev.Group != nil:
		// Heads, the server's word, say what changed; the event itself is
		// passed on as it came, a disbanded one once.
		if ev.Group.Action == wire.GroupDisbanded && !l.groups.liveDisbanded(ev.Group.Group) {
			return
		}
		l.sendGroups(l.groups.askHeads(time.Now()))
	}
	out, again := l.seq.live(ev)
	l.deliver(out)
	if again {
		c.log.Debug("gap in the inbox; syncing", "ver", l.seq.cursor, "got", ev.Ver)
		l.requestSync()
	}
}

// deviceEvent handles a reply on the device topic other than a Send's.
func (l *loopState) deviceEvent(p []byte) {
	c := l.c
	d, err := decodeDevice(p)
	if err != nil {
		var env envelope
		if gojson.Unmarshal(p, &env) != nil || env.Kind == wire.KindSync {
			// The timer asks for the batch again.
			c.log.Warn("bad device event", "kind", env.Kind, "err", err)
			return
		}
		d.Kind = env.Kind // an error with odd fields, or a kind this SDK does not know
	}
	switch d.Kind {
	case wire.KindSync:
		if d.Group != "" {
			l.groupBatch(&d.rawSync)
			return
		}
		// When this batch uses up the request with more to come, ask for
		// the next page at once, so the server reads it while these items
		// are decoded and delivered.
		early := l.up && l.seq.ahead(d.Sync, len(d.Items))
		if early {
			epoch := d.Epoch
			if epoch == "" {
				epoch = l.seq.epoch
			}
			early = l.sendSync(d.Upto, epoch)
		}
		b, items, bad := decodeSyncItems(&d.rawSync)
		for _, err := range bad {
			// Left out; the batch's Upto moves the cursor past it, so it
			// is skipped once rather than asked for forever.
			c.skip("undecodable sync item skipped", "since", b.Since, "upto", b.Upto, "err", err)
		}
		if l.seq.resets(b) {
			c.log.Warn("sync cursor belongs to lost history; starting over", "ver", l.seq.cursor, "epoch", b.Epoch)
		}
		out, again := l.seq.batch(b, items, len(d.Items))
		if n := l.seq.takeDropped(); n > 0 {
			// Forged, or above a hole a scale-out server still waits for:
			// one more sync a little later brings the real ones.
			c.unconfirmed.Add(uint64(n))
			c.log.Warn("live events the server did not confirm dropped", "count", n, "ver", l.seq.cursor)
			l.recheck.Reset(c.cfg.SyncTimeout)
		}
		switch {
		case again && early && l.seq.cursor == b.Upto:
			l.seq.begin(c.cfg.SyncLimit) // the request sent above
			l.timer.Reset(c.cfg.SyncTimeout)
		case again:
			// Ask for the next page before delivering this one, so the
			// server reads it while the application handles these.
			l.requestSync()
		}
		l.deliver(out)
		switch {
		case again:
		case l.seq.syncing: // more batches to come
			l.timer.Reset(c.cfg.SyncTimeout)
		default:
			l.timer.Stop()
			l.inboxDone = true
		}
	case wire.KindHeads:
		out, reqs := l.groups.onHeads(d.Groups, time.Now())
		l.deliver(out)
		l.sendGroups(reqs)
	case wire.KindError:
		c.log.Warn("server error", "code", d.Code, "group", d.Group, "message", d.Message)
		if d.Group != "" {
			l.sendGroups(l.groups.failed(wire.Error{Kind: d.Kind, Group: d.Group, Code: d.Code, Message: d.Message}, time.Now()))
			if d.Code == wire.CodeGroupGone {
				l.deliver(l.groups.disbanded(d.Group))
			}
			return
		}
		l.groups.failedUnnamed(time.Now())
		if l.seq.syncing && l.up { // perhaps our sync request: ask again soon
			l.timer.Reset(min(c.cfg.SyncTimeout, time.Second+c.backoff(0)))
		}
	case wire.KindAck:
		// An ack for a Send that has given up.
	default:
		c.log.Debug("unknown device event", "kind", d.Kind)
	}
}

// groupBatch takes a group sync batch.
func (l *loopState) groupBatch(rs *rawSync) {
	c := l.c
	b, items, bad := decodeSyncItems(rs)
	for _, err := range bad {
		c.skip("undecodable group sync item skipped", "group", b.Group, "since", b.Since, "upto", b.Upto, "err", err)
	}
	out, reqs, dropped := l.groups.batch(b, items, len(rs.Items), time.Now())
	if dropped > 0 {
		c.unconfirmed.Add(uint64(dropped))
		c.log.Warn("live group messages the server did not confirm dropped", "count", dropped, "group", b.Group)
	}
	l.sendGroups(reqs) // before delivering: the server reads while the application works
	if rs.Gone {
		out = append(out, l.groups.disbanded(b.Group)...) // after the history up to the disband
	}
	l.deliver(out)
}

// sendGroups sends the group requests (syncs and heads) the group set asks for.
func (l *loopState) sendGroups(reqs []wire.SyncRequest) {
	if !l.up {
		return // the next connect asks again
	}
	for _, req := range reqs {
		l.send(req)
	}
}

// checkSynced closes c.synced once the inbox and the groups have caught up
// since the latest connect.
func (l *loopState) checkSynced() {
	if !l.up || !l.inboxDone || l.seq.syncing || !l.groups.settled() {
		return
	}
	c := l.c
	c.mu.Lock()
	select {
	case <-c.synced:
	default:
		close(c.synced)
	}
	c.mu.Unlock()
}

// requestSync asks for everything after the cursor.
func (l *loopState) requestSync() {
	if !l.up {
		return // the next connect syncs
	}
	if l.sendSync(l.seq.cursor, l.seq.epoch) {
		l.seq.begin(l.c.cfg.SyncLimit)
		l.timer.Reset(l.c.cfg.SyncTimeout)
	}
}

// sendSync publishes a sync request for everything in the inbox after
// since; the caller tells the sequencer (begin). It reports whether it was
// sent.
func (l *loopState) sendSync(since uint64, epoch string) bool {
	return l.send(wire.SyncRequest{Since: since, Limit: l.c.cfg.SyncLimit, Epoch: epoch})
}

// send publishes a sync request, asking for compressed replies unless
// configured not to. It reports whether it was sent.
func (l *loopState) send(req wire.SyncRequest) bool {
	c := l.c
	if !c.cfg.DisableCompression && !req.Heads {
		req.Compress = "gzip"
	}
	p, err := json.Marshal(req)
	if err != nil {
		c.log.Error("encode sync request", "err", err)
		return false
	}
	c.publish(wire.TopicSync, p)
	return true
}

// deliver hands events to OnEvent in order and saves the cursor if it moved.
func (l *loopState) deliver(evs []Event) {
	c := l.c
	for _, ev := range evs {
		c.cfg.OnEvent(ev)
	}
	c.mu.Lock()
	changed := c.cur.Ver != l.seq.cursor || c.cur.Epoch != l.seq.epoch || l.groups.dirty
	if changed {
		c.cur = Cursor{Ver: l.seq.cursor, Epoch: l.seq.epoch, Groups: l.groups.cursors()}
		l.groups.dirty = false
	}
	cur := c.cur
	c.mu.Unlock()
	if changed {
		if err := c.cfg.Cursor.Save(cur); err != nil {
			c.log.Error("save cursor", "ver", cur.Ver, "err", err)
		}
	}
}
