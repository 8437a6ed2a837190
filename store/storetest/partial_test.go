package storetest_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/store/storetest"
)

// memAccounts is a store of the Accounts role alone, in memory, as a
// consumer's test fake would be: it has no other role and no Close.
type memAccounts struct {
	mu     sync.Mutex
	users  map[string]store.User
	tokens map[string]store.Token
}

var _ store.Accounts = (*memAccounts)(nil)

func (m *memAccounts) CreateUser(_ context.Context, u store.User) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	u.ID = store.FoldID(u.ID)
	if _, ok := m.users[u.ID]; ok {
		return fmt.Errorf("create user %s: %w", u.ID, store.ErrExists)
	}
	m.users[u.ID] = u
	return nil
}

func (m *memAccounts) GetUser(_ context.Context, id string) (store.User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.users[store.FoldID(id)]
	if !ok {
		return store.User{}, fmt.Errorf("get user %s: %w", id, store.ErrNotFound)
	}
	return u, nil
}

func (m *memAccounts) PutToken(_ context.Context, t store.Token) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tokens[t.Hash] = t
	return nil
}

func (m *memAccounts) GetToken(_ context.Context, hash string) (store.Token, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.tokens[hash]
	if !ok {
		return store.Token{}, fmt.Errorf("get token: %w", store.ErrNotFound)
	}
	return t, nil
}

func (m *memAccounts) DeleteToken(_ context.Context, hash string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.tokens, hash)
	return nil
}

// TestPartialStore runs the Accounts part on a store that has only that
// role: a part asks for nothing more than the roles it names.
func TestPartialStore(t *testing.T) {
	storetest.Accounts(t, func(t *testing.T) store.Accounts {
		return &memAccounts{users: map[string]store.User{}, tokens: map[string]store.Token{}}
	})
}
