package store

import "context"

// Directory lets an operator find accounts and groups by the start of
// their ID (the admin API's user and group search). Both methods list in
// ID order, only IDs that begin with prefix ("" matches all) and come
// after after ("" from the start), at most limit (0 or less: DefaultLimit;
// an implementation caps it at its MaxLimit): a page, whose last ID is
// the next call's after. prefix is compared as given (user IDs are
// canonical lower case: callers fold it).
type Directory interface {
	// SearchUsers lists accounts; tombstones (Erasure) are skipped.
	SearchUsers(ctx context.Context, prefix, after string, limit int) ([]User, error)
	// SearchGroups lists groups, disbanded ones too (Group.Disbanded).
	SearchGroups(ctx context.Context, prefix, after string, limit int) ([]Group, error)
}
