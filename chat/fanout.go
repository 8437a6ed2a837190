package chat

import (
	"context"
	"sync"
	"time"

	"github.com/imqtt/imqtt/store"
	imsync "github.com/imqtt/imqtt/sync"
	"github.com/imqtt/imqtt/wire"
)

// fanout delivers group messages to the members connected to this node.
// It keeps, per group, which users with a device here are members: kept
// right by DeviceOnline/DeviceOffline (presence) and by membership changes,
// so a message to a 10,000-member group with 200 members here costs 200
// publishes, not 10,000 lookups. Messages are delivered from one goroutine,
// all that arrived since the last pass at once, apart from 1:1 delivery.
type fanout struct {
	svc *Service

	mu      sync.Mutex
	devices map[string]int                 // user -> devices connected here
	members map[string]map[string]struct{} // group -> users here who are members
	groups  map[string][]string            // user here -> its groups
	// changes counts the membership changes of each user here, so that a
	// load of its groups that raced one is done again; stays numbers each
	// user's current stay here (from its first device to its last), so that
	// a retry of an earlier stay's load stops.
	changes  map[string]uint64
	stays    map[string]uint64
	lastStay uint64

	in   chan store.Message
	stop chan struct{} // closed by Close: load retries end
}

func newFanout(svc *Service) *fanout {
	return &fanout{svc: svc, devices: map[string]int{}, members: map[string]map[string]struct{}{},
		groups: map[string][]string{}, changes: map[string]uint64{}, stays: map[string]uint64{},
		in: make(chan store.Message, 4096), stop: make(chan struct{})}
}

// Retries of a failed group load: the first after loadRetryMin, doubling up
// to loadRetryMax, each load given loadTimeout.
const (
	loadRetryMin = 100 * time.Millisecond
	loadRetryMax = 5 * time.Second
	loadTimeout  = 5 * time.Second
)

// online counts a device; the user's first device loads its groups. A load
// that fails (a slow or failing store) leaves the device connected and is
// retried in the background until it succeeds or the user's last device
// here leaves: a connected member is never left out of its groups'
// fan-out for the life of its connection. The error is returned for the
// caller to log.
func (f *fanout) online(ctx context.Context, user string) error {
	f.mu.Lock()
	f.devices[user]++
	first := f.devices[user] == 1
	if first {
		f.lastStay++
		f.stays[user] = f.lastStay
	}
	stay := f.stays[user]
	f.mu.Unlock()
	if !first {
		return nil
	}
	err := f.load(ctx, user)
	if err != nil {
		go f.retry(user, stay)
	}
	return err
}

// load reads user's groups and indexes them. If a membership change of
// user came while it read (a removal the read missed, say), it reads
// again, so it never undoes the change.
func (f *fanout) load(ctx context.Context, user string) error {
	for {
		f.mu.Lock()
		seen := f.changes[user]
		f.mu.Unlock()
		ms, err := f.svc.st.UserGroups(ctx, user)
		if err != nil {
			return err
		}
		f.mu.Lock()
		switch {
		case f.devices[user] == 0: // gone again meanwhile
		case f.changes[user] != seen:
			f.mu.Unlock()
			continue
		default:
			for _, m := range ms {
				f.joinLocked(m.Group, user)
			}
		}
		f.mu.Unlock()
		return nil
	}
}

// retry loads user's groups again, backing off, until it succeeds, the
// user's stay here that failed to load ends, or the service closes.
func (f *fanout) retry(user string, stay uint64) {
	for delay := loadRetryMin; ; delay = min(2*delay, loadRetryMax) {
		select {
		case <-time.After(delay):
		case <-f.stop:
			return
		}
		f.mu.Lock()
		current := f.devices[user] > 0 && f.stays[user] == stay
		f.mu.Unlock()
		if !current {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
		err := f.load(ctx, user)
		cancel()
		if err == nil {
			f.svc.log.Info("loaded groups for fan-out after a failure", "user", user)
			return
		}
		// The first failure was logged by the caller of online; during a
		// store outage every reconnecting user retries, so these are debug.
		f.svc.log.Debug("load groups for fan-out; retrying", "user", user, "err", err, "retry_in", min(2*delay, loadRetryMax))
	}
}

// offline uncounts a device; the user's last device leaves the index.
func (f *fanout) offline(user string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.devices[user]--; f.devices[user] > 0 {
		return
	}
	delete(f.devices, user)
	for _, g := range f.groups[user] {
		if set := f.members[g]; set != nil {
			delete(set, user)
			if len(set) == 0 {
				delete(f.members, g)
			}
		}
	}
	delete(f.groups, user)
	delete(f.changes, user)
	delete(f.stays, user)
}

// joined and left follow membership changes of users connected here.
func (f *fanout) joined(group, user string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.devices[user] > 0 {
		f.changes[user]++
		f.joinLocked(group, user)
	}
}

func (f *fanout) joinLocked(group, user string) {
	set := f.members[group]
	if set == nil {
		set = map[string]struct{}{}
		f.members[group] = set
	}
	if _, ok := set[user]; !ok {
		set[user] = struct{}{}
		f.groups[user] = append(f.groups[user], group)
	}
}

func (f *fanout) left(group, user string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.devices[user] > 0 {
		f.changes[user]++
	}
	if set := f.members[group]; set != nil {
		delete(set, user)
	}
	gs := f.groups[user]
	for i, g := range gs {
		if g == group {
			f.groups[user] = append(gs[:i:i], gs[i+1:]...)
			break
		}
	}
}

// drop takes a disbanded group out of the index. A member who connects
// later indexes it again from its rows (kept, for its history), which
// costs nothing: nothing more is stored in it.
func (f *fanout) drop(group string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for u := range f.members[group] {
		f.changes[u]++
		gs := f.groups[u]
		for i, g := range gs {
			if g == group {
				f.groups[u] = append(gs[:i:i], gs[i+1:]...)
				break
			}
		}
	}
	delete(f.members, group)
}

// online members of group here, copied.
func (f *fanout) recipients(group string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]string, 0, len(f.members[group]))
	for u := range f.members[group] {
		out = append(out, u)
	}
	return out
}

// run delivers until in is closed, then closes done.
func (f *fanout) run(done chan<- struct{}) {
	defer close(done)
	batch := make([]store.Message, 0, 256)
	for m := range f.in {
		batch = append(batch[:0], m)
	drain:
		for len(batch) < cap(batch) {
			select {
			case m, ok := <-f.in:
				if !ok {
					break drain
				}
				batch = append(batch, m)
			default:
				break drain
			}
		}
		start := time.Now()
		items := f.render(batch)
		for i, m := range batch {
			if !imsync.Visible(&items[i]) {
				continue
			}
			// One marshal for every member here; the other nodes fan out
			// their own members (Remote.Group).
			users := f.recipients(m.Group)
			users = f.markBlocked(m, users, items[i])
			_, _ = f.svc.out.SendMany(users, items[i])
			f.svc.m.GroupFanout.Observe(float64(len(users)))
			if c := m.Change; c != nil && c.Admin != nil && c.Admin.Action == wire.GroupDisbanded {
				f.drop(m.Group) // the last item of its log: nothing more to fan out
			}
		}
		f.svc.m.GroupFanoutSeconds.Observe(time.Since(start).Seconds())
	}
}

// render renders a pass's messages with one read of what they refer to
// (quotes, an edit's body: imsync.Render). If that read fails, messages
// go without their quotes and edits are dropped (members get them by
// sync), never an edit without its body.
func (f *fanout) render(batch []store.Message) []wire.Msg {
	evs := make([]store.Event, len(batch))
	for i, m := range batch {
		evs[i] = store.Event{Msg: m}
	}
	ctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
	defer cancel()
	items, err := imsync.Render(ctx, f.svc.st, "", evs)
	if err == nil {
		return items
	}
	f.svc.log.Warn("group fan-out: render", "err", err)
	items = make([]wire.Msg, len(batch))
	for i, ev := range evs {
		if ev.Msg.Change == nil || ev.Msg.Change.Kind != store.ChangeEdit {
			items[i] = imsync.ToMsg(ev)
		}
	}
	return items
}

// markBlocked sends item, marked blocked, to the users who blocked its
// sender (docs/protocol.md#contacts-and-privacy: marked, not dropped) and
// returns the others. One store read a message (Blockers: who blocked
// the sender, mostly nobody); if it fails, everyone gets the item
// unmarked, as sync would show it marked later.
func (f *fanout) markBlocked(m store.Message, users []string, item wire.Msg) []string {
	if m.Change != nil || len(users) == 0 || m.From == SystemUser {
		return users
	}
	ctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
	defer cancel()
	by, err := f.svc.st.Blockers(ctx, m.From, users)
	if err != nil {
		f.svc.log.Warn("group fan-out: blockers", "err", err)
		return users
	}
	if len(by) == 0 {
		return users
	}
	marked, rest := make([]string, 0, len(by)), make([]string, 0, len(users))
	for _, u := range users {
		if by[u] {
			marked = append(marked, u)
		} else {
			rest = append(rest, u)
		}
	}
	item.Blocked = true
	_, _ = f.svc.out.SendMany(marked, item)
	return rest
}
