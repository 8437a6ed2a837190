package api

import (
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/imqtt/imqtt/internal/deliver"
	"github.com/imqtt/imqtt/wire"
)

// MaxNoticeText bounds a notice's text in bytes.
const MaxNoticeText = 4096

type noticeRequest struct {
	Text string `json:"text"`
	User string `json:"user"` // empty: every user connected to this node
}

// adminNotice sends a notice (wire.Notice) to one user's inbox, wherever
// its devices are, or to the inbox of every connected user: those of this
// node, whom it counts, and those of the other nodes (one delivery per user
// reaches all of the user's devices).
func (a *API) adminNotice(w http.ResponseWriter, r *http.Request) {
	if !onlyParams(w, r) {
		return
	}
	var req noticeRequest
	if !a.decodeStrict(w, r, &req, false) {
		return
	}
	switch {
	case strings.TrimSpace(req.Text) == "" || len(req.Text) > MaxNoticeText:
		writeError(w, http.StatusBadRequest, wire.CodeBadRequest, "text is required, at most 4096 bytes")
		return
	case req.User != "" && !wire.ValidUser(req.User):
		writeError(w, http.StatusBadRequest, wire.CodeBadRequest, "user must be a user ID: 1 to 64 of A-Z a-z 0-9 _ . -, no leading dot")
		return
	}
	req.User, _ = wire.NormUser(req.User) // "" stays ""
	ev := wire.Notice{Kind: wire.KindNotice, Text: req.Text, TS: time.Now().UnixMilli()}
	sent := 0
	if req.User != "" {
		if a.adm.cfg.Sender.Send(deliver.User(req.User), ev) == nil { // the path logs a failure
			sent = 1
		}
	} else {
		var users []string
		for _, ci := range a.adm.cfg.Broker.ClientList() {
			users = append(users, ci.User)
		}
		slices.Sort(users)
		sent, _ = a.adm.cfg.Sender.Broadcast(slices.Compact(users), ev)
	}
	a.log.Info("admin: notice", "user", req.User, "users", sent)
	writeJSON(w, http.StatusOK, map[string]any{"node": a.adm.cfg.Node, "users": sent})
}

type drainRequest struct {
	Percent    int `json:"percent"`     // of the clients at the start, per wave; default 10
	IntervalMS int `json:"interval_ms"` // between waves; default 1000
}

// adminDrain stops this node accepting MQTT connections, then disconnects
// its clients in waves (MQTT 5 reason 0x8B, server shutting down) so that
// they reconnect to other nodes without all arriving at once. /readyz
// answers 503 from the start. A second POST changes nothing and reports
// the progress (200; the first answers 202).
func (a *API) adminDrain(w http.ResponseWriter, r *http.Request) {
	if !onlyParams(w, r) {
		return
	}
	req := drainRequest{Percent: 10, IntervalMS: 1000}
	if !a.decodeStrict(w, r, &req, true) {
		return
	}
	if req.Percent < 1 || req.Percent > 100 || req.IntervalMS < 10 || req.IntervalMS > 60_000 {
		writeError(w, http.StatusBadRequest, wire.CodeBadRequest, "percent must be 1 to 100, interval_ms 10 to 60000")
		return
	}
	ad := a.adm
	if d, ok := a.cfg.Drain.Progress(); ok {
		writeJSON(w, http.StatusOK, map[string]any{"node": ad.cfg.Node, "drain": d})
		return
	}
	ad.cfg.Broker.StopAccepting()
	total := len(ad.cfg.Broker.ClientList())
	// Start leaves /v1/endpoints; false if a concurrent POST started first.
	d, started := a.cfg.Drain.Start(req.Percent, req.IntervalMS, total)
	if !started {
		writeJSON(w, http.StatusOK, map[string]any{"node": ad.cfg.Node, "drain": d})
		return
	}
	a.log.Info("admin: drain", "node", ad.cfg.Node, "clients", total, "percent", req.Percent, "interval_ms", req.IntervalMS)
	go a.drainWaves(max(1, (total*req.Percent+99)/100), time.Duration(req.IntervalMS)*time.Millisecond)
	writeJSON(w, http.StatusAccepted, map[string]any{"node": ad.cfg.Node, "drain": d})
}

// drainWaves disconnects up to per clients now and every interval until
// none is left, telling the drain state of each wave.
func (a *API) drainWaves(per int, interval time.Duration) {
	ad := a.adm
	if ad.cfg.Broker.Drain(per, interval, ad.stop, a.cfg.Drain) {
		d, _ := a.cfg.Drain.Progress()
		a.log.Info("admin: drained", "node", ad.cfg.Node, "disconnected", d.Disconnected)
	}
}
