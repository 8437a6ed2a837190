package gridfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	mongoopts "go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/imqtt/imqtt/internal/media"
	"github.com/imqtt/imqtt/internal/media/mediatest"
	"github.com/imqtt/imqtt/internal/media/mediatest/blobstest"
	"github.com/imqtt/imqtt/internal/mongotest"
	"github.com/imqtt/imqtt/internal/wait"
)

func TestMain(m *testing.M) { mongotest.Main(m) }

// newServer starts a MongoDB-compatible server (tools/devmongo, a process of
// its own) for one test and returns its URI.
func newServer(t testing.TB) string {
	t.Helper()
	return mongotest.New(t).URI() // stopped after the clients' cleanups: last in, first out
}

// newClient connects to the server at uri until the test ends.
func newClient(t testing.TB, uri string) *mongo.Client {
	t.Helper()
	client, err := mongo.Connect(mongoopts.Client().ApplyURI(uri).SetTimeout(20 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	return client
}

// newDB starts a server for the test and returns a database on it.
func newDB(t testing.TB) *mongo.Database {
	t.Helper()
	return newClient(t, newServer(t)).Database("imqtt")
}

// newBlobs is a node: Blobs on db with a cache directory of its own.
func newBlobs(t testing.TB, db *mongo.Database, opts Options) *Blobs {
	t.Helper()
	if opts.CacheDir == "" {
		opts.CacheDir = t.TempDir()
	}
	b, err := New(db, opts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBlobs(t *testing.T) {
	blobstest.Run(t, func(t *testing.T) func(t *testing.T) media.Blobs {
		db := newDB(t)
		return func(t *testing.T) media.Blobs { return newBlobs(t, db, Options{}) }
	})
}

// count returns the number of documents in a collection.
func count(t testing.TB, c *mongo.Collection) int64 {
	t.Helper()
	n, err := c.CountDocuments(context.Background(), bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestCommitFailsHalfWay: a commit whose context ends after its first part
// leaves no object, on any node, and deletes the files it uploaded.
func TestCommitFailsHalfWay(t *testing.T) {
	db := newDB(t)
	a := newBlobs(t, db, Options{})
	o := blobstest.NewObject(10)
	st := blobstest.Stage(t, a, o)
	defer st.Abort()
	ctx, cancel := context.WithCancel(context.Background())
	var uploaded []string
	a.afterPart = func(part string) {
		uploaded = append(uploaded, part)
		cancel()
	}
	err := st.Commit(ctx, o.Info)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("commit: %v, want context.Canceled", err)
	}
	if len(uploaded) != 1 {
		t.Fatalf("parts uploaded before the failure: %v", uploaded)
	}
	blobstest.NotFound(t, a, o.Info.ID)
	blobstest.NotFound(t, newBlobs(t, db, Options{}), o.Info.ID)
	if n, m := count(t, a.files), count(t, a.chunks); n != 0 || m != 0 {
		t.Fatalf("after a failed commit: %d files and %d chunks left", n, m)
	}

	// The staging is still whole: the commit can be tried again.
	a.afterPart = nil
	if err := st.Commit(context.Background(), o.Info); err != nil {
		t.Fatal(err)
	}
	blobstest.Check(t, newBlobs(t, db, Options{}), o)
}

// TestSweep: GridFS files that no object names (what a crash in the middle
// of a commit leaves) are deleted, and only those.
func TestSweep(t *testing.T) {
	db := newDB(t)
	b := newBlobs(t, db, Options{})
	kept := blobstest.NewObject(11)
	blobstest.Put(t, b, kept)
	files, chunks := count(t, b.files), count(t, b.chunks)

	// A crashed commit: two parts uploaded, no object.
	ctx := context.Background()
	lost := blobstest.NewObject(12)
	st := blobstest.Stage(t, b, lost)
	defer st.Abort()
	for _, part := range []string{media.PartData, media.PartThumb} {
		if _, _, err := b.upload(ctx, bson.NewObjectID(), lost.Info.ID, part, st.(*staging).path(part)); err != nil {
			t.Fatal(err)
		}
	}
	if count(t, b.files) != files+2 {
		t.Fatal("orphans not uploaded")
	}
	// Too young to judge.
	if n, err := b.sweep(ctx, time.Now().Add(-time.Hour)); err != nil || n != 0 {
		t.Fatalf("sweep of young files: %d, %v", n, err)
	}
	n, err := b.sweep(ctx, time.Now().Add(time.Minute))
	if err != nil || n != 2 {
		t.Fatalf("sweep: %d, %v; want 2", n, err)
	}
	if f, c := count(t, b.files), count(t, b.chunks); f != files || c != chunks {
		t.Fatalf("after the sweep: %d files, %d chunks; want %d, %d", f, c, files, chunks)
	}
	blobstest.Check(t, newBlobs(t, db, Options{}), kept)

	if _, err := b.Sweep(ctx, time.Minute); err == nil {
		t.Fatal("Sweep of files younger than a commit may take")
	}
}

// TestCache: a cached part is read without MongoDB, also by the next
// process on the same directory; a part is downloaded once.
func TestCache(t *testing.T) {
	uri := newServer(t)
	db := newClient(t, uri).Database("imqtt")
	o := blobstest.NewObject(20)
	blobstest.Put(t, newBlobs(t, db, Options{}), o)

	client := newClient(t, uri) // this node's own connection, to be closed
	dir := t.TempDir()
	b := newBlobs(t, client.Database(db.Name()), Options{CacheDir: dir})
	for part, want := range o.Parts {
		if got := blobstest.ReadPart(t, b, o.Info.ID, part); !bytes.Equal(got, want) {
			t.Fatalf("part %s differs", part)
		}
	}
	if err := client.Disconnect(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Stat(context.Background(), o.Info.ID); err == nil {
		t.Fatal("stat without a connection worked: the test is broken")
	}
	restarted := newBlobs(t, client.Database(db.Name()), Options{CacheDir: dir})
	for _, node := range []*Blobs{b, restarted} {
		for part, want := range o.Parts {
			if got := blobstest.ReadPart(t, node, o.Info.ID, part); !bytes.Equal(got, want) {
				t.Fatalf("cached part %s differs", part)
			}
		}
	}
	if left, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

// TestCacheBound: the cache deletes the least recently opened parts to stay
// within CacheSize, and an evicted part is downloaded again.
func TestCacheBound(t *testing.T) {
	db := newDB(t)
	writer := newBlobs(t, db, Options{})
	const partSize = 10 << 10
	var objs []blobstest.Object
	for i := range 4 {
		o := blobstest.Object{Info: media.Info{ID: media.NewID(), Owner: "alice", Size: partSize, Type: "application/octet-stream", Created: 1},
			Parts: map[string][]byte{media.PartData: bytes.Repeat([]byte{byte(i)}, partSize)}}
		blobstest.Put(t, writer, o)
		objs = append(objs, o)
	}
	dir := t.TempDir()
	b := newBlobs(t, db, Options{CacheDir: dir, CacheSize: 2*partSize + partSize/2}) // room for two
	read := func(i int) {
		t.Helper()
		if got := blobstest.ReadPart(t, b, objs[i].Info.ID, media.PartData); !bytes.Equal(got, objs[i].Parts[media.PartData]) {
			t.Fatalf("object %d differs", i)
		}
	}
	cached := func() []string {
		t.Helper()
		var keys []string
		for i, o := range objs {
			if _, err := os.Stat(b.cache.path(o.Info.ID + "/" + media.PartData)); err == nil {
				keys = append(keys, fmt.Sprint(i))
			}
		}
		return keys
	}
	read(0)
	read(1)
	read(0) // 1 is now the least recently opened
	read(2)
	if got := fmt.Sprint(cached()); got != "[0 2]" {
		t.Fatalf("cached after 0 1 0 2: %s, want [0 2]", got)
	}
	read(1) // downloaded again
	read(3)
	if got := fmt.Sprint(cached()); got != "[1 3]" {
		t.Fatalf("cached after 0 1 0 2 1 3: %s, want [1 3]", got)
	}
	if b.cache.size != 2*partSize {
		t.Fatalf("cache size %d, want %d", b.cache.size, 2*partSize)
	}

	// A new process takes the cache over, newest first, and applies its bound.
	small := newBlobs(t, db, Options{CacheDir: dir, CacheSize: partSize})
	if small.cache.size != partSize || len(small.cache.parts) != 1 {
		t.Fatalf("reopened with room for one: %d bytes in %d parts", small.cache.size, len(small.cache.parts))
	}
}

// TestOpenContext: an Open whose context ends while it downloads returns
// the context's error and leaves nothing in the cache.
func TestOpenContext(t *testing.T) {
	db := newDB(t)
	o := blobstest.NewObject(30)
	blobstest.Put(t, newBlobs(t, db, Options{}), o)
	dir := t.TempDir()
	b := newBlobs(t, db, Options{CacheDir: dir})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.Open(ctx, o.Info.ID, media.PartData); !errors.Is(err, context.Canceled) {
		t.Fatalf("open with a canceled context: %v", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	if _, err := b.Open(ctx, o.Info.ID, media.PartData); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("open past a deadline: %v", err)
	}
	if _, err := b.Stat(ctx, o.Info.ID); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("stat past a deadline: %v", err)
	}
	// The abandoned downloads end and leave no file behind.
	wait.For(t, "the canceled loads and their temporary files to go", 10*time.Second, func() bool {
		b.cache.mu.Lock()
		defer b.cache.mu.Unlock()
		left, _ := os.ReadDir(filepath.Join(dir, "tmp"))
		return len(b.cache.loads) == 0 && len(left) == 0
	})
	if len(b.cache.parts) != 0 {
		t.Fatalf("cached after canceled opens: %d parts", len(b.cache.parts))
	}
	blobstest.Check(t, b, o)
}

// TestCorruptPart: a part whose bytes in MongoDB are not what was committed
// is an error, not cached, not ErrNotFound.
func TestCorruptPart(t *testing.T) {
	db := newDB(t)
	a := newBlobs(t, db, Options{})
	o := blobstest.NewObject(40)
	blobstest.Put(t, a, o)
	ctx := context.Background()
	var doc objectDoc
	if err := a.objects.FindOne(ctx, bson.D{{Key: "_id", Value: o.Info.ID}}).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	var file bson.ObjectID
	for _, p := range doc.Parts {
		if p.Name == media.PartThumb {
			file = p.File
		}
	}
	flipped := bytes.Clone(o.Parts[media.PartThumb])
	flipped[0] ^= 1
	res, err := a.chunks.UpdateOne(ctx, bson.D{{Key: "files_id", Value: file}, {Key: "n", Value: int32(0)}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "data", Value: bson.Binary{Data: flipped}}}}})
	if err != nil || res.ModifiedCount != 1 {
		t.Fatalf("corrupt the chunk: %v, %+v", err, res)
	}
	b := newBlobs(t, db, Options{})
	_, err = b.Open(ctx, o.Info.ID, media.PartThumb)
	if err == nil || errors.Is(err, media.ErrNotFound) {
		t.Fatalf("open of a corrupt part: %v", err)
	}
	if len(b.cache.parts) != 0 {
		t.Fatal("a corrupt part was cached")
	}
	// Nor is it a missing part when its GridFS file is gone.
	if err := b.removeFiles(ctx, []bson.ObjectID{file}); err != nil {
		t.Fatal(err)
	}
	if _, err = b.Open(ctx, o.Info.ID, media.PartThumb); err == nil || errors.Is(err, media.ErrNotFound) {
		t.Fatalf("open of a part whose file is gone: %v", err)
	}
}

// TestInfoFields: the Info is stored under its JSON names, for operators.
func TestInfoFields(t *testing.T) {
	db := newDB(t)
	b := newBlobs(t, db, Options{Bucket: "up"})
	o := blobstest.NewObject(50)
	blobstest.Put(t, b, o)
	ctx := context.Background()
	n, err := db.Collection("up.objects").CountDocuments(ctx, bson.D{{Key: "info.owner", Value: "alice"}, {Key: "info.thumb.width", Value: 320}})
	if err != nil || n != 1 {
		t.Fatalf("objects of alice with a 320 px thumbnail: %d, %v", n, err)
	}
	// Standard GridFS: any client reads a part by its name.
	ds, err := db.GridFSBucket(mongoopts.GridFSBucket().SetName("up")).OpenDownloadStreamByName(ctx, o.Info.ID+"/"+media.PartData)
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(ds); err != nil || !bytes.Equal(buf.Bytes(), o.Parts[media.PartData]) {
		t.Fatalf("read by name through the driver's GridFS: %d bytes, %v", buf.Len(), err)
	}
}

// noGrants: media granted to nobody (owners read their own).
type noGrants struct{}

func (noGrants) MediaGrants(context.Context, string) ([]string, error) { return nil, nil }

// TestService: the media service on GridFS, an image with its thumbnail
// and a private video cut into HLS uploaded through one node, read through
// another.
func TestService(t *testing.T) {
	mediatest.FFmpeg(t)
	db := newDB(t)
	ctx := context.Background()
	opts := media.Options{FFmpeg: "ffmpeg"}
	a := media.New(newBlobs(t, db, Options{}), noGrants{}, nil, opts)
	b := media.New(newBlobs(t, db, Options{}), noGrants{}, nil, opts)

	img, err := a.Put(ctx, media.Upload{Owner: "alice", Length: -1}, bytes.NewReader(mediatest.PNG(t, 640, 480)))
	if err != nil {
		t.Fatal(err)
	}
	if img.Thumb == nil {
		t.Fatal("no thumbnail")
	}
	vid, err := a.Put(ctx, media.Upload{Owner: "alice", Private: true, Length: -1}, bytes.NewReader(mediatest.Video(t, 2, 160, 120)))
	if err != nil {
		t.Fatal(err)
	}
	if !vid.HLS {
		t.Fatal("no HLS")
	}
	for _, c := range []struct {
		id, part string
		sha      string // "" to skip the check
	}{
		{img.ID, media.PartData, img.SHA256},
		{img.ID, media.PartThumb, img.Thumb.SHA256},
		{vid.ID, media.PartHLS + media.HLSPlaylist, ""},
		{vid.ID, media.PartHLS + media.HLSKey, ""},
		{vid.ID, media.PartHLS + "seg00000.ts", ""},
	} {
		_, r, err := b.Open(ctx, "alice", c.id, c.part)
		if err != nil {
			t.Fatalf("open %s/%s on the other node: %v", c.id, c.part, err)
		}
		h := newHash()
		n, err := io.Copy(h, r)
		r.Close()
		if err != nil || n == 0 {
			t.Fatalf("read %s/%s: %d bytes, %v", c.id, c.part, n, err)
		}
		if c.sha != "" && h.hex() != c.sha {
			t.Fatalf("%s/%s: SHA-256 %s, want %s", c.id, c.part, h.hex(), c.sha)
		}
	}
	if _, _, err := b.Open(ctx, "bob", img.ID, media.PartData); !errors.Is(err, media.ErrNotFound) {
		t.Fatalf("bob opens alice's image: %v", err)
	}
}

// TestDeleteFiles: Delete removes the object's GridFS files and chunks, not
// another's; a delete cut off after the objects document (a crash) leaves
// files that Sweep removes.
func TestDeleteFiles(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	b := newBlobs(t, db, Options{})
	kept := blobstest.NewObject(21)
	blobstest.Put(t, b, kept)
	files, chunks := count(t, b.files), count(t, b.chunks)
	gone := blobstest.NewObject(22)
	blobstest.Put(t, b, gone)
	if err := b.Delete(ctx, gone.Info.ID); err != nil {
		t.Fatal(err)
	}
	if f, c := count(t, b.files), count(t, b.chunks); f != files || c != chunks {
		t.Fatalf("after the delete: %d files, %d chunks; want %d, %d", f, c, files, chunks)
	}
	blobstest.Check(t, newBlobs(t, db, Options{}), kept)

	crashed := blobstest.NewObject(23)
	blobstest.Put(t, b, crashed)
	if _, err := b.objects.DeleteOne(ctx, bson.D{{Key: "_id", Value: crashed.Info.ID}}); err != nil {
		t.Fatal(err)
	}
	blobstest.NotFound(t, newBlobs(t, db, Options{}), crashed.Info.ID)
	if n, err := b.sweep(ctx, time.Now().Add(time.Minute)); err != nil || n != len(crashed.Parts) {
		t.Fatalf("sweep after a cut-off delete: %d, %v; want %d", n, err, len(crashed.Parts))
	}
	if f, c := count(t, b.files), count(t, b.chunks); f != files || c != chunks {
		t.Fatalf("after the sweep: %d files, %d chunks; want %d, %d", f, c, files, chunks)
	}
}
