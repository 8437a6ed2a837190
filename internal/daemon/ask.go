package daemon

import (
	"context"

	"github.com/imqtt/imqtt/internal/api"
	"github.com/imqtt/imqtt/state/redis/cluster"
)

// The admin API's cluster views ask the other nodes over Redis
// (cluster.Asker); this node answers their questions with its own admin
// API (api.AnswerNode). Scale-out only.

// askers adapts a cluster.Asker to api.ClusterAsker.
type askers struct{ a *cluster.Asker }

func (x askers) AskAll(ctx context.Context, q []byte) ([]api.NodeAnswer, error) {
	answers, err := x.a.AskAll(ctx, q)
	out := make([]api.NodeAnswer, len(answers))
	for i, ans := range answers {
		out[i] = api.NodeAnswer{Node: ans.Node, Body: ans.Body, Err: ans.Err}
	}
	return out, err
}

// clusterAsker makes the node's Asker (nil on one node); startAsker starts
// it once the API that answers exists.
func (d *Daemon) clusterAsker() api.ClusterAsker {
	if d.rdb == nil {
		return nil
	}
	d.asker = cluster.NewAsker(d.rdb, cluster.AskOptions{Prefix: d.redisPrefix(), Node: d.cfg.NodeID, Logger: d.log})
	return askers{d.asker}
}

func (d *Daemon) startAsker(ctx context.Context) error {
	if d.asker == nil {
		return nil
	}
	d.asker.SetAnswer(d.api.AnswerNode)
	return d.asker.Start(ctx)
}

func (d *Daemon) closeAsker(ctx context.Context) error {
	if d.asker == nil {
		return nil
	}
	return d.asker.Close(ctx)
}
