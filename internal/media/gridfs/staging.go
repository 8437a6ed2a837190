package gridfs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/imqtt/imqtt/internal/media"
)

// commitLimit bounds a Commit, so that a GridFS file older than it that no
// object names is an orphan for sure (Sweep).
const commitLimit = time.Hour

// chunksPerInsert is how many GridFS chunks one insert carries (about 4 MiB).
const chunksPerInsert = 16

// Create stages id in a new local directory under CacheDir.
func (b *Blobs) Create(ctx context.Context, id string) (media.Staging, error) {
	if !media.ValidID(id) {
		return nil, fmt.Errorf("gridfs: stage %q: %w", id, media.ErrNotFound)
	}
	dir, err := os.MkdirTemp(b.staging, id+".")
	if err != nil {
		return nil, fmt.Errorf("gridfs: stage %s: %w", id, err)
	}
	return &staging{b: b, id: id, dir: dir}, nil
}

// staging holds the parts of an object in a local directory until Commit.
type staging struct {
	b     *Blobs
	id    string
	dir   string
	parts []string // in the order created
	done  bool     // committed or aborted
}

func (s *staging) path(part string) string { return filepath.Join(s.dir, filepath.FromSlash(part)) }

// Create makes the local file of a part. It is not fsynced: a crash loses
// the staging directory anyway, and Commit is what makes parts durable.
func (s *staging) Create(part string) (io.WriteCloser, error) {
	if s.done {
		return nil, fmt.Errorf("gridfs: stage %s/%s: after commit or abort", s.id, part)
	}
	if !validPart(part) {
		return nil, fmt.Errorf("gridfs: bad part name %q", part)
	}
	path := s.path(part)
	if strings.Contains(part, "/") {
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			return nil, fmt.Errorf("gridfs: stage %s/%s: %w", s.id, part, err)
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return nil, fmt.Errorf("gridfs: stage %s/%s: %w", s.id, part, err)
	}
	s.parts = append(s.parts, part)
	return f, nil
}

// Open opens a staged part: a local file, so its Name is a path ffmpeg can read.
func (s *staging) Open(part string) (io.ReadSeekCloser, error) {
	if !validPart(part) {
		return nil, fmt.Errorf("gridfs: bad part name %q", part)
	}
	f, err := os.Open(s.path(part))
	if err != nil {
		return nil, fmt.Errorf("gridfs: read staged %s/%s: %w", s.id, part, err)
	}
	return f, nil
}

// Commit uploads every part as a GridFS file, then inserts the objects
// document that makes the object exist. If it fails before that insert it
// deletes the files it uploaded (a failure to delete is logged and left to
// Sweep); if the insert itself fails, the object may or may not exist, and
// the files stay for Sweep to judge.
func (s *staging) Commit(ctx context.Context, info media.Info) error {
	if s.done {
		return fmt.Errorf("gridfs: commit %s: after commit or abort", s.id)
	}
	if info.ID != s.id {
		return fmt.Errorf("gridfs: commit %s: info is of %q", s.id, info.ID)
	}
	ctx, cancel := context.WithTimeout(ctx, commitLimit)
	defer cancel()
	rawInfo, err := encodeInfo(info)
	if err != nil {
		return fmt.Errorf("gridfs: commit %s: %w", s.id, err)
	}
	if err := s.b.ensureIndexes(ctx); err != nil {
		return fmt.Errorf("gridfs: commit %s: %w", s.id, err)
	}
	doc := objectDoc{ID: s.id, Info: rawInfo, Parts: make([]partDoc, 0, len(s.parts))}
	var uploaded []bson.ObjectID
	for _, part := range s.parts {
		p := partDoc{Name: part, File: bson.NewObjectID()}
		uploaded = append(uploaded, p.File) // before the upload: a half-written file is deleted too
		if p.Size, p.SHA256, err = s.b.upload(ctx, p.File, s.id, part, s.path(part)); err != nil {
			s.b.deleteFiles(ctx, s.id, uploaded)
			return fmt.Errorf("gridfs: commit %s: upload %s: %w", s.id, part, err)
		}
		doc.Parts = append(doc.Parts, p)
		if s.b.afterPart != nil {
			s.b.afterPart(part)
		}
	}
	if err := ctx.Err(); err != nil {
		s.b.deleteFiles(ctx, s.id, uploaded)
		return fmt.Errorf("gridfs: commit %s: %w", s.id, err)
	}
	if _, err := s.b.objects.InsertOne(ctx, doc); err != nil {
		return fmt.Errorf("gridfs: commit %s: insert the object: %w", s.id, err)
	}
	s.done = true
	if err := os.RemoveAll(s.dir); err != nil {
		s.b.log.Warn("gridfs: remove a committed staging directory", "media", s.id, "err", err)
	}
	return nil
}

// Abort removes the staging directory. It never touches MongoDB: a failed
// Commit has cleaned up after itself or left its files to Sweep.
func (s *staging) Abort() error {
	if s.done {
		return nil
	}
	s.done = true
	if err := os.RemoveAll(s.dir); err != nil {
		return fmt.Errorf("gridfs: abort %s: %w", s.id, err)
	}
	return nil
}

// upload writes the local file at path as the GridFS file fileID, named
// "{id}/{part}", and returns its size and SHA-256. The files document goes
// first (its length is known from the staged file), so that a crash
// half-way leaves a files document for Sweep to find rather than chunks
// nothing points to; nothing reads a file no objects document names.
func (b *Blobs) upload(ctx context.Context, fileID bson.ObjectID, id, part, path string) (int64, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, "", err
	}
	size := st.Size()
	_, err = b.files.InsertOne(ctx, bson.D{
		{Key: "_id", Value: fileID},
		{Key: "length", Value: size},
		{Key: "chunkSize", Value: b.chunkSize},
		{Key: "uploadDate", Value: bson.NewDateTimeFromTime(time.Now())},
		{Key: "filename", Value: id + "/" + part},
		{Key: "metadata", Value: bson.D{{Key: "media", Value: id}, {Key: "part", Value: part}}},
	})
	if err != nil {
		return 0, "", fmt.Errorf("insert the files document: %w", err)
	}
	h := newHash()
	// Whole chunks but the last: a part that fits is read in one go.
	buf := make([]byte, min(int64(b.chunkSize)*chunksPerInsert, max(size, 1)))
	var n int32 // chunk number
	var total int64
	for {
		m, rerr := io.ReadFull(f, buf)
		if m > 0 {
			h.Write(buf[:m])
			total += int64(m)
			docs := make([]any, 0, chunksPerInsert)
			for off := 0; off < m; off += int(b.chunkSize) {
				end := min(off+int(b.chunkSize), m)
				docs = append(docs, bson.D{
					{Key: "_id", Value: bson.NewObjectID()},
					{Key: "files_id", Value: fileID},
					{Key: "n", Value: n},
					{Key: "data", Value: bson.Binary{Data: buf[off:end]}},
				})
				n++
			}
			if _, err := b.chunks.InsertMany(ctx, docs); err != nil {
				return 0, "", fmt.Errorf("insert chunks: %w", err)
			}
		}
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			break
		}
		if rerr != nil {
			return 0, "", rerr
		}
	}
	if total != size {
		return 0, "", fmt.Errorf("staged file changed size from %d to %d bytes", size, total)
	}
	return size, h.hex(), nil
}

// deleteFiles deletes the GridFS files of a failed commit, chunks first so
// that a failure half-way leaves the files document for Sweep. It runs even
// when ctx is done (the usual reason a commit fails), for at most 30s.
func (b *Blobs) deleteFiles(ctx context.Context, id string, files []bson.ObjectID) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := b.removeFiles(ctx, files); err != nil {
		b.log.Warn("gridfs: delete the files of a failed commit; Sweep will", "media", id, "err", err)
	}
}

// removeFiles deletes GridFS files, chunks first.
func (b *Blobs) removeFiles(ctx context.Context, files []bson.ObjectID) error {
	if len(files) == 0 {
		return nil
	}
	in := bson.D{{Key: "$in", Value: files}}
	if _, err := b.chunks.DeleteMany(ctx, bson.D{{Key: "files_id", Value: in}}); err != nil {
		return fmt.Errorf("delete chunks: %w", err)
	}
	if _, err := b.files.DeleteMany(ctx, bson.D{{Key: "_id", Value: in}}); err != nil {
		return fmt.Errorf("delete files: %w", err)
	}
	return nil
}

// encodeInfo stores Info under its JSON field names (those of the file
// store's sidecar), so that every field Info gains is kept without a change
// here, and operators query "info.owner" as they read it in the API.
func encodeInfo(info media.Info) (bson.Raw, error) {
	var buf bytes.Buffer
	enc := bson.NewEncoder(bson.NewDocumentWriter(&buf))
	enc.UseJSONStructTags()
	if err := enc.Encode(info); err != nil {
		return nil, fmt.Errorf("encode info: %w", err)
	}
	return buf.Bytes(), nil
}

func decodeInfo(raw bson.Raw) (media.Info, error) {
	var info media.Info
	dec := bson.NewDecoder(bson.NewDocumentReader(bytes.NewReader(raw)))
	dec.UseJSONStructTags()
	if err := dec.Decode(&info); err != nil {
		return media.Info{}, fmt.Errorf("decode info: %w", err)
	}
	return info, nil
}

// sum is a SHA-256 being computed.
type sum struct{ hash.Hash }

func newHash() sum        { return sum{sha256.New()} }
func (s sum) hex() string { return hex.EncodeToString(s.Sum(nil)) }
