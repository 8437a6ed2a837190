// Package chat is the IM core that the MQTT hooks and the HTTP API share:
// the send pipeline (validate → dedupe → id and versions → group commit →
// ack → inbox events), read positions and unread counts, the conversation
// list, history and sync.
//
// Where a message goes:
//
//	Submit (hooks/uplink.go, api) ─► queue ─► batcher.run: dedupe, snowflake id,
//	versions, store.Commit (one durable write for many messages)
//	─► dispatcher: ack to the sending device, msg event to both users' inboxes
//	through the delivery path (internal/deliver), which marshals it once and
//	takes it to this node's clients and the other nodes'.
package chat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bwmarrin/snowflake"
	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/imqtt/imqtt/internal/deliver"
	"github.com/imqtt/imqtt/internal/metrics"
	"github.com/imqtt/imqtt/state"
	"github.com/imqtt/imqtt/store"
	imsync "github.com/imqtt/imqtt/sync"
	"github.com/imqtt/imqtt/wire"
)

// Remote carries group traffic to the other nodes of a cluster
// (scale-out mode; nil on a single node); events for a user reach them
// through the delivery path. Its methods queue and return at once: a remote
// delivery that cannot be made is dropped, and the device recovers it by
// sync, as from a full client queue.
type Remote interface {
	// Group hands a committed group message to the other nodes' fan-out.
	Group(m store.Message)
	// Member tells the other nodes that user joined or left group, so their
	// fan-out index follows.
	Member(group, user string, joined bool)
	// Typing hands a group's typing event to the other nodes, for their
	// members online (TypingLocal).
	Typing(group string, ev wire.TypingEvent)
}

// Media vouches for the media a send refers to. Attach is called on the
// sender's behalf before the send is queued: it refuses media the sender
// may not read, since a message grants its media to its recipients, with
// a *wire.Error (the core turns it into its sentinel of the same code),
// and may return small media to carry inline in the message.
type Media interface {
	Attach(ctx context.Context, user, media string) (*store.Inline, error)
}

// The defaults of Options, taken by its zero values; cmd/imqttd's flags
// default to the same constants.
const (
	DefaultMaxBody          = 64 << 10         // bytes of a message's body+meta
	DefaultMaxBatch         = 1024             // messages per store commit
	DefaultQueueLen         = 16384            // sends waiting for the batcher
	DefaultQueueWait        = 2 * time.Second  // how long Submit waits for queue room
	DefaultCommitWait       = 10 * time.Second // a commit's deadline
	DefaultMaxGroupMembers  = 10_000           // members of one group
	DefaultMaxGroupsPerUser = 1000             // groups one user is in
	DefaultMaxConvSettings  = 2000             // conversations one user may set (mute, pin)
	DefaultReadTick         = 10 * time.Millisecond
	// DefaultBurstFactor is SendBurst's default as a multiple of SendRate.
	DefaultBurstFactor = 4
)

// Options configure a Service; zero values take the defaults above.
type Options struct {
	Node       int64         // snowflake node number, 0–1023
	MaxBody    int           // bytes of body+meta; default DefaultMaxBody (64 KiB)
	MaxBatch   int           // messages per store commit; default 1024
	QueueLen   int           // sends waiting for the batcher; default 16384
	QueueWait  time.Duration // how long Submit waits for queue room; default 2s
	CommitWait time.Duration // a commit's deadline; default 10s
	Sync       imsync.Options
	Media      Media  // nil: sends that refer to media are refused
	Remote     Remote // nil on a single node
	// SendRate bounds each user's sends per second, over all its devices
	// (and all nodes, with a shared Limiter), after a burst of SendBurst
	// (default 4×SendRate); 0: no bound. Past it a send is refused with
	// rate_limited, to be resent later.
	SendRate  int64
	SendBurst int
	Limiter   state.Limiter
	// MaxGroupMembers bounds a group; default 10,000.
	MaxGroupMembers int
	// MaxGroupsPerUser bounds the groups one user is in; default 1,000.
	// Anyone may add a user to a group, so without it a stranger could
	// grow a user's heads answer and its devices' cursors without end.
	MaxGroupsPerUser int
	// MaxConvSettings bounds the conversations one user has settings of;
	// default 2,000. A peer is any user, so without it one account could
	// write a row per account and make every list of its read them all.
	MaxConvSettings int
	// ContactRate bounds each user's contact requests and blocks a minute
	// (default DefaultContactRate); MaxContacts and MaxBlocks a user's
	// contacts and blocks (defaults DefaultMaxContacts, DefaultMaxBlocks).
	ContactRate int
	MaxContacts int
	MaxBlocks   int
	// ReadTick is how long group read positions are gathered before one
	// merged write; default 10ms.
	ReadTick time.Duration
	// Webhooks, when set, turns the asynchronous webhook events on: every
	// stored message is committed with its message.after_send event
	// (store.Batch.Webhooks), and group changes are told (group.changed).
	Webhooks Webhooks
	// Pushed, when set, turns offline push on: every stored message is
	// committed with a push job (store.Batch.PushJobs), and Pushed is
	// called after each commit that wrote some (it must not block: the
	// push worker's wake-up).
	Pushed func()
	// PushTo, when set, reports without I/O whether user has a push
	// registration: a 1:1 message to a user without one is committed
	// without a push job. nil: every message gets one (a store shared by
	// nodes cannot say exactly and cheaply).
	PushTo func(user string) bool
	// Filter, when set, checks the body of every text send before it is
	// queued (the content filter, --filter-words): a send it refuses is
	// answered with its error (wrapping ErrRejected), a body it masks is
	// stored masked.
	Filter Filter
	// BeforeSend, when set, asks the operator's backend about every send
	// before it is queued (the message.before_send webhook): on
	// goroutines of its own, at most HookConcurrency at once (default
	// 64), each for at most HookTimeout (default 2s), keeping each
	// sender's order in each conversation (moderate.go). With no verdict
	// HookFail decides: FailOpen (default) stores the send as sent,
	// FailClosed refuses it unavailable.
	BeforeSend      BeforeSend
	HookTimeout     time.Duration
	HookConcurrency int
	HookFail        string
	// RecallWindow is how long after its send a message may be recalled,
	// EditWindow edited; defaults DefaultRecallWindow (24h) and
	// DefaultEditWindow (48h); negative: no limit.
	RecallWindow time.Duration
	EditWindow   time.Duration
	// MaxTypingGroup: typing in a group of more members than this is not
	// relayed (one member typing would cost a publish per member each
	// second); default DefaultMaxTypingGroup.
	MaxTypingGroup int
	// PresenceShown, if set, hears that a user changed whom it shows its
	// presence to (shown false: nobody), for its contacts to see it go
	// offline or come back (internal/presence.Service.Shown). It must not
	// block.
	PresenceShown func(user string, shown bool)
	Logger        *slog.Logger
	Metrics       *metrics.Metrics
}

func (o *Options) fill() {
	if o.MaxBody <= 0 {
		o.MaxBody = DefaultMaxBody
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	if o.QueueLen <= 0 {
		o.QueueLen = DefaultQueueLen
	}
	if o.QueueWait <= 0 {
		o.QueueWait = DefaultQueueWait
	}
	if o.CommitWait <= 0 {
		o.CommitWait = DefaultCommitWait
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MaxGroupMembers <= 0 {
		o.MaxGroupMembers = DefaultMaxGroupMembers
	}
	if o.MaxGroupsPerUser <= 0 {
		o.MaxGroupsPerUser = DefaultMaxGroupsPerUser
	}
	if o.MaxConvSettings <= 0 {
		o.MaxConvSettings = DefaultMaxConvSettings
	}
	if o.ReadTick <= 0 {
		o.ReadTick = DefaultReadTick
	}
	if o.HookTimeout <= 0 {
		o.HookTimeout = DefaultHookTimeout
	}
	if o.HookConcurrency <= 0 {
		o.HookConcurrency = DefaultHookConcurrency
	}
	if o.HookFail == "" {
		o.HookFail = DefaultHookFail
	}
	if o.RecallWindow == 0 {
		o.RecallWindow = DefaultRecallWindow
	}
	if o.EditWindow == 0 {
		o.EditWindow = DefaultEditWindow
	}
	if o.MaxTypingGroup <= 0 {
		o.MaxTypingGroup = DefaultMaxTypingGroup
	}
	if o.Metrics == nil {
		o.Metrics = metrics.New()
	}
	if o.SendBurst <= 0 {
		o.SendBurst = int(min(DefaultBurstFactor*o.SendRate, 1<<30))
	}
}

// Sender identifies where a send came from.
type Sender struct {
	User   string
	Device string
	// Server marks a send of the server API (chat/server.go): not bound by
	// SendRate, and as SystemUser sent without membership or an inbox.
	Server bool
}

// ClientID is the sender's MQTT client ID, "{user}/{device}", as the
// operator log names clients.
func (f Sender) ClientID() string { return wire.ClientID(f.User, f.Device) }

// Result is the outcome of a send: an Ack, or an Err to report: a refusal
// (one of the sentinels, errors.go), told to the device by Describe.
type Result struct {
	Ack wire.Ack
	Err error
}

// Service is the IM core. Create it with New, then Start; Close drains it.
type Service struct {
	st       Store
	versions state.Versions
	out      deliver.Sender
	ids      atomic.Pointer[snowflake.Node]
	syncer   *imsync.Syncer
	opts     Options
	log      *slog.Logger
	m        *metrics.Metrics

	queue    chan *sendOp
	mod      *moderator // nil without Options.BeforeSend
	dispatch chan []*sendOp
	known    *lru.Cache[string, int64] // user ID -> unix ns: users known to exist, and since when (known.go)
	fan      *fanout
	reads    *readMerger
	typing   *typingGate
	fanDone  chan struct{}

	mu       sync.RWMutex // guards closing against Submit's send on queue
	closing  bool
	stopping chan struct{} // closed when Close begins: wakes Submits waiting for room
	stopOnce sync.Once
	done     chan struct{} // closed when the dispatcher has finished
}

// New returns a Service. st is the source of truth, versions hands out
// versions, out delivers events (to this node's clients and, for a user's
// events, the other nodes').
func New(st Store, versions state.Versions, out deliver.Sender, opts Options) (*Service, error) {
	opts.fill()
	s := &Service{
		st: st, versions: versions, out: out, opts: opts,
		syncer: imsync.New(st, opts.Sync), log: opts.Logger, m: opts.Metrics,
		queue:    make(chan *sendOp, opts.QueueLen),
		dispatch: make(chan []*sendOp, 64),
		done:     make(chan struct{}),
		fanDone:  make(chan struct{}),
		stopping: make(chan struct{}),
		reads:    newReadMerger(st, opts.ReadTick),
		typing:   newTypingGate(),
		known:    newKnown(),
	}
	s.fan = newFanout(s)
	if opts.BeforeSend != nil {
		s.mod = newModerator(s, opts.BeforeSend)
	}
	if err := s.SetNode(opts.Node); err != nil {
		return nil, err
	}
	return s, nil
}

// SetNode changes the snowflake node number of the IDs this service gives
// from now on: in scale-out a node leases its number, and takes another if
// its lease was lost to another node.
func (s *Service) SetNode(n int64) error {
	ids, err := snowflake.NewNode(n)
	if err != nil {
		return fmt.Errorf("snowflake node %d: %w", n, err)
	}
	s.ids.Store(ids)
	return nil
}

// Start runs the batcher and the dispatcher.
func (s *Service) Start() {
	go s.runBatcher()
	go s.runDispatcher()
	go s.fan.run(s.fanDone)
	go s.reads.run()
}

// Close stops accepting sends, commits and dispatches every send already
// accepted, and returns when that is done or ctx ends. Close the store after.
func (s *Service) Close(ctx context.Context) error {
	// First wake every Submit waiting for queue room (under the read lock):
	// the write lock below then waits for nothing slow, and the Submits
	// and fan-outs queued behind it are not held for QueueWait.
	s.stopOnce.Do(func() { close(s.stopping) })
	if s.mod != nil {
		// Sends in the hook are refused unavailable; those past it are
		// in the queue, which is drained below.
		if err := s.mod.close(ctx); err != nil {
			return fmt.Errorf("drain sends in before_send: %w", err)
		}
	}
	s.mu.Lock()
	if !s.closing {
		s.closing = true
		close(s.queue)
		close(s.reads.stop)
		close(s.fan.stop)
	}
	s.mu.Unlock()
	for _, done := range []chan struct{}{s.done, s.fanDone} {
		select {
		case <-done:
		case <-ctx.Done():
			return fmt.Errorf("drain sends: %w", ctx.Err())
		}
	}
	return nil
}

// Filter is the content filter's seam (internal/filter implements it).
type Filter interface {
	// Check returns a text body as it is to be stored (unchanged, or with
	// what it matched masked), or a refusal wrapping ErrRejected. It does
	// no I/O: it runs on the sending connection's goroutine.
	Check(body string) (string, error)
}

// Submit validates req and queues it for the batcher. done is called exactly
// once: with an error at once if req is invalid or the server cannot take it,
// else from the dispatcher after the durable write (the ack) or its failure.
// Submit blocks on the rate limiter and the media check, each bounded by
// ctx, and while the queue is full, for at most QueueWait or until ctx
// ends; ctx ending there is ErrBusy, like a queue that stayed full. ctx is
// not kept: the durable write has its own deadline (CommitWait).
func (s *Service) Submit(ctx context.Context, from Sender, req wire.Send, done func(Result)) {
	start := time.Now()
	err := s.validate(&req)
	if err != nil {
		s.fail(from, done, err)
		return
	}
	if !from.Server { // the server API has its own bound (its key's rate)
		if err := s.limit(ctx, from.User); err != nil {
			s.fail(from, done, err)
			return
		}
	}
	if req.Type == "text" {
		if req.Body, err = s.filtered(from, req.Body); err != nil {
			s.fail(from, done, err)
			return
		}
	}
	op := &sendOp{from: from, req: req, done: done, start: start}
	if req.ReplyTo != "" {
		op.replyTo, _ = strconv.ParseInt(req.ReplyTo, 10, 64) // CheckSend said it is one
	}
	if req.Media != "" {
		if op.inline, err = s.attach(ctx, from.User, req.Media); err != nil {
			s.fail(from, done, err)
			return
		}
	}
	s.pass(ctx, op)
}

// filtered is a text body as the content filter has it stored, or its
// refusal. The operator's backend (the server API) is neither filtered
// nor asked about its own sends.
func (s *Service) filtered(from Sender, body string) (string, error) {
	if s.opts.Filter == nil || from.Server {
		return body, nil
	}
	return s.opts.Filter.Check(body)
}

// pass hands a checked op on: to the before_send stage when it is on
// (not for the server API's own), else to the queue.
func (s *Service) pass(ctx context.Context, op *sendOp) {
	if s.mod != nil && !op.from.Server {
		s.mod.submit(op)
		return
	}
	s.enqueue(ctx, op)
}

// enqueue hands op to the batcher, waiting for room for at most QueueWait
// or until ctx ends (told busy), or answers it unavailable if the service
// is closing.
func (s *Service) enqueue(ctx context.Context, op *sendOp) {
	from, done := op.from, op.done
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closing {
		s.fail(from, done, refuse(ErrUnavailable, "server is shutting down; resend to another node"))
		return
	}
	select {
	case s.queue <- op:
		return
	default:
	}
	t := time.NewTimer(s.opts.QueueWait)
	defer t.Stop()
	select {
	case s.queue <- op:
	case <-s.stopping:
		s.fail(from, done, refuse(ErrUnavailable, "server is shutting down; resend to another node"))
	case <-t.C:
		s.fail(from, done, refuse(ErrBusy, "send queue full; resend later with the same cmid"))
	case <-ctx.Done():
		s.fail(from, done, refuse(ErrBusy, "send queue full; resend later with the same cmid"))
	}
}

// Send submits req and waits for its result (the HTTP path).
func (s *Service) Send(ctx context.Context, from Sender, req wire.Send) (wire.Ack, error) {
	return Wait(ctx, func(done func(Result)) { s.Submit(ctx, from, req, done) })
}

// fail counts a refused send of from's, records it in the operator log
// under from's client ID, and reports it to done.
func (s *Service) fail(from Sender, done func(Result), err error) {
	code, msg, _ := Describe(err)
	s.m.ErrorReplied(code, from.ClientID(), msg)
	done(Result{Err: err})
}

// validate checks everything that needs no I/O, counts a refusal by a size
// or depth limit, and folds to and group to their canonical IDs
// (wire.NormUser): a send to "Alice" reaches alice.
func (s *Service) validate(req *wire.Send) error {
	if to, ok := wire.NormUser(req.To); ok {
		req.To = to
	}
	if g, ok := wire.NormUser(req.Group); ok {
		req.Group = g
	}
	e, limit := CheckSend(req, s.opts.MaxBody)
	if limit != "" {
		s.m.Refused(limit)
	}
	return e
}

// Bounds of a send's fields besides body and meta (to and group are IDs,
// bounded by docs/protocol.md#identity). A media ID is "m-" and 26 base32 letters: 64 leaves room for
// another store's IDs and none for a payload hidden in it.
const (
	MaxCMID    = 128
	MaxMediaID = 64
)

// CheckSend checks everything in a send that needs no I/O: required fields,
// their sizes, meta (absent, null, or a JSON object of at most
// wire.MaxMeta bytes nested at most wire.MaxMetaDepth deep; null becomes
// absent) and mentions (a group's only, at most wire.MaxMentions user IDs
// or wire.MentionAll, folded to canonical IDs). maxBody bounds body, meta and media together. A refusal by a
// size or depth limit also names the limit for metrics.Refused; other
// faults name none.
func CheckSend(req *wire.Send, maxBody int) (err error, limit string) {
	if string(req.Meta) == "null" {
		req.Meta = nil
	}
	switch {
	case req.CMID == "":
		return refuse(ErrMissingCMID, "cmid is required (1-128 bytes)"), ""
	case len(req.CMID) > MaxCMID:
		return refuse(ErrMissingCMID, "cmid over "+strconv.Itoa(MaxCMID)+" bytes"), "field_size"
	case req.To == "" && req.Group == "":
		return refuse(ErrMissingTo, "to or group is required"), ""
	case req.To != "" && req.Group != "":
		return refuse(ErrBadRequest, "to and group are exclusive"), ""
	case req.Group != "" && !wire.ValidUser(req.Group):
		return badGroup(), ""
	case !wire.MessageTypes[req.Type]:
		return refuse(ErrBadType, "type must be one of text, image, audio, video, file, custom"), ""
	case len(req.Media) > MaxMediaID:
		return refuse(ErrBadRequest, "media must be a media id of at most "+strconv.Itoa(MaxMediaID)+" bytes"), "field_size"
	case len(req.Meta) > wire.MaxMeta:
		return refuse(ErrTooLarge, "meta over "+strconv.Itoa(wire.MaxMeta)+" bytes"), "meta_size"
	case len(req.Body)+len(req.Meta)+len(req.Media) > maxBody:
		return refuse(ErrTooLarge, "body over "+strconv.Itoa(maxBody)+" bytes"), "message_size"
	case req.Group == "" && !wire.ValidUser(req.To):
		return refuse(ErrNoSuchUser, "no such user"), ""
	case req.Edit != "":
		return refuse(ErrBadRequest, "edit is not a field of a send (im/edit edits)"), ""
	case req.TTL < 0 || req.TTL > wire.MaxTTL:
		return refuse(ErrBadRequest, "ttl must be 1 to "+strconv.Itoa(wire.MaxTTL)+" seconds"), ""
	case req.TTL != 0 && req.Group != "":
		return refuse(ErrBadRequest, "ttl (burn after reading) is for 1:1 messages only"), ""
	}
	if req.ReplyTo != "" {
		if _, err := parseID("reply_to", req.ReplyTo); err != nil {
			return err, ""
		}
	}
	if err, limit := checkMentions(req); err != nil {
		return err, limit
	}
	if len(req.Meta) > 0 {
		if req.Meta[0] != '{' || !json.Valid(req.Meta) {
			return refuse(ErrBadRequest, "meta must be a JSON object"), ""
		}
		if wire.CheckDepth(req.Meta, wire.MaxMetaDepth) != nil {
			return refuse(ErrBadRequest, "meta nested too deeply: objects and arrays at most "+
				strconv.Itoa(wire.MaxMetaDepth)+" levels"), "json_depth"
		}
	}
	return nil, ""
}

// badGroup refuses a group ID that cannot exist, without echoing it.
func badGroup() error {
	return refuse(ErrNotMember, "group must be the ID of a group you are a member of")
}

// CheckRead checks a read position's fields: a group, or a peer with an
// optional message ID.
func CheckRead(req wire.Read) error {
	switch {
	case req.Group != "" && !wire.ValidUser(req.Group):
		return badGroup()
	case req.Group != "":
		return nil
	case !wire.ValidUser(req.Peer):
		return refuse(ErrBadRequest, "peer is required")
	case req.Upto == "":
		return nil
	}
	if upto, err := strconv.ParseInt(req.Upto, 10, 64); err != nil || upto <= 0 {
		return refuse(ErrBadRequest, "upto must be a message id")
	}
	return nil
}

// limit applies SendRate: a token bucket per user (state.Limiter), so a
// burst (a reconnecting device resending its outbox) passes and a flood
// does not. If the Limiter fails (Redis away) the send is let through: the
// store, not the limiter, decides whether it can be taken. It runs on
// Submit's caller, for MQTT the client's read goroutine: in scale-out, one
// Redis round trip per send before the next packet of that client is read.
func (s *Service) limit(ctx context.Context, user string) error {
	if s.opts.SendRate <= 0 || s.opts.Limiter == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	l := state.Limit{Rate: int(min(s.opts.SendRate, 1<<30)), Per: time.Second, Burst: s.opts.SendBurst}
	d, err := s.opts.Limiter.Allow(ctx, "send:"+user, l)
	if err != nil {
		s.log.Warn("rate limit", "user", user, "err", err)
		return nil
	}
	if !d.OK {
		s.opts.Metrics.Refused("send_rate")
		return refuse(ErrRateLimited, fmt.Sprintf("more than %d sends a second; resend in %v with the same cmid",
			s.opts.SendRate, d.RetryAfter.Round(time.Millisecond)))
	}
	return nil
}

// attach asks the Media policy about a send's media reference.
func (s *Service) attach(ctx context.Context, user, media string) (*store.Inline, error) {
	if s.opts.Media == nil {
		return nil, refuse(ErrBadRequest, "media is not enabled on this server")
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	inline, err := s.opts.Media.Attach(ctx, user, media)
	if err == nil {
		return inline, nil
	}
	var we *wire.Error
	if errors.As(err, &we) {
		return nil, fromWire(we)
	}
	s.log.Error("attach media", "user", user, "media", media, "err", err)
	return nil, refuse(ErrUnavailable, "media store unavailable; resend with the same cmid")
}

// toUser delivers an event to every device of user, here and on the other
// nodes of a cluster. What cannot be delivered the path logs; devices
// recover a message or count by sync.
func (s *Service) toUser(user string, ev wire.Event) {
	_ = s.out.Send(deliver.User(user), ev)
}

// FanOutLocal delivers a group message that another node committed to the
// members connected to this node. It is dropped once Close has begun.
func (s *Service) FanOutLocal(m store.Message) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !s.closing { // fan.in closes only after closing is set
		select {
		case s.fan.in <- m:
		case <-s.stopping: // shutting down: members recover it by sync
		}
	}
}

// MemberLocal follows a membership change made on another node.
func (s *Service) MemberLocal(group, user string, joined bool) {
	if joined {
		s.fan.joined(group, user)
	} else {
		s.fan.left(group, user)
	}
}

// membership applies a membership change made here to this node's
// fan-out index and the other nodes'.
func (s *Service) membership(group, user string, joined bool) {
	s.MemberLocal(group, user, joined)
	if s.opts.Remote != nil {
		s.opts.Remote.Member(group, user, joined)
	}
}
