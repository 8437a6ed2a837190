package media

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/imqtt/imqtt/internal/media/mediatest"
)

func TestSniff(t *testing.T) {
	ogg := func(codec string) []byte {
		b := make([]byte, 28, 64)
		copy(b, "OggS")
		return append(b, codec...)
	}
	for _, c := range []struct {
		name string
		head []byte
		want string
	}{
		{"png", mediatest.PNG(t, 4, 4), "image/png"},
		{"jpeg", mediatest.JPEG(t, 4, 4, 6), "image/jpeg"},
		{"gif", []byte("GIF89a\x01\x00\x01\x00"), "image/gif"},
		{"webp", []byte("RIFF\x00\x00\x00\x00WEBPVP8 "), "image/webp"},
		{"heic", []byte("\x00\x00\x00\x18ftypheic\x00\x00\x00\x00"), "image/heic"},
		{"wav", mediatest.WAV(10), "audio/wav"},
		{"amr voice note", []byte("#!AMR\n\x3c"), "audio/amr"},
		{"amr-wb", []byte("#!AMR-WB\n"), "audio/amr-wb"},
		{"ogg opus", ogg("OpusHead"), "audio/ogg"},
		{"ogg vorbis", ogg("\x01vorbis"), "audio/ogg"},
		{"ogg theora", ogg("\x80theora"), "video/ogg"},
		{"mp3 with ID3", []byte("ID3\x03\x00\x00\x00\x00\x00\x00"), "audio/mpeg"},
		{"mp3 frame", []byte{0xff, 0xfb, 0x90, 0x64, 0, 0}, "audio/mpeg"},
		{"aac adts", []byte{0xff, 0xf1, 0x50, 0x80, 0, 0}, "audio/aac"},
		{"flac", []byte("fLaC\x00\x00\x00\x22"), "audio/flac"},
		{"m4a", []byte("\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00"), "audio/mp4"},
		{"mp4", []byte("\x00\x00\x00\x20ftypisom\x00\x00\x02\x00"), "video/mp4"},
		{"quicktime", []byte("\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00"), "video/quicktime"},
		{"3gp", []byte("\x00\x00\x00\x14ftyp3gp4\x00\x00\x00\x00"), "video/3gpp"},
		{"webm", []byte("\x1a\x45\xdf\xa3\x9f\x42\x82\x84webm"), "video/webm"},
		{"matroska", []byte("\x1a\x45\xdf\xa3\xa3\x42\x82\x88matroska"), "video/x-matroska"},
		{"pdf", []byte("%PDF-1.7\n"), "application/pdf"},
		{"zip", []byte("PK\x03\x04\x14\x00"), "application/zip"},
		{"text", []byte("hello there"), "text/plain; charset=utf-8"},
		{"html", []byte("<!DOCTYPE html><script>"), "text/html; charset=utf-8"},
		{"binary", []byte{0, 1, 2, 3, 4}, "application/octet-stream"},
		{"jpeg is not mp3", []byte{0xff, 0xd8, 0xff, 0xe0}, "image/jpeg"},
	} {
		if got := Sniff(c.head); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

func TestResolve(t *testing.T) {
	for _, c := range []struct {
		declared, sniffed, want string
		err                     error
	}{
		{"", "image/png", "image/png", nil},
		{"application/octet-stream", "image/png", "image/png", nil},
		{"image/png", "image/png", "image/png", nil},
		{"IMAGE/PNG; charset=x", "image/png", "image/png", nil},
		{"image/jpg", "image/jpeg", "image/jpeg", nil},
		{"audio/x-wav", "audio/wav", "audio/wav", nil},
		{"audio/mp4", "video/mp4", "audio/mp4", nil}, // an audio-only MP4
		{"audio/webm", "video/webm", "audio/webm", nil},
		{"audio/opus", "audio/ogg", "audio/ogg", nil},
		{"application/vnd.openxmlformats-officedocument.wordprocessingml.document", "application/zip", "application/zip", nil},
		{"text/plain", "text/plain; charset=utf-8", "text/plain; charset=utf-8", nil},
		{"image/jpeg", "image/png", "", ErrTypeMismatch},
		{"image/png", "text/plain; charset=utf-8", "", ErrTypeMismatch},
		{"video/mp4", "image/gif", "", ErrTypeMismatch},
		{"audio/mpeg", "application/zip", "", ErrTypeMismatch},
		{"text/plain", "image/png", "", ErrTypeMismatch},
		{"image/svg+xml", "text/xml; charset=utf-8", "", ErrTypeMismatch},
		{"not a type", "image/png", "image/png", nil},
	} {
		got, err := Resolve(c.declared, c.sniffed)
		if got != c.want || !errors.Is(err, c.err) {
			t.Errorf("Resolve(%q, %q) = %q, %v; want %q, %v", c.declared, c.sniffed, got, err, c.want, c.err)
		}
	}
}

func TestClassOf(t *testing.T) {
	for typ, want := range map[string]Class{
		"image/png": ClassImage, "audio/ogg": ClassAudio, "video/mp4": ClassVideo,
		"application/ogg": ClassFile, "text/plain; charset=utf-8": ClassFile, "": ClassFile,
	} {
		if got := ClassOf(typ); got != want {
			t.Errorf("ClassOf(%q) = %s, want %s", typ, got, want)
		}
	}
}

// TestSniffSamples sniffs whole files as phones and browsers send them,
// made by ffmpeg 5.1 (testdata/sniff/README): the signatures above are
// checked against real encoders' output, not only hand-written heads.
func TestSniffSamples(t *testing.T) {
	want := map[string]string{
		"clip.3gp": "video/3gpp", "clip.mkv": "video/x-matroska", "clip.mov": "video/quicktime",
		"clip.mp4": "video/mp4", "clip.webm": "video/webm",
		"photo.heic": "image/heic", "photo.webp": "image/webp",
		"voice.aac": "audio/aac", "voice.flac": "audio/flac", "voice.m4a": "audio/mp4",
		"voice.mp3": "audio/mpeg", "voice-noid3.mp3": "audio/mpeg",
		"voice.ogg": "audio/ogg", "voice.opus": "audio/ogg", "voice.wav": "audio/wav",
		"voice.weba": "video/webm", // audio-only WebM: Resolve believes a declared audio/webm
	}
	files, err := filepath.Glob("testdata/sniff/*.*")
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, f := range files {
		name := filepath.Base(f)
		if name == "README" {
			continue
		}
		w, ok := want[name]
		if !ok {
			t.Errorf("%s: no expected type in the test", name)
			continue
		}
		seen++
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if got := Sniff(b); got != w {
			t.Errorf("%s: %q, want %q", name, got, w)
		}
	}
	if seen != len(want) {
		t.Errorf("%d samples in testdata/sniff, want %d", seen, len(want))
	}
}
