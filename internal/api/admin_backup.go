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
// second is 409. A client that goes away ends the backup (its context), and
// so does one that stops reading (stallWriter).
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
	cw := &stallWriter{w: w, rc: http.NewResponseController(w), window: a.cfg.UploadWindow,
		quota: max(1, int(float64(a.cfg.UploadMinRate)*a.cfg.UploadWindow.Seconds()))}
	defer func() { _ = cw.rc.SetWriteDeadline(time.Time{}) }() // the connection may serve another request
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

// stallWriter counts the bytes written through it and cuts a client that
// stops reading, which would otherwise hold the backup (its checkpoint's
// disk space, and the one backup slot) for as long as it likes: as an
// upload must bring UploadMinRate×UploadWindow bytes in every UploadWindow
// (deadline.go), a backup's client must take them, each quota's worth
// written under a deadline a window away.
type stallWriter struct {
	w      io.Writer
	rc     *http.ResponseController
	window time.Duration
	quota  int
	n      int64
}

func (s *stallWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), s.quota)]
		_ = s.rc.SetWriteDeadline(time.Now().Add(s.window)) // fails only without deadlines (tests)
		k, err := s.w.Write(chunk)
		n += k
		s.n += int64(k)
		if err != nil {
			return n, err
		}
		p = p[k:]
	}
	return n, nil
}
