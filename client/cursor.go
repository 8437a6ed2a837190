package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// CursorStore keeps a device's sync cursor: the highest inbox version it has
// seen without a gap, and the epoch (the server's history) that version
// belongs to (SPEC §5). Implementations are safe for concurrent use.
type CursorStore interface {
	// Load returns the saved cursor; a store that never saved returns 0, "", nil.
	Load() (ver uint64, epoch string, err error)
	// Save replaces the cursor. It is atomic: a later Load sees either the
	// old cursor or the new one, never a mix or a torn file.
	Save(ver uint64, epoch string) error
}

var (
	_ CursorStore = (*FileCursor)(nil)
	_ CursorStore = (*MemoryCursor)(nil)
)

// cursorFile is the JSON stored by FileCursor.
type cursorFile struct {
	Ver   uint64 `json:"ver"`
	Epoch string `json:"epoch,omitempty"`
}

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
func (f *FileCursor) Load() (uint64, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, err := os.ReadFile(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, "", nil
	}
	if err != nil {
		return 0, "", fmt.Errorf("load cursor: %w", err)
	}
	var c cursorFile
	if err := json.Unmarshal(b, &c); err != nil {
		return 0, "", fmt.Errorf("load cursor %s: %w", f.path, err)
	}
	return c.Ver, c.Epoch, nil
}

// Save atomically replaces the cursor file.
func (f *FileCursor) Save(ver uint64, epoch string) error {
	b, err := json.Marshal(cursorFile{Ver: ver, Epoch: epoch})
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
	mu    sync.Mutex
	ver   uint64
	epoch string
}

// Load returns the cursor.
func (m *MemoryCursor) Load() (uint64, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ver, m.epoch, nil
}

// Save replaces the cursor.
func (m *MemoryCursor) Save(ver uint64, epoch string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ver, m.epoch = ver, epoch
	return nil
}
