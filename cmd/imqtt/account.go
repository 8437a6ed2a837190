package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/imqtt/imqtt/client"
	"github.com/imqtt/imqtt/wire"
)

// userIDRule says what a user or group ID is (wire.ValidUser).
const userIDRule = "want 1-64 of A-Z a-z 0-9 _ . - not starting with a dot (case is ignored)"

// cmdRegister: imqtt register USER [--password P | --password-stdin]
func cmdRegister(ctx context.Context, c *cli, args []string) error {
	fs := c.flags("register")
	var pw passwordFlags
	pw.register(fs, "the new account's password")
	pos, err := c.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	user := pos[0]
	id, ok := wire.NormUser(user)
	if !ok {
		return usagef("bad user ID %q: %s", user, userIDRule)
	}
	p, err := c.password(pw, id, true)
	if err != nil {
		return err
	}
	if err := client.Register(ctx, c.g.server, user, p); err != nil {
		return err
	}
	// The server keeps the ID in lower case and user as the display name.
	return c.printJSON(wire.Registered{User: id, Display: user})
}

// cmdLogin: imqtt login USER [--password P | --password-stdin] [--device D]
func cmdLogin(ctx context.Context, c *cli, args []string) error {
	fs := c.flags("login")
	var pw passwordFlags
	pw.register(fs, "the account's password")
	device := fs.String("device", defaultDevice, "this device's ID")
	pos, err := c.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	user, ok := wire.NormUser(pos[0])
	if !ok {
		return usagef("bad user ID %q: %s", pos[0], userIDRule)
	}
	if !wire.ValidDevice(*device) {
		return usagef("bad device ID %q: want 1-64 of A-Z a-z 0-9 _ -", *device)
	}
	p, err := c.password(pw, user, false)
	if err != nil {
		return err
	}
	s, err := client.Login(ctx, c.g.server, user, p, *device)
	if err != nil {
		return err
	}
	old, oldErr := c.loadSession()
	if err := c.saveSession(session{Server: c.g.server, User: s.User, Device: s.Device, Token: s.Token, ExpiresAt: s.ExpiresAt}); err != nil {
		return fmt.Errorf("save session: %w", err)
	}
	// The sync cursor belongs to one device of one user on one server.
	if oldErr != nil || old.User != s.User || old.Device != s.Device || old.Server != c.g.server {
		if err := os.Remove(c.cursorPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("reset the sync cursor: %w", err)
		}
	}
	out := map[string]any{"user": s.User, "device": s.Device, "expires_at": s.ExpiresAt}
	if s.Display != "" {
		out["display"] = s.Display
	}
	return c.printJSON(out)
}

// cmdLogout: imqtt logout
func cmdLogout(ctx context.Context, c *cli, args []string) error {
	fs := c.flags("logout")
	if _, err := c.parse(fs, args, 0, 0); err != nil {
		return err
	}
	s, err := c.loadSession()
	if err != nil {
		return err
	}
	err = (&client.HTTP{Server: c.g.server, Token: s.Token}).Logout(ctx)
	var we *wire.Error
	if err != nil && !(errors.As(err, &we) && (we.Code == wire.CodeUnauthorized || we.Code == wire.CodeNotFound)) {
		return fmt.Errorf("%w (the session is kept; try again)", err)
	}
	// Revoked now, or already invalid: forget it.
	if err := os.Remove(c.sessionPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return c.printJSON(map[string]any{"user": s.User, "device": s.Device, "logged_out": true})
}
