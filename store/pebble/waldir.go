package pebble

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/wal"
)

// The write-ahead log on a device of its own (Options.WALDir;
// docs/operations.md "Durability"). On ext4 a log fdatasync waits for the
// journal transaction, which carries every other file's dirty data on the
// file system: a memtable flush, a compaction, another program writing.
// With the log on another file system, each commit's sync waits for the
// log's own bytes only.
//
// Pebble keeps the log there and its tables in the store's directory; it
// replays logs from the directories it is told of, so:
//   - the store's own directory is always a recovery directory: a store
//     that ran without a log directory, or was restored from a backup
//     (whose checkpoint holds its logs beside its tables), is replayed whole;
//   - a store whose log is elsewhere refuses to open without that directory
//     (Pebble records the directory in its OPTIONS file): ErrWALDir, naming it;
//   - a log directory belongs to one store: an owner file there and in the
//     store's directory hold the same random ID. A directory holding another
//     store's logs (the one a backup replaced, say) is refused, since
//     replaying them into this store would corrupt it.
//   - a checkpoint (Checkpoint, the upgrade's self-backup) copies the logs
//     into its own directory; its OPTIONS file is rewritten to say so, so
//     that it opens, restores and migrates without any log directory.

// ErrWALDir wraps a refused log directory: missing, not a writable
// directory, another store's, or not the one the store's log is in.
var ErrWALDir = errors.New("write-ahead log directory")

// walOwnerFile is the owner file's name, in the store's directory and in
// its log directory.
const walOwnerFile = "IMQTT-WAL-OWNER"

// checkWALDir checks opts.WALDir (absolute) for the store in dir before
// Pebble opens it, and, unless readOnly, makes both owner files.
func checkWALDir(fs vfs.FS, dir, walDir string, readOnly bool) error {
	fail := func(format string, a ...any) error {
		return fmt.Errorf("%w %s: %s", ErrWALDir, walDir, fmt.Sprintf(format, a...))
	}
	fi, err := fs.Stat(walDir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fail("does not exist (create it, on the device meant for the log)")
	case err != nil:
		return fail("%v", err)
	case !fi.IsDir():
		return fail("not a directory")
	}
	if same(fs, dir, walDir) {
		return fail("is the store's own directory")
	}
	storeID, err := readOwner(fs, dir)
	if err != nil {
		return fail("%v", err)
	}
	walID, err := readOwner(fs, walDir)
	if err != nil {
		return fail("%v", err)
	}
	if walID != "" && walID != storeID {
		return fail("holds the write-ahead log of another store (owner %s, this store's is %q): "+
			"empty it, or choose another directory, if that store is gone", walID, storeID)
	}
	if walID == "" {
		names, err := fs.List(walDir)
		if err != nil {
			return fail("%v", err)
		}
		for _, n := range names {
			if strings.HasSuffix(n, ".log") {
				return fail("holds write-ahead logs (%s) of no known store: empty it, or choose another directory", n)
			}
		}
	}
	if readOnly {
		if storeID == "" || walID == "" {
			return fail("has never held this store's log")
		}
		return nil
	}
	// Writable: a probe file, made and removed, before any owner is written.
	probe := filepath.Join(walDir, ".imqtt-probe")
	f, err := fs.Create(probe, vfs.WriteCategoryUnspecified)
	if err != nil {
		return fail("not writable: %v", err)
	}
	_ = f.Close()
	if err := fs.Remove(probe); err != nil {
		return fail("not writable: %v", err)
	}
	if storeID == "" {
		storeID = rand.Text()
		if err := writeOwner(fs, dir, storeID); err != nil {
			return fail("%v", err)
		}
	}
	if walID == "" {
		if err := writeOwner(fs, walDir, storeID); err != nil {
			return fail("%v", err)
		}
	}
	return nil
}

// same reports whether a and b are one directory.
func same(fs vfs.FS, a, b string) bool {
	if filepath.Clean(a) == filepath.Clean(b) {
		return true
	}
	fa, errA := os.Stat(a)
	fb, errB := os.Stat(b)
	return fs == vfs.Default && errA == nil && errB == nil && os.SameFile(fa, fb)
}

func readOwner(fs vfs.FS, dir string) (string, error) {
	f, err := fs.Open(filepath.Join(dir, walOwnerFile))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 256))
	return string(bytes.TrimSpace(b)), err
}

// writeOwner writes an owner file and syncs it and its directory.
func writeOwner(fs vfs.FS, dir, id string) error {
	name := filepath.Join(dir, walOwnerFile)
	f, err := fs.Create(name, vfs.WriteCategoryUnspecified)
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	_, err = io.WriteString(f, id+"\n")
	if err == nil {
		err = f.Sync()
	}
	if err = errors.Join(err, f.Close()); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	d, err := fs.OpenDir(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	return d.Sync()
}

// onTmpfs reports whether dir is on a tmpfs (Linux's TMPFS_MAGIC).
func onTmpfs(dir string) bool {
	var st syscall.Statfs_t
	return syscall.Statfs(dir, &st) == nil && int64(st.Type) == 0x01021994
}

// walOpenError explains Pebble's refusal to open a store whose log was in
// a directory it was not given.
func walOpenError(err error) error {
	var missing pebble.ErrMissingWALRecoveryDir
	if !errors.As(err, &missing) {
		return err
	}
	return fmt.Errorf("%w: the store's write-ahead log was last kept in %s: start with --wal-dir %s "+
		"(without it, the commits not yet in the store's tables would be lost; to stop using it, back up and restore)",
		ErrWALDir, missing.Dir, missing.Dir)
}

// applyWALDir sets Pebble's log options for a store in dir.
func applyWALDir(po *pebble.Options, fs vfs.FS, dir, walDir string) {
	if walDir == "" {
		return
	}
	po.WALDir = walDir
	po.WALRecoveryDirs = []wal.Dir{{FS: fs, Dirname: dir}}
}

// detachWALDir rewrites the OPTIONS files of a checkpoint taken from a
// store with a log directory: Pebble copied the logs into the checkpoint,
// so its wal_dir is emptied, and the copy opens on its own.
func detachWALDir(fs vfs.FS, dir string) error {
	names, err := fs.List(dir)
	if err != nil {
		return fmt.Errorf("detach log directory from %s: %w", dir, err)
	}
	for _, n := range names {
		if !strings.HasPrefix(n, "OPTIONS-") {
			continue
		}
		name := filepath.Join(dir, n)
		f, err := fs.Open(name)
		if err != nil {
			return fmt.Errorf("detach log directory: %w", err)
		}
		b, err := io.ReadAll(f)
		_ = f.Close()
		if err != nil {
			return fmt.Errorf("detach log directory: read %s: %w", name, err)
		}
		lines := strings.SplitAfter(string(b), "\n")
		for i, l := range lines {
			if k, _, ok := strings.Cut(strings.TrimSpace(l), "="); ok && k == "wal_dir" {
				lines[i] = "  wal_dir=\n"
			}
		}
		tmp := name + ".tmp"
		w, err := fs.Create(tmp, vfs.WriteCategoryUnspecified)
		if err != nil {
			return fmt.Errorf("detach log directory: %w", err)
		}
		_, err = io.WriteString(w, strings.Join(lines, ""))
		if err == nil {
			err = w.Sync()
		}
		if err = errors.Join(err, w.Close()); err != nil {
			return fmt.Errorf("detach log directory: write %s: %w", tmp, err)
		}
		if err := fs.Rename(tmp, name); err != nil {
			return fmt.Errorf("detach log directory: %w", err)
		}
	}
	d, err := fs.OpenDir(dir)
	if err != nil {
		return fmt.Errorf("detach log directory: %w", err)
	}
	defer d.Close()
	return d.Sync()
}
