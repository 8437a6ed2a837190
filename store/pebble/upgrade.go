package pebble

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/imqtt/imqtt/store"
)

// A step migrates a store of format N to N+1. It reads what it needs from
// db and puts its writes in b, which Open commits with the stamp N+1 in one
// synced batch: a step is applied whole, with its stamp, or not at all, so
// a crash mid-way resumes at the first step whose stamp is missing. A step
// too large for one batch may write to db itself, in batches of its own,
// if running it again over its own partial output is harmless.
type step func(db *pebble.DB, b *pebble.Batch) error

// steps[N-1] migrates format N to N+1, so len(steps) is Format-1. Tests
// replace steps, and format, the
// Format this build writes (export_test.go), to run a migration production
// does not have yet.
var (
	steps  = []step{binaryRows}
	format = Format
	// readsFrom is the oldest format this build reads as it is, without
	// its steps (which rewrite nothing from there on): OpenReadOnly, which
	// cannot upgrade, opens formats readsFrom to format.
	readsFrom = 1
)

// binaryRows is the step from format 1 to 2: ack and conversation values
// are written in binary from now on (rows.go), and format 1's JSON rows
// are read as they are, so nothing is rewritten. The stamp keeps a format-1
// build, which reads only JSON, away from the binary rows.
func binaryRows(*pebble.DB, *pebble.Batch) error { return nil }

const (
	// backupsDir, next to the store's directory, holds the backups Open
	// takes before an upgrade.
	backupsDir   = "pebble-backups"
	backupLayout = "20060102T150405Z"
)

// upgrade runs the steps from format from to today's, after a checkpoint
// of the store as it was (backup); each step is committed with its stamp.
func (s *Store) upgrade(from int) error {
	all := steps
	if len(all) < format-1 {
		return fmt.Errorf("%w: no way from store format %d to %d (a step is missing from this build)", store.ErrFormat, from, format)
	}
	backup, err := s.backup(from)
	if err != nil {
		return fmt.Errorf("back up store format %d before upgrading it: %w", from, err)
	}
	s.opts.Logger.Warn("upgrading the store format; a backup of the store as it was is kept",
		"component", "store", "dir", s.dir, "from", from, "to", format, "backup", backup)
	for n := from; n < format; n++ {
		start := time.Now()
		if err := s.health.writable(true); err != nil {
			return fmt.Errorf("upgrade store format %d to %d: %w", n, n+1, err)
		}
		b := s.db.NewBatch()
		err := all[n-1](s.db, b)
		if err == nil {
			err = b.Set([]byte(keyFormat), []byte(strconv.Itoa(n+1)), nil)
		}
		if err == nil {
			err = s.commit(b)
		}
		_ = b.Close()
		if err != nil {
			return fmt.Errorf("upgrade store format %d to %d (the store stays at %d; the backup %s holds it as it was at %d): %w",
				n, n+1, n, backup, from, err)
		}
		s.opts.Logger.Info("store format upgraded", "component", "store", "dir", s.dir, "format", n+1,
			"took", time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// backup takes a checkpoint of the store into a new directory of
// DATA/pebble-backups (next to the store's directory, on the same file
// system, so its tables are hard links and cost no room) and returns its
// path. It is refused, and removed, if the free space ends under the
// store's MinFreeDisk (the links could not be made and the tables were
// copied, or the disk is nearly full).
func (s *Store) backup(from int) (string, error) {
	fs := s.opts.fs
	root := filepath.Join(filepath.Dir(filepath.Clean(s.dir)), backupsDir)
	name := fmt.Sprintf("format-%d-%s", from, time.Now().UTC().Format(backupLayout))
	dir := filepath.Join(root, name)
	for i := 2; ; i++ { // two upgrades in one second: another name
		if _, err := fs.Stat(dir); err != nil {
			break
		}
		dir = filepath.Join(root, fmt.Sprintf("%s-%d", name, i))
	}
	if free := s.health.look(); under(free, s.opts.MinFreeDisk) {
		return "", fmt.Errorf("%w: %d MiB free, under the %d MiB to keep free", store.ErrNoSpace, free>>20, s.opts.MinFreeDisk>>20)
	}
	if err := s.db.Checkpoint(dir, pebble.WithFlushedWAL()); err != nil {
		_ = fs.RemoveAll(dir)
		return "", fmt.Errorf("checkpoint into %s: %w", dir, err)
	}
	if s.opts.WALDir != "" {
		if err := detachWALDir(fs, dir); err != nil {
			_ = fs.RemoveAll(dir)
			return "", err
		}
	}
	if free := s.health.look(); under(free, s.opts.MinFreeDisk) {
		if err := fs.RemoveAll(dir); err != nil {
			return "", errors.Join(fmt.Errorf("%w: %d MiB free after the checkpoint into %s, under the %d MiB to keep free",
				store.ErrNoSpace, free>>20, dir, s.opts.MinFreeDisk>>20), fmt.Errorf("remove it: %w", err))
		}
		return "", fmt.Errorf("%w: %d MiB free after the checkpoint (removed), under the %d MiB to keep free: "+
			"free some space, or put %s on the store's file system", store.ErrNoSpace, free>>20, s.opts.MinFreeDisk>>20, root)
	}
	return dir, nil
}
