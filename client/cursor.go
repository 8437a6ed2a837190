package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"sync"
)

// Cursor is where a device is in what the server has for it (docs/protocol.md#versions-and-offline-sync, docs/protocol.md#groups):
// the highest inbox version it has seen without a gap and the epoch (the
// server's history) it belongs to, and the same per group it is in, by seq.
type Cursor struct {
	Ver    uint64                 `json:"ver"`
	Epoch  string                 `json:"epoch,omitempty"`
	Groups map[string]GroupCursor `json:"groups,omitempty"`
}

// GroupCursor is a device's place in one group: the highest seq it has seen
// without a gap, and the epoch it belongs to. Gone: the group was
// disbanded and the application has had its disbanded event (once).
type GroupCursor struct {
	Seq   uint64 `json:"seq"`
	Epoch string `json:"epoch,omitempty"`
	Gone  bool   `json:"gone,omitempty"`
}

// clone returns a copy of c that shares nothing with it.
func (c Cursor) clone() Cursor {
	c.Groups = maps.Clone(c.Groups)
	return c
}

// CursorStore keeps a device's cursor. Implementations are safe for
// concurrent use.
type CursorStore interface {
	// Load returns the saved cursor; a store that never saved returns the
	// zero Cursor and no error.
	Load() (Cursor, error)
	// Save replaces the cursor. It is atomic: a later Load sees either the
	// old cursor or the new one, never a mix or a torn file.
	Save(Cursor) error
}

var (
	_ CursorStore = (*FileCursor)(nil)
	_ CursorStore = (*MemoryCursor)(nil)
)

// FileCursor is a CursorStore in one JSON file. Save writes a temporary file
// in the same directory, syncs it and renames it over the old one, so a crash
// leaves either cursor whole.
type FileCursor struct {
	path string
	mu   sync.Mutex
}

// NewFileCursor returns a FileCursor at path. The file and its directory are
// created on the first Save (mode 0600, directory 0700).
func NewFileCursor(path string) *FileCursor { return &FileCursor{path: path} }

// Path is the file the cursor lives in.
func (f *FileCursor) Path() string { return f.path }

// Load reads the cursor; a missing file is the zero cursor.
func (f *FileCursor) Load() (Cursor, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, err := os.ReadFile(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return Cursor{}, nil
	}
	if err != nil {
		return Cursor{}, fmt.Errorf("load cursor: %w", err)
	}
	var c Cursor
	if err := json.Unmarshal(b, &c); err != nil {
		return Cursor{}, fmt.Errorf("load cursor %s: %w", f.path, err)
	}
	return c, nil
}

// Save atomically replaces the cursor file.
func (f *FileCursor) Save(c Cursor) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := WriteFileAtomic(f.path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("save cursor: %w", err)
	}
	return nil
}

// WriteFileAtomic writes data to path through a synced temporary file in the
// same directory and a rename, creating the directory (0700) if needed.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	name := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(name)
		}
	}()
	if err := tmp.Chmod(perm); err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(name, path); err != nil {
		return err
	}
	ok = true
	// Make the rename itself durable; not every platform can sync a directory.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// MemoryCursor is a CursorStore in memory, for tests and short-lived bots.
// Its zero value is ready to use.
type MemoryCursor struct {
	mu sync.Mutex
	c  Cursor
}

// Load returns the cursor.
func (m *MemoryCursor) Load() (Cursor, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.c.clone(), nil
}

// Save replaces the cursor.
func (m *MemoryCursor) Save(c Cursor) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.c = c.clone()
	return nil
}
