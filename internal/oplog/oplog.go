// Package oplog keeps a small ring of this node's recent operator-relevant
// entries: refused logins, ACL denials, error replies and bans (not to be
// confused with the events the server sends devices, wire.Entry). The dashboard
// shows them; Prometheus has the counts (package metrics feeds both at once).
//
// The ring is node-local and lost on restart: it answers "what just went
// wrong here", not an audit log.
package oplog

import (
	"sync"
	"time"
)

// Kinds of entry.
const (
	AuthFailure = "auth_failure" // MQTT CONNECT or HTTP login/token refused
	ACLDenial   = "acl_denial"   // a publish or subscription refused by the topic ACL
	Error       = "error"        // an error reply (kind "error" event or HTTP error from the IM core)
	Banned      = "banned"       // a connection or login refused by a ban
)

// Kinds lists the valid kinds, for validating filters.
var Kinds = map[string]bool{AuthFailure: true, ACLDenial: true, Error: true, Banned: true}

// maxField bounds each text field so a hostile topic or message cannot make
// the ring large.
const maxField = 200

// Entry is one recorded event.
type Entry struct {
	Seq    uint64 `json:"seq"`              // increases by one per event on this node
	TS     int64  `json:"ts"`               // unix ms
	Kind   string `json:"kind"`             // one of the kinds above
	Code   string `json:"code"`             // reason, action or error code
	User   string `json:"user,omitempty"`   // who, when known
	Client string `json:"client,omitempty"` // MQTT client ID or the reply topic
	Remote string `json:"remote,omitempty"` // remote address, when known
	Detail string `json:"detail,omitempty"` // topic or message, cut to 200 bytes
}

// Recorder is a fixed-size ring of events, safe for concurrent use. Add is
// O(1) and allocation-free beyond the strings it is given.
type Recorder struct {
	mu   sync.Mutex
	buf  []Entry
	seq  uint64
	now  func() time.Time
	size int
}

// New returns a Recorder keeping the last n events (at least 1).
func New(n int) *Recorder {
	n = max(n, 1)
	return &Recorder{buf: make([]Entry, n), size: n, now: time.Now}
}

// Add records e, stamping its Seq and, if unset, its TS.
func (r *Recorder) Add(e Entry) {
	if r == nil {
		return
	}
	e.Detail = cut(e.Detail)
	e.Client = cut(e.Client)
	e.User = cut(e.User)
	e.Code = cut(e.Code)
	r.mu.Lock()
	defer r.mu.Unlock()
	if e.TS == 0 {
		e.TS = r.now().UnixMilli()
	}
	r.seq++
	e.Seq = r.seq
	r.buf[(r.seq-1)%uint64(r.size)] = e
}

// Recent returns up to limit events, newest first, of kind (all kinds if
// kind is empty) with a Seq greater than after (0: from the oldest kept).
func (r *Recorder) Recent(kind string, after uint64, limit int) []Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := []Entry{}
	oldest := uint64(1)
	if r.seq > uint64(r.size) {
		oldest = r.seq - uint64(r.size) + 1
	}
	for s := r.seq; s >= oldest && s > after && len(out) < limit; s-- {
		e := r.buf[(s-1)%uint64(r.size)]
		if kind == "" || e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

// Counts returns how many events of each kind the ring holds now.
func (r *Recorder) Counts() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	n := min(r.seq, uint64(r.size))
	for i := uint64(0); i < n; i++ {
		out[r.buf[i].Kind]++
	}
	return out
}

func cut(s string) string {
	if len(s) <= maxField {
		return s
	}
	// Cut on a rune boundary so the JSON stays valid UTF-8.
	i := maxField
	for i > 0 && s[i]&0xC0 == 0x80 {
		i--
	}
	return s[:i] + "…"
}
