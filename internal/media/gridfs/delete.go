package gridfs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/imqtt/imqtt/internal/media"
)

var _ media.Deleting = (*Blobs)(nil)

// Older finds the objects documents created before before (unix ms),
// paging on _id.
func (b *Blobs) Older(ctx context.Context, before int64, after string, limit int) ([]string, error) {
	filter := bson.D{{Key: "_id", Value: bson.D{{Key: "$gt", Value: after}}},
		{Key: "info.created", Value: bson.D{{Key: "$lt", Value: before}}}}
	opts := options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}).
		SetSort(bson.D{{Key: "_id", Value: 1}}).SetLimit(int64(limit))
	cur, err := b.objects.Find(ctx, filter, opts)
	if err != nil {
		return nil, fmt.Errorf("gridfs: older: %w", err)
	}
	var docs []struct {
		ID string `bson:"_id"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("gridfs: older: %w", err)
	}
	ids := make([]string, 0, len(docs))
	for _, d := range docs {
		ids = append(ids, d.ID)
	}
	return ids, nil
}

// Delete deletes the objects document first: that is the delete, as its
// insert was the commit, so readers on every node find nothing from then
// on. Then the GridFS files it named go, and this node's cached parts. A
// crash (or a MongoDB error) before the files are gone leaves files that
// no document names, which Sweep deletes.
//
// Another node may have parts of the object cached: its Blobs.Open serves
// them until evicted, but Stat (which media.Service asks before every
// Open) reads the document, so no user is served a deleted object.
func (b *Blobs) Delete(ctx context.Context, id string) error {
	if !media.ValidID(id) {
		return media.ErrNotFound
	}
	var doc objectDoc
	err := b.objects.FindOne(ctx, bson.D{{Key: "_id", Value: id}},
		options.FindOne().SetProjection(bson.D{{Key: "parts.file", Value: 1}})).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return b.cache.drop(id)
	}
	if err != nil {
		return fmt.Errorf("gridfs: delete %s: %w", id, err)
	}
	if _, err := b.objects.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}}); err != nil {
		return fmt.Errorf("gridfs: delete %s: %w", id, err)
	}
	files := make([]bson.ObjectID, 0, len(doc.Parts))
	for _, p := range doc.Parts {
		files = append(files, p.File)
	}
	if err := b.removeFiles(ctx, files); err != nil {
		return fmt.Errorf("gridfs: delete %s (Sweep deletes its files later): %w", id, err)
	}
	return b.cache.drop(id)
}

// drop deletes the cached parts of object id. A part being read stays
// readable to its reader until closed (POSIX unlink).
func (c *cache) drop(id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for key, el := range c.parts {
		if strings.HasPrefix(key, id+"/") {
			c.remove(el)
		}
	}
	if err := os.RemoveAll(filepath.Join(c.dir, id[2:4], id)); err != nil {
		return fmt.Errorf("gridfs: delete cached %s: %w", id, err)
	}
	return nil
}
