package main

import (
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// meterEvery is how often a transfer's progress line is redrawn, at most.
const meterEvery = 100 * time.Millisecond

// meter draws the progress of an upload or download on one line of a
// terminal, redrawn in place ("\r", then erase to the end of the line) at
// most once per every: bytes so far, of how many and the percentage when
// the size is known, and the mean rate. It is only made when stdout and
// stderr are terminals (cli.meter), so piped output never has it.
type meter struct {
	w     io.Writer
	label string
	now   func() time.Time
	every time.Duration

	mu          sync.Mutex
	n, total    int64 // total < 0: unknown
	start, last time.Time
	drawn       bool
}

func newMeter(w io.Writer, label string, total int64, now func() time.Time) *meter {
	return &meter{w: w, label: label, total: total, now: now, every: meterEvery, start: now()}
}

// meter returns a meter on stderr for a transfer of total bytes (< 0:
// unknown), or nil when stdout or stderr is not a terminal. A nil meter
// does nothing.
func (c *cli) meter(label string, total int64) *meter {
	if !c.terminal(c.stdout) || !c.terminal(c.stderr) {
		return nil
	}
	return newMeter(c.stderr, label, total, time.Now)
}

// terminal reports whether f (stdin, stdout or stderr) is a terminal.
func (c *cli) terminal(f any) bool {
	return c.env.isTerminal != nil && c.env.isTerminal(f)
}

// add counts n more bytes and redraws if the line is due.
func (m *meter) add(n int) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.n += int64(n)
	if now := m.now(); !m.drawn || now.Sub(m.last) >= m.every {
		m.draw(now)
	}
}

// setTotal sets the size once it is known (a download's Content-Length).
func (m *meter) setTotal(total int64) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.total = total
	m.mu.Unlock()
}

// finish draws the last line and ends it, so that what follows (the
// JSON, or an error) starts on a line of its own.
func (m *meter) finish() {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.draw(m.now())
	fmt.Fprintln(m.w)
}

func (m *meter) draw(now time.Time) {
	m.drawn, m.last = true, now
	line := m.label + ": " + humanBytes(m.n)
	if m.total >= 0 {
		pct := int64(100)
		if m.total > 0 {
			pct = min(100, m.n*100/m.total)
		}
		line += fmt.Sprintf(" of %s (%d%%)", humanBytes(m.total), pct)
	}
	if d := now.Sub(m.start); d > 0 {
		line += fmt.Sprintf(", %s/s", humanBytes(int64(float64(m.n)/d.Seconds())))
	}
	fmt.Fprintf(m.w, "\r%s\x1b[K", line)
}

// humanBytes writes n in B, kB, MB or GB (powers of 1000, as the backup's MB).
func humanBytes(n int64) string {
	switch {
	case n < 1000:
		return fmt.Sprintf("%d B", n)
	case n < 1000*1000:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	case n < 1000*1000*1000:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	}
	return fmt.Sprintf("%.2f GB", float64(n)/1e9)
}

// meteredReader counts what is read through it.
type meteredReader struct {
	r io.Reader
	m *meter
}

func (r meteredReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.m.add(n)
	return n, err
}

// meteredBody is a request or response body that counts what is read of it.
type meteredBody struct {
	meteredReader
	io.Closer
}

// meteredClient is a client whose transfers m counts. It has no overall
// timeout, as the SDK's for media has none: a large upload or download
// takes as long as it takes, bounded by the command's context.
func meteredClient(m *meter) *http.Client {
	return &http.Client{Transport: meteredTransport{http.DefaultTransport, m}}
}

// meteredTransport counts on m what is sent of a request's body (an
// upload), or what is read of a GET's successful response (a download),
// and tells m its size: the SDK's Upload and Download then report
// progress without knowing of it.
type meteredTransport struct {
	base http.RoundTripper
	m    *meter
}

func (t meteredTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodGet {
		if req.Body != nil && req.Body != http.NoBody {
			total := req.ContentLength
			if total == 0 { // with a body, 0 is unknown as -1 is
				total = -1
			}
			t.m.setTotal(total)
			req = req.Clone(req.Context()) // a RoundTripper leaves the caller's request alone
			req.Body = meteredBody{meteredReader{req.Body, t.m}, req.Body}
		}
		return t.base.RoundTrip(req)
	}
	resp, err := t.base.RoundTrip(req)
	if err != nil || resp.StatusCode >= 300 {
		return resp, err
	}
	t.m.setTotal(resp.ContentLength)
	resp.Body = meteredBody{meteredReader{resp.Body, t.m}, resp.Body}
	return resp, nil
}
