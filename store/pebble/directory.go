package pebble

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/imqtt/imqtt/store"
)

// SearchUsers lists accounts whose ID begins with prefix, after after.
func (s *Store) SearchUsers(ctx context.Context, prefix, after string, limit int) ([]store.User, error) {
	var out []store.User
	err := s.search(ctx, "search users", pfxUser, prefix, after, clampLimit(limit), func(v []byte) (bool, error) {
		var u store.User
		if err := json.Unmarshal(v, &u); err != nil {
			return false, err
		}
		if u.Deleted != 0 { // a tombstone
			return false, nil
		}
		out = append(out, u)
		return true, nil
	})
	return out, err
}

// SearchGroups lists groups whose ID begins with prefix, after after.
func (s *Store) SearchGroups(ctx context.Context, prefix, after string, limit int) ([]store.Group, error) {
	var out []store.Group
	err := s.search(ctx, "search groups", pfxGroup, prefix, after, clampLimit(limit), func(v []byte) (bool, error) {
		var g store.Group
		if err := json.Unmarshal(v, &g); err != nil {
			return false, err
		}
		out = append(out, g)
		return true, nil
	})
	return out, err
}

// search walks the rows of table (a key prefix) whose ID begins with
// prefix and sorts after after, handing each value to take until it has
// taken limit.
func (s *Store) search(ctx context.Context, what, table, prefix, after string, limit int, take func([]byte) (bool, error)) error {
	if err := s.begin(ctx, what); err != nil {
		return err
	}
	defer s.end()
	lower := []byte(table + prefix)
	if after != "" && after >= prefix {
		lower = append([]byte(table+after), 0) // the first key after "after"
	}
	upper := prefixEnd([]byte(table + prefix))
	if string(lower) >= string(upper) { // after is past every ID with prefix
		return nil
	}
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer it.Close()
	for ok, n := it.First(), 0; ok && n < limit; ok = it.Next() {
		took, err := take(it.Value())
		if err != nil {
			return fmt.Errorf("%s: decode %q: %w", what, it.Key(), err)
		}
		if took {
			n++
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}
