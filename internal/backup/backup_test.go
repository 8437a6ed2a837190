package backup_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imqtt/imqtt/internal/backup"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/store/pebble"
)

// fixture is a data directory with a real store holding messages of two
// users and a group, a media object and a ban list.
type fixture struct {
	dir   string
	st    *pebble.Store
	marks map[string]uint64 // each key's next unreserved version
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := pebble.Open(filepath.Join(dir, backup.StoreDir), pebble.Options{MinFreeDisk: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	f := &fixture{dir: dir, st: st, marks: map[string]uint64{}}
	for _, u := range []string{"alice", "bob"} {
		if err := st.CreateUser(ctx, store.User{ID: u, PasswordHash: "x", Created: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.CreateGroup(ctx, store.Group{ID: "g1", Name: "G", Owner: "alice", Created: 1},
		[]store.Member{{User: "alice", Role: "owner"}, {User: "bob"}}); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		vers := map[string]uint64{}
		for _, k := range []string{"alice", "bob", "g:g1"} {
			v, err := st.ReserveVersions(ctx, k, 1)
			if err != nil {
				t.Fatal(err)
			}
			vers[k], f.marks[k] = v, v+1
		}
		id := int64(1000 + 2*i)
		b := &store.Batch{
			Messages: []store.Message{
				{ID: id, From: "alice", To: "bob", Type: "text", Body: fmt.Sprintf("m%d", i), CMID: fmt.Sprintf("c%d", i), TS: int64(i)},
				{ID: id + 1, From: "bob", Group: "g1", Seq: vers["g:g1"], Type: "text", Body: fmt.Sprintf("g%d", i), CMID: fmt.Sprintf("d%d", i), TS: int64(i)},
			},
			Entries: []store.Entry{
				{User: "alice", Ver: vers["alice"], Peer: "bob", Out: true, MsgID: id},
				{User: "bob", Ver: vers["bob"], Peer: "alice", MsgID: id},
			},
			Heads: []store.GroupHead{{Group: "g1", Seq: vers["g:g1"], MsgID: id + 1, TS: int64(i)}},
		}
		if err := st.Commit(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	for name, data := range map[string]string{
		"media/ab/xxabc/data":                       strings.Repeat("video", 10000),
		"media/ab/xxabc/info.json":                  `{"id":"xxabc"}`,
		"admin/bans.json":                           `{"bans":[]}`,
		"media/tmp/xxdef.1/data":                    "an upload in progress",
		"media-cache/cached":                        "a cache",
		"pebble-backups/format-1-x/MANIFEST-000001": "an upgrade's copy",
	} {
		write(t, filepath.Join(dir, name), data)
	}
	return f
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) backup(t *testing.T) ([]byte, backup.Manifest) {
	t.Helper()
	var buf bytes.Buffer
	m, err := backup.Write(context.Background(), &buf, backup.Source{DataDir: f.dir, Store: f.st, Node: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), m
}

func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	// A stale scratch directory from a crash goes with the next backup.
	write(t, filepath.Join(f.dir, ".backup-STALE", "pebble", "x"), "x")
	tarball, m := f.backup(t)
	if m.Node != "n1" || m.Version != backup.Version || m.Format != pebble.Format || m.Epoch != f.st.Epoch() ||
		m.Users != 2 || m.Groups != 1 || m.MaxVersion != 50 {
		t.Fatalf("manifest %+v", m)
	}
	if left, _ := filepath.Glob(filepath.Join(f.dir, ".backup-*")); len(left) != 0 {
		t.Fatalf("scratch left behind: %v", left)
	}
	names := tarNames(t, tarball)
	if names[len(names)-1] != backup.ManifestName {
		t.Fatalf("manifest not last: %v", names)
	}
	for _, n := range names {
		if strings.HasPrefix(n, "media/tmp/") || strings.HasPrefix(n, "media-cache/") || strings.HasPrefix(n, ".backup-") ||
			strings.HasPrefix(n, "pebble-backups/") {
			t.Errorf("%s backed up", n)
		}
	}
	for _, want := range []string{"media/ab/xxabc/data", "media/ab/xxabc/info.json", "admin/bans.json"} {
		if !slices.Contains(names, want) {
			t.Errorf("%s not backed up: %v", want, names)
		}
	}
	// Written after the backup: not in it.
	if _, err := f.st.ReserveVersions(ctx, "alice", 5); err != nil {
		t.Fatal(err)
	}

	target := filepath.Join(t.TempDir(), "restored")
	res, err := backup.Restore(bytes.NewReader(tarball), target)
	if err != nil {
		t.Fatal(err)
	}
	if res.Epoch != f.st.Epoch() || res.NewEpoch == "" || res.NewEpoch == res.Epoch || len(res.Files) != len(names)-1 {
		t.Fatalf("restored %+v", res)
	}
	if got, _ := os.ReadFile(filepath.Join(target, "media/ab/xxabc/data")); string(got) != strings.Repeat("video", 10000) {
		t.Fatal("media not restored")
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(target), ".restored.restore-*")); len(left) != 0 {
		t.Fatalf("staging left behind: %v", left)
	}
	rs, err := pebble.Open(filepath.Join(target, backup.StoreDir), pebble.Options{MinFreeDisk: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	if rs.Epoch() != res.NewEpoch {
		t.Fatalf("epoch %s, want %s", rs.Epoch(), res.NewEpoch)
	}
	for _, u := range []string{"alice", "bob"} {
		want, _ := f.st.Range(ctx, u, 0, 1000)
		got, err := rs.Range(ctx, u, 0, 1000)
		if err != nil || len(got) != 50 || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s: %d events (%v), want the original's 50", u, len(got), err)
		}
	}
	gm, err := rs.GroupRange(ctx, "g1", 0, 1000)
	if err != nil || len(gm) != 50 {
		t.Fatalf("group: %d messages (%v)", len(gm), err)
	}
	// Every counter is far past anything the original handed out, even
	// after the backup.
	for k, mark := range f.marks {
		v, err := rs.ReserveVersions(ctx, k, 1)
		if err != nil {
			t.Fatal(err)
		}
		if v < mark+1<<32 {
			t.Errorf("%s: next version %d, want at least %d", k, v, mark+1<<32)
		}
	}
}

func TestRefusals(t *testing.T) {
	f := newFixture(t)
	good, _ := f.backup(t)
	entries := readTar(t, good)
	dataIdx := -1
	for i, e := range entries {
		if e.hdr.Name == "media/ab/xxabc/data" {
			dataIdx = i
		}
	}

	cases := map[string][]byte{
		"empty":           {},
		"not a tar":       []byte(strings.Repeat("garbage!", 1000)),
		"cut in a header": good[:512*3+100],
		"cut in data":     good[:len(good)/2],
		"cut before manifest": func() []byte {
			return buildTar(t, entries[:len(entries)-1])
		}(),
		"cut in manifest": func() []byte {
			size := len(entries[len(entries)-1].data)
			end := len(good) - 1024 - (512-size%512)%512 // the manifest's last byte
			return good[:end-10]
		}(),
		"cut after manifest header": func() []byte {
			size := len(entries[len(entries)-1].data)
			end := len(good) - 1024 - (512-size%512)%512
			return good[:end-size]
		}(),
		"cut at the end": good[:len(good)-1024+10],
		"flipped byte": func() []byte {
			es := clone(entries)
			es[dataIdx].data = bytes.Clone(es[dataIdx].data)
			es[dataIdx].data[7] ^= 1
			return buildTar(t, es)
		}(),
		"missing file": buildTar(t, append(clone(entries[:dataIdx]), entries[dataIdx+1:]...)),
		"extra file": buildTar(t, append(clone(entries[:len(entries)-1]),
			entry{&tar.Header{Typeflag: tar.TypeReg, Name: "media/extra", Size: 1, Mode: 0o600}, []byte("x")}, entries[len(entries)-1])),
		"dotdot":    buildTar(t, append([]entry{{&tar.Header{Typeflag: tar.TypeReg, Name: "../escape", Size: 1, Mode: 0o600}, []byte("x")}}, entries...)),
		"absolute":  buildTar(t, append([]entry{{&tar.Header{Typeflag: tar.TypeReg, Name: "/tmp/escape", Size: 1, Mode: 0o600}, []byte("x")}}, entries...)),
		"symlink":   buildTar(t, append([]entry{{&tar.Header{Typeflag: tar.TypeSymlink, Name: "media/link", Linkname: "/etc/passwd", Mode: 0o777}, nil}}, entries...)),
		"hard link": buildTar(t, append([]entry{{&tar.Header{Typeflag: tar.TypeLink, Name: "media/link", Linkname: "admin/bans.json", Mode: 0o600}, nil}}, entries...)),
		"device":    buildTar(t, append([]entry{{&tar.Header{Typeflag: tar.TypeChar, Name: "media/null", Devmajor: 1, Devminor: 3, Mode: 0o600}, nil}}, entries...)),
		"after manifest": buildTar(t, append(clone(entries),
			entry{&tar.Header{Typeflag: tar.TypeReg, Name: "media/late", Size: 1, Mode: 0o600}, []byte("x")})),
		"huge manifest": buildTar(t, append(clone(entries[:len(entries)-1]),
			entry{&tar.Header{Typeflag: tar.TypeReg, Name: backup.ManifestName, Size: 65 << 20, Mode: 0o600}, make([]byte, 65<<20)})),
		"huge pax header": func() []byte {
			// A PAX extended header of 2 MiB: written as a plain file, then
			// retyped 'x' with its checksum redone.
			b := buildTar(t, []entry{{&tar.Header{Typeflag: tar.TypeReg, Name: "PaxHeaders/x", Mode: 0o600}, bytes.Repeat([]byte("a"), 2<<20)}})
			b[156] = tar.TypeXHeader
			copy(b[148:156], "        ")
			sum := 0
			for _, c := range b[:512] {
				sum += int(c)
			}
			copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
			return b
		}(),
	}
	for name, tarball := range cases {
		t.Run(name, func(t *testing.T) {
			parent := t.TempDir()
			target := filepath.Join(parent, "new", "restored") // its parent is made, and removed again
			_, err := backup.Restore(bytes.NewReader(tarball), target)
			if !errors.Is(err, backup.ErrCorrupt) {
				t.Fatalf("restore: %v, want ErrCorrupt", err)
			}
			t.Log(err)
			assertUntouched(t, parent)
		})
	}
	if _, err := backup.Restore(bytes.NewReader(good), filepath.Join(t.TempDir(), "ok")); err != nil {
		t.Fatalf("the good backup: %v", err)
	}
}

// TestRefuseNewerFormat: a backup of a later backup format or store format
// is refused as such (store.ErrFormat), nothing written.
func TestRefuseNewerFormat(t *testing.T) {
	f := newFixture(t)
	good, _ := f.backup(t)
	entries := readTar(t, good)
	for field, val := range map[string]int{"version": backup.Version + 1, "store_format": pebble.Format + 1} {
		var m map[string]any
		if err := json.Unmarshal(entries[len(entries)-1].data, &m); err != nil {
			t.Fatal(err)
		}
		m[field] = val
		raw, _ := json.Marshal(m)
		es := append(clone(entries[:len(entries)-1]), entry{entries[len(entries)-1].hdr, raw})
		parent := t.TempDir()
		_, err := backup.Restore(bytes.NewReader(buildTar(t, es)), filepath.Join(parent, "data"))
		if !errors.Is(err, store.ErrFormat) {
			t.Errorf("%s %d: %v, want ErrFormat", field, val, err)
		}
		assertUntouched(t, parent)
	}
}

func TestRefuseNonEmpty(t *testing.T) {
	f := newFixture(t)
	good, _ := f.backup(t)
	parent := t.TempDir()
	target := filepath.Join(parent, "data")
	write(t, filepath.Join(target, "keep"), "mine")
	if _, err := backup.Restore(bytes.NewReader(good), target); !errors.Is(err, backup.ErrNotEmpty) {
		t.Fatalf("restore into a non-empty dir: %v", err)
	}
	entries, _ := os.ReadDir(target)
	if got, _ := os.ReadFile(filepath.Join(target, "keep")); len(entries) != 1 || string(got) != "mine" {
		t.Fatalf("target changed: %v", entries)
	}
	assertUntouched(t, filepath.Dir(target), filepath.Base(target))
	// An existing empty directory is fine.
	empty := filepath.Join(parent, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := backup.Restore(bytes.NewReader(good), empty); err != nil {
		t.Fatal(err)
	}
}

func TestWriteCancelled(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	w := &failAfter{n: 4096, cancel: cancel}
	if _, err := backup.Write(ctx, w, backup.Source{DataDir: f.dir, Store: f.st}); err == nil {
		t.Fatal("backup to a client gone: no error")
	}
	if left, _ := filepath.Glob(filepath.Join(f.dir, ".backup-*")); len(left) != 0 {
		t.Fatalf("scratch left behind: %v", left)
	}
}

// failAfter takes n bytes, then cancels and fails, as a client gone.
type failAfter struct {
	n      int
	cancel func()
}

func (w *failAfter) Write(p []byte) (int, error) {
	if w.n -= len(p); w.n < 0 {
		w.cancel()
		return 0, io.ErrClosedPipe
	}
	return len(p), nil
}

// assertUntouched checks parent holds nothing but keep.
func assertUntouched(t *testing.T, parent string, keep ...string) {
	t.Helper()
	entries, err := os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !slices.Contains(keep, e.Name()) {
			t.Errorf("left behind: %s", e.Name())
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(parent), "escape")); err == nil {
		t.Error("a file was written outside the target")
	}
}

type entry struct {
	hdr  *tar.Header
	data []byte
}

func readTar(t *testing.T, b []byte) []entry {
	t.Helper()
	var es []entry
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return es
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		es = append(es, entry{hdr, data})
	}
}

func buildTar(t *testing.T, es []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		h := *e.hdr
		h.Size = int64(len(e.data))
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func tarNames(t *testing.T, b []byte) []string {
	var names []string
	for _, e := range readTar(t, b) {
		names = append(names, e.hdr.Name)
	}
	return names
}

func clone(es []entry) []entry { return append([]entry(nil), es...) }

// TestWritePaced: a Rate bounds the stream: a backup of about 110 KB at
// 50 KB/s (a burst of 50 KB) takes over a second.
func TestWritePaced(t *testing.T) {
	f := newFixture(t)
	start := time.Now()
	var buf bytes.Buffer
	if _, err := backup.Write(context.Background(), &buf, backup.Source{DataDir: f.dir, Store: f.st, Rate: 50_000}); err != nil {
		t.Fatal(err)
	}
	want := time.Duration(float64(buf.Len()-50_000) / 50_000 * float64(time.Second))
	if took := time.Since(start); took < want*9/10 {
		t.Fatalf("%d bytes at 50 KB/s took %s, want at least %s", buf.Len(), took, want)
	}
}
