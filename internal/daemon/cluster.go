package daemon

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/imqtt/imqtt/broker"
	"github.com/imqtt/imqtt/chat"
	"github.com/imqtt/imqtt/internal/account"
	"github.com/imqtt/imqtt/internal/api"
	"github.com/imqtt/imqtt/internal/bans"
	"github.com/imqtt/imqtt/internal/deliver"
	staterds "github.com/imqtt/imqtt/state/redis"
	"github.com/imqtt/imqtt/state/redis/cluster"
	"github.com/imqtt/imqtt/wire"
)

// settle is how young a hole in an inbox must be for sync to treat it as a
// commit still in flight on another node (sync.Options.Settle). A commit
// normally lands within milliseconds; one slower than this (a store in
// trouble) may be skipped by a device's live stream, though never lost
// from the store, history or the conversation list. Longer would make
// devices wait longer at the holes that losing Redis leaves.
const settle = 5 * time.Second

func (d *Daemon) redisPrefix() string {
	if d.cfg.RedisPrefix != "" {
		return d.cfg.RedisPrefix
	}
	return staterds.DefaultPrefix
}

// joinRedis connects the scale-out state and the bus, and leases this
// node's snowflake number, which it returns.
func (d *Daemon) joinRedis(ctx context.Context) (int64, error) {
	rdb, err := staterds.Dial(d.cfg.RedisURL)
	if err != nil {
		return 0, fmt.Errorf("--redis-url: %w", err)
	}
	d.rdb = rdb
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		return 0, fmt.Errorf("--redis-url: no answer from Redis: %w", err)
	}
	st, err := staterds.New(pctx, rdb, d.st.ReserveVersions, staterds.Options{Prefix: d.redisPrefix(), Logger: d.log})
	if err != nil {
		return 0, err
	}
	d.state = st
	if d.lease, err = cluster.TakeLease(pctx, rdb, cluster.LeaseOptions{Prefix: d.redisPrefix(), Node: d.cfg.NodeID,
		Logger: d.log, Changed: d.nodeNumberChanged}); err != nil {
		return 0, err
	}
	d.bus = cluster.NewBus(rdb, cluster.BusOptions{Prefix: d.redisPrefix(), Node: d.cfg.NodeID, Locator: st, Logger: d.log,
		Dropped: func(n int) { d.metrics.ClusterDropped.Add(float64(n)) }})
	return d.lease.Number(), nil
}

func (d *Daemon) nodeNumberChanged(n int64) {
	if d.events.emitter != nil {
		if err := d.events.emitter.SetNode(n); err != nil {
			d.log.Error("snowflake node number of webhook events", "err", err)
		}
	}
	if d.chat == nil {
		return
	}
	if err := d.chat.SetNode(n); err != nil {
		d.log.Error("snowflake node number", "err", err)
	}
}

// local is what the bus hands other nodes' events to.
type local struct {
	*chat.Service
	path     *deliver.Path
	b        *broker.Broker
	accounts *account.Service
}

// Arrived delivers an event another node sent for user to its devices here.
func (l local) Arrived(user string, payload []byte) { l.path.Arrived(user, payload) }

// ForgetToken drops a token another node revoked and ends the session of
// its device here, if this node verified it: the logout's kick may have
// come before a reconnect that this node's cache still let through, and
// a token opens only its own device.
func (l local) ForgetToken(hash string) {
	if clientID := l.accounts.Forget(hash); clientID != "" {
		l.b.Kick(clientID, packets.ErrNotAuthorized)
	}
}

func (l local) KickLocal(clientID string) { l.b.Kick(clientID, packets.ErrNotAuthorized) }

func (l local) EveryoneLocal(payload []byte) {
	seen := map[string]bool{}
	for _, ci := range l.b.ClientList() {
		if !seen[ci.User] {
			seen[ci.User] = true
			l.path.Arrived(ci.User, payload)
		}
	}
}

// KickDevice disconnects clientID (user/device) on this node and, in
// scale-out, wherever else it is connected.
func (d *Daemon) KickDevice(clientID string) bool {
	kicked := d.broker.Kick(clientID, packets.ErrNotAuthorized)
	if d.bus != nil {
		if user, _, ok := wire.SplitClientID(clientID); ok {
			d.bus.Kick(user, clientID)
		}
	}
	return kicked
}

// openBans opens the ban list (after the broker: it kicks whom new bans
// cover): rows in the shared store in scale-out, so a
// ban holds on every node, else a file in the data directory.
func (d *Daemon) openBans(ctx context.Context) (bans.List, error) {
	if rows := d.banRows(); rows != nil && d.rdb != nil {
		l, err := bans.OpenShared(ctx, rows, bans.SharedOptions{Logger: d.log, Added: func(bs []bans.Ban) {
			api.KickBanned(d.broker, bs...)
		}})
		if err != nil {
			return nil, err
		}
		d.sharedBans = l
		return l, nil
	}
	if d.rdb != nil {
		d.log.Warn("this store keeps no shared ban list; bans stay on the node that made them")
	}
	return bans.Open(filepath.Join(d.cfg.DataDir, "admin", "bans.json"), nil)
}

// kickRemote is the bus for the admin API's kicks (nil on one node: a nil
// *cluster.Bus in the interface would not be nil).
func (d *Daemon) kickRemote() api.KickRemote {
	if d.bus == nil {
		return nil
	}
	return d.bus
}
