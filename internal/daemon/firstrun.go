package daemon

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
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
// it there (0600) for later starts. It returns the token, its file (""
// unless "generate"), and whether this start made it: only that start's
// log shows it (every start's would put it in journald and log shippers).
func adminToken(cfg Config) (token, file string, created bool, err error) {
	if cfg.AdminToken != GenerateAdminToken {
		return cfg.AdminToken, "", false, nil
	}
	file = filepath.Join(cfg.DataDir, AdminTokenFile)
	f, err := os.Open(file)
	switch {
	case err == nil:
		defer f.Close()
		token, err = readAdminToken(f)
		return token, file, false, err
	case !errors.Is(err, fs.ErrNotExist):
		return "", "", false, fmt.Errorf("admin token: %w", err)
	}
	token = newToken()
	if err := os.WriteFile(file, []byte(token+"\n"), 0o600); err != nil {
		return "", "", false, fmt.Errorf("admin token: %w", err)
	}
	return token, file, true, nil
}

// readAdminToken reads a kept admin token, refusing a file open to other
// users: the token may have leaked, and would go on leaking.
func readAdminToken(f *os.File) (string, error) {
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("%s is open to other users (mode %#o): remove it to have a new token made, or chmod 600 it", f.Name(), perm)
	}
	raw, err := io.ReadAll(f)
	if err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	token := strings.TrimSpace(string(raw))
	if len(token) < 32 {
		return "", fmt.Errorf("%s holds no token (at least 32 characters): remove it to have one made", f.Name())
	}
	return token, nil
}

func newToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// logStart writes the start log: the "imqttd serving" line with the bound
// addresses, then where a person goes next: the web chat, the dashboard
// (with the admin token, the only line that ever shows it, on the start
// that made it; else where it is kept, or how to set one), the API's docs and the WebSocket
// as a client dials it.
func (d *Daemon) logStart(scaleOut bool, tokenFile string, created bool) {
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
	case created:
		d.log.Info("dashboard", "url", base+"/dashboard/", "admin_token", d.cfg.AdminToken, "kept_in", tokenFile)
	case tokenFile != "":
		d.log.Info("dashboard", "url", base+"/dashboard/", "kept_in", tokenFile)
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
