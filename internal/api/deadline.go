package api

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/imqtt/imqtt/internal/metrics"
	"github.com/imqtt/imqtt/wire"
)

// Request bodies get a deadline on every route, so a client that sends one
// slowly (a slow-loris body) cannot hold a goroutine and a connection for
// as long as it likes. http.Server's ReadTimeout would do it for whole
// requests, but it also stays on a connection hijacked for MQTT over
// WebSocket; and an upload of 200 MB needs a rate, not a total. So the API
// sets the connection's read deadline itself (http.ResponseController)
// before any handler runs, for any request with a body:
//
//   - an upload (POST /v1/media) must bring UploadMinRate×UploadWindow bytes
//     in every UploadWindow: the deadline starts UploadWindow away and moves
//     to UploadWindow from now each time that many more bytes have arrived,
//     so it is a minimum rate averaged over the window, and costs one
//     SetReadDeadline per window's worth of bytes;
//   - every other body must be complete within BodyTimeout.
//
// A read past the deadline fails; the handler answers 408 request_timeout
// (the response can still be written) and the server closes the connection,
// whose body was not read to its end. Once a body is read to its end,
// net/http lifts the deadline itself (connReader.startBackgroundRead), so a
// handler slower than it keeps its request.
type bodyDeadline struct {
	body   io.ReadCloser
	rc     *http.ResponseController
	m      *metrics.Metrics
	window time.Duration // the upload window; 0: one total deadline
	quota  int64         // bytes due each window
	got    int64         // bytes this window
	slow   bool          // a read hit the deadline
}

type bodyDeadlineKey struct{}

// withBodyDeadline puts r's body under its deadline (see bodyDeadline).
func (a *API) withBodyDeadline(w http.ResponseWriter, r *http.Request) *http.Request {
	if r.Body == nil || r.Body == http.NoBody {
		return r
	}
	b := &bodyDeadline{body: r.Body, rc: http.NewResponseController(w), m: a.cfg.Metrics}
	timeout := a.cfg.BodyTimeout
	if r.Method == http.MethodPost && r.URL.Path == "/v1/media" {
		b.window, timeout = a.cfg.UploadWindow, a.cfg.UploadWindow
		b.quota = max(1, int64(float64(a.cfg.UploadMinRate)*a.cfg.UploadWindow.Seconds()))
	}
	if err := b.rc.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return r // a ResponseWriter without deadlines (tests): nothing to bound
	}
	r = r.WithContext(context.WithValue(r.Context(), bodyDeadlineKey{}, b))
	r.Body = b
	return r
}

func (b *bodyDeadline) Read(p []byte) (int, error) {
	n, err := b.body.Read(p)
	if b.window > 0 {
		if b.got += int64(n); b.got >= b.quota {
			b.got = 0
			_ = b.rc.SetReadDeadline(time.Now().Add(b.window))
		}
	}
	if err != nil && !b.slow && errors.Is(err, os.ErrDeadlineExceeded) {
		b.slow = true
		b.m.Refused("slow_body")
	}
	return n, err
}

func (b *bodyDeadline) Close() error { return b.body.Close() }

// slowBody reports whether r's body missed its deadline.
func slowBody(r *http.Request) bool {
	b, ok := r.Context().Value(bodyDeadlineKey{}).(*bodyDeadline)
	return ok && b.slow
}

// bodyTimedOut answers a request whose body missed its deadline.
func (a *API) bodyTimedOut(w http.ResponseWriter) {
	w.Header().Set("Connection", "close") // the rest of the body is not read
	writeError(w, http.StatusRequestTimeout, wire.CodeTimeout, "request body too slow: a body must arrive within "+
		a.cfg.BodyTimeout.String()+", an upload at "+strconv.FormatInt(a.cfg.UploadMinRate, 10)+
		" bytes/s or more over each "+a.cfg.UploadWindow.String())
}
