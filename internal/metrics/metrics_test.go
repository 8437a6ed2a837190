package metrics_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/imqtt/imqtt/internal/metrics"
	"github.com/imqtt/imqtt/wire"
)

// TestPublishedOut: an event is counted under its kind; a kind outside the
// fixed set under "other", so no caller can grow the label space.
func TestPublishedOut(t *testing.T) {
	m := metrics.New()
	m.PublishedOut(wire.KindMsg)
	m.PublishedOut(wire.KindMsg)
	m.PublishedOut(wire.KindNotice)
	m.PublishedOut("made-up")
	if n := testutil.CollectAndCount(m.Publishes); n != 4+len(wire.EventKinds)+1 {
		t.Errorf("%d series, want the fixed set", n)
	}
	for kind, want := range map[string]float64{"msg": 2, "notice": 1, "other": 1, "ack": 0} {
		if got := testutil.ToFloat64(m.Publishes.WithLabelValues("out", kind)); got != want {
			t.Errorf("out %s = %v, want %v", kind, got, want)
		}
	}
}
