// Package media keeps the files people send: uploads streamed to storage
// (Blobs; FS is the embedded one) with a sniffed type, a size limit per type
// class and a SHA-256; thumbnails made once at upload; read access for the
// uploader and for whoever a message carrying the media went to; small
// media carried inline in messages; and private video as AES-128 encrypted
// HLS when ffmpeg is on the server.
//
// A Service is the chat core's Media policy (chat.Options.Media): before a
// send that refers to media is queued, Attach checks the sender may read it
// and returns the bytes to carry inline.
package media

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	"io"
	"log/slog"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/wire"
)

// The defaults of Options, taken by its zero values (explained at its
// fields); cmd/imqttd's --media-max-* flags default to the same constants.
const (
	DefaultMaxImage    = 20 << 20
	DefaultMaxAudio    = 20 << 20
	DefaultMaxVideo    = 200 << 20
	DefaultMaxFile     = 100 << 20
	DefaultInlineMax   = 8 << 10
	DefaultThumbSide   = 320
	DefaultThumbPixels = 50_000_000
	DefaultHLSTimeout  = 10 * time.Minute
	DefaultWorkers     = 2
)

// Options configure a Service; zero values take the defaults above.
type Options struct {
	// Size limits per type class, in bytes.
	MaxImage int64 // default 20 MiB
	MaxAudio int64 // default 20 MiB
	MaxVideo int64 // default 200 MiB
	MaxFile  int64 // everything else; default 100 MiB
	// InlineMax is the largest thumbnail or audio file carried inline in a
	// message; default 8 KiB.
	InlineMax int
	// ThumbSide is a thumbnail's long side in pixels; default 320.
	ThumbSide int
	// ThumbPixels is the largest image (width × height) that gets a
	// thumbnail, bounding the memory a decode takes; default 50 million.
	ThumbPixels int64
	// FFmpeg is the ffmpeg binary for private video (HLS) and video
	// thumbnails: "" finds "ffmpeg" on PATH, "off" turns both off.
	FFmpeg string
	// HLSTimeout bounds one ffmpeg run; default 10 minutes.
	HLSTimeout time.Duration
	// Workers bounds the thumbnails and ffmpeg runs made at once (each can
	// take hundreds of MB); default 2.
	Workers int
	Logger  *slog.Logger
}

func (o *Options) fill() {
	for _, d := range []struct {
		v   *int64
		def int64
	}{{&o.MaxImage, DefaultMaxImage}, {&o.MaxAudio, DefaultMaxAudio}, {&o.MaxVideo, DefaultMaxVideo}, {&o.MaxFile, DefaultMaxFile},
		{&o.ThumbPixels, DefaultThumbPixels}} {
		if *d.v <= 0 {
			*d.v = d.def
		}
	}
	if o.InlineMax <= 0 {
		o.InlineMax = DefaultInlineMax
	}
	if o.ThumbSide <= 0 {
		o.ThumbSide = DefaultThumbSide
	}
	if o.HLSTimeout <= 0 {
		o.HLSTimeout = DefaultHLSTimeout
	}
	if o.Workers <= 0 {
		o.Workers = DefaultWorkers
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Grants is what access checks need of the store: the principals ("u:bob",
// "g:g1") that messages granted a media object to.
type Grants interface {
	MediaGrants(ctx context.Context, media string) ([]string, error)
}

// MemberFunc reports whether user is a member of group.
type MemberFunc func(ctx context.Context, user, group string) (bool, error)

// GroupMembers is a MemberFunc on the store's group memberships.
func GroupMembers(st interface {
	GetMember(ctx context.Context, group, user string) (store.Member, error)
}) MemberFunc {
	return func(ctx context.Context, user, group string) (bool, error) {
		_, err := st.GetMember(ctx, group, user)
		if errors.Is(err, store.ErrNotFound) {
			return false, nil
		}
		return err == nil, err
	}
}

// Service is the media service. It is safe for concurrent use.
type Service struct {
	blobs  Blobs
	grants Grants
	member MemberFunc
	opts   Options
	ffmpeg string // "" when there is none
	work   chan struct{}
	log    *slog.Logger
}

// New returns a Service on blobs. member may be nil (no groups).
func New(blobs Blobs, grants Grants, member MemberFunc, opts Options) *Service {
	opts.fill()
	if member == nil {
		member = func(context.Context, string, string) (bool, error) { return false, nil }
	}
	s := &Service{blobs: blobs, grants: grants, member: member, opts: opts, log: opts.Logger,
		work: make(chan struct{}, opts.Workers)}
	switch opts.FFmpeg {
	case "off":
	case "":
		s.ffmpeg, _ = exec.LookPath("ffmpeg")
	default:
		s.ffmpeg, _ = exec.LookPath(opts.FFmpeg)
	}
	if s.ffmpeg == "" {
		s.log.Info("media: no ffmpeg; private video (HLS) and video thumbnails are off")
	}
	return s
}

// HLS reports whether private video is available (ffmpeg was found).
func (s *Service) HLS() bool { return s.ffmpeg != "" }

// Limit is the size limit of a class.
func (s *Service) Limit(c Class) int64 {
	switch c {
	case ClassImage:
		return s.opts.MaxImage
	case ClassAudio:
		return s.opts.MaxAudio
	case ClassVideo:
		return s.opts.MaxVideo
	}
	return s.opts.MaxFile
}

// MaxLimit is the largest size limit of any class.
func (s *Service) MaxLimit() int64 {
	return max(s.opts.MaxImage, s.opts.MaxAudio, s.opts.MaxVideo, s.opts.MaxFile)
}

// Upload describes an upload.
type Upload struct {
	Owner    string
	Name     string // the client's file name; "" for none
	Declared string // the Content-Type the client declared; "" for none
	Length   int64  // the declared length; -1 if unknown
	Private  bool   // a video to serve only as encrypted HLS segments
}

// Put streams body into a new media object and returns its Info. The body
// is never held in memory: it goes to storage through the hash as it
// arrives, and the limit of its type class (sniffed from its first 512
// bytes) is enforced as it is read. On any error nothing is left behind.
// A body that fails to read (the client left, or the body was shorter than
// declared) is ErrTruncated.
func (s *Service) Put(ctx context.Context, up Upload, body io.Reader) (Info, error) {
	if err := CheckName(up.Name); err != nil {
		return Info{}, err
	}
	if up.Private && s.ffmpeg == "" {
		return Info{}, ErrNoHLS
	}
	head := make([]byte, sniffLen)
	n, err := readFull(body, head)
	if err != nil {
		return Info{}, fmt.Errorf("%w: %v", ErrTruncated, err)
	}
	if n == 0 {
		return Info{}, ErrEmpty
	}
	head = head[:n]
	typ, err := Resolve(up.Declared, Sniff(head))
	if err != nil {
		return Info{}, fmt.Errorf("%w: declared %q, content is %s", err, up.Declared, Sniff(head))
	}
	class := ClassOf(typ)
	limit := s.Limit(class)
	if up.Length > limit || int64(n) > limit {
		return Info{}, fmt.Errorf("%w: %s over %d bytes", ErrTooLarge, class, limit)
	}
	if up.Private && class != ClassVideo {
		return Info{}, fmt.Errorf("%w (this is %s)", ErrNotVideo, typ)
	}

	info := Info{ID: NewID(), Owner: up.Owner, Name: up.Name, Type: typ, Created: time.Now().UnixMilli()}
	st, err := s.blobs.Create(ctx, info.ID)
	if err != nil {
		return Info{}, err
	}
	defer st.Abort()
	w, err := st.Create(PartData)
	if err != nil {
		return Info{}, err
	}
	h := sha256.New()
	info.Size, err = copyLimited(w, h, head, body, limit)
	if cerr := w.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("media: write %s: %w", info.ID, cerr)
	}
	if err != nil {
		return Info{}, err
	}
	if up.Length >= 0 && info.Size != up.Length {
		return Info{}, fmt.Errorf("%w: %d of %d bytes", ErrTruncated, info.Size, up.Length)
	}
	info.SHA256 = hex.EncodeToString(h.Sum(nil))

	switch class {
	case ClassImage:
		s.imageThumb(ctx, st, &info)
	case ClassVideo:
		if s.ffmpeg != "" {
			s.videoThumb(ctx, st, &info)
		}
	}
	if up.Private {
		if err := s.segment(ctx, st, &info); err != nil {
			return Info{}, err
		}
	}
	if err := ctx.Err(); err != nil {
		// The client left while its upload was processed: nobody would
		// learn the ID, so nothing is kept.
		return Info{}, fmt.Errorf("%w: %v", ErrTruncated, err)
	}
	if err := st.Commit(ctx, info); err != nil {
		return Info{}, err
	}
	s.log.Debug("media stored", "user", up.Owner, "media", info.ID, "type", info.Type, "size", info.Size)
	return info, nil
}

// readFull reads until buf is full or the body ends; only a read error
// other than the end of the body is an error.
func readFull(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// copyLimited writes head and then the rest of body to w and h, failing
// with ErrTooLarge past limit bytes and ErrTruncated if body fails to read.
func copyLimited(w, h io.Writer, head []byte, body io.Reader, limit int64) (int64, error) {
	buf := make([]byte, 256<<10)
	n := int64(copy(buf, head))
	total := int64(0)
	for {
		if n > 0 {
			total += n
			if total > limit {
				return total, fmt.Errorf("%w: over %d bytes", ErrTooLarge, limit)
			}
			h.Write(buf[:n])
			if _, err := w.Write(buf[:n]); err != nil {
				return total, fmt.Errorf("media: write: %w", err)
			}
		}
		m, err := body.Read(buf)
		n = int64(m)
		if errors.Is(err, io.EOF) {
			if n == 0 {
				return total, nil
			}
			continue // write the last bytes, then see EOF again
		}
		if err != nil {
			return total, fmt.Errorf("%w: %v", ErrTruncated, err)
		}
	}
}

// CheckName accepts "" and plain file names: no path separators, no ".."
// or ".", no control characters, valid UTF-8, at most 255 bytes.
func CheckName(name string) error {
	if name == "" {
		return nil
	}
	if name == "." || name == ".." || len(name) > 255 || !utf8.ValidString(name) ||
		strings.ContainsAny(name, `/\`) || strings.ContainsFunc(name, unicode.IsControl) {
		return fmt.Errorf("%w: %q", ErrBadName, name)
	}
	return nil
}

// imageThumb makes the thumbnail (and, if that is too big to carry inline,
// the preview) of an image being staged. An image that does not decode is
// kept without them.
func (s *Service) imageThumb(ctx context.Context, st Staging, info *Info) {
	if !s.acquire(ctx) {
		return
	}
	defer s.release()
	r, err := st.Open(PartData)
	if err != nil {
		s.log.Warn("media: thumbnail", "media", info.ID, "err", err)
		return
	}
	img, w, h, err := thumbnail(r, s.opts.ThumbSide, s.opts.ThumbPixels)
	r.Close()
	if err != nil {
		s.log.Info("media: no thumbnail", "media", info.ID, "type", info.Type, "err", err)
		return
	}
	info.Width, info.Height = w, h
	s.renditions(st, info, img)
}

// renditions stores img as the thumbnail, and a preview small enough to ride
// inline when the thumbnail is not.
func (s *Service) renditions(st Staging, info *Info, img *image.RGBA) {
	var err error
	if info.Thumb, err = s.putImage(st, PartThumb, img, thumbQuality); err != nil {
		s.log.Warn("media: thumbnail", "media", info.ID, "err", err)
		info.Thumb = nil
		return
	}
	if info.Thumb.Size <= int64(s.opts.InlineMax) {
		return
	}
	if info.Preview, err = s.putImage(st, PartPreview, scale(img, previewSide), previewQuality); err != nil || info.Preview.Size > int64(s.opts.InlineMax) {
		s.log.Warn("media: preview", "media", info.ID, "err", err)
		info.Preview = nil
	}
}

func (s *Service) putImage(st Staging, part string, img *image.RGBA, quality int) (*Rendition, error) {
	raw, err := encodeJPEG(img, quality)
	if err != nil {
		return nil, err
	}
	w, err := st.Create(part)
	if err != nil {
		return nil, err
	}
	_, err = w.Write(raw)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(raw)
	return &Rendition{Type: thumbType, Size: int64(len(raw)), SHA256: hex.EncodeToString(sum[:]),
		Width: img.Bounds().Dx(), Height: img.Bounds().Dy()}, nil
}

func (s *Service) acquire(ctx context.Context) bool {
	select {
	case s.work <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

func (s *Service) release() { <-s.work }

// Allowed reports whether user may read media id: its owner, a user a
// message granted it to ("u:{user}"), or a member of a group a message
// granted it to ("g:{group}"); no one once a message that carried it was
// recalled (store.RevokedGrant). An unknown ID is not allowed (no error).
func (s *Service) Allowed(ctx context.Context, user, id string) (bool, error) {
	info, err := s.blobs.Stat(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return s.allowed(ctx, user, info)
}

func (s *Service) allowed(ctx context.Context, user string, info Info) (bool, error) {
	principals, err := s.grants.MediaGrants(ctx, info.ID)
	if err != nil {
		return false, fmt.Errorf("media: grants of %s: %w", info.ID, err)
	}
	if slices.Contains(principals, store.RevokedGrant) {
		return false, nil // a recalled message's: served to no one, its owner neither
	}
	if info.Owner == user {
		return true, nil
	}
	var groups []string
	for _, p := range principals {
		kind, name, _ := strings.Cut(p, ":")
		switch {
		case kind == "u" && name == user:
			return true, nil
		case kind == "g":
			groups = append(groups, name)
		}
	}
	for _, g := range groups {
		ok, err := s.member(ctx, user, g)
		if err != nil {
			return false, fmt.Errorf("media: membership of %s in %s: %w", user, g, err)
		}
		if ok {
			return true, nil
		}
	}
	return false, nil
}

// Stat returns the Info of media user may read; ErrNotFound if there is no
// such media or user may not read it (the two look the same).
func (s *Service) Stat(ctx context.Context, user, id string) (Info, error) {
	info, err := s.blobs.Stat(ctx, id)
	if err != nil {
		return Info{}, err
	}
	ok, err := s.allowed(ctx, user, info)
	if err != nil {
		return Info{}, err
	}
	if !ok {
		return Info{}, ErrNotFound
	}
	return info, nil
}

// Open is Stat and then opens one part of the media.
func (s *Service) Open(ctx context.Context, user, id, part string) (Info, io.ReadSeekCloser, error) {
	info, err := s.Stat(ctx, user, id)
	if err != nil {
		return Info{}, nil, err
	}
	r, err := s.blobs.Open(ctx, id, part)
	if err != nil {
		return Info{}, nil, err
	}
	return info, r, nil
}

// Attach implements chat.Media: user may refer to media in a message only
// if they may read it (else a *wire.Error not_found, the same whether the
// media is someone else's or does not exist). It returns the bytes to carry
// inline: the thumbnail if it is small enough, else the preview; or an
// audio file (a short voice note) small enough.
func (s *Service) Attach(ctx context.Context, user, id string) (*store.Inline, error) {
	info, err := s.Stat(ctx, user, id)
	if errors.Is(err, ErrNotFound) {
		return nil, wire.NewError(wire.CodeNotFound, "no such media: "+id)
	}
	if err != nil {
		return nil, err
	}
	max := int64(s.opts.InlineMax)
	var part, typ string
	switch {
	case info.Thumb != nil && info.Thumb.Size <= max:
		part, typ = PartThumb, info.Thumb.Type
	case info.Preview != nil && info.Preview.Size <= max:
		part, typ = PartPreview, info.Preview.Type
	case ClassOf(info.Type) == ClassAudio && info.Size <= max:
		part, typ = PartData, info.Type
	default:
		return nil, nil
	}
	r, err := s.blobs.Open(ctx, id, part)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, fmt.Errorf("media: read %s/%s: %w", id, part, err)
	}
	if int64(len(data)) > max {
		return nil, nil
	}
	return &store.Inline{Type: typ, Data: data}, nil
}

// localPath returns a path ffmpeg can read r at: the file itself when the
// staging area is local files, else a copy in dir.
func localPath(r io.Reader, dir string) (string, error) {
	if f, ok := r.(interface{ Name() string }); ok && filepath.IsAbs(f.Name()) {
		return f.Name(), nil
	}
	return copyToTemp(r, dir)
}
