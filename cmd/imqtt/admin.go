package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/imqtt/imqtt/internal/backup"
	"github.com/imqtt/imqtt/wire"
)

// cmdAdmin: imqtt admin backup [--admin-token T] > FILE.tar
//
// The operator's commands, with the server's admin token (--admin-token or
// IMQTT_ADMIN_TOKEN; never saved). backup streams GET /v1/admin/backup to
// standard output, checking it as it goes (backup.Verify): a stream that
// ends without its manifest, or whose files do not match it, is reported
// as truncated and exits 1.
func cmdAdmin(ctx context.Context, c *cli, args []string) error {
	if len(args) == 0 || args[0] != "backup" {
		return usagef("want a subcommand: backup")
	}
	fs := c.flags("admin")
	token := fs.String("admin-token", "", "the server's admin token (or env IMQTT_ADMIN_TOKEN)")
	if _, err := c.parse(fs, args[1:], 0, 0); err != nil {
		return err
	}
	if *token == "" {
		*token = c.env.getenv("IMQTT_ADMIN_TOKEN")
	}
	if *token == "" {
		return usagef("--admin-token is required (or set IMQTT_ADMIN_TOKEN)")
	}
	if isTerminal(c.stdout) {
		return usagef("refusing to write a tar to a terminal: redirect it (imqtt admin backup > backup.tar)")
	}
	return c.backup(ctx, *token)
}

func (c *cli) backup(ctx context.Context, token string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(c.g.server, "/")+"/v1/admin/backup", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var e wire.Error
		if json.Unmarshal(raw, &e) != nil || e.Code == "" {
			return fmt.Errorf("server answered %s", resp.Status)
		}
		return fmt.Errorf("server answered %s: %w", resp.Status, &e)
	}
	out := &errWriter{w: c.stdout}
	prog := &progress{w: c.stderr, start: time.Now(), every: time.Second}
	prog.last = prog.start
	body := io.TeeReader(resp.Body, io.MultiWriter(out, prog))
	m, verr := backup.Verify(body)
	if verr == nil {
		_, verr = io.Copy(io.Discard, body) // the tar's end blocks
	}
	took := time.Since(prog.start)
	switch {
	case out.err != nil:
		return fmt.Errorf("write the backup: %w", out.err)
	case verr != nil:
		return fmt.Errorf("backup truncated or corrupt after %d bytes, do not keep it: %w", prog.n, verr)
	}
	fmt.Fprintf(c.stderr, "backup of node %s (epoch %s, taken %s): %d files, %d bytes in %s (%.1f MB/s), verified\n",
		m.Node, m.Epoch, m.Time.UTC().Format(time.RFC3339), len(m.Files), prog.n, took.Round(time.Millisecond), mbps(prog.n, took))
	return nil
}

// isTerminal reports whether w is a terminal: a character device other
// than the null device.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	if err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	null, err := os.Stat(os.DevNull)
	return err != nil || !os.SameFile(st, null)
}

// errWriter keeps the first error of its writer, so that a full disk is
// told apart from a broken stream.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	e.err = err
	return n, err
}

// progress counts bytes and reports them at most once every period.
type progress struct {
	w           io.Writer
	n           int64
	start, last time.Time
	every       time.Duration
}

func (p *progress) Write(b []byte) (int, error) {
	p.n += int64(len(b))
	if now := time.Now(); now.Sub(p.last) >= p.every {
		p.last = now
		fmt.Fprintf(p.w, "backup: %.1f MB, %.1f MB/s\n", float64(p.n)/1e6, mbps(p.n, now.Sub(p.start)))
	}
	return len(b), nil
}

func mbps(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / 1e6 / d.Seconds()
}
