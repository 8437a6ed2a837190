package media

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"io"
	"regexp"
)

// Sentinel errors. The HTTP API maps each to a status and a code.
var (
	ErrNotFound     = errors.New("no such media")                            // also: not yours to read
	ErrEmpty        = errors.New("empty upload")                             // no bytes at all
	ErrTooLarge     = errors.New("media over the size limit")                // of its type class
	ErrTypeMismatch = errors.New("declared type does not match the content") // the client's Content-Type lies
	ErrTruncated    = errors.New("upload cut off")                           // the body ended early or the client left
	ErrBadName      = errors.New("file name must be a plain name")           // separators, "..", control characters
	ErrNoHLS        = errors.New("private video needs ffmpeg on the server") // ffmpeg is not on PATH or is turned off
	ErrNotVideo     = errors.New("private applies to video only")
	ErrBadVideo     = errors.New("video could not be segmented")
)

// Info is a media object's metadata, stored beside its bytes (the JSON
// sidecar of the file store). It never changes once committed.
type Info struct {
	ID      string `json:"id"`
	Owner   string `json:"owner"`
	Name    string `json:"name,omitempty"` // the uploader's file name, a plain name
	Size    int64  `json:"size"`
	Type    string `json:"type"`   // sniffed from the bytes, never taken on trust
	SHA256  string `json:"sha256"` // hex of the bytes; also the ETag
	Created int64  `json:"created"`
	// Width and Height of an image as displayed (EXIF orientation applied).
	Width  int `json:"width,omitempty"`
	Height int `json:"height,omitempty"`
	// Thumb is the part "thumb": at most ThumbSize px on the long side.
	Thumb *Rendition `json:"thumb,omitempty"`
	// Preview is the part "preview", a much smaller image made only when the
	// thumbnail is too big to ride inline in a message.
	Preview *Rendition `json:"preview,omitempty"`
	// HLS says the parts "hls/index.m3u8", "hls/key" and "hls/segNNNNN.ts"
	// hold the video cut into AES-128 encrypted HLS segments.
	HLS bool `json:"hls,omitempty"`
}

// Rendition is a derived image stored as a part of its own.
type Rendition struct {
	Type   string `json:"type"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	Width  int    `json:"width"`
	Height int    `json:"height"`
}

// Part names.
const (
	PartData    = "data"
	PartThumb   = "thumb"
	PartPreview = "preview"
	PartHLS     = "hls/" // prefix of the HLS parts
)

// Blobs stores media objects. An object is a few named parts (PartData,
// PartThumb, the HLS files...) and its Info, published together: a reader
// sees all of an object or nothing of it, and an upload that fails leaves
// nothing behind. Objects never change once committed; retention may
// delete them (Deleting).
//
// FS is the embedded implementation (files under the data directory);
// internal/media/gridfs is scale-out's (parts staged locally, uploaded to GridFS on
// Commit, the object document written last as the commit, and a node-local
// read cache that Open serves and seeks from). Both pass
// mediatest/blobstest.
type Blobs interface {
	// Create stages the new object id (a fresh ID: implementations may
	// assume nobody else uses it).
	Create(ctx context.Context, id string) (Staging, error)
	// Stat returns a committed object's Info; ErrNotFound if there is none.
	Stat(ctx context.Context, id string) (Info, error)
	// Open opens a part of a committed object for reading and seeking;
	// ErrNotFound if the object or the part does not exist.
	Open(ctx context.Context, id, part string) (io.ReadSeekCloser, error)
}

// Staging is an object being written. It is used by one goroutine.
type Staging interface {
	// Create starts a part; its bytes are complete (and durable) once Close
	// returns nil. Each part is created once.
	Create(part string) (io.WriteCloser, error)
	// Open reads back a part written here (to make a thumbnail, say).
	Open(part string) (io.ReadSeekCloser, error)
	// Commit publishes every part with info atomically and durably.
	Commit(ctx context.Context, info Info) error
	// Abort discards everything staged. It is safe to call after Commit,
	// where it does nothing, so `defer st.Abort()` is the idiom.
	Abort() error
}

var (
	idRe   = regexp.MustCompile(`^m-[a-z2-7]{26}$`)
	partRe = regexp.MustCompile(`^(hls/)?[a-z0-9]{1,32}(\.[a-z0-9]{1,8})?$`)
	b32    = base32.StdEncoding.WithPadding(base32.NoPadding)
)

// NewID returns a fresh media ID: "m-" and 128 random bits in lower-case
// base32, so an ID cannot be guessed from another.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	s := b32.EncodeToString(b[:])
	out := make([]byte, 0, 2+len(s))
	out = append(out, 'm', '-')
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		out = append(out, c)
	}
	return string(out)
}

// ValidID reports whether id is well formed. Only valid IDs ever reach
// storage, so no ID can name a path outside an object.
func ValidID(id string) bool { return idRe.MatchString(id) }

// validPart reports whether part is a well-formed part name: one plain
// name, optionally under "hls/".
func validPart(part string) bool { return partRe.MatchString(part) && part != "info.json" }
