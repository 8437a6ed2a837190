package chat

import "github.com/imqtt/imqtt/store"

// Store is what the service needs of the store: users (whether a recipient
// exists), the message log it commits to and reads (also through sync),
// conversation rows, groups and conversation settings (mute, pin).
// store.Store has it all; a test's fake needs
// only these roles.
type Store interface {
	store.Users
	store.Messages
	store.Conversations
	store.Groups
	store.Settings
	store.Lives
	store.Social
}
