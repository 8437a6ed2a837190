package chat

import "time"

// SetKnownTTL shortens how long a node trusts its cache of existing users,
// until the returned func restores it.
func SetKnownTTL(d time.Duration) (restore func()) {
	old := knownTTL
	knownTTL = d
	return func() { knownTTL = old }
}

// SetKnownMax bounds the cache of existing users of the services made
// from now on, until the returned func restores it.
func SetKnownMax(n int) (restore func()) {
	old := knownMax
	knownMax = n
	return func() { knownMax = old }
}

// KnownUsers is how many users s has cached as existing.
func KnownUsers(s *Service) int { return s.known.Len() }
