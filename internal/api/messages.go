package api

import (
	"encoding/json"
	"github.com/klauspost/compress/gzip"
	"net/http"
	"strconv"

	"github.com/imqtt/imqtt/chat"
	"github.com/imqtt/imqtt/internal/apidocs"
	imsync "github.com/imqtt/imqtt/sync"
	"github.com/imqtt/imqtt/wire"
)

func (a *API) send(w http.ResponseWriter, r *http.Request, c caller) {
	var req wire.Send
	if !a.decode(w, r, &req) {
		return
	}
	ack, err := a.cfg.Chat.Send(r.Context(), chat.Sender{User: c.user, Device: c.device}, req)
	if err != nil {
		a.chatError(w, "send", err)
		return
	}
	writeJSON(w, http.StatusOK, ack)
}

// sync answers one batch; a client calls again from upto while more is set.
func (a *API) sync(w http.ResponseWriter, r *http.Request, c caller) {
	q := r.URL.Query()
	if q.Has("heads") { // where each of the caller's groups is (wire.Heads)
		heads, err := a.cfg.Chat.GroupHeads(r.Context(), c.user)
		if err != nil {
			a.chatError(w, "group heads", err)
			return
		}
		writeMaybeGzip(w, r, heads)
		return
	}
	req := wire.SyncRequest{Epoch: q.Get("epoch"), Group: q.Get("group")}
	var err error
	if req.Since, err = uintParam(q.Get("since")); err != nil {
		writeError(w, http.StatusBadRequest, wire.CodeBadRequest, "since must be a version number")
		return
	}
	limit, err := uintParam(q.Get("limit"))
	if err != nil {
		writeError(w, http.StatusBadRequest, wire.CodeBadRequest, "limit must be a number")
		return
	}
	req.Limit = int(min(limit, 1<<20))
	if e := imsync.CheckRequest(req); e != nil {
		writeError(w, wire.HTTPStatus(e.Code), e.Code, e.Message)
		return
	}
	var first *wire.Sync
	err = a.cfg.Chat.Sync(r.Context(), c.user, req, func(b wire.Sync) error {
		if first == nil {
			first = &b
			return nil
		}
		// One HTTP reply carries one batch: fold later ones in while it is small.
		first.Items = append(first.Items, b.Items...)
		first.Upto, first.More = b.Upto, b.More
		return nil
	})
	if err != nil {
		a.chatError(w, "sync", err)
		return
	}
	a.cfg.Metrics.SyncBatches.WithLabelValues("http").Inc()
	if first == nil { // the core emitted no batch: JSON null, as always
		writeMaybeGzip(w, r, first)
		return
	}
	enc := imsync.Encoding{Line: true} // as json.Encoder ends a body
	gz := apidocs.AcceptsGzip(r)
	if gz {
		enc.Compress = "gzip"
	}
	body, err := imsync.Encode(*first, enc) // the MQTT uplink's encoder
	if err != nil {
		a.log.Error("sync: encode", "user", c.user, "err", err)
		writeError(w, http.StatusInternalServerError, wire.CodeInternal, "sync: the batch could not be encoded")
		return
	}
	jsonHeaders(w, gz)
	_, _ = w.Write(body)
}

func (a *API) conversations(w http.ResponseWriter, r *http.Request, c caller) {
	out, err := a.cfg.Chat.Conversations(r.Context(), c.user)
	if err != nil {
		a.chatError(w, "conversations", err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) history(w http.ResponseWriter, r *http.Request, c caller) {
	peer := r.PathValue("peer")
	if !wire.ValidUser(peer) {
		writeError(w, http.StatusBadRequest, wire.CodeBadRequest, "peer must be a user ID")
		return
	}
	q := r.URL.Query()
	before, err := uintParam(q.Get("before"))
	if err != nil || before > 1<<63-1 {
		writeError(w, http.StatusBadRequest, wire.CodeBadRequest, "before must be a message id")
		return
	}
	limit, err := uintParam(q.Get("limit"))
	if err != nil {
		writeError(w, http.StatusBadRequest, wire.CodeBadRequest, "limit must be a number")
		return
	}
	out, err := a.cfg.Chat.History(r.Context(), c.user, peer, int64(before), int(min(limit, 1000)))
	if err != nil {
		a.chatError(w, "history", err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) read(w http.ResponseWriter, r *http.Request, c caller) {
	var req wire.Read
	if !a.decode(w, r, &req) {
		return
	}
	out, err := a.cfg.Chat.Read(r.Context(), c.user, req)
	if err != nil {
		a.chatError(w, "read", err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func uintParam(s string) (uint64, error) {
	if s == "" {
		return 0, nil
	}
	return strconv.ParseUint(s, 10, 64)
}

// jsonHeaders sets the headers of a JSON reply that may be compressed,
// gzip-compressed if gz.
func jsonHeaders(w http.ResponseWriter, gz bool) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Add("Vary", "Accept-Encoding")
	if gz {
		w.Header().Set("Content-Encoding", "gzip")
	}
}

// writeMaybeGzip writes v as JSON, gzip-compressed if the client accepts it.
func writeMaybeGzip(w http.ResponseWriter, r *http.Request, v any) {
	gz := apidocs.AcceptsGzip(r)
	jsonHeaders(w, gz)
	if !gz {
		_ = json.NewEncoder(w).Encode(v)
		return
	}
	zw, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
	_ = json.NewEncoder(zw).Encode(v)
	_ = zw.Close()
}
