package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/imqtt/imqtt/client"
	"github.com/imqtt/imqtt/wire"
)

// cmdListen: imqtt listen
// It catches up from HOME/cursor.json (the inbox and every group: one
// cursor file holds both), prints every event as one JSON line and keeps
// the cursor saved, until SIGINT or SIGTERM.
func cmdListen(ctx context.Context, c *cli, args []string) error {
	if _, err := c.parse(c.flags("listen"), args, 0, 0); err != nil {
		return err
	}
	s, err := c.authed()
	if err != nil {
		return err
	}
	failed := make(chan error, 1) // stdout is gone
	cl, err := client.Dial(ctx, client.Config{
		Server: c.g.server, MQTT: c.g.mqtt,
		User: s.User, Device: s.Device, Token: s.Token,
		Cursor: client.NewFileCursor(c.cursorPath()),
		Logger: c.log,
		OnEvent: func(ev client.Event) {
			if err := c.printEvent(ev.Raw); err != nil {
				select {
				case failed <- err:
				default:
				}
			}
		},
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while connecting
		}
		return err
	}
	defer cl.Close()
	select {
	case <-ctx.Done():
		return nil
	case err := <-failed:
		return fmt.Errorf("write event: %w", err)
	case <-cl.Done():
		return cl.Err()
	}
}

// printEvent writes an event's JSON on one line.
func (c *cli) printEvent(raw json.RawMessage) error {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return err
	}
	b.WriteByte('\n')
	_, err := c.stdout.Write(b.Bytes())
	return err
}

// cmdSync: imqtt sync [--since N]
// It prints every message after the cursor (HOME/cursor.json, or --since
// for the inbox) as one JSON line, the inbox's and then each moved group's,
// and saves the cursor.
func cmdSync(ctx context.Context, c *cli, args []string) error {
	fs := c.flags("sync")
	since := fs.String("since", "", "start after this version instead of the saved cursor")
	limit := fs.Int("limit", 0, "items per request (default: the server's)")
	if _, err := c.parse(fs, args, 0, 0); err != nil {
		return err
	}
	var cur client.CursorStore = client.NewFileCursor(c.cursorPath())
	if *since != "" {
		v, err := strconv.ParseUint(*since, 10, 64)
		if err != nil {
			return usagef("--since wants a version number, not %q", *since)
		}
		cur = startAt{cur, v}
	}
	h, _, err := c.api()
	if err != nil {
		return err
	}
	// An item that does not decode is skipped (and logged) by the SDK, and
	// the cursor moves past it: one poison message must not stop every
	// sync after it.
	err = h.SyncCursor(ctx, cur, *limit, func(m wire.Msg) error {
		b, err := json.Marshal(m)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(c.stdout, "%s\n", b)
		return err
	})
	if n := h.Skipped(); n > 0 {
		c.log.Warn("sync skipped items that could not be decoded", "count", n)
	}
	return err
}

// startAt is a CursorStore that loads a given version (with the saved
// epoch) and saves to the store under it.
type startAt struct {
	client.CursorStore
	ver uint64
}

func (s startAt) Load() (client.Cursor, error) {
	c, err := s.CursorStore.Load()
	c.Ver = s.ver
	return c, err
}

// errNotImplemented marks a command still to come (exit code 2).
var errNotImplemented = errors.New("not implemented yet")
