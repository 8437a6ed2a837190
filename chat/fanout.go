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

	in chan store.Message
}

func newFanout(svc *Service) *fanout {
	return &fanout{svc: svc, devices: map[string]int{}, members: map[string]map[string]struct{}{},
		groups: map[string][]string{}, in: make(chan store.Message, 4096)}
}

// online counts a device; the user's first device loads its groups.
func (f *fanout) online(ctx context.Context, user string) error {
	f.mu.Lock()
	f.devices[user]++
	first := f.devices[user] == 1
	f.mu.Unlock()
	if !first {
		return nil
	}
	ms, err := f.svc.st.UserGroups(ctx, user)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.devices[user] == 0 {
		return nil // gone again meanwhile
	}
	for _, m := range ms {
		f.joinLocked(m.Group, user)
	}
	return nil
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
}

// joined and left follow membership changes of users connected here.
func (f *fanout) joined(group, user string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.devices[user] > 0 {
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
		for _, m := range batch {
			payload, err := wire.Marshal(imsync.ToMsg(store.Event{Msg: m}))
			if err != nil {
				continue
			}
			users := f.recipients(m.Group)
			for _, u := range users {
				f.svc.publish(wire.InboxTopic(u), payload)
			}
			f.svc.m.GroupFanout.Observe(float64(len(users)))
		}
		f.svc.m.GroupFanoutSeconds.Observe(time.Since(start).Seconds())
	}
}
