package metrics

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/imqtt/imqtt/internal/loglimit"
)

// Refusals (bad credentials, bans, ACL denials, protective limits) are
// logged as well as counted, but an attacker makes them at will: each
// kind is logged at most RefusalLogBurst at once and RefusalLogRate a
// second after, and the next line it writes says how many were left out
// ("suppressed"). The counters count them all.
const (
	RefusalLogRate  = 1
	RefusalLogBurst = 5
	// refusalFieldMax bounds a client-chosen field (a user name, a client
	// ID, a topic) in the log.
	refusalFieldMax = 128
)

// refusalLog is Metrics' log of refusals; the zero value logs nothing.
type refusalLog struct {
	log   atomic.Pointer[slog.Logger]
	kinds sync.Map // kind (a fixed name from the code) -> *loglimit.Limit
}

// LogRefusals has m log refusals to log, rate-limited per kind (nil: not
// logged, the default).
func (m *Metrics) LogRefusals(log *slog.Logger) { m.refusals.log.Store(log) }

// write logs one refusal of kind at level, or counts it as suppressed.
// No attribute may carry a secret: callers pass names, addresses, topics.
func (r *refusalLog) write(level slog.Level, kind string, attrs ...any) {
	log := r.log.Load()
	if log == nil || !log.Enabled(context.Background(), level) {
		return
	}
	v, ok := r.kinds.Load(kind)
	if !ok {
		v, _ = r.kinds.LoadOrStore(kind, loglimit.New(RefusalLogRate, RefusalLogBurst))
	}
	ok, suppressed := v.(*loglimit.Limit).Allow()
	if !ok {
		return
	}
	for i := 1; i < len(attrs); i += 2 {
		if s, ok := attrs[i].(string); ok && len(s) > refusalFieldMax {
			attrs[i] = s[:refusalFieldMax] + "…"
		}
	}
	attrs = append([]any{"kind", kind}, attrs...)
	if suppressed > 0 {
		attrs = append(attrs, "suppressed", suppressed)
	}
	log.Log(context.Background(), level, "refused", attrs...)
}
