package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// BeforeSend holds the instruments of the message.before_send webhook.
type BeforeSend struct {
	HookTotal     *prometheus.CounterVec // result: allow, reject, modify, timeout, bad_verdict, error
	HookSeconds   prometheus.Histogram   // one call, answer or not
	HookQueueFull prometheus.Counter     // sends refused busy: the stage or the sender's lane was full
}

func (b *BeforeSend) register(r *prometheus.Registry) {
	b.HookTotal = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "imqtt_before_send_total",
		Help: "Sends the before_send webhook was asked about, by result: allow, reject, modify, or no verdict (timeout, bad_verdict, error: --webhook-fail decides)."},
		[]string{"result"})
	b.HookSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "imqtt_before_send_seconds",
		Help:    "One before_send call, from the request to its answer or deadline.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2, 5}})
	b.HookQueueFull = prometheus.NewCounter(prometheus.CounterOpts{Name: "imqtt_before_send_queue_full_total",
		Help: "Sends refused busy because too many were waiting for the before_send webhook (in all, or of one sender in one conversation)."})
	r.MustRegister(b.HookTotal, b.HookSeconds, b.HookQueueFull)
}

// HookDone counts one before_send call that took d and ended in result.
func (b *BeforeSend) HookDone(d time.Duration, result string) {
	b.HookTotal.WithLabelValues(result).Inc()
	b.HookSeconds.Observe(d.Seconds())
}

// QueueFull counts a send refused busy before the hook.
func (b *BeforeSend) QueueFull() { b.HookQueueFull.Inc() }
