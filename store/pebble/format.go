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
// is migrated in place when a later one needs it; a newer one (a later
// release's) is refused, so that data is never read by code that would
// misread it. Change Format, with a migration and a fixture of the old
// format under testdata/, whenever a key or value changes its meaning.
const Format = 1

// checkFormat refuses a store of a format newer than Format and stamps
// one that has no stamp.
func (s *Store) checkFormat() error {
	val, closer, err := s.db.Get([]byte(keyFormat))
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		// New, or written before stamps (format 1, the same layout).
		if err := s.set([]byte(keyFormat), []byte(strconv.Itoa(Format)), pebble.Sync); err != nil {
			return fmt.Errorf("stamp store format: %w", err)
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
	if n > Format {
		return fmt.Errorf("%w: %s holds store format %d, newer than this imqttd's %d: run the release that wrote it "+
			"(or a later one), or restore a backup this release made", store.ErrFormat, s.dir, n, Format)
	}
	return nil
}
