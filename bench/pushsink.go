package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/bwmarrin/snowflake"

	"github.com/imqtt/imqtt/internal/signature"
	"github.com/imqtt/imqtt/internal/webhook"
)

// SinkOptions configure a push sink. Zero values take the defaults in
// parentheses.
type SinkOptions struct {
	Addr   string        // where to listen (127.0.0.1:0)
	Delay  time.Duration // how long each answer waits: a slow provider (0)
	Secret []byte        // imqttd's --webhook-secret; required
	Status int           // the answer's status (200); 410 plays an invalid token, 503 an outage
	// MaxAge bounds X-Imqtt-Timestamp's distance from now (5m), as a
	// receiver guarding against replays would.
	MaxAge time.Duration
	Now    func() time.Time // the clock arrivals are read from (time.Now)
}

// maxPushBody is the most of a push's body the sink reads: SPEC §13's
// JSON is a few hundred bytes.
const maxPushBody = 64 << 10

// Sink is a webhook push receiver for measuring imqttd's offline push
// (imqtt bench push-sink; bench/push.sh): it checks each POST's signature
// (internal/signature, SPEC §14), answers Status after Delay, and records
// each push's latency from its message's commit, read from message_id: a
// snowflake ID carries the millisecond its server made it, in the
// batcher, just before the commit.
type Sink struct {
	opts SinkOptions
	ln   net.Listener
	srv  *http.Server
	done chan struct{} // closed by Close: waiting answers end
	once sync.Once
	// after is the delay's timer (time.After; a test's to hold answers).
	after func(time.Duration) <-chan time.Time

	mu    sync.Mutex
	stats sinkCounts
}

// sinkCounts are what the sink has seen since it started or was last reset.
type sinkCounts struct {
	since        time.Time
	first, last  time.Time       // the first and last push's arrival
	pushes       int64           // well signed, well formed
	hooks        int64           // message.before_send requests, answered allow
	badSignature int64           // refused: 401
	badBody      int64           // refused: 400
	duplicates   int64           // a (token, message_id) seen before
	latencies    []int64         // ns, commit to arrival
	seen         map[pushKey]int // pushes per (token, message_id)
}

type pushKey struct{ token, msg string }

// SinkStats are a sink's figures (GET /stats, and on exit).
type SinkStats struct {
	Pushes int64 `json:"pushes"` // accepted pushes
	// Hooks counts the message.before_send requests the sink answered
	// (allow, after Delay): it also plays the moderation backend of
	// --webhook-url (bench/hook.sh).
	Hooks int64 `json:"hooks"`
	// PerSec is Pushes over the time from the first push to the last
	// (0 with fewer than two).
	PerSec float64 `json:"per_sec"`
	// Latency is from each push's message commit (its snowflake ID's
	// time) to the push's arrival, in ms.
	Latency      SinkLatency `json:"latency_ms"`
	Duplicates   int64       `json:"duplicates"`    // a second push for one token and message_id
	BadSignature int64       `json:"bad_signature"` // refused, not counted in Pushes
	BadBody      int64       `json:"bad_body"`      // refused, not counted in Pushes
	Seconds      float64     `json:"seconds"`       // since the start or the last reset
	First        time.Time   `json:"first,omitzero"`
	Last         time.Time   `json:"last,omitzero"`
}

// SinkLatency is the latency summary the sink prints.
type SinkLatency struct {
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// NewSink listens on o.Addr; Serve answers.
func NewSink(o SinkOptions) (*Sink, error) {
	if len(o.Secret) == 0 {
		return nil, errors.New("push sink: a secret is required (imqttd's --webhook-secret)")
	}
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	if o.Status == 0 {
		o.Status = http.StatusOK
	}
	if o.Status < 200 || o.Status > 599 {
		return nil, fmt.Errorf("push sink: status %d is not an HTTP status", o.Status)
	}
	if o.Delay < 0 {
		return nil, errors.New("push sink: negative delay")
	}
	if o.MaxAge <= 0 {
		o.MaxAge = 5 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return nil, fmt.Errorf("push sink: %w", err)
	}
	s := &Sink{opts: o, ln: ln, done: make(chan struct{}), after: time.After}
	s.reset()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /", s.push)
	mux.HandleFunc("GET /stats", s.serveStats)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return s, nil
}

// URL is the sink's base URL, for imqttd's --push-webhook.
func (s *Sink) URL() string { return "http://" + s.ln.Addr().String() }

// Serve answers until Close; it returns nil after Close.
func (s *Sink) Serve() error {
	if err := s.srv.Serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Close stops the sink: the answers still waiting their Delay are sent at once.
func (s *Sink) Close() error {
	s.once.Do(func() { close(s.done) })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.srv.Shutdown(ctx)
}

// Stats returns the figures so far; with reset, it starts them again.
func (s *Sink) Stats(reset bool) SinkStats {
	s.mu.Lock()
	c := s.stats
	lat := append([]int64(nil), c.latencies...)
	if reset {
		s.resetLocked()
	}
	s.mu.Unlock()
	st := SinkStats{Pushes: c.pushes, Hooks: c.hooks, Duplicates: c.duplicates, BadSignature: c.badSignature, BadBody: c.badBody,
		Seconds: s.opts.Now().Sub(c.since).Seconds(), First: c.first, Last: c.last}
	if c.pushes >= 2 {
		st.PerSec = Rate(c.pushes-1, c.last.Sub(c.first)) // n arrivals span n-1 intervals
	}
	l := Summarize(lat)
	st.Latency = SinkLatency{P50: l.P50, P99: l.P99, Max: l.Max}
	return st
}

func (s *Sink) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resetLocked()
}

func (s *Sink) resetLocked() {
	s.stats = sinkCounts{since: s.opts.Now(), seen: map[pushKey]int{}}
}

// pushBody is the part of SPEC §13's webhook body the sink reads.
type pushBody struct {
	Token     string `json:"token"`
	MessageID string `json:"message_id"`
}

func (s *Sink) push(w http.ResponseWriter, r *http.Request) {
	arrived := s.opts.Now()
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxPushBody+1))
	if err != nil {
		return // the client went away
	}
	if len(raw) > maxPushBody {
		s.count(func(c *sinkCounts) { c.badBody++ })
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return
	}
	if err := signature.Verify(s.opts.Secret, r.Header.Get(signature.HeaderSignature), r.Header.Get(signature.HeaderTimestamp), raw, s.opts.MaxAge); err != nil {
		s.count(func(c *sinkCounts) { c.badSignature++ })
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	if r.Header.Get(webhook.HeaderEvent) == webhook.BeforeSend {
		s.count(func(c *sinkCounts) { c.hooks++ })
		if s.wait(r) {
			_, _ = io.WriteString(w, `{"action":"allow"}`)
		}
		return
	}
	var b pushBody
	var id snowflake.ID
	if json.Unmarshal(raw, &b) != nil || b.Token == "" {
		s.count(func(c *sinkCounts) { c.badBody++ })
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	if id, err = snowflake.ParseString(b.MessageID); err != nil || id <= 0 {
		s.count(func(c *sinkCounts) { c.badBody++ })
		http.Error(w, "bad message_id", http.StatusBadRequest)
		return
	}
	committed := time.UnixMilli(id.Time())
	s.count(func(c *sinkCounts) {
		c.pushes++
		if c.first.IsZero() {
			c.first = arrived
		}
		c.last = arrived
		c.latencies = append(c.latencies, int64(arrived.Sub(committed)))
		k := pushKey{b.Token, b.MessageID}
		if c.seen[k]++; c.seen[k] > 1 {
			c.duplicates++
		}
	})
	if s.wait(r) {
		w.WriteHeader(s.opts.Status)
	}
}

// wait waits Delay before an answer; false if the client went away.
func (s *Sink) wait(r *http.Request) bool {
	if s.opts.Delay > 0 {
		select {
		case <-s.after(s.opts.Delay):
		case <-r.Context().Done():
			return false
		case <-s.done:
		}
	}
	return true
}

func (s *Sink) count(f func(*sinkCounts)) {
	s.mu.Lock()
	f(&s.stats)
	s.mu.Unlock()
}

// serveStats answers GET /stats with SinkStats as JSON; ?reset=1 starts
// the figures again after reading them (one sink, several runs).
func (s *Sink) serveStats(w http.ResponseWriter, r *http.Request) {
	reset, _ := strconv.ParseBool(r.URL.Query().Get("reset"))
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(s.Stats(reset))
}
