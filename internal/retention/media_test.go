package retention_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/imqtt/imqtt/internal/media"
	"github.com/imqtt/imqtt/internal/media/mediatest/blobstest"
	"github.com/imqtt/imqtt/internal/retention"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/store/pebble"
)

func openFS(t *testing.T) *media.FS {
	t.Helper()
	fs, err := media.OpenFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

// putAt stores a media object created at at and returns its ID.
func putAt(t *testing.T, fs *media.FS, at time.Time, seed uint64) string {
	t.Helper()
	o := blobstest.NewObject(seed)
	o.Info.Created = at.UnixMilli()
	blobstest.Put(t, fs, o)
	return o.Info.ID
}

// sendMedia commits a 1:1 message from alice carrying mediaID, with ID
// of time at (plus n, to tell apart messages of one time), granted to to.
func sendMedia(t *testing.T, s *pebble.Store, at time.Time, n int64, to, mediaID string) {
	t.Helper()
	id := retention.Bound(at, 0) + n
	b := store.Batch{
		Messages: []store.Message{{ID: id, From: "alice", To: to, Type: "image", Media: mediaID, TS: at.UnixMilli()}},
		Grants:   []store.Grant{{Media: mediaID, Principal: "u:" + to}},
	}
	if err := s.Commit(t.Context(), &b); err != nil {
		t.Fatal(err)
	}
}

func exists(t *testing.T, fs *media.FS, id string) bool {
	t.Helper()
	_, err := fs.Stat(t.Context(), id)
	if err != nil && !errors.Is(err, media.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

// TestSweepMedia: after the messages, a sweep deletes the media older than
// the period that nothing grants (never sent, sent only in swept
// messages, recalled); it keeps an old object a younger message still
// grants (a forward) and a young one. Media sweeps are at most every ten
// Intervals.
func TestSweepMedia(t *testing.T) {
	s := openStore(t)
	fs := openFS(t)
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	old, young := now.Add(-3*time.Hour), now.Add(-30*time.Minute)
	unsent := putAt(t, fs, old, 1)
	swept := putAt(t, fs, old, 2)
	sendMedia(t, s, old, 0, "bob", swept)
	forwarded := putAt(t, fs, old, 3)
	sendMedia(t, s, old, 1, "bob", forwarded)
	sendMedia(t, s, young, 0, "carol", forwarded) // a forward, younger than the period
	recalled := putAt(t, fs, old, 4)
	if err := s.Commit(t.Context(), &store.Batch{Grants: []store.Grant{{Media: recalled, Principal: store.RevokedGrant}}}); err != nil {
		t.Fatal(err)
	}
	fresh := putAt(t, fs, young, 5)

	c := &clock{at: now}
	j := retention.New(s, nil, retention.Options{Period: time.Hour, Rate: 100, Chunk: 10, Media: fs, Now: c.now, Sleep: c.sleep})
	if n, err := j.Sweep(t.Context()); err != nil || n != 2 {
		t.Fatalf("sweep: %d, %v; want the 2 old messages", n, err)
	}
	for _, m := range []struct {
		name, id string
		kept     bool
	}{{"never sent", unsent, false}, {"sent in a swept message", swept, false}, {"recalled", recalled, false},
		{"forwarded in a young message", forwarded, true}, {"young", fresh, true}} {
		if got := exists(t, fs, m.id); got != m.kept {
			t.Errorf("old media %s: there %v, want %v", m.name, got, m.kept)
		}
	}

	// The next round, a minute on, sweeps messages only; ten minutes on, media.
	late := putAt(t, fs, old, 6)
	c.at = now.Add(time.Minute)
	if _, err := j.Sweep(t.Context()); err != nil || !exists(t, fs, late) {
		t.Fatalf("a media sweep a minute after the last: %v, there %v", err, exists(t, fs, late))
	}
	c.at = now.Add(10 * time.Minute)
	if _, err := j.Sweep(t.Context()); err != nil || exists(t, fs, late) {
		t.Fatalf("a media sweep ten minutes after the last: %v, there %v", err, exists(t, fs, late))
	}
	if !exists(t, fs, forwarded) || !exists(t, fs, fresh) {
		t.Error("a later sweep deleted media still granted or young")
	}
}

// TestSweepMediaRate: media is checked a chunk at a time at the rate.
func TestSweepMediaRate(t *testing.T) {
	s := openStore(t)
	fs := openFS(t)
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	for i := range 5 {
		putAt(t, fs, now.Add(-2*time.Hour), uint64(10+i))
	}
	c := &clock{at: now}
	j := retention.New(s, nil, retention.Options{Period: time.Hour, Rate: 100, Chunk: 2, Media: fs, Now: c.now, Sleep: c.sleep})
	if n, err := j.SweepMedia(t.Context()); err != nil || n != 5 {
		t.Fatalf("sweep media: %d, %v; want 5", n, err)
	}
	// 2 a chunk at 100/s: 20ms after each full chunk; the last (1) ends it.
	if want := []time.Duration{20 * time.Millisecond, 20 * time.Millisecond}; !slices.Equal(c.slept, want) {
		t.Errorf("slept %v, want %v", c.slept, want)
	}
	if ids, err := fs.Objects(); err != nil || len(ids) != 0 {
		t.Errorf("left: %v, %v", ids, err)
	}
}

// putSmall stores a one-part object of 1 KiB created at at.
func putSmall(b *testing.B, fs *media.FS, at time.Time) string {
	id := media.NewID()
	st, err := fs.Create(b.Context(), id)
	if err != nil {
		b.Fatal(err)
	}
	w, err := st.Create(media.PartData)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = w.Write(make([]byte, 1024))
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	if err := st.Commit(b.Context(), media.Info{ID: id, Owner: "alice", Size: 1024, Type: "application/octet-stream", Created: at.UnixMilli()}); err != nil {
		b.Fatal(err)
	}
	return id
}

// BenchmarkSweepMedia: the cost of one old object to a media sweep on the
// file store and Pebble, unthrottled: "delete" finds no grant and deletes
// it, "keep" finds one (a forward) and keeps it.
func BenchmarkSweepMedia(b *testing.B) {
	for _, granted := range []bool{false, true} {
		name := map[bool]string{false: "delete", true: "keep"}[granted]
		b.Run(name, func(b *testing.B) {
			s, err := pebble.Open(b.TempDir(), pebble.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			fs, err := media.OpenFS(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
			var grants []store.Grant
			for range b.N {
				id := putSmall(b, fs, now.Add(-2*time.Hour))
				if granted {
					grants = append(grants, store.Grant{Media: id, Principal: "u:bob"})
				}
			}
			if err := s.Commit(b.Context(), &store.Batch{Grants: grants}); err != nil {
				b.Fatal(err)
			}
			j := retention.New(s, nil, retention.Options{Period: time.Hour, Rate: 1 << 30, Media: fs,
				Now: func() time.Time { return now }})
			b.ResetTimer()
			n, err := j.SweepMedia(b.Context())
			b.StopTimer()
			if err != nil || granted && n != 0 || !granted && n != b.N {
				b.Fatalf("swept %d of %d, %v", n, b.N, err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "objects/s")
		})
	}
}
