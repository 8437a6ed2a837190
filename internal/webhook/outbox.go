package webhook

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/imqtt/imqtt/internal/outbox"
	"github.com/imqtt/imqtt/store"
)

// The results of imqtt_webhook_total{event,result}.
const (
	ResultSent     = "sent"     // the receiver answered 2xx
	ResultRetry    = "retry"    // no answer, 5xx, 408 or 429: attempted again later
	ResultDropped  = "dropped"  // any other answer (4xx), or an event no longer wanted
	ResultExpired  = "expired"  // not delivered within --webhook-ttl
	ResultOverflow = "overflow" // not queued: the emitter's queue was full
	// ResultRateLimited: a presence event past its user's bound, not written.
	ResultRateLimited = "rate_limited"
)

// Defaults of OutboxOptions.
const (
	DefaultTTL   = 24 * time.Hour   // how long an event is retried (--webhook-ttl)
	DefaultLanes = 64               // lanes delivered to at once per node
	DefaultLease = 30 * time.Second // how long a claim holds a lane
	DefaultPoll  = time.Second      // how often the outbox is looked at without a Notify
	// DefaultEventTimeout bounds one request of an event (the Client's
	// Timeout, as the daemon makes it).
	DefaultEventTimeout = 5 * time.Second
	// MaxBackoff caps the retry backoff (1 s, 2 s, 4 s, ... 5 min,
	// jittered).
	MaxBackoff = 5 * time.Minute
	// MaxRetryAfter caps a receiver's Retry-After.
	MaxRetryAfter = time.Hour
)

// laneBatch is how many events of a lane are read at once.
const laneBatch = 16

// Metrics are the outbox's instruments (internal/metrics).
type Metrics interface {
	Webhook(event, result string)
	WebhookLatency(d time.Duration) // from an event's ts to its delivery
	WebhookOutbox(depth int64)
}

type nopMetrics struct{}

func (nopMetrics) Webhook(string, string)       {}
func (nopMetrics) WebhookLatency(time.Duration) {}
func (nopMetrics) WebhookOutbox(int64)          {}

// OutboxOptions configure an Outbox; zero values take the defaults.
type OutboxOptions struct {
	Node   string          // this node's ID; claims are held as "{node}/{nonce}"
	Client *Client         // where events go, signed
	Events map[string]bool // events delivered (ParseEvents); others found are dropped; nil: all
	TTL    time.Duration   // how long an event is retried
	Lanes  int             // lanes delivered to at once
	Lease  time.Duration   // a lane's claim
	Poll   time.Duration   // the look without a Notify
	// Backoff, when set, replaces the jittered exponential backoff
	// (attempts is the number of failed attempts before this one).
	Backoff func(attempts int) time.Duration
	Logger  *slog.Logger
	Metrics Metrics
	Now     func() time.Time
}

// Outbox delivers the webhook outbox (store.Webhooks) to the operator's
// URL, at least once and in order per lane:
//
//	a pass (woken by Notify, or every Poll; at most every 50 ms):
//	    due lanes no one holds ─► claim one (a lease) ─► a goroutine each,
//	    at most Lanes at once
//	a lane: its head ─► POST ─► 2xx: deleted, next · no answer, 5xx, 408,
//	    429: the lane waits (backoff, Retry-After) and is released · other:
//	    dropped, next · past the TTL: expired, next
//
// Several nodes may run one over one store: a lane is held by one at a
// time, so each event is posted by one node (again only if its holder died
// before deleting it).
type Outbox struct {
	st     store.Webhooks
	opts   OutboxOptions
	holder string
	loop   *outbox.Loop // its Work: the lanes in flight
	sem    chan struct{}
	// ctx ends the requests in flight when Close gives up waiting.
	ctx    context.Context
	cancel context.CancelFunc
}

// NewOutbox returns an Outbox over st; Start runs it.
func NewOutbox(st store.Webhooks, o OutboxOptions) *Outbox {
	if o.TTL <= 0 {
		o.TTL = DefaultTTL
	}
	if o.Lanes <= 0 {
		o.Lanes = DefaultLanes
	}
	if o.Lease <= 0 {
		o.Lease = DefaultLease
	}
	if o.Poll <= 0 {
		o.Poll = DefaultPoll
	}
	if o.Backoff == nil {
		o.Backoff = func(n int) time.Duration { return outbox.Backoff(n, MaxBackoff) }
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Metrics == nil {
		o.Metrics = nopMetrics{}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Events == nil {
		o.Events, _ = ParseEvents("")
	}
	w := &Outbox{st: st, opts: o, holder: o.Node + "/" + rand.Text()[:8],
		loop: outbox.New(), sem: make(chan struct{}, o.Lanes)}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	return w
}

// Start runs the outbox until Close.
func (w *Outbox) Start() { go w.run() }

// Notify says events were written: the outbox looks now rather than at
// its next poll. It never blocks.
func (w *Outbox) Notify() { w.loop.Notify() }

// Close stops claiming, waits (up to ctx) for the lanes in flight, and
// releases them; what is left is delivered by another node, or by this
// one after a restart.
func (w *Outbox) Close(ctx context.Context) {
	if !w.loop.Close(ctx) {
		w.cancel() // the requests in flight end; their lanes' leases end their claims
	}
	w.cancel()
}

// run is the outbox's loop: at most one look for due lanes every
// outbox.PassEvery (every commit wakes it, and a look per commit would
// cost a read each).
func (w *Outbox) run() {
	go w.gauge()
	w.loop.Run(w.opts.Poll, nil, w.dispatch, w.sweep)
}

// gauge samples the outbox's depth every 10 s, apart from the loop.
func (w *Outbox) gauge() {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		ctx, cancel := context.WithTimeout(w.ctx, 10*time.Second)
		if n, err := w.st.WebhookDepth(ctx); err == nil {
			w.opts.Metrics.WebhookOutbox(n)
		}
		cancel()
		select {
		case <-w.loop.Stopping():
			return
		case <-t.C:
		}
	}
}

// sweep deletes what passed the TTL behind the lanes' heads.
func (w *Outbox) sweep() {
	ctx, cancel := context.WithTimeout(w.ctx, time.Minute)
	defer cancel()
	n, err := w.st.SweepWebhooks(ctx, w.opts.Now().Add(-w.opts.TTL).UnixMilli())
	if err != nil {
		w.opts.Logger.Warn("webhook: sweep the outbox; retried", "err", err)
		return
	}
	if n > 0 {
		w.opts.Logger.Warn("webhook: events past --webhook-ttl dropped", "events", n)
		for range n {
			w.opts.Metrics.Webhook("any", ResultExpired)
		}
	}
}

// dispatch claims due lanes while there is room, a goroutine each.
func (w *Outbox) dispatch() {
	for {
		select {
		case <-w.loop.Stopping():
			return
		default:
		}
		free := cap(w.sem) - len(w.sem)
		if free == 0 {
			return // a finishing lane wakes the outbox
		}
		ctx, cancel := context.WithTimeout(w.ctx, 10*time.Second)
		now := w.opts.Now().UnixMilli()
		lanes, err := w.st.DueWebhookLanes(ctx, now, free)
		cancel()
		if err != nil {
			w.opts.Logger.Warn("webhook: due lanes; retried", "err", err)
			return
		}
		started := 0
		for _, l := range lanes {
			ctx, cancel := context.WithTimeout(w.ctx, 10*time.Second)
			ok, err := w.st.ClaimWebhookLane(ctx, l.Lane, w.holder, now, now+w.opts.Lease.Milliseconds())
			cancel()
			if err != nil {
				w.opts.Logger.Warn("webhook: claim a lane; retried", "err", err)
				return
			}
			if !ok {
				continue // another node's
			}
			w.sem <- struct{}{}
			w.loop.Work.Add(1)
			started++
			go func() {
				defer func() {
					<-w.sem
					w.loop.Work.Done()
					w.Notify()
				}()
				w.deliver(l, now)
			}()
		}
		if started == 0 || len(lanes) < free {
			return
		}
	}
}

// deliver posts lane's events from its head, in order, until it is empty,
// its head must wait, the worker stops or its claim is lost.
func (w *Outbox) deliver(l store.WebhookLane, claimed int64) {
	release := true
	defer func() {
		if !release {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := w.st.ReleaseWebhookLane(ctx, l.Lane, w.holder); err != nil {
			w.opts.Logger.Warn("webhook: release a lane; its lease ends the claim", "err", err)
		}
	}()
	attempts := l.Attempts
	for {
		if w.stopping() {
			return
		}
		ctx, cancel := context.WithTimeout(w.ctx, 10*time.Second)
		evs, err := w.st.WebhookEvents(ctx, l.Lane, laneBatch)
		cancel()
		if err != nil {
			w.opts.Logger.Warn("webhook: read a lane; retried", "err", err)
			return
		}
		if len(evs) == 0 {
			return
		}
		var gone []int64 // delivered, dropped or expired: deleted together
		for _, ev := range evs {
			if w.stopping() {
				w.remove(l.Lane, gone)
				return
			}
			now := w.opts.Now().UnixMilli()
			if now-claimed > w.opts.Lease.Milliseconds()/2 {
				if !w.extend(l.Lane, now, gone) {
					return
				}
				gone, claimed = nil, now
			}
			wait, ok := w.post(ev, now, attempts)
			if !ok {
				w.remove(l.Lane, gone)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				err := w.st.RetryWebhookLane(ctx, l.Lane, w.holder, w.opts.Now().Add(wait).UnixMilli(), attempts+1)
				cancel()
				if err != nil {
					w.opts.Logger.Warn("webhook: put off a lane; retried at once", "err", err)
					return
				}
				release = false // the retry released it
				return
			}
			attempts = 0
			gone = append(gone, ev.ID)
		}
		if !w.remove(l.Lane, gone) {
			return
		}
	}
}

func (w *Outbox) stopping() bool {
	select {
	case <-w.loop.Stopping():
		return true
	default:
		return false
	}
}

// extend renews the claim of lane (deleting gone first, so that a claim
// lost meanwhile redelivers as little as can be); false: lost.
func (w *Outbox) extend(lane string, now int64, gone []int64) bool {
	if !w.remove(lane, gone) {
		return false
	}
	ctx, cancel := context.WithTimeout(w.ctx, 10*time.Second)
	defer cancel()
	ok, err := w.st.ClaimWebhookLane(ctx, lane, w.holder, now, now+w.opts.Lease.Milliseconds())
	if err != nil || !ok {
		w.opts.Logger.Warn("webhook: a lane's claim was lost; left to its next holder", "err", err)
		return false
	}
	return true
}

// remove deletes the events of lane that are done with.
func (w *Outbox) remove(lane string, ids []int64) bool {
	if len(ids) == 0 {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.st.DeleteWebhookEvents(ctx, lane, ids); err != nil {
		w.opts.Logger.Warn("webhook: delete delivered events; they may be delivered again", "err", err)
		return false
	}
	return true
}

// post delivers ev, or says how long its lane waits (ok false).
func (w *Outbox) post(ev store.WebhookEvent, now int64, attempts int) (wait time.Duration, ok bool) {
	switch {
	case !w.opts.Events[ev.Type]:
		w.opts.Metrics.Webhook(ev.Type, ResultDropped) // --webhook-events changed since it was written
		return 0, true
	case now-ev.TS >= w.opts.TTL.Milliseconds():
		w.opts.Metrics.Webhook(ev.Type, ResultExpired)
		w.opts.Logger.Warn("webhook: an event passed --webhook-ttl undelivered; dropped", "event", ev.Type, "id", formatID(ev.ID))
		return 0, true
	}
	body, err := json.Marshal(Event{ID: formatID(ev.ID), Type: ev.Type, TS: ev.TS, Data: ev.Data})
	if err != nil { // stored data that is not JSON
		w.opts.Metrics.Webhook(ev.Type, ResultDropped)
		w.opts.Logger.Error("webhook: an event does not encode; dropped", "event", ev.Type, "id", formatID(ev.ID))
		return 0, true
	}
	a, err := w.opts.Client.Post(w.ctx, ev.Type, body)
	switch {
	case err == nil && a.OK():
		w.opts.Metrics.Webhook(ev.Type, ResultSent)
		w.opts.Metrics.WebhookLatency(time.Duration(w.opts.Now().UnixMilli()-ev.TS) * time.Millisecond)
		return 0, true
	case err != nil || a.Status >= 500 || a.Status == http.StatusRequestTimeout || a.Status == http.StatusTooManyRequests:
		w.opts.Metrics.Webhook(ev.Type, ResultRetry)
		wait = w.opts.Backoff(attempts)
		if err == nil {
			wait = max(wait, min(outbox.RetryAfter(a.RetryAfter, w.opts.Now()), MaxRetryAfter))
			w.opts.Logger.Info("webhook: the receiver answered; retried", "event", ev.Type, "status", a.Status, "attempts", attempts+1)
		} else {
			w.opts.Logger.Info("webhook: no answer; retried", "event", ev.Type, "err", err, "attempts", attempts+1)
		}
		return wait, false
	default:
		w.opts.Metrics.Webhook(ev.Type, ResultDropped)
		w.opts.Logger.Warn("webhook: the receiver refused an event; dropped", "event", ev.Type, "id", formatID(ev.ID), "status", a.Status)
		return 0, true
	}
}

// The backoff (outbox.Backoff) is a function of the attempts the store
// keeps with the lane, rather than github.com/cenkalti/backoff's
// ExponentialBackOff (compared: its state lives in the process, so a lane
// taken over by another node, or after a restart, would start its backoff
// over).

// formatID is an event's id on the wire.
func formatID(id int64) string { return "evt-" + strconv.FormatInt(id, 10) }
