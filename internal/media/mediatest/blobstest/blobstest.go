// Package blobstest is the one conformance suite every media.Blobs passes:
// what media.Blobs and media.Staging promise in their doc comments, checked
// through the interfaces only.
//
// (It is not in mediatest itself, which media's own tests import: a suite
// importing media there would be an import cycle.)
package blobstest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync"
	"testing"

	"github.com/imqtt/imqtt/internal/media"
)

// Backend makes an empty backing store for one test and returns how to open
// a Blobs on it. Each call of open is another node: a new instance with
// nothing cached, over the same objects.
type Backend func(t *testing.T) (open func(t *testing.T) media.Blobs)

// Run runs the suite, each test on a fresh backend.
func Run(t *testing.T, backend Backend) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open func(t *testing.T) media.Blobs)
	}{
		{"RoundTrip", testRoundTrip},
		{"Seek", testSeek},
		{"NotFound", testNotFound},
		{"Abort", testAbort},
		{"Staging", testStaging},
		{"ConcurrentOpen", testConcurrentOpen},
		{"Delete", testDelete},
		{"Older", testOlder},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, backend(t)) })
	}
}

// Sizes of the parts Object stages. Data is over one GridFS chunk (255 KiB)
// and not a multiple of it; the suite keeps objects small.
const (
	DataSize  = 300<<10 + 123
	ThumbSize = 3000
)

// Object is a test object: its Info and its parts' bytes.
type Object struct {
	Info  media.Info
	Parts map[string][]byte
}

// NewObject makes an object with a fresh ID and the parts data (DataSize
// random bytes), thumb, an HLS playlist, one HLS segment and an empty part.
func NewObject(seed uint64) Object {
	r := rand.New(rand.NewPCG(seed, seed+1))
	bytesOf := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.UintN(256))
		}
		return b
	}
	id := media.NewID()
	o := Object{
		Info: media.Info{ID: id, Owner: "alice", Name: "photo.png", Size: DataSize, Type: "image/png",
			SHA256: "00ff", Created: 1700000000123, Width: 640, Height: 480,
			Thumb:   &media.Rendition{Type: "image/jpeg", Size: ThumbSize, SHA256: "ab", Width: 320, Height: 240},
			Preview: &media.Rendition{Type: "image/jpeg", Size: 10, SHA256: "cd", Width: 32, Height: 24},
			HLS:     true},
		Parts: map[string][]byte{
			media.PartData:                bytesOf(DataSize),
			media.PartThumb:               bytesOf(ThumbSize),
			media.PartHLS + "index.m3u8":  []byte("#EXTM3U\n"),
			media.PartHLS + "seg00000.ts": bytesOf(1000),
			"empty":                       {},
		},
	}
	return o
}

// Stage stages o's parts in b without committing them.
func Stage(t testing.TB, b media.Blobs, o Object) media.Staging {
	t.Helper()
	st, err := b.Create(context.Background(), o.Info.ID)
	if err != nil {
		t.Fatalf("create %s: %v", o.Info.ID, err)
	}
	for part, data := range o.Parts {
		w, err := st.Create(part)
		if err != nil {
			t.Fatalf("create part %s: %v", part, err)
		}
		// Written in pieces, as an upload is.
		for rest := data; len(rest) > 0; {
			n := min(len(rest), 7000)
			if _, err := w.Write(rest[:n]); err != nil {
				t.Fatalf("write part %s: %v", part, err)
			}
			rest = rest[n:]
		}
		if err := w.Close(); err != nil {
			t.Fatalf("close part %s: %v", part, err)
		}
	}
	return st
}

// Put stages and commits o.
func Put(t testing.TB, b media.Blobs, o Object) {
	t.Helper()
	st := Stage(t, b, o)
	defer st.Abort()
	if err := st.Commit(context.Background(), o.Info); err != nil {
		t.Fatalf("commit %s: %v", o.Info.ID, err)
	}
}

// Check asserts that b holds o whole: its Info and every part's bytes.
func Check(t testing.TB, b media.Blobs, o Object) {
	t.Helper()
	ctx := context.Background()
	info, err := b.Stat(ctx, o.Info.ID)
	if err != nil {
		t.Fatalf("stat %s: %v", o.Info.ID, err)
	}
	if !reflect.DeepEqual(info, o.Info) {
		t.Fatalf("stat %s:\n got %+v\nwant %+v", o.Info.ID, info, o.Info)
	}
	for part, want := range o.Parts {
		if got := ReadPart(t, b, o.Info.ID, part); !bytes.Equal(got, want) {
			t.Fatalf("part %s: read %d bytes, not the %d written", part, len(got), len(want))
		}
	}
}

// ReadPart opens a part and reads all of it.
func ReadPart(t testing.TB, b media.Blobs, id, part string) []byte {
	t.Helper()
	r, err := b.Open(context.Background(), id, part)
	if err != nil {
		t.Fatalf("open %s/%s: %v", id, part, err)
	}
	defer r.Close()
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read %s/%s: %v", id, part, err)
	}
	return got
}

// NotFound asserts that neither the object nor its part data is visible.
func NotFound(t testing.TB, b media.Blobs, id string) {
	t.Helper()
	if _, err := b.Stat(context.Background(), id); !errors.Is(err, media.ErrNotFound) {
		t.Fatalf("stat %s: %v, want ErrNotFound", id, err)
	}
	r, err := b.Open(context.Background(), id, media.PartData)
	if err == nil {
		r.Close()
	}
	if !errors.Is(err, media.ErrNotFound) {
		t.Fatalf("open %s/data: %v, want ErrNotFound", id, err)
	}
}

// testRoundTrip: what one node commits, it and another node read back whole.
func testRoundTrip(t *testing.T, open func(t *testing.T) media.Blobs) {
	a := open(t)
	o := NewObject(1)
	Put(t, a, o)
	Check(t, a, o)
	b := open(t)
	Check(t, b, o)
	Check(t, b, o) // from b's cache, if it has one

	// Info without the optional fields comes back without them.
	bare := Object{Info: media.Info{ID: media.NewID(), Owner: "bob", Size: 1, Type: "text/plain", SHA256: "ee", Created: 1},
		Parts: map[string][]byte{media.PartData: []byte("x")}}
	Put(t, a, bare)
	Check(t, b, bare)
}

// testSeek: Open returns what http.ServeContent needs for Range requests.
func testSeek(t *testing.T, open func(t *testing.T) media.Blobs) {
	o := NewObject(2)
	Put(t, open(t), o)
	data := o.Parts[media.PartData]
	for _, name := range []string{"uncached", "cached"} {
		t.Run(name, func(t *testing.T) {
			b := open(t)
			if name == "cached" {
				ReadPart(t, b, o.Info.ID, media.PartData)
			}
			r, err := b.Open(context.Background(), o.Info.ID, media.PartData)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			steps := []struct {
				offset int64
				whence int
				want   int64 // position after
				n      int   // bytes then read
			}{
				{0, io.SeekEnd, int64(len(data)), 0}, // the size, as ServeContent learns it
				{0, io.SeekStart, 0, 100},
				{255 << 10, io.SeekStart, 255 << 10, 5000}, // across the first chunk boundary
				{-10, io.SeekCurrent, 255<<10 + 4990, 20},
				{-77, io.SeekEnd, int64(len(data)) - 77, 77},
				{1000, io.SeekStart, 1000, 1},
			}
			for _, s := range steps {
				pos, err := r.Seek(s.offset, s.whence)
				if err != nil || pos != s.want {
					t.Fatalf("seek(%d, %d) = %d, %v; want %d", s.offset, s.whence, pos, err, s.want)
				}
				buf := make([]byte, s.n)
				if _, err := io.ReadFull(r, buf); err != nil {
					t.Fatalf("read %d at %d: %v", s.n, pos, err)
				}
				if !bytes.Equal(buf, data[pos:pos+int64(s.n)]) {
					t.Fatalf("read %d at %d: wrong bytes", s.n, pos)
				}
			}
			if _, err := r.Seek(0, io.SeekEnd); err != nil {
				t.Fatal(err)
			}
			if n, err := r.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
				t.Fatalf("read at the end: %d, %v; want io.EOF", n, err)
			}
		})
	}
}

// testNotFound: a missing object, a missing part and bad names are all
// ErrNotFound.
func testNotFound(t *testing.T, open func(t *testing.T) media.Blobs) {
	b := open(t)
	ctx := context.Background()
	NotFound(t, b, media.NewID())
	o := NewObject(3)
	Put(t, b, o)
	for _, c := range []struct{ id, part string }{
		{o.Info.ID, "preview"}, // well formed, not stored
		{o.Info.ID, "hls/seg00001.ts"},
		{o.Info.ID, "../data"},
		{o.Info.ID, ""},
		{"m-nope", media.PartData},
		{"../" + o.Info.ID, media.PartData},
	} {
		for _, node := range []media.Blobs{b, open(t)} {
			r, err := node.Open(ctx, c.id, c.part)
			if err == nil {
				r.Close()
			}
			if !errors.Is(err, media.ErrNotFound) {
				t.Errorf("open %q/%q: %v, want ErrNotFound", c.id, c.part, err)
			}
		}
	}
	if _, err := b.Stat(ctx, "m-nope"); !errors.Is(err, media.ErrNotFound) {
		t.Errorf("stat of a bad ID: %v, want ErrNotFound", err)
	}
}

// testAbort: nothing staged is visible, before a commit or after an abort;
// Abort after Commit does nothing.
func testAbort(t *testing.T, open func(t *testing.T) media.Blobs) {
	b := open(t)
	o := NewObject(4)
	st := Stage(t, b, o)
	NotFound(t, b, o.Info.ID)
	NotFound(t, open(t), o.Info.ID)
	if err := st.Abort(); err != nil {
		t.Fatal(err)
	}
	if err := st.Abort(); err != nil {
		t.Fatalf("second abort: %v", err)
	}
	NotFound(t, b, o.Info.ID)
	NotFound(t, open(t), o.Info.ID)
	if err := st.Commit(context.Background(), o.Info); err == nil {
		t.Fatal("commit after abort succeeded")
	}
	NotFound(t, open(t), o.Info.ID)

	kept := NewObject(5)
	st = Stage(t, b, kept)
	if err := st.Commit(context.Background(), kept.Info); err != nil {
		t.Fatal(err)
	}
	if err := st.Abort(); err != nil {
		t.Fatalf("abort after commit: %v", err)
	}
	Check(t, open(t), kept)
}

// testStaging: a staged part reads back before the commit; each part is
// created once; bad part names are refused.
func testStaging(t *testing.T, open func(t *testing.T) media.Blobs) {
	b := open(t)
	o := NewObject(6)
	st := Stage(t, b, o)
	defer st.Abort()
	r, err := st.Open(media.PartData)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, o.Parts[media.PartData]) {
		t.Fatalf("staged data: %d bytes, %v", len(got), err)
	}
	if _, err := r.Seek(-10, io.SeekEnd); err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, o.Parts[media.PartData][DataSize-10:]) {
		t.Fatalf("staged data after a seek: %q, %v", got, err)
	}
	r.Close()
	if w, err := st.Create(media.PartData); err == nil {
		w.Close()
		t.Fatal("a part created twice")
	}
	for _, bad := range []string{"../x", "a/b", "", "UPPER", "hls/../../x"} {
		if w, err := st.Create(bad); err == nil {
			w.Close()
			t.Errorf("part %q was accepted", bad)
		}
	}
	if _, err := b.Create(context.Background(), "../m-x"); err == nil {
		t.Error("a bad ID was staged")
	}
	if err := st.Commit(context.Background(), o.Info); err != nil {
		t.Fatal(err)
	}
	Check(t, open(t), o)
}

// testConcurrentOpen: many readers of one part not yet read on their node
// all get it whole.
func testConcurrentOpen(t *testing.T, open func(t *testing.T) media.Blobs) {
	o := NewObject(7)
	Put(t, open(t), o)
	b := open(t)
	const readers = 8
	var wg sync.WaitGroup
	errs := make(chan error, readers)
	for i := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := b.Open(context.Background(), o.Info.ID, media.PartData)
			if err != nil {
				errs <- err
				return
			}
			defer r.Close()
			if i%2 == 1 { // half of them seek first
				if _, err := r.Seek(int64(i)*1000, io.SeekStart); err != nil {
					errs <- err
					return
				}
			}
			got, err := io.ReadAll(r)
			if err != nil {
				errs <- err
				return
			}
			if want := o.Parts[media.PartData][int64(i%2)*int64(i)*1000:]; !bytes.Equal(got, want) {
				errs <- fmt.Errorf("reader %d: %d bytes, want %d", i, len(got), len(want))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// deleting is b as a media.Deleting, which every Blobs of the server is.
func deleting(t *testing.T, b media.Blobs) media.Deleting {
	t.Helper()
	d, ok := b.(media.Deleting)
	if !ok {
		t.Fatalf("%T is not a media.Deleting", b)
	}
	return d
}

// testDelete: a deleted object is gone for every node, also one that had
// read it (a cache), while a reader that had a part open reads it to the
// end; other objects stay whole; deleting again, or what never was, is no
// error; a bad ID is not found.
func testDelete(t *testing.T, open func(t *testing.T) media.Blobs) {
	ctx := context.Background()
	a := deleting(t, open(t))
	gone, kept := NewObject(30), NewObject(31)
	Put(t, a, gone)
	Put(t, a, kept)
	b := deleting(t, open(t))
	Check(t, b, gone) // b (another node) has read it: cached, on GridFS
	r, err := a.Open(ctx, gone.Info.ID, media.PartData)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	if err := a.Delete(ctx, gone.Info.ID); err != nil {
		t.Fatalf("delete: %v", err)
	}
	NotFound(t, a, gone.Info.ID)
	NotFound(t, open(t), gone.Info.ID)
	if _, err := b.Stat(ctx, gone.Info.ID); !errors.Is(err, media.ErrNotFound) {
		t.Fatalf("stat of a deleted object on a node that read it: %v, want ErrNotFound", err)
	}
	if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, gone.Parts[media.PartData]) {
		t.Fatalf("a reader open before the delete read %d bytes, %v; want all %d", len(got), err, len(gone.Parts[media.PartData]))
	}
	Check(t, a, kept)
	Check(t, b, kept)

	for _, d := range []media.Deleting{a, b} {
		if err := d.Delete(ctx, gone.Info.ID); err != nil {
			t.Fatalf("delete of a deleted object: %v", err)
		}
	}
	if err := b.Delete(ctx, media.NewID()); err != nil {
		t.Fatalf("delete of an object that never was: %v", err)
	}
	if err := a.Delete(ctx, "../"+kept.Info.ID); !errors.Is(err, media.ErrNotFound) {
		t.Fatalf("delete of a bad ID: %v, want ErrNotFound", err)
	}
	Check(t, open(t), kept)
	NotFound(t, b, gone.Info.ID)
}

// testOlder: Older lists exactly the objects created before the bound, in
// ID order, page by page.
func testOlder(t *testing.T, open func(t *testing.T) media.Blobs) {
	ctx := context.Background()
	b := deleting(t, open(t))
	const base = 1700000000000
	var want []string
	for i := range 7 {
		o := NewObject(uint64(40 + i))
		o.Info.Created = base + int64(i)*1000
		Put(t, b, o)
		if i < 5 {
			want = append(want, o.Info.ID)
		}
	}
	slices.Sort(want)
	before := int64(base + 4*1000 + 1) // the first five
	other := deleting(t, open(t))
	for _, limit := range []int{100, 2, 1} {
		var got []string
		after := ""
		for range 10 {
			page, err := other.Older(ctx, before, after, limit)
			if err != nil {
				t.Fatalf("older: %v", err)
			}
			if len(page) > limit {
				t.Fatalf("older: %d IDs over the limit %d", len(page), limit)
			}
			if len(page) == 0 {
				break
			}
			got = append(got, page...)
			after = page[len(page)-1]
		}
		if !slices.Equal(got, want) {
			t.Fatalf("older (pages of %d): %v\nwant %v", limit, got, want)
		}
	}
	if got, err := other.Older(ctx, base, "", 100); err != nil || len(got) != 0 {
		t.Fatalf("older than the oldest: %v, %v; want none", got, err)
	}
	if err := b.Delete(ctx, want[0]); err != nil {
		t.Fatal(err)
	}
	if got, err := other.Older(ctx, before, "", 100); err != nil || !slices.Equal(got, want[1:]) {
		t.Fatalf("older after a delete: %v, %v; want %v", got, err, want[1:])
	}
}
