package api

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/imqtt/imqtt/internal/loglimit"
)

// The access log (--access-log-sample) writes one line per request logged:
// method, route pattern (never the path's IDs, never a query string, so
// no token in one), status, bytes, duration and remote address. Nothing
// of the headers (Authorization) or bodies. Which requests: a share of
// the successes (AccessLogSample: 0 none, 1 all), and the errors, each
// kind at most at a rate so that a flood of them (401s and 404s from a
// scanner, 5xx from an outage) cannot flood the log; the next line of a
// kind says how many of it were left out ("suppressed").

// DefaultAccessLogSample is --access-log-sample's default: one success in
// a hundred.
const DefaultAccessLogSample = 0.01

// accessLimits bound the error lines a second (and at once) per kind.
var accessLimits = map[string][2]float64{
	"5xx": {10, 20},
	"4xx": {5, 10}, // other than 401 and 404
	"401": {1, 5},
	"404": {1, 5},
}

type accessLog struct {
	log    *slog.Logger
	sample float64
	kinds  map[string]*loglimit.Limit // fixed at start: read without a lock
}

func newAccessLog(log *slog.Logger, sample float64) *accessLog {
	l := &accessLog{log: log, sample: sample, kinds: map[string]*loglimit.Limit{}}
	for k, v := range accessLimits {
		l.kinds[k] = loglimit.New(v[0], int(v[1]))
	}
	return l
}

// accessWriter counts what a handler writes. Unwrap lets
// http.ResponseController reach the connection (deadlines, flushes).
type accessWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *accessWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *accessWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

// ReadFrom keeps the connection's own ReadFrom (sendfile for a media
// file) in use under the wrapper.
func (w *accessWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := io.Copy(w.ResponseWriter, r)
	w.bytes += n
	return n, err
}

func (w *accessWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush passes a flush on (a streamed answer: sync, backup).
func (w *accessWriter) Flush() { _ = http.NewResponseController(w.ResponseWriter).Flush() }

// serve runs next on r and logs the request if it is chosen; next returns
// the request the mux routed (whose Pattern it set), nil if none.
func (l *accessLog) serve(w http.ResponseWriter, r *http.Request, next func(http.ResponseWriter, *http.Request) *http.Request) {
	start := time.Now()
	aw := &accessWriter{ResponseWriter: w}
	routed := next(aw, r)
	status := aw.status
	if status == 0 {
		status = http.StatusOK
	}
	kind := ""
	switch {
	case status >= 500:
		// At info like the rest: a 5xx's cause is logged once, at warn or
		// error, by what failed (a full disk, a store down); its every
		// refused request at warn would bury that line.
		kind = "5xx"
	case status == http.StatusUnauthorized || status == http.StatusNotFound:
		kind = strconv.Itoa(status)
	case status >= 400:
		kind = "4xx"
	}
	var suppressed int64
	if kind == "" {
		if l.sample <= 0 || l.sample < 1 && rand.Float64() >= l.sample {
			return
		}
	} else {
		var ok bool
		if ok, suppressed = l.kinds[kind].Allow(); !ok {
			return
		}
	}
	pattern := "-" // no route: a 404 of the mux's own, or refused before routing
	if routed != nil && routed.Pattern != "" {
		pattern = routed.Pattern
	}
	attrs := []slog.Attr{slog.String("method", r.Method), slog.String("route", pattern), slog.Int("status", status),
		slog.Int64("bytes", aw.bytes), slog.Duration("duration", time.Since(start)), slog.String("remote", r.RemoteAddr)}
	if suppressed > 0 {
		attrs = append(attrs, slog.Int64("suppressed", suppressed))
	}
	l.log.LogAttrs(context.Background(), slog.LevelInfo, "http", attrs...)
}
