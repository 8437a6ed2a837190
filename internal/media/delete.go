package media

import "context"

// Deleting is a Blobs whose objects can be listed by age and deleted:
// retention (internal/retention, docs/operations.md#retention) deletes the
// objects older than its period that no message grants any more. FS and
// gridfs.Blobs are Deleting; both pass mediatest/blobstest's RunDelete.
type Deleting interface {
	Blobs
	// Older returns the IDs of at most limit committed objects created
	// (Info.Created) before before, in unix ms, whose IDs sort after
	// after, in ID order: a caller pages with the last ID it got.
	Older(ctx context.Context, before int64, after string, limit int) ([]string, error)
	// Delete deletes a committed object, its Info and every part. Like a
	// commit, it is one step for readers: Stat and Open find all of the
	// object or none of it, also if the process dies half-way (what is
	// left is removed later, unseen). Deleting an object that does not
	// exist (any more) is no error, so several nodes may delete at once.
	Delete(ctx context.Context, id string) error
}
