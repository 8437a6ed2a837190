package chat

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/imqtt/imqtt/wire"
)

// BeforeSend asks the operator's backend about a send before it is stored
// (the message.before_send webhook, docs/integration.md#messagebefore_send;
// internal/webhook/beforesend implements it over HTTP).
type BeforeSend interface {
	// BeforeSend returns the backend's verdict on req, sent by from. An
	// error is no verdict (no answer in time, an error status, an answer
	// that is not a verdict): the fail policy decides (Options.HookFail).
	BeforeSend(ctx context.Context, from Sender, req *wire.Send) (Verdict, error)
}

// The actions of a Verdict.
const (
	ActionAllow  = "allow"
	ActionReject = "reject"
	ActionModify = "modify"
)

// Verdict is the backend's answer on a send.
type Verdict struct {
	Action  string          // ActionAllow, ActionReject or ActionModify
	Message string          // reject: what the sender is told
	Body    *string         // modify: the body to store instead (nil: unchanged)
	Meta    json.RawMessage // modify: the meta to store instead (absent: unchanged; null: none)
}

// The fail policies of before_send (Options.HookFail).
const (
	FailOpen   = "open"   // no verdict: the send is stored as sent
	FailClosed = "closed" // no verdict: the send is refused, unavailable (resend later)
)

// Defaults of the before_send stage.
const (
	DefaultHookTimeout     = 2 * time.Second
	DefaultHookConcurrency = 256 // Little's law: 256 sends at 5 ms of backend latency is 51,000 a second
	DefaultHookFail        = FailOpen
	// maxLaneQueue bounds the sends of one sender in one conversation
	// waiting for the hook: past it the sender is told busy, and no one
	// else waits for them.
	maxLaneQueue = 256
	// maxUserQueue bounds one user's sends waiting for the hook over all
	// their conversations, so that one account writing to many peers
	// cannot take the whole stage (QueueLen) from everyone else.
	maxUserQueue = 1024
)

// moderator runs the sends through the BeforeSend hook off the senders'
// goroutines, many at once (concurrency), keeping each sender's order in
// each conversation: the sends of one lane (sender, conversation) are
// asked about at once, as slots allow, and reach the batcher's queue (or
// their refusal) in the order they came, each waiting for the verdicts of
// those before it. So one sender's throughput is concurrency / latency,
// not 1 / latency. A lane is that pair and not the conversation alone: the
// relative order of two senders' sends that are in flight at once is no
// one's to observe (neither had seen the other's when sending).
type moderator struct {
	s    *Service
	hook BeforeSend

	sem    chan struct{} // held by a send in the hook
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	lanes    map[laneKey]*lane
	waiting  int                      // sends in lanes, in the hook included; at most Options.QueueLen
	perUser  map[string]int           // waiting, by sender; at most maxUserQueue
	userSems map[string]chan struct{} // by sender while it has some waiting: its share of sem
}

type laneKey struct{ user, conv string }

// lane is the sends of one (sender, conversation) not yet passed on, in
// the order they came; flushing is set while one goroutine passes on its
// ready head (one at a time, so the order holds).
type lane struct {
	ops      []*modOp
	flushing bool
}

// modOp is a send in the stage and, once its verdict is in, its outcome.
type modOp struct {
	op    *sendOp
	ready bool
	err   error // nil: to the queue (as modified)
}

func newModerator(s *Service, hook BeforeSend) *moderator {
	ctx, cancel := context.WithCancel(context.Background())
	return &moderator{s: s, hook: hook, sem: make(chan struct{}, s.opts.HookConcurrency),
		ctx: ctx, cancel: cancel, lanes: make(map[laneKey]*lane), perUser: make(map[string]int),
		userSems: make(map[string]chan struct{})}
}

// userShare is how many of the hook's slots one sender's sends may hold at
// once (an eighth, at least one): a sender whose sends hang in a slow
// backend cannot take the slots of everyone else.
func (m *moderator) userShare() int {
	return max(1, cap(m.sem)/8)
}

// submit queues op on its lane and asks about it on a goroutine of its
// own. It does not block: a full stage is told busy, as a full send queue
// is.
func (m *moderator) submit(op *sendOp) {
	key := laneKey{op.from.User, "u:" + op.req.To}
	if op.req.Group != "" {
		key.conv = "g:" + op.req.Group
	}
	m.mu.Lock()
	if m.ctx.Err() != nil {
		m.mu.Unlock()
		m.s.fail(op.from, op.done, refuse(ErrUnavailable, "server is shutting down; resend to another node"))
		return
	}
	l := m.lanes[key]
	if m.waiting >= m.s.opts.QueueLen || m.perUser[key.user] >= maxUserQueue || (l != nil && len(l.ops) >= maxLaneQueue) {
		m.mu.Unlock()
		m.s.m.BeforeSend.QueueFull()
		m.s.fail(op.from, op.done, refuse(ErrBusy, "too many sends waiting for moderation; resend later with the same cmid"))
		return
	}
	m.waiting++
	m.perUser[key.user]++
	us := m.userSems[key.user]
	if us == nil {
		us = make(chan struct{}, m.userShare())
		m.userSems[key.user] = us
	}
	if l == nil {
		l = &lane{}
		m.lanes[key] = l
	}
	mo := &modOp{op: op}
	l.ops = append(l.ops, mo)
	m.wg.Add(1)
	m.mu.Unlock()
	go m.ask(key, l, mo, us)
}

// ask gets mo's verdict, then passes on what of its lane is ready.
func (m *moderator) ask(key laneKey, l *lane, mo *modOp, us chan struct{}) {
	defer m.wg.Done()
	mo.err = m.moderate(mo.op, us)
	m.mu.Lock()
	mo.ready = true
	if l.flushing {
		m.mu.Unlock()
		return // the flusher passes it on when its turn comes
	}
	l.flushing = true
	for len(l.ops) > 0 && l.ops[0].ready {
		head := l.ops[0]
		l.ops[0] = nil
		l.ops = l.ops[1:]
		m.waiting--
		if m.perUser[key.user]--; m.perUser[key.user] == 0 {
			delete(m.perUser, key.user)
			delete(m.userSems, key.user) // none of the user's sends waits on it
		}
		m.mu.Unlock()
		if head.err != nil {
			m.s.fail(head.op.from, head.op.done, head.err)
		} else {
			m.s.enqueue(context.Background(), head.op)
		}
		m.mu.Lock()
	}
	l.flushing = false
	if len(l.ops) == 0 && m.lanes[key] == l {
		delete(m.lanes, key)
	}
	m.mu.Unlock()
}

// moderate asks the hook about op and applies its verdict: nil to queue op
// (as modified), else the refusal to answer it with.
// us is the sender's share of the slots (userShare).
func (m *moderator) moderate(op *sendOp, us chan struct{}) error {
	closing := refuse(ErrUnavailable, "server is shutting down; resend to another node")
	if m.ctx.Err() != nil { // closing: not asked (select below picks at random)
		return closing
	}
	for _, sem := range []chan struct{}{us, m.sem} {
		select {
		case sem <- struct{}{}:
		case <-m.ctx.Done():
			if sem == m.sem {
				<-us
			}
			return closing
		}
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(m.ctx, m.s.opts.HookTimeout)
	v, err := m.hook.BeforeSend(ctx, op.from, &op.req)
	cancel()
	<-m.sem
	<-us
	if err == nil {
		err = m.apply(op, v)
	}
	m.s.m.BeforeSend.HookDone(time.Since(start), hookResult(v, err))
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrRejected):
		return err
	case m.ctx.Err() != nil:
		return closing
	case m.s.opts.HookFail == FailClosed:
		m.s.log.Warn("before_send: no verdict; the send is refused (--webhook-fail closed)", "client", op.from.ClientID(), "err", err)
		return refuse(ErrUnavailable, "the send could not be checked; resend later with the same cmid")
	}
	m.s.log.Warn("before_send: no verdict; the send is stored as sent (--webhook-fail open)", "client", op.from.ClientID(), "err", err)
	return nil
}

// ErrBadVerdict is an answer that is not a verdict, or not one this send
// can take (a modify past the send's limits): no verdict. A BeforeSend
// wraps it for an answer it cannot read.
var ErrBadVerdict = errors.New("before_send: bad verdict")

// apply applies v to op: nil to store it (as modified), a refusal wrapping
// ErrRejected, or an error wrapping ErrBadVerdict (no verdict).
func (m *moderator) apply(op *sendOp, v Verdict) error {
	switch v.Action {
	case ActionAllow:
		return nil
	case ActionReject:
		msg := v.Message
		if msg == "" {
			msg = "refused by the server's moderation"
		}
		return refuse(ErrRejected, msg)
	case ActionModify:
		req := op.req
		if v.Body != nil {
			req.Body = *v.Body
		}
		if v.Meta != nil {
			req.Meta = v.Meta
		}
		if err, _ := CheckSend(&req, m.s.opts.MaxBody); err != nil {
			return errors.Join(ErrBadVerdict, err)
		}
		op.req = req
		return nil
	}
	return ErrBadVerdict
}

// hookResult names an outcome for metrics.
func hookResult(v Verdict, err error) string {
	switch {
	case err == nil:
		return v.Action
	case errors.Is(err, ErrRejected):
		return ActionReject
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, ErrBadVerdict):
		return "bad_verdict"
	}
	return "error"
}

// close ends the stage: sends waiting are refused unavailable, and it
// returns when every lane has ended or ctx has.
func (m *moderator) close(ctx context.Context) error {
	m.mu.Lock()
	m.cancel()
	m.mu.Unlock()
	done := make(chan struct{})
	go func() { m.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
