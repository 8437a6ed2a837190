// Package drain holds this node's drain state, in one place: whether the
// node drains and since when, the progress of an operator's drain
// (POST /v1/admin/drain), and the clients being quiesced before their
// disconnect, whose new sends are refused. The daemon makes one State and
// gives it to the broker's waves, the uplink hook and the HTTP API; they
// ask it or tell it, and keep no copy of their own.
package drain

import (
	"sync"
	"sync/atomic"
	"time"
)

// quiesceWait bounds how long Quiesce waits for sends in flight: the
// batcher commits or fails a send well within it.
const quiesceWait = 15 * time.Second

// Progress is an operator's drain as GET /v1/admin/nodes reports it.
type Progress struct {
	Started      int64 `json:"started"` // unix ms
	Percent      int   `json:"percent"`
	IntervalMS   int   `json:"interval_ms"`
	Total        int   `json:"total"` // clients connected when the drain began
	Disconnected int   `json:"disconnected"`
	Remaining    int   `json:"remaining"`
	Waves        int   `json:"waves"`
	Done         bool  `json:"done"`
	Finished     int64 `json:"finished,omitempty"` // unix ms
}

// State is this node's drain. A node drains from the first Begin or Start
// until the process ends; there is no way back. Safe for concurrent use.
type State struct {
	leave func() // called once, by the call that begins the drain

	since atomic.Int64 // unix ns when the drain began; 0: serving

	mu       sync.Mutex
	progress *Progress // nil until Start

	sendMu   sync.Mutex
	quiet    map[string]struct{} // clients whose new sends are refused
	inflight map[string]int      // client ID -> sends admitted, not yet answered
}

// New returns the state of a node that serves. leave, if set, is called
// once when the drain begins (scale-out: leave the cluster's node list),
// before Begin or Start returns.
func New(leave func()) *State {
	return &State{leave: leave, quiet: map[string]struct{}{}, inflight: map[string]int{}}
}

// Begin marks the node draining (/readyz answers 503, /v1/endpoints leaves
// it out) and reports whether this call began the drain. Idempotent.
func (s *State) Begin() bool {
	if !s.since.CompareAndSwap(0, time.Now().UnixNano()) {
		return false
	}
	if s.leave != nil {
		s.leave()
	}
	return true
}

// Draining reports whether the drain has begun. It takes no lock.
func (s *State) Draining() bool { return s.since.Load() != 0 }

// Since is when the drain began; zero if it has not.
func (s *State) Since() time.Time {
	if ns := s.since.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// Start records an operator's drain of total clients, percent of them a
// wave, a wave every intervalMS, and begins the drain (Begin). It reports
// false, and the progress so far, if one was started already: an
// operator's drain is started once.
func (s *State) Start(percent, intervalMS, total int) (Progress, bool) {
	s.Begin() // first: /readyz answers 503 before anything is reported
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.progress != nil {
		return *s.progress, false
	}
	s.progress = &Progress{Started: time.Now().UnixMilli(), Percent: percent, IntervalMS: intervalMS,
		Total: total, Remaining: total}
	return *s.progress, true
}

// Progress is a copy of the operator's drain's progress; false if none was
// started.
func (s *State) Progress() (Progress, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.progress == nil {
		return Progress{}, false
	}
	return *s.progress, true
}

// Wave records a wave of the drain: kicked clients disconnected, remaining
// still connected. It counts toward the operator's drain, if one was
// started and is not done; otherwise it changes nothing.
func (s *State) Wave(kicked, remaining int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.progress
	if p == nil || p.Done {
		return
	}
	if kicked > 0 || remaining > 0 {
		p.Waves++
	}
	p.Disconnected += kicked
	p.Remaining = max(remaining, 0)
	if p.Remaining == 0 {
		p.Done, p.Finished = true, time.Now().UnixMilli()
	}
}

// Quiesce prepares clients for a drain's disconnect: their new sends are
// refused from now on (Admit), and it returns once the sends they have in
// flight are answered, or after 15 s (the batcher's commit deadline is
// well within it). Without it a send in flight at the disconnect could be
// resent on another node before this one committed it, and become two
// messages.
func (s *State) Quiesce(ids []string) {
	s.sendMu.Lock()
	for _, id := range ids {
		s.quiet[id] = struct{}{}
	}
	s.sendMu.Unlock()
	deadline := time.Now().Add(quiesceWait)
	for time.Now().Before(deadline) {
		busy := false
		s.sendMu.Lock()
		for _, id := range ids {
			busy = busy || s.inflight[id] > 0
		}
		s.sendMu.Unlock()
		if !busy {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Admit counts a send of clientID in flight, or refuses it (false) if the
// client is quiesced. Each admitted send is followed by one Answered.
func (s *State) Admit(clientID string) bool {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	if _, ok := s.quiet[clientID]; ok {
		return false
	}
	s.inflight[clientID]++
	return true
}

// Answered ends an admitted send of clientID.
func (s *State) Answered(clientID string) {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	if s.inflight[clientID]--; s.inflight[clientID] <= 0 {
		delete(s.inflight, clientID)
	}
}
