package media

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// FS is the embedded Blobs: each object is a directory of files,
//
//	{root}/{id[2:4]}/{id}/info.json   the Info (the JSON sidecar)
//	{root}/{id[2:4]}/{id}/data        the uploaded bytes
//	{root}/{id[2:4]}/{id}/thumb ...   the other parts
//
// staged under {root}/tmp/ and moved into place by one rename(2) of the
// directory, so an object appears whole or not at all. Every file and
// directory is fsynced before the commit returns. Staging directories left
// by a crash are removed when the store is opened.
type FS struct {
	root string
	tmp  string
	// writable, if set, refuses uploads while the disk is short of space
	// (SetWritable).
	writable func() error
	readOnly bool // OpenFSReadOnly: Delete refuses too
}

var _ Deleting = (*FS)(nil)

const infoFile = "info.json"

// OpenFS opens (creating if needed) the file store under dir.
func OpenFS(dir string) (*FS, error) {
	f := &FS{root: dir, tmp: filepath.Join(dir, "tmp")}
	if err := os.RemoveAll(f.tmp); err != nil {
		return nil, fmt.Errorf("media: clear %s: %w", f.tmp, err)
	}
	if err := os.MkdirAll(f.tmp, 0o750); err != nil {
		return nil, fmt.Errorf("media: create %s: %w", f.tmp, err)
	}
	return f, nil
}

// SetWritable makes Create and Commit ask check first and refuse with its
// error: the daemon passes the store's free-space guard, since the media
// files share its disk. Call it before the FS is used.
func (f *FS) SetWritable(check func() error) { f.writable = check }

// refused is the writable check's error, or nil.
func (f *FS) refused() error {
	if f.writable == nil {
		return nil
	}
	return f.writable()
}

// Root is the directory the store lives in.
func (f *FS) Root() string { return f.root }

func (f *FS) objectDir(id string) string { return filepath.Join(f.root, id[2:4], id) }

// Create stages id under {root}/tmp.
func (f *FS) Create(ctx context.Context, id string) (Staging, error) {
	if !ValidID(id) {
		return nil, fmt.Errorf("media: stage %q: %w", id, ErrNotFound)
	}
	if err := f.refused(); err != nil {
		return nil, fmt.Errorf("media: stage %s: %w", id, err)
	}
	dir, err := os.MkdirTemp(f.tmp, id+".")
	if err != nil {
		return nil, fmt.Errorf("media: stage %s: %w", id, err)
	}
	return &fsStaging{fs: f, id: id, dir: dir}, nil
}

// Stat reads an object's sidecar.
func (f *FS) Stat(ctx context.Context, id string) (Info, error) {
	if !ValidID(id) {
		return Info{}, ErrNotFound
	}
	raw, err := os.ReadFile(filepath.Join(f.objectDir(id), infoFile))
	if errors.Is(err, fs.ErrNotExist) {
		return Info{}, ErrNotFound
	}
	if err != nil {
		return Info{}, fmt.Errorf("media: stat %s: %w", id, err)
	}
	var info Info
	if err := json.Unmarshal(raw, &info); err != nil {
		return Info{}, fmt.Errorf("media: stat %s: %w", id, err)
	}
	return info, nil
}

// Open opens a part of a committed object.
func (f *FS) Open(ctx context.Context, id, part string) (io.ReadSeekCloser, error) {
	if !ValidID(id) || !validPart(part) {
		return nil, ErrNotFound
	}
	file, err := os.Open(filepath.Join(f.objectDir(id), filepath.FromSlash(part)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("media: open %s/%s: %w", id, part, err)
	}
	return file, nil
}

type fsStaging struct {
	fs   *FS
	id   string
	dir  string
	done bool // committed or aborted
}

func (s *fsStaging) Create(part string) (io.WriteCloser, error) {
	if !validPart(part) {
		return nil, fmt.Errorf("media: bad part name %q", part)
	}
	path := filepath.Join(s.dir, filepath.FromSlash(part))
	if strings.Contains(part, "/") {
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			return nil, fmt.Errorf("media: stage %s/%s: %w", s.id, part, err)
		}
	}
	file, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return nil, fmt.Errorf("media: stage %s/%s: %w", s.id, part, err)
	}
	return syncCloser{file}, nil
}

func (s *fsStaging) Open(part string) (io.ReadSeekCloser, error) {
	if !validPart(part) {
		return nil, fmt.Errorf("media: bad part name %q", part)
	}
	return os.Open(filepath.Join(s.dir, filepath.FromSlash(part)))
}

func (s *fsStaging) Commit(ctx context.Context, info Info) error {
	if s.done {
		return errors.New("media: commit after commit or abort")
	}
	if err := s.fs.refused(); err != nil {
		return fmt.Errorf("media: commit %s: %w", s.id, err)
	}
	raw, err := json.Marshal(info)
	if err != nil {
		return err
	}
	if err := writeFileSync(filepath.Join(s.dir, infoFile), raw); err != nil {
		return fmt.Errorf("media: commit %s: %w", s.id, err)
	}
	if err := syncDir(filepath.Join(s.dir, "hls")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("media: commit %s: %w", s.id, err)
	}
	if err := syncDir(s.dir); err != nil {
		return fmt.Errorf("media: commit %s: %w", s.id, err)
	}
	final := s.fs.objectDir(s.id)
	shard := filepath.Dir(final)
	if _, err := os.Stat(shard); errors.Is(err, fs.ErrNotExist) {
		if err := os.Mkdir(shard, 0o750); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("media: commit %s: %w", s.id, err)
		}
		if err := syncDir(s.fs.root); err != nil {
			return fmt.Errorf("media: commit %s: %w", s.id, err)
		}
	}
	if err := os.Rename(s.dir, final); err != nil {
		return fmt.Errorf("media: commit %s: %w", s.id, err)
	}
	s.done = true
	// The rename is the commit; make it survive a crash.
	if err := syncDir(shard); err != nil {
		return fmt.Errorf("media: commit %s: %w", s.id, err)
	}
	return nil
}

func (s *fsStaging) Abort() error {
	if s.done {
		return nil
	}
	s.done = true
	return os.RemoveAll(s.dir)
}

// syncCloser fsyncs a file before closing it.
type syncCloser struct{ *os.File }

func (f syncCloser) Close() error {
	if err := f.File.Sync(); err != nil {
		_ = f.File.Close()
		return err
	}
	return f.File.Close()
}

func writeFileSync(path string, data []byte) error {
	file, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return err
	}
	if _, err := file.Write(data); err != nil {
		_ = file.Close()
		return err
	}
	return syncCloser{file}.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// OpenFSReadOnly opens the file store under dir for reading only (a
// migration's source): unlike OpenFS it changes nothing, and Create
// refuses.
func OpenFSReadOnly(dir string) *FS {
	return &FS{root: dir, tmp: filepath.Join(dir, "tmp"), writable: func() error { return errReadOnly }, readOnly: true}
}

var errReadOnly = errors.New("media store opened read-only")

// Objects lists the IDs of the committed objects, in no set order.
func (f *FS) Objects() ([]string, error) {
	shards, err := os.ReadDir(f.root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("media: list %s: %w", f.root, err)
	}
	var ids []string
	for _, sh := range shards {
		if !sh.IsDir() || sh.Name() == "tmp" {
			continue
		}
		objs, err := os.ReadDir(filepath.Join(f.root, sh.Name()))
		if err != nil {
			return nil, fmt.Errorf("media: list %s: %w", sh.Name(), err)
		}
		for _, o := range objs {
			if o.IsDir() && ValidID(o.Name()) && o.Name()[2:4] == sh.Name() {
				ids = append(ids, o.Name())
			}
		}
	}
	return ids, nil
}

// Parts lists the part names of committed object id (PartData, "hls/..."),
// in name order.
func (f *FS) Parts(id string) ([]string, error) {
	if !ValidID(id) {
		return nil, ErrNotFound
	}
	dir := f.objectDir(id)
	var parts []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		if part := filepath.ToSlash(rel); validPart(part) {
			parts = append(parts, part)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("media: parts of %s: %w", id, err)
	}
	return parts, nil
}

// Older lists the objects created before before (unix ms) in ID order,
// reading each candidate's sidecar: IDs are random, so age is known only
// from Info.Created. An ID's order is its shard's and then its own.
func (f *FS) Older(ctx context.Context, before int64, after string, limit int) ([]string, error) {
	shards, err := os.ReadDir(f.root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("media: list %s: %w", f.root, err)
	}
	var ids []string
	for _, sh := range shards { // ReadDir sorts by name
		name := sh.Name()
		if !sh.IsDir() || name == "tmp" || len(name) != 2 || len(after) >= 4 && name < after[2:4] {
			continue
		}
		objs, err := os.ReadDir(filepath.Join(f.root, name))
		if err != nil {
			return nil, fmt.Errorf("media: list %s: %w", name, err)
		}
		for _, o := range objs {
			id := o.Name()
			if !o.IsDir() || !ValidID(id) || id[2:4] != name || id <= after {
				continue
			}
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			info, err := f.Stat(ctx, id)
			if errors.Is(err, ErrNotFound) {
				continue // deleted since the listing
			}
			if err != nil {
				return nil, err
			}
			if info.Created < before {
				ids = append(ids, id)
				if len(ids) == limit {
					return ids, nil
				}
			}
		}
	}
	return ids, nil
}

// Delete renames the object's directory into {root}/tmp, which takes it
// away from readers in one step (a reader with a part open reads on), and
// then removes it there. A crash in between leaves it in tmp, which
// OpenFS clears. Deleting needs no free space, so the writable check does
// not apply; a read-only store refuses.
func (f *FS) Delete(ctx context.Context, id string) error {
	if !ValidID(id) {
		return ErrNotFound
	}
	if f.readOnly {
		return fmt.Errorf("media: delete %s: %w", id, errReadOnly)
	}
	dir := f.objectDir(id)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	grave, err := os.MkdirTemp(f.tmp, id+".deleted.")
	if err != nil {
		return fmt.Errorf("media: delete %s: %w", id, err)
	}
	if err := os.Rename(dir, filepath.Join(grave, id)); err != nil {
		_ = os.Remove(grave)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // another deleter was first
		}
		return fmt.Errorf("media: delete %s: %w", id, err)
	}
	// The rename is the delete; make it survive a crash.
	if err := syncDir(filepath.Dir(dir)); err != nil {
		return fmt.Errorf("media: delete %s: %w", id, err)
	}
	if err := os.RemoveAll(grave); err != nil {
		return fmt.Errorf("media: delete %s: %w", id, err)
	}
	return nil
}
