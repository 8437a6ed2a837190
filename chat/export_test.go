package chat

import "time"

// SetKnownTTL shortens how long a node trusts its cache of existing users,
// until the returned func restores it.
func SetKnownTTL(d time.Duration) (restore func()) {
	old := knownTTL
	knownTTL = d
	return func() { knownTTL = old }
}
