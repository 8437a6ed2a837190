package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// MediaInfo describes a stored media object (the reply of POST /v1/media).
type MediaInfo struct {
	ID     string `json:"id"`
	Size   int64  `json:"size"`
	Type   string `json:"type"` // sniffed by the server from the bytes
	SHA256 string `json:"sha256"`
	Name   string `json:"name,omitempty"`
	Width  int    `json:"width,omitempty"`
	Height int    `json:"height,omitempty"`
	Thumb  bool   `json:"thumb,omitempty"` // GET /v1/media/{id}/thumb has a thumbnail
	HLS    bool   `json:"hls,omitempty"`   // a private video: /v1/media/{id}/hls/index.m3u8
}

// Kind is the message type for the media: image, audio, video or file.
func (m MediaInfo) Kind() string {
	major, _, _ := strings.Cut(m.Type, "/")
	switch major {
	case "image", "audio", "video":
		return major
	}
	return "file"
}

// mediaHTTPClient has no overall timeout: a large upload or download takes
// as long as it takes, bounded by the caller's context.
var mediaHTTPClient = &http.Client{}

// UploadOptions adjust an upload.
type UploadOptions struct {
	Name        string // the file name to keep with it (a plain name)
	ContentType string // "" lets the server sniff the type; a wrong one is refused (415)
	Private     bool   // a video served only as AES-128 encrypted HLS (needs ffmpeg on the server)
}

// Upload streams r to POST /v1/media as the raw body. size is its length,
// or -1 if unknown (then it is sent chunked, and an oversized upload is
// refused only once the limit is crossed).
func (h *HTTP) Upload(ctx context.Context, r io.Reader, size int64, o UploadOptions) (MediaInfo, error) {
	q := url.Values{}
	if o.Name != "" {
		q.Set("name", o.Name)
	}
	if o.Private {
		q.Set("private", "1")
	}
	u, err := h.url("/v1/media", q)
	if err != nil {
		return MediaInfo{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, r)
	if err != nil {
		return MediaInfo{}, err
	}
	req.ContentLength = size
	if size == 0 {
		req.Body = http.NoBody
	}
	if o.ContentType != "" {
		req.Header.Set("Content-Type", o.ContentType)
	}
	var info MediaInfo
	if err := h.media(req, func(resp *http.Response) error {
		return json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&info)
	}); err != nil {
		return MediaInfo{}, fmt.Errorf("upload %s: %w", o.Name, err)
	}
	return info, nil
}

// UploadFile uploads the file at path under its base name.
func (h *HTTP) UploadFile(ctx context.Context, path string, o UploadOptions) (MediaInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return MediaInfo{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return MediaInfo{}, err
	}
	if o.Name == "" {
		o.Name = filepath.Base(path)
	}
	return h.Upload(ctx, f, st.Size(), o)
}

// Download writes media id (GET /v1/media/{id}) to w and checks its bytes
// against the SHA-256 the server gives as the ETag. The MediaInfo it
// returns has the ID, Size, Type and SHA256.
func (h *HTTP) Download(ctx context.Context, id string, w io.Writer) (MediaInfo, error) {
	return h.download(ctx, id, "", w)
}

// DownloadThumb writes the thumbnail of media id to w.
func (h *HTTP) DownloadThumb(ctx context.Context, id string, w io.Writer) (MediaInfo, error) {
	return h.download(ctx, id, "/thumb", w)
}

func (h *HTTP) download(ctx context.Context, id, suffix string, w io.Writer) (MediaInfo, error) {
	u, err := h.url("/v1/media/"+url.PathEscape(id)+suffix, nil)
	if err != nil {
		return MediaInfo{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return MediaInfo{}, err
	}
	info := MediaInfo{ID: id}
	err = h.media(req, func(resp *http.Response) error {
		info.Type = resp.Header.Get("Content-Type")
		info.SHA256 = strings.Trim(resp.Header.Get("ETag"), `"`)
		sum := sha256.New()
		n, err := io.Copy(io.MultiWriter(w, sum), resp.Body)
		info.Size = n
		if err != nil {
			return err
		}
		if resp.ContentLength >= 0 && n != resp.ContentLength {
			return fmt.Errorf("got %d of %d bytes", n, resp.ContentLength)
		}
		if got := hex.EncodeToString(sum.Sum(nil)); info.SHA256 != "" && got != info.SHA256 {
			return fmt.Errorf("sha256 %s, the server says %s", got, info.SHA256)
		}
		return nil
	})
	if err != nil {
		return MediaInfo{}, fmt.Errorf("download %s%s: %w", id, suffix, err)
	}
	return info, nil
}

// url builds the address of path with query q.
func (h *HTTP) url(path string, q url.Values) (string, error) {
	if h.Server == "" {
		return "", errors.New("no server URL")
	}
	u := strings.TrimRight(h.Server, "/") + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u, nil
}

// media performs a streaming request: ok reads a successful reply; an
// error status becomes a *wire.Error.
func (h *HTTP) media(req *http.Request, ok func(*http.Response) error) error {
	if h.Token != "" {
		req.Header.Set("Authorization", "Bearer "+h.Token)
	}
	hc := h.Client
	if hc == nil {
		hc = mediaHTTPClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return statusError(resp.StatusCode, raw)
	}
	return ok(resp)
}
