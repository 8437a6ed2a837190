package media

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/imqtt/imqtt/chat"
	"github.com/imqtt/imqtt/internal/media/mediatest"
	"github.com/imqtt/imqtt/wire"
)

var _ chat.Media = (*Service)(nil)

// grantMap stands in for the store's grant rows (the real store's are
// covered by store/storetest and the e2e tests).
type grantMap map[string][]string

func (g grantMap) MediaGrants(_ context.Context, id string) ([]string, error) { return g[id], nil }

func newService(t testing.TB, opts Options, grants Grants, member MemberFunc) (*Service, *FS) {
	t.Helper()
	blobs, err := OpenFS(filepath.Join(t.TempDir(), "media"))
	if err != nil {
		t.Fatal(err)
	}
	if grants == nil {
		grants = grantMap{}
	}
	if opts.FFmpeg == "" {
		opts.FFmpeg = "off"
	}
	opts.Logger = slog.New(slog.DiscardHandler)
	return New(blobs, grants, member, opts), blobs
}

func put(t testing.TB, s *Service, owner, declared string, data []byte) Info {
	t.Helper()
	info, err := s.Put(context.Background(), Upload{Owner: owner, Declared: declared, Length: int64(len(data))}, bytes.NewReader(data))
	if err != nil {
		t.Fatalf("put %s: %v", declared, err)
	}
	return info
}

func readPart(t testing.TB, s *Service, user, id, part string) []byte {
	t.Helper()
	_, r, err := s.Open(context.Background(), user, id, part)
	if err != nil {
		t.Fatalf("open %s/%s as %s: %v", id, part, user, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPutAndRead(t *testing.T) {
	s, blobs := newService(t, Options{}, nil, nil)
	png := mediatest.PNG(t, 800, 600)
	info := put(t, s, "alice", "image/png", png)
	sum := sha256.Sum256(png)
	if !ValidID(info.ID) || info.Owner != "alice" || info.Type != "image/png" || info.Size != int64(len(png)) ||
		info.SHA256 != hex.EncodeToString(sum[:]) || info.Width != 800 || info.Height != 600 {
		t.Fatalf("info %+v", info)
	}
	if got := readPart(t, s, "alice", info.ID, PartData); !bytes.Equal(got, png) {
		t.Fatal("the bytes read back differ")
	}
	st, err := blobs.Stat(context.Background(), info.ID)
	if err != nil || st.SHA256 != info.SHA256 || st.Thumb == nil {
		t.Fatalf("stat %+v %v", st, err)
	}
	// The sidecar is the Info, next to the bytes, and nothing else is left.
	files := mediatest.Files(t, blobs.Root())
	dir := filepath.Join(info.ID[2:4], info.ID)
	if want := []string{filepath.Join(dir, "data"), filepath.Join(dir, "info.json"), filepath.Join(dir, "thumb")}; !slices.Equal(files, want) {
		t.Fatalf("files %q, want %q", files, want)
	}

	thumb := readPart(t, s, "alice", info.ID, PartThumb)
	img, err := jpeg.Decode(bytes.NewReader(thumb))
	if err != nil {
		t.Fatalf("thumbnail is not a JPEG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 320 || b.Dy() != 240 || info.Thumb.Width != 320 || int(info.Thumb.Size) != len(thumb) {
		t.Fatalf("thumbnail %v, info %+v", b, info.Thumb)
	}
	// A small image is not enlarged.
	small := put(t, s, "alice", "", mediatest.PNG(t, 40, 20))
	if small.Thumb == nil || small.Thumb.Width != 40 || small.Thumb.Height != 20 {
		t.Fatalf("small thumbnail %+v", small.Thumb)
	}
}

// TestThumbOrientation: EXIF orientation 6 (turn 90° clockwise to view)
// swaps the thumbnail's dimensions and moves the red top-left quadrant of
// the stored pixels to the top right.
func TestThumbOrientation(t *testing.T) {
	s, _ := newService(t, Options{}, nil, nil)
	for _, c := range []struct {
		w, h, o      int
		tw, th       int
		redX, redY   float64 // where red is, as fractions of the thumbnail
		infoW, infoH int
	}{
		{200, 100, 1, 200, 100, 0.25, 0.25, 200, 100},
		{200, 100, 6, 100, 200, 0.75, 0.25, 100, 200},
		{200, 100, 8, 100, 200, 0.25, 0.75, 100, 200},
		{200, 100, 3, 200, 100, 0.75, 0.75, 200, 100},
		{1000, 500, 6, 160, 320, 0.75, 0.25, 500, 1000},
	} {
		info := put(t, s, "alice", "image/jpeg", mediatest.JPEG(t, c.w, c.h, c.o))
		img, err := jpeg.Decode(bytes.NewReader(readPart(t, s, "alice", info.ID, PartThumb)))
		if err != nil {
			t.Fatal(err)
		}
		b := img.Bounds()
		if b.Dx() != c.tw || b.Dy() != c.th || info.Width != c.infoW || info.Height != c.infoH {
			t.Errorf("%dx%d orientation %d: thumbnail %dx%d, info %dx%d; want %dx%d, %dx%d",
				c.w, c.h, c.o, b.Dx(), b.Dy(), info.Width, info.Height, c.tw, c.th, c.infoW, c.infoH)
			continue
		}
		if at := img.At(int(c.redX*float64(b.Dx())), int(c.redY*float64(b.Dy()))); !mediatest.IsRed(at) {
			t.Errorf("orientation %d: no red at (%.2f, %.2f): %v", c.o, c.redX, c.redY, at)
		}
	}
}

func TestBadUploads(t *testing.T) {
	ctx := context.Background()
	s, blobs := newService(t, Options{MaxImage: 4 << 10, MaxAudio: 64 << 10, MaxFile: 8 << 10}, nil, nil)
	png := mediatest.PNG(t, 100, 100)
	kept := put(t, s, "alice", "", mediatest.PNG(t, 10, 10))
	before := mediatest.Files(t, blobs.Root())
	big := mediatest.NoiseJPEG(t, 200, 200)
	if len(big) <= 4<<10 {
		t.Fatalf("test image of %d bytes is under the limit", len(big))
	}
	cases := []struct {
		name string
		up   Upload
		body io.Reader
		want error
	}{
		{"empty", Upload{Length: 0}, bytes.NewReader(nil), ErrEmpty},
		{"empty, length unknown", Upload{Length: -1}, bytes.NewReader(nil), ErrEmpty},
		{"over the image limit", Upload{Length: -1}, bytes.NewReader(big), ErrTooLarge},
		{"declared over the limit", Upload{Length: 1 << 30}, io.MultiReader(bytes.NewReader(big[:512]), failingReader{t}), ErrTooLarge},
		{"over the file limit", Upload{Length: -1}, strings.NewReader(strings.Repeat("text ", 2000)), ErrTooLarge},
		{"a PNG declared as JPEG", Upload{Declared: "image/jpeg", Length: -1}, bytes.NewReader(png), ErrTypeMismatch},
		{"a PNG declared as audio", Upload{Declared: "audio/mpeg", Length: -1}, bytes.NewReader(png), ErrTypeMismatch},
		{"text declared as an image", Upload{Declared: "image/png", Length: -1}, strings.NewReader("hello"), ErrTypeMismatch},
		{"a PNG declared as text", Upload{Declared: "text/plain", Length: -1}, bytes.NewReader(png), ErrTypeMismatch},
		{"cut off", Upload{Length: -1}, io.MultiReader(bytes.NewReader(big[:2000]), errReader{io.ErrUnexpectedEOF}), ErrTruncated},
		{"cut off in the head", Upload{Length: -1}, io.MultiReader(bytes.NewReader(big[:100]), errReader{io.ErrUnexpectedEOF}), ErrTruncated},
		{"shorter than declared", Upload{Length: int64(len(png)) + 1}, bytes.NewReader(png), ErrTruncated},
		{"a path for a name", Upload{Name: "../../etc/passwd", Length: -1}, bytes.NewReader(png), ErrBadName},
		{"a Windows path", Upload{Name: `..\boot.ini`, Length: -1}, bytes.NewReader(png), ErrBadName},
		{"dot dot", Upload{Name: "..", Length: -1}, bytes.NewReader(png), ErrBadName},
		{"a control character", Upload{Name: "a\nb.png", Length: -1}, bytes.NewReader(png), ErrBadName},
		{"private without ffmpeg", Upload{Private: true, Length: -1}, bytes.NewReader(png), ErrNoHLS},
	}
	for _, c := range cases {
		c.up.Owner = "alice"
		_, err := s.Put(ctx, c.up, c.body)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
		if after := mediatest.Files(t, blobs.Root()); !slices.Equal(after, before) {
			t.Fatalf("%s left files: %q", c.name, after)
		}
	}
	if got := readPart(t, s, "alice", kept.ID, PartData); len(got) != int(kept.Size) {
		t.Fatal("a failed upload disturbed another object")
	}
}

// failingReader fails the test if read: an upload declared too large must
// be refused without reading past its head.
type failingReader struct{ t testing.TB }

func (f failingReader) Read([]byte) (int, error) {
	f.t.Error("read past the head of an upload declared too large")
	return 0, io.EOF
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// TestPrivateNotVideo: ?private is for video only (checked with ffmpeg on).
func TestPrivateNotVideo(t *testing.T) {
	mediatest.FFmpeg(t)
	s, blobs := newService(t, Options{FFmpeg: "ffmpeg"}, nil, nil)
	_, err := s.Put(context.Background(), Upload{Owner: "alice", Private: true, Length: -1}, bytes.NewReader(mediatest.PNG(t, 10, 10)))
	if !errors.Is(err, ErrNotVideo) {
		t.Fatalf("private PNG: %v", err)
	}
	if files := mediatest.Files(t, blobs.Root()); len(files) != 0 {
		t.Fatalf("left %q", files)
	}
}

func TestAllowed(t *testing.T) {
	ctx := context.Background()
	members := map[string]bool{"carol@g1": true}
	grants := grantMap{}
	s, _ := newService(t, Options{}, grants, func(_ context.Context, user, group string) (bool, error) {
		if group == "broken" {
			return false, errors.New("store down")
		}
		return members[user+"@"+group], nil
	})
	info := put(t, s, "alice", "", mediatest.PNG(t, 10, 10))
	grants[info.ID] = []string{"u:bob", "g:g1", "g:broken"}
	for _, c := range []struct {
		user string
		ok   bool
	}{{"alice", true}, {"bob", true}, {"carol", true}} {
		if ok, err := s.Allowed(ctx, c.user, info.ID); ok != c.ok || err != nil {
			t.Errorf("%s: %v %v", c.user, ok, err)
		}
	}
	if ok, err := s.Allowed(ctx, "dave", info.ID); ok || err == nil {
		t.Errorf("dave, with a membership that fails to load: %v %v", ok, err)
	}
	grants[info.ID] = []string{"u:bob", "g:g1", "g:g2"}
	if ok, err := s.Allowed(ctx, "dave", info.ID); ok || err != nil {
		t.Errorf("dave: %v %v", ok, err)
	}
	for _, id := range []string{"m-" + strings.Repeat("a", 26), "m-../../pebble", "", info.ID + "x", strings.ToUpper(info.ID)} {
		if ok, err := s.Allowed(ctx, "alice", id); ok || err != nil {
			t.Errorf("%q: %v %v", id, ok, err)
		}
	}
	// Someone else's media and no media look the same.
	_, _, errOther := s.Open(ctx, "dave", info.ID, PartData)
	_, _, errNone := s.Open(ctx, "dave", "m-"+strings.Repeat("a", 26), PartData)
	if !errors.Is(errOther, ErrNotFound) || !errors.Is(errNone, ErrNotFound) {
		t.Fatalf("open: %v / %v", errOther, errNone)
	}
}

func TestAttach(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t, Options{}, grantMap{}, nil)

	png := put(t, s, "alice", "", mediatest.PNG(t, 640, 480))
	in, err := s.Attach(ctx, "alice", png.ID)
	if err != nil || in == nil || in.Type != "image/jpeg" || !bytes.Equal(in.Data, readPart(t, s, "alice", png.ID, PartThumb)) {
		t.Fatalf("attach a PNG: %+v %v", in, err)
	}
	if len(in.Data) > 8<<10 {
		t.Fatalf("inline thumbnail of %d bytes", len(in.Data))
	}

	// A thumbnail too big to carry inline is replaced by the preview.
	noisy := put(t, s, "alice", "", mediatest.NoiseJPEG(t, 800, 800))
	if noisy.Thumb == nil || noisy.Thumb.Size <= 8<<10 || noisy.Preview == nil {
		t.Fatalf("noisy image: thumb %+v preview %+v", noisy.Thumb, noisy.Preview)
	}
	in, err = s.Attach(ctx, "alice", noisy.ID)
	if err != nil || in == nil || len(in.Data) > 8<<10 {
		t.Fatalf("attach a noisy JPEG: %v %v", in, err)
	}
	img, err := jpeg.Decode(bytes.NewReader(in.Data))
	if err != nil || img.Bounds() != image.Rect(0, 0, previewSide, previewSide) {
		t.Fatalf("preview: %v %v", img.Bounds(), err)
	}

	// A short voice note rides inline; a longer one does not.
	short := mediatest.WAV(2000)
	wav := put(t, s, "alice", "audio/x-wav", short)
	in, err = s.Attach(ctx, "alice", wav.ID)
	if err != nil || in == nil || in.Type != "audio/wav" || !bytes.Equal(in.Data, short) {
		t.Fatalf("attach a short WAV (%s): %v %v", wav.Type, in, err)
	}
	long := put(t, s, "alice", "", mediatest.WAV(8000))
	if in, err := s.Attach(ctx, "alice", long.ID); in != nil || err != nil {
		t.Fatalf("attach a long WAV: %v %v", in, err)
	}
	file := put(t, s, "alice", "", []byte("just text"))
	if in, err := s.Attach(ctx, "alice", file.ID); in != nil || err != nil {
		t.Fatalf("attach a text file: %v %v", in, err)
	}

	// Someone else's media, no media, a malformed ID: not_found alike.
	for _, c := range []struct{ user, id string }{{"mallory", png.ID}, {"alice", "m-" + strings.Repeat("b", 26)}, {"alice", "../x"}} {
		_, err := s.Attach(ctx, c.user, c.id)
		var we *wire.Error
		if !errors.As(err, &we) || we.Code != wire.CodeNotFound {
			t.Errorf("attach %s as %s: %v", c.id, c.user, err)
		}
	}
}

// TestFSAtomic: a staged object is invisible until committed, an aborted
// one leaves nothing, and staging left by a crash is cleared on open.
func TestFSAtomic(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "media")
	blobs, err := OpenFS(root)
	if err != nil {
		t.Fatal(err)
	}
	id := NewID()
	st, err := blobs.Create(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	w, _ := st.Create(PartData)
	_, _ = w.Write([]byte("hello"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := blobs.Stat(ctx, id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("stat before commit: %v", err)
	}
	if _, err := blobs.Open(ctx, id, PartData); !errors.Is(err, ErrNotFound) {
		t.Fatalf("open before commit: %v", err)
	}
	for _, bad := range []string{"../data", "hls/../../x", "info.json", "a/b/c", ""} {
		if _, err := st.Create(bad); err == nil {
			t.Errorf("part %q accepted", bad)
		}
	}
	if err := st.Commit(ctx, Info{ID: id, Size: 5}); err != nil {
		t.Fatal(err)
	}
	if err := st.Abort(); err != nil {
		t.Fatal(err)
	}
	if info, err := blobs.Stat(ctx, id); err != nil || info.Size != 5 {
		t.Fatalf("stat after commit: %+v %v", info, err)
	}
	for _, bad := range []string{"info.json", "../" + id + "/data", "hls/../data"} {
		if _, err := blobs.Open(ctx, id, bad); !errors.Is(err, ErrNotFound) {
			t.Errorf("open part %q: %v", bad, err)
		}
	}

	// Aborted: nothing left. Crashed: cleared on the next open.
	st2, _ := blobs.Create(ctx, NewID())
	w, _ = st2.Create(PartData)
	_, _ = w.Write([]byte("partial"))
	_ = w.Close()
	_ = st2.Abort()
	st3, _ := blobs.Create(ctx, NewID())
	w, _ = st3.Create(PartData)
	_, _ = w.Write([]byte("crashed"))
	if entries, _ := os.ReadDir(filepath.Join(root, "tmp")); len(entries) != 1 {
		t.Fatalf("staging holds %d entries, want the crashed one", len(entries))
	}
	if _, err := OpenFS(root); err != nil {
		t.Fatal(err)
	}
	files := mediatest.Files(t, root)
	if want := []string{filepath.Join(id[2:4], id, "data"), filepath.Join(id[2:4], id, "info.json")}; !slices.Equal(files, want) {
		t.Fatalf("after reopening: %q, want %q", files, want)
	}
}

func TestNewID(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		id := NewID()
		if !ValidID(id) || seen[id] {
			t.Fatalf("id %q (seen %v)", id, seen[id])
		}
		seen[id] = true
	}
	for _, bad := range []string{"", "m-", "m-../../../etc/passwd", "m-AAAAAAAAAAAAAAAAAAAAAAAAAA", "m-aaaaaaaaaaaaaaaaaaaaaaaaa/", "x-aaaaaaaaaaaaaaaaaaaaaaaaaa"} {
		if ValidID(bad) {
			t.Errorf("%q valid", bad)
		}
	}
}

// BenchmarkStore measures Put (stream, hash, fsync, commit) and reading a
// part back, without HTTP; the bytes are random, so no thumbnail is made.
func BenchmarkStore(b *testing.B) {
	ctx := context.Background()
	s, _ := newService(b, Options{}, nil, nil)
	for _, size := range []int{1 << 20, 64 << 20} {
		data := make([]byte, size)
		_, _ = rand.Read(data)
		name := fmt.Sprintf("size=%dMiB", size>>20)
		var id string
		b.Run("put/"+name, func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				info, err := s.Put(ctx, Upload{Owner: "alice", Length: int64(size)}, bytes.NewReader(data))
				if err != nil {
					b.Fatal(err)
				}
				id = info.ID
			}
		})
		b.Run("read/"+name, func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				_, r, err := s.Open(ctx, "alice", id, PartData)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, r); err != nil {
					b.Fatal(err)
				}
				r.Close()
			}
		})
	}
}
