package media

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"image"
	_ "image/png" // ffmpeg hands video frames over as PNG
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// HLS files of a private video, under PartHLS.
const (
	HLSPlaylist = "index.m3u8"
	HLSKey      = "key"
)

var segmentRe = regexp.MustCompile(`^seg[0-9]{5}\.ts$`)

// ValidHLSName reports whether name is one of the files of a private
// video's HLS rendition: the playlist, the key or a segment.
func ValidHLSName(name string) bool {
	return name == HLSPlaylist || name == HLSKey || segmentRe.MatchString(name)
}

// segment cuts the staged video into HLS segments encrypted with AES-128
// under a fresh random key, and stages the playlist, the key and the
// segments. The playlist names the key and the segments relatively ("key",
// "seg00000.ts"), so a player resolves them next to the playlist, where the
// API serves them to allowed users only. The stream is copied as it is when
// the codecs fit MPEG-TS, else re-encoded to H.264 and AAC.
func (s *Service) segment(ctx context.Context, st Staging, info *Info) error {
	if !s.acquire(ctx) {
		return ctx.Err()
	}
	defer s.release()
	work, err := os.MkdirTemp("", "imqtt-hls-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	r, err := st.Open(PartData)
	if err != nil {
		return err
	}
	defer r.Close()
	in, err := localPath(r, work)
	if err != nil {
		return err
	}
	key := make([]byte, 16)
	_, _ = rand.Read(key)
	keyPath, keyInfo, out := filepath.Join(work, HLSKey), filepath.Join(work, "keyinfo"), filepath.Join(work, "out")
	if err := os.WriteFile(keyPath, key, 0o600); err != nil {
		return err
	}
	// The key info file: the key's URI in the playlist, then where it is.
	if err := os.WriteFile(keyInfo, []byte(HLSKey+"\n"+keyPath+"\n"), 0o600); err != nil {
		return err
	}
	hls := []string{"-f", "hls", "-hls_time", "6", "-hls_playlist_type", "vod", "-hls_key_info_file", keyInfo,
		"-hls_segment_filename", filepath.Join(out, "seg%05d.ts"), filepath.Join(out, HLSPlaylist)}
	maps := []string{"-map", "0:v:0", "-map", "0:a:0?"}
	var runErr error
	for _, codecs := range [][]string{
		{"-c", "copy"},
		{"-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p", "-c:a", "aac"},
	} {
		if err := os.RemoveAll(out); err != nil {
			return err
		}
		if err := os.Mkdir(out, 0o700); err != nil {
			return err
		}
		args := append(append(append([]string{"-i", in}, maps...), codecs...), hls...)
		if _, runErr = s.run(ctx, args...); runErr == nil {
			break
		}
	}
	if runErr != nil {
		s.log.Info("media: segment video", "media", info.ID, "err", runErr)
		return fmt.Errorf("%w: %v", ErrBadVideo, runErr)
	}
	names, err := os.ReadDir(out)
	if err != nil {
		return err
	}
	segments := 0
	for _, e := range names {
		if !segmentRe.MatchString(e.Name()) && e.Name() != HLSPlaylist {
			return fmt.Errorf("media: segment video: unexpected file %q", e.Name())
		}
		if e.Name() != HLSPlaylist {
			segments++
		}
		if err := stageFile(st, PartHLS+e.Name(), filepath.Join(out, e.Name())); err != nil {
			return err
		}
	}
	if segments == 0 {
		return fmt.Errorf("%w: no segments", ErrBadVideo)
	}
	if err := stageFile(st, PartHLS+HLSKey, keyPath); err != nil {
		return err
	}
	info.HLS = true
	return nil
}

// videoThumb makes a video's thumbnail from its first frame (ffmpeg applies
// the rotation the container asks for). A video ffmpeg cannot read is kept
// without one.
func (s *Service) videoThumb(ctx context.Context, st Staging, info *Info) {
	if !s.acquire(ctx) {
		return
	}
	defer s.release()
	work, err := os.MkdirTemp("", "imqtt-frame-")
	if err != nil {
		s.log.Warn("media: video thumbnail", "media", info.ID, "err", err)
		return
	}
	defer os.RemoveAll(work)
	r, err := st.Open(PartData)
	if err != nil {
		s.log.Warn("media: video thumbnail", "media", info.ID, "err", err)
		return
	}
	defer r.Close()
	in, err := localPath(r, work)
	if err != nil {
		s.log.Warn("media: video thumbnail", "media", info.ID, "err", err)
		return
	}
	frame, err := s.run(ctx, "-i", in, "-frames:v", "1", "-f", "image2pipe", "-c:v", "png", "pipe:1")
	if err != nil {
		s.log.Info("media: no video thumbnail", "media", info.ID, "err", err)
		return
	}
	img, _, err := image.Decode(bytes.NewReader(frame))
	if err != nil {
		s.log.Info("media: no video thumbnail", "media", info.ID, "err", err)
		return
	}
	info.Width, info.Height = img.Bounds().Dx(), img.Bounds().Dy()
	s.renditions(st, info, scale(img, s.opts.ThumbSide))
}

// run runs ffmpeg with args (after its quiet flags) under the HLS timeout
// and returns its standard output; an error carries the end of its
// standard error.
func (s *Service) run(ctx context.Context, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.HLSTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.ffmpeg, append([]string{"-nostdin", "-hide_banner", "-loglevel", "error", "-y"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 300 {
			msg = "..." + msg[len(msg)-300:]
		}
		return nil, fmt.Errorf("ffmpeg: %w: %s", err, msg)
	}
	return stdout.Bytes(), nil
}

// stageFile copies the file at path into the part of st.
func stageFile(st Staging, part, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	w, err := st.Create(part)
	if err != nil {
		return err
	}
	_, err = io.Copy(w, f)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	return err
}

// copyToTemp copies r into a new file in dir and returns its path.
func copyToTemp(r io.Reader, dir string) (string, error) {
	f, err := os.CreateTemp(dir, "in-")
	if err != nil {
		return "", err
	}
	defer f.Close()
	if _, err := io.Copy(f, r); err != nil {
		return "", err
	}
	return f.Name(), f.Close()
}
