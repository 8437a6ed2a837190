package loglimit

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"
)

// MaxSources bounds the (message, source) pairs a Sources counts per
// window; the pairs past it share one count, source "(others)".
const MaxSources = 4096

// Sources bounds lines per message and source (a host, say) in fixed
// windows: a source may log a message Per times a Window, so that one
// client's loop leaves everyone else's lines alone. At the end of a window
// in which it held lines back, it writes one summary per (message,
// source) to Root: "suppressed N similar lines". Set the fields before
// the first Allow.
type Sources struct {
	Root   slog.Handler // the summaries' handler
	Per    int
	Window time.Duration

	mu     sync.Mutex
	start  time.Time
	counts map[sourceKey]*sourceCount
	timer  *time.Timer // ends a window that has held lines back
}

type sourceKey struct{ msg, source string }

type sourceCount struct {
	lines, suppressed int
	level             slog.Level
}

// Host is the source of a line about a remote address: its host, so one
// machine's many connections share a count.
func Host(remote string) string {
	if host, _, err := net.SplitHostPort(remote); err == nil {
		return host
	}
	return remote
}

// Allow counts a line of msg about source, at level, and reports whether
// it may be written.
func (l *Sources) Allow(level slog.Level, msg, source string) bool {
	now := time.Now()
	l.mu.Lock()
	if now.Sub(l.start) >= l.Window {
		l.mu.Unlock()
		l.flush()
		l.mu.Lock()
	}
	if l.counts == nil {
		l.counts = map[sourceKey]*sourceCount{}
	}
	k := sourceKey{msg, source}
	c := l.counts[k]
	if c == nil {
		if len(l.counts) >= MaxSources {
			k.source = "(others)"
			c = l.counts[k]
		}
		if c == nil {
			c = &sourceCount{}
			l.counts[k] = c
		}
	}
	c.level = max(c.level, level)
	if c.lines < l.Per {
		c.lines++
		l.mu.Unlock()
		return true
	}
	c.suppressed++
	if l.timer == nil {
		l.timer = time.AfterFunc(l.start.Add(l.Window).Sub(now), l.flush)
	}
	l.mu.Unlock()
	return false
}

// flush ends the current window if it is over, logging what it held back.
func (l *Sources) flush() {
	now := time.Now()
	l.mu.Lock()
	if now.Sub(l.start) < l.Window {
		l.mu.Unlock()
		return
	}
	counts := l.counts
	l.counts, l.start = map[sourceKey]*sourceCount{}, now
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
		r.AddAttrs(slog.String("similar", k.msg), slog.String("source", k.source), slog.Duration("within", l.Window))
		if l.Root.Enabled(context.Background(), c.level) {
			_ = l.Root.Handle(context.Background(), r)
		}
	}
}
