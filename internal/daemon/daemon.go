// Package daemon assembles one imqttd from its parts: store, state, account
// and chat services, the broker with its hooks, and the HTTP API. cmd/imqttd
// parses configuration and signals and calls it; tests start it in-process.
package daemon

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	goredis "github.com/redis/go-redis/v9"

	"github.com/imqtt/imqtt/broker"
	"github.com/imqtt/imqtt/chat"
	"github.com/imqtt/imqtt/hooks"
	"github.com/imqtt/imqtt/internal/account"
	"github.com/imqtt/imqtt/internal/api"
	"github.com/imqtt/imqtt/internal/backup"
	"github.com/imqtt/imqtt/internal/bans"
	"github.com/imqtt/imqtt/internal/dashboard"
	"github.com/imqtt/imqtt/internal/deliver"
	"github.com/imqtt/imqtt/internal/drain"
	"github.com/imqtt/imqtt/internal/filter"
	"github.com/imqtt/imqtt/internal/jwtauth"
	"github.com/imqtt/imqtt/internal/media"
	"github.com/imqtt/imqtt/internal/metrics"
	"github.com/imqtt/imqtt/internal/presence"
	"github.com/imqtt/imqtt/internal/push"
	"github.com/imqtt/imqtt/internal/retention"
	"github.com/imqtt/imqtt/internal/session"
	"github.com/imqtt/imqtt/internal/webchat"
	"github.com/imqtt/imqtt/internal/webhook"
	"github.com/imqtt/imqtt/internal/webhook/beforesend"
	"github.com/imqtt/imqtt/state"
	"github.com/imqtt/imqtt/state/memory"
	"github.com/imqtt/imqtt/state/redis/cluster"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/store/pebble"
	imsync "github.com/imqtt/imqtt/sync"
	"github.com/imqtt/imqtt/wire"
)

// Config is everything a daemon needs; cmd/imqttd fills it from flags,
// environment and a config file.
type Config struct {
	MQTTAddr    string // DefaultMQTTAddr (":1883") from the flag; port 0 picks a free one
	HTTPAddr    string // DefaultHTTPAddr (":8080") from the flag
	TLSMQTTAddr string // DefaultTLSMQTTAddr (":8883") from the flag, with TLSCert and TLSKey
	TLSHTTPAddr string // DefaultTLSHTTPAddr (":443") from the flag, with TLSCert and TLSKey
	TLSCert     string
	TLSKey      string
	DataDir     string // embedded store directory; in scale-out, media and bans only
	// SyncInterval is the embedded store's durability mode
	// (pebble.Options.SyncInterval): 0, each commit synced before its ack.
	SyncInterval time.Duration
	// WALDir is the embedded store's write-ahead log directory
	// (pebble.Options.WALDir), on a device of its own; empty: in the store.
	WALDir string
	// MinFreeDisk is the free space the embedded store keeps on DataDir's
	// disk: under it, sends and uploads are refused (unavailable) and
	// /readyz fails, until there is room again; start-up refuses too
	// (0: pebble.DefaultMinFreeDisk, 512 MiB; negative: off).
	MinFreeDisk int64
	// BackupRate bounds GET /v1/admin/backup's stream, in bytes a second,
	// so that a backup leaves the disk and CPU to sends (0:
	// DefaultBackupRate; negative: no bound).
	BackupRate int64
	// Scale-out mode: both set, or neither. MongoURI is the store (the
	// authority for everything durable), RedisURL the shared state and the
	// bus between nodes. RedisPrefix starts every Redis key and channel
	// (default "imqtt:"), so clusters can share a Redis.
	MongoURI    string
	MongoDB     string // database name; default: the URI's, else "imqtt"
	RedisURL    string
	RedisPrefix string
	// UpgradeMongo lets this node migrate a database of an older store
	// format in place (--upgrade-mongo): the operator says a backup was
	// taken (mongodump), since none is taken for them. See
	// docs/operations.md, Upgrades.
	UpgradeMongo bool
	// NodeID names this node; unique in a cluster (default: the host name).
	NodeID string
	// AdvertiseMQTT and AdvertiseWS are how clients reach this node, as
	// /v1/endpoints lists it (default: the bound address; one on all
	// interfaces, ":1883", clients complete with the host they reached the
	// HTTP API at).
	AdvertiseMQTT string
	AdvertiseWS   string
	// DrainPeriod is how long Shutdown spends disconnecting clients in ten
	// waves, so they reconnect elsewhere without a stampede (0: in scale-out
	// DefaultDrainPeriod, 10s; on one node none, there is nowhere else to go).
	DrainPeriod time.Duration

	// Store, if set, is used instead of opening one, and is not closed by
	// Shutdown: tests run several nodes on one store.
	Store store.Store

	Broker  broker.Options // limits; addresses are taken from above
	MaxBody int            // bytes of a message's body+meta (0: chat.DefaultMaxBody)
	// MaxGroupMembers bounds a group (0: chat.DefaultMaxGroupMembers, 10,000).
	MaxGroupMembers int
	// MaxGroupsPerUser bounds the groups a user is in (0:
	// chat.DefaultMaxGroupsPerUser, 1,000).
	MaxGroupsPerUser int
	// RecallWindow and EditWindow: how long after its send a message may
	// be recalled or edited (0: no limit); MaxTypingGroup: typing is not
	// relayed in larger groups (0: chat.DefaultMaxTypingGroup).
	RecallWindow, EditWindow time.Duration
	MaxTypingGroup           int
	// Retention deletes messages older than it in the background
	// (docs/operations.md#retention); 0 keeps them forever. RetentionRate
	// bounds the deletes a second (0: retention.DefaultRate).
	Retention     time.Duration
	RetentionRate int
	// PresenceDebounce: a user whose last device left and one came back
	// within it made no presence change (0: presence.DefaultDebounce,
	// 10 s; tests shorten it).
	PresenceDebounce time.Duration
	// SendRate bounds each user's sends per second, all devices and nodes
	// together, after a burst of SendBurst (SendRate 0: DefaultSendRate; a
	// negative one: no limit. SendBurst 0: 4×the rate, chat's default).
	SendRate  int64
	SendBurst int
	// Throttle bounds password attempts and registrations per client IP
	// and per account (zero fields: account.DefaultLimits; a negative
	// Rate turns one off).
	Throttle account.Limits
	// MaxSubscriptions bounds the filters one client may hold
	// (0: hooks.DefaultMaxSubscriptions, 8).
	MaxSubscriptions int
	// Sessions bounds persistent MQTT sessions (internal/session): how long
	// one is kept after its device disconnects, how much one reconnect
	// replays, how many QoS 1 events one device may leave unacknowledged
	// (zero values: the package's defaults, 7 days, 10,000, 32).
	Sessions SessionOptions
	// Push is offline push (internal/push): the providers to push
	// through (none: push off) and how.
	Push PushOptions
	// Webhook is the operator's backend (SPEC §14, docs/integration.md):
	// the events it hears and the before_send check (URL empty: off).
	Webhook WebhookOptions
	// MaxClientRequests bounds one client's sync and read requests in
	// flight; more are answered busy (0: hooks.DefaultRequestsPerClient, 4).
	MaxClientRequests int
	// Media limits uploads and finds ffmpeg; its files live under DataDir/media.
	Media media.Options
	// PasswordParams overrides argon2id's cost (tests use a cheap one).
	PasswordParams account.Params
	// TokenTTL is how long a login token lasts (0: account.DefaultTokenTTL,
	// 30 days).
	TokenTTL time.Duration
	// PprofAddr serves net/http/pprof on a listener of its own; "" = off.
	// Never expose it: profiles show the process's internals.
	PprofAddr string
	// AdminToken guards /v1/admin/ and the dashboard; "" turns the admin
	// API off; GenerateAdminToken has the daemon make one (firstrun.go).
	AdminToken string
	// CORSOrigins may call the API from their pages (api.Config.CORSOrigins).
	CORSOrigins []string
	// AccessLogSample is the share of successful HTTP requests logged
	// (api.Config.AccessLogSample; 0: none).
	AccessLogSample float64
	// ServerKeys open the server API (/v1/server/; none: off), whose sends
	// each key may make ServerSendRate a second (0: api.DefaultServerSendRate).
	ServerKeys     []string
	ServerSendRate int
	// ServerDeleteBudget bounds one DELETE /v1/server/users/{user}'s work
	// (0: api.DefaultDeleteBudget; no flag: tests set it).
	ServerDeleteBudget time.Duration
	// HTTPBodyTimeout bounds how long a request body may take to arrive
	// (0: api.DefaultBodyTimeout, 10s); an upload instead must bring
	// HTTPUploadMinRate bytes a second (api.DefaultUploadMinRate, 1024)
	// averaged over each HTTPUploadWindow (api.DefaultUploadWindow, 30s).
	// Slower bodies get 408 and lose their connection (internal/api/deadline.go).
	HTTPBodyTimeout   time.Duration
	HTTPUploadMinRate int64
	HTTPUploadWindow  time.Duration
	// HTTPConnsPerIP and HTTPConns cap the HTTP connections one address
	// (an IPv6 /64) and all together hold open (0: DefaultHTTPConnsPerIP,
	// DefaultHTTPConns; negative: no cap); past them a connection is closed
	// at once (httpconns.go).
	HTTPConnsPerIP int
	HTTPConns      int

	// Filter is the content filter of text sends (internal/filter): its
	// term file, action and link rule; off unless it names a term file or
	// a link rule other than allow. Its files are read at Start (a missing
	// or unreadable one fails it) and again on each value from Reload.
	Filter filter.Options
	// Reload, when set, re-reads the content filter's files on each value
	// it delivers (cmd/imqttd: SIGHUP); a failed reload keeps the old lists.
	Reload <-chan os.Signal
	// External auth and sign-up (docs/integration.md): JWTKey is the file
	// of --jwt-key (an HS256 secret or a PEM public key; "": JWTs off),
	// checked with JWTAudience and JWTIssuer when set
	// (internal/jwtauth). Signup is api.SignupOpen ("") or
	// api.SignupClosed.
	JWTKey      string
	JWTAudience string
	JWTIssuer   string
	Signup      string

	Logger *slog.Logger
}

// The defaults of the settings that are the daemon's own. Config's zero
// values keep the meaning documented at each field (an empty address is
// no listener, or port 0 where the field says so): these are what
// cmd/imqttd's flags default to, and the values the other settings
// default to are constants of the packages that use them
// (broker.DefaultMaxPacketSize, chat.DefaultMaxBody, ...).
const (
	DefaultMQTTAddr    = ":1883"
	DefaultHTTPAddr    = ":8080"
	DefaultTLSMQTTAddr = ":8883"
	DefaultTLSHTTPAddr = ":443"
	DefaultDataDir     = "./data"
	// DefaultDrainPeriod is DrainPeriod's default in scale-out (on one
	// node there is nowhere else to go: 0).
	DefaultDrainPeriod = 10 * time.Second
	DefaultLogFormat   = "text"
	DefaultLogLevel    = "info"
	// ShutdownTimeout bounds Run's Shutdown.
	ShutdownTimeout = 30 * time.Second
)

// DefaultBackupRate is the backup stream's default pace, 64 MiB/s, so
// that a backup reads the disk at a fraction of its speed beside the
// sends' log writes (unpaced, one streams a few hundred MB at over
// 300 MB/s from the page cache); a 10 GB store takes under three minutes.
// Figures: docs/operations.md "Backup and restore".
const DefaultBackupRate = 64 << 20

// DefaultSendRate is the send limit's default: far above a person (a
// message every few seconds) or an ordinary bot, far below a flood (one
// connection stored 400,000 messages in 10s). Its burst is chat's default,
// 4×the rate (200), so a device that reconnects resends what it had
// unacked at once, and a bot answers a busy moment.
const DefaultSendRate = 50

// Daemon is a running imqttd.
type Daemon struct {
	cfg      Config
	log      *slog.Logger
	st       store.Store
	state    state.State
	chat     *chat.Service
	broker   *broker.Broker
	path     *deliver.Path // every event out: to the broker and, in scale-out, the bus
	accounts *account.Service
	metrics  *metrics.Metrics
	http     []*http.Server
	// httpConns counts the HTTP listeners' connections against their caps
	httpConns *broker.ConnCounter
	httpAddr  string
	tlsAddr   string
	api       *api.API
	ownStore  bool
	dirLock   *DirLock // the data dir's lock, on the embedded store (lock.go)
	// stopBackground ends the daemon's own background loops
	stopBackground chan struct{}
	uplink         *hooks.Uplink
	sessions       *session.Manager
	pusher         *push.Worker    // nil: no provider configured
	retention      *retention.Jobs // the sweeper and the burner
	blobs          media.Blobs     // where media files live
	events         webhooks        // the webhook events; nil parts: off
	presence       *presence.Service

	filter *filter.Filter // the content filter; nil: none

	// scale-out only
	rdb      goredis.UniversalClient
	bus      *cluster.Bus
	registry *cluster.Registry
	lease    *cluster.Lease
	asker    *cluster.Asker // the admin API's cluster views (ask.go)
	// sharedBans is the scale-out ban list (nil: a file)
	sharedBans *bans.Shared
	// drain is the node's one drain state, shared by the broker's waves,
	// the uplink hook and the HTTP API; it leaves the node list (leave).
	drain *drain.State
}

// Run starts a daemon on cfg, serves until ctx is done, then shuts it down
// within ShutdownTimeout: all of imqttd between reading its configuration
// and exiting.
func Run(ctx context.Context, cfg Config) error {
	d, err := Start(ctx, cfg)
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	for wait := true; wait; {
		select {
		case <-ctx.Done():
			wait = false
		case <-cfg.Reload:
			if d.filter == nil {
				d.log.Info("SIGHUP: no content filter to reload")
				continue
			}
			_ = d.filter.Reload() // logged and counted; the old lists stay
		}
	}
	d.log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	if err := d.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// NewLogger is the daemon's logger: format "text" or "json", at level
// (debug, info, warn, error), to w.
func NewLogger(format, level string, w io.Writer) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format must be text or json, not %q", format)
}

// Start builds and starts a daemon. On error everything it opened is closed.
func Start(ctx context.Context, cfg Config) (d *Daemon, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.NodeID == "" {
		cfg.NodeID, _ = os.Hostname()
	}
	scaleOut := cfg.RedisURL != ""
	if scaleOut != (cfg.MongoURI != "" || cfg.Store != nil) {
		return nil, errors.New("scale-out mode needs both --mongo-uri and --redis-url; give neither for the embedded store")
	}
	if scaleOut && cfg.AdminToken == GenerateAdminToken {
		return nil, errors.New("--admin-token generate keeps the token in the data dir, which the nodes of a scale-out do not share: give them one with IMQTT_ADMIN_TOKEN")
	}
	if scaleOut && cfg.DrainPeriod == 0 {
		cfg.DrainPeriod = DefaultDrainPeriod
	}
	started := time.Now()
	d = &Daemon{cfg: cfg, log: cfg.Logger, metrics: metrics.New(), stopBackground: make(chan struct{})}
	d.drain = drain.New(d.leave)
	// Counted refusals are logged too, rate-limited.
	d.metrics.LogRefusals(cfg.Logger)
	if cfg.Filter.Enabled() { // first: a bad list file fails the start before the store is opened
		fo := cfg.Filter
		fo.Logger, fo.Metrics = cfg.Logger, d.metrics
		if d.filter, err = filter.New(fo); err != nil {
			return nil, err
		}
	}
	var jwt *jwtauth.Verifier
	if cfg.JWTKey != "" { // before the store too
		if jwt, err = jwtauth.Load(cfg.JWTKey, jwtauth.Options{Audience: cfg.JWTAudience, Issuer: cfg.JWTIssuer}); err != nil {
			return nil, err
		}
	}
	opened := d // a failed start returns a nil d, and closes what it opened
	defer func() {
		if err != nil {
			_ = opened.closeAsker(context.Background()) // its beat would list this node as up for an hour
			opened.closeStores(context.Background())
		}
	}()

	var syncOpts imsync.Options
	nodeNumber := snowflakeNode(cfg.NodeID)
	switch {
	case cfg.Store != nil:
		d.st = cfg.Store
	case scaleOut:
		if d.st, err = openMongo(ctx, cfg); err != nil {
			return nil, err
		}
		d.ownStore = true
	default:
		// One process at a time on a data dir, told clearly (lock.go).
		if d.dirLock, err = LockDataDir(cfg.DataDir); err != nil {
			return nil, err
		}
		if err := backup.Clean(cfg.DataDir); err != nil { // a backup's, interrupted by a crash
			return nil, err
		}
		dir := filepath.Join(cfg.DataDir, "pebble")
		popts := pebble.Options{Logger: cfg.Logger, MinFreeDisk: cfg.MinFreeDisk, SyncInterval: cfg.SyncInterval,
			WALDir: cfg.WALDir, OnRefused: func() { d.metrics.Refused("disk_space") }}
		if d.st, err = pebble.Open(dir, popts); err != nil {
			return nil, fmt.Errorf("open store %s: %w", dir, err)
		}
		d.ownStore = true
	}
	if scaleOut {
		if nodeNumber, err = d.joinRedis(ctx); err != nil {
			return nil, err
		}
		// Several nodes commit to one inbox: a version may land after a
		// higher one; sync waits for such holes (sync.Options.Settle).
		syncOpts.Settle = settle
	} else {
		d.state = memory.New(d.st.ReserveVersions, memory.Options{})
	}
	tokenFile, created := "", false // --admin-token generate (firstrun.go)
	if cfg.AdminToken, tokenFile, created, err = adminToken(cfg); err != nil {
		return nil, err
	}
	d.cfg.AdminToken = cfg.AdminToken
	aopts := account.Options{Params: cfg.PasswordParams, TokenTTL: cfg.TokenTTL, Logger: cfg.Logger,
		Limiter: d.state, Limits: cfg.Throttle}
	if d.bus != nil {
		// Other nodes cache tokens too: tell them of revocations, and
		// re-check with the store now and then in case they missed one.
		aopts.Revoked, aopts.CacheTTL = d.bus.Revoked, time.Minute
	}
	if jwt != nil {
		aopts.JWT = jwt
		cfg.Logger.Info("external auth by JWT", "alg", jwt.Alg())
	}
	if err := d.newWebhooks(nodeNumber); err != nil {
		return nil, err
	}
	if d.events.emitter != nil {
		aopts.Events = d.events.emitter // user.registered
	}
	d.accounts = account.New(d.st, aopts)
	blobs, err := d.openBlobs()
	if err != nil {
		return nil, err
	}
	d.blobs = blobs
	if fs, ok := blobs.(*media.FS); ok {
		fs.SetWritable(d.writable) // media files share the store's disk
	}
	cfg.Media.Logger = cfg.Logger
	med := media.New(blobs, d.st, media.GroupMembers(d.st), cfg.Media)

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
	bo.Refused = d.metrics.Refused
	bo.SessionExpiry = sessionExpiry(cfg.Sessions.ExpiryMax) // mochi caps the expiry a client asks for (CONNACK)
	d.broker = broker.New(bo)
	banList, err := d.openBans(ctx)
	if err != nil {
		return nil, err
	}
	d.metrics.SetConnections(func() float64 { return float64(d.broker.Clients()) })
	popts := deliver.Options{Local: d.broker, Counter: d.metrics, Logger: cfg.Logger}
	if d.bus != nil {
		popts.Remote = d.bus
	}
	d.path = deliver.New(popts)

	copts := chat.Options{Node: nodeNumber, MaxBody: cfg.MaxBody, MaxGroupMembers: cfg.MaxGroupMembers, MaxGroupsPerUser: cfg.MaxGroupsPerUser, Logger: cfg.Logger,
		Metrics: d.metrics, Media: med, Sync: syncOpts, SendRate: cfg.SendRate, SendBurst: cfg.SendBurst, Limiter: d.state,
		RecallWindow: noLimit(cfg.RecallWindow), EditWindow: noLimit(cfg.EditWindow), MaxTypingGroup: cfg.MaxTypingGroup}
	switch {
	case copts.SendRate == 0:
		copts.SendRate = DefaultSendRate
	case copts.SendRate < 0:
		copts.SendRate = 0 // chat: no limit
	}
	if d.bus != nil {
		copts.Remote = d.bus
	}
	if len(cfg.Push.Pushers) > 0 {
		copts.Pushed = func() { d.pusher.Notify() } // set before chat's goroutines start (below)
		if reg, ok := d.st.(interface{ HasPushDevices(string) bool }); ok {
			copts.PushTo = reg.HasPushDevices // the embedded store knows exactly, in memory
		}
	}
	if copts.BeforeSend, err = cfg.Webhook.beforeSend(nodeNumber, cfg.MaxBody); err != nil {
		return nil, fmt.Errorf("before_send webhook: %w", err)
	}
	copts.HookTimeout, copts.HookConcurrency, copts.HookFail = cfg.Webhook.Timeout, cfg.Webhook.Concurrency, cfg.Webhook.Fail
	if d.filter != nil { // not a nil *filter.Filter in the interface
		copts.Filter = d.filter
	}
	if d.events.emitter != nil {
		copts.Webhooks = d.events.emitter // message.after_send, group.changed
	}
	copts.PresenceShown = func(user string, shown bool) { // made below, before any connection or request
		if d.presence != nil {
			d.presence.Shown(user, shown)
		}
	}
	if d.chat, err = chat.New(d.st, d.state, d.path, copts); err != nil {
		return nil, err
	}
	if len(cfg.Push.Pushers) > 0 {
		d.pusher = push.New(d.st, d.state, d.chat, push.Options{Node: cfg.NodeID, Pushers: cfg.Push.Pushers,
			Preview: cfg.Push.Preview, TTL: cfg.Push.TTL, Rate: cfg.Push.Rate, Logger: cfg.Logger, Metrics: d.metrics})
	}
	d.chat.Start()
	ropts := retention.Options{Period: cfg.Retention, Rate: cfg.RetentionRate, Logger: cfg.Logger}
	if del, ok := blobs.(media.Deleting); ok {
		ropts.Media = del // retention deletes old media no message grants
	}
	d.retention = retention.New(d.st, d.chat, ropts)
	d.retention.Start()
	if d.bus != nil {
		d.bus.SetLocal(local{d.chat, d.path, d.broker, d.accounts})
		if err := d.bus.Start(ctx); err != nil {
			return nil, err
		}
	}

	if err := d.newPresence(); err != nil {
		return nil, err
	}
	d.presence.Start()
	presence := hooks.PresenceConfig{State: d.state, Local: d.chat, Node: cfg.NodeID, Logger: cfg.Logger}
	if d.bus != nil {
		presence.Elsewhere = d.bus.KickOn
	}
	events := presenceEvents{d.presence} // presence events to contacts
	if d.events.emitter != nil {
		events = append(events, d.events.emitter) // user.online, user.offline
	}
	presence.Events = events
	d.uplink = &hooks.Uplink{}
	d.sessions = session.New(d.st, d.chat, d.broker, session.Options{Node: cfg.NodeID, Cluster: d.bus != nil, ExpiryMax: sessionExpiry(cfg.Sessions.ExpiryMax),
		ReplayMax: cfg.Sessions.ReplayMax, Inflight: cfg.Sessions.Inflight, MaxPerUser: cfg.Sessions.MaxPerUser, Logger: cfg.Logger, Metrics: d.metrics})
	srv := d.broker.Server()
	for _, h := range []struct {
		hook mqtt.Hook
		cfg  any
	}{
		{&hooks.ConnLog{}, cfg.Logger}, // first: it logs connects and disconnects, whatever the others do
		{&hooks.Ban{}, hooks.BanConfig{Bans: banList, Server: srv, Metrics: d.metrics}},
		{&hooks.Auth{}, hooks.AuthConfig{Accounts: d.accounts, Server: srv, Keepalive: d.broker.Keepalive(), Metrics: d.metrics, Logger: cfg.Logger}},
		{&hooks.ACL{}, d.metrics},
		{&hooks.SubCap{}, hooks.SubCapConfig{Max: cfg.MaxSubscriptions, Metrics: d.metrics}},
		{&hooks.Compat{}, nil},
		{d.uplink, hooks.UplinkConfig{Chat: d.chat, Sender: d.path, Drain: d.drain, Metrics: d.metrics, Logger: cfg.Logger,
			PerClient: cfg.MaxClientRequests}},
		{&hooks.Presence{}, presence},
		{d.sessions, nil},
	} {
		if err := d.broker.AddHook(h.hook, h.cfg); err != nil {
			return nil, fmt.Errorf("hook %s: %w", h.hook.ID(), err)
		}
	}
	d.sessions.Start()
	if d.pusher != nil {
		d.pusher.Start()
	}
	d.startWebhooks()
	if err := d.broker.Start(); err != nil {
		return nil, err
	}

	handler := api.New(api.Config{
		Accounts: d.accounts, Chat: d.chat, Media: med, Metrics: d.metrics, Kicker: d, Web: webchat.Handler(),
		Endpoints: d.endpoints, Ready: d.Ready, Drain: d.drain, WebSocket: d.broker.WebSocket(), Logger: cfg.Logger,
		BodyTimeout: cfg.HTTPBodyTimeout, UploadMinRate: cfg.HTTPUploadMinRate, UploadWindow: cfg.HTTPUploadWindow,
		Admin: api.AdminConfig{Token: cfg.AdminToken, Node: cfg.NodeID, Started: started, Addrs: d.addrs,
			Broker: d.broker, Sender: d.path, Bans: banList, Presence: d.state, Head: d.st.Head, Dashboard: dashboard.Handler(),
			Remote: d.kickRemote(), Backup: d.backupFunc(), Sessions: d.sessions, Directory: d.st, Groups: d.chat,
			Cluster: d.clusterAsker()},
		Push: push.NewRegistry(d.st, d.providesPush, d.state),
		Server: api.ServerConfig{Keys: cfg.ServerKeys, Accounts: d.accounts, Chat: d.chat, Store: d.st,
			Limiter: d.state, SendRate: cfg.ServerSendRate, DeleteBudget: cfg.ServerDeleteBudget},
		Signup:      cfg.Signup, // --signup (docs/integration.md#sign-up-control)
		CORSOrigins: cfg.CORSOrigins, AccessLogSample: cfg.AccessLogSample,
		Presence: d.presence,
	})
	d.api = handler
	if err := d.startAsker(ctx); err != nil {
		return nil, err
	}
	perIP, all := httpCaps(cfg.HTTPConnsPerIP, cfg.HTTPConns)
	d.httpConns = &broker.ConnCounter{MaxPerIP: perIP, MaxAll: all}
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
	if d.rdb != nil {
		d.registry = cluster.NewRegistry(d.rdb, cluster.RegistryOptions{Prefix: d.redisPrefix(), Node: cfg.NodeID,
			Self: d.self, Logger: cfg.Logger})
		if err := d.registry.Join(ctx); err != nil {
			return nil, err
		}
	}
	d.logStart(scaleOut, tokenFile, created)
	return d, nil
}

// durability says when a send is acked, for the start-up line
// (docs/operations.md "Durability").
func durability(scaleOut bool, interval time.Duration) string {
	switch {
	case scaleOut:
		return "mongodb write concern"
	case interval > 0:
		return "written to the OS, synced every " + interval.String()
	}
	return "synced to disk"
}

func (d *Daemon) serveHTTP(addr string, h http.Handler, tlsConfig *tls.Config) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("http listen %s: %w", addr, err)
	}
	ln = &limitedListener{Listener: ln, conns: d.httpConns, refused: d.metrics.Refused}
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	}
	s := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ConnState: releaseHijacked, ErrorLog: slog.NewLogLogger(d.log.Handler(), slog.LevelWarn)}
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

// Blobs is where the node keeps media files.
func (d *Daemon) Blobs() media.Blobs { return d.blobs }

// Presence is the node's view of which devices are connected (in
// scale-out, the cluster's).
func (d *Daemon) Presence() state.Presence { return d.state }

// Metrics are the daemon's instruments.
func (d *Daemon) Metrics() *metrics.Metrics { return d.metrics }

// Ready reports whether the store and state answer. (/readyz asks the
// drain state first.)
func (d *Daemon) Ready(ctx context.Context) error {
	if err := d.st.Ping(ctx); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if w, ok := d.st.(writableStore); ok {
		if err := w.Writable(); err != nil {
			return fmt.Errorf("store: %w", err)
		}
	}
	if err := d.state.Ping(ctx); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	return nil
}

// writableStore is a store that can refuse writes for lack of disk space
// (store/pebble).
type writableStore interface{ Writable() error }

// writable is the store's free-space guard, for the media files on the same
// disk; a refusal counts as Refused("disk_space").
func (d *Daemon) writable() error {
	w, ok := d.st.(writableStore)
	if !ok {
		return nil
	}
	err := w.Writable()
	if errors.Is(err, store.ErrNoSpace) {
		d.metrics.Refused("disk_space")
	}
	return err
}

// endpoints lists the live nodes: the cluster's from the registry, or this
// node alone.
func (d *Daemon) endpoints(ctx context.Context) ([]wire.Endpoint, error) {
	if d.registry != nil {
		return d.registry.Endpoints(ctx)
	}
	if d.drain.Draining() {
		return []wire.Endpoint{}, nil
	}
	return []wire.Endpoint{d.self()}, nil
}

// self is this node as /v1/endpoints lists it.
func (d *Daemon) self() wire.Endpoint {
	mqttAddr, ws := d.cfg.AdvertiseMQTT, d.cfg.AdvertiseWS
	if mqttAddr == "" { // ":1883" (all interfaces): the SDK takes the server URL's host
		mqttAddr = d.broker.MQTTAddr()
	}
	if ws == "" {
		ws = "ws://" + d.httpAddr + "/mqtt"
	}
	return wire.Endpoint{Node: d.cfg.NodeID, MQTT: mqttAddr, WS: ws, Load: float64(d.broker.Clients()) / 100_000}
}

// Shutdown stops accepting connections and requests, leaves the cluster's
// node list, disconnects the clients (in waves over DrainPeriod, so they
// reconnect to other nodes gradually), finishes the sends already accepted
// (their acks still reach connected clients) and closes the store. Nothing
// acked is lost.
func (d *Daemon) Shutdown(ctx context.Context) error {
	d.drain.Begin() // /readyz 503, leave the node list
	d.api.Close()
	d.broker.StopAccepting()
	if d.cfg.DrainPeriod > 0 {
		n := int(d.broker.Clients())
		d.broker.Drain((n+9)/10, d.cfg.DrainPeriod/10, ctx.Done(), d.drain)
	}
	var errs []error
	for _, s := range d.http {
		errs = append(errs, s.Shutdown(ctx)) // waits for HTTP sends in flight
	}
	if d.retention != nil {
		d.retention.Close() // before chat: the burner recalls through it
	}
	errs = append(errs, d.chat.Close(ctx))
	if d.bus != nil {
		errs = append(errs, d.bus.Close(ctx)) // after chat: its last events go out
	}
	errs = append(errs, d.closeAsker(ctx))
	errs = append(errs, d.broker.Close())
	d.sessions.Close() // after the broker: the sessions its clients released are saved
	// After the broker: its devices' departures are recorded (not debounced).
	d.presence.Close(ctx)
	if d.pusher != nil {
		d.pusher.Close(ctx) // after chat: the last commits' pushes are in the outbox for whoever runs next
	}
	d.closeWebhooks(ctx) // after chat and the broker: the last events (offline ones too) are written
	errs = append(errs, d.closeStores(ctx))
	d.log.Info("imqttd stopped", "node", d.cfg.NodeID)
	return errors.Join(errs...)
}

// leave takes the node out of the cluster's node list (/v1/endpoints);
// the drain state calls it once, when the drain begins.
func (d *Daemon) leave() {
	if d.registry == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := d.registry.Leave(ctx); err != nil {
		d.log.Warn("leave the node list", "err", err)
	}
}

func (d *Daemon) closeStores(ctx context.Context) error {
	var errs []error
	select {
	case <-d.stopBackground:
	default:
		close(d.stopBackground)
	}
	if d.lease != nil {
		errs = append(errs, d.lease.Release(ctx))
	}
	if d.sharedBans != nil {
		errs = append(errs, d.sharedBans.Close())
	}
	if d.state != nil {
		errs = append(errs, d.state.Close())
	}
	if d.rdb != nil {
		errs = append(errs, d.rdb.Close())
	}
	if d.st != nil && d.ownStore {
		errs = append(errs, d.st.Close())
	}
	errs = append(errs, d.dirLock.Release()) // after the store is closed
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

// backupFunc is GET /v1/admin/backup's: a backup of the embedded store
// and the data directory; nil on a shared (MongoDB) store, which MongoDB's
// own tools back up.
func (d *Daemon) backupFunc() api.BackupFunc {
	ps, ok := d.st.(*pebble.Store)
	if !ok || d.rdb != nil {
		return nil
	}
	return func(ctx context.Context, w io.Writer) error {
		rate := d.cfg.BackupRate
		switch {
		case rate == 0:
			rate = DefaultBackupRate
		case rate < 0:
			rate = 0
		}
		_, err := backup.Write(ctx, w, backup.Source{DataDir: d.cfg.DataDir, Store: ps, Node: d.cfg.NodeID, Rate: rate})
		return err
	}
}

// SessionOptions bound persistent MQTT sessions (Config.Sessions).
type SessionOptions struct {
	ExpiryMax  time.Duration // 0: session.DefaultExpiryMax
	ReplayMax  int           // 0: session.DefaultReplayMax
	Inflight   int           // 0: session.DefaultInflight
	MaxPerUser int           // 0: session.DefaultMaxPerUser
}

// sessionExpiry is ExpiryMax in whole seconds, the package's default for 0.
func sessionExpiry(d time.Duration) uint32 {
	if d <= 0 {
		return session.DefaultExpiryMax
	}
	return uint32(min(d/time.Second, time.Duration(^uint32(0))))
}

// PushOptions configure offline push (Config.Push).
type PushOptions struct {
	Pushers []push.Pusher // the providers (none: push off)
	Preview string        // push.PreviewFull, PreviewSender (""), PreviewNone
	TTL     time.Duration // 0: push.DefaultTTL
	Rate    float64       // notifications a second from this node; 0: push.DefaultRate
}

// WebhookOptions configure the webhooks (Config.Webhook).
type WebhookOptions struct {
	URL    string          // where events are POSTed; empty: webhooks off
	Secret []byte          // the HMAC key of X-Imqtt-Signature
	Events map[string]bool // the events sent (webhook.ParseEvents)
	// Timeout, Concurrency and Fail bound message.before_send: its
	// deadline (0: chat.DefaultHookTimeout), the sends in it at once (0:
	// chat.DefaultHookConcurrency), and what no verdict means
	// (chat.FailOpen, FailClosed; "": chat.DefaultHookFail).
	Timeout     time.Duration
	Concurrency int
	Fail        string
	// TTL is how long an asynchronous event is retried (0:
	// webhook.DefaultTTL); its POST waits Timeout too (0:
	// webhook.DefaultEventTimeout).
	TTL time.Duration
}

// beforeSend is the message.before_send hook w configures, or nil.
func (w WebhookOptions) beforeSend(node int64, maxBody int) (chat.BeforeSend, error) {
	if w.URL == "" || !w.Events[webhook.BeforeSend] {
		return nil, nil
	}
	maxBody = cmp.Or(maxBody, chat.DefaultMaxBody)
	post, err := webhook.New(webhook.Options{URL: w.URL, Secret: w.Secret,
		Timeout: cmp.Or(w.Timeout, chat.DefaultHookTimeout), MaxAnswer: beforesend.MaxAnswer(maxBody)})
	if err != nil {
		return nil, err
	}
	return beforesend.New(post, node)
}

// providesPush reports whether this node pushes through provider.
func (d *Daemon) providesPush(provider string) bool {
	return d.pusher != nil && d.pusher.Provides(provider)
}

// Filter is the daemon's content filter, nil when off; its Reload re-reads
// the lists (what Config.Reload triggers).
func (d *Daemon) Filter() *filter.Filter { return d.filter }

// noLimit is a window flag's 0 ("no limit") as chat takes it (negative).
func noLimit(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
