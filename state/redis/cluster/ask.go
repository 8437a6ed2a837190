package cluster

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Asking: one node asks every other node a question and gathers their
// answers, each within the asker's deadline, all at once (the admin API's
// cluster-wide stats and clients). A question and its answer travel on
// Redis pub/sub: each node listens on its own ask channel, and answers on
// the asker's. A node that is not listening (it died: its subscription
// went with its connection) is known at once, PUBLISH reaching no one
// (on a single Redis: a Redis Cluster counts only the subscribers of the
// shard the PUBLISH reached, so there it waits as for a slow one); a slow
// one at the deadline. Nodes are listed from a hash of the nodes
// seen, each beating into it, so a node that died or left still shows,
// as down, for AskOptions.Forget.

// ErrNoAnswer is a node's error when it did not answer in time.
var ErrNoAnswer = errors.New("no answer within the deadline")

// AskOptions configure an Asker.
type AskOptions struct {
	Prefix string
	Node   string
	// Answer answers another node's question (set it with SetAnswer
	// before Start when it is made after the Asker). It runs on its own
	// goroutine, at most maxAnswering at once; ctx ends at the asker's
	// deadline.
	Answer func(ctx context.Context, question []byte) ([]byte, error)
	Logger *slog.Logger
	// Beat is how often this node records that it is alive (default 1s);
	// a node not seen for Forget (default 1h) is no longer listed.
	Beat, Forget time.Duration
	// Deadline bounds the answer to a question (default 2s): the asker's
	// wait when shorter.
	Deadline time.Duration
}

// Answer is one node's answer, or why there is none.
type Answer struct {
	Node string
	Body []byte
	Err  error
}

// Asker asks the other nodes and answers them. Create it with NewAsker,
// then Start; Close says this node left.
type Asker struct {
	rdb  goredis.UniversalClient
	opts AskOptions
	log  *slog.Logger

	mu      sync.Mutex
	pending map[string]chan askMsg
	ps      *goredis.PubSub
	stop    chan struct{}
	done    chan struct{}
	slots   chan struct{}
}

// maxAnswering bounds the questions a node answers at once; past it a
// question is answered "busy".
const maxAnswering = 16

// askMsg is a question (Q) or an answer on an ask channel.
type askMsg struct {
	Q    bool   `json:"q,omitempty"`
	ID   string `json:"id"`
	From string `json:"from"`
	Body []byte `json:"body,omitempty"`
	Err  string `json:"err,omitempty"`
	// Wait is how long the asker waits for the answers, in ms from its
	// asking: a duration, not a time, so that nodes whose clocks differ
	// still answer in time.
	Wait int64 `json:"wait,omitempty"`
}

// seenRow is a node's entry in the seen hash.
type seenRow struct {
	Seen int64 `json:"seen"`           // unix ms of its last beat
	Left int64 `json:"left,omitempty"` // unix ms when it stopped
}

// NewAsker returns an Asker on rdb.
func NewAsker(rdb goredis.UniversalClient, opts AskOptions) *Asker {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Beat <= 0 {
		opts.Beat = time.Second
	}
	if opts.Forget <= 0 {
		opts.Forget = time.Hour
	}
	if opts.Deadline <= 0 {
		opts.Deadline = 2 * time.Second
	}
	return &Asker{rdb: rdb, opts: opts, log: opts.Logger, pending: map[string]chan askMsg{},
		stop: make(chan struct{}), done: make(chan struct{}), slots: make(chan struct{}, maxAnswering)}
}

// SetAnswer sets what answers other nodes' questions; call it before Start.
func (a *Asker) SetAnswer(f func(ctx context.Context, question []byte) ([]byte, error)) {
	a.opts.Answer = f
}

func (a *Asker) channel(node string) string { return a.opts.Prefix + "ask:" + node }
func (a *Asker) seenKey() string            { return a.opts.Prefix + "{nodes}:seen" }

// Start listens on this node's ask channel and starts beating.
func (a *Asker) Start(ctx context.Context) error {
	ps := a.rdb.Subscribe(ctx, a.channel(a.opts.Node))
	if _, err := ps.Receive(ctx); err != nil {
		ps.Close()
		return fmt.Errorf("cluster ask: subscribe: %w", err)
	}
	if err := a.beat(ctx, 0); err != nil {
		ps.Close()
		return fmt.Errorf("cluster ask: %w", err)
	}
	a.ps = ps // set once started: Close waits for the beat loop only then
	go a.receive(ps.Channel())
	go beatEvery(a.opts.Beat, a.stop, a.done, a.log, "cluster ask: beat", func(ctx context.Context) error { return a.beat(ctx, 0) })
	return nil
}

func (a *Asker) beat(ctx context.Context, left int64) error {
	v, _ := json.Marshal(seenRow{Seen: time.Now().UnixMilli(), Left: left})
	return a.rdb.HSet(ctx, a.seenKey(), a.opts.Node, v).Err()
}

// Close stops answering and records that this node left (it is listed as
// down until Forget).
func (a *Asker) Close(ctx context.Context) error {
	select {
	case <-a.stop:
		return nil
	default:
		close(a.stop)
	}
	if a.ps == nil { // never started
		return nil
	}
	<-a.done
	return errors.Join(a.beat(ctx, time.Now().UnixMilli()), a.ps.Close())
}

// receive handles what comes on this node's ask channel: answers to
// this node's questions, and questions to answer.
func (a *Asker) receive(ch <-chan *goredis.Message) {
	for m := range ch {
		var msg askMsg
		if err := json.Unmarshal([]byte(m.Payload), &msg); err != nil || msg.ID == "" {
			a.log.Warn("cluster ask: bad message", "err", err)
			continue
		}
		if !msg.Q {
			a.mu.Lock()
			if c, ok := a.pending[msg.ID]; ok {
				select {
				case c <- msg: // room for one answer per node asked
				default: // one more (two processes under one node ID): the asker takes the first
				}
			}
			a.mu.Unlock()
			continue
		}
		select {
		case a.slots <- struct{}{}:
			go func() {
				defer func() { <-a.slots }()
				a.answer(msg)
			}()
		default: // said here, not on a goroutine each: a flood of questions cannot grow them
			a.reply(msg, nil, errors.New("busy: too many questions at once"))
		}
	}
}

func (a *Asker) answer(q askMsg) {
	wait := a.opts.Deadline
	if q.Wait > 0 {
		wait = min(wait, time.Duration(q.Wait)*time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if a.opts.Answer == nil {
		a.reply(q, nil, errors.New("this node answers no questions"))
		return
	}
	body, err := a.opts.Answer(ctx, q.Body)
	a.reply(q, body, err)
}

func (a *Asker) reply(q askMsg, body []byte, err error) {
	ans := askMsg{ID: q.ID, From: a.opts.Node, Body: body}
	if err != nil {
		ans.Err = err.Error()
	}
	v, _ := json.Marshal(ans)
	ctx, cancel := context.WithTimeout(context.Background(), a.opts.Deadline)
	defer cancel()
	if err := a.rdb.Publish(ctx, a.channel(q.From), v).Err(); err != nil {
		a.log.Warn("cluster ask: answer", "to", q.From, "err", err)
	}
}

// nodes lists the nodes seen within Forget, this one too, by ID, with
// when each was last seen and left (0: it has not); it forgets older ones.
func (a *Asker) nodes(ctx context.Context) (map[string]seenRow, error) {
	all, err := a.rdb.HGetAll(ctx, a.seenKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("cluster ask: list nodes: %w", err)
	}
	out := map[string]seenRow{}
	var old []string
	cut := time.Now().Add(-a.opts.Forget).UnixMilli()
	for node, v := range all {
		var r seenRow
		if json.Unmarshal([]byte(v), &r) != nil || r.Seen < cut {
			old = append(old, node)
			continue
		}
		out[node] = r
	}
	if len(old) > 0 {
		if err := a.rdb.HDel(ctx, a.seenKey(), old...).Err(); err != nil {
			a.log.Warn("cluster ask: forget nodes", "nodes", old, "err", err)
		}
	}
	return out, nil
}

// AskAll asks every other node seen within Forget the question, all at
// once, and returns their answers by node ID, each an answer or why there
// is none (it left, it is not listening, it answered an error, or
// ErrNoAnswer by ctx's deadline, or AskOptions.Deadline from now if ctx
// has none). It returns when every node has answered or the deadline
// passes.
func (a *Asker) AskAll(ctx context.Context, question []byte) ([]Answer, error) {
	nodes, err := a.nodes(ctx)
	if err != nil {
		return nil, err
	}
	delete(nodes, a.opts.Node)
	id := rand.Text()
	c := make(chan askMsg, len(nodes))
	a.mu.Lock()
	a.pending[id] = c
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		delete(a.pending, id)
		a.mu.Unlock()
	}()
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, a.opts.Deadline)
		defer cancel()
	}
	deadline, _ := ctx.Deadline()
	q, _ := json.Marshal(askMsg{Q: true, ID: id, From: a.opts.Node, Body: question, Wait: time.Until(deadline).Milliseconds()})
	out := map[string]*Answer{}
	sent := map[string]*goredis.IntCmd{}
	pipe := a.rdb.Pipeline() // every question in one round trip
	for node, r := range nodes {
		ans := &Answer{Node: node}
		out[node] = ans
		if r.Left != 0 {
			ans.Err = fmt.Errorf("left the cluster at %s", time.UnixMilli(r.Left).UTC().Format(time.RFC3339))
			continue
		}
		sent[node] = pipe.Publish(ctx, a.channel(node), q)
	}
	_, _ = pipe.Exec(ctx) // each command's own error is read below
	_, sharded := a.rdb.(*goredis.ClusterClient)
	waiting := 0
	for node, cmd := range sent {
		ans := out[node]
		switch n, err := cmd.Result(); {
		case err != nil:
			ans.Err = fmt.Errorf("ask: %w", err)
		case n == 0 && !sharded:
			ans.Err = fmt.Errorf("not listening; last seen %s ago", time.Since(time.UnixMilli(nodes[node].Seen)).Round(time.Second))
		default:
			ans.Err = ErrNoAnswer
			waiting++
		}
	}
	for waiting > 0 {
		select {
		case m := <-c:
			ans, ok := out[m.From]
			if !ok || ans.Err != ErrNoAnswer {
				continue
			}
			waiting--
			ans.Body, ans.Err = m.Body, nil
			if m.Err != "" {
				ans.Err = errors.New(m.Err)
			}
		case <-ctx.Done():
			waiting = 0
		}
	}
	list := make([]Answer, 0, len(out))
	for _, node := range slices.Sorted(maps.Keys(out)) {
		list = append(list, *out[node])
	}
	return list, nil
}
