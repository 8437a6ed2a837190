// Package metrics holds imqtt's Prometheus instruments. One *Metrics is made
// in cmd/imqttd and handed to the packages that count; a nil *Metrics is not
// allowed (tests use New with a fresh registry).
package metrics

import (
	"log/slog"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/imqtt/imqtt/internal/oplog"
	"github.com/imqtt/imqtt/wire"
)

// Metrics are the counters and histograms of one imqttd.
type Metrics struct {
	Registry *prometheus.Registry

	AuthFailures       *prometheus.CounterVec // reason
	ACLDenials         *prometheus.CounterVec // action: publish, subscribe
	Messages           *prometheus.CounterVec // outcome: stored, duplicate, rejected, failed
	Errors             *prometheus.CounterVec // code of error events and replies
	Dropped            prometheus.Counter     // packets mochi dropped on full client queues
	ClusterDropped     prometheus.Counter     // events the cluster bus could not send to other nodes
	BatchSize          prometheus.Histogram   // messages per store commit
	CommitSeconds      prometheus.Histogram   // store commit latency
	AckSeconds         prometheus.Histogram   // submit to ack
	SyncItems          prometheus.Counter     // items sent by sync
	SyncBatches        *prometheus.CounterVec // transport: mqtt, http
	Connections        prometheus.GaugeFunc   // set by the broker via SetConnections
	GroupFanout        prometheus.Histogram   // online members a group message went to on this node
	GroupFanoutSeconds prometheus.Histogram   // one fan-out pass
	Publishes          *prometheus.CounterVec // direction: in (uplink, by topic), out (events, by kind)
	// Refusals counts what the protective limits turned away, by limit
	// (connect_timeout, preauth_per_ip, send_rate, disk_space, ...): one
	// counter for every limit an operator can set, so a dashboard shows
	// them all (README, "Operating safely").
	Refusals *prometheus.CounterVec // limit
	// Persistent sessions (internal/session).
	SessionReplays      prometheus.Counter     // events read from the store and sent to a session
	SessionResyncs      *prometheus.CounterVec // reason: backlog, epoch
	SessionsActive      prometheus.Gauge       // sessions delivering their inbox at QoS 1 on this node
	SessionUnackedGauge prometheus.Gauge       // events sent to sessions and not yet acknowledged
	SessionSaveFailures prometheus.Counter     // batches of positions the store did not take (retried)
	PushTotal           *prometheus.CounterVec // provider, result: notifications and what became of them
	PushSeconds         prometheus.Histogram   // a message's commit to its push's acceptance
	PushOutboxDepth     *prometheus.GaugeVec   // kind: jobs (messages not expanded), items (pushes pending)
	// The webhook outbox (internal/webhook.Outbox).
	WebhookTotal   *prometheus.CounterVec // event, result: webhook events and what became of them
	WebhookSeconds prometheus.Histogram   // an event's ts to its delivery
	WebhookDepth   prometheus.Gauge       // events in the outbox
	BeforeSend                            // the message.before_send webhook (beforesend.go)
	// The content filter (internal/filter).
	FilterTotal   *prometheus.CounterVec // result: pass, masked, rejected
	FilterReloads *prometheus.CounterVec // result: ok, error
	filterResults map[string]prometheus.Counter
	// Recent keeps the last refused logins, denials and error replies for the
	// dashboard; AuthFailed, ACLDenied and ErrorReplied feed it with the counters.
	Recent      *oplog.Recorder
	connections func() float64
	refusals    refusalLog                    // LogRefusals (refusallog.go)
	out         map[string]prometheus.Counter // Publishes{direction="out"} by kind
	in          [4]prometheus.Counter         // Publishes{direction="in"} in inKinds' order
	syncMQTT    prometheus.Counter            // SyncBatches{transport="mqtt"}
}

// New registers every instrument on a fresh registry, with the Go and process collectors.
func New() *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{Registry: r, Recent: oplog.New(500), connections: func() float64 { return 0 }}
	m.AuthFailures = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "imqtt_auth_failures_total",
		Help: "MQTT CONNECT and HTTP logins refused, by reason."}, []string{"reason"})
	m.ACLDenials = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "imqtt_acl_denials_total",
		Help: "Publishes and subscriptions refused by the topic ACL."}, []string{"action"})
	m.Messages = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "imqtt_messages_total",
		Help: "Sends by outcome."}, []string{"outcome"})
	m.Errors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "imqtt_errors_total",
		Help: "Error replies by code."}, []string{"code"})
	m.Dropped = prometheus.NewCounter(prometheus.CounterOpts{Name: "imqtt_dropped_total",
		Help: "Packets dropped because a client's write queue was full (the client recovers them by sync)."})
	m.ClusterDropped = prometheus.NewCounter(prometheus.CounterOpts{Name: "imqtt_cluster_dropped_total",
		Help: "Events not sent to other nodes (bus queue full, Redis down); devices recover them by sync."})
	m.BatchSize = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "imqtt_store_batch_messages",
		Help: "Messages per store commit.", Buckets: prometheus.ExponentialBuckets(1, 2, 11)})
	m.CommitSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "imqtt_store_commit_seconds",
		Help: "Store commit latency.", Buckets: prometheus.ExponentialBuckets(0.0002, 2, 14)})
	m.AckSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "imqtt_ack_seconds",
		Help: "Time from a send's arrival to its ack.", Buckets: prometheus.ExponentialBuckets(0.0002, 2, 14)})
	m.SyncItems = prometheus.NewCounter(prometheus.CounterOpts{Name: "imqtt_sync_items_total",
		Help: "Messages sent by offline sync."})
	m.SyncBatches = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "imqtt_sync_batches_total",
		Help: "Sync reply batches by transport."}, []string{"transport"})
	m.GroupFanout = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "imqtt_group_fanout_members",
		Help: "Online members on this node a group message was delivered to.", Buckets: prometheus.ExponentialBuckets(1, 4, 9)})
	m.GroupFanoutSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "imqtt_group_fanout_seconds",
		Help: "One group fan-out pass.", Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)})
	m.Connections = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "imqtt_connections",
		Help: "MQTT clients connected."}, func() float64 { return m.connections() })
	m.Publishes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "imqtt_publishes_total",
		Help: "MQTT publishes: in = uplink publishes by topic (send, sync, read, other); out = events this node sent, by kind (once per addressed user, whatever the number of devices; an event that reaches another node is counted by the node that sent it)."},
		[]string{"direction", "kind"})
	m.Refusals = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "imqtt_limit_refusals_total",
		Help: "Connections, requests and packets refused by a protective limit, by limit."}, []string{"limit"})
	m.SessionReplays = prometheus.NewCounter(prometheus.CounterOpts{Name: "imqtt_session_replayed_total",
		Help: "Events read from the store and sent to devices with persistent sessions (replay, and catching up after a full window)."})
	m.SessionResyncs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "imqtt_session_resyncs_total",
		Help: "Resync events sent to persistent sessions instead of a replay, by reason (backlog: over --session-replay-max; epoch)."}, []string{"reason"})
	m.SessionsActive = prometheus.NewGauge(prometheus.GaugeOpts{Name: "imqtt_sessions_active",
		Help: "Connected persistent sessions whose inbox is delivered at QoS 1 on this node."})
	m.SessionUnackedGauge = prometheus.NewGauge(prometheus.GaugeOpts{Name: "imqtt_session_unacked",
		Help: "Events sent at QoS 1 to persistent sessions and not yet acknowledged: the lag of their acknowledged positions."})
	m.SessionSaveFailures = prometheus.NewCounter(prometheus.CounterOpts{Name: "imqtt_session_save_failures_total",
		Help: "Writes of persistent sessions' positions the store refused; they are retried."})
	m.PushTotal = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "imqtt_push_total",
		Help: "Offline push notifications by provider and result: sent, retry, invalid_token, failed, expired (past --push-ttl), online (the device came back first), revoked (its login ended), unavailable (provider not configured here)."},
		[]string{"provider", "result"})
	m.PushSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "imqtt_push_latency_seconds",
		Help:    "From a message's commit to the provider's acceptance of its push (collapse window and retries included).",
		Buckets: []float64{.05, .1, .25, .5, 1, 2, 4, 8, 30, 120, 600, 3600}})
	m.PushOutboxDepth = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "imqtt_push_outbox",
		Help: "The push outbox in the store: jobs (stored messages not yet expanded to devices) and items (pushes pending to devices)."}, []string{"kind"})
	m.WebhookTotal = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "imqtt_webhook_total",
		Help: "Asynchronous webhook events by event and result: sent, retry, dropped (refused by the receiver, or no longer in --webhook-events), expired (past --webhook-ttl), overflow (not queued: the queue was full)."},
		[]string{"event", "result"})
	m.WebhookSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "imqtt_webhook_latency_seconds",
		Help:    "From an event's ts to the receiver's 2xx (retries included).",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2, 4, 8, 30, 120, 600, 3600}})
	m.WebhookDepth = prometheus.NewGauge(prometheus.GaugeOpts{Name: "imqtt_webhook_outbox",
		Help: "Events in the webhook outbox (sampled every 10 s)."})
	m.FilterTotal = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "imqtt_filter_total",
		Help: "Text bodies the content filter checked, by result: pass, masked (stored with '*' over what matched), rejected (refused, not stored)."},
		[]string{"result"})
	m.FilterReloads = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "imqtt_filter_reloads_total",
		Help: "Reloads of the content filter's lists (SIGHUP), by result: ok, error (the old lists stay)."}, []string{"result"})
	m.filterResults = map[string]prometheus.Counter{}
	for _, r := range []string{"pass", "masked", "rejected"} {
		m.filterResults[r] = m.FilterTotal.WithLabelValues(r)
	}
	r.MustRegister(m.FilterTotal, m.FilterReloads)
	for _, k := range inKinds {
		m.Publishes.WithLabelValues("in", k)
	}
	for i, k := range inKinds {
		m.in[i] = m.Publishes.WithLabelValues("in", k)
	}
	m.syncMQTT = m.SyncBatches.WithLabelValues("mqtt")
	m.out = make(map[string]prometheus.Counter, len(outKinds))
	for _, k := range outKinds {
		m.out[k] = m.Publishes.WithLabelValues("out", k)
	}
	r.MustRegister(m.AuthFailures, m.ACLDenials, m.Messages, m.Errors, m.Dropped, m.ClusterDropped, m.BatchSize,
		m.CommitSeconds, m.AckSeconds, m.SyncItems, m.SyncBatches, m.Connections, m.GroupFanout, m.GroupFanoutSeconds, m.Publishes, m.Refusals,
		m.SessionReplays, m.SessionResyncs, m.SessionsActive, m.SessionUnackedGauge, m.SessionSaveFailures,
		m.PushTotal, m.PushSeconds, m.PushOutboxDepth,
		m.WebhookTotal, m.WebhookSeconds, m.WebhookDepth,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.BeforeSend.register(r)
	return m
}

// SessionReplayed counts events a persistent session read from the store and sent.
func (m *Metrics) SessionReplayed(n int) { m.SessionReplays.Add(float64(n)) }

// SessionResync counts a resync event sent instead of a replay.
// It is an event sent too (imqtt_publishes_total{direction="out",kind="resync"}).
func (m *Metrics) SessionResync(reason string) {
	m.SessionResyncs.WithLabelValues(reason).Inc()
	m.PublishedOut(wire.KindResync)
}

// SessionActive moves the count of sessions delivering their inbox.
func (m *Metrics) SessionActive(delta int) { m.SessionsActive.Add(float64(delta)) }

// SessionUnacked moves the count of events in flight to sessions.
func (m *Metrics) SessionUnacked(delta int) { m.SessionUnackedGauge.Add(float64(delta)) }

// SessionSaveFailed counts a batch of positions the store refused.
func (m *Metrics) SessionSaveFailed() { m.SessionSaveFailures.Inc() }

// SetConnections names the function that reports the connection count.
func (m *Metrics) SetConnections(f func() float64) { m.connections = f }

// The kind labels of imqtt_publishes_total: a fixed set, so that no client
// can grow the label space.
var (
	inKinds  = []string{"send", "sync", "read", "other"}
	outKinds = append(slices.Clone(wire.EventKinds), "other")
)

// PublishedIn counts an uplink publish by its topic. It runs on every
// client's read goroutine: a switch, no label hashing.
func (m *Metrics) PublishedIn(topic string) {
	k := 3 // other
	switch topic {
	case wire.TopicSend:
		k = 0
	case wire.TopicSync:
		k = 1
	case wire.TopicRead:
		k = 2
	}
	m.in[k].Inc()
}

// SyncBatchMQTT counts a sync batch published over MQTT.
func (m *Metrics) SyncBatchMQTT() { m.syncMQTT.Inc() }

// PublishedOut counts an event the server publishes, by its kind
// (wire.Event's EventKind): a kind outside the fixed set counts as "other".
// It is on every event's path: one map read, no label hashing.
func (m *Metrics) PublishedOut(kind string) {
	c, ok := m.out[kind]
	if !ok {
		c = m.out["other"]
	}
	c.Inc()
}

// AuthFailed counts a refused MQTT CONNECT, HTTP login or token by reason
// and records it among the recent events.
func (m *Metrics) AuthFailed(reason, user, remote, detail string) {
	m.AuthFailures.WithLabelValues(reason).Inc()
	kind := oplog.AuthFailure
	if reason == "banned" {
		kind = oplog.Banned
	}
	m.Recent.Add(oplog.Entry{Kind: kind, Code: reason, User: user, Remote: remote, Detail: detail})
	m.refusals.write(slog.LevelWarn, "auth_"+reason, "reason", reason, "user", user, "remote", remote, "detail", detail)
}

// ACLDenied counts a refused publish or subscription and records it.
func (m *Metrics) ACLDenied(action, client, topic string) {
	m.ACLDenials.WithLabelValues(action).Inc()
	m.Recent.Add(oplog.Entry{Kind: oplog.ACLDenial, Code: action, Client: client, Detail: topic})
	m.refusals.write(slog.LevelInfo, "acl_"+action, "client", client, "topic", topic)
}

// ErrorReplied counts an error reply by code and records it under the
// client ID ("{user}/{device}") it went to, when known.
func (m *Metrics) ErrorReplied(code, client, message string) {
	m.Errors.WithLabelValues(code).Inc()
	m.Recent.Add(oplog.Entry{Kind: oplog.Error, Code: code, Client: client, Detail: message})
}

// Refused counts one refusal by a protective limit. limit is a fixed name
// from the code, never from a client, so the label space stays bounded.
func (m *Metrics) Refused(limit string) {
	m.Refusals.WithLabelValues(limit).Inc()
	m.refusals.write(slog.LevelInfo, "limit_"+limit, "limit", limit)
}

// Pushed counts a push notification's result.
func (m *Metrics) Pushed(provider, result string) {
	m.PushTotal.WithLabelValues(provider, result).Inc()
}

// PushLatency records a message's commit to its push's acceptance.
func (m *Metrics) PushLatency(d time.Duration) { m.PushSeconds.Observe(d.Seconds()) }

// PushOutbox sets the depth of the push outbox.
func (m *Metrics) PushOutbox(jobs, items int64) {
	m.PushOutboxDepth.WithLabelValues("jobs").Set(float64(jobs))
	m.PushOutboxDepth.WithLabelValues("items").Set(float64(items))
}

// Webhook counts an asynchronous webhook event's result.
func (m *Metrics) Webhook(event, result string) { m.WebhookTotal.WithLabelValues(event, result).Inc() }

// WebhookLatency records an event's ts to its delivery.
func (m *Metrics) WebhookLatency(d time.Duration) { m.WebhookSeconds.Observe(d.Seconds()) }

// WebhookOutbox sets the depth of the webhook outbox.
func (m *Metrics) WebhookOutbox(n int64) { m.WebhookDepth.Set(float64(n)) }

// FilterChecked counts a text body the content filter checked, by result
// (pass, masked, rejected). It is on every text send's path: one map read.
func (m *Metrics) FilterChecked(result string) { m.filterResults[result].Inc() }

// FilterReloaded counts a reload of the content filter's lists (ok, error).
func (m *Metrics) FilterReloaded(result string) { m.FilterReloads.WithLabelValues(result).Inc() }
