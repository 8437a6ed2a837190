// Package bench is the load tool behind `imqtt bench`: scenarios (p2p, conns,
// sync, group, replay) that drive an imqttd through the Go SDK, paho and raw MQTT
// packets, or with Plain any MQTT broker on plain topics, so that the same
// tool measures imqttd, bare mochi-mqtt and Mosquitto in one run.
//
// Every scenario counts a message as delivered once the receiving
// application sees it, live or recovered by sync, and reports loss (acked,
// never delivered by the end) and duplicates apart from the rate.
package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/imqtt/imqtt/client"
	"github.com/imqtt/imqtt/wire"
)

// ErrUnreachable wraps the failure to reach the target at all.
var ErrUnreachable = errors.New("target unreachable")

// Target is what a scenario runs against.
type Target struct {
	// Server is imqttd's HTTP base URL ("http://127.0.0.1:8080"). Unused with Plain.
	Server string
	// MQTT is the broker's host:port. Empty: imqttd's /v1/endpoints.
	MQTT string
	// Plain: any MQTT broker, no accounts, plain topics bench/{i}.
	Plain bool
	// Label names the target in reports ("imqttd", "mosquitto", "mochi").
	Label string
}

func (t Target) label() string {
	switch {
	case t.Label != "":
		return t.Label
	case t.Plain:
		return "plain"
	}
	return "imqttd"
}

func (t Target) validate() error {
	if t.Plain && t.MQTT == "" {
		return errors.New("a plain target needs the broker's MQTT address")
	}
	if !t.Plain && t.Server == "" {
		return errors.New("an imqttd target needs its HTTP server URL")
	}
	return nil
}

// httpClient is shared by a run's HTTP calls, with enough idle connections
// for the concurrent senders and logins.
var httpClient = &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
	Proxy: nil, MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: 90 * time.Second,
	DialContext: (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
}}

func (t Target) api(token string) *client.HTTP {
	return &client.HTTP{Server: t.Server, Token: token, Client: httpClient}
}

// mqttAddr is the broker address: Target.MQTT, or the first of imqttd's endpoints.
func (t Target) mqttAddr(ctx context.Context) (string, error) {
	if t.MQTT != "" {
		return t.MQTT, nil
	}
	eps, err := t.api("").Endpoints(ctx)
	if err != nil {
		return "", fmt.Errorf("%w: %s: %v", ErrUnreachable, t.Server, err)
	}
	var addrs []string
	for _, e := range eps.Endpoints {
		if e.MQTT != "" {
			addrs = append(addrs, e.MQTT)
		}
	}
	return client.PickBroker(t.Server, addrs, 0)
}

// ping checks that imqttd answers before any account is made, so an
// unreachable server fails at once with a clear message.
func (t Target) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := t.api("").Endpoints(ctx); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrUnreachable, t.Server, err)
	}
	return nil
}

// benchPassword is every bench account's password.
const benchPassword = "bench-password"

// account is a registered bench user with a token for device "bench".
type account struct {
	user, token string
}

// accounts registers users (an existing one is fine: its password is the
// bench's) and logs in those with login set, setupWorkers at a time. Password
// hashing makes this the slow part of a scenario's setup: about 50 ms of
// server CPU per register and per login with imqttd's default argon2id cost.
func (t Target) accounts(ctx context.Context, users []string, login func(i int) bool, progress *progress) ([]account, error) {
	out := make([]account, len(users))
	err := eachOf(ctx, len(users), "accounts", progress, func(ctx context.Context, i int) error {
		return t.account(ctx, users[i], login(i), &out[i])
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// setupWorkers is how many registrations or logins the bench has in flight.
const setupWorkers = 8

// eachOf calls f for 0 ≤ i < n, setupWorkers at a time, counting on the
// progress line as what; it stops at the first error and returns it.
func eachOf(ctx context.Context, n int, what string, progress *progress, f func(ctx context.Context, i int) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(setupWorkers)
	var done atomic.Int64
	for i := range n {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			if err := f(gctx, i); err != nil {
				return err
			}
			progress.setf("%s %d/%d", what, done.Add(1), n)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}

func (t Target) account(ctx context.Context, user string, login bool, out *account) error {
	h := t.api("")
	if err := h.Register(ctx, user, benchPassword); err != nil {
		var we *wire.Error
		if !errors.As(err, &we) {
			return fmt.Errorf("%w: %v", ErrUnreachable, err)
		}
		if we.Code != wire.CodeExists {
			return err
		}
	}
	out.user = user
	if !login {
		return nil
	}
	s, err := h.Login(ctx, user, benchPassword, "bench")
	if err != nil {
		return err
	}
	out.token = s.Token
	return nil
}

// loopback reports whether addr's host is a loopback address.
func loopback(addr string) bool {
	if u, err := url.Parse(addr); err == nil && u.Host != "" {
		addr = u.Host
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// deviceTokens logs in n devices, device(i) giving the user and device of
// the i-th, setupWorkers at a time; it returns their tokens.
func (t Target) deviceTokens(ctx context.Context, n int, device func(i int) (user, dev string), progress *progress) ([]string, error) {
	out := make([]string, n)
	err := eachOf(ctx, n, "logins", progress, func(ctx context.Context, i int) error {
		user, dev := device(i)
		s, err := t.api("").Login(ctx, user, benchPassword, dev)
		if err != nil {
			return fmt.Errorf("login %s/%s: %w", user, dev, err)
		}
		out[i] = s.Token
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
