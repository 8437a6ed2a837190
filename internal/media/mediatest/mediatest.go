// Package mediatest makes real media files for tests: images through the
// standard encoders, a JPEG with a hand-written EXIF segment, a WAV of a
// tone, and a video made by ffmpeg.
package mediatest

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
)

// PNG is a w × h PNG of Quadrants.
func PNG(t testing.TB, w, h int) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, Quadrants(w, h)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// JPEG is a w × h JPEG of Quadrants; orientation > 0 adds an EXIF segment
// with that Orientation tag.
func JPEG(t testing.TB, w, h, orientation int) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, Quadrants(w, h), &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	if orientation == 0 {
		return buf.Bytes()
	}
	return WithExif(buf.Bytes(), orientation, binary.BigEndian)
}

// NoiseJPEG is a w × h JPEG of random pixels: its thumbnail is big.
func NoiseJPEG(t testing.TB, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	r := rand.New(rand.NewPCG(1, 2))
	for i := range img.Pix {
		img.Pix[i] = byte(r.IntN(256))
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Quadrants is red in the top-left quadrant, blue in the rest of the top
// half, green in the bottom half: any turn or flip moves the red.
func Quadrants(w, h int) image.Image {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := color.RGBA{0, 160, 0, 255}
			switch {
			case y < h/2 && x < w/2:
				c = color.RGBA{230, 20, 20, 255}
			case y < h/2:
				c = color.RGBA{20, 20, 230, 255}
			}
			img.SetRGBA(x, y, c)
		}
	}
	return img
}

// IsRed reports whether c is the red of Quadrants (after JPEG's losses).
func IsRed(c color.Color) bool {
	r, g, b, _ := c.RGBA()
	return r>>8 >= 180 && g>>8 <= 80 && b>>8 <= 80
}

// WithExif inserts, right after a JPEG's SOI marker, an APP1 EXIF segment
// whose IFD0 holds one Orientation tag.
func WithExif(jpg []byte, orientation int, bo binary.ByteOrder) []byte {
	tiff := make([]byte, 8+2+12+4)
	if bo == binary.BigEndian {
		copy(tiff, "MM")
	} else {
		copy(tiff, "II")
	}
	bo.PutUint16(tiff[2:], 42)
	bo.PutUint32(tiff[4:], 8) // IFD0 right after the header
	bo.PutUint16(tiff[8:], 1) // one entry
	bo.PutUint16(tiff[10:], 0x0112)
	bo.PutUint16(tiff[12:], 3) // SHORT
	bo.PutUint32(tiff[14:], 1) // count
	bo.PutUint16(tiff[18:], uint16(orientation))
	seg := append([]byte("Exif\x00\x00"), tiff...)
	app1 := []byte{0xff, 0xe1, 0, 0}
	binary.BigEndian.PutUint16(app1[2:], uint16(2+len(seg)))
	out := append([]byte{}, jpg[:2]...)
	out = append(append(out, app1...), seg...)
	return append(out, jpg[2:]...)
}

// WAV is a 16-bit mono PCM WAV of a 440 Hz tone: n samples at 8 kHz.
func WAV(n int) []byte {
	var b bytes.Buffer
	le := binary.LittleEndian
	b.WriteString("RIFF")
	_ = binary.Write(&b, le, uint32(36+2*n))
	b.WriteString("WAVEfmt ")
	for _, v := range []any{uint32(16), uint16(1), uint16(1), uint32(8000), uint32(16000), uint16(2), uint16(16)} {
		_ = binary.Write(&b, le, v) // fmt chunk: PCM, mono, 8 kHz, 16 bits
	}
	b.WriteString("data")
	_ = binary.Write(&b, le, uint32(2*n))
	for i := 0; i < n; i++ {
		_ = binary.Write(&b, le, int16(8000*math.Sin(2*math.Pi*440*float64(i)/8000)))
	}
	return b.Bytes()
}

// FFmpeg finds ffmpeg. A missing ffmpeg fails the test, never skips it:
// ./scripts/test.sh installs it.
func FFmpeg(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Fatal("ffmpeg not found: run ./scripts/test.sh, which installs it")
	}
	return path
}

// Video has ffmpeg make an H.264/AAC MP4 of a test pattern and a tone,
// seconds long, w × h, a key frame every second.
func Video(t testing.TB, seconds, w, h int) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "v.mp4")
	s, size := strconv.Itoa(seconds), strconv.Itoa(w)+"x"+strconv.Itoa(h)
	cmd := exec.Command(FFmpeg(t), "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc=duration="+s+":size="+size+":rate=10",
		"-f", "lavfi", "-i", "sine=duration="+s, "-c:v", "libx264", "-g", "10", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make a video: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Files lists every file under root, relative to it, sorted: what a media
// store left on disk.
func Files(t testing.TB, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(root, path)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}
