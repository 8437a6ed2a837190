// Package backup writes and restores a backup of an embedded imqttd's
// whole state (docs/operations.md "Backup and restore"): a tar stream of
//
//	pebble/...          a checkpoint of the store (store/pebble Checkpoint)
//	media/..., admin/bans.json, ...
//	                    everything else the data directory holds, but the
//	                    live pebble/, media-cache/, media/tmp/ (uploads in
//	                    progress), pebble-backups/ (the copies a format
//	                    upgrade keeps) and backup scratch directories
//	imqtt-backup.json   the manifest, LAST: what was backed up, and each
//	                    file's size and SHA-256
//
// A stream without the manifest at its end is truncated; Restore refuses
// it, and anything that does not match the manifest, leaving nothing
// behind.
package backup

import (
	"archive/tar"
	"context"
	"crypto/rand"
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
	"time"

	"golang.org/x/time/rate"

	"github.com/imqtt/imqtt/store/pebble"
)

// Version is the backup format this code writes; Restore refuses a later one.
const Version = 1

// The names in the tar.
const (
	ManifestName = "imqtt-backup.json"
	StoreDir     = "pebble"
)

// scratchPrefix starts the name of the scratch directory a backup's
// checkpoint is taken in, inside the data directory.
const scratchPrefix = ".backup-"

// Errors.
var (
	// ErrCorrupt: the stream is truncated, a file does not match the
	// manifest, or an entry is not one a backup holds.
	ErrCorrupt = errors.New("backup corrupt")
	// ErrNotEmpty: Restore's target directory holds something.
	ErrNotEmpty = errors.New("target directory not empty")
)

// Checkpointer takes a consistent copy of the store into a directory that
// does not exist yet; *pebble.Store implements it.
type Checkpointer interface {
	Checkpoint(ctx context.Context, dir string) error
}

// Source is what Write backs up.
type Source struct {
	DataDir string // --data-dir; the store lives in DataDir/pebble
	Store   Checkpointer
	Node    string // the node's ID, for the manifest
	// Rate bounds the stream in bytes a second (0: no bound), so that a
	// backup leaves the disk to the sends it runs beside.
	Rate int64
}

// File is one file of a backup.
type File struct {
	Path   string `json:"path"` // slash-separated, relative to the data directory
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"` // hex
}

// Manifest describes a backup; it is the tar's last entry.
type Manifest struct {
	Version int       `json:"version"` // the backup format, Version
	Node    string    `json:"node"`
	Time    time.Time `json:"time"` // when the checkpoint was taken
	pebble.Summary
	Files []File `json:"files"`
	Bytes int64  `json:"bytes"` // the files' sizes summed
}

// Write streams a backup of src to w and returns its manifest. The store's
// checkpoint is taken first, in a scratch directory next to the store
// (removed when Write returns, however it ends; a stale one left by a
// crash is removed too), then the other files are read: a media object
// appears whole, by one rename, so every one the checkpoint refers to is
// there. Write does not close w. One Write at a time per data directory.
func Write(ctx context.Context, w io.Writer, src Source) (Manifest, error) {
	if err := Clean(src.DataDir); err != nil {
		return Manifest{}, err
	}
	scratch := filepath.Join(src.DataDir, scratchPrefix+rand.Text())
	if err := os.Mkdir(scratch, 0o700); err != nil {
		return Manifest{}, fmt.Errorf("backup: create scratch directory: %w", err)
	}
	defer os.RemoveAll(scratch)
	cp := filepath.Join(scratch, StoreDir)
	m := Manifest{Version: Version, Node: src.Node, Time: time.Now().UTC()}
	if err := src.Store.Checkpoint(ctx, cp); err != nil {
		return Manifest{}, fmt.Errorf("backup: %w", err)
	}
	sum, err := pebble.Summarize(cp)
	if err != nil {
		return Manifest{}, fmt.Errorf("backup: %w", err)
	}
	m.Summary = sum

	out := w
	if src.Rate > 0 {
		out = &paced{w: w, ctx: ctx, lim: rate.NewLimiter(rate.Limit(src.Rate), int(min(src.Rate, 1<<20)))}
	}
	tw := tar.NewWriter(&ctxWriter{w: out, ctx: ctx})
	buf := make([]byte, 256<<10)
	add := func(rel, full string) error {
		f, err := addFile(tw, buf, rel, full)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // gone since the walk saw it (a bans file's temporary)
		}
		if err != nil {
			return err
		}
		m.Files = append(m.Files, f)
		m.Bytes += f.Size
		return nil
	}
	if err := walk(cp, StoreDir, nil, add); err != nil {
		return Manifest{}, err
	}
	skip := func(rel string) bool {
		return rel == StoreDir || rel == "media-cache" || rel == "media/tmp" || rel == ManifestName ||
			rel == "pebble-backups" || rel == "imqttd.pid" || strings.HasPrefix(rel, scratchPrefix) // imqttd.pid: the running node's lock (daemon.PIDFile)
	}
	if err := walk(src.DataDir, "", skip, add); err != nil {
		return Manifest{}, err
	}
	raw, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return Manifest{}, err
	}
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: ManifestName, Size: int64(len(raw)), Mode: 0o600, ModTime: m.Time.Truncate(time.Second)}
	if err := tw.WriteHeader(hdr); err != nil {
		return Manifest{}, fmt.Errorf("backup: write manifest: %w", err)
	}
	if _, err := tw.Write(raw); err != nil {
		return Manifest{}, fmt.Errorf("backup: write manifest: %w", err)
	}
	if err := tw.Close(); err != nil {
		return Manifest{}, fmt.Errorf("backup: %w", err)
	}
	return m, nil
}

// Clean removes the scratch directories of backups a crash interrupted.
// Call it when no backup runs: at start, and before each backup.
func Clean(dataDir string) error {
	stale, err := filepath.Glob(filepath.Join(dataDir, scratchPrefix+"*"))
	if err != nil {
		return err
	}
	for _, d := range stale {
		if err := os.RemoveAll(d); err != nil {
			return fmt.Errorf("backup: remove stale %s: %w", d, err)
		}
	}
	return nil
}

// walk calls add for each regular file under root, in name order, with its
// slash-separated name under prefix; skip (if set) prunes names.
func walk(root, prefix string, skip func(rel string) bool, add func(rel, full string) error) error {
	return filepath.WalkDir(root, func(full string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && full != root {
			return nil // removed during the walk
		}
		if err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		rel, err := filepath.Rel(root, full)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		rel = path.Join(prefix, filepath.ToSlash(rel))
		if skip != nil && skip(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil // directories are implied; links and devices are not backed up
		}
		return add(rel, full)
	})
}

// addFile writes one file to tw, hashing it as it goes, through buf
// (large, so that a backup costs few writes to the connection).
func addFile(tw *tar.Writer, buf []byte, rel, full string) (File, error) {
	f, err := os.Open(full)
	if err != nil {
		return File{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return File{}, fmt.Errorf("backup: %w", err)
	}
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: rel, Size: st.Size(), Mode: int64(st.Mode().Perm()),
		ModTime: st.ModTime().Truncate(time.Second)}
	if err := tw.WriteHeader(hdr); err != nil {
		return File{}, fmt.Errorf("backup: %s: %w", rel, err)
	}
	h := sha256.New()
	// A file is copied as long as it was when opened: the files backed up
	// are written once (sstables, media) or replaced by a rename (bans).
	n, err := io.CopyBuffer(io.MultiWriter(tw, h), io.LimitReader(f, st.Size()), buf)
	if err == nil && n < st.Size() {
		err = io.ErrUnexpectedEOF // shrunk since opened
	}
	if err != nil {
		return File{}, fmt.Errorf("backup: %s: %w", rel, err)
	}
	return File{Path: rel, Size: st.Size(), SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// ctxWriter stops a stream once its context is done.
type ctxWriter struct {
	w   io.Writer
	ctx context.Context
}

func (c *ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// paced writes no faster than its limiter allows.
type paced struct {
	w   io.Writer
	ctx context.Context
	lim *rate.Limiter
}

func (p *paced) Write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		chunk := b[:min(len(b), p.lim.Burst())]
		if err := p.lim.WaitN(p.ctx, len(chunk)); err != nil {
			return n, err
		}
		k, err := p.w.Write(chunk)
		n += k
		if err != nil {
			return n, err
		}
		b = b[k:]
	}
	return n, nil
}
