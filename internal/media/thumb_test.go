package media

import (
	"bytes"
	"context"
	"encoding/binary"
	"image"
	"image/color"
	"testing"

	"github.com/imqtt/imqtt/internal/media/mediatest"
)

func TestExifOrientation(t *testing.T) {
	jpg := mediatest.JPEG(t, 8, 8, 0)
	for _, c := range []struct {
		name string
		b    []byte
		want int
	}{
		{"no EXIF", jpg, 1},
		{"big-endian 6", mediatest.WithExif(jpg, 6, binary.BigEndian), 6},
		{"little-endian 8", mediatest.WithExif(jpg, 8, binary.LittleEndian), 8},
		{"little-endian 3", mediatest.WithExif(jpg, 3, binary.LittleEndian), 3},
		{"out of range", mediatest.WithExif(jpg, 9, binary.BigEndian), 1},
		{"cut inside the segment", mediatest.WithExif(jpg, 6, binary.BigEndian)[:20], 1},
		{"not a JPEG", mediatest.PNG(t, 4, 4), 1},
		{"empty", nil, 1},
	} {
		if got := exifOrientation(c.b); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
}

// TestOrient checks each EXIF orientation against its definition: where
// the stored image's first row and first column end up when viewed.
func TestOrient(t *testing.T) {
	// A 3 × 2 image whose pixels are numbered 1..6 in reading order:
	//   1 2 3
	//   4 5 6
	src := image.NewRGBA(image.Rect(0, 0, 3, 2))
	for i := 0; i < 6; i++ {
		src.Set(i%3, i/3, color.RGBA{uint8(i + 1), 0, 0, 255})
	}
	for o, want := range map[int][][]uint8{
		1: {{1, 2, 3}, {4, 5, 6}},
		2: {{3, 2, 1}, {6, 5, 4}},   // mirrored
		3: {{6, 5, 4}, {3, 2, 1}},   // turned 180°
		4: {{4, 5, 6}, {1, 2, 3}},   // flipped
		5: {{1, 4}, {2, 5}, {3, 6}}, // transposed
		6: {{4, 1}, {5, 2}, {6, 3}}, // turned 90° clockwise
		7: {{6, 3}, {5, 2}, {4, 1}}, // transversed
		8: {{3, 6}, {2, 5}, {1, 4}}, // turned 90° counter-clockwise
		0: {{1, 2, 3}, {4, 5, 6}},   // none
		9: {{1, 2, 3}, {4, 5, 6}},   // unknown: left alone
	} {
		got := orient(src, o)
		var rows [][]uint8
		for y := 0; y < got.Bounds().Dy(); y++ {
			var row []uint8
			for x := 0; x < got.Bounds().Dx(); x++ {
				row = append(row, got.RGBAAt(x, y).R)
			}
			rows = append(rows, row)
		}
		if len(rows) != len(want) || !equalRows(rows, want) {
			t.Errorf("orientation %d: %v, want %v", o, rows, want)
		}
	}
}

func equalRows(a, b [][]uint8) bool {
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// TestShrink: a box average keeps a flat color flat (chroma too, across
// every subsample ratio and odd sizes) and turns a fine checkerboard gray.
func TestShrink(t *testing.T) {
	for _, ratio := range []image.YCbCrSubsampleRatio{image.YCbCrSubsampleRatio444, image.YCbCrSubsampleRatio422,
		image.YCbCrSubsampleRatio420, image.YCbCrSubsampleRatio440, image.YCbCrSubsampleRatio411, image.YCbCrSubsampleRatio410} {
		src := image.NewYCbCr(image.Rect(0, 0, 1001, 667), ratio)
		for i := range src.Y {
			src.Y[i] = 120
		}
		for i := range src.Cb {
			src.Cb[i], src.Cr[i] = 60, 200
		}
		got := scale(src, 100)
		if b := got.Bounds(); b.Dx() != 100 || b.Dy() != 67 {
			t.Fatalf("%v: %v", ratio, b)
		}
		want := color.RGBAModel.Convert(color.YCbCr{Y: 120, Cb: 60, Cr: 200}).(color.RGBA)
		for _, p := range []image.Point{{0, 0}, {99, 66}, {50, 30}, {99, 0}, {0, 66}} {
			if c := got.RGBAAt(p.X, p.Y); absDiff(c.R, want.R) > 2 || absDiff(c.G, want.G) > 2 || absDiff(c.B, want.B) > 2 {
				t.Errorf("%v at %v: %v, want %v", ratio, p, c, want)
			}
		}
	}
	checker := image.NewRGBA(image.Rect(0, 0, 1000, 1000))
	for y := 0; y < 1000; y++ {
		for x := 0; x < 1000; x++ {
			if (x+y)%2 == 0 {
				checker.Set(x, y, color.White)
			} else {
				checker.Set(x, y, color.Black)
			}
		}
	}
	got := scale(checker, 100)
	for _, p := range []image.Point{{0, 0}, {50, 50}, {99, 99}} {
		if c := got.RGBAAt(p.X, p.Y); absDiff(c.R, 128) > 3 {
			t.Errorf("checkerboard at %v: %v, want mid gray", p, c)
		}
	}
}

func absDiff(a, b uint8) uint8 {
	if a > b {
		return a - b
	}
	return b - a
}

// TestTooManyPixels: an image over the pixel budget is stored without a
// thumbnail rather than decoded.
func TestTooManyPixels(t *testing.T) {
	s, _ := newService(t, Options{ThumbPixels: 100 * 100}, nil, nil)
	info := put(t, s, "alice", "", mediatest.PNG(t, 101, 100))
	if info.Thumb != nil || info.Width != 0 {
		t.Fatalf("thumbnail made over the budget: %+v", info)
	}
	if _, _, err := s.Open(context.Background(), "alice", info.ID, PartThumb); err == nil {
		t.Fatal("a thumb part exists")
	}
}

// BenchmarkThumbnail times a thumbnail of a 24-megapixel photo.
func BenchmarkThumbnail(b *testing.B) {
	jpg := mediatest.NoiseJPEG(b, 6000, 4000)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, _, err := thumbnail(bytes.NewReader(jpg), 320, 50_000_000); err != nil {
			b.Fatal(err)
		}
	}
}
