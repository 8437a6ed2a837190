// Package metrics holds imqtt's Prometheus instruments. One *Metrics is made
// in cmd/imqttd and handed to the packages that count; a nil *Metrics is not
// allowed (tests use New with a fresh registry).
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the counters and histograms of one imqttd.
type Metrics struct {
	Registry *prometheus.Registry

	AuthFailures       *prometheus.CounterVec // reason
	ACLDenials         *prometheus.CounterVec // action: publish, subscribe
	Messages           *prometheus.CounterVec // outcome: stored, duplicate, rejected, failed
	Errors             *prometheus.CounterVec // code of error events and replies
	Dropped            prometheus.Counter     // packets mochi dropped on full client queues
	BatchSize          prometheus.Histogram   // messages per store commit
	CommitSeconds      prometheus.Histogram   // store commit latency
	AckSeconds         prometheus.Histogram   // submit to ack
	SyncItems          prometheus.Counter     // items sent by sync
	SyncBatches        *prometheus.CounterVec // transport: mqtt, http
	Connections        prometheus.GaugeFunc   // set by the broker via SetConnections
	GroupFanout        prometheus.Histogram   // online members a group message went to on this node
	GroupFanoutSeconds prometheus.Histogram   // one fan-out pass
	connections        func() float64
}

// New registers every instrument on a fresh registry, with the Go and process collectors.
func New() *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{Registry: r, connections: func() float64 { return 0 }}
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
	r.MustRegister(m.AuthFailures, m.ACLDenials, m.Messages, m.Errors, m.Dropped, m.BatchSize,
		m.CommitSeconds, m.AckSeconds, m.SyncItems, m.SyncBatches, m.Connections, m.GroupFanout, m.GroupFanoutSeconds,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// SetConnections names the function that reports the connection count.
func (m *Metrics) SetConnections(f func() float64) { m.connections = f }
