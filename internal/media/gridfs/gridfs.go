// Package gridfs is the scale-out media.Blobs: every part of a media object
// a GridFS file in MongoDB, shared by all the nodes, and the object's Info a
// document written after all its parts, so that an object exists for
// readers only once it is whole.
//
// In MongoDB, with the bucket "media" (Options.Bucket):
//
//	media.files    GridFS files, one per part, named "{id}/{part}", with
//	               metadata {media: id, part: part}
//	media.chunks   their GridFS chunks (255 KiB each)
//	media.objects  {_id: id, info: {...Info...}, parts: [{name, file, size, sha256}]}
//
// Parts are staged as local files (under Options.CacheDir), so that a
// thumbnail or ffmpeg can read the original back while the upload is being
// processed. Commit uploads each part as a GridFS file and then inserts the
// objects document, with write concern majority. That insert is the commit:
// Stat and Open look objects up by it alone, and it names the GridFS file of
// each part, so a GridFS file it does not name is never read.
//
// A commit that fails before that insert deletes what it uploaded. A crash
// (or a MongoDB outage) in the middle of a commit leaves GridFS files that
// no objects document names: Sweep finds and deletes them.
//
// Objects never change, so each node keeps a read-through cache of the
// parts it has served, on local disk, and Open serves a cached part without
// asking MongoDB. See Options.CacheSize. Retention deletes old objects
// (Delete): the objects document first, then the files.
package gridfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"regexp"
	"sync"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"

	"github.com/imqtt/imqtt/internal/media"
)

// Options configure Blobs. The zero value of each field but CacheDir means
// its default.
type Options struct {
	// Bucket is the GridFS bucket: the collections {Bucket}.files,
	// {Bucket}.chunks and {Bucket}.objects. Default "media".
	Bucket string
	// CacheDir is a directory of this node's own (never shared between
	// processes) for staged uploads and the read cache. Required.
	CacheDir string
	// CacheSize bounds the bytes of cached parts on disk (default 1 GiB).
	// When a download takes the cache past it, the least recently opened
	// parts are deleted until it is under again; the part just downloaded
	// is never the one deleted, so the cache may exceed CacheSize by at
	// most one part. Staged uploads are not counted.
	CacheSize int64
	// Logger logs what cannot be returned: failed clean-ups. Default
	// slog.Default().
	Logger *slog.Logger
}

// The defaults of Options, taken by its zero values.
const (
	DefaultBucket    = "media"
	DefaultCacheSize = 1 << 30
)

func (o *Options) fill() {
	if o.Bucket == "" {
		o.Bucket = DefaultBucket
	}
	if o.CacheSize <= 0 {
		o.CacheSize = DefaultCacheSize
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Blobs is media.Blobs on GridFS. It is safe for concurrent use.
type Blobs struct {
	bucket  *mongo.GridFSBucket // reads only: its uploads are not safe for concurrent use
	files   *mongo.Collection
	chunks  *mongo.Collection
	objects *mongo.Collection // write concern majority: the commit

	chunkSize int32
	staging   string // {CacheDir}/staging
	cache     *cache
	log       *slog.Logger

	idxMu   sync.Mutex
	idxDone bool

	// afterPart, if set, is called in Commit after each part is uploaded
	// (tests make a commit fail half-way with it).
	afterPart func(part string)
}

var (
	_ media.Blobs   = (*Blobs)(nil)
	_ media.Staging = (*staging)(nil)
)

// New returns Blobs on db. It does no I/O on MongoDB (the indexes are made
// by the first Commit); it clears staged uploads a previous process left in
// CacheDir and takes over the parts it had cached.
func New(db *mongo.Database, opts Options) (*Blobs, error) {
	opts.fill()
	if db == nil {
		return nil, errors.New("gridfs: no database")
	}
	if opts.CacheDir == "" {
		return nil, errors.New("gridfs: no cache directory")
	}
	dir, err := filepath.Abs(opts.CacheDir)
	if err != nil {
		return nil, fmt.Errorf("gridfs: cache directory: %w", err)
	}
	staging := filepath.Join(dir, "staging")
	if err := resetDir(staging); err != nil {
		return nil, fmt.Errorf("gridfs: clear staged uploads: %w", err)
	}
	c, err := openCache(filepath.Join(dir, "parts"), filepath.Join(dir, "tmp"), opts.CacheSize, opts.Logger)
	if err != nil {
		return nil, fmt.Errorf("gridfs: open cache: %w", err)
	}
	chunkSize := mongo.DefaultGridFSChunkSize
	return &Blobs{
		bucket:    db.GridFSBucket(options.GridFSBucket().SetName(opts.Bucket).SetChunkSizeBytes(chunkSize)),
		files:     db.Collection(opts.Bucket + ".files"),
		chunks:    db.Collection(opts.Bucket + ".chunks"),
		objects:   db.Collection(opts.Bucket+".objects", options.Collection().SetWriteConcern(writeconcern.Majority())),
		chunkSize: chunkSize,
		staging:   staging,
		cache:     c,
		log:       opts.Logger,
	}, nil
}

// objectDoc is a committed object in {bucket}.objects.
type objectDoc struct {
	ID    string    `bson:"_id"`
	Info  bson.Raw  `bson:"info"` // media.Info with its JSON field names
	Parts []partDoc `bson:"parts"`
}

// partDoc names the GridFS file of a part and what it must hold.
type partDoc struct {
	Name   string        `bson:"name"`
	File   bson.ObjectID `bson:"file"`
	Size   int64         `bson:"size"`
	SHA256 string        `bson:"sha256"`
}

// Stat reads the object's document.
func (b *Blobs) Stat(ctx context.Context, id string) (media.Info, error) {
	if !media.ValidID(id) {
		return media.Info{}, media.ErrNotFound
	}
	var doc objectDoc
	err := b.objects.FindOne(ctx, bson.D{{Key: "_id", Value: id}},
		options.FindOne().SetProjection(bson.D{{Key: "info", Value: 1}})).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return media.Info{}, media.ErrNotFound
	}
	if err != nil {
		return media.Info{}, fmt.Errorf("gridfs: stat %s: %w", id, err)
	}
	info, err := decodeInfo(doc.Info)
	if err != nil {
		return media.Info{}, fmt.Errorf("gridfs: stat %s: %w", id, err)
	}
	return info, nil
}

// Open returns the part from this node's cache, downloading it there first
// if it is not cached yet. Concurrent Opens of one uncached part download it
// once; each returns when its ctx is done, and the download stops when no
// caller waits for it any more.
func (b *Blobs) Open(ctx context.Context, id, part string) (io.ReadSeekCloser, error) {
	if !media.ValidID(id) || !validPart(part) {
		return nil, media.ErrNotFound
	}
	key := id + "/" + part
	// A part evicted between its download and our open is downloaded
	// again; three times in a row means a cache far too small.
	for range 3 {
		f, ok, err := b.cache.open(key)
		if err != nil {
			return nil, fmt.Errorf("gridfs: open %s: %w", key, err)
		}
		if ok {
			return f, nil
		}
		err = b.cache.fill(ctx, key, func(ctx context.Context, w io.Writer) error {
			return b.download(ctx, id, part, w)
		})
		if err != nil {
			if errors.Is(err, media.ErrNotFound) {
				return nil, err
			}
			return nil, fmt.Errorf("gridfs: open %s: %w", key, err)
		}
	}
	return nil, fmt.Errorf("gridfs: open %s: evicted from the cache as soon as downloaded (CacheSize too small)", key)
}

// download writes a committed part to w, checking its size and SHA-256.
func (b *Blobs) download(ctx context.Context, id, part string, w io.Writer) error {
	var doc objectDoc
	err := b.objects.FindOne(ctx, bson.D{{Key: "_id", Value: id}},
		options.FindOne().SetProjection(bson.D{{Key: "parts", Value: 1}})).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return media.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("find object: %w", err)
	}
	var p *partDoc
	for i := range doc.Parts {
		if doc.Parts[i].Name == part {
			p = &doc.Parts[i]
		}
	}
	if p == nil {
		return media.ErrNotFound
	}
	ds, err := b.bucket.OpenDownloadStream(ctx, p.File)
	if err != nil {
		// mongo.ErrFileNotFound too: a committed object lost a file, which
		// is damage, not a missing part.
		return fmt.Errorf("open GridFS file %s: %w", p.File.Hex(), err)
	}
	defer ds.Close()
	h := newHash()
	n, err := io.Copy(io.MultiWriter(w, h), ds)
	if err != nil {
		return fmt.Errorf("read GridFS file %s: %w", p.File.Hex(), err)
	}
	if n != p.Size || h.hex() != p.SHA256 {
		return fmt.Errorf("GridFS file %s holds %d bytes with SHA-256 %s, not the %d bytes with %s committed",
			p.File.Hex(), n, h.hex(), p.Size, p.SHA256)
	}
	return nil
}

// ensureIndexes makes the indexes of GridFS (files by name and date; chunks
// by file and number, unique) and one on the upload date for Sweep, once
// per Blobs; a failure is retried by the next call.
func (b *Blobs) ensureIndexes(ctx context.Context) error {
	b.idxMu.Lock()
	defer b.idxMu.Unlock()
	if b.idxDone {
		return nil
	}
	_, err := b.files.Indexes().CreateMany(ctx, []mongo.IndexModel{
		{Keys: bson.D{{Key: "filename", Value: int32(1)}, {Key: "uploadDate", Value: int32(1)}}},
		{Keys: bson.D{{Key: "uploadDate", Value: int32(1)}}},
	})
	if err != nil {
		return fmt.Errorf("create indexes on %s: %w", b.files.Name(), err)
	}
	_, err = b.chunks.Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys:    bson.D{{Key: "files_id", Value: int32(1)}, {Key: "n", Value: int32(1)}},
		Options: options.Index().SetUnique(true),
	})
	if err != nil {
		return fmt.Errorf("create index on %s: %w", b.chunks.Name(), err)
	}
	b.idxDone = true
	return nil
}

// partRe is media's rule for part names: one plain name, optionally under
// "hls/". Only valid names reach the cache, so none names a path outside it.
var partRe = regexp.MustCompile(`^(hls/)?[a-z0-9]{1,32}(\.[a-z0-9]{1,8})?$`)

func validPart(part string) bool { return partRe.MatchString(part) }
