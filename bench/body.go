package bench

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"strings"
	"time"
)

// A message body of the bench carries what the receiver needs to account
// for it: "{run}:{stream}:{seq}:{sent unix ns}:" and padding to the body
// size. A flush marker ("{run}:{stream}:flush:{ns}:") is not a counted
// message: it is sent at the end of a run so that a receiver that lost the
// last messages live sees a gap and syncs them, as it would at its next
// real message.

// stamp is a decoded body.
type stamp struct {
	run    string
	stream int
	seq    int
	sent   time.Time
	flush  bool
}

// encodeBody makes a body of at least size bytes.
func encodeBody(run string, stream, seq int, sent time.Time, size int) string {
	return pad(run+":"+strconv.Itoa(stream)+":"+strconv.Itoa(seq)+":"+strconv.FormatInt(sent.UnixNano(), 10)+":", size)
}

// flushBody makes a flush marker for stream.
func flushBody(run string, stream int) string {
	return run + ":" + strconv.Itoa(stream) + ":flush:" + strconv.FormatInt(time.Now().UnixNano(), 10) + ":"
}

func pad(s string, size int) string {
	if len(s) >= size {
		return s
	}
	return s + strings.Repeat("x", size-len(s))
}

// parseBody decodes a body of run; ok is false for anything else (another
// run's message, a body not from the bench).
func parseBody(run, body string) (st stamp, ok bool) {
	parts := strings.SplitN(body, ":", 5)
	if len(parts) < 5 || parts[0] != run {
		return stamp{}, false
	}
	s, err := strconv.Atoi(parts[1])
	if err != nil || s < 0 {
		return stamp{}, false
	}
	ns, err := strconv.ParseInt(parts[3], 10, 64)
	if err != nil {
		return stamp{}, false
	}
	st = stamp{run: run, stream: s, sent: time.Unix(0, ns)}
	if parts[2] == "flush" {
		st.flush = true
		return st, true
	}
	if st.seq, err = strconv.Atoi(parts[2]); err != nil || st.seq < 0 {
		return stamp{}, false
	}
	return st, true
}

// newRunID is 8 random hex digits naming one run; bench user names and
// bodies carry it, so runs against one server never mix.
func newRunID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
