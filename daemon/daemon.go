// Package daemon assembles one imqttd from its parts: store, state, account
// and chat services, the broker with its hooks, and the HTTP API. cmd/imqttd
// parses configuration and signals and calls it; tests start it in-process.
package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/imqtt/imqtt/account"
	"github.com/imqtt/imqtt/api"
	"github.com/imqtt/imqtt/bans"
	"github.com/imqtt/imqtt/broker"
	"github.com/imqtt/imqtt/chat"
	"github.com/imqtt/imqtt/dashboard"
	"github.com/imqtt/imqtt/hooks"
	"github.com/imqtt/imqtt/media"
	"github.com/imqtt/imqtt/metrics"
	"github.com/imqtt/imqtt/state"
	"github.com/imqtt/imqtt/state/memory"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/store/pebble"
	"github.com/imqtt/imqtt/webchat"
	"github.com/imqtt/imqtt/wire"
)

// Config is everything a daemon needs; cmd/imqttd fills it from flags,
// environment and a config file.
type Config struct {
	MQTTAddr    string // ":1883"; port 0 picks a free one
	HTTPAddr    string // ":8080"
	TLSMQTTAddr string // ":8883", with TLSCert and TLSKey
	TLSHTTPAddr string // ":443", with TLSCert and TLSKey
	TLSCert     string
	TLSKey      string
	DataDir     string // embedded store directory
	MongoURI    string // scale-out store (not in this build yet)
	RedisURL    string // scale-out state (not in this build yet)
	NodeID      string // this node's name; also seeds the snowflake node number

	Broker  broker.Options // limits; addresses are taken from above
	MaxBody int            // bytes of a message's body+meta
	// MaxGroupMembers bounds a group (default 10,000).
	MaxGroupMembers int
	// Media limits uploads and finds ffmpeg; its files live under DataDir/media.
	Media media.Options
	// PasswordParams overrides argon2id's cost (tests use a cheap one).
	PasswordParams account.Params
	// TokenTTL is how long a login token lasts (default 30 days).
	TokenTTL time.Duration
	// PprofAddr serves net/http/pprof on a listener of its own; "" = off.
	// Never expose it: profiles show the process's internals.
	PprofAddr string
	// AdminToken guards /v1/admin/ and the dashboard; "" turns the admin API off.
	AdminToken string

	Logger *slog.Logger
}

// Daemon is a running imqttd.
type Daemon struct {
	cfg      Config
	log      *slog.Logger
	st       store.Store
	state    state.State
	chat     *chat.Service
	broker   *broker.Broker
	accounts *account.Service
	metrics  *metrics.Metrics
	http     []*http.Server
	httpAddr string
	tlsAddr  string
	api      *api.API
}

// Start builds and starts a daemon. On error everything it opened is closed.
func Start(ctx context.Context, cfg Config) (d *Daemon, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.NodeID == "" {
		cfg.NodeID, _ = os.Hostname()
	}
	if cfg.MongoURI != "" || cfg.RedisURL != "" {
		return nil, errors.New("--mongo-uri and --redis-url (scale-out mode) are not in this build yet; run without them for the embedded store")
	}
	started := time.Now()
	d = &Daemon{cfg: cfg, log: cfg.Logger, metrics: metrics.New()}
	defer func() {
		if err != nil {
			d.closeStores()
		}
	}()

	dir := filepath.Join(cfg.DataDir, "pebble")
	if d.st, err = pebble.Open(dir, pebble.Options{Logger: cfg.Logger}); err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	d.state = memory.New(d.st.ReserveVersions, memory.Options{})
	d.accounts = account.New(d.st, account.Options{Params: cfg.PasswordParams, TokenTTL: cfg.TokenTTL, Logger: cfg.Logger})
	blobs, err := media.OpenFS(filepath.Join(cfg.DataDir, "media"))
	if err != nil {
		return nil, err
	}
	cfg.Media.Logger = cfg.Logger
	med := media.New(blobs, d.st, media.GroupMembers(d.st), cfg.Media)
	banList, err := bans.Open(filepath.Join(cfg.DataDir, "admin", "bans.json"), nil)
	if err != nil {
		return nil, err
	}

	var tlsConfig *tls.Config
	if cfg.TLSCert != "" || cfg.TLSKey != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("load TLS certificate: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	bo := cfg.Broker
	bo.MQTTAddr, bo.TLSAddr, bo.TLS, bo.Logger = cfg.MQTTAddr, cfg.TLSMQTTAddr, tlsConfig, cfg.Logger
	d.broker = broker.New(bo)
	d.metrics.SetConnections(func() float64 { return float64(d.broker.Clients()) })
	pub := countedPublisher{d.broker, d.metrics}

	d.chat, err = chat.New(d.st, d.state, pub, chat.Options{
		Node: snowflakeNode(cfg.NodeID), MaxBody: cfg.MaxBody, MaxGroupMembers: cfg.MaxGroupMembers, Logger: cfg.Logger, Metrics: d.metrics,
		Media: med,
	})
	if err != nil {
		return nil, err
	}
	d.chat.Start()

	srv := d.broker.Server()
	for _, h := range []struct {
		hook mqtt.Hook
		cfg  any
	}{
		{&hooks.Ban{}, hooks.BanConfig{Bans: banList, Server: srv, Metrics: d.metrics}},
		{&hooks.Auth{}, hooks.AuthConfig{Accounts: d.accounts, Server: srv, Keepalive: d.broker.Keepalive(), Metrics: d.metrics, Logger: cfg.Logger}},
		{&hooks.ACL{}, d.metrics},
		{&hooks.Compat{}, nil},
		{&hooks.Uplink{}, hooks.UplinkConfig{Chat: d.chat, Publisher: pub, Metrics: d.metrics, Logger: cfg.Logger}},
		{&hooks.Presence{}, hooks.PresenceConfig{State: d.state, Local: d.chat, Node: cfg.NodeID, Logger: cfg.Logger}},
	} {
		if err := d.broker.AddHook(h.hook, h.cfg); err != nil {
			return nil, fmt.Errorf("hook %s: %w", h.hook.ID(), err)
		}
	}
	if err := d.broker.Start(); err != nil {
		return nil, err
	}

	handler := api.New(api.Config{
		Accounts: d.accounts, Chat: d.chat, Media: med, Metrics: d.metrics, Kicker: d, Web: webchat.Handler(),
		Endpoints: d.endpoints, Ready: d.Ready, WebSocket: d.broker.WebSocket(), Logger: cfg.Logger,
		Admin: api.AdminConfig{Token: cfg.AdminToken, Node: cfg.NodeID, Started: started, Addrs: d.addrs,
			Broker: d.broker, Publisher: pub, Bans: banList, Presence: d.state, Head: d.st.Head, Dashboard: dashboard.Handler()},
	})
	d.api = handler
	if d.httpAddr, err = d.serveHTTP(cfg.HTTPAddr, handler, nil); err != nil {
		return nil, err
	}
	if tlsConfig != nil && cfg.TLSHTTPAddr != "" {
		if d.tlsAddr, err = d.serveHTTP(cfg.TLSHTTPAddr, handler, tlsConfig); err != nil {
			return nil, err
		}
	}
	if cfg.PprofAddr != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		addr, err := d.serveHTTP(cfg.PprofAddr, mux, nil)
		if err != nil {
			return nil, err
		}
		d.log.Info("pprof serving", "addr", addr)
	}
	d.log.Info("imqttd serving", "node", cfg.NodeID, "mqtt", d.broker.MQTTAddr(), "mqtt_tls", d.broker.TLSAddr(),
		"http", d.httpAddr, "https", d.tlsAddr, "ws", "http://"+d.httpAddr+"/mqtt", "data", cfg.DataDir)
	return d, nil
}

func (d *Daemon) serveHTTP(addr string, h http.Handler, tlsConfig *tls.Config) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("http listen %s: %w", addr, err)
	}
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	}
	s := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(d.log.Handler(), slog.LevelWarn)}
	d.http = append(d.http, s)
	go func() {
		if err := s.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("http serve", "addr", addr, "err", err)
		}
	}()
	return ln.Addr().String(), nil
}

// MQTTAddr and HTTPAddr are the bound addresses.
func (d *Daemon) MQTTAddr() string { return d.broker.MQTTAddr() }

// HTTPAddr is the bound HTTP address.
func (d *Daemon) HTTPAddr() string { return d.httpAddr }

// Store is the daemon's store (for tests and tools).
func (d *Daemon) Store() store.Store { return d.st }

// Metrics are the daemon's instruments.
func (d *Daemon) Metrics() *metrics.Metrics { return d.metrics }

// KickDevice disconnects clientID if it is connected here.
func (d *Daemon) KickDevice(clientID string) bool {
	return d.broker.Kick(clientID, packets.ErrNotAuthorized)
}

// Ready reports whether the store and state answer.
func (d *Daemon) Ready(ctx context.Context) error {
	if err := d.st.Ping(ctx); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if err := d.state.Ping(ctx); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	return nil
}

func (d *Daemon) endpoints() []wire.Endpoint {
	return []wire.Endpoint{{Node: d.cfg.NodeID, MQTT: d.broker.MQTTAddr(), WS: "ws://" + d.httpAddr + "/mqtt",
		Load: float64(d.broker.Clients()) / 100_000}}
}

// Shutdown stops accepting connections and requests, finishes the sends
// already accepted (their acks still reach connected clients), disconnects
// the clients and closes the store. Nothing acked is lost.
func (d *Daemon) Shutdown(ctx context.Context) error {
	d.api.Close()
	d.broker.StopAccepting()
	var errs []error
	for _, s := range d.http {
		errs = append(errs, s.Shutdown(ctx)) // waits for HTTP sends in flight
	}
	errs = append(errs, d.chat.Close(ctx))
	errs = append(errs, d.broker.Close())
	errs = append(errs, d.closeStores())
	d.log.Info("imqttd stopped", "node", d.cfg.NodeID)
	return errors.Join(errs...)
}

func (d *Daemon) closeStores() error {
	var errs []error
	if d.state != nil {
		errs = append(errs, d.state.Close())
	}
	if d.st != nil {
		errs = append(errs, d.st.Close())
	}
	return errors.Join(errs...)
}

// snowflakeNode maps a node name to one of snowflake's 1024 node numbers.
func snowflakeNode(name string) int64 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(name))
	return int64(h.Sum32() % 1024)
}

// Broker is the daemon's MQTT broker.
func (d *Daemon) Broker() *broker.Broker { return d.broker }

// addrs are the bound addresses, for the admin API's nodes.
func (d *Daemon) addrs() map[string]string {
	a := map[string]string{"mqtt": d.broker.MQTTAddr(), "http": d.httpAddr, "ws": "ws://" + d.httpAddr + "/mqtt"}
	if t := d.broker.TLSAddr(); t != "" {
		a["mqtt_tls"] = t
	}
	if d.tlsAddr != "" {
		a["https"] = d.tlsAddr
	}
	return a
}

// countedPublisher is the broker's inline publish, counting each event by
// kind (imqtt_publishes_total{direction="out"}).
type countedPublisher struct {
	b *broker.Broker
	m *metrics.Metrics
}

func (p countedPublisher) Publish(topic string, payload []byte) error {
	p.m.PublishedOut(payload)
	return p.b.Publish(topic, payload)
}
