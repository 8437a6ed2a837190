package api

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"syscall"
	"time"

	"github.com/imqtt/imqtt/internal/media"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/wire"
)

// mediaReply answers an upload (docs/http.md: id, size, type; and more).
type mediaReply struct {
	ID     string `json:"id"`
	Size   int64  `json:"size"`
	Type   string `json:"type"`
	SHA256 string `json:"sha256"`
	Name   string `json:"name,omitempty"`
	Width  int    `json:"width,omitempty"`
	Height int    `json:"height,omitempty"`
	Thumb  bool   `json:"thumb,omitempty"`
	HLS    bool   `json:"hls,omitempty"` // private video: /v1/media/{id}/hls/index.m3u8
}

// maxFormOverhead bounds the multipart bytes around and before the file.
const maxFormOverhead = 1 << 20

func (a *API) mediaRoutes() {
	a.mux.HandleFunc("POST /v1/media", a.auth(a.uploadMedia))
	a.mux.HandleFunc("GET /v1/media/{id}", a.auth(a.getMedia))
	a.mux.HandleFunc("GET /v1/media/{id}/thumb", a.auth(a.getMedia))
	a.mux.HandleFunc("GET /v1/media/{id}/hls/{name}", a.auth(a.getHLS))
}

// uploadMedia: POST /v1/media, the multipart field "file" or the raw body
// with its Content-Type; ?private=1 for a video served only as encrypted
// HLS; ?name= names a raw body.
func (a *API) uploadMedia(w http.ResponseWriter, r *http.Request, c caller) {
	m := a.cfg.Media
	q := r.URL.Query()
	up := media.Upload{Owner: c.user, Private: q.Get("private") == "1" || q.Get("private") == "true", Length: -1}
	r.Body = http.MaxBytesReader(w, r.Body, m.MaxLimit()+maxFormOverhead)
	var body io.Reader = r.Body
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct == "multipart/form-data" {
		mr, err := r.MultipartReader()
		if err != nil {
			writeError(w, http.StatusBadRequest, wire.CodeBadRequest, "malformed multipart body: "+err.Error())
			return
		}
		skipped := int64(0)
		for {
			part, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				writeError(w, http.StatusBadRequest, wire.CodeBadRequest, `no multipart field "file"`)
				return
			}
			if err != nil && slowBody(r) {
				a.bodyTimedOut(w)
				return
			}
			if err != nil {
				writeError(w, http.StatusBadRequest, wire.CodeBadRequest, "malformed multipart body: "+err.Error())
				return
			}
			if part.FormName() == "file" {
				up.Declared, body = part.Header.Get("Content-Type"), part
				// The name as sent (FileName would drop a path, hiding the trick).
				if _, params, err := mime.ParseMediaType(part.Header.Get("Content-Disposition")); err == nil {
					up.Name = params["filename"]
				}
				break
			}
			n, err := io.Copy(io.Discard, io.LimitReader(part, maxFormOverhead-skipped+1))
			if skipped += n; skipped > maxFormOverhead {
				writeError(w, http.StatusRequestEntityTooLarge, wire.CodeTooLarge, "form fields before \"file\" over 1 MiB")
				return
			}
			if err != nil && slowBody(r) {
				a.bodyTimedOut(w)
				return
			}
			if err != nil {
				writeError(w, http.StatusBadRequest, wire.CodeBadRequest, "upload cut off: "+err.Error())
				return
			}
		}
	} else {
		up.Declared, up.Name, up.Length = r.Header.Get("Content-Type"), q.Get("name"), r.ContentLength
	}
	info, err := m.Put(r.Context(), up, body)
	if err != nil && slowBody(r) {
		a.bodyTimedOut(w)
		return
	}
	if err != nil {
		a.mediaError(w, "upload", err)
		return
	}
	writeJSON(w, http.StatusCreated, mediaReply{ID: info.ID, Size: info.Size, Type: info.Type, SHA256: info.SHA256,
		Name: info.Name, Width: info.Width, Height: info.Height, Thumb: info.Thumb != nil, HLS: info.HLS})
}

// getMedia: GET /v1/media/{id} and /v1/media/{id}/thumb, with Range,
// If-Range, If-None-Match and If-Modified-Since (http.ServeContent). An
// object never changes, so the ETag is its SHA-256 and caches may keep it.
func (a *API) getMedia(w http.ResponseWriter, r *http.Request, c caller) {
	id, part := r.PathValue("id"), media.PartData
	if r.Pattern == "GET /v1/media/{id}/thumb" {
		part = media.PartThumb
	}
	if !media.ValidID(id) {
		writeError(w, http.StatusNotFound, wire.CodeNotFound, "no such media")
		return
	}
	info, f, err := a.cfg.Media.Open(r.Context(), c.user, id, part)
	if err != nil {
		a.mediaError(w, "download", err)
		return
	}
	defer f.Close()
	typ, sum := info.Type, info.SHA256
	if part == media.PartThumb {
		typ, sum = info.Thumb.Type, info.Thumb.SHA256
	}
	h := w.Header()
	h.Set("Content-Type", typ)
	h.Set("ETag", `"`+sum+`"`)
	h.Set("Cache-Control", "private, max-age=31536000, immutable")
	disposition := "attachment"
	if c := media.ClassOf(typ); c == media.ClassImage || c == media.ClassAudio || c == media.ClassVideo {
		disposition = "inline"
	}
	if info.Name != "" && part == media.PartData {
		if d := mime.FormatMediaType(disposition, map[string]string{"filename": info.Name}); d != "" {
			disposition = d
		}
	}
	h.Set("Content-Disposition", disposition)
	secureHeaders(h)
	http.ServeContent(w, r, "", time.UnixMilli(info.Created), f)
}

// getHLS: GET /v1/media/{id}/hls/{name}: the playlist, the segments and the
// key of a private video, to allowed users only. The key is never cached.
func (a *API) getHLS(w http.ResponseWriter, r *http.Request, c caller) {
	id, name := r.PathValue("id"), r.PathValue("name")
	if !media.ValidID(id) || !media.ValidHLSName(name) {
		writeError(w, http.StatusNotFound, wire.CodeNotFound, "no such media")
		return
	}
	info, f, err := a.cfg.Media.Open(r.Context(), c.user, id, media.PartHLS+name)
	if err != nil {
		a.mediaError(w, "hls", err)
		return
	}
	defer f.Close()
	h := w.Header()
	switch name {
	case media.HLSKey:
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Cache-Control", "no-store")
	case media.HLSPlaylist:
		h.Set("Content-Type", "application/vnd.apple.mpegurl")
		h.Set("Cache-Control", "private, max-age=31536000, immutable")
	default:
		h.Set("Content-Type", "video/mp2t")
		h.Set("Cache-Control", "private, max-age=31536000, immutable")
	}
	secureHeaders(h)
	http.ServeContent(w, r, "", time.UnixMilli(info.Created), f)
}

// secureHeaders keep a browser from running anything uploaded: the type is
// the sniffed one and must not be sniffed again, and nothing may execute.
func secureHeaders(h http.Header) {
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
}

// mediaError answers an error of the media service.
func (a *API) mediaError(w http.ResponseWriter, what string, err error) {
	var tooBig *http.MaxBytesError
	switch {
	case errors.Is(err, media.ErrNotFound):
		writeError(w, http.StatusNotFound, wire.CodeNotFound, "no such media")
	case errors.Is(err, media.ErrTooLarge), errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, wire.CodeTooLarge, err.Error())
	case errors.Is(err, media.ErrTypeMismatch):
		writeError(w, wire.HTTPStatus(wire.CodeTypeMismatch), wire.CodeTypeMismatch, err.Error())
	case errors.Is(err, media.ErrEmpty), errors.Is(err, media.ErrTruncated), errors.Is(err, media.ErrBadName),
		errors.Is(err, media.ErrNotVideo):
		writeError(w, http.StatusBadRequest, wire.CodeBadRequest, err.Error())
	case errors.Is(err, media.ErrNoHLS):
		writeError(w, wire.HTTPStatus(wire.CodeHLSUnavailable), wire.CodeHLSUnavailable, err.Error()+"; upload without ?private=1")
	case errors.Is(err, media.ErrBadVideo):
		writeError(w, wire.HTTPStatus(wire.CodeBadMedia), wire.CodeBadMedia, err.Error())
	case errors.Is(err, store.ErrNoSpace), errors.Is(err, store.ErrFailed), errors.Is(err, syscall.ENOSPC):
		writeError(w, http.StatusServiceUnavailable, wire.CodeUnavailable, what+": the server is short of disk space; try again later")
	default:
		a.log.Error(what, "err", err)
		writeError(w, http.StatusInternalServerError, wire.CodeInternal, what+" failed; try again")
	}
}
