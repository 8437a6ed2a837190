// Command moderation is a small moderation service for imqtt's
// message.before_send webhook (docs/integration.md#messagebefore_send): it
// refuses a send that holds one of the --reject terms and masks the
// --mask terms with '*', and allows the rest. It checks every request as
// a receiver must, with the standard library only: the HMAC-SHA256
// signature over timestamp + "." + body, a replay window, and each event
// ID once.
//
//	go run ./examples/moderation --addr 127.0.0.1:9090 --reject "buy now,free money" --mask "darn,heck"
//	IMQTT_WEBHOOK_SECRET=S imqttd --webhook-url http://127.0.0.1:9090/ --webhook-events message.before_send
//
// (imqttd's built-in filter, --filter-words, does word lists faster and
// without a round trip; a service like this one is where rules that need
// your data go: a user's reputation, a group's policy, a classifier.)
package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	fs := flag.NewFlagSet("moderation", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:9090", "listen address")
	reject := fs.String("reject", "", "comma-separated terms: a send holding one is refused")
	mask := fs.String("mask", "", "comma-separated terms: masked with '*' in the stored message")
	_ = fs.Parse(os.Args[1:])
	secret := os.Getenv("IMQTT_WEBHOOK_SECRET")
	if secret == "" {
		log.Fatal("moderation: set IMQTT_WEBHOOK_SECRET to imqttd's --webhook-secret")
	}
	m := New([]byte(secret), split(*reject), split(*mask))
	srv := &http.Server{Addr: *addr, Handler: m, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Shutdown(context.Background())
	}()
	log.Printf("moderation: listening on %s", *addr)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}

func split(list string) []string {
	var out []string
	for _, t := range strings.Split(list, ",") {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, strings.ToLower(t))
		}
	}
	return out
}

// Moderator answers message.before_send.
type Moderator struct {
	secret       []byte
	reject, mask []string
	maxAge       time.Duration
	now          func() time.Time

	mu   sync.Mutex
	seen map[string]time.Time // event IDs answered within maxAge: a replay is refused
}

// New returns a Moderator; terms are matched lower case.
func New(secret []byte, reject, mask []string) *Moderator {
	return &Moderator{secret: secret, reject: reject, mask: mask, maxAge: 5 * time.Minute, now: time.Now,
		seen: make(map[string]time.Time)}
}

// event is the webhook body; data is a before_send's.
type event struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	Data struct {
		From string `json:"from"`
		Type string `json:"type"`
		Body string `json:"body"`
	} `json:"data"`
}

func (m *Moderator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	if err := m.verify(r.Header.Get("X-Imqtt-Signature"), r.Header.Get("X-Imqtt-Timestamp"), body); err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	var ev event
	if err := json.Unmarshal(body, &ev); err != nil || ev.ID == "" {
		http.Error(w, "not an event", http.StatusBadRequest)
		return
	}
	if !m.first(ev.ID) {
		http.Error(w, "replayed", http.StatusConflict)
		return
	}
	if ev.Type != "message.before_send" {
		w.WriteHeader(http.StatusNoContent) // another event: heard
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(m.verdict(ev.Data.Type, ev.Data.Body))
}

// verify checks the signature in constant time, and the timestamp's age.
func (m *Moderator) verify(sig, ts string, body []byte) error {
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || !strings.HasPrefix(sig, "v1=") {
		return errors.New("missing or malformed signature")
	}
	got, err := hex.DecodeString(sig[len("v1="):])
	if err != nil {
		return errors.New("malformed signature")
	}
	mac := hmac.New(sha256.New, m.secret)
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	if !hmac.Equal(got, mac.Sum(nil)) {
		return errors.New("bad signature")
	}
	if age := m.now().Sub(time.Unix(sec, 0)); age > m.maxAge || age < -m.maxAge {
		return errors.New("timestamp outside the replay window")
	}
	return nil
}

// first reports whether id is new within the replay window, and remembers it.
func (m *Moderator) first(id string) bool {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if at, ok := m.seen[id]; ok && now.Sub(at) <= m.maxAge {
		return false
	}
	if len(m.seen) > 100_000 {
		for k, at := range m.seen {
			if now.Sub(at) > m.maxAge {
				delete(m.seen, k)
			}
		}
	}
	m.seen[id] = now
	return true
}

// Verdict is the answer to a before_send.
type Verdict struct {
	Action  string  `json:"action"`
	Message string  `json:"message,omitempty"`
	Body    *string `json:"body,omitempty"`
}

func (m *Moderator) verdict(typ, body string) Verdict {
	if typ != "text" {
		return Verdict{Action: "allow"}
	}
	lower := lowerASCII(body) // same byte offsets as body
	for _, t := range m.reject {
		if strings.Contains(lower, t) {
			return Verdict{Action: "reject", Message: fmt.Sprintf("this message looks like spam (%d characters)", len([]rune(body)))}
		}
	}
	masked := []rune(body)
	changed := false
	for _, t := range m.mask {
		for i := 0; ; {
			j := strings.Index(lower[i:], t)
			if j < 0 {
				break
			}
			start, end := len([]rune(body[:i+j])), len([]rune(body[:i+j+len(t)]))
			for k := start; k < end; k++ {
				masked[k] = '*'
			}
			changed = true
			i += j + len(t)
		}
	}
	if !changed {
		return Verdict{Action: "allow"}
	}
	s := string(masked)
	return Verdict{Action: "modify", Body: &s}
}

// lowerASCII lowers A–Z only, so that its byte offsets are body's. (The
// terms are matched as written, in any ASCII case: a service for other
// scripts would normalise as imqttd's own filter does, NFKC and case
// folding, keeping a map of offsets.)
func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
