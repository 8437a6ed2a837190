package api_test

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/imqtt/imqtt/internal/api"
	"github.com/imqtt/imqtt/internal/syncbuf"
)

// accessRecords are the access log's lines in what the API logged.
func accessRecords(b *syncbuf.Buffer) []map[string]any {
	var out []map[string]any
	for line := range strings.SplitSeq(b.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == "http" {
			out = append(out, rec)
		}
	}
	return out
}

// TestAccessLog: with a sample of 0 no success is logged, but errors are:
// 5xx (at info: the cause is logged by what failed), and a flood of 401s at most a burst of lines; with 1 every
// success is, by route pattern, never with its query string or token.
func TestAccessLog(t *testing.T) {
	var none syncbuf.Buffer
	r := newRig(t, func(c *api.Config) { c.Logger = slog.New(slog.NewJSONHandler(&none, nil)) })
	wantJSON(t, r.do("GET", "/v1/groups", "tok-alice-phone", ""), http.StatusOK, nil)
	if recs := accessRecords(&none); len(recs) != 0 {
		t.Fatalf("sample 0 logged a success: %v", recs)
	}
	r.do("GET", "/v1/groups", "tok-down", "") // 503
	for range 50 {
		r.do("GET", "/v1/groups", "tok-expired-x", "") // 401
	}
	recs := accessRecords(&none)
	if len(recs) < 2 || len(recs) > 6 || recs[0]["status"] != 503.0 || recs[0]["level"] != "INFO" || recs[1]["status"] != 401.0 {
		t.Fatalf("errors logged: %d lines: %v", len(recs), recs)
	}

	var all syncbuf.Buffer
	r = newRig(t, func(c *api.Config) {
		c.Logger, c.AccessLogSample = slog.New(slog.NewJSONHandler(&all, nil)), 1
	})
	wantJSON(t, r.do("GET", "/v1/conversations/bob/messages?token=qs-secret", "tok-alice-phone", ""), http.StatusOK, nil)
	recs = accessRecords(&all)
	if len(recs) != 1 || recs[0]["route"] != "GET /v1/conversations/{peer}/messages" || recs[0]["method"] != "GET" ||
		recs[0]["remote"] != "192.0.2.1:5555" || recs[0]["bytes"].(float64) <= 0 {
		t.Fatalf("access log %v", recs)
	}
	line, _ := json.Marshal(recs[0])
	if strings.Contains(string(line), "qs-secret") || strings.Contains(string(line), "tok-alice") || strings.Contains(string(line), "bob") {
		t.Fatalf("the access log shows the path, query or token: %s", line)
	}
}
