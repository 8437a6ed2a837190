package hooks

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/imqtt/imqtt/chat"
	"github.com/imqtt/imqtt/internal/deliver"
	"github.com/imqtt/imqtt/internal/drain"
	"github.com/imqtt/imqtt/internal/metrics"
	imsync "github.com/imqtt/imqtt/sync"
	"github.com/imqtt/imqtt/wire"
)

// The defaults of UplinkConfig (explained at its fields); cmd/imqttd's
// --max-client-requests defaults to DefaultRequestsPerClient.
const (
	DefaultUplinkWorkers     = 64
	DefaultRequestsPerClient = 4
)

// UplinkConfig configures the Uplink hook.
type UplinkConfig struct {
	Chat Core // *chat.Service
	// Sender delivers the answers (acks, errors, sync batches, heads) to
	// the asking device (the delivery path, internal/deliver).
	Sender deliver.Sender
	// Drain is the node's drain state: a send of a client it quiesced is
	// refused (unavailable: resend after reconnecting, to another node),
	// and it is told of the sends in flight so that Quiesce can wait.
	Drain   *drain.State
	Metrics *metrics.Metrics
	Logger  *slog.Logger
	Workers int // concurrent sync and read requests; default 64
	// PerClient bounds one client's sync and read requests in flight; more
	// are answered busy, so one client cannot hold the shared workers.
	// Default 4: a client syncs one batch at a time, and reads as its user
	// opens conversations.
	PerClient int
}

// Uplink consumes what clients publish to im/send, im/sync and im/read. These
// publishes are never routed as MQTT messages: OnPublish answers
// CodeSuccessIgnore, so mochi PUBACKs them and delivers them to nobody. The
// IM-level answer (ack, error, sync batches) comes on the device topic.
type Uplink struct {
	mqtt.HookBase
	cfg     UplinkConfig
	workers chan struct{} // bounds sync and read requests in flight

	mu       sync.Mutex
	requests map[string]int // client ID -> sync and read requests not yet done
}

// ID names the hook.
func (h *Uplink) ID() string { return "imqtt-uplink" }

// Provides lists the events Uplink handles.
func (h *Uplink) Provides(b byte) bool { return b == mqtt.OnPublish || b == mqtt.OnPublishDropped }

// Init checks the config.
func (h *Uplink) Init(config any) error {
	cfg, ok := config.(UplinkConfig)
	if !ok || cfg.Chat == nil || cfg.Sender == nil || cfg.Drain == nil || cfg.Metrics == nil {
		return errors.New("uplink hook: UplinkConfig with Chat, Sender, Drain and Metrics required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultUplinkWorkers
	}
	if cfg.PerClient <= 0 {
		cfg.PerClient = DefaultRequestsPerClient
	}
	h.cfg, h.workers = cfg, make(chan struct{}, cfg.Workers)
	h.requests = map[string]int{}
	return nil
}

// OnPublish dispatches an uplink publish. Sends go to the batcher and answer
// later; syncs and reads run on a bounded worker pool (blocking this client's
// reads, and only this client's, while the pool is full), at most PerClient
// of them per client at a time: one more is answered busy.
func (h *Uplink) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil // the server's own deliveries
	}
	user, device, ok := wire.SplitClientID(cl.ID)
	if !ok {
		return pk, packets.ErrRejectPacket // auth guarantees this never happens
	}
	reply := deliver.Device(user, device)
	h.cfg.Metrics.PublishedIn(pk.TopicName)
	switch pk.TopicName {
	case wire.TopicSend:
		req, e := h.decodeSend(pk.Payload)
		if e != nil {
			h.replyError(reply, "", e.Code, e.Message)
			break
		}
		if !h.cfg.Drain.Admit(cl.ID) {
			h.replyError(reply, req.CMID, wire.CodeUnavailable, "this node is draining; resend with the same cmid after reconnecting")
			break
		}
		id, cmid := cl.ID, req.CMID
		// Submit bounds each of its own steps (the limiter 1 s, the media
		// check 5 s, the wait for queue room QueueWait): no timer of ours
		// on every publish.
		h.cfg.Chat.Submit(context.Background(), chat.Sender{User: user, Device: device}, req, func(r chat.Result) {
			h.cfg.Drain.Answered(id)
			if r.Err != nil { // chat counted it (metrics.ErrorReplied)
				h.reply(reply, h.errorEvent(reply, cmid, "", r.Err))
				return
			}
			h.reply(reply, r.Ack)
		})
	case wire.TopicSync:
		req, e := h.decodeSync(pk.Payload)
		if e != nil {
			h.replyError(reply, "", e.Code, e.Message)
			break
		}
		h.work(cl.ID, reply, req.Group, func(ctx context.Context) { h.sync(ctx, user, reply, req) })
	case wire.TopicRead:
		req, e := h.decodeRead(pk.Payload)
		if e != nil {
			h.replyError(reply, "", e.Code, e.Message)
			break
		}
		h.work(cl.ID, reply, "", func(ctx context.Context) {
			if _, err := h.cfg.Chat.Read(ctx, user, req); err != nil {
				h.replyErr(reply, "", err)
			}
		})
	case wire.TopicRecall, wire.TopicEdit, wire.TopicReact, wire.TopicDelete:
		h.change(cl.ID, chat.Sender{User: user, Device: device}, reply, pk.TopicName, pk.Payload)
	case wire.TopicTyping:
		var req wire.Typing
		if e, limit := wire.DecodeRequest("typing", pk.Payload, &req); e != nil {
			h.refused(limit)
			h.replyError(reply, "", e.Code, e.Message)
			break
		}
		// The gate costs no I/O: a flood is dropped here, on this client's
		// read goroutine. The relay reads (the peer, blocks, the group, the
		// send rate: Redis in scale-out), so it runs on a worker as sync
		// and read do; past the client's requests in flight the hint is
		// dropped, not answered busy.
		if ok, err := h.cfg.Chat.AdmitTyping(user, &req); err != nil {
			h.replyErr(reply, "", err)
			break
		} else if !ok {
			break
		}
		h.run(cl.ID, func(ctx context.Context) {
			ctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			if _, err := h.cfg.Chat.RelayTyping(ctx, user, req); err != nil {
				h.replyErr(reply, "", err)
			}
		}, func() { h.cfg.Metrics.Refused("typing_in_flight") })
	default:
		// The ACL (hooks.Allowed, checked by mochi before OnPublish) lets
		// clients publish only the uplink topics: never reached.
		return pk, packets.ErrRejectPacket
	}
	return pk, packets.CodeSuccessIgnore
}

// change takes a change of a stored message (im/recall, im/edit, im/react,
// im/delete) the way a send is taken: decoded, admitted unless draining,
// answered with its ack or error on the device topic.
func (h *Uplink) change(id string, from chat.Sender, reply deliver.To, topic string, payload []byte) {
	var (
		cmid   string
		submit func(done func(chat.Result))
		e      *wire.Error
		limit  string
		ctx    = context.Background() // each step bounds itself, as Submit's
	)
	switch topic {
	case wire.TopicRecall:
		var req wire.Recall
		e, limit = wire.DecodeRequest("recall", payload, &req)
		cmid, submit = req.CMID, func(done func(chat.Result)) { h.cfg.Chat.Recall(ctx, from, req, done) }
	case wire.TopicEdit:
		var req wire.Edit
		e, limit = wire.DecodeRequest("edit", payload, &req)
		cmid = req.CMID
		submit = func(done func(chat.Result)) {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second) // Edit reads the message
			defer cancel()
			h.cfg.Chat.Edit(ctx, from, req, done)
		}
	case wire.TopicReact:
		var req wire.React
		e, limit = wire.DecodeRequest("react", payload, &req)
		cmid, submit = req.CMID, func(done func(chat.Result)) { h.cfg.Chat.React(ctx, from, req, done) }
	case wire.TopicDelete:
		var req wire.Delete
		e, limit = wire.DecodeRequest("delete", payload, &req)
		cmid, submit = req.CMID, func(done func(chat.Result)) { h.cfg.Chat.Delete(ctx, from, req, done) }
	}
	if e != nil {
		h.refused(limit)
		h.replyError(reply, "", e.Code, e.Message)
		return
	}
	if !h.cfg.Drain.Admit(id) {
		h.replyError(reply, cmid, wire.CodeUnavailable, "this node is draining; resend with the same cmid after reconnecting")
		return
	}
	submit(func(r chat.Result) {
		h.cfg.Drain.Answered(id)
		if r.Err != nil {
			h.reply(reply, h.errorEvent(reply, cmid, "", r.Err))
			return
		}
		h.reply(reply, r.Ack)
	})
}

// decodeSend, decodeSync and decodeRead decode an uplink payload, and for
// sync and read check what needs no I/O (a send's fields are checked by
// chat.Submit, which the HTTP path shares), counting a refusal by a limit.
// A refusal is an error event to reply with; nothing of it reaches the store.
func (h *Uplink) decodeSend(payload []byte) (wire.Send, *wire.Error) {
	req, e, limit := DecodeSend(payload)
	h.refused(limit)
	return req, e
}

func (h *Uplink) decodeSync(payload []byte) (wire.SyncRequest, *wire.Error) {
	req, e, limit := imsync.DecodeRequest(payload)
	h.refused(limit)
	return req, e
}

func (h *Uplink) decodeRead(payload []byte) (wire.Read, *wire.Error) {
	req, e, limit := DecodeRead(payload)
	h.refused(limit)
	return req, e
}

func (h *Uplink) refused(limit string) {
	if limit != "" {
		h.cfg.Metrics.Refused(limit)
	}
}

// DecodeSend decodes an im/send payload as wire.Unmarshal does, the common
// shape by decodeSendFast, the rest by wire.Unmarshal. The payload as a whole nests at
// most wire.MaxDepth deep; chat.CheckSend then bounds each field (meta at
// wire.MaxMeta bytes and wire.MaxMetaDepth levels). A refusal by a limit
// also names it for metrics.Refused.
func DecodeSend(payload []byte) (req wire.Send, e *wire.Error, limit string) {
	if req, ok := decodeSendFast(payload); ok {
		return req, nil, "" // what encoding/json would decode (senddecode.go)
	}
	if e, limit := wire.DecodeRequest("send", payload, &req); e != nil {
		return wire.Send{}, e, limit
	}
	return req, nil, ""
}

// DecodeRead decodes an im/read payload and checks it (chat.CheckRead).
func DecodeRead(payload []byte) (req wire.Read, e *wire.Error, limit string) {
	if e, limit := wire.DecodeRequest("read", payload, &req); e != nil {
		return wire.Read{}, e, limit
	}
	if err := chat.CheckRead(req); err != nil {
		return req, chat.WireError(err, ""), ""
	}
	return req, nil, ""
}

// OnPublishDropped counts deliveries lost to a full client queue; the client
// gets them back by sync.
func (h *Uplink) OnPublishDropped(cl *mqtt.Client, pk packets.Packet) {
	h.cfg.Metrics.Dropped.Inc()
}

func (h *Uplink) sync(ctx context.Context, user string, reply deliver.To, req wire.SyncRequest) {
	if req.Heads {
		heads, err := h.cfg.Chat.GroupHeads(ctx, user)
		if err != nil {
			h.replyErr(reply, "", err)
			return
		}
		h.reply(reply, heads)
		return
	}
	err := h.cfg.Chat.Sync(ctx, user, req, func(b wire.Sync) error {
		payload, err := imsync.Encode(b, imsync.Encoding{Compress: req.Compress})
		if err != nil {
			return err
		}
		h.cfg.Metrics.SyncBatchMQTT()
		return h.cfg.Sender.SendEncoded(reply, b, payload)
	})
	if err != nil {
		h.replyErr(reply, req.Group, err)
	}
}

// work runs f on the worker pool for clientID, or answers busy on reply if
// the client already has PerClient requests there (naming group, the group
// of a group sync, so that the client knows which request to send again).
func (h *Uplink) work(clientID string, reply deliver.To, group string, f func(ctx context.Context)) {
	h.run(clientID, f, func() {
		h.cfg.Metrics.Refused("client_requests")
		h.sendError(reply, &wire.Error{Kind: wire.KindError, Group: group, Code: wire.CodeBusy,
			Message: "too many sync and read requests in flight; send the next after an answer"})
	})
}

// run runs f on a worker unless the client has PerClient requests in
// flight already: then full is called instead.
func (h *Uplink) run(clientID string, f func(ctx context.Context), full func()) {
	h.mu.Lock()
	busy := h.requests[clientID] >= h.cfg.PerClient
	if !busy {
		h.requests[clientID]++
	}
	h.mu.Unlock()
	if busy {
		full()
		return
	}
	h.workers <- struct{}{}
	go func() {
		defer func() {
			<-h.workers
			h.mu.Lock()
			if h.requests[clientID]--; h.requests[clientID] <= 0 {
				delete(h.requests, clientID)
			}
			h.mu.Unlock()
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		f(ctx)
	}()
}

// replyErr sends an error of the core as an error event. group names the
// group of a group sync.
func (h *Uplink) replyErr(to deliver.To, group string, err error) {
	h.sendError(to, h.errorEvent(to, "", group, err))
}

// errorEvent is the error event that tells err to the device to: a
// refusal by its code and message (chat.Describe), anything else (a store
// failure), logged, as unavailable.
func (h *Uplink) errorEvent(to deliver.To, cmid, group string, err error) *wire.Error {
	code, msg, ok := chat.Describe(err)
	if !ok {
		h.cfg.Logger.Error("uplink request", "user", to.User, "device", to.Device, "err", err)
		msg = "store unavailable; try again"
	}
	return &wire.Error{Kind: wire.KindError, CMID: cmid, Group: group, Code: code, Message: msg}
}

func (h *Uplink) replyError(to deliver.To, cmid, code, msg string) {
	h.sendError(to, &wire.Error{Kind: wire.KindError, CMID: cmid, Code: code, Message: msg})
}

// sendError counts an error event and sends it.
func (h *Uplink) sendError(to deliver.To, e *wire.Error) {
	h.cfg.Metrics.ErrorReplied(e.Code, wire.ClientID(to.User, to.Device), e.Message)
	h.reply(to, e)
}

// reply sends an answer to the asking device; the path logs a failure.
func (h *Uplink) reply(to deliver.To, ev wire.Event) {
	_ = h.cfg.Sender.Send(to, ev)
}
