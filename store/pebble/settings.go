package pebble

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/cockroachdb/pebble/v2"

	"github.com/imqtt/imqtt/store"
)

// Conversation settings are kept twice, in one batch: by user
// (cs/{user}\x00{conv}: UserConvSettings, GetConvSettings) and by
// conversation (cr/{conv}\x00{user}: ConvSettingsFor, which push asks for
// a group's muted members). Both hold the same binary value:
//
//	csBinary(1) flags(1: 1 mute, 2 pin) varint mute_until, varint updated
//
// A row that sets nothing is not kept (store.ConvSettings.Zero).
const (
	csBinary = 0x01
	csMute   = 1
	csPin    = 2
)

// convSettingsPrefix is cs/{user}\x00: every row of user, and no other
// user's (no user ID holds a NUL).
func convSettingsPrefix(buf []byte, user string) []byte {
	buf = append(buf, pfxConvSet...)
	buf = append(buf, user...)
	return append(buf, sep)
}

func convSettingsKey(buf []byte, user, conv string) []byte {
	return append(convSettingsPrefix(buf, user), conv...)
}

// convSettingsRevPrefix is cr/{conv}\x00.
func convSettingsRevPrefix(buf []byte, conv string) []byte {
	buf = append(buf, pfxConvRev...)
	buf = append(buf, conv...)
	return append(buf, sep)
}

func convSettingsRevKey(buf []byte, conv, user string) []byte {
	return append(convSettingsRevPrefix(buf, conv), user...)
}

func appendConvSettings(buf []byte, c *store.ConvSettings) []byte {
	var flags byte
	if c.Mute {
		flags |= csMute
	}
	if c.Pin {
		flags |= csPin
	}
	buf = append(buf, csBinary, flags)
	buf = binary.AppendVarint(buf, c.MuteUntil)
	return binary.AppendVarint(buf, c.Updated)
}

// decodeConvSettingsValue reads a value of either key; the caller fills
// User and Conv from the key.
func decodeConvSettingsValue(val []byte) (store.ConvSettings, error) {
	if len(val) < 2 || val[0] != csBinary || val[1]&^(csMute|csPin) != 0 {
		return store.ConvSettings{}, errCorruptRow
	}
	c := store.ConvSettings{Mute: val[1]&csMute != 0, Pin: val[1]&csPin != 0}
	r := rowReader{val: val[2:]}
	c.MuteUntil = r.varint()
	c.Updated = r.varint()
	if r.bad || len(r.val) != 0 {
		return store.ConvSettings{}, errCorruptRow
	}
	return c, nil
}

// decodeConvSettings reads the row of a cs/ key (export.go).
func decodeConvSettings(key, val []byte) (store.ConvSettings, error) {
	user, conv, err := splitPair(key, pfxConvSet)
	if err != nil {
		return store.ConvSettings{}, errCorruptRow
	}
	c, err := decodeConvSettingsValue(val)
	if err != nil {
		return store.ConvSettings{}, err
	}
	c.User, c.Conv = string(user), string(conv)
	return c, nil
}

// checkConv rejects a conversation name other than "u:{peer}" or
// "g:{group}" with a non-empty ID that the key layout can hold.
func checkConv(conv string) error {
	kind, id, ok := strings.Cut(conv, ":")
	if !ok || kind != "u" && kind != "g" || id == "" {
		return fmt.Errorf("conversation %q: %w", conv, ErrInvalid)
	}
	return checkID("conversation", conv)
}

func checkConvSettingsID(user, conv string) error {
	if user == "" {
		return fmt.Errorf("empty user: %w", ErrInvalid)
	}
	if err := checkID("user", user); err != nil {
		return err
	}
	return checkConv(conv)
}

// PutConvSettings writes c under both keys in one synced batch, or
// deletes both if c sets nothing.
func (s *Store) PutConvSettings(ctx context.Context, c store.ConvSettings) error {
	if err := s.beginWrite(ctx, "put conversation settings"); err != nil {
		return err
	}
	defer s.end()
	if err := checkConvSettingsID(c.User, c.Conv); err != nil {
		return fmt.Errorf("put conversation settings: %w", err)
	}
	wb := s.db.NewBatch()
	defer wb.Close()
	key, rev := convSettingsKey(nil, c.User, c.Conv), convSettingsRevKey(nil, c.Conv, c.User)
	if c.Zero() {
		_ = wb.Delete(key, nil)
		_ = wb.Delete(rev, nil)
	} else {
		val := appendConvSettings(nil, &c)
		_ = wb.Set(key, val, nil)
		_ = wb.Set(rev, val, nil)
	}
	if err := s.commit(wb); err != nil {
		return fmt.Errorf("put conversation settings of %s on %s: %w", c.User, c.Conv, err)
	}
	return nil
}

// GetConvSettings reads user's row of conv.
func (s *Store) GetConvSettings(ctx context.Context, user, conv string) (store.ConvSettings, error) {
	if err := s.begin(ctx, "get conversation settings"); err != nil {
		return store.ConvSettings{}, err
	}
	defer s.end()
	if err := checkConvSettingsID(user, conv); err != nil {
		return store.ConvSettings{}, fmt.Errorf("get conversation settings: %w", err)
	}
	val, closer, err := s.db.Get(convSettingsKey(nil, user, conv))
	if errors.Is(err, pebble.ErrNotFound) {
		return store.ConvSettings{}, fmt.Errorf("conversation settings of %s on %s: %w", user, conv, store.ErrNotFound)
	}
	if err != nil {
		return store.ConvSettings{}, fmt.Errorf("get conversation settings of %s on %s: %w", user, conv, err)
	}
	defer closer.Close()
	c, err := decodeConvSettingsValue(val)
	if err != nil {
		return store.ConvSettings{}, fmt.Errorf("decode conversation settings of %s on %s: %w", user, conv, err)
	}
	c.User, c.Conv = user, conv
	return c, nil
}

// UserConvSettings reads the rows under cs/{user}\x00, in conv order.
func (s *Store) UserConvSettings(ctx context.Context, user string) ([]store.ConvSettings, error) {
	if err := s.begin(ctx, "user conversation settings"); err != nil {
		return nil, err
	}
	defer s.end()
	if err := checkID("user", user); err != nil {
		return nil, fmt.Errorf("user conversation settings: %w", err)
	}
	out, err := s.scanConvSettings(ctx, convSettingsPrefix(nil, user), func(c *store.ConvSettings, rest string) {
		c.User, c.Conv = user, rest
	})
	if err != nil {
		return nil, fmt.Errorf("conversation settings of %s: %w", user, err)
	}
	return out, nil
}

// ConvSettingsFor reads the rows under cr/{conv}\x00, in user order.
func (s *Store) ConvSettingsFor(ctx context.Context, conv string) ([]store.ConvSettings, error) {
	if err := s.begin(ctx, "conversation settings for"); err != nil {
		return nil, err
	}
	defer s.end()
	if err := checkConv(conv); err != nil {
		return nil, fmt.Errorf("conversation settings for: %w", err)
	}
	out, err := s.scanConvSettings(ctx, convSettingsRevPrefix(nil, conv), func(c *store.ConvSettings, rest string) {
		c.User, c.Conv = rest, conv
	})
	if err != nil {
		return nil, fmt.Errorf("conversation settings of %s: %w", conv, err)
	}
	return out, nil
}

// scanConvSettings decodes every row under prefix; name fills a row's
// User and Conv from the rest of its key.
func (s *Store) scanConvSettings(ctx context.Context, prefix []byte, name func(c *store.ConvSettings, rest string)) ([]store.ConvSettings, error) {
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, err
	}
	var out []store.ConvSettings
	for ok := it.First(); ok; ok = it.Next() {
		if len(out)%256 == 0 && ctx.Err() != nil {
			break
		}
		c, err := decodeConvSettingsValue(it.Value())
		if err != nil {
			_ = it.Close()
			return nil, fmt.Errorf("key %q: %w", it.Key(), err)
		}
		name(&c, string(it.Key()[len(prefix):]))
		out = append(out, c)
	}
	if err := errors.Join(it.Error(), it.Close(), ctx.Err()); err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteUserConvSettings removes user's rows and their reverse keys in
// one synced batch.
func (s *Store) DeleteUserConvSettings(ctx context.Context, user string) error {
	if err := s.beginWrite(ctx, "delete user conversation settings"); err != nil {
		return err
	}
	defer s.end()
	if err := checkID("user", user); err != nil {
		return fmt.Errorf("delete user conversation settings: %w", err)
	}
	prefix := convSettingsPrefix(nil, user)
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return fmt.Errorf("delete conversation settings of %s: %w", user, err)
	}
	wb := s.db.NewBatch()
	defer wb.Close()
	for ok := it.First(); ok; ok = it.Next() {
		_ = wb.Delete(it.Key(), nil)
		_ = wb.Delete(convSettingsRevKey(nil, string(it.Key()[len(prefix):]), user), nil)
	}
	if err := errors.Join(it.Error(), it.Close(), ctx.Err()); err != nil {
		return fmt.Errorf("delete conversation settings of %s: %w", user, err)
	}
	if wb.Empty() {
		return nil
	}
	if err := s.commit(wb); err != nil {
		return fmt.Errorf("delete conversation settings of %s: %w", user, err)
	}
	return nil
}
