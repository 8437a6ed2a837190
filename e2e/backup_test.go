package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/imqtt/imqtt/client"
	"github.com/imqtt/imqtt/internal/daemon"
	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/wire"
)

const backupToken = "backup-admin-token"

// backupRec collects the messages a client.Client delivers.
type backupRec struct {
	mu   sync.Mutex
	msgs []wire.Msg
}

func (r *backupRec) on(ev client.Event) {
	if ev.Msg != nil {
		r.mu.Lock()
		r.msgs = append(r.msgs, *ev.Msg)
		r.mu.Unlock()
	}
}

func (r *backupRec) bodies() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, len(r.msgs))
	for i, m := range r.msgs {
		out[i] = m.Body
	}
	return out
}

// sdkDial logs user/device in on s and connects an SDK client.
func sdkDial(t *testing.T, ctx context.Context, s *testserver.Server, user string, cur client.CursorStore, rec *backupRec) *client.Client {
	t.Helper()
	if err := client.Register(ctx, s.HTTP, user, "secret-pw-"+user); err != nil {
		var we *wire.Error
		if !errors.As(err, &we) || we.Code != wire.CodeExists {
			t.Fatal(err)
		}
	}
	sess, err := client.Login(ctx, s.HTTP, user, "secret-pw-"+user, "phone")
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(ctx, client.Config{Server: s.HTTP, MQTT: s.MQTT, User: user, Device: "phone", Token: sess.Token,
		Cursor: cur, OnEvent: rec.on})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestE2EBackupUnderLoad: a backup taken while pairs of users send over
// MQTT (QoS 1) holds every send acked before it began, and the load loses
// nothing. imqttd restore unpacks it into a new directory; a server on it
// tells a device whose cursor came from the original to reset, then gives
// it the restored history exactly once, and hands out versions far above
// the original's.
func TestE2EBackupUnderLoad(t *testing.T) { backupUnderLoad(t, func() string { return "" }) }

// TestE2EBackupUnderLoadWALDir: the same with the write-ahead log in a
// directory of its own (--wal-dir), for the original and the restored
// server each: the checkpoint carries the log, and the restored store
// opens on a new, empty log directory.
func TestE2EBackupUnderLoadWALDir(t *testing.T) {
	var dirs []string
	backupUnderLoad(t, func() string { d := t.TempDir(); dirs = append(dirs, d); return d })
	for _, d := range dirs {
		if logs, _ := filepath.Glob(filepath.Join(d, "*.log")); len(logs) == 0 {
			t.Errorf("no write-ahead log in %s", d)
		}
	}
}

// backupUnderLoad runs the test; walDir gives each server's --wal-dir.
func backupUnderLoad(t *testing.T, walDir func() string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := testserver.Start(t, func(c *daemon.Config) { c.AdminToken = backupToken; c.WALDir = walDir() })
	const pairs = 4
	senders, receivers := make([]*client.Client, pairs), make([]*client.Client, pairs)
	recs := make([]*backupRec, pairs)
	for i := range pairs {
		recs[i] = &backupRec{}
		senders[i] = sdkDial(t, ctx, s, fmt.Sprintf("s%d", i), nil, &backupRec{})
		receivers[i] = sdkDial(t, ctx, s, fmt.Sprintf("r%d", i), nil, recs[i])
	}

	var mu sync.Mutex
	acked := make([][]string, pairs) // each pair's acked bodies, in order
	stop := make(chan struct{})
	var load sync.WaitGroup
	sendErr := make(chan error, pairs)
	for i := range pairs {
		load.Add(1)
		go func() {
			defer load.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				body := fmt.Sprintf("p%d-%d", i, n)
				if _, err := senders[i].Send(ctx, wire.Send{To: fmt.Sprintf("r%d", i), Type: "text", Body: body}); err != nil {
					sendErr <- fmt.Errorf("send %s: %w", body, err)
					return
				}
				mu.Lock()
				acked[i] = append(acked[i], body)
				mu.Unlock()
			}
		}()
	}
	count := func() []int {
		mu.Lock()
		defer mu.Unlock()
		n := make([]int, pairs)
		for i := range acked {
			n[i] = len(acked[i])
		}
		return n
	}
	atLeast := func(base []int, more int) func() bool {
		return func() bool {
			for i, n := range count() {
				if n < base[i]+more {
					return false
				}
			}
			return true
		}
	}
	wait.For(t, "the load to run", 30*time.Second, atLeast(make([]int, pairs), 20))

	// The backup, mid-load. Everything acked before the request is in it.
	mu.Lock()
	before := make([][]string, pairs)
	for i := range acked {
		before[i] = slices.Clone(acked[i])
	}
	mu.Unlock()
	oldCursor := receivers[0].Cursor() // r0's place before the backup
	tarFile := filepath.Join(t.TempDir(), "backup.tar")
	getBackup(t, s, tarFile)
	wait.For(t, "the load to go on after the backup", 30*time.Second, atLeast(count(), 20))
	close(stop)
	load.Wait()
	select {
	case err := <-sendErr:
		t.Fatalf("the load failed during the backup: %v", err)
	default:
	}

	// The load lost nothing: every acked send arrived, once, in order.
	for i := range pairs {
		wait.For(t, fmt.Sprintf("r%d to receive all %d", i, len(acked[i])), 30*time.Second, func() bool {
			return len(recs[i].bodies()) >= len(acked[i])
		})
		if got := recs[i].bodies(); !slices.Equal(got, acked[i]) {
			t.Fatalf("r%d received %d messages, %d acked; first difference at %d", i, len(got), len(acked[i]), firstDiff(got, acked[i]))
		}
	}
	oldEpoch := s.Store().Epoch()

	// imqttd restore, the real command, into a new directory.
	bin, err := buildDaemon()
	if err != nil {
		t.Fatal(err)
	}
	restored := filepath.Join(t.TempDir(), "restored")
	out, err := exec.Command(bin, "restore", "--from", tarFile, "--data-dir", restored).CombinedOutput()
	if err != nil {
		t.Fatalf("imqttd restore: %v: %s", err, out)
	}
	t.Logf("imqttd restore: %s", out)
	s.Stop(t)

	s2 := testserver.Start(t, func(c *daemon.Config) { c.DataDir = restored; c.AdminToken = backupToken; c.WALDir = walDir() })
	if s2.Store().Epoch() == oldEpoch {
		t.Fatal("the restored store kept the original's epoch")
	}
	cur := &client.MemoryCursor{}
	_ = cur.Save(oldCursor)
	var rec backupRec
	r0 := sdkDial(t, ctx, s2, "r0", cur, &rec)
	if err := r0.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	events := rangeAll(t, s2, "r0")
	got := rec.bodies()
	if len(got) != len(events) {
		t.Fatalf("after the restore r0 got %d messages, the restored inbox holds %d (cursor was at %d)", len(got), len(events), oldCursor.Ver)
	}
	if !slices.Equal(got, acked[0][:len(got)]) {
		t.Fatalf("after the restore r0 got other messages than the ones sent, first difference at %d", firstDiff(got, acked[0]))
	}
	if len(got) < len(before[0]) {
		t.Fatalf("the restored store lost sends acked before the backup: %d of %d", len(got), len(before[0]))
	}
	for i := 1; i < pairs; i++ {
		evs := rangeAll(t, s2, fmt.Sprintf("r%d", i))
		if len(evs) < len(before[i]) {
			t.Fatalf("r%d: the restored inbox holds %d, %d were acked before the backup", i, len(evs), len(before[i]))
		}
		for j, ev := range evs {
			if ev.Msg.Body != acked[i][j] {
				t.Fatalf("r%d: restored message %d is %q, sent %q", i, j, ev.Msg.Body, acked[i][j])
			}
		}
	}
	if c, _ := cur.Load(); c.Epoch != s2.Store().Epoch() {
		t.Fatalf("r0's cursor after the restore: %+v, want the new epoch %s", c, s2.Store().Epoch())
	}
	// A send after the restore gets a version far past the original's.
	s0 := sdkDial(t, ctx, s2, "s0", nil, &backupRec{})
	ack, err := s0.Send(ctx, wire.Send{To: "r0", Type: "text", Body: "after the restore"})
	if err != nil {
		t.Fatal(err)
	}
	wait.For(t, "r0 to get the send after the restore", 10*time.Second, func() bool { return len(rec.bodies()) == len(got)+1 })
	rec.mu.Lock()
	last := rec.msgs[len(rec.msgs)-1]
	rec.mu.Unlock()
	if last.Body != "after the restore" || last.Ver < 1<<32 || ack.Ver < 1<<32 {
		t.Fatalf("the first version after the restore: %d (ack %d), want one past 2^32", last.Ver, ack.Ver)
	}
}

// getBackup streams GET /v1/admin/backup of s into file.
func getBackup(t *testing.T, s *testserver.Server, file string) {
	t.Helper()
	req, _ := http.NewRequest("GET", s.HTTP+"/v1/admin/backup", nil)
	req.Header.Set("Authorization", "Bearer "+backupToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(resp.Body)
		t.Fatalf("backup: %d %s", resp.StatusCode, raw)
	}
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.Copy(f, resp.Body); err != nil {
		t.Fatal(err)
	}
}

// rangeAll reads user's whole inbox from s's store.
func rangeAll(t *testing.T, s *testserver.Server, user string) []store.Event {
	t.Helper()
	var all []store.Event
	for {
		var since uint64
		if len(all) > 0 {
			since = all[len(all)-1].Ver
		}
		evs, err := s.Store().Range(context.Background(), user, since, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			return all
		}
		all = append(all, evs...)
	}
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestE2EBackupClientGone: a stale scratch directory goes at start; a
// client that reads a few KB of a backup and hangs up ends it: the checkpoint's scratch directory is removed, and the
// next backup is not refused as running.
func TestE2EBackupClientGone(t *testing.T) {
	s := testserver.Start(t, func(c *daemon.Config) {
		c.AdminToken = backupToken
		// A backup's scratch left by a crash goes at start.
		if err := os.MkdirAll(filepath.Join(c.DataDir, ".backup-CRASHED", "pebble"), 0o700); err != nil {
			t.Fatal(err)
		}
	})
	if m, _ := filepath.Glob(filepath.Join(s.Dir, ".backup-*")); len(m) != 0 {
		t.Fatalf("a stale scratch directory survived the start: %v", m)
	}
	// A large media object, so the stream outlasts the socket's buffers.
	big := filepath.Join(s.Dir, "media", "zz", "zzbig", "data")
	if err := os.MkdirAll(filepath.Dir(big), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(big, make([]byte, 64<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	scratch := func() []string {
		m, _ := filepath.Glob(filepath.Join(s.Dir, ".backup-*"))
		return m
	}
	req, _ := http.NewRequest("GET", s.HTTP+"/v1/admin/backup", nil)
	req.Header.Set("Authorization", "Bearer "+backupToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 8<<10)); err != nil {
		t.Fatal(err)
	}
	if len(scratch()) != 1 {
		t.Fatalf("no checkpoint scratch directory while the backup streams: %v", scratch())
	}
	_ = resp.Body.Close()
	wait.For(t, "the scratch directory to go", 20*time.Second, func() bool { return len(scratch()) == 0 })
	wait.For(t, "the next backup to be let through", 20*time.Second, func() bool {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode == http.StatusOK
	})
}

// TestE2EBackupClientStalls: a client that asks for a backup and stops
// reading, its connection open, is cut once it has taken nothing for an
// upload window: the checkpoint's scratch directory goes and the next
// backup is let through, rather than both waiting on it for ever.
func TestE2EBackupClientStalls(t *testing.T) {
	s := testserver.Start(t, func(c *daemon.Config) {
		c.AdminToken = backupToken
		c.HTTPUploadWindow = time.Second
	})
	// More than the socket buffers hold, so the server's writes block.
	big := filepath.Join(s.Dir, "media", "zz", "zzbig", "data")
	if err := os.MkdirAll(filepath.Dir(big), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(big, make([]byte, 32<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(s.HTTP)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.(*net.TCPConn).SetReadBuffer(4 << 10)
	if _, err := fmt.Fprintf(conn, "GET /v1/admin/backup HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n\r\n", u.Host, backupToken); err != nil {
		t.Fatal(err)
	}
	scratch := func() []string {
		m, _ := filepath.Glob(filepath.Join(s.Dir, ".backup-*"))
		return m
	}
	wait.For(t, "the backup to start", 10*time.Second, func() bool { return len(scratch()) == 1 })
	// The connection stays open and unread.
	wait.For(t, "the stalled backup's scratch directory to go", 20*time.Second, func() bool { return len(scratch()) == 0 })
	getBackup(t, s, filepath.Join(t.TempDir(), "after-stall.tar")) // the next backup is served whole
}
