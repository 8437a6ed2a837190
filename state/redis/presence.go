package redis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/imqtt/imqtt/state"
)

// refreshBatch is how many device refreshes go in one pipeline.
const refreshBatch = 512

// Presence in Redis: each user's devices in a hash and their expiries in a
// sorted set, both under the user's hash tag; expired devices are pruned
// by the scripts that read or write the user. The State that marked a
// device online refreshes it every PresenceTTL/3 and re-records it if Redis
// lost it, so after a FLUSHALL or a restart the routing is whole again
// within PresenceTTL/3.
//
// Count is the sum of per-node counters ({nodes} tag). Online and Offline
// move them as they change the record (a takeover moves one device from
// the old node's counter to the new one's), and each State sets its own
// nodes' counters from the devices it holds on every refresh, which repairs
// what deltas miss (a device that expired, a lost Redis). A node whose
// State stops refreshing (it died) drops out of Count within PresenceTTL.
// So Count is exact when quiet and may be off by the devices that changed
// hands across nodes during the last PresenceTTL/3, under one assumption:
// a node name belongs to one State (one process); two States that record
// devices on the same node name overwrite each other's counter.

func encodeDevice(d state.Device) string {
	return strconv.FormatInt(d.Since, 10) + " " + d.Node
}

func decodeDevice(user, device, v string) (state.Device, error) {
	since, node, ok := strings.Cut(v, " ")
	ms, err := strconv.ParseInt(since, 10, 64)
	if !ok || err != nil {
		return state.Device{}, fmt.Errorf("device %s/%s: bad record %q", user, device, v)
	}
	return state.Device{User: user, Device: device, Node: node, Since: ms}, nil
}

func (s *State) ttlMillis() int64 { return s.opts.PresenceTTL.Milliseconds() }

// Online records d (replacing the node of an earlier Online of the same
// device) and keeps it alive from this process until Offline or Close.
func (s *State) Online(ctx context.Context, d state.Device) (string, error) {
	if s.closed.Load() {
		return "", state.ErrClosed
	}
	s.countMu.RLock()
	defer s.countMu.RUnlock()
	prev, err := onlineScript.Run(ctx, s.rdb, s.presenceKeys(d.User), d.Device, encodeDevice(d), s.ttlMillis()).Text()
	if err != nil {
		return "", fmt.Errorf("online %s/%s on %s: %w", d.User, d.Device, d.Node, translate(err))
	}
	s.ownMu.Lock()
	s.owned[devKey{d.User, d.Device}] = d
	s.nodes[d.Node] = struct{}{}
	s.ownMu.Unlock()
	if prev == d.Node {
		return prev, nil
	}
	args := []any{"add", s.ttlMillis(), d.Node, 1}
	if prev != "" {
		args = append(args, prev, -1)
	}
	if err := countScript.Run(ctx, s.rdb, s.nodeKeys(), args...).Err(); err != nil {
		return prev, fmt.Errorf("count %s/%s online on %s: %w", d.User, d.Device, d.Node, translate(err))
	}
	return prev, nil
}

// Offline removes the device if Redis still records it on node, and stops
// refreshing it from this process whatever Redis answers: a device whose
// removal failed expires within PresenceTTL.
func (s *State) Offline(ctx context.Context, user, device, node string) error {
	if s.closed.Load() {
		return state.ErrClosed
	}
	s.countMu.RLock()
	defer s.countMu.RUnlock()
	k := devKey{user, device}
	s.ownMu.Lock()
	if d, ok := s.owned[k]; ok && d.Node == node {
		delete(s.owned, k)
	}
	s.ownMu.Unlock()
	removed, err := offlineScript.Run(ctx, s.rdb, s.presenceKeys(user), device, node).Int64()
	if err != nil {
		return fmt.Errorf("offline %s/%s on %s: %w", user, device, node, translate(err))
	}
	if removed == 0 {
		return nil
	}
	if err := countScript.Run(ctx, s.rdb, s.nodeKeys(), "add", s.ttlMillis(), node, -1).Err(); err != nil {
		return fmt.Errorf("count %s/%s offline on %s: %w", user, device, node, translate(err))
	}
	return nil
}

// Devices lists user's devices whose node refreshed them within
// PresenceTTL, ordered by device ID.
func (s *State) Devices(ctx context.Context, user string) ([]state.Device, error) {
	if s.closed.Load() {
		return nil, state.ErrClosed
	}
	kv, err := devicesScript.Run(ctx, s.rdb, s.presenceKeys(user)).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("devices of %s: %w", user, translate(err))
	}
	out := make([]state.Device, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		d, err := decodeDevice(user, kv[i], kv[i+1])
		if err != nil {
			return nil, fmt.Errorf("devices of %s: %w", user, err)
		}
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b state.Device) int { return strings.Compare(a.Device, b.Device) })
	return out, nil
}

// DevicesOf is Devices for many users in one round trip per shard (the
// cross-node router asks it for the recipients of each batch of events).
// A user whose lookup failed is missing from the map, and err says why.
func (s *State) DevicesOf(ctx context.Context, users []string) (map[string][]state.Device, error) {
	if s.closed.Load() {
		return nil, state.ErrClosed
	}
	calls := make([]call, len(users))
	for i, u := range users {
		calls[i] = call{keys: s.presenceKeys(u)}
	}
	out := make(map[string][]state.Device, len(users))
	var errs []error
	for i, cmd := range s.runPipelined(ctx, devicesScript, calls) {
		kv, err := cmd.StringSlice()
		if err != nil {
			errs = append(errs, fmt.Errorf("devices of %s: %w", users[i], translate(err)))
			continue
		}
		ds := make([]state.Device, 0, len(kv)/2)
		for j := 0; j+1 < len(kv); j += 2 {
			d, err := decodeDevice(users[i], kv[j], kv[j+1])
			if err != nil {
				errs = append(errs, err)
				continue
			}
			ds = append(ds, d)
		}
		out[users[i]] = ds
	}
	return out, errors.Join(errs...)
}

// Count is the number of connected devices over all live nodes; see the
// note above on how exact it is.
func (s *State) Count(ctx context.Context) (int64, error) {
	if s.closed.Load() {
		return 0, state.ErrClosed
	}
	n, err := totalScript.Run(ctx, s.rdb, s.nodeKeys()).Int64()
	if err != nil {
		return 0, fmt.Errorf("count devices: %w", translate(err))
	}
	return n, nil
}

// refresher keeps this process's devices alive until ctx ends (Close).
// Besides the refresh every PresenceTTL/3 it looks for its marker key
// every LossCheck: a marker gone means Redis lost its data (FLUSHALL, a
// restart), and the devices are re-recorded at once, so routing to them is
// back within LossCheck rather than PresenceTTL/3.
func (s *State) refresher(ctx context.Context) {
	defer close(s.refreshDone)
	t := time.NewTicker(s.opts.PresenceTTL / 3)
	defer t.Stop()
	check := time.NewTicker(min(s.opts.LossCheck, s.opts.PresenceTTL/3))
	defer check.Stop()
	marked := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-check.C:
			if !marked || s.rdb.Exists(ctx, s.marker).Val() == 1 {
				if !marked {
					marked = s.rdb.Set(ctx, s.marker, 1, 0).Err() == nil
				}
				continue
			}
			if ctx.Err() != nil {
				return
			}
			s.log.Info("Redis lost its data; re-recording devices now")
		}
		s.refresh(ctx)
		marked = s.rdb.Set(ctx, s.marker, 1, 0).Err() == nil
	}
}

// refresh is one round: extend every owned device, re-record the lost
// ones, forget those another node took over, then set this process's
// nodes' counts. Failures are logged and retried next round; Redis
// trouble also shows in the callers' own errors and in Ping.
func (s *State) refresh(ctx context.Context) {
	s.ownMu.Lock()
	devs := make([]state.Device, 0, len(s.owned))
	for _, d := range s.owned {
		devs = append(devs, d)
	}
	s.ownMu.Unlock()

	var (
		taken             []state.Device
		recreated, failed int
		lastErr           error
	)
	ttl := s.ttlMillis()
	for chunk := range slices.Chunk(devs, refreshBatch) {
		calls := make([]call, len(chunk))
		for i, d := range chunk {
			calls[i] = call{keys: s.presenceKeys(d.User), args: []any{d.Device, encodeDevice(d), d.Node, ttl}}
		}
		for i, cmd := range s.runPipelined(ctx, refreshScript, calls) {
			code, err := cmd.Int64()
			switch {
			case err != nil:
				failed++
				lastErr = err
			case code == 0:
				taken = append(taken, chunk[i])
			case code == 2:
				recreated++
			}
		}
	}
	if ctx.Err() != nil {
		return // closing
	}
	if failed > 0 {
		s.log.Warn("refresh presence", "failed", failed, "devices", len(devs), "err", lastErr)
	}
	if recreated > 0 {
		s.log.Info("re-recorded devices that Redis lost", "devices", recreated)
	}
	if len(taken) > 0 {
		s.ownMu.Lock()
		for _, d := range taken {
			if k := (devKey{d.User, d.Device}); s.owned[k] == d {
				delete(s.owned, k)
			}
		}
		s.ownMu.Unlock()
	}
	s.setCounts(ctx)
}

// setCounts sets the counter of every node this process holds devices on
// (and zeroes those it held devices on last round).
func (s *State) setCounts(ctx context.Context) {
	s.countMu.Lock()
	defer s.countMu.Unlock()
	s.ownMu.Lock()
	counts := make(map[string]int, len(s.nodes))
	for n := range s.nodes {
		counts[n] = 0
	}
	for _, d := range s.owned {
		counts[d.Node]++
	}
	for n, c := range counts {
		if c == 0 {
			delete(s.nodes, n)
		}
	}
	s.ownMu.Unlock()
	if len(counts) == 0 {
		return
	}
	args := make([]any, 0, 2+2*len(counts))
	args = append(args, "set", s.ttlMillis())
	for n, c := range counts {
		args = append(args, n, c)
	}
	if err := countScript.Run(ctx, s.rdb, s.nodeKeys(), args...).Err(); err != nil && ctx.Err() == nil {
		s.log.Warn("set device counts", "err", err)
	}
}
