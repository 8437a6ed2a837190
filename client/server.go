package client

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/imqtt/imqtt/wire"
)

// Server calls the server API (docs/http.md#server-api): a business
// backend's door, opened by a server key (--server-key), not a user's
// token. It creates users without a password, mints their device tokens,
// sends as a user or as the reserved sender "system", and deletes a user.
// Errors are the HTTP client's: a *wire.Error wrapped with what was being
// done (use errors.As; wire.Error.Code says which).
//
// Never ship a server key in an app: it acts as every user.
type Server struct {
	BaseURL string       // "http://127.0.0.1:8080"
	Key     string       // a server key
	Client  *http.Client // nil: one with a 60 s timeout
}

// System is the reserved sender of the server's own messages: Send from it
// reaches any user or group without membership.
const System = "system"

// NewServer returns a client of the server API at baseURL
// ("http://127.0.0.1:8080") with a server key.
func NewServer(baseURL, key string) *Server {
	return &Server{BaseURL: baseURL, Key: key}
}

// do calls the server API as HTTP.do does, with the key as the token.
func (s *Server) do(ctx context.Context, method, path string, in, out any) error {
	h := HTTP{Server: s.BaseURL, Token: s.Key, Client: s.Client}
	return h.do(ctx, method, path, nil, in, out)
}

// CreateUser creates user without a password (POST /v1/server/users) and
// returns its canonical ID. It logs in only by a token MintToken makes.
// Codes: exists (also a deleted user's ID, which stays taken), bad_request
// (a malformed or reserved ID).
func (s *Server) CreateUser(ctx context.Context, user string) (string, error) {
	var out struct {
		User string `json:"user"`
	}
	if err := s.do(ctx, http.MethodPost, "/v1/server/users", map[string]string{"user": user}, &out); err != nil {
		return "", fmt.Errorf("create user %s: %w", user, err)
	}
	return out.User, nil
}

// MintToken issues a login token for user's device (POST /v1/server/tokens),
// valid for ttl (0: the server's default, 30 days; at most 365 days; whole
// seconds). It works as a password login's token: as the MQTT password
// and as the Bearer token of the HTTP API. Codes: no_such_user, bad_request.
func (s *Server) MintToken(ctx context.Context, user, device string, ttl time.Duration) (wire.Session, error) {
	in := struct {
		User   string `json:"user"`
		Device string `json:"device"`
		TTL    int64  `json:"ttl,omitempty"`
	}{user, device, int64(ttl / time.Second)}
	var sess wire.Session
	if err := s.do(ctx, http.MethodPost, "/v1/server/tokens", in, &sess); err != nil {
		return wire.Session{}, fmt.Errorf("mint token %s/%s: %w", user, device, err)
	}
	if sess.Token == "" {
		return wire.Session{}, fmt.Errorf("mint token %s/%s: the server returned no token", user, device)
	}
	return sess, nil
}

// Send stores and delivers m as a message from from, a user or System
// (POST /v1/server/messages), and returns its ack. It is deduplicated by
// (from, m.CMID) like every send: resending after an error that is
// Retryable, or replaying the call, answers with the first ack and stores
// nothing twice. Send does not fill an empty CMID.
func (s *Server) Send(ctx context.Context, from string, m wire.Send) (wire.Ack, error) {
	in := struct {
		From string `json:"from"`
		wire.Send
	}{from, m}
	var a wire.Ack
	if err := s.do(ctx, http.MethodPost, "/v1/server/messages", in, &a); err != nil {
		return wire.Ack{}, fmt.Errorf("send %s as %s: %w", m.CMID, from, err)
	}
	if a.Kind == "" {
		a.Kind = wire.KindAck
	}
	return a, nil
}

// DeleteUser deletes user and their data (DELETE /v1/server/users/{user}):
// their devices are disconnected, tokens revoked, the messages they sent
// anonymised, the rest removed, and the ID kept from registration. A large
// history takes several requests (the server answers 202 while it works);
// DeleteUser repeats the request until the server says it is done, or ctx
// ends (then call it again: it carries on where it stopped). Deleting a
// deleted user is no error; an unknown one is no_such_user.
func (s *Server) DeleteUser(ctx context.Context, user string) error {
	id, err := pathID("user", user)
	if err != nil {
		return fmt.Errorf("delete user: %w", err)
	}
	for {
		var out struct {
			Status string `json:"status"`
		}
		if err := s.do(ctx, http.MethodDelete, "/v1/server/users/"+id, nil, &out); err != nil {
			return fmt.Errorf("delete user %s: %w", id, err)
		}
		if out.Status != "deleting" {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("delete user %s: not done yet: %w", id, err)
		}
	}
}
