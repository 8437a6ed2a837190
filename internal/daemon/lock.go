package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// PIDFile is the file in a data directory that imqttd holds an flock on
// while it uses the directory, and that names its process.
const PIDFile = "imqttd.pid"

// ErrInUse: another process holds the data directory's lock.
var ErrInUse = errors.New("in use")

// DirLock is a held lock on a data directory.
type DirLock struct{ f *os.File }

// LockDataDir takes dir's lock (creating dir if it is missing), so that
// one imqttd, restore or migrate at a time uses it, and writes this
// process's id into PIDFile. A held lock is refused at once with ErrInUse
// and the holder's pid: "data dir ./data in use by another imqttd (pid
// 4711)", where Pebble's own LOCK would say only "resource temporarily
// unavailable". The kernel drops the lock when the process dies, so a
// crash leaves nothing to clean up; the file itself stays.
func LockDataDir(dir string) (*DirLock, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("data dir %s: %w", dir, err)
	}
	name := filepath.Join(dir, PIDFile)
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("data dir %s: lock: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("data dir %s %w by another imqttd (pid %s)", dir, ErrInUse, holder(name))
		}
		return nil, fmt.Errorf("data dir %s: lock %s: %w", dir, name, err)
	}
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("data dir %s: write %s: %w", dir, name, err)
	}
	return &DirLock{f: f}, nil
}

// holder is the pid the lock's holder wrote, or "unknown" (it may be
// between taking the lock and writing its pid).
func holder(name string) string {
	raw, err := os.ReadFile(name)
	pid := strings.TrimSpace(string(raw))
	if _, perr := strconv.Atoi(pid); err != nil || perr != nil {
		return "unknown"
	}
	return pid
}

// Release gives the lock up; nil-safe. The pid file stays (removing it
// would race with a process about to lock it).
func (l *DirLock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the last descriptor drops the flock
	l.f = nil
	return err
}

// CheckDataDir refuses, as LockDataDir does, a data dir whose lock another
// process holds, without taking the lock or creating anything: for
// `imqttd restore`, whose target must stay empty.
func CheckDataDir(dir string) error {
	name := filepath.Join(dir, PIDFile)
	f, err := os.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("data dir %s: %w", dir, err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); errors.Is(err, syscall.EWOULDBLOCK) {
		return fmt.Errorf("data dir %s %w by another imqttd (pid %s)", dir, ErrInUse, holder(name))
	}
	return nil // closing drops a lock just taken
}
