package client

import (
	"encoding/json"
	"slices"
	"time"

	"github.com/imqtt/imqtt/wire"
)

// groupSet keeps a device's groups in step with the server (docs/protocol.md#groups): a
// sequencer per group orders its messages by seq, exactly once, by the
// inbox sequencer's rules; heads say which groups moved and which the user
// is in. Like the sequencer it is pure state: the loop sends the requests it
// returns and hands it every group event, batch, heads answer and error.
//
// Rules:
//   - heads are the server's word on membership: a listed group without a
//     cursor starts at its join seq (never before it), one with a cursor
//     takes max(cursor, join) (a re-join), and a group with a cursor that is
//     not listed was left or is gone: its cursor is dropped and the
//     application hears it as a "left" group event; a listed group whose
//     head is above its cursor is synced until the cursor reaches it, and
//     one whose cursor is past its head is synced too (the server resets a
//     cursor of lost history to the join, as it does the inbox's);
//   - a live message of a group with a cursor goes through its sequencer (a
//     gap starts a sync of that group); one of a group without a cursor is
//     dropped and heads are asked for, whose answer starts the cursor and
//     whose sync brings the message; a live membership event only asks for
//     heads: a live event is a claim, and never starts or drops a cursor;
//   - a group the server says is gone (disbanded: a heads entry or a sync
//     reply with gone set, or a group_gone error) keeps its cursor and is
//     synced up to its head, the disband, and no further, since nothing
//     follows it (one whose sync was answered group_gone is not synced
//     again until a restart); the application hears it once as a group event with
//     action wire.GroupDisbanded, live from the server or else made here,
//     and the cursor remembers that it did (GroupCursor.Gone), so a
//     restart does not tell it again; when heads stop listing it, it is
//     dropped without a "left" event;
//   - heads are asked for on every connect, on every membership event, on a
//     not_member error and on the periodic resync; at most once a second
//     but on a connect;
//   - at most maxGroupRequests group requests (syncs and heads) are in
//     flight: the server answers 4 sync and read requests per client at a
//     time and the inbox sync takes one. Heads go first, then groups in the
//     order they asked. A request unanswered after the sync timeout is sent
//     again; one answered busy or unavailable is sent again after a second.
type groupSet struct {
	room    *room
	limit   int           // items per group sync request
	timeout time.Duration // a request unanswered this long is sent again
	groups  map[string]*group
	queue   []*group // waiting for a request slot, in order
	busy    int      // group requests in flight, heads included
	heads   headsState
	dirty   bool // a cursor changed since the last save
	// toldEarly: groups without a cursor whose live disbanded event the
	// application had, so that heads do not tell it again (a few).
	toldEarly map[string]struct{}
}

// maxToldEarly bounds groupSet.toldEarly.
const maxToldEarly = 64

// group is one group's sequencer and request state.
type group struct {
	name    string
	seq     *sequencer
	want    uint64    // the head the latest heads answer showed
	sent    time.Time // when its request in flight went out; zero: none
	queued  bool
	retryAt time.Time // one more sync from then (after a drop or an error); zero: none
	gone    bool      // disbanded: synced up to its head, the disband, and no further
	closed  bool      // a sync of it was answered group_gone: not asked again on this run
	told    bool      // the application has had its disbanded event
}

// headsState is the heads request's.
type headsState struct {
	wanted  bool      // ask when a slot is free and next allows
	sent    time.Time // in flight since; zero: not in flight
	next    time.Time // not before this
	settled bool      // answered since the latest connect
}

const (
	maxGroupRequests = 2
	headsInterval    = time.Second // the least time between two heads requests
	groupRetry       = time.Second // after busy, unavailable or a dropped event
)

func newGroupSet(saved map[string]GroupCursor, r *room, limit int, timeout time.Duration) *groupSet {
	gs := &groupSet{room: r, limit: limit, timeout: timeout, groups: map[string]*group{}}
	for name, c := range saved {
		gs.groups[name] = &group{name: name, seq: newSequencer(c.Seq, c.Epoch, seq, r), gone: c.Gone, told: c.Gone}
	}
	return gs
}

// cursors returns every group's cursor, for saving.
func (gs *groupSet) cursors() map[string]GroupCursor {
	if len(gs.groups) == 0 {
		return nil
	}
	out := make(map[string]GroupCursor, len(gs.groups))
	for name, g := range gs.groups {
		out[name] = GroupCursor{Seq: g.seq.cursor, Epoch: g.seq.epoch, Gone: g.told}
	}
	return out
}

// connected starts a new connection: requests in flight are gone with the
// old one, held events are dropped (the syncs that follow bring them), and
// heads are asked for at once.
func (gs *groupSet) connected(now time.Time) []wire.SyncRequest {
	for _, g := range gs.groups {
		g.seq.connected()
		g.sent, g.queued, g.retryAt = time.Time{}, false, time.Time{}
	}
	gs.queue, gs.busy = gs.queue[:0], 0
	gs.heads = headsState{wanted: true}
	return gs.pump(now)
}

// settled reports whether heads were answered since the latest connect and
// every group sync they started has ended.
func (gs *groupSet) settled() bool {
	if !gs.heads.settled || gs.heads.wanted || gs.busy > 0 || len(gs.queue) > 0 {
		return false
	}
	for _, g := range gs.groups {
		if !g.retryAt.IsZero() && g.seq.cursor < g.want { // a sync to come, for what heads showed
			return false
		}
	}
	return true
}

// askHeads asks for heads as soon as a slot is free and headsInterval allows.
func (gs *groupSet) askHeads(now time.Time) []wire.SyncRequest {
	gs.heads.wanted = true
	return gs.pump(now)
}

// onHeads takes a heads answer. It returns the "disbanded" events of the
// groups newly gone, the "left" events of the groups no longer listed, and
// the requests to send.
func (gs *groupSet) onHeads(hs []wire.GroupHead, now time.Time) (out []Event, reqs []wire.SyncRequest) {
	if !gs.heads.sent.IsZero() {
		gs.heads.sent = time.Time{}
		gs.busy--
	}
	gs.heads.settled = true
	listed := make(map[string]struct{}, len(hs))
	for _, head := range hs {
		if !wire.CanonicalUser(head.Group) { // group IDs follow the user ID rules
			continue
		}
		listed[head.Group] = struct{}{}
		g := gs.groups[head.Group]
		if g == nil {
			g = &group{name: head.Group, seq: newSequencer(head.Join, "", seq, gs.room)}
			gs.groups[head.Group] = g
			gs.dirty = true
		} else if g.seq.cursor < head.Join {
			g.seq.cursor = head.Join
			g.seq.clear() // its sync brings what follows the join
			gs.dirty = true
		}
		g.want = head.Seq
		if g.seq.cursor != g.want && !g.closed {
			// Below the head: it moved. Above: the cursor is of a
			// history the server no longer has (or heads lag a live
			// message), and the sync's reset says which.
			gs.enqueue(g)
		}
		if head.Gone {
			out = append(out, gs.disband(g)...)
		}
	}
	var gone []string
	for name := range gs.groups {
		if _, ok := listed[name]; !ok {
			gone = append(gone, name)
		}
	}
	slices.Sort(gone) // the application hears them in one order, not the map's
	for _, name := range gone {
		g := gs.groups[name]
		gs.remove(g)
		if !g.told { // a disbanded group's end was told already
			out = append(out, leftEvent(name))
		}
	}
	return out, gs.pump(now)
}

// leftEvent tells the application that heads no longer list a group.
func leftEvent(group string) Event {
	e := wire.GroupEvent{Kind: wire.KindGroup, Group: group, Action: ActionLeft}
	raw, _ := json.Marshal(e)
	return Event{Kind: wire.KindGroup, Group: &e, Raw: raw, Synced: true}
}

// disbandedEvent tells the application that a group was disbanded.
func disbandedEvent(group string) Event {
	e := wire.GroupEvent{Kind: wire.KindGroup, Group: group, Action: wire.GroupDisbanded}
	raw, _ := json.Marshal(e)
	return Event{Kind: wire.KindGroup, Group: &e, Raw: raw, Synced: true}
}

// disband marks g gone, and returns its disbanded event unless the
// application had it.
func (gs *groupSet) disband(g *group) []Event {
	g.gone = true
	if g.told {
		return nil
	}
	g.told, gs.dirty = true, true
	if _, ok := gs.toldEarly[g.name]; ok {
		delete(gs.toldEarly, g.name)
		return nil
	}
	return []Event{disbandedEvent(g.name)}
}

// disbanded takes the server's word (a sync reply, an error) that a group
// is gone: it returns its disbanded event unless the application had it.
func (gs *groupSet) disbanded(name string) []Event {
	g := gs.groups[name]
	if g == nil {
		return nil // heads tell of it
	}
	return gs.disband(g)
}

// liveDisbanded takes a live disbanded event of group and reports whether
// to deliver it: not if the application had one.
func (gs *groupSet) liveDisbanded(name string) bool {
	g := gs.groups[name]
	if g != nil {
		if g.told {
			return false
		}
		g.told, gs.dirty = true, true
		return true
	}
	if _, ok := gs.toldEarly[name]; ok {
		return false
	}
	if gs.toldEarly == nil {
		gs.toldEarly = map[string]struct{}{}
	}
	if len(gs.toldEarly) < maxToldEarly {
		gs.toldEarly[name] = struct{}{}
	}
	return true
}

// live takes a live group item (a message or a change of one, see
// groupItem). It returns what is now deliverable and the requests to send.
func (gs *groupSet) live(ev Event, now time.Time) (out []Event, reqs []wire.SyncRequest) {
	g := gs.groups[ev.Item().Group]
	if g == nil {
		return nil, gs.askHeads(now)
	}
	before := g.seq.cursor
	out, again := g.seq.live(ev)
	gs.dirty = gs.dirty || g.seq.cursor != before
	if again {
		gs.enqueue(g)
	}
	return out, gs.pump(now)
}

// batch takes one group sync batch (see sequencer.batch). It returns what
// is now deliverable, the requests to send and how many waiting events
// were dropped unconfirmed.
func (gs *groupSet) batch(b wire.Sync, items []Event, n int, now time.Time) (out []Event, reqs []wire.SyncRequest, dropped int) {
	g := gs.groups[b.Group]
	if g == nil {
		return nil, nil, 0 // left, or never ours
	}
	before, epoch := g.seq.cursor, g.seq.epoch
	out, again := g.seq.batch(b, items, n)
	gs.dirty = gs.dirty || g.seq.cursor != before || g.seq.epoch != epoch
	if dropped = g.seq.takeDropped(); dropped > 0 {
		g.retryAt = now.Add(groupRetry)
	}
	switch {
	case g.sent.IsZero(): // a late batch of an earlier request
		if again {
			gs.enqueue(g)
		}
	case again: // the request ran out with more to come: the next one keeps the slot
		reqs = append(reqs, gs.request(g, now))
	case !g.seq.syncing: // the request ended
		gs.release(g)
		if g.seq.cursor < g.want {
			if g.seq.cursor > before {
				gs.enqueue(g)
			} else {
				g.retryAt = now.Add(groupRetry) // a hole still settling: not in a loop
			}
		}
	}
	return out, append(reqs, gs.pump(now)...), dropped
}

// failed takes an error event that names a group. not_member asks heads
// (which drop the group if it is really gone); group_gone marks it gone
// (the caller takes its disbanded event from disbanded) and asks nothing
// more of it; any other error sends the request again a little later.
func (gs *groupSet) failed(e wire.Error, now time.Time) []wire.SyncRequest {
	g := gs.groups[e.Group]
	if g == nil || g.sent.IsZero() {
		return nil
	}
	gs.release(g)
	g.seq.abort()
	switch e.Code {
	case wire.CodeNotMember:
		return gs.askHeads(now)
	case wire.CodeGroupGone:
		g.gone, g.closed = true, true
		return gs.pump(now)
	}
	g.retryAt = now.Add(groupRetry)
	return gs.pump(now)
}

// failedUnnamed takes an error event that names no request: if heads are in
// flight it may be theirs, and they are asked again a little later.
func (gs *groupSet) failedUnnamed(now time.Time) {
	if !gs.heads.sent.IsZero() {
		gs.heads.sent = now.Add(groupRetry - gs.timeout)
	}
}

// tick sends again what went unanswered, and the retries that are due.
func (gs *groupSet) tick(now time.Time) (reqs []wire.SyncRequest) {
	if s := gs.heads.sent; !s.IsZero() && now.Sub(s) >= gs.timeout {
		reqs = append(reqs, gs.headsRequest(now))
	}
	for _, g := range gs.groups {
		switch {
		case !g.sent.IsZero() && now.Sub(g.sent) >= gs.timeout:
			reqs = append(reqs, gs.request(g, now))
		case !g.retryAt.IsZero() && !now.Before(g.retryAt):
			g.retryAt = time.Time{}
			gs.enqueue(g)
		}
	}
	return append(reqs, gs.pump(now)...)
}

// enqueue makes g wait for a request slot, unless it has a request in
// flight or waits already.
func (gs *groupSet) enqueue(g *group) {
	if g.queued || !g.sent.IsZero() {
		return
	}
	g.queued = true
	gs.queue = append(gs.queue, g)
}

// pump sends what waits while slots are free: heads first.
func (gs *groupSet) pump(now time.Time) (reqs []wire.SyncRequest) {
	for gs.busy < maxGroupRequests {
		if gs.heads.wanted && gs.heads.sent.IsZero() && !now.Before(gs.heads.next) {
			gs.heads.wanted = false
			gs.busy++
			reqs = append(reqs, gs.headsRequest(now))
			continue
		}
		if len(gs.queue) == 0 {
			return reqs
		}
		g := gs.queue[0]
		gs.queue = gs.queue[1:]
		g.queued = false // remove takes a group out of the queue; enqueue never queues one in flight
		gs.busy++
		reqs = append(reqs, gs.request(g, now))
	}
	return reqs
}

// headsRequest marks heads in flight and returns their request.
func (gs *groupSet) headsRequest(now time.Time) wire.SyncRequest {
	gs.heads.sent, gs.heads.next = now, now.Add(headsInterval)
	return wire.SyncRequest{Heads: true}
}

// request marks a sync of g in flight and returns it.
func (gs *groupSet) request(g *group, now time.Time) wire.SyncRequest {
	g.seq.begin(gs.limit)
	g.sent = now
	return wire.SyncRequest{Group: g.name, Since: g.seq.cursor, Limit: gs.limit, Epoch: g.seq.epoch}
}

// release frees g's request slot.
func (gs *groupSet) release(g *group) {
	if !g.sent.IsZero() {
		g.sent = time.Time{}
		gs.busy--
	}
}

// remove forgets g: its cursor, its waiting events, its request.
func (gs *groupSet) remove(g *group) {
	gs.release(g)
	g.seq.clear()
	delete(gs.groups, g.name)
	if i := slices.Index(gs.queue, g); i >= 0 {
		gs.queue = slices.Delete(gs.queue, i, i+1)
	}
	gs.dirty = true
}
