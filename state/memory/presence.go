package memory

import (
	"context"
	"slices"
	"strings"
	"sync"

	"github.com/imqtt/imqtt/state"
)

type presenceShard struct {
	mu    sync.RWMutex
	users map[string]map[string]state.Device // user -> device ID -> device
}

// Online records d; a later Online of the same device replaces it.
func (s *State) Online(ctx context.Context, d state.Device) (string, error) {
	if s.closed.Load() {
		return "", state.ErrClosed
	}
	sh := &s.presence[s.shard(d.User)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.users == nil {
		sh.users = make(map[string]map[string]state.Device)
	}
	devs := sh.users[d.User]
	if devs == nil {
		devs = make(map[string]state.Device, 1)
		sh.users[d.User] = devs
	}
	prev, ok := devs[d.Device]
	if !ok {
		s.devices.Add(1)
	}
	devs[d.Device] = d
	return prev.Node, nil
}

// Offline removes the device only if it is still recorded on node.
func (s *State) Offline(ctx context.Context, user, device, node string) error {
	if s.closed.Load() {
		return state.ErrClosed
	}
	sh := &s.presence[s.shard(user)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	devs := sh.users[user]
	if d, ok := devs[device]; !ok || d.Node != node {
		return nil // unknown, or taken over by another node
	}
	delete(devs, device)
	s.devices.Add(-1)
	if len(devs) == 0 {
		delete(sh.users, user)
	}
	return nil
}

// Devices lists user's connected devices ordered by device ID.
func (s *State) Devices(ctx context.Context, user string) ([]state.Device, error) {
	if s.closed.Load() {
		return nil, state.ErrClosed
	}
	sh := &s.presence[s.shard(user)]
	sh.mu.RLock()
	devs := sh.users[user]
	out := make([]state.Device, 0, len(devs))
	for _, d := range devs {
		out = append(out, d)
	}
	sh.mu.RUnlock()
	slices.SortFunc(out, func(a, b state.Device) int { return strings.Compare(a.Device, b.Device) })
	return out, nil
}

// Count is the number of connected devices.
func (s *State) Count(ctx context.Context) (int64, error) {
	if s.closed.Load() {
		return 0, state.ErrClosed
	}
	return s.devices.Load(), nil
}
