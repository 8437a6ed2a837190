package backup

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/store/pebble"
)

// Limits on what Restore reads before it has verified anything.
const (
	maxManifest = 64 << 20 // about half a million files
	maxName     = 1024     // bytes of an entry's name
)

// Restored is what Restore did.
type Restored struct {
	Manifest
	NewEpoch string // the restored store's epoch; Manifest.Epoch was the original's
}

// Restore unpacks the backup read from r into dir, which must be empty or
// not exist. It unpacks into a staging directory next to dir, verifies
// every file's size and SHA-256 against the manifest, and refuses (with
// ErrCorrupt) a truncated stream, a file the manifest does not list or
// lists otherwise, a missing one, and any entry that is not a plain file
// with a plain relative name (absolute, "..", links, devices); it refuses a
// later backup or store format (store.ErrFormat). Only once all is verified
// does it Restamp the store (a new epoch, versions moved ahead) and rename
// the staging directory to dir. On any refusal nothing is left: no staging
// directory, dir as it was.
func Restore(r io.Reader, dir string) (res Restored, err error) {
	dir = filepath.Clean(dir)
	if err := checkEmpty(dir); err != nil {
		return Restored{}, err
	}
	parent := filepath.Dir(dir)
	created := firstMissing(parent) // removed again on a refusal
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return Restored{}, fmt.Errorf("restore: %w", err)
	}
	staging, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".restore-")
	defer func() {
		if err == nil {
			return
		}
		if staging != "" {
			_ = os.RemoveAll(staging)
		}
		if created != "" {
			_ = os.RemoveAll(created)
		}
	}()
	if err != nil {
		return Restored{}, fmt.Errorf("restore: %w", err)
	}
	m, err := unpack(r, staging)
	if err != nil {
		return Restored{}, fmt.Errorf("restore: %w", err)
	}
	res.Manifest = m
	if err := syncDirs(staging); err != nil {
		return Restored{}, fmt.Errorf("restore: %w", err)
	}
	if res.NewEpoch, err = pebble.Restamp(filepath.Join(staging, StoreDir)); err != nil {
		return Restored{}, fmt.Errorf("restore: %w", err)
	}
	if err := checkEmpty(dir); err != nil { // filled meanwhile
		return Restored{}, err
	}
	// os.Rename does not replace a directory, even an empty one; os.Remove
	// removes only an empty one.
	if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return Restored{}, fmt.Errorf("restore: %w", err)
	}
	if err := os.Rename(staging, dir); err != nil {
		return Restored{}, fmt.Errorf("restore: %w", err)
	}
	if err := syncDir(parent); err != nil {
		return res, fmt.Errorf("restore: %w", err)
	}
	return res, nil
}

// firstMissing returns the outermost directory of dir's path that does
// not exist ("" if dir exists).
func firstMissing(dir string) string {
	missing := ""
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			return missing
		}
		missing = d
		if filepath.Dir(d) == d {
			return missing
		}
	}
}

// checkEmpty refuses a dir that exists and is not an empty directory.
func checkEmpty(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("restore: %w", err)
	case len(entries) > 0:
		return fmt.Errorf("restore: %w: %s holds %s", ErrNotEmpty, dir, entries[0].Name())
	}
	return nil
}

// corrupt is an ErrCorrupt with what is wrong.
func corrupt(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, a...))
}

// Verify reads a backup from r and checks it as Restore does, writing
// nothing: the stream is whole, every file matches the manifest.
func Verify(r io.Reader) (Manifest, error) { return unpack(r, "") }

// unpack writes the files of the tar read from r under staging ("": nowhere)
// and returns the manifest once every file matches it.
func unpack(r io.Reader, staging string) (Manifest, error) {
	tr := tar.NewReader(r)
	got := map[string]File{}
	var raw []byte
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Manifest{}, corrupt("truncated or not a tar after %d files: %v", len(got), err)
		}
		if raw != nil {
			return Manifest{}, corrupt("entry %q after the manifest", hdr.Name)
		}
		name, err := entryName(hdr)
		if err != nil {
			return Manifest{}, err
		}
		if name == ManifestName {
			if hdr.Size > maxManifest {
				return Manifest{}, corrupt("manifest of %d bytes, over %d", hdr.Size, maxManifest)
			}
			if raw, err = io.ReadAll(tr); err != nil {
				return Manifest{}, corrupt("truncated in the manifest: %v", err)
			}
			if raw == nil {
				raw = []byte{}
			}
			continue
		}
		if _, dup := got[name]; dup {
			return Manifest{}, corrupt("%s twice", name)
		}
		f, err := unpackFile(tr, staging, name)
		if err != nil {
			return Manifest{}, err
		}
		got[name] = f
	}
	if raw == nil {
		return Manifest{}, corrupt("no manifest (%s) at the end: the stream is truncated", ManifestName)
	}
	var m Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return Manifest{}, corrupt("manifest: %v", err)
	}
	if m.Version > Version || m.Version < 1 {
		return Manifest{}, fmt.Errorf("%w: backup format %d; this imqttd reads format 1 to %d", store.ErrFormat, m.Version, Version)
	}
	if m.Format > pebble.Format {
		return Manifest{}, fmt.Errorf("%w: the backup's store format %d is newer than this imqttd's %d: restore it with the release that made it",
			store.ErrFormat, m.Format, pebble.Format)
	}
	for _, f := range m.Files {
		g, ok := got[f.Path]
		switch {
		case !ok:
			return Manifest{}, corrupt("%s is in the manifest but not in the tar", f.Path)
		case g.Size != f.Size:
			return Manifest{}, corrupt("%s holds %d bytes, the manifest says %d", f.Path, g.Size, f.Size)
		case g.SHA256 != f.SHA256:
			return Manifest{}, corrupt("%s does not match its SHA-256 in the manifest", f.Path)
		}
		delete(got, f.Path)
	}
	for name := range got {
		return Manifest{}, corrupt("%s is in the tar but not in the manifest", name)
	}
	if !hasStore(m.Files) {
		return Manifest{}, corrupt("no store (%s/) in the backup", StoreDir)
	}
	return m, nil
}

// entryName checks a tar entry is a plain file with a plain relative name
// and returns the name.
func entryName(hdr *tar.Header) (string, error) {
	name := hdr.Name
	switch {
	case hdr.Typeflag != tar.TypeReg:
		return "", corrupt("entry %q is not a plain file (type %q)", name, hdr.Typeflag)
	case len(name) > maxName:
		return "", corrupt("entry name of %d bytes", len(name))
	case strings.ContainsAny(name, "\\\x00"), !fs.ValidPath(name), !filepath.IsLocal(filepath.FromSlash(name)):
		return "", corrupt("entry name %q is not a plain relative path", name)
	case hdr.Size < 0:
		return "", corrupt("entry %q of size %d", name, hdr.Size)
	}
	return path.Clean(name), nil
}

// unpackFile writes one entry under staging ("": nowhere), hashing it.
func unpackFile(tr *tar.Reader, staging, name string) (File, error) {
	if staging == "" {
		h := sha256.New()
		n, err := io.Copy(h, tr)
		if err != nil {
			return File{}, corrupt("truncated in %s", name)
		}
		return File{Path: name, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
	}
	full := filepath.Join(staging, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(full), 0o750); err != nil {
		return File{}, corrupt("%s: %v", name, err)
	}
	f, err := os.OpenFile(full, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return File{}, corrupt("%s: %v", name, err)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), tr)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return File{}, corrupt("truncated in %s", name)
	}
	if err != nil {
		return File{}, fmt.Errorf("restore: %s: %w", name, err)
	}
	return File{Path: name, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

func hasStore(files []File) bool {
	for _, f := range files {
		if strings.HasPrefix(f.Path, StoreDir+"/") {
			return true
		}
	}
	return false
}

// syncDir makes a rename in dir survive a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// syncDirs syncs every directory under root, so the unpacked files' names
// survive a crash as their contents do.
func syncDirs(root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		return syncDir(p)
	})
}
