package daemon

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/imqtt/imqtt/internal/version"
)

// GenerateAdminToken is the --admin-token value that has imqttd make the
// token itself (adminToken).
const GenerateAdminToken = "generate"

// AdminTokenFile is where a generated admin token is kept, in the data dir.
const AdminTokenFile = "admin-token"

// adminToken resolves Config.AdminToken. "generate" takes the token kept
// in <data-dir>/admin-token, or makes one (32 random bytes, hex) and keeps
// it there (0600) for later starts; in scale-out, where the data dir is
// not the cluster's, it is this process's only and not written. It returns
// the token, and its file ("" when not kept) when imqttd made it, so that
// the start log can show it once.
func adminToken(cfg Config, scaleOut bool) (token, file string, generated bool, err error) {
	if cfg.AdminToken != GenerateAdminToken {
		return cfg.AdminToken, "", false, nil
	}
	if scaleOut {
		return newToken(), "", true, nil
	}
	file = filepath.Join(cfg.DataDir, AdminTokenFile)
	raw, err := os.ReadFile(file)
	switch {
	case err == nil:
		if token = strings.TrimSpace(string(raw)); len(token) < 32 {
			return "", "", false, fmt.Errorf("%s holds no token (at least 32 characters): remove it to have one made", file)
		}
		return token, file, true, nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", "", false, fmt.Errorf("admin token: %w", err)
	}
	token = newToken()
	if err := os.WriteFile(file, []byte(token+"\n"), 0o600); err != nil {
		return "", "", false, fmt.Errorf("admin token: %w", err)
	}
	return token, file, true, nil
}

func newToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// logStart writes the start log: the "imqttd serving" line with the bound
// addresses, then where a person goes next: the web chat, the dashboard
// (with the admin token, the only line that ever shows it, when imqttd
// generated it; else how to set one), the API's docs and the WebSocket
// as a client dials it.
func (d *Daemon) logStart(scaleOut bool, tokenFile string, generated bool) {
	cfg := d.cfg
	d.log.Info("imqttd serving", "version", version.Get().Short(), "node", cfg.NodeID, "scale_out", scaleOut,
		"mqtt", d.broker.MQTTAddr(), "mqtt_tls", d.broker.TLSAddr(), "http", d.httpAddr, "https", d.tlsAddr,
		"ws", wsURL("ws", d.httpAddr), "data", cfg.DataDir,
		"durability", durability(scaleOut, cfg.SyncInterval), "wal_dir", cfg.WALDir)
	base, ws := "http://"+usableHost(d.httpAddr), wsURL("ws", d.httpAddr)
	if d.tlsAddr != "" {
		base, ws = "https://"+usableHost(d.tlsAddr), wsURL("wss", d.tlsAddr)
	}
	if cfg.AdvertiseWS != "" {
		ws = cfg.AdvertiseWS
	}
	d.log.Info("web chat", "url", base+"/chat/")
	switch {
	case d.cfg.AdminToken == "":
		d.log.Info("dashboard off: give it a token with --admin-token, IMQTT_ADMIN_TOKEN, or --admin-token generate",
			"url", base+"/dashboard/")
	case generated && tokenFile != "":
		d.log.Info("dashboard", "url", base+"/dashboard/", "admin_token", d.cfg.AdminToken, "kept_in", tokenFile)
	case generated:
		d.log.Info("dashboard", "url", base+"/dashboard/", "admin_token", d.cfg.AdminToken,
			"note", "generated for this process only (scale-out: not written to the data dir); give the nodes one with IMQTT_ADMIN_TOKEN")
	default:
		d.log.Info("dashboard", "url", base+"/dashboard/")
	}
	d.log.Info("API docs", "url", base+"/docs/", "openapi", base+"/v1/openapi.json", "metrics", base+"/metrics")
	d.log.Info("MQTT over WebSocket", "url", ws)
}

// usableHost is a bound address a person can type: one on all interfaces
// (0.0.0.0, ::) is reached at localhost.
func usableHost(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

// wsURL is the WebSocket of the HTTP listener at addr.
func wsURL(scheme, addr string) string { return scheme + "://" + usableHost(addr) + "/mqtt" }
