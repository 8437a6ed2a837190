package chat

import "context"

// Badge is the number a push notification shows: user's unread messages.
func (s *Service) Badge(ctx context.Context, user string) (int64, error) {
	return s.totalUnread(ctx, user)
}
