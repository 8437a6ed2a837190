package gridfs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Sweep deletes the GridFS files uploaded more than olderThan ago that no
// object names: those of commits that crashed, lost MongoDB half-way, or
// failed to clean up after themselves. It returns how many it deleted.
//
// olderThan must be over twice the longest a commit may take (one hour),
// so that no commit in progress loses a file; a day is a good value, run
// every hour or so. Any number of nodes may sweep at once. Sweep reads the
// whole files collection past the cut-off (one small document per part)
// and each object its files belong to.
func (b *Blobs) Sweep(ctx context.Context, olderThan time.Duration) (int, error) {
	if olderThan < 2*commitLimit {
		return 0, fmt.Errorf("gridfs: sweep: %v is not over twice the longest commit (%v)", olderThan, commitLimit)
	}
	return b.sweep(ctx, time.Now().Add(-olderThan))
}

func (b *Blobs) sweep(ctx context.Context, before time.Time) (int, error) {
	cur, err := b.files.Find(ctx, bson.D{{Key: "uploadDate", Value: bson.D{{Key: "$lt", Value: bson.NewDateTimeFromTime(before)}}}},
		options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}, {Key: "metadata.media", Value: 1}}))
	if err != nil {
		return 0, fmt.Errorf("gridfs: sweep: find files: %w", err)
	}
	defer cur.Close(ctx)
	named := map[string]map[bson.ObjectID]bool{} // media ID -> the files its object names
	var orphans []bson.ObjectID
	for cur.Next(ctx) {
		var f struct {
			ID       bson.ObjectID `bson:"_id"`
			Metadata struct {
				Media string `bson:"media"`
			} `bson:"metadata"`
		}
		if err := cur.Decode(&f); err != nil || f.Metadata.Media == "" {
			continue // not a file of ours
		}
		files, ok := named[f.Metadata.Media]
		if !ok {
			if files, err = b.filesOf(ctx, f.Metadata.Media); err != nil {
				return 0, fmt.Errorf("gridfs: sweep: %w", err)
			}
			named[f.Metadata.Media] = files
		}
		if !files[f.ID] {
			orphans = append(orphans, f.ID)
		}
	}
	if err := cur.Err(); err != nil {
		return 0, fmt.Errorf("gridfs: sweep: find files: %w", err)
	}
	if err := b.removeFiles(ctx, orphans); err != nil {
		return 0, fmt.Errorf("gridfs: sweep: %w", err)
	}
	if len(orphans) > 0 {
		b.log.Info("gridfs: swept orphan files", "files", len(orphans))
	}
	return len(orphans), nil
}

// filesOf returns the GridFS files the object id names; none if there is
// no such object.
func (b *Blobs) filesOf(ctx context.Context, id string) (map[bson.ObjectID]bool, error) {
	var doc objectDoc
	err := b.objects.FindOne(ctx, bson.D{{Key: "_id", Value: id}},
		options.FindOne().SetProjection(bson.D{{Key: "parts.file", Value: 1}})).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("find object %s: %w", id, err)
	}
	files := make(map[bson.ObjectID]bool, len(doc.Parts))
	for _, p := range doc.Parts {
		files[p.File] = true
	}
	return files, nil
}
