// Package push reaches the phone that is not connected
// (docs/http.md#offline-push): for every stored message, each recipient
// device that registered a push token and has no live connection gets one
// notification through its provider (APNs, FCM, a webhook), within about a
// second of the commit.
//
// The work is a durable outbox in the store (store.Push), claimed, never
// broadcast, so that every node may run a Worker and each message reaches
// each device once:
//
//	chat's batcher ─► store.Commit writes the message AND a PushJob (atomic)
//	    └─► Worker.Notify (wakes the worker; it also polls)
//	Worker.expand: claim jobs ─► recipients' registered devices, minus the
//	    sender, minus muted conversations (mentions excepted) ─► PushItems
//	Worker.dispatch: claim due devices ─► one worker goroutine each:
//	    every pending item of the device ─► one Notification (a burst
//	    collapses; at most one per device per Collapse) ─► Pusher.Push
//	    ok: items done · invalid token: registration removed ·
//	    retry: jittered backoff until TTL · online now: not sent
//
// Live delivery never waits on any of it: the batcher only writes one more
// row per message, and everything else runs on the Worker's goroutines,
// sending at most Rate notifications a second.
package push

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/time/rate"

	"github.com/imqtt/imqtt/internal/outbox"
	"github.com/imqtt/imqtt/state"
	"github.com/imqtt/imqtt/store"
)

// Defaults of Options.
const (
	DefaultTTL      = time.Hour       // how long a push is retried
	DefaultCollapse = 2 * time.Second // a device's burst within it is one notification
	DefaultRate     = 1000            // notifications a second per node
	DefaultWorkers  = 256             // notifications in flight per node (a provider answering in 500 ms still takes 512/s)
	DefaultPreview  = PreviewSender
	DefaultPoll     = 200 * time.Millisecond // how often the outbox is looked at without a Notify
	DefaultLease    = 30 * time.Second       // how long a claim holds a job or a device
	DefaultTimeout  = 15 * time.Second       // one provider call
)

// Previews: what a notification says (--push-preview).
const (
	PreviewFull   = "full"   // the sender and the text
	PreviewSender = "sender" // "alice sent you a message"
	PreviewNone   = "none"   // "New message"
)

// Results counted by Metrics.Pushed.
const (
	ResultSent         = "sent"          // the provider accepted it
	ResultRetry        = "retry"         // the provider failed; tried again later
	ResultInvalidToken = "invalid_token" // the provider refused the token: registration removed
	ResultFailed       = "failed"        // the provider refused it for good
	ResultExpired      = "expired"       // not accepted within the TTL: dropped
	ResultOnline       = "online"        // the device came online first: not sent
	ResultRevoked      = "revoked"       // the login it was registered with is gone: registration removed
	ResultUnavailable  = "unavailable"   // its provider is not configured on this node
	ResultRecalled     = "recalled"      // every message it was for was recalled before it went out: not sent
)

// Store is what the worker needs of the store.
type Store interface {
	store.Push
	GetMessages(ctx context.Context, ids []int64) ([]store.Message, error)
	GetGroup(ctx context.Context, id string) (store.Group, error)
	Members(ctx context.Context, group, after string, limit int) ([]store.Member, error)
	GetConvSettings(ctx context.Context, user, conv string) (store.ConvSettings, error)
	ConvSettingsFor(ctx context.Context, conv string) ([]store.ConvSettings, error)
	GetToken(ctx context.Context, hash string) (store.Token, error)
	GetUser(ctx context.Context, id string) (store.User, error)
}

// Presence says which devices are connected, on any node.
type Presence interface {
	Devices(ctx context.Context, user string) ([]state.Device, error)
}

// Badger counts a user's unread messages outside muted conversations
// (chat.Service.Badge): the badge a notification sets.
type Badger interface {
	Badge(ctx context.Context, user string) (int64, error)
}

// Metrics counts what the worker does (*metrics.Metrics).
type Metrics interface {
	Pushed(provider, result string)
	PushLatency(d time.Duration) // from a message's commit to its push's acceptance
	PushOutbox(jobs, items int64)
}

// Options configure a Worker; zero values take the defaults.
type Options struct {
	Node     string // this node's ID; the worker's claims are held as "{node}/{nonce}"
	Pushers  []Pusher
	Preview  string
	TTL      time.Duration
	Collapse time.Duration
	Rate     float64 // notifications a second, over all providers
	Workers  int
	Poll     time.Duration
	Lease    time.Duration
	Timeout  time.Duration
	Logger   *slog.Logger
	Metrics  Metrics
	Now      func() time.Time
}

func (o *Options) fill() {
	if o.Preview == "" {
		o.Preview = DefaultPreview
	}
	if o.TTL <= 0 {
		o.TTL = DefaultTTL
	}
	if o.Collapse <= 0 {
		o.Collapse = DefaultCollapse
	}
	if o.Rate <= 0 {
		o.Rate = DefaultRate
	}
	if o.Workers <= 0 {
		o.Workers = DefaultWorkers
	}
	if o.Poll <= 0 {
		o.Poll = DefaultPoll
	}
	if o.Lease <= 0 {
		o.Lease = DefaultLease
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
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
}

// ValidPreview reports whether p is a preview setting.
func ValidPreview(p string) bool {
	return p == PreviewFull || p == PreviewSender || p == PreviewNone
}

// Worker runs one node's share of the push outbox.
type Worker struct {
	st      Store
	pres    Presence
	badge   Badger
	opts    Options
	holder  string
	pushers map[string]Pusher
	limit   *rate.Limiter

	loop *outbox.Loop  // its Work: the notifications in flight
	sem  chan struct{} // a slot per notification in flight
	busy sync.Map      // store.SessionID → struct{}: devices this worker is sending to
}

// New returns a Worker; Start runs it.
func New(st Store, pres Presence, badge Badger, opts Options) *Worker {
	opts.fill()
	w := &Worker{st: st, pres: pres, badge: badge, opts: opts, holder: opts.Node + "/" + nonce(),
		pushers: map[string]Pusher{}, limit: rate.NewLimiter(rate.Limit(opts.Rate), max(1, int(opts.Rate/10))),
		loop: outbox.New(), sem: make(chan struct{}, opts.Workers)}
	for _, p := range opts.Pushers {
		w.pushers[p.Name()] = p
	}
	return w
}

// Provides reports whether this node pushes through provider.
func (w *Worker) Provides(provider string) bool { _, ok := w.pushers[provider]; return ok }

// Start runs the worker until Close.
func (w *Worker) Start() { go w.run() }

// Notify says a commit wrote push jobs: the worker looks now rather than
// at its next poll. It never blocks.
func (w *Worker) Notify() { w.loop.Notify() }

// Close stops claiming, waits (up to ctx) for the notifications in flight,
// and releases what the worker holds; what is left is another node's, or
// this one's after a restart.
func (w *Worker) Close(ctx context.Context) { w.loop.Close(ctx) }

// run is the worker's loop. Every commit wakes it, and a finished send
// does; a pass (a round of expansion, then a look for due devices) runs
// at most every outbox.PassEvery, so that the jobs of many commits share
// one round's reads and writes: at 12,000 messages/s a round per commit,
// of about 8 jobs each, cost the node a tenth of its CPU beside the send
// path (bench/push.sh). A backlog of full rounds is expanded without
// waiting, a look for due devices between them still at most every
// PassEvery (each look scans the due items, those of devices being sent
// to included).
func (w *Worker) run() {
	go w.gauge()
	w.loop.Run(w.opts.Poll, w.expand, w.dispatch, w.sweep)
}

// gauge samples the outbox's depth every 10 s, apart from the worker's
// loop (which may be busy with a backlog for longer).
func (w *Worker) gauge() {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		w.outboxDepth()
		select {
		case <-w.loop.Stopping():
			return
		case <-t.C:
		}
	}
}

func (w *Worker) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), w.opts.Timeout)
}

func (w *Worker) now() int64 { return w.opts.Now().UnixMilli() }

// expandRound is how many jobs one round of expansion claims: their
// messages, registrations and items are read and written together, and
// due devices are dispatched between rounds (a backlog does not hold up
// the pushes of what was expanded).
const expandRound = 256

// expand runs one round: it claims jobs and turns them into items. It
// reports whether more jobs may wait.
func (w *Worker) expand() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*w.opts.Timeout)
	defer cancel()
	now := w.now()
	jobs, err := w.st.ClaimPushJobs(ctx, w.holder, now, now+w.opts.Lease.Milliseconds(), expandRound)
	if err == nil && len(jobs) > 0 {
		err = w.expandJobs(ctx, jobs)
	}
	if err != nil {
		w.opts.Logger.Warn("push: expand jobs; retried", "err", err)
		return false
	}
	return len(jobs) == expandRound
}

// expandJobs writes the items of jobs' messages and deletes the jobs: one
// read of the messages, one of the 1:1 recipients' registrations, one
// write of the items.
func (w *Worker) expandJobs(ctx context.Context, jobs []store.PushJob) error {
	ids := make([]int64, len(jobs))
	for i, j := range jobs {
		ids[i] = j.MsgID
	}
	msgs, err := w.st.GetMessages(ctx, ids)
	if err != nil {
		return fmt.Errorf("read messages: %w", err)
	}
	if msgs, err = w.recallsAs(ctx, msgs); err != nil {
		return err
	}
	now := w.now()
	// 1:1 recipients' registrations, read once for the round.
	var direct []string
	for _, m := range msgs {
		if m.Group == "" && m.To != m.From {
			direct = append(direct, m.To)
		}
	}
	slices.Sort(direct)
	devs, err := w.devices(ctx, slices.Compact(direct))
	if err != nil {
		return err
	}
	if err := w.dropOnline(ctx, devs); err != nil {
		return err
	}
	var items []store.PushItem
	muted := map[[2]string]bool{}
	for _, m := range msgs {
		if m.TS+w.opts.TTL.Milliseconds() <= now {
			continue // too old to push: a node down that long
		}
		var its []store.PushItem
		if m.Group == "" {
			its, err = w.directItems(ctx, m, devs[m.To], now, muted)
		} else {
			its, err = w.groupItems(ctx, m, now)
		}
		if err != nil {
			return err
		}
		items = append(items, its...)
	}
	// The jobs this round still holds go with their items; one whose
	// lease passed meanwhile is another worker's now.
	if err := w.st.ExpandPushJobs(ctx, w.holder, w.now(), ids, items); err != nil {
		return fmt.Errorf("expand jobs: %w", err)
	}
	return nil
}

// recallsAs puts, for each recall among msgs, its message in its place
// with the recall's ID and time: a recall is pushed where its message
// was (the same recipients, mutes and mentions), so every device that
// may show its notification gets the recall (a silent one, that takes it
// back: notification). A recall whose message is gone is dropped.
func (w *Worker) recallsAs(ctx context.Context, msgs []store.Message) ([]store.Message, error) {
	var targets []int64
	for _, m := range msgs {
		if m.Change != nil && m.Change.Kind == store.ChangeRecall {
			targets = append(targets, m.Change.Target)
		}
	}
	if len(targets) == 0 {
		return msgs, nil
	}
	ts, err := w.st.GetMessages(ctx, targets)
	if err != nil {
		return nil, fmt.Errorf("read recalled messages: %w", err)
	}
	byID := make(map[int64]store.Message, len(ts))
	for _, t := range ts {
		byID[t.ID] = t
	}
	out := msgs[:0:0]
	for _, m := range msgs {
		switch t, ok := byID[changeTarget(m)]; {
		case m.Change == nil || m.Change.Kind != store.ChangeRecall:
			out = append(out, m)
		case ok:
			out = append(out, store.Message{ID: m.ID, From: t.From, To: t.To, Group: t.Group, Seq: t.Seq, TS: m.TS,
				Mentions: t.Mentions, Change: m.Change})
		}
	}
	return out, nil
}

func changeTarget(m store.Message) int64 {
	if m.Change == nil {
		return 0
	}
	return m.Change.Target
}

// devices reads users' registrations, by user.
func (w *Worker) devices(ctx context.Context, users []string) (map[string][]store.PushDevice, error) {
	out := make(map[string][]store.PushDevice)
	for chunk := range slices.Chunk(users, 1000) {
		ds, err := w.st.PushDevices(ctx, chunk)
		if err != nil {
			return nil, fmt.Errorf("registrations: %w", err)
		}
		for _, d := range ds {
			out[d.User] = append(out[d.User], d)
		}
	}
	return out, nil
}

// onlineCheckMax is the most users with registrations a group message's
// expansion asks presence for.
const onlineCheckMax = 64

// dropOnline leaves out of devs the devices connected now (on any node):
// they get the message live, so no item is written for them. (The send
// asks again: a device that comes meanwhile is not pushed either.)
func (w *Worker) dropOnline(ctx context.Context, devs map[string][]store.PushDevice) error {
	for user, ds := range devs {
		live, err := w.pres.Devices(ctx, user)
		if err != nil {
			return fmt.Errorf("presence: %w", err)
		}
		if len(live) == 0 {
			continue
		}
		ds = slices.DeleteFunc(ds, func(d store.PushDevice) bool {
			on := slices.ContainsFunc(live, func(l state.Device) bool { return l.Device == d.Device })
			if on {
				w.opts.Metrics.Pushed(d.Provider, ResultOnline)
			}
			return on
		})
		if len(ds) == 0 {
			delete(devs, user)
		} else {
			devs[user] = ds
		}
	}
	return nil
}

// due is when a new item for d may go: now, or the end of the collapse
// window of d's last notification (a burst waits there, written once,
// instead of making the device due at every message).
func (w *Worker) due(d store.PushDevice, now int64) int64 {
	return max(now, d.LastPush+w.opts.Collapse.Milliseconds())
}

// directItems are a 1:1 message's pushes: one per registered device of its
// recipient (never the sender's), none if the recipient muted the
// conversation (a 1:1 message mentions no one).
// muted caches, for one round, whether a recipient muted the sender.
func (w *Worker) directItems(ctx context.Context, m store.Message, devs []store.PushDevice, now int64, muted map[[2]string]bool) ([]store.PushItem, error) {
	if m.To == m.From || len(devs) == 0 {
		return nil, nil
	}
	key := [2]string{m.To, m.From}
	mute, ok := muted[key]
	if !ok {
		cs, err := w.st.GetConvSettings(ctx, m.To, store.ConvUser(m.From))
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("settings: %w", err)
		}
		mute = err == nil && cs.Muted(now)
		muted[key] = mute
	}
	if mute {
		return nil, nil
	}
	items := make([]store.PushItem, 0, len(devs))
	for _, d := range devs {
		items = append(items, store.PushItem{User: d.User, Device: d.Device, MsgID: m.ID, Created: m.TS, Due: w.due(d, now)})
	}
	return items, nil
}

// groupItems are a group message's pushes: one per registered device of
// each member who was in the group when it was sent, but the sender, and
// none where the member muted the group unless the message mentions them.
func (w *Worker) groupItems(ctx context.Context, m store.Message, now int64) ([]store.PushItem, error) {
	var users []string
	after := ""
	for {
		ms, err := w.st.Members(ctx, m.Group, after, 1000)
		if err != nil {
			return nil, fmt.Errorf("members: %w", err)
		}
		for _, mb := range ms {
			if mb.User != m.From && mb.JoinSeq < m.Seq {
				users = append(users, mb.User)
			}
		}
		if len(ms) < 1000 {
			break
		}
		after = ms[len(ms)-1].User
	}
	devs, err := w.devices(ctx, users)
	if err == nil && len(devs) <= onlineCheckMax {
		// A large group's members are asked at their send, at the push
		// rate: presence is a round trip per user in scale-out.
		err = w.dropOnline(ctx, devs)
	}
	if err != nil || len(devs) == 0 {
		return nil, err
	}
	css, err := w.st.ConvSettingsFor(ctx, store.ConvGroup(m.Group))
	if err != nil {
		return nil, fmt.Errorf("settings: %w", err)
	}
	muted := make(map[string]bool, len(css))
	for _, cs := range css {
		muted[cs.User] = cs.Muted(now)
	}
	var items []store.PushItem
	for _, u := range users {
		mention := mentions(m, u)
		if muted[u] && !mention {
			continue
		}
		for _, d := range devs[u] {
			items = append(items, store.PushItem{User: d.User, Device: d.Device, MsgID: m.ID, Created: m.TS, Due: w.due(d, now), Mention: mention})
		}
	}
	return items, nil
}

// mentions reports whether m mentions user (by name, or @all in a group).
func mentions(m store.Message, user string) bool {
	for _, u := range m.Mentions {
		if u == user || (u == store.MentionAll && m.Group != "") {
			return true
		}
	}
	return false
}

// dispatch claims due devices and sends to each on a goroutine of its own,
// as many at once as there are free slots.
func (w *Worker) dispatch() {
	for {
		select {
		case <-w.loop.Stopping():
			return
		default:
		}
		free := cap(w.sem) - len(w.sem)
		if free == 0 {
			return // a finishing send wakes the worker
		}
		ctx, cancel := w.ctx()
		now := w.now()
		devs, err := w.st.DuePushDevices(ctx, now, free)
		cancel()
		if err != nil {
			w.opts.Logger.Warn("push: due devices; retried", "err", err)
			return
		}
		started := 0
		for _, d := range devs {
			if _, ok := w.busy.Load(d); ok {
				continue
			}
			ctx, cancel := w.ctx()
			ok, err := w.st.ClaimPushDevice(ctx, d.User, d.Device, w.holder, now, now+w.opts.Lease.Milliseconds())
			cancel()
			if err != nil {
				w.opts.Logger.Warn("push: claim a device; retried", "err", err)
				return
			}
			if !ok {
				continue // another node's
			}
			w.sem <- struct{}{}
			w.busy.Store(d, struct{}{})
			w.loop.Work.Add(1)
			started++
			go func() {
				defer func() {
					w.busy.Delete(d)
					<-w.sem
					w.loop.Work.Done()
					w.Notify()
				}()
				w.send(d)
			}()
		}
		if started == 0 || len(devs) < free {
			return
		}
	}
}

// send pushes a device's pending items as one notification, and releases
// the device.
func (w *Worker) send(d store.SessionID) {
	defer func() {
		ctx, cancel := w.ctx()
		defer cancel()
		if err := w.st.ReleasePushDevice(ctx, d.User, d.Device, w.holder); err != nil {
			w.opts.Logger.Warn("push: release a device; its lease ends it", "err", err)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), w.opts.Timeout+5*time.Second)
	defer cancel()
	if err := w.sendDevice(ctx, d); err != nil {
		w.opts.Logger.Warn("push: a device's notification; retried", "user", d.User, "device", d.Device, "err", err)
	}
}

func (w *Worker) sendDevice(ctx context.Context, d store.SessionID) error {
	items, err := w.st.PendingPushItems(ctx, d.User, d.Device)
	if err != nil || len(items) == 0 {
		return err
	}
	now := w.now()
	dev, err := w.st.GetPushDevice(ctx, d.User, d.Device)
	if errors.Is(err, store.ErrNotFound) {
		return w.st.DonePushItems(ctx, d.User, d.Device, ids(items), now) // unregistered meanwhile
	}
	if err != nil {
		return err
	}
	provider := dev.Provider
	// Past the TTL: dropped.
	live := items[:0:0]
	var expired []int64
	for _, it := range items {
		if it.Created+w.opts.TTL.Milliseconds() <= now {
			expired = append(expired, it.MsgID)
		} else {
			live = append(live, it)
		}
	}
	if len(expired) > 0 {
		if err := w.st.DonePushItems(ctx, d.User, d.Device, expired, now); err != nil {
			return err
		}
		w.opts.Metrics.Pushed(provider, ResultExpired)
	}
	if len(live) == 0 {
		return nil
	}
	// Sent together: when the last of them is due (a retry's backoff
	// holds the ones that came meanwhile), and not within the collapse
	// window of the last notification.
	due, attempts := int64(0), 0
	for _, it := range live {
		due, attempts = max(due, it.Due), max(attempts, it.Attempts)
	}
	due = max(due, dev.LastPush+w.opts.Collapse.Milliseconds())
	if due > now {
		// Only those due before the rest wait longer: rewriting every
		// pending item at each new one made a long burst cost its square.
		var early []int64
		for _, it := range live {
			if it.Due < due {
				early = append(early, it.MsgID)
			}
		}
		return w.st.RetryPushItems(ctx, d.User, d.Device, early, due, attempts)
	}
	if dev.Login != "" {
		tok, err := w.st.GetToken(ctx, dev.Login)
		if errors.Is(err, store.ErrNotFound) || (err == nil && tok.Expires <= now) {
			// Logged out, expired or banned: the registration goes with the login.
			w.opts.Metrics.Pushed(provider, ResultRevoked)
			if err := w.st.DeletePushDevice(ctx, d.User, d.Device, dev.Token); err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			return nil
		}
		if err != nil {
			return err
		}
	}
	online, err := w.online(ctx, d)
	if err != nil {
		return err
	}
	if online {
		// It came online first: it has them, or syncs them now.
		w.opts.Metrics.Pushed(provider, ResultOnline)
		return w.st.DonePushItems(ctx, d.User, d.Device, ids(live), now)
	}
	p := w.pushers[provider]
	if p == nil {
		w.opts.Metrics.Pushed(provider, ResultUnavailable)
		return w.st.RetryPushItems(ctx, d.User, d.Device, ids(live), now+time.Minute.Milliseconds(), attempts)
	}
	n, err := w.notification(ctx, dev, live, now)
	if errors.Is(err, errAllRecalled) {
		w.opts.Metrics.Pushed(provider, ResultRecalled)
		return w.st.DonePushItems(ctx, d.User, d.Device, ids(live), now)
	}
	if err != nil {
		return err
	}
	if err := w.limit.Wait(ctx); err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, w.opts.Timeout)
	err = p.Push(pctx, n)
	cancel()
	now = w.now()
	var retry *RetryError
	switch {
	case err == nil:
		w.opts.Metrics.Pushed(provider, ResultSent)
		for _, it := range live {
			w.opts.Metrics.PushLatency(time.Duration(now-it.Created) * time.Millisecond)
		}
		if err := w.st.DonePushItems(ctx, d.User, d.Device, ids(live), now); err != nil {
			return err
		}
		return w.st.SetLastPush(ctx, d.User, d.Device, now)
	case errors.Is(err, ErrInvalidToken):
		w.opts.Metrics.Pushed(provider, ResultInvalidToken)
		w.opts.Logger.Info("push: the provider refused a device's token; its registration is removed", "provider", provider, "user", d.User, "device", d.Device)
		if err := w.st.DeletePushDevice(ctx, d.User, d.Device, dev.Token); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return nil
	case errors.As(err, &retry):
		w.opts.Metrics.Pushed(provider, ResultRetry)
		delay := max(outbox.Backoff(attempts, 5*time.Minute), retry.After)
		return w.st.RetryPushItems(ctx, d.User, d.Device, ids(live), now+delay.Milliseconds(), attempts+1)
	default:
		w.opts.Metrics.Pushed(provider, ResultFailed)
		w.opts.Logger.Warn("push: the provider refused a notification; dropped", "provider", provider, "user", d.User, "device", d.Device, "err", err)
		return w.st.DonePushItems(ctx, d.User, d.Device, ids(live), now)
	}
}

// online reports whether the device is connected (on any node).
func (w *Worker) online(ctx context.Context, d store.SessionID) (bool, error) {
	devs, err := w.pres.Devices(ctx, d.User)
	if err != nil {
		return false, fmt.Errorf("presence: %w", err)
	}
	for _, x := range devs {
		if x.Device == d.Device {
			return true, nil
		}
	}
	return false, nil
}

// notification is what the device is told of items (pending, oldest first).
func (w *Worker) notification(ctx context.Context, dev store.PushDevice, items []store.PushItem, now int64) (Notification, error) {
	tail := items[max(0, len(items)-50):]
	msgs, err := w.st.GetMessages(ctx, ids(tail))
	if err != nil {
		return Notification{}, fmt.Errorf("read messages: %w", err)
	}
	// A message recalled before its notification went out is not told of
	// (its body, its sender, its being there at all): the notification is
	// for the rest, or, if nothing is left, there is none. A recall (a
	// change record) is told as Recalled, unless its message was still
	// waiting here (never told of, nothing to take back); alone, it goes
	// as a silent notification.
	var recalls []string
	var recall store.Message // the newest recall, for a silent one's conversation
	pendingIDs := make(map[int64]bool, len(items))
	for _, it := range items {
		pendingIDs[it.MsgID] = true
	}
	drop := map[int64]bool{}
	for _, m := range msgs {
		switch {
		case m.Recalled != 0:
			drop[m.ID] = true
		case m.Change != nil:
			drop[m.ID] = true
			if m.Change.Kind == store.ChangeRecall && !pendingIDs[m.Change.Target] {
				recalls = append(recalls, strconv.FormatInt(m.Change.Target, 10))
				recall = m
			}
		}
	}
	if len(drop) > 0 {
		items = slices.DeleteFunc(slices.Clone(items), func(it store.PushItem) bool { return drop[it.MsgID] })
		tail = slices.DeleteFunc(slices.Clone(tail), func(it store.PushItem) bool { return drop[it.MsgID] })
		msgs = slices.DeleteFunc(msgs, func(m store.Message) bool { return drop[m.ID] })
	}
	if len(items) == 0 {
		if len(recalls) == 0 {
			return Notification{}, errAllRecalled
		}
		n := Notification{Device: dev, Silent: true, Recalled: recalls, Conversation: conv(recall, dev.User),
			MessageID: recalls[len(recalls)-1],
			Expires:   time.UnixMilli(recall.TS + w.opts.TTL.Milliseconds())}
		n.CollapseID = collapseID(n.Conversation, dev.Device)
		if b, err := w.badge.Badge(ctx, dev.User); err == nil {
			n.Badge = b
		}
		return n, nil
	}
	latest := items[len(items)-1]
	n := Notification{Device: dev, Count: len(items), MessageID: strconv.FormatInt(latest.MsgID, 10),
		Expires: time.UnixMilli(items[0].Created + w.opts.TTL.Milliseconds())}
	convs := map[string]bool{}
	mention := false
	for _, it := range tail {
		mention = mention || it.Mention
	}
	var last store.Message
	for _, m := range msgs {
		convs[conv(m, dev.User)] = true
		if m.ID == latest.MsgID {
			last = m
		}
	}
	if last.ID == 0 && len(msgs) > 0 {
		last = msgs[len(msgs)-1]
	}
	if last.ID != 0 {
		n.Conversation = conv(last, dev.User)
	}
	n.CollapseID = collapseID(n.Conversation, dev.Device)
	if b, err := w.badge.Badge(ctx, dev.User); err == nil {
		n.Badge = b
	} else {
		w.opts.Logger.Warn("push: badge; sent without it", "err", err)
	}
	n.Title, n.Body = w.preview(ctx, last, len(items), len(convs) > 1, mention)
	n.Recalled = recalls
	return n, nil
}

// errAllRecalled: every message of a notification was recalled.
var errAllRecalled = errors.New("push: every message recalled")

// recalledIDs are the recalled messages among msgs.
func recalledIDs(msgs []store.Message) map[int64]bool {
	var out map[int64]bool
	for _, m := range msgs {
		if m.Recalled != 0 {
			if out == nil {
				out = map[int64]bool{}
			}
			out[m.ID] = true
		}
	}
	return out
}

// conv names m's conversation as user sees it.
func conv(m store.Message, user string) string {
	switch {
	case m.Group != "":
		return store.ConvGroup(m.Group)
	case m.From == user:
		return store.ConvUser(m.To)
	default:
		return store.ConvUser(m.From)
	}
}

// collapseID is the conversation's (APNs takes at most 64 bytes: a long
// one is hashed).
func collapseID(conv, device string) string {
	if conv == "" {
		conv = "d:" + device
	}
	if len(conv) <= 64 {
		return conv
	}
	h := sha256.Sum256([]byte(conv))
	return hex.EncodeToString(h[:16])
}

// preview is the title and body of a notification for count messages, the
// newest last (zero if it is gone), per Options.Preview.
func (w *Worker) preview(ctx context.Context, last store.Message, count int, mixed, mention bool) (title, body string) {
	if w.opts.Preview == PreviewNone || last.ID == 0 {
		if count == 1 {
			return "", "New message"
		}
		return "", strconv.Itoa(count) + " new messages"
	}
	from := w.display(ctx, last.From)
	if mixed {
		return "", strconv.Itoa(count) + " new messages"
	}
	group := ""
	if last.Group != "" {
		group = last.Group
		if g, err := w.st.GetGroup(ctx, last.Group); err == nil && g.Name != "" {
			group = g.Name
		}
	}
	if w.opts.Preview == PreviewFull && count == 1 {
		text := summary(last)
		if group != "" {
			return group, from + ": " + text
		}
		return from, text
	}
	switch {
	case group != "" && mention:
		return group, from + " mentioned you in " + group
	case group != "" && count == 1:
		return group, from + " in " + group
	case group != "":
		return group, strconv.Itoa(count) + " new messages in " + group
	case count == 1:
		return from, from + " sent you a message"
	default:
		return from, from + " sent you " + strconv.Itoa(count) + " messages"
	}
}

// display is user's display name, or its ID.
func (w *Worker) display(ctx context.Context, user string) string {
	if u, err := w.st.GetUser(ctx, user); err == nil && u.Display != "" {
		return u.Display
	}
	return user
}

// summary is a message's text for a full preview: its body cut to 200
// characters, or its type for media.
func summary(m store.Message) string {
	if m.Type != "text" || m.Body == "" {
		return "[" + m.Type + "]"
	}
	b := m.Body
	if utf8.RuneCountInString(b) > 200 {
		r := []rune(b)
		b = string(r[:200]) + "…"
	}
	return b
}

func (w *Worker) outboxDepth() {
	ctx, cancel := w.ctx()
	defer cancel()
	jobs, items, err := w.st.PushDepth(ctx)
	if err != nil {
		return
	}
	w.opts.Metrics.PushOutbox(jobs, items)
}

// sweep deletes items done long enough ago that no job can be expanded
// again into them (a job older than the TTL is not expanded).
func (w *Worker) sweep() {
	ctx, cancel := w.ctx()
	defer cancel()
	if _, err := w.st.SweepPush(ctx, w.now()-(w.opts.TTL+2*w.opts.Lease).Milliseconds()); err != nil {
		w.opts.Logger.Warn("push: sweep done items; retried", "err", err)
	}
}

func ids(items []store.PushItem) []int64 {
	out := make([]int64, len(items))
	for i, it := range items {
		out[i] = it.MsgID
	}
	return out
}

func nonce() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

type nopMetrics struct{}

func (nopMetrics) Pushed(string, string)     {}
func (nopMetrics) PushLatency(time.Duration) {}
func (nopMetrics) PushOutbox(int64, int64)   {}
