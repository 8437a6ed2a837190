package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/imqtt/imqtt/client"
	"github.com/imqtt/imqtt/wire"
)

// GroupOptions configure the group scenario: a group of Members (the
// owner included) of whom Online are connected; the owner sends Messages.
// Zero values take the defaults in parentheses.
type GroupOptions struct {
	Target   Target
	Members  int           // group size, owner included (200)
	Online   int           // members connected, spread over the group (50)
	Messages int           // messages the owner sends (100)
	InFlight int           // the owner's unacknowledged sends (1: one after another)
	Size     int           // body bytes (64)
	Drain    time.Duration // how long to wait for the last deliveries (30s)
	Progress io.Writer
	Logger   *slog.Logger

	// dropLive, if set, makes member j ignore a live message of seq n
	// (counted from the run's first): tests force a live loss with it, as
	// a full client queue would.
	dropLive func(j int, n uint64) bool
}

func (o *GroupOptions) fill() {
	if o.Members <= 1 {
		o.Members = 200
	}
	if o.Online <= 0 {
		o.Online = 50
	}
	o.Online = min(o.Online, o.Members-1)
	if o.Messages <= 0 {
		o.Messages = 100
	}
	if o.InFlight <= 0 {
		o.InFlight = 1
	}
	if o.Size <= 0 {
		o.Size = 64
	}
	if o.Drain <= 0 {
		o.Drain = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Group runs the group scenario. Online members are raw MQTT connections
// subscribed to their inbox; a message counts as delivered to a member when
// it arrives there live or, failing that, when the member's own recovery
// brings it after the sends: a group sync over HTTP from its cursor (the
// highest seq it got live without a gap), keeping only what it does not
// hold already, as a client's sequencer does. Counts are deliveries: a
// message times an online member; a duplicate is a message a member got
// live twice; lost is what even the recovery did not bring. The result
// says in a note whether every online member got every message (and
// fails, so imqtt bench exits non-zero, if not). The latency of a message
// is the time until the last online member has it.
func Group(ctx context.Context, o GroupOptions) (*Result, error) {
	o.fill()
	defer httpClient.CloseIdleConnections() // a server shutting down waits for unused ones
	if o.Target.Plain {
		return nil, errors.New("group is an imqttd scenario")
	}
	if err := o.Target.validate(); err != nil {
		return nil, err
	}
	run := newRunID()
	res := &Result{Scenario: "group", Target: o.Target.label(), Case: fmt.Sprintf("members=%d online=%d inflight=%d", o.Members, o.Online, o.InFlight),
		Start: time.Now(), Params: map[string]any{"members": o.Members, "online": o.Online, "messages": o.Messages,
			"inflight": o.InFlight, "size": o.Size, "run": run}}
	prog := newProgress(o.Progress, "group")
	defer prog.close()
	if err := o.Target.ping(ctx); err != nil {
		return nil, err
	}
	users := make([]string, o.Members)
	users[0] = "bench-" + run + "-g-owner"
	for i := 1; i < o.Members; i++ {
		users[i] = fmt.Sprintf("bench-%s-g%d", run, i)
	}
	online := make([]int, o.Online) // user index of online member j
	isOnline := map[int]bool{0: true}
	for j := range online {
		online[j] = 1 + j*(o.Members-1)/o.Online
		isOnline[online[j]] = true
	}
	accts, err := o.Target.accounts(ctx, users, func(i int) bool { return isOnline[i] }, prog)
	if err != nil {
		return nil, err
	}
	owner := o.Target.api(accts[0].token)
	g, err := owner.CreateGroup(ctx, wire.GroupCreate{ID: "bench-" + run, Name: "bench " + run, Members: users[1:]})
	if err != nil {
		return nil, fmt.Errorf("create group: %w", err)
	}
	addr, err := o.Target.mqttAddr(ctx)
	if err != nil {
		return nil, err
	}

	tr := NewTracker(o.Online)
	live := make([]memberSeqs, o.Online)     // the group seqs member j got live
	last := make([]atomic.Int64, o.Messages) // unix ns when the latest member first got message k
	sent := make([]atomic.Int64, o.Messages)
	deliver := func(j int, m wire.Msg, now time.Time, synced bool) {
		if m.Group != g.ID {
			return
		}
		st, ok := parseBody(run, m.Body)
		if !ok || st.flush || st.seq >= o.Messages {
			return
		}
		if tr.Deliver(j, st.seq, st.sent, now, synced) {
			return
		}
		for {
			old := last[st.seq].Load()
			if now.UnixNano() <= old || last[st.seq].CompareAndSwap(old, now.UnixNano()) {
				break
			}
		}
	}
	var conns []*rawConn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for j, u := range online {
		prog.setf("connecting online members %d/%d", j+1, o.Online)
		a := accts[u]
		c, err := dialRaw(ctx, addr, rawDialer{}, a.user+"/bench", a.user, a.token, wire.InboxTopic(a.user))
		if err != nil {
			return nil, fmt.Errorf("%w: mqtt %s: %v", ErrUnreachable, addr, err)
		}
		conns = append(conns, c)
		go c.readPublishes(func(p []byte) {
			now := time.Now()
			var m wire.Msg
			if json.Unmarshal(p, &m) == nil && m.Kind == wire.KindMsg {
				if m.Group == g.ID && m.Seq > g.Seq && m.Seq <= g.Seq+uint64(o.Messages) {
					if o.dropLive != nil && o.dropLive(j, m.Seq-g.Seq) {
						return
					}
					live[j].add(m.Seq - g.Seq)
				}
				deliver(j, m, now, false)
			}
		})
	}
	oc, err := client.Dial(ctx, client.Config{Server: o.Target.Server, MQTT: o.Target.MQTT, User: accts[0].user, Device: "bench",
		Token: accts[0].token, Logger: o.Logger, HTTPClient: httpClient})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnreachable, err)
	}
	defer oc.Close()
	before, err := o.Target.scrape(ctx)
	if err != nil {
		return nil, err
	}

	start := time.Now()
	res.Start = start
	prog.measure(func() string {
		c := tr.Counts()
		return fmt.Sprintf("deliveries: sent %d  acked %d  delivered %d  dup %d  %.0f/s", c.Sent, c.Acked, c.Delivered, c.Duplicated, Rate(c.Delivered, time.Since(start)))
	})
	slots := make(chan struct{}, o.InFlight)
	var wg sync.WaitGroup
	for k := range o.Messages {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		now := time.Now()
		sent[k].Store(now.UnixNano())
		for range o.Online {
			tr.Sent()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			sctx, cancel := context.WithTimeout(ctx, o.Drain)
			defer cancel()
			_, err := oc.Send(sctx, wire.Send{Group: g.ID, Type: "text", Body: encodeBody(run, 0, k, now, o.Size)})
			for j := range o.Online {
				if err != nil {
					tr.Failed()
				} else {
					tr.Ack(j, k)
				}
			}
		}()
	}
	wg.Wait()
	sendEnd := time.Now()
	res.SendRate = Rate(int64(o.Messages), sendEnd.Sub(start))
	deadline := time.Now().Add(o.Drain)
	for !tr.Complete() && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	delivered := tr.Counts().Delivered
	after, err := o.Target.scrape(ctx)
	if err != nil {
		return nil, err
	}

	// What a member missed live, it syncs from its cursor, as a client
	// that sees a gap does; what it holds already above a gap is not
	// delivered again.
	for _, j := range tr.Incomplete() {
		a := accts[online[j]]
		prog.setf("member %s syncs the group", a.user)
		cursor := g.Seq + live[j].contiguous()
		err := syncGroup(ctx, o.Target.api(a.token), g.ID, cursor, func(m wire.Msg) {
			if m.Seq <= g.Seq || !live[j].has(m.Seq-g.Seq) {
				deliver(j, m, time.Now(), true)
			}
		})
		if err != nil {
			return nil, err
		}
	}

	c := tr.Counts()
	res.Counts = c
	end := tr.LastSeen()
	if end.Before(sendEnd) {
		end = sendEnd
	}
	res.Seconds = end.Sub(start).Seconds()
	res.Rate = Rate(c.Delivered, end.Sub(start))
	var fan []int64
	for k := range o.Messages {
		if l := last[k].Load(); l != 0 {
			fan = append(fan, l-sent[k].Load())
		}
	}
	lat := Summarize(fan)
	res.Latency = &lat
	res.extra("messages", float64(o.Messages))
	res.extra("delivered_live", float64(delivered))
	res.addServerFigures(before, after)
	res.Notes = append(res.Notes, "counts are deliveries (message × online member); latency is per message, until the last online member has it")
	res.checkMessages()
	res.Notes = append(res.Notes, groupVerdict(tr, o.Online, o.Messages))
	return res, nil
}

// groupVerdict says whether every online member got every acked message
// exactly once, live or by its own recovery, and if not, how many
// deliveries were lost and how many members missed one.
func groupVerdict(tr *Tracker, online, messages int) string {
	c := tr.Counts()
	if c.Lost == 0 && c.Duplicated == 0 {
		return fmt.Sprintf("every online member got every message exactly once: %d members × %d messages acked, %d live, %d by the member's own group sync",
			online, messages, c.Delivered-c.Synced, c.Synced)
	}
	short := len(tr.Incomplete())
	return fmt.Sprintf("NOT every online member got every message exactly once: %d deliveries lost after recovery (%d of %d members short), %d duplicates",
		c.Lost, short, online, c.Duplicated)
}

// memberSeqs is the set of group seqs (counted from the group's head when
// the run began) one member got live.
type memberSeqs struct {
	mu   sync.Mutex
	seen bitset
}

func (m *memberSeqs) add(n uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seen.set(int(n))
}

func (m *memberSeqs) has(n uint64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.seen.has(int(n))
}

// contiguous is how many seqs from 1 on the member has without a gap: its
// group cursor, as a client keeps it.
func (m *memberSeqs) contiguous() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var n uint64
	for m.seen.has(int(n + 1)) {
		n++
	}
	return n
}

// syncGroup reads a group over HTTP from a member's cursor, paging on
// while more is set; fn gets the items above the cursor, in seq order.
func syncGroup(ctx context.Context, api *client.HTTP, group string, since uint64, fn func(wire.Msg)) error {
	for {
		b, err := api.Sync(ctx, wire.SyncRequest{Group: group, Since: since})
		if err != nil {
			return fmt.Errorf("sync group %s: %w", group, err)
		}
		if b.Reset {
			since = b.Since
		}
		for _, m := range b.Items {
			if m.Seq > since {
				fn(m)
			}
		}
		if !b.More || b.Upto <= since {
			return nil
		}
		since = b.Upto
	}
}
