// Package bans keeps the list of banned users and IP addresses. A ban refuses
// MQTT CONNECT (hooks/ban.go) and HTTP logins and token use (api) until it
// expires or is removed.
//
// File is the embedded implementation: the list lives in memory and in one
// JSON file rewritten atomically on each change. Shared is scale-out's: rows
// in the shared store, reloaded by every node. Both answer Banned from
// memory, so the CONNECT path never waits on I/O.
package bans

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/imqtt/imqtt/wire"
)

// Sentinel errors.
var (
	ErrNotFound = errors.New("ban not found")
	ErrInvalid  = errors.New("invalid ban")
	ErrFull     = errors.New("too many bans")
)

// MaxBans bounds the list (each change rewrites it whole).
const MaxBans = 10_000

// MaxReason bounds a ban's reason in bytes.
const MaxReason = 256

// Ban refuses one user, or one IP address or range, until Expires.
type Ban struct {
	ID      string `json:"id"`
	User    string `json:"user,omitempty"`
	IP      string `json:"ip,omitempty"` // an address or a CIDR prefix, normalised
	Reason  string `json:"reason,omitempty"`
	Created int64  `json:"created"`           // unix ms
	Expires int64  `json:"expires,omitempty"` // unix ms; 0: until removed
}

// Active reports whether b is in force at now (unix ms).
func (b Ban) Active(now int64) bool { return b.Expires == 0 || now < b.Expires }

// Covers reports whether b applies to user (if not empty) or addr (if
// valid), whether or not it is in force.
func (b Ban) Covers(user string, addr netip.Addr) bool {
	if b.User != "" {
		return user == b.User
	}
	if !addr.IsValid() {
		return false
	}
	addr = addr.Unmap()
	if strings.Contains(b.IP, "/") {
		p, err := netip.ParsePrefix(b.IP)
		return err == nil && p.Contains(addr)
	}
	a, err := netip.ParseAddr(b.IP)
	return err == nil && a == addr
}

// List is a ban list.
type List interface {
	// Add validates b (exactly one of User and IP; IP an address or CIDR
	// prefix; Reason at most MaxReason bytes; Expires 0 or in the future),
	// gives it an ID and Created, and stores it durably before returning it.
	// Errors: ErrInvalid, ErrFull, or a storage error.
	Add(ctx context.Context, b Ban) (Ban, error)
	// Remove deletes the ban with this ID durably; ErrNotFound if there is none
	// (an expired ban counts as none).
	Remove(ctx context.Context, id string) error
	// All returns the bans in force, newest first.
	All(ctx context.Context) ([]Ban, error)
	// Banned returns a ban in force on user (if user is not empty) or on addr
	// (if valid). It does no I/O and no allocation: it runs on every CONNECT.
	Banned(user string, addr netip.Addr) (Ban, bool)
}

// index is an immutable view of the list for lock-free Banned.
type index struct {
	all    []Ban // newest first
	users  map[string]Ban
	addrs  map[netip.Addr]Ban
	ranges []rangeBan
}

type rangeBan struct {
	p netip.Prefix
	b Ban
}

// view is the in-memory side every List shares: an immutable index
// swapped whole on each change, so Banned takes no lock.
type view struct {
	now func() time.Time
	idx atomic.Pointer[index]
}

// File is a List kept in a JSON file.
type File struct {
	view
	path string

	mu sync.Mutex // serialises changes and file writes
}

var _ List = (*File)(nil)

// Open loads the list from path (a missing file is an empty list), creating
// its directory. now is the clock (nil: time.Now).
func Open(path string, now func() time.Time) (*File, error) {
	if now == nil {
		now = time.Now
	}
	f := &File{path: path}
	f.now = now
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("ban list dir: %w", err)
	}
	var list []Ban
	raw, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("read ban list: %w", err)
	default:
		var doc struct {
			Bans []Ban `json:"bans"`
		}
		if err := json.Unmarshal(raw, &doc); err != nil {
			return nil, fmt.Errorf("ban list %s: %w", path, err)
		}
		list = doc.Bans
	}
	f.idx.Store(build(list))
	return f, nil
}

func build(list []Ban) *index {
	ix := &index{all: list, users: map[string]Ban{}, addrs: map[netip.Addr]Ban{}}
	// Oldest first, so that for one user the newest ban wins; Banned checks
	// expiry, and All filters it.
	for _, b := range slices.Backward(list) {
		switch {
		case b.User != "":
			ix.users[b.User] = longer(ix.users[b.User], b)
		case strings.Contains(b.IP, "/"):
			if p, err := netip.ParsePrefix(b.IP); err == nil {
				ix.ranges = append(ix.ranges, rangeBan{p, b})
			}
		default:
			if a, err := netip.ParseAddr(b.IP); err == nil {
				ix.addrs[a] = longer(ix.addrs[a], b)
			}
		}
	}
	return ix
}

// longer is whichever of two bans on one target lasts longer.
func longer(a, b Ban) Ban {
	if a.ID == "" || b.Expires == 0 || (a.Expires != 0 && b.Expires > a.Expires) {
		return b
	}
	return a
}

// Banned implements List.
func (f *view) Banned(user string, addr netip.Addr) (Ban, bool) {
	ix := f.idx.Load()
	now := f.now().UnixMilli()
	if user != "" {
		if b, ok := ix.users[user]; ok && b.Active(now) {
			return b, true
		}
	}
	if !addr.IsValid() {
		return Ban{}, false
	}
	addr = addr.Unmap()
	if b, ok := ix.addrs[addr]; ok && b.Active(now) {
		return b, true
	}
	for _, r := range ix.ranges {
		if r.b.Active(now) && r.p.Contains(addr) {
			return r.b, true
		}
	}
	return Ban{}, false
}

// All implements List.
func (f *view) All(ctx context.Context) ([]Ban, error) {
	now := f.now().UnixMilli()
	out := []Ban{}
	for _, b := range f.idx.Load().all {
		if b.Active(now) {
			out = append(out, b)
		}
	}
	return out, nil
}

// Add implements List.
func (f *File) Add(ctx context.Context, b Ban) (Ban, error) {
	now := f.now().UnixMilli()
	if err := normalise(&b, now); err != nil {
		return Ban{}, err
	}
	b.ID, b.Created = newID(), now
	f.mu.Lock()
	defer f.mu.Unlock()
	live := active(f.idx.Load().all, now)
	if len(live) >= MaxBans {
		return Ban{}, ErrFull
	}
	list := append([]Ban{b}, live...)
	if err := f.write(list); err != nil {
		return Ban{}, err
	}
	f.idx.Store(build(list))
	return b, nil
}

// Remove implements List.
func (f *File) Remove(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	live := active(f.idx.Load().all, f.now().UnixMilli())
	i := slices.IndexFunc(live, func(b Ban) bool { return b.ID == id })
	if i < 0 {
		return ErrNotFound
	}
	list := slices.Delete(slices.Clone(live), i, i+1)
	if err := f.write(list); err != nil {
		return err
	}
	f.idx.Store(build(list))
	return nil
}

func newID() string {
	var id [8]byte
	_, _ = rand.Read(id[:])
	return "b-" + hex.EncodeToString(id[:])
}

// active returns the bans of list in force at now, as a new slice.
func active(list []Ban, now int64) []Ban {
	out := make([]Ban, 0, len(list))
	for _, b := range list {
		if b.Active(now) {
			out = append(out, b)
		}
	}
	return out
}

// normalise checks b and writes its IP in canonical form.
func normalise(b *Ban, now int64) error {
	switch {
	case (b.User == "") == (b.IP == ""):
		return fmt.Errorf("%w: exactly one of user and ip", ErrInvalid)
	case b.User != "" && !wire.ValidUser(b.User):
		return fmt.Errorf("%w: user must be a user ID: 1 to 64 of A-Z a-z 0-9 _ . -, no leading dot", ErrInvalid)
	case len(b.Reason) > MaxReason:
		return fmt.Errorf("%w: reason over %d bytes", ErrInvalid, MaxReason)
	case b.Expires < 0 || (b.Expires != 0 && b.Expires <= now):
		return fmt.Errorf("%w: expiry in the past", ErrInvalid)
	}
	if b.IP == "" {
		b.User, _ = wire.NormUser(b.User) // a ban of "Alice" bans alice
		return nil
	}
	if strings.Contains(b.IP, "/") {
		p, err := netip.ParsePrefix(b.IP)
		if err != nil {
			return fmt.Errorf("%w: ip: %v", ErrInvalid, err)
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		b.IP = p.Masked().String()
		return nil
	}
	a, err := netip.ParseAddr(b.IP)
	if err != nil || a.Zone() != "" {
		return fmt.Errorf("%w: ip must be an address or a CIDR prefix", ErrInvalid)
	}
	b.IP = a.Unmap().String()
	return nil
}

// write replaces the file atomically: a temporary file in the same
// directory, synced, then renamed over the old one, then the directory synced.
func (f *File) write(list []Ban) error {
	raw, err := json.MarshalIndent(struct {
		Bans []Ban `json:"bans"`
	}{list}, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(f.path)
	tmp, err := os.CreateTemp(dir, ".bans-*.json")
	if err != nil {
		return fmt.Errorf("write ban list: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(append(raw, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write ban list: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync ban list: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write ban list: %w", err)
	}
	if err := os.Rename(tmp.Name(), f.path); err != nil {
		return fmt.Errorf("replace ban list: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// ParseRemote returns the IP address of a remote address "host:port" (or a
// bare address); the zero Addr if it has none.
func ParseRemote(remote string) netip.Addr {
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		return ap.Addr().Unmap()
	}
	if a, err := netip.ParseAddr(remote); err == nil {
		return a.Unmap()
	}
	return netip.Addr{}
}
