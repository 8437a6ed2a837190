package api

import (
	"context"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/imqtt/imqtt/wire"
)

// BackupFunc streams a backup of this node's whole state to w
// (internal/backup's Write on the embedded store). An error once bytes are
// written leaves the stream truncated: the caller cuts the connection.
type BackupFunc func(ctx context.Context, w io.Writer) error

// backupElsewhere is the 501 of a node whose store is MongoDB's.
const backupElsewhere = "this node's store is MongoDB (scale-out): back it up with MongoDB's own tools, " +
	"mongodump --oplog, or a snapshot of a replica-set member's volume; see docs/operations.md#backup-and-restore"

// adminBackup is GET /v1/admin/backup: a tar of the node's state, streamed
// (docs/operations.md "Backup and restore"). One backup runs at a time; a
// second is 409. A client that goes away ends the backup (its context).
func (a *API) adminBackup(w http.ResponseWriter, r *http.Request) {
	if !onlyParams(w, r) {
		return
	}
	c := a.adm.cfg
	if c.Backup == nil {
		writeError(w, http.StatusNotImplemented, wire.CodeInternal, backupElsewhere)
		return
	}
	if !a.adm.backingUp.CompareAndSwap(false, true) {
		writeError(w, http.StatusConflict, wire.CodeBusy, "a backup of this node is already running: try again once it ends")
		return
	}
	defer a.adm.backingUp.Store(false)
	start := time.Now()
	name := "imqtt-" + fileSafe(c.Node) + "-" + start.UTC().Format("20060102T150405Z") + ".tar"
	w.Header().Set("Content-Type", "application/x-tar")
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name}))
	cw := &countWriter{w: w}
	err := c.Backup(r.Context(), cw)
	if err == nil {
		a.log.Info("admin backup", "node", c.Node, "bytes", cw.n, "took", time.Since(start))
		return
	}
	a.log.Warn("admin backup failed", "node", c.Node, "bytes", cw.n, "err", err)
	if cw.n == 0 {
		w.Header().Del("Content-Disposition")
		writeError(w, http.StatusServiceUnavailable, wire.CodeUnavailable, "backup failed: "+err.Error())
		return
	}
	// Cut the connection rather than end the body cleanly, so that the
	// client sees the stream broke (the missing manifest says so too).
	panic(http.ErrAbortHandler)
}

// fileSafe keeps the characters of s that are safe in a file name.
func fileSafe(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9', r == '-', r == '.', r == '_':
			return r
		}
		return '_'
	}, s)
}

// countWriter counts the bytes written through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
