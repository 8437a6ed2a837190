package pebble

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/cockroachdb/pebble/v2"

	"github.com/imqtt/imqtt/store"
)

// Format is the layout of keys and values this code writes and reads; it
// is stamped in the store (meta/format) on the first open. A store without
// the stamp was written before stamps existed, in format 1. An older format
// is migrated in place by Open, after a backup it takes itself (steps, in
// upgrade.go); a newer one (a later release's) is refused, so that data is
// never read by code that would misread it. Change Format, with a step and
// a fixture of the old format under testdata/, whenever a key or value
// changes its meaning.
//
// Format 2 (rows.go): ack and conversation values are binary; format 1's
// JSON rows are still read, and the step from 1 rewrites nothing.
const Format = 2

// checkFormat refuses a store of a format newer than format (Format),
// upgrades an older one (upgrade.go) and stamps one that has no stamp: a
// new store with today's format, one written before stamps with 1.
func (s *Store) checkFormat() error {
	val, closer, err := s.db.Get([]byte(keyFormat))
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		n := format
		if _, c, err := s.db.Get([]byte(keyEpoch)); err == nil { // data from before stamps: format 1
			_ = c.Close()
			n = 1
		} else if !errors.Is(err, pebble.ErrNotFound) {
			return fmt.Errorf("read epoch: %w", err)
		}
		if err := s.set([]byte(keyFormat), []byte(strconv.Itoa(n)), pebble.Sync); err != nil {
			return fmt.Errorf("stamp store format: %w", err)
		}
		if n < format {
			return s.upgrade(n)
		}
		return nil
	case err != nil:
		return fmt.Errorf("read store format: %w", err)
	}
	n, perr := strconv.Atoi(string(val))
	_ = closer.Close()
	if perr != nil || n < 1 {
		return fmt.Errorf("%w: %s holds store format %q, which no imqttd writes", store.ErrFormat, s.dir, val)
	}
	if n > format {
		return fmt.Errorf("%w: %s holds store format %d, newer than this imqttd's %d: run the release that wrote it "+
			"(or a later one), or restore a backup this release made", store.ErrFormat, s.dir, n, format)
	}
	if n < format {
		return s.upgrade(n)
	}
	return nil
}
