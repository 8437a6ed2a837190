package broker

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"
)

// mochi's log lines carry what a client sent: "error processing packet"
// (server.go receivePacket) passes the whole packet as "pk", so a second
// CONNECT logged its password as a byte list and one malformed 250 KB
// PUBLISH a megabyte of log; "failed publishing packet", "failed to publish
// retained message", "packet rejected" and "publish packet rejected/error"
// pass "packet", "parse will error" the "will". mochiLog stands between mochi
// and imqtt's logger: it keeps each event (its message, client, listener,
// remote, error text, numbers), drops every attribute that is not one of
// those kinds (a packet, a will, a byte slice), truncates long strings, and
// lets each source log a message at most logPerWindow times a logWindow,
// then says how many lines it suppressed.

const (
	logPerWindow = 20          // lines one source may log of one message per window
	logWindow    = time.Minute // the rate limit's window
	logMaxString = 200         // bytes kept of a string or error text
	logSources   = 4096        // (message, source) pairs counted per window; more share one count
)

// mochiLog is a slog.Handler for mochi's logger.
type mochiLog struct {
	inner slog.Handler
	lim   *logLimit
}

// newMochiLog wraps inner; remote, if set later on lim, finds a client's
// remote address by its ID.
func newMochiLog(inner slog.Handler) *mochiLog {
	return &mochiLog{inner: inner, lim: &logLimit{root: inner, per: logPerWindow, window: logWindow, counts: map[logKey]*logCount{}}}
}

func (h *mochiLog) Enabled(ctx context.Context, l slog.Level) bool { return h.inner.Enabled(ctx, l) }

func (h *mochiLog) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, truncate(r.Message), r.PC)
	var remote, client string
	r.Attrs(func(a slog.Attr) bool {
		a, ok := cleanAttr(a)
		if !ok {
			return true
		}
		switch a.Key {
		case "remote":
			remote = a.Value.String()
		case "client":
			client = a.Value.String()
		}
		out.AddAttrs(a)
		return true
	})
	if !h.lim.allow(r.Level, out.Message, h.lim.source(remote, client)) {
		return nil
	}
	return h.inner.Handle(ctx, out)
}

func (h *mochiLog) WithAttrs(as []slog.Attr) slog.Handler {
	kept := make([]slog.Attr, 0, len(as))
	for _, a := range as {
		if a, ok := cleanAttr(a); ok {
			kept = append(kept, a)
		}
	}
	return &mochiLog{inner: h.inner.WithAttrs(kept), lim: h.lim}
}

func (h *mochiLog) WithGroup(name string) slog.Handler {
	return &mochiLog{inner: h.inner.WithGroup(name), lim: h.lim}
}

// cleanAttr keeps strings (truncated), numbers, booleans, times, durations
// and error text; it drops anything else, which in mochi's calls is a packet,
// a will or bytes.
func cleanAttr(a slog.Attr) (slog.Attr, bool) {
	switch a.Value.Kind() {
	case slog.KindString:
		return slog.String(a.Key, truncate(a.Value.String())), true
	case slog.KindInt64, slog.KindUint64, slog.KindFloat64, slog.KindBool, slog.KindDuration, slog.KindTime:
		return a, true
	case slog.KindGroup:
		var kept []any
		for _, g := range a.Value.Group() {
			if g, ok := cleanAttr(g); ok {
				kept = append(kept, g)
			}
		}
		return slog.Group(a.Key, kept...), len(kept) > 0
	case slog.KindAny:
		if err, ok := a.Value.Any().(error); ok && err != nil {
			return slog.String(a.Key, truncate(err.Error())), true
		}
	}
	return slog.Attr{}, false // KindLogValuer too: its value is not ours to trust
}

func truncate(s string) string {
	if len(s) <= logMaxString {
		return s
	}
	return fmt.Sprintf("%s... (%d bytes)", s[:logMaxString], len(s))
}

type logKey struct{ msg, source string }

type logCount struct {
	lines, suppressed int
	level             slog.Level
}

// logLimit counts lines by message and source in fixed windows. At the end
// of a window in which it suppressed lines it logs one summary per
// (message, source).
type logLimit struct {
	root   slog.Handler // summaries go here
	per    int
	window time.Duration
	// remote finds a client's remote address by its ID ("" if unknown);
	// set once, before mochi logs anything.
	remote func(client string) string

	mu     sync.Mutex
	start  time.Time
	counts map[logKey]*logCount
	timer  *time.Timer // ends a window that has suppressed lines
}

// source is who a line is about: the host of the remote address, so one
// machine's many connections share a count, else the client ID.
func (l *logLimit) source(remote, client string) string {
	if remote == "" && client != "" && l.remote != nil {
		remote = l.remote(client)
	}
	if remote == "" {
		return client
	}
	if host, _, err := net.SplitHostPort(remote); err == nil {
		return host
	}
	return remote
}

// allow counts a line and reports whether it may be written.
func (l *logLimit) allow(level slog.Level, msg, source string) bool {
	now := time.Now()
	l.mu.Lock()
	if now.Sub(l.start) >= l.window {
		l.mu.Unlock()
		l.flush()
		l.mu.Lock()
	}
	k := logKey{msg, source}
	c := l.counts[k]
	if c == nil {
		if len(l.counts) >= logSources {
			k.source = "(others)"
			c = l.counts[k]
		}
		if c == nil {
			c = &logCount{}
			l.counts[k] = c
		}
	}
	c.level = max(c.level, level)
	if c.lines < l.per {
		c.lines++
		l.mu.Unlock()
		return true
	}
	c.suppressed++
	if l.timer == nil {
		l.timer = time.AfterFunc(l.start.Add(l.window).Sub(now), l.flush)
	}
	l.mu.Unlock()
	return false
}

// flush ends the current window if it is over, logging what it suppressed.
func (l *logLimit) flush() {
	now := time.Now()
	l.mu.Lock()
	if now.Sub(l.start) < l.window {
		l.mu.Unlock()
		return
	}
	counts := l.counts
	l.counts, l.start = map[logKey]*logCount{}, now
	if l.timer != nil {
		l.timer.Stop()
		l.timer = nil
	}
	l.mu.Unlock()
	for k, c := range counts {
		if c.suppressed == 0 {
			continue
		}
		r := slog.NewRecord(now, c.level, fmt.Sprintf("suppressed %d similar lines", c.suppressed), 0)
		r.AddAttrs(slog.String("similar", k.msg), slog.String("source", k.source), slog.Duration("within", l.window))
		if l.root.Enabled(context.Background(), c.level) {
			_ = l.root.Handle(context.Background(), r)
		}
	}
}
