package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/imqtt/imqtt/broker"
	"github.com/imqtt/imqtt/chat"
	"github.com/imqtt/imqtt/hooks"
	"github.com/imqtt/imqtt/internal/account"
	"github.com/imqtt/imqtt/internal/api"
	"github.com/imqtt/imqtt/internal/daemon"
	"github.com/imqtt/imqtt/internal/filter"
	"github.com/imqtt/imqtt/internal/media"
	"github.com/imqtt/imqtt/internal/push"
	"github.com/imqtt/imqtt/internal/retention"
	"github.com/imqtt/imqtt/internal/session"
	"github.com/imqtt/imqtt/internal/webhook"
	"github.com/imqtt/imqtt/state"
	"github.com/imqtt/imqtt/store/pebble"
)

// options are the daemon's settings as flags. Every flag also reads the
// environment variable IMQTT_<NAME> (IMQTT_MONGO_URI for --mongo-uri) and the
// key <name> of the --config file (YAML or JSON). Precedence: flag, then
// environment, then file, then the default. Defaults are not written here:
// each flag defaults to the named constant of the package it feeds
// (broker.DefaultMaxPacketSize, chat.DefaultMaxBody, ...), the value that
// package also takes for a zero setting, so the two cannot differ
// (TestFlagDefaults).
type options struct {
	cfg       daemon.Config
	config    string
	logFormat string
	logLevel  string
	push      pushFlags
	webhooks  string // --webhook-events
	finish    func() // copies the typed-down flag values into cfg
}

// pushFlags configure offline push's providers (main builds them: push.go).
type pushFlags struct {
	apnsKeyFile, apnsKeyID, apnsTeamID, apnsTopic, apnsURL string
	fcmCredentials, fcmURL, fcmTokenURL                    string
	webhook, webhookSecret                                 string
}

func newFlagSet(o *options) *flag.FlagSet {
	fs := flag.NewFlagSet("imqttd", flag.ContinueOnError)
	c := &o.cfg
	fs.StringVar(&o.config, "config", "", "config file (YAML or JSON) whose keys are these flag names")
	fs.StringVar(&c.MQTTAddr, "mqtt-addr", daemon.DefaultMQTTAddr, "MQTT over TCP listen address (port 0 picks one)")
	fs.StringVar(&c.HTTPAddr, "http-addr", daemon.DefaultHTTPAddr, "HTTP listen address: API, /mqtt WebSocket, /metrics")
	fs.StringVar(&c.DataDir, "data-dir", daemon.DefaultDataDir, "directory of the embedded store")
	fs.StringVar(&c.WALDir, "wal-dir", "", "embedded store: keep the write-ahead log in this existing directory, on a device of its own, so a commit's sync does not wait behind other writes to the data disk (empty: in --data-dir)")
	fs.DurationVar(&c.SyncInterval, "sync-interval", 0, "embedded store: 0 syncs each commit to disk before its ack; above 0 acks once the commit is written to the OS and syncs every interval (a process crash loses nothing, a machine crash at most the interval)")
	c.MinFreeDisk = pebble.DefaultMinFreeDisk
	fs.Var(sizeFlag[int64]{&c.MinFreeDisk}, "min-free-disk", "free bytes kept on the data directory's disk: under it sends and uploads are refused (unavailable), /readyz fails and start-up refuses, until there is room (negative: off)")
	c.BackupRate = daemon.DefaultBackupRate
	fs.Var(sizeFlag[int64]{&c.BackupRate}, "backup-rate", "bytes a second GET /v1/admin/backup streams at most, leaving the disk and CPU to sends (negative: no bound)")
	fs.StringVar(&c.MongoURI, "mongo-uri", "", "MongoDB URI for scale-out mode (empty: embedded store)")
	fs.StringVar(&c.RedisURL, "redis-url", "", "Redis URL for scale-out mode (empty: in-process state)")
	fs.StringVar(&c.MongoDB, "mongo-db", "", "MongoDB database (default: the URI's, else imqtt)")
	fs.BoolVar(&c.UpgradeMongo, "upgrade-mongo", false, "migrate a MongoDB database of an older store format in place; set it once a backup (mongodump) is taken, on one node")
	fs.StringVar(&c.RedisPrefix, "redis-prefix", "", "prefix of every Redis key and channel, so clusters can share a Redis (default imqtt:)")
	fs.StringVar(&c.NodeID, "node-id", "", "this node's name, unique in a cluster (default: the host name)")
	fs.StringVar(&c.AdvertiseMQTT, "advertise-mqtt", "", "host:port clients reach this node's MQTT at, as /v1/endpoints lists it (default: the bound address)")
	fs.StringVar(&c.AdvertiseWS, "advertise-ws", "", "ws://host:port/mqtt clients reach this node's WebSocket at (default: from the bound HTTP address)")
	fs.DurationVar(&c.DrainPeriod, "drain-period", 0, "on SIGTERM, disconnect clients in ten waves over this long (default: 10s in scale-out, 0 on one node)")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "TLS certificate (PEM); with --tls-key turns on MQTT over TLS and HTTPS")
	fs.StringVar(&c.TLSKey, "tls-key", "", "TLS private key (PEM)")
	fs.StringVar(&c.TLSMQTTAddr, "tls-mqtt-addr", daemon.DefaultTLSMQTTAddr, "MQTT over TLS listen address")
	fs.StringVar(&c.TLSHTTPAddr, "tls-http-addr", daemon.DefaultTLSHTTPAddr, "HTTPS and WSS listen address")
	c.MaxBody = chat.DefaultMaxBody
	fs.Var(sizeFlag[int]{&c.MaxBody}, "max-body", "largest message body+meta in bytes")
	fs.IntVar(&c.MaxGroupMembers, "max-group-members", chat.DefaultMaxGroupMembers, "most members a group may have")
	fs.IntVar(&c.MaxGroupsPerUser, "max-groups-per-user", chat.DefaultMaxGroupsPerUser, "most groups a user may be in (anyone may add a user to a group)")
	fs.DurationVar(&c.RecallWindow, "recall-window", chat.DefaultRecallWindow, "how long after its send a message may be recalled (0: no limit)")
	fs.DurationVar(&c.EditWindow, "edit-window", chat.DefaultEditWindow, "how long after its send a text message may be edited (0: no limit)")
	fs.DurationVar(&c.Retention, "retention", retention.DefaultPeriod, "delete messages older than this, with their index rows, in the background at a bounded rate (0: keep forever); see docs/operations.md#retention")
	fs.IntVar(&c.RetentionRate, "retention-rate", retention.DefaultRate, "with --retention: most messages a second this node deletes (and media objects it checks)")
	fs.IntVar(&c.MaxTypingGroup, "max-typing-group", chat.DefaultMaxTypingGroup, "typing is not relayed in groups of more members")
	fs.Int64Var(&c.SendRate, "max-send-rate", daemon.DefaultSendRate, "most sends a user may make a second, all devices and nodes together, after --max-send-burst (0: no limit); more are refused with rate_limited")
	fs.IntVar(&c.SendBurst, "max-send-burst", 0, "sends a user may make at once before --max-send-rate applies (0: 4×the rate)")
	def := account.DefaultLimits
	t := &c.Throttle
	t.LoginIP, t.LoginUserIP, t.LoginUser, t.RegisterIP = def.LoginIP, def.LoginUserIP, def.LoginUser, def.RegisterIP
	fs.Var(limitFlag{&t.LoginIP}, "login-ip-limit", "password attempts (HTTP login, MQTT CONNECT with a password) per client IP (IPv6: per /64), right or wrong, as RATE/PERIOD:BURST or off; more get 429 rate_limited / CONNACK 0x9F (3.1.1: 3)")
	fs.Var(limitFlag{&t.LoginUserIP}, "login-user-ip-limit", "failed password attempts at one account from one client IP, as RATE/PERIOD:BURST or off")
	fs.Var(limitFlag{&t.LoginUser}, "login-user-limit", "failed password attempts at one account from all IPs together, as RATE/PERIOD:BURST or off (tokens are never throttled)")
	fs.Var(limitFlag{&t.RegisterIP}, "register-ip-limit", "registrations per client IP, as RATE/PERIOD:BURST or off")
	// External auth and sign-up (issue 17; docs/integration.md).
	fs.StringVar(&c.JWTKey, "jwt-key", "", "accept JWTs as MQTT passwords and Bearer tokens, checked with this file: an HS256 secret (at least 32 bytes) or a PEM public key (RSA: RS256, ECDSA P-256: ES256, Ed25519: EdDSA); empty: off")
	fs.StringVar(&c.JWTAudience, "jwt-audience", "", "with --jwt-key: a JWT's aud must contain this (empty: not checked)")
	fs.StringVar(&c.JWTIssuer, "jwt-issuer", "", "with --jwt-key: a JWT's iss must be this (empty: not checked)")
	fs.StringVar(&c.Signup, "signup", api.DefaultSignup, "public sign-up (POST /v1/users): open, or closed (403 signup_closed; the server API and JWTs still create users)")
	fs.IntVar(&c.MaxSubscriptions, "max-subscriptions", hooks.DefaultMaxSubscriptions, "most topic filters one MQTT client may hold (a client needs 2); more are refused in the SUBACK")
	fs.DurationVar(&c.Sessions.ExpiryMax, "session-expiry-max", session.DefaultExpiryMax*time.Second, "longest a persistent MQTT session (3.1.1 cleanSession=0, MQTT 5 session expiry) is kept after its device disconnects; past it the device starts clean and uses im/sync")
	fs.IntVar(&c.Sessions.ReplayMax, "session-replay-max", session.DefaultReplayMax, "most events one reconnect of a persistent session replays; past it the device gets a resync event and syncs itself")
	fs.IntVar(&c.Sessions.MaxPerUser, "session-max-per-user", session.DefaultMaxPerUser, "most persistent MQTT sessions one user may hold (one per device); a new one past it is disconnected with 0x97 quota exceeded")
	fs.IntVar(&c.Sessions.Inflight, "session-inflight", session.DefaultInflight, "most QoS 1 events a persistent session leaves unacknowledged (MQTT 5: at most the client's Receive Maximum)")
	fs.IntVar(&c.MaxClientRequests, "max-client-requests", hooks.DefaultRequestsPerClient, "most sync, read and typing requests one MQTT client may have in flight; more syncs and reads are answered busy, more typing is dropped")
	c.Media.MaxImage = media.DefaultMaxImage
	fs.Var(sizeFlag[int64]{&c.Media.MaxImage}, "media-max-image", "largest image upload in bytes")
	c.Media.MaxAudio = media.DefaultMaxAudio
	fs.Var(sizeFlag[int64]{&c.Media.MaxAudio}, "media-max-audio", "largest audio upload in bytes")
	c.Media.MaxVideo = media.DefaultMaxVideo
	fs.Var(sizeFlag[int64]{&c.Media.MaxVideo}, "media-max-video", "largest video upload in bytes")
	c.Media.MaxFile = media.DefaultMaxFile
	fs.Var(sizeFlag[int64]{&c.Media.MaxFile}, "media-max-file", "largest upload of any other type in bytes")
	fs.StringVar(&c.Media.FFmpeg, "ffmpeg", "", `ffmpeg binary for private video (HLS) and video thumbnails ("": from PATH; "off": none)`)
	fs.DurationVar(&c.Broker.ConnectTimeout, "connect-timeout", broker.DefaultConnectTimeout, "a new MQTT connection (TCP, TLS, WebSocket) that has not sent its CONNECT by then is closed")
	fs.IntVar(&c.Broker.MaxPreauthPerIP, "max-preauth-per-ip", broker.DefaultMaxPreauthPerIP, "most MQTT connections from one address (an IPv6 /64) that have not yet logged in; more are closed at once")
	fs.IntVar(&c.Broker.MaxPreauth, "max-preauth", broker.DefaultMaxPreauth, "most MQTT connections from all addresses that have not yet logged in; more are closed at once")
	fs.DurationVar(&c.HTTPBodyTimeout, "http-body-timeout", api.DefaultBodyTimeout, "longest an HTTP request body may take to arrive (uploads: see --http-upload-min-rate); slower gets 408")
	c.HTTPUploadMinRate = api.DefaultUploadMinRate
	fs.Var(sizeFlag[int64]{&c.HTTPUploadMinRate}, "http-upload-min-rate", "slowest an upload (POST /v1/media) may arrive, in bytes a second averaged over --http-upload-window; slower gets 408")
	fs.IntVar(&c.HTTPConnsPerIP, "max-http-conns-per-ip", daemon.DefaultHTTPConnsPerIP, "most HTTP connections one address (an IPv6 /64) may hold open; more are closed at once (negative: no cap)")
	fs.IntVar(&c.HTTPConns, "max-http-conns", daemon.DefaultHTTPConns, "most HTTP connections all addresses together may hold open; more are closed at once (negative: no cap)")
	fs.DurationVar(&c.HTTPUploadWindow, "http-upload-window", api.DefaultUploadWindow, "the window over which --http-upload-min-rate is averaged: how long an upload may stall")
	fs.StringVar(&c.Push.Preview, "push-preview", push.DefaultPreview, "what an offline push says: full (sender and text), sender (\"alice sent you a message\") or none")
	fs.DurationVar(&c.Push.TTL, "push-ttl", push.DefaultTTL, "how long a push is retried while its provider fails; then it is dropped (and counted)")
	fs.Float64Var(&c.Push.Rate, "push-rate", push.DefaultRate, "most push notifications this node sends a second, all providers together (a 10,000-member group's pushes queue behind it; live delivery never does)")
	p := &o.push
	fs.StringVar(&p.apnsKeyFile, "apns-key-file", "", "APNs: the .p8 signing key (token auth); with --apns-key-id, --apns-team-id and --apns-topic turns APNs on")
	fs.StringVar(&p.apnsKeyID, "apns-key-id", "", "APNs: the key's ID")
	fs.StringVar(&p.apnsTeamID, "apns-team-id", "", "APNs: the team ID")
	fs.StringVar(&p.apnsTopic, "apns-topic", "", "APNs: the app's bundle ID (a device may register another)")
	fs.StringVar(&p.apnsURL, "apns-url", "", "APNs: the server (empty: Apple's production host, its sandbox host for devices registered with sandbox)")
	fs.StringVar(&p.fcmCredentials, "fcm-credentials", "", "FCM: the service account's JSON key file; turns FCM (HTTP v1) on")
	fs.StringVar(&p.fcmURL, "fcm-url", "", "FCM: the API's base URL (empty: https://fcm.googleapis.com)")
	fs.StringVar(&p.fcmTokenURL, "fcm-token-url", "", "FCM: the OAuth2 token URL (empty: the credentials')")
	fs.StringVar(&p.webhook, "push-webhook", "", "push through a webhook: each notification is POSTed to this URL, signed with --webhook-secret")
	fs.StringVar(&p.webhookSecret, "webhook-secret", "", "the HMAC-SHA256 key webhooks are signed with (X-Imqtt-Signature); prefer IMQTT_WEBHOOK_SECRET")
	w := &c.Webhook
	fs.StringVar(&w.URL, "webhook-url", "", "the backend's webhook: events are POSTed here, signed with --webhook-secret, and message.before_send asks it about each send (empty: off)")
	fs.StringVar(&o.webhooks, "webhook-events", "all", "the events --webhook-url gets: all, or a comma-separated list of "+strings.Join(webhook.Events, ", "))
	fs.DurationVar(&w.Timeout, "webhook-timeout", chat.DefaultHookTimeout, "message.before_send: how long a send waits for the backend's verdict (then --webhook-fail decides); an asynchronous event's POST waits as long (then it is retried)")
	fs.StringVar(&w.Fail, "webhook-fail", chat.DefaultHookFail, "message.before_send without a verdict (no answer in time, an error status, a bad answer): open stores the send as sent, closed refuses it (unavailable)")
	fs.IntVar(&w.Concurrency, "webhook-concurrency", chat.DefaultHookConcurrency, "message.before_send: most sends waiting for the backend at once (each sender's order in each conversation is kept)")
	fs.DurationVar(&w.TTL, "webhook-ttl", webhook.DefaultTTL, "the asynchronous events (message.after_send, user.online, ...): how long one is retried while the backend fails (each POST waits --webhook-timeout); then it is dropped and counted")
	// The content filter (internal/filter); its files are re-read on SIGHUP.
	fs.StringVar(&c.Filter.Words, "filter-words", "", "content filter: a file of terms, one a line ('#' comments), matched case-insensitively on Unicode-normalised text of every text send (empty: none); re-read on SIGHUP")
	fs.StringVar(&c.Filter.Action, "filter-action", filter.DefaultAction, "content filter: what a match does: reject (the send is refused with rejected, not stored) or mask (stored with '*' over each matched character)")
	fs.StringVar(&c.Filter.Links, "filter-links", filter.DefaultLinks, "content filter: links in text sends: allow, deny (every link is a match), or a file of allowed domains, one a line (their subdomains pass too; other links are matches); re-read on SIGHUP")
	var maxPacket, writes, keepalive uint
	maxPacket = broker.DefaultMaxPacketSize
	fs.Var(sizeFlag[uint]{&maxPacket}, "max-packet-size", "largest MQTT packet in bytes; larger closes the connection")
	fs.UintVar(&writes, "max-writes-pending", broker.DefaultMaxWritesPending, "per-client outbound queue in packets for TLS connections (overflow is recovered by sync)")
	fs.BoolVar(&c.Broker.GoroutineIO, "mqtt-goroutines", false, "serve plain MQTT and WebSocket on two goroutines per connection, as TLS is, instead of the event loop")
	c.Broker.MaxReadBacklog = broker.DefaultMaxReadBacklog
	fs.Var(sizeFlag[int]{&c.Broker.MaxReadBacklog}, "max-read-backlog", "bytes an MQTT connection may have sent that are not yet processed; past it the client is disconnected (0x96)")
	c.Broker.MaxWriteBacklog = broker.DefaultMaxWriteBacklog
	fs.Var(sizeFlag[int]{&c.Broker.MaxWriteBacklog}, "max-write-backlog", "bytes written to an MQTT connection that its socket has not taken; past it the connection is closed (a client that stopped reading)")
	fs.UintVar(&keepalive, "keepalive", broker.DefaultKeepalive, "keepalive in seconds imposed on clients that ask for 0")
	fs.StringVar(&o.logFormat, "log-format", daemon.DefaultLogFormat, "log format: text or json")
	fs.Float64Var(&c.AccessLogSample, "access-log-sample", api.DefaultAccessLogSample, "share of successful HTTP requests the access log writes (method, route, status, bytes, duration, remote; never a query string or a header): 0 none, 1 all; errors are logged at a bounded rate whatever it is")
	fs.StringVar(&o.logLevel, "log-level", daemon.DefaultLogLevel, "log level: debug, info, warn, error")
	fs.StringVar(&c.AdminToken, "admin-token", "", "token for /v1/admin/ and the /dashboard/ (empty: admin API off; generate: imqttd makes one, kept in <data-dir>/admin-token); prefer IMQTT_ADMIN_TOKEN to a flag other users can see")
	// The server API (issue 17): keys and the bound of each key's sends.
	fs.Var(serverKeysFlag{&c.ServerKeys}, "server-key", "comma-separated keys (each at least 32 bytes) that open /v1/server/ as Authorization: Bearer <key>; several so a key can be rotated (empty: the server API is off, 404); prefer IMQTT_SERVER_KEY to a flag other users can see")
	fs.IntVar(&c.ServerSendRate, "server-send-rate", api.DefaultServerSendRate, "most sends one server key may make a second through POST /v1/server/messages (not bound by --max-send-rate); more get 429 rate_limited")
	fs.Var(corsFlag{&c.CORSOrigins}, "cors-origins", "comma-separated origins (https://app.example) whose web pages may call the API, or * for any; never with credentials (the API takes Bearer tokens); empty: CORS off")
	fs.StringVar(&c.PprofAddr, "pprof-addr", "", "serve net/http/pprof on this address, e.g. 127.0.0.1:6060 (empty: off; never expose it)")
	o.finish = func() {
		if c.SendRate == 0 { // the flag's "no limit" is daemon.Config's negative
			c.SendRate = -1
		}
		c.Broker.MaxPacketSize = uint32(maxPacket)
		c.Broker.MaxWritesPending = int32(writes)
		c.Broker.Keepalive = uint16(keepalive)
	}
	return fs
}

// parse fills o from args, the environment and the config file.
//
// Why by hand and not knadh/koanf (compared for issue 20): koanf's
// basicflag, env and file providers merge into its own map, and its
// values then have to be put back into these flags one by one (every
// flag here is a typed pointer into daemon.Config, and several are
// flag.Values that check their input: limits, sizes, keys, origins), so
// the loop below would stay, with a map in front of it. Unknown config
// keys, which we refuse, are not an error in koanf either; the env
// provider's name mapping and the file provider's YAML parser would be
// four more modules for what is thirty lines here. The behaviour is the
// same either way: flag, then IMQTT_<NAME>, then the file's key, then
// the default, each value going through the flag's own Set.
func parse(args []string, env func(string) string) (*options, error) {
	o := &options{}
	fs := newFlagSet(o)
	fs.SetOutput(io.Discard) // help and errors are said in --name form (help.go)
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, flagError(err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.config == "" {
		o.config = env("IMQTT_CONFIG")
	}
	file := map[string]any{}
	if o.config != "" {
		raw, err := os.ReadFile(o.config)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		if err := yaml.Unmarshal(raw, &file); err != nil {
			return nil, fmt.Errorf("config %s: %w", o.config, err)
		}
	}
	for key := range file {
		name := strings.ReplaceAll(key, "_", "-")
		if fs.Lookup(name) == nil || name == "config" {
			return nil, fmt.Errorf("config %s: unknown key %q", o.config, key)
		}
	}
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || f.Name == "config" {
			return
		}
		envName := "IMQTT_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := env(envName); v != "" {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", envName, err))
			}
			return
		}
		for _, key := range []string{f.Name, strings.ReplaceAll(f.Name, "-", "_")} {
			if v, ok := file[key]; ok {
				if err := f.Value.Set(fmt.Sprint(v)); err != nil {
					errs = append(errs, fmt.Errorf("config key %s: %w", key, err))
				}
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	o.finish()
	if err := checkServerKeys(o.cfg.ServerKeys); err != nil {
		return nil, err
	}
	if (o.cfg.TLSCert == "") != (o.cfg.TLSKey == "") {
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	if o.cfg.Broker.MaxReadBacklog <= 0 || o.cfg.Broker.MaxWriteBacklog <= 0 {
		return nil, errors.New("--max-read-backlog and --max-write-backlog: a positive number of bytes (a connection without a bound could hold the node's memory)")
	}
	if s := o.cfg.Sessions; s.ExpiryMax < time.Second || s.ReplayMax <= 0 || s.MaxPerUser <= 0 || s.Inflight <= 0 || s.Inflight > 65535 {
		return nil, errors.New("--session-expiry-max: at least 1s; --session-replay-max and --session-max-per-user: a positive count; --session-inflight: 1 to 65535 (MQTT's packet IDs)")
	}
	if !push.ValidPreview(o.cfg.Push.Preview) || o.cfg.Push.TTL < time.Second || o.cfg.Push.Rate <= 0 {
		return nil, errors.New("--push-preview: full, sender or none; --push-ttl: at least 1s; --push-rate: above 0")
	}
	if s := o.cfg.AccessLogSample; !(s >= 0 && s <= 1) {
		return nil, fmt.Errorf("--access-log-sample: from 0 (none) to 1 (all), not %v", s)
	}
	if o.cfg.Webhook.TTL < time.Second {
		return nil, errors.New("--webhook-ttl: at least 1s")
	}
	if a := o.cfg.Filter.Action; a != filter.ActionReject && a != filter.ActionMask {
		return nil, fmt.Errorf("--filter-action: reject or mask, not %q", a)
	}
	if o.cfg.Signup != api.SignupOpen && o.cfg.Signup != api.SignupClosed {
		return nil, errors.New("--signup: open or closed")
	}
	if o.cfg.JWTKey == "" && (o.cfg.JWTAudience != "" || o.cfg.JWTIssuer != "") {
		return nil, errors.New("--jwt-audience and --jwt-issuer check JWTs: they need --jwt-key")
	}
	if o.cfg.SyncInterval < 0 {
		return nil, errors.New("--sync-interval: 0 (sync each commit) or a positive duration")
	}
	if o.cfg.SyncInterval > 0 && o.cfg.MongoURI != "" {
		return nil, errors.New("--sync-interval is the embedded store's; with --mongo-uri durability is MongoDB's write concern (in the URI)")
	}
	if o.cfg.WALDir != "" {
		if o.cfg.MongoURI != "" {
			return nil, errors.New("--wal-dir is the embedded store's; with --mongo-uri the log is MongoDB's (its journal)")
		}
		if err := walDirOutside(o.cfg.WALDir, o.cfg.DataDir); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// walDirOutside refuses a write-ahead log directory inside the data
// directory: a backup would stream its live logs and a restore, which
// wants an empty data directory, would find them in the way; and it
// would be on the data's device, which is what --wal-dir is to avoid.
func walDirOutside(walDir, dataDir string) error {
	w, err1 := filepath.Abs(walDir)
	d, err2 := filepath.Abs(dataDir)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("--wal-dir: %w", err)
	}
	// Through symbolic links too, where the directories exist already.
	if r, err := filepath.EvalSymlinks(w); err == nil {
		w = r
	}
	if r, err := filepath.EvalSymlinks(d); err == nil {
		d = r
	}
	if rel, err := filepath.Rel(d, w); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return fmt.Errorf("--wal-dir %s is inside --data-dir %s: give it a directory of its own, on another device", walDir, dataDir)
	}
	return nil
}

// limitFlag is a state.Limit as a flag: RATE/PERIOD:BURST, or off.
type limitFlag struct{ l *state.Limit }

func (f limitFlag) String() string {
	if f.l == nil {
		return ""
	}
	return f.l.String()
}

func (f limitFlag) Set(s string) error {
	l, err := state.ParseLimit(s)
	if err != nil {
		return err
	}
	*f.l = l
	return nil
}

// serverKeysFlag is --server-key: comma-separated keys, each at least
// api.MinServerKey bytes. A shorter one refuses the start; no error
// message shows a key.
type serverKeysFlag struct{ keys *[]string }

func (f serverKeysFlag) String() string {
	if f.keys == nil || len(*f.keys) == 0 {
		return ""
	}
	return fmt.Sprintf("(%d keys)", len(*f.keys))
}

// Set keeps the keys; checkServerKeys checks them after parsing (the flag
// package would quote the value in Set's error).
func (f serverKeysFlag) Set(v string) error {
	var keys []string
	for k := range strings.SplitSeq(v, ",") {
		if k = strings.TrimSpace(k); k != "" {
			keys = append(keys, k)
		}
	}
	*f.keys = keys
	return nil
}

// checkServerKeys refuses a key shorter than api.MinServerKey, by its
// place in the list.
func checkServerKeys(keys []string) error {
	for i, k := range keys {
		if len(k) < api.MinServerKey {
			return fmt.Errorf("--server-key: key %d is %d bytes: each must be at least %d (e.g. openssl rand -hex 32)", i+1, len(k), api.MinServerKey)
		}
	}
	return nil
}

// corsFlag is --cors-origins (api.ParseCORSOrigins).
type corsFlag struct{ origins *[]string }

func (f corsFlag) String() string {
	if f.origins == nil {
		return ""
	}
	return strings.Join(*f.origins, ",")
}

func (f corsFlag) Set(v string) error {
	o, err := api.ParseCORSOrigins(v)
	if err != nil {
		return err
	}
	*f.origins = o
	return nil
}
