package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/imqtt/imqtt/client"
	"github.com/imqtt/imqtt/internal/backup"
	"github.com/imqtt/imqtt/wire"
)

// adminUsage is the synopsis of imqtt admin.
const adminUsage = "(backup > FILE.tar | stats | clients [list] [--user U] [--device D] [--ip A] [--limit N] [--cursor C] | clients kick USER/DEVICE" +
	" | users search [PREFIX] [--after U] [--limit N] | users (show | unban | revoke) USER | users ban USER [--for D] [--reason R] | users delete USER --yes" +
	" | groups search [PREFIX] [--after G] [--limit N] | groups show G [--after U] [--limit N] | groups remove-member G USER | groups disband G --yes)" +
	" [--admin-token T | --admin-token-stdin]"

// adminWords are adminUsage's subcommands, two levels deep, for completion.
var adminWords = []word{
	{name: "backup"},
	{name: "stats"},
	{"clients", choices("list", "kick")},
	{"users", choices("search", "show", "ban", "unban", "revoke", "delete")},
	{"groups", choices("search", "show", "remove-member", "disband")},
}

// cmdAdmin: imqtt admin SUBCOMMAND [--admin-token T]
//
// The operator's commands, with the server's admin token (--admin-token,
// --admin-token-stdin or IMQTT_ADMIN_TOKEN; never saved); each prints the
// admin API's reply as one line of JSON (docs/cli.md#admin). backup
// streams GET /v1/admin/backup to standard output, checking it as it goes
// (backup.Verify): a stream that ends without its manifest, or whose files
// do not match it, is reported as truncated and exits 1. stats and clients are the cluster's (every
// node's, each labelled). Deleting a user and disbanding a group cannot be
// undone: they want --yes.
func cmdAdmin(ctx context.Context, c *cli, args []string) error {
	fs := c.flags("admin")
	token := fs.String("admin-token", "", "the server's admin token (visible to ps: prefer IMQTT_ADMIN_TOKEN or --admin-token-stdin)")
	tokenStdin := fs.Bool("admin-token-stdin", false, "read the admin token from the first line of standard input")
	after := fs.String("after", "", "search, groups show: the page after this ID (next_after of the previous page)")
	limit := fs.Int("limit", 0, "search, clients, groups show: at most this many (default: the server's)")
	cursor := fs.String("cursor", "", "clients: the page after this (next_cursor of the previous page)")
	user := fs.String("user", "", "clients: part of the user ID")
	device := fs.String("device", "", "clients: part of the device ID")
	ip := fs.String("ip", "", "clients: part of the address")
	banFor := fs.Duration("for", 0, "users ban: how long (default: until removed)")
	reason := fs.String("reason", "", "users ban: why (shown to operators)")
	yes := fs.Bool("yes", false, "users delete, groups disband: yes, for good")
	pos, err := c.parse(fs, args, 1, 4)
	if err != nil {
		return err
	}
	switch {
	case *token != "" && *tokenStdin:
		return usagef("give --admin-token or --admin-token-stdin, not both")
	case *tokenStdin:
		if *token, err = readSecretLine(c.env.stdin, "--admin-token-stdin", "admin token"); err != nil {
			return err
		}
	case *token == "":
		*token = c.env.getenv("IMQTT_ADMIN_TOKEN")
	}
	if *token == "" {
		return usagef("no admin token: set IMQTT_ADMIN_TOKEN or pipe it to --admin-token-stdin (--admin-token T is visible to ps)")
	}
	a := adminClient{c: c, h: &client.HTTP{Server: c.g.server, Token: *token, Logger: c.log}}
	page := func(q url.Values) url.Values {
		if *after != "" {
			q.Set("after", *after)
		}
		if *limit != 0 {
			q.Set("limit", strconv.Itoa(*limit))
		}
		return q
	}
	// id checks the user or group ID pos[i], which goes into a path: ".."
	// or "a/b" would name another route.
	id := func(i int, what string) (string, error) {
		if !wire.ValidUser(pos[i]) {
			return "", usagef("bad %s ID %q: %s", what, pos[i], userIDRule)
		}
		return pos[i], nil
	}
	want := func(n int) error {
		if len(pos) != n {
			return usagef("admin %s", adminUsage)
		}
		return nil
	}
	switch strings.Join(pos[:min(2, len(pos))], " ") {
	case "backup":
		if c.terminal(c.stdout) {
			return usagef("refusing to write a tar to a terminal: redirect it (imqtt admin backup > backup.tar)")
		}
		return a.backup(ctx)
	case "stats":
		return a.print(ctx, http.MethodGet, "cluster/stats", nil, nil)
	case "clients", "clients list":
		q := url.Values{}
		for k, v := range map[string]string{"user": *user, "device": *device, "ip": *ip, "cursor": *cursor} {
			if v != "" {
				q.Set(k, v)
			}
		}
		if *limit != 0 {
			q.Set("limit", strconv.Itoa(*limit))
		}
		return a.print(ctx, http.MethodGet, "cluster/clients", q, nil)
	case "clients kick":
		if err := want(3); err != nil {
			return err
		}
		u, d, ok := strings.Cut(pos[2], "/")
		if !ok || !wire.ValidUser(u) || !wire.ValidDevice(d) {
			return usagef("admin clients kick USER/DEVICE: %q is not a user ID and a device ID", pos[2])
		}
		return a.print(ctx, http.MethodPost, "clients/"+u+"/"+d+"/kick", nil, nil)
	case "users search", "groups search":
		if len(pos) > 3 {
			return usagef("admin %s", adminUsage)
		}
		q := url.Values{}
		if len(pos) == 3 {
			q.Set("prefix", pos[2])
		}
		return a.print(ctx, http.MethodGet, pos[0], page(q), nil)
	case "users show":
		if err := want(3); err != nil {
			return err
		}
		u, err := id(2, "user")
		if err != nil {
			return err
		}
		return a.print(ctx, http.MethodGet, "users/"+u, nil, nil)
	case "users revoke":
		if err := want(3); err != nil {
			return err
		}
		u, err := id(2, "user")
		if err != nil {
			return err
		}
		return a.print(ctx, http.MethodPost, "users/"+u+"/revoke", nil, nil)
	case "users ban":
		if err := want(3); err != nil {
			return err
		}
		if *banFor < 0 || (*banFor > 0 && *banFor < time.Second) {
			return usagef("--for: a positive duration of at least 1s")
		}
		return a.print(ctx, http.MethodPost, "bans", nil, map[string]any{"user": pos[2], "seconds": int64(banFor.Seconds()), "reason": *reason})
	case "users unban":
		if err := want(3); err != nil {
			return err
		}
		return a.unban(ctx, pos[2])
	case "users delete":
		if err := want(3); err != nil {
			return err
		}
		u, err := id(2, "user")
		if err != nil {
			return err
		}
		if !*yes {
			return usagef("deleting %s cannot be undone: add --yes", u)
		}
		return a.deleteUser(ctx, u)
	case "groups show":
		if err := want(3); err != nil {
			return err
		}
		g, err := id(2, "group")
		if err != nil {
			return err
		}
		return a.print(ctx, http.MethodGet, "groups/"+g, page(url.Values{}), nil)
	case "groups remove-member":
		if err := want(4); err != nil {
			return err
		}
		g, err := id(2, "group")
		if err != nil {
			return err
		}
		u, err := id(3, "user")
		if err != nil {
			return err
		}
		return a.print(ctx, http.MethodDelete, "groups/"+g+"/members/"+u, nil, nil)
	case "groups disband":
		if err := want(3); err != nil {
			return err
		}
		g, err := id(2, "group")
		if err != nil {
			return err
		}
		if !*yes {
			return usagef("disbanding %s cannot be undone: add --yes", g)
		}
		return a.print(ctx, http.MethodDelete, "groups/"+g, nil, nil)
	}
	return usagef("admin %s", adminUsage)
}

// adminClient calls the admin API, with the admin token as h's.
type adminClient struct {
	c *cli
	h *client.HTTP
}

// do calls path under /v1/admin/ and returns the reply's status and body;
// an error reply is an error naming the status and the server's code and
// message.
func (a adminClient) do(ctx context.Context, method, path string, q url.Values, body any) (int, []byte, error) {
	code, raw, err := a.h.Call(ctx, method, "/v1/admin/"+path, q, body)
	return code, raw, a.refused(code, err)
}

// refused names the status of a reply the server refused.
func (a adminClient) refused(code int, err error) error {
	if err != nil && code != 0 {
		return fmt.Errorf("server answered %d %s: %w", code, http.StatusText(code), err)
	}
	return err
}

// print calls the admin API and prints its reply (one line of JSON; an
// empty reply prints {"ok":true}).
func (a adminClient) print(ctx context.Context, method, path string, q url.Values, body any) error {
	_, raw, err := a.do(ctx, method, path, q, body)
	if err != nil {
		return err
	}
	return a.printRaw(raw)
}

func (a adminClient) printRaw(raw []byte) error {
	if len(bytes.TrimSpace(raw)) == 0 {
		raw = []byte(`{"ok":true}`)
	}
	var v json.RawMessage = bytes.TrimSpace(raw)
	return a.c.printJSON(v)
}

// unban lifts every ban naming user.
func (a adminClient) unban(ctx context.Context, user string) error {
	_, raw, err := a.do(ctx, http.MethodGet, "bans", nil, nil)
	if err != nil {
		return err
	}
	var list struct {
		Bans []struct{ ID, User string }
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		return fmt.Errorf("read the bans: %w", err)
	}
	var lifted []string
	for _, b := range list.Bans {
		if strings.EqualFold(b.User, user) {
			// b.ID is the server's, not the operator's: escaping is enough.
			if _, _, err := a.do(ctx, http.MethodDelete, "bans/"+url.PathEscape(b.ID), nil, nil); err != nil {
				return err
			}
			lifted = append(lifted, b.ID)
		}
	}
	if len(lifted) == 0 {
		return fmt.Errorf("no ban of %s in force", user)
	}
	return a.c.printJSON(map[string]any{"user": user, "lifted": lifted})
}

// deleteUser deletes a user, asking again while the server answers 202
// (more left to do), for at most a few minutes.
func (a adminClient) deleteUser(ctx context.Context, user string) error {
	deadline := time.Now().Add(5 * time.Minute)
	for {
		code, raw, err := a.do(ctx, http.MethodDelete, "users/"+user, nil, nil)
		if err != nil {
			return err
		}
		if code != http.StatusAccepted || time.Now().After(deadline) {
			return a.printRaw(raw)
		}
		fmt.Fprintf(a.c.stderr, "deleting %s: more to do, asking again\n", user)
	}
}

func (a adminClient) backup(ctx context.Context) error {
	c := a.c
	code, stream, err := a.h.Stream(ctx, http.MethodGet, "/v1/admin/backup", nil, nil)
	if err != nil {
		return a.refused(code, err)
	}
	defer stream.Close()
	out := &errWriter{w: c.stdout}
	var prog *meter // stdout is the tar: a person waits when stderr is a terminal
	if c.terminal(c.stderr) {
		prog = newMeter(c.stderr, "backup", -1, time.Now)
	}
	start := time.Now()
	var src io.Reader = stream
	if prog != nil {
		src = meteredReader{stream, prog}
	}
	body := io.TeeReader(src, out)
	m, verr := backup.Verify(body)
	if verr == nil {
		_, verr = io.Copy(io.Discard, body) // the tar's end blocks
	}
	prog.finish()
	took := time.Since(start)
	switch {
	case out.err != nil:
		return fmt.Errorf("write the backup: %w", out.err)
	case verr != nil:
		return fmt.Errorf("backup truncated or corrupt after %d bytes, do not keep it: %w", out.n, verr)
	}
	fmt.Fprintf(c.stderr, "backup of node %s (epoch %s, taken %s): %d files, %d bytes in %s (%.1f MB/s), verified\n",
		m.Node, m.Epoch, m.Time.UTC().Format(time.RFC3339), len(m.Files), out.n, took.Round(time.Millisecond), float64(out.n)/1e6/max(took.Seconds(), 1e-9))
	return nil
}

// errWriter keeps the first error of its writer, so that a full disk is
// told apart from a broken stream, and counts what was written.
type errWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.n += int64(n)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	e.err = err
	return n, err
}
