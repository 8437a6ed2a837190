package broker

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/imqtt/imqtt/internal/loglimit"
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
)

// mochiLog is a slog.Handler for mochi's logger.
type mochiLog struct {
	inner slog.Handler
	lim   *sourceLimit
}

// sourceLimit is the mochi log's bound: per message and source, the host
// of the client's remote address (remote finds it by client ID, "" if
// unknown; set once, before mochi logs anything), else the client ID.
type sourceLimit struct {
	loglimit.Sources
	remote func(client string) string
}

func (l *sourceLimit) source(remote, client string) string {
	if remote == "" && client != "" && l.remote != nil {
		remote = l.remote(client)
	}
	if remote == "" {
		return client
	}
	return loglimit.Host(remote)
}

// newMochiLog wraps inner; remote, if set later on lim, finds a client's
// remote address by its ID.
func newMochiLog(inner slog.Handler) *mochiLog {
	return &mochiLog{inner: inner, lim: &sourceLimit{Sources: loglimit.Sources{Root: inner, Per: logPerWindow, Window: logWindow}}}
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
	if !h.lim.Allow(r.Level, out.Message, h.lim.source(remote, client)) {
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
