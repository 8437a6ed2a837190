package media

import (
	"bufio"
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"image/jpeg"
	"strings"
	"testing"

	"github.com/imqtt/imqtt/internal/media/mediatest"
)

// TestPrivateVideo: a private video is cut into HLS segments encrypted
// with AES-128; the key in the playlist's relative URI decrypts them into
// MPEG-TS; the video gets a thumbnail from its first frame.
func TestPrivateVideo(t *testing.T) {
	s, blobs := newService(t, Options{FFmpeg: mediatest.FFmpeg(t)}, nil, nil)
	video := mediatest.Video(t, 14, 160, 120)
	info, err := s.Put(context.Background(), Upload{Owner: "alice", Declared: "video/mp4", Private: true, Length: int64(len(video))}, bytes.NewReader(video))
	if err != nil {
		t.Fatal(err)
	}
	if !info.HLS || info.Type != "video/mp4" {
		t.Fatalf("info %+v", info)
	}
	playlist := string(readPart(t, s, "alice", info.ID, PartHLS+HLSPlaylist))
	key := readPart(t, s, "alice", info.ID, PartHLS+HLSKey)
	if len(key) != 16 || !strings.Contains(playlist, `#EXT-X-KEY:METHOD=AES-128,URI="key"`) {
		t.Fatalf("key of %d bytes, playlist:\n%s", len(key), playlist)
	}
	segs := decryptPlaylist(t, playlist, key, func(name string) []byte {
		if !ValidHLSName(name) {
			t.Fatalf("playlist names %q", name)
		}
		return readPart(t, s, "alice", info.ID, PartHLS+name)
	})
	if segs < 2 {
		t.Fatalf("%d segments for 14 s at 6 s each", segs)
	}
	// The key itself is not in any segment's clear text, and segments are
	// not MPEG-TS before decryption.
	raw := readPart(t, s, "alice", info.ID, PartHLS+"seg00000.ts")
	if raw[0] == 0x47 && raw[188] == 0x47 {
		t.Fatal("segment 0 is not encrypted")
	}
	if info.Thumb == nil || info.Width != 160 || info.Height != 120 {
		t.Fatalf("video thumbnail %+v, %dx%d", info.Thumb, info.Width, info.Height)
	}
	if _, err := jpeg.Decode(bytes.NewReader(readPart(t, s, "alice", info.ID, PartThumb))); err != nil {
		t.Fatal(err)
	}

	// A video ffmpeg cannot read is refused and leaves nothing.
	before := mediatest.Files(t, blobs.Root())
	junk := append([]byte("\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"), bytes.Repeat([]byte("junk"), 4000)...)
	_, err = s.Put(context.Background(), Upload{Owner: "alice", Private: true, Length: -1}, bytes.NewReader(junk))
	if !errors.Is(err, ErrBadVideo) {
		t.Fatalf("junk video: %v", err)
	}
	if after := mediatest.Files(t, blobs.Root()); len(after) != len(before) {
		t.Fatalf("junk video left files: %q", after)
	}
}

// decryptPlaylist decrypts every segment of an AES-128 HLS playlist (IV:
// the playlist's, else the media sequence number) and checks each is
// MPEG-TS; it returns how many there were.
func decryptPlaylist(t testing.TB, playlist string, key []byte, get func(name string) []byte) int {
	t.Helper()
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	var iv []byte
	seq, n := uint64(0), 0
	sc := bufio.NewScanner(strings.NewReader(playlist))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "#EXT-X-KEY:"):
			iv = nil
			if _, v, ok := strings.Cut(line, "IV=0x"); ok {
				if iv, err = hex.DecodeString(strings.SplitN(v, ",", 2)[0]); err != nil {
					t.Fatalf("IV in %q: %v", line, err)
				}
			}
		case line == "" || strings.HasPrefix(line, "#"):
		default:
			seg := get(line)
			segIV := iv
			if segIV == nil {
				segIV = make([]byte, 16)
				binary.BigEndian.PutUint64(segIV[8:], seq)
			}
			if len(seg) == 0 || len(seg)%aes.BlockSize != 0 {
				t.Fatalf("segment %s of %d bytes", line, len(seg))
			}
			plain := make([]byte, len(seg))
			cipher.NewCBCDecrypter(block, segIV).CryptBlocks(plain, seg)
			if plain[0] != 0x47 || len(plain) < 189 || plain[188] != 0x47 {
				t.Fatalf("segment %s does not decrypt to MPEG-TS", line)
			}
			seq++
			n++
		}
	}
	return n
}
