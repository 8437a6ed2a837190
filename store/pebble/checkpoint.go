package pebble

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Checkpoint writes a consistent point-in-time copy of the store into dir,
// which must not exist; its parent must (on the same file system as the
// store, sstables are hard links and cost no space until compactions
// replace them). The log is flushed first, so every commit acknowledged
// before the call, and every version reservation made before it, is in
// the copy. The copy opens with Open like any store; Restamp it before
// serving it in place of the one it was taken from. The copy holds every
// key, persistent sessions (s/) included: deliberately, since a device
// whose session a restore dropped would silently miss what it replays.
func (s *Store) Checkpoint(ctx context.Context, dir string) error {
	if err := s.begin(ctx, "checkpoint"); err != nil {
		return err
	}
	defer s.end()
	var opts []pebble.CheckpointOption
	if !s.ro { // a read-only database has no log to flush
		opts = append(opts, pebble.WithFlushedWAL())
	}
	if err := s.db.Checkpoint(dir, opts...); err != nil {
		return fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	if s.opts.WALDir != "" {
		return detachWALDir(s.opts.fs, dir)
	}
	return nil
}

// restampGap is how far Restamp moves every version and group seq
// reservation mark: more versions of one key (a user's inbox, a group's
// log) than the store the backup was taken from can have handed out after
// it, four billion. Versions stay far below 2^53, which JSON clients read
// exactly, after two million restores.
const restampGap = 1 << 32

// Restamp prepares a stopped store restored from a copy (Checkpoint) to
// serve: it gives the store a new epoch, so that a device whose cursor
// came from the original store is told to reset (docs/protocol.md "Sync"),
// and moves every version reservation mark (each user's inbox versions and
// each group's seqs, the r/ keys) restampGap ahead, so that no version
// handed out after the restore is one the original store handed out after
// the copy was taken. It returns the new epoch. Persistent sessions are
// left as they are, with the old epoch in their Epoch: their positions
// are of the original's history, which the session layer treats as it
// treats a cursor of another epoch. The store must not be
// open elsewhere; its format is checked as Open checks it.
func Restamp(dir string) (epoch string, err error) {
	s, err := Open(dir, Options{MinFreeDisk: -1})
	if err != nil {
		return "", err
	}
	defer func() {
		if cerr := s.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("restamp %s: %w", dir, cerr)
		}
	}()
	if err := skipReservations(s.db, restampGap); err != nil {
		return "", fmt.Errorf("restamp %s: %w", dir, err)
	}
	epoch = rand.Text()
	if err := s.set([]byte(keyEpoch), []byte(epoch), pebble.Sync); err != nil {
		return "", fmt.Errorf("restamp %s: write epoch: %w", dir, err)
	}
	s.epoch = epoch
	return epoch, nil
}

// Summary describes a stopped store (a checkpoint) for a backup's
// manifest, from what is cheap to count: one key per user and per group.
type Summary struct {
	Format int    `json:"store_format"`
	Epoch  string `json:"epoch"`
	Users  int64  `json:"users"`
	Groups int64  `json:"groups"`
	// MaxVersion is the highest version reservation mark of any user's
	// inbox or group's log: no version handed out is above it.
	MaxVersion uint64 `json:"max_version"`
}

// Summarize opens the stopped store in dir read-only (OpenReadOnly: a
// store of another format is refused) and summarizes it.
func Summarize(dir string) (sum Summary, err error) {
	s, err := OpenReadOnly(dir, Options{})
	if err != nil {
		return Summary{}, err
	}
	defer func() { err = errors.Join(err, s.Close()) }()
	sum.Format, sum.Epoch = Format, s.epoch
	for _, p := range []struct {
		prefix string
		each   func(val []byte)
	}{
		{pfxUser, func([]byte) { sum.Users++ }},
		{pfxGroup, func([]byte) { sum.Groups++ }},
		{pfxReserve, func(val []byte) {
			if len(val) == 8 && binary.BigEndian.Uint64(val) > 0 {
				sum.MaxVersion = max(sum.MaxVersion, binary.BigEndian.Uint64(val)-1)
			}
		}},
	} {
		prefix := []byte(p.prefix)
		it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
		if err != nil {
			return Summary{}, fmt.Errorf("summarize %s: %w", dir, err)
		}
		for ok := it.First(); ok; ok = it.Next() {
			p.each(it.Value())
		}
		if err := errors.Join(it.Error(), it.Close()); err != nil {
			return Summary{}, fmt.Errorf("summarize %s: %w", dir, err)
		}
	}
	return sum, nil
}
