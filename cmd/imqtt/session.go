package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/imqtt/imqtt/client"
)

// session is HOME/session.json (mode 0600): what login saved.
type session struct {
	Server    string `json:"server"`
	User      string `json:"user"`
	Device    string `json:"device"`
	Token     string `json:"token"`
	ExpiresAt int64  `json:"expires_at,omitempty"` // unix ms
}

// errNoSession says no one is logged in.
var errNoSession = errors.New("not logged in: run imqtt login USER --password P")

func (c *cli) sessionPath() string { return filepath.Join(c.g.home, "session.json") }
func (c *cli) cursorPath() string  { return filepath.Join(c.g.home, "cursor.json") }

// loadSession reads the saved session; errNoSession if there is none.
func (c *cli) loadSession() (session, error) {
	b, err := os.ReadFile(c.sessionPath())
	if errors.Is(err, fs.ErrNotExist) {
		return session{}, errNoSession
	}
	if err != nil {
		return session{}, err
	}
	var s session
	if err := json.Unmarshal(b, &s); err != nil {
		return session{}, fmt.Errorf("read %s: %w", c.sessionPath(), err)
	}
	if s.Token == "" || s.User == "" {
		return session{}, errNoSession
	}
	return s, nil
}

// saveSession writes the session atomically, readable by its owner only.
func (c *cli) saveSession(s session) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return client.WriteFileAtomic(c.sessionPath(), append(b, '\n'), 0o600)
}

// authed returns the saved session, refusing one that has expired.
func (c *cli) authed() (session, error) {
	s, err := c.loadSession()
	if err != nil {
		return session{}, err
	}
	if s.ExpiresAt > 0 && time.Now().UnixMilli() >= s.ExpiresAt {
		return session{}, fmt.Errorf("the session of %s/%s expired at %s: run imqtt login again",
			s.User, s.Device, time.UnixMilli(s.ExpiresAt).Format(time.RFC3339))
	}
	return s, nil
}

// api returns an HTTP API client with the saved token.
func (c *cli) api() (*client.HTTP, session, error) {
	s, err := c.authed()
	if err != nil {
		return nil, session{}, err
	}
	return &client.HTTP{Server: c.g.server, Token: s.Token, Logger: c.log}, s, nil
}

// printJSON writes v as one line of JSON.
func (c *cli) printJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(c.stdout, "%s\n", b)
	return err
}
