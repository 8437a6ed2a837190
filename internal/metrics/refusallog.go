package metrics

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"

	"golang.org/x/time/rate"
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
	kinds sync.Map // kind (a fixed name from the code) -> *refusalKind
}

type refusalKind struct {
	lim        *rate.Limiter
	suppressed atomic.Int64
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
		v, _ = r.kinds.LoadOrStore(kind, &refusalKind{lim: rate.NewLimiter(RefusalLogRate, RefusalLogBurst)})
	}
	k := v.(*refusalKind)
	if !k.lim.Allow() {
		k.suppressed.Add(1)
		return
	}
	for i := 1; i < len(attrs); i += 2 {
		if s, ok := attrs[i].(string); ok && len(s) > refusalFieldMax {
			attrs[i] = s[:refusalFieldMax] + "…"
		}
	}
	attrs = append([]any{"kind", kind}, attrs...)
	if n := k.suppressed.Swap(0); n > 0 {
		attrs = append(attrs, "suppressed", n)
	}
	log.Log(context.Background(), level, "refused", attrs...)
}
