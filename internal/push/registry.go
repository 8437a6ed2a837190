package push

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/imqtt/imqtt/state"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/wire"
)

// Registration refusals; the API tells each by its code (wire.CodeBadProvider...).
var (
	ErrBadProvider = errors.New("push: unknown provider")
	ErrNoProvider  = errors.New("push: provider not configured on this server")
	ErrBadToken    = errors.New("push: token empty, too long or malformed")
	ErrTokenInUse  = errors.New("push: another user's device holds the token")
	ErrBadTopic    = errors.New("push: topic malformed")
	ErrTooMany     = errors.New("push: the user has the most registrations allowed")
)

// MaxDevices bounds one user's registrations. A device ID is anything a
// login names: without it one account could register devices without end
// and have every message to it pushed to each.
const MaxDevices = 16

// Registry keeps devices' push registrations (the HTTP API's side).
type Registry struct {
	st        store.Push
	providers func(string) bool
	limiter   state.Limiter // nil: no rate
	now       func() time.Time
}

// RegisterLimit bounds one user's registrations (each a synced store
// write): a client re-registering in a loop is refused, not written. The
// burst lets a user register all its devices at once.
var RegisterLimit = state.Limit{Rate: 10, Per: time.Minute, Burst: 2 * MaxDevices}

// RateLimited refuses a registration past RegisterLimit.
type RateLimited struct{ RetryAfter time.Duration }

func (e *RateLimited) Error() string { return "push: registrations too frequent" }

// NewRegistry returns a Registry over st; configured says which providers
// this server pushes through (nil: none); limiter applies RegisterLimit
// per user (nil: none).
func NewRegistry(st store.Push, configured func(string) bool, limiter state.Limiter) *Registry {
	if configured == nil {
		configured = func(string) bool { return false }
	}
	return &Registry{st: st, providers: configured, limiter: limiter, now: time.Now}
}

// Check validates a registration request.
func (r *Registry) Check(req wire.PushRegister) error {
	switch req.Provider {
	case wire.ProviderAPNs, wire.ProviderFCM, wire.ProviderWebhook:
	default:
		return ErrBadProvider
	}
	if !r.providers(req.Provider) {
		return ErrNoProvider
	}
	if len(req.Token) == 0 || len(req.Token) > wire.MaxPushToken {
		return ErrBadToken
	}
	for i := 0; i < len(req.Token); i++ {
		c := req.Token[i]
		if c <= ' ' || c > '~' {
			return ErrBadToken // printable ASCII: it goes into a URL path and headers
		}
		if req.Provider == wire.ProviderAPNs && !isHex(c) {
			return ErrBadToken
		}
	}
	if req.Provider == wire.ProviderAPNs && len(req.Token) < 64 {
		return ErrBadToken
	}
	if len(req.Topic) > 255 {
		return ErrBadTopic
	}
	for i := 0; i < len(req.Topic); i++ {
		c := req.Topic[i]
		if !(isHex(c) || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '.' || c == '-' || c == '_') {
			return ErrBadTopic
		}
	}
	return nil
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

// Register records req for user's device, which logged in with the token
// whose hash is login: the registration ends with that login.
func (r *Registry) Register(ctx context.Context, user, device, login string, req wire.PushRegister) (wire.PushDevice, error) {
	if err := r.Check(req); err != nil {
		return wire.PushDevice{}, err
	}
	if r.limiter != nil {
		// A limiter that fails (Redis away) lets it through, as sends do.
		if d, err := r.limiter.Allow(ctx, "push-register:"+user, RegisterLimit); err == nil && !d.OK {
			return wire.PushDevice{}, &RateLimited{RetryAfter: d.RetryAfter}
		}
	}
	ds, err := r.st.PushDevices(ctx, []string{user})
	if err != nil {
		return wire.PushDevice{}, fmt.Errorf("push devices: %w", err)
	}
	if len(ds) >= MaxDevices && !slices.ContainsFunc(ds, func(d store.PushDevice) bool { return d.Device == device }) {
		return wire.PushDevice{}, ErrTooMany
	}
	d := store.PushDevice{User: user, Device: device, Provider: req.Provider, Token: req.Token, Topic: req.Topic,
		Sandbox: req.Sandbox, Login: login, Created: r.now().UnixMilli()}
	switch err := r.st.PutPushDevice(ctx, d); {
	case errors.Is(err, store.ErrExists):
		return wire.PushDevice{}, ErrTokenInUse
	case err != nil:
		return wire.PushDevice{}, fmt.Errorf("put push device: %w", err)
	}
	return show(d, false), nil
}

// Unregister removes the registration of user's device; store.ErrNotFound
// if it has none.
func (r *Registry) Unregister(ctx context.Context, user, device string) error {
	return r.st.DeletePushDevice(ctx, user, device, "")
}

// Devices lists user's registrations; masked cuts the tokens short (an
// operator's view).
func (r *Registry) Devices(ctx context.Context, user string, masked bool) ([]wire.PushDevice, error) {
	ds, err := r.st.PushDevices(ctx, []string{user})
	if err != nil {
		return nil, fmt.Errorf("push devices: %w", err)
	}
	out := make([]wire.PushDevice, 0, len(ds))
	for _, d := range ds {
		out = append(out, show(d, masked))
	}
	return out, nil
}

func show(d store.PushDevice, masked bool) wire.PushDevice {
	tok := d.Token
	if masked && len(tok) > 8 {
		tok = tok[:4] + "…" + tok[len(tok)-4:]
	}
	return wire.PushDevice{User: d.User, Device: d.Device, Provider: d.Provider, Token: tok, Topic: d.Topic,
		Sandbox: d.Sandbox, Created: d.Created, LastPush: d.LastPush}
}

// DropUser removes every registration of user (a ban).
func (r *Registry) DropUser(ctx context.Context, user string) error {
	return r.st.DeleteUserPushDevices(ctx, user)
}
