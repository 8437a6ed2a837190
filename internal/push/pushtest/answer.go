// Package pushtest holds in-process fakes of the push providers that speak
// their real protocols: an APNs HTTP/2 server that checks the provider JWT,
// an FCM HTTP v1 server with its OAuth2 token endpoint, and a webhook
// receiver that checks imqtt's signature. Each records what it accepted
// and answers per device token from a table the test sets, so a test can
// make one token invalid, another rate limited, a third slow.
//
// A request imqtt must never make (a bad signature, a missing header, a
// malformed payload) is a violation: the fake answers it as the real
// service would and fails the test, unless the test called
// AllowViolations (to check the fake itself).
package pushtest

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Answer is how a fake answers a request for a token.
type Answer struct {
	Status     int           // 0: 200
	Reason     string        // APNs reason, FCM errorCode; "" for a default
	RetryAfter time.Duration // sent as Retry-After (whole seconds) when > 0
	Delay      time.Duration // waited before answering (cut short if the client goes away)
}

// OK is the default answer.
var OK = Answer{}

// Delay answers 200 after d.
func Delay(d time.Duration) Answer { return Answer{Delay: d} }

// TooManyRequests answers 429 with Retry-After: after.
func TooManyRequests(after time.Duration) Answer {
	return Answer{Status: http.StatusTooManyRequests, Reason: "TooManyRequests", RetryAfter: after}
}

// Unavailable answers 503.
var Unavailable = Answer{Status: http.StatusServiceUnavailable, Reason: "ServiceUnavailable"}

// answers is a goroutine-safe table of answers by token, and the
// violations a fake saw.
type answers struct {
	t        testing.TB
	mu       sync.Mutex
	byToken  map[string]Answer
	def      Answer
	requests int
	allow    bool
	viols    []string
}

func newAnswers(t testing.TB) *answers {
	return &answers{t: t, byToken: map[string]Answer{}}
}

// SetAnswer makes the fake answer a for token from now on.
func (a *answers) SetAnswer(token string, ans Answer) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.byToken[token] = ans
}

// SetDefault sets the answer for tokens without one of their own (a
// provider that is down: SetDefault(Unavailable); back: SetDefault(OK)).
func (a *answers) SetDefault(ans Answer) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.def = ans
}

// Requests is how many requests reached the fake, answered or not.
func (a *answers) Requests() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.requests
}

// AllowViolations makes a violation a recorded answer, not a test failure.
func (a *answers) AllowViolations() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.allow = true
}

// Violations returns what the fake refused that imqtt should never send.
func (a *answers) Violations() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.viols...)
}

func (a *answers) count() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.requests++
}

func (a *answers) violation(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	a.mu.Lock()
	a.viols = append(a.viols, msg)
	allow := a.allow
	a.mu.Unlock()
	if !allow {
		a.t.Errorf("pushtest: protocol violation: %s", msg)
	}
}

func (a *answers) lookup(token string) Answer {
	a.mu.Lock()
	defer a.mu.Unlock()
	if ans, ok := a.byToken[token]; ok {
		return ans
	}
	return a.def
}

// wait waits ans.Delay, or until the request is gone; false if it is.
func (ans Answer) wait(ctx context.Context) bool {
	if ans.Delay <= 0 {
		return true
	}
	timer := time.NewTimer(ans.Delay)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (ans Answer) status() int {
	if ans.Status == 0 {
		return http.StatusOK
	}
	return ans.Status
}

func (ans Answer) setRetryAfter(h http.Header) {
	if ans.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(int((ans.RetryAfter+time.Second-1)/time.Second)))
	}
}

// recorder is a goroutine-safe list.
type recorder[T any] struct {
	mu   sync.Mutex
	list []T
}

func (r *recorder[T]) add(v T) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.list = append(r.list, v)
}

func (r *recorder[T]) all() []T {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]T(nil), r.list...)
}
