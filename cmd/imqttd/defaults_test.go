package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
	"github.com/imqtt/imqtt/store/pebble"
)

// flagDefaults is what each flag defaults to: the constant of the package
// it feeds, which that package also takes for a zero setting. A zero here
// ("" or 0) is passed on as zero, so the package's own default applies
// (noted), or means off.
var flagDefaults = map[string]any{
	"config":                "",
	"mqtt-addr":             daemon.DefaultMQTTAddr,
	"http-addr":             daemon.DefaultHTTPAddr,
	"data-dir":              daemon.DefaultDataDir,
	"min-free-disk":         pebble.DefaultMinFreeDisk,
	"sync-interval":         time.Duration(0), // each commit synced before its ack
	"wal-dir":               "",               // the log in the store's directory
	"backup-rate":           daemon.DefaultBackupRate,
	"mongo-uri":             "",
	"redis-url":             "",
	"mongo-db":              "", // store/mongo: the URI's, else DefaultDatabase
	"upgrade-mongo":         false,
	"redis-prefix":          "", // state/redis.DefaultPrefix
	"node-id":               "", // the host name
	"advertise-mqtt":        "",
	"advertise-ws":          "",
	"drain-period":          "0s", // daemon.DefaultDrainPeriod in scale-out
	"tls-cert":              "",
	"tls-key":               "",
	"tls-mqtt-addr":         daemon.DefaultTLSMQTTAddr,
	"tls-http-addr":         daemon.DefaultTLSHTTPAddr,
	"max-body":              chat.DefaultMaxBody,
	"max-group-members":     chat.DefaultMaxGroupMembers,
	"max-groups-per-user":   chat.DefaultMaxGroupsPerUser,
	"max-send-rate":         daemon.DefaultSendRate,
	"recall-window":         chat.DefaultRecallWindow.String(),
	"edit-window":           chat.DefaultEditWindow.String(),
	"retention":             retention.DefaultPeriod.String(), // keep forever
	"retention-rate":        retention.DefaultRate,
	"max-typing-group":      chat.DefaultMaxTypingGroup,
	"max-send-burst":        0, // chat.DefaultBurstFactor × the rate
	"login-ip-limit":        account.DefaultLimits.LoginIP,
	"login-user-ip-limit":   account.DefaultLimits.LoginUserIP,
	"login-user-limit":      account.DefaultLimits.LoginUser,
	"register-ip-limit":     account.DefaultLimits.RegisterIP,
	"max-subscriptions":     hooks.DefaultMaxSubscriptions,
	"max-client-requests":   hooks.DefaultRequestsPerClient,
	"session-expiry-max":    session.DefaultExpiryMax * time.Second,
	"session-replay-max":    session.DefaultReplayMax,
	"session-inflight":      session.DefaultInflight,
	"push-preview":          push.DefaultPreview,
	"push-ttl":              push.DefaultTTL,
	"push-rate":             float64(push.DefaultRate),
	"apns-key-file":         "", // APNs off
	"apns-key-id":           "",
	"apns-team-id":          "",
	"apns-topic":            "",
	"apns-url":              "", // Apple's hosts
	"fcm-credentials":       "", // FCM off
	"fcm-url":               "", // Google's
	"fcm-token-url":         "", // the credentials'
	"push-webhook":          "", // off
	"webhook-secret":        "",
	"webhook-url":           "", // off
	"webhook-events":        "all",
	"webhook-timeout":       chat.DefaultHookTimeout,
	"webhook-fail":          chat.DefaultHookFail,
	"webhook-concurrency":   chat.DefaultHookConcurrency,
	"webhook-ttl":           webhook.DefaultTTL,
	"session-max-per-user":  session.DefaultMaxPerUser,
	"media-max-image":       media.DefaultMaxImage,
	"media-max-audio":       media.DefaultMaxAudio,
	"media-max-video":       media.DefaultMaxVideo,
	"media-max-file":        media.DefaultMaxFile,
	"ffmpeg":                "", // from PATH
	"connect-timeout":       broker.DefaultConnectTimeout,
	"max-preauth-per-ip":    broker.DefaultMaxPreauthPerIP,
	"max-preauth":           broker.DefaultMaxPreauth,
	"http-body-timeout":     api.DefaultBodyTimeout,
	"http-upload-min-rate":  api.DefaultUploadMinRate,
	"max-http-conns-per-ip": daemon.DefaultHTTPConnsPerIP,
	"max-http-conns":        daemon.DefaultHTTPConns,
	"http-upload-window":    api.DefaultUploadWindow,
	"max-packet-size":       broker.DefaultMaxPacketSize,
	"max-writes-pending":    broker.DefaultMaxWritesPending,
	"mqtt-goroutines":       false,
	"max-read-backlog":      broker.DefaultMaxReadBacklog,
	"max-write-backlog":     broker.DefaultMaxWriteBacklog,
	"keepalive":             broker.DefaultKeepalive,
	"log-format":            daemon.DefaultLogFormat,
	"log-level":             daemon.DefaultLogLevel,
	"admin-token":           "",
	"server-key":            "",
	"server-send-rate":      api.DefaultServerSendRate,
	"pprof-addr":            "",
	"cors-origins":          "", // CORS off
	"access-log-sample":     api.DefaultAccessLogSample,
	"jwt-key":               "", // JWTs off
	"jwt-audience":          "", // not checked
	"jwt-issuer":            "", // not checked
	"signup":                api.DefaultSignup,
	// the content filter
	"filter-words":  "", // none
	"filter-action": filter.DefaultAction,
	"filter-links":  filter.DefaultLinks,
}

// TestFlagDefaults: every flag defaults to the value the package it feeds
// takes for a zero setting, so a default is written once and the flag and
// the package cannot drift apart; a new flag must be listed here.
func TestFlagDefaults(t *testing.T) {
	fs := newFlagSet(&options{})
	seen := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) {
		seen[f.Name] = true
		want, ok := flagDefaults[f.Name]
		if !ok {
			t.Errorf("--%s is not in flagDefaults: name the package default it feeds", f.Name)
			return
		}
		if w := fmt.Sprint(want); f.DefValue != w {
			t.Errorf("--%s defaults to %s, its package to %s", f.Name, f.DefValue, w)
		}
	})
	for name := range flagDefaults {
		if !seen[name] {
			t.Errorf("flagDefaults lists --%s, which is not a flag", name)
		}
	}
}

// TestParsedDefaults: with nothing set, the Config handed to the daemon
// holds the packages' defaults, through the flags' conversions.
func TestParsedDefaults(t *testing.T) {
	o, err := parse(nil, envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	c, b := o.cfg, o.cfg.Broker
	if b.MaxPacketSize != broker.DefaultMaxPacketSize || b.MaxWritesPending != broker.DefaultMaxWritesPending ||
		b.Keepalive != broker.DefaultKeepalive || b.ConnectTimeout != broker.DefaultConnectTimeout ||
		b.MaxPreauthPerIP != broker.DefaultMaxPreauthPerIP || b.MaxPreauth != broker.DefaultMaxPreauth {
		t.Errorf("broker options %+v", b)
	}
	if c.MaxBody != chat.DefaultMaxBody || c.MaxGroupMembers != chat.DefaultMaxGroupMembers || c.MaxGroupsPerUser != chat.DefaultMaxGroupsPerUser ||
		c.SendRate != daemon.DefaultSendRate ||
		c.MinFreeDisk != pebble.DefaultMinFreeDisk || c.Throttle != account.DefaultLimits ||
		c.MaxSubscriptions != hooks.DefaultMaxSubscriptions || c.MaxClientRequests != hooks.DefaultRequestsPerClient {
		t.Errorf("config %+v", c)
	}
	if c.Media.MaxImage != media.DefaultMaxImage || c.Media.MaxVideo != media.DefaultMaxVideo ||
		c.HTTPBodyTimeout != api.DefaultBodyTimeout || c.HTTPUploadWindow != api.DefaultUploadWindow ||
		c.HTTPConns != daemon.DefaultHTTPConns || c.MQTTAddr != daemon.DefaultMQTTAddr || c.DataDir != daemon.DefaultDataDir {
		t.Errorf("config %+v", c)
	}
	if o.logFormat != daemon.DefaultLogFormat || o.logLevel != daemon.DefaultLogLevel {
		t.Errorf("log %s %s", o.logFormat, o.logLevel)
	}
}

// TestJWTAndSignupFlags: --signup takes open or closed only; --jwt-audience
// and --jwt-issuer without --jwt-key are a mistake, said at start; a key
// file refused by internal/jwtauth (a short secret) fails the start and
// the message names the file, not the secret.
func TestJWTAndSignupFlags(t *testing.T) {
	for _, args := range [][]string{{"--signup", "maybe"}, {"--signup", ""}, {"--jwt-audience", "imqtt"}, {"--jwt-issuer", "me"}} {
		if _, err := parse(args, envOf(nil)); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
	o, err := parse([]string{"--signup", "closed", "--jwt-key", "k", "--jwt-audience", "imqtt"}, envOf(map[string]string{"IMQTT_JWT_ISSUER": "me"}))
	if err != nil || o.cfg.Signup != api.SignupClosed || o.cfg.JWTKey != "k" || o.cfg.JWTAudience != "imqtt" || o.cfg.JWTIssuer != "me" {
		t.Fatalf("parse: %v %+v", err, o)
	}
	key := filepath.Join(t.TempDir(), "jwt.key")
	if err := os.WriteFile(key, []byte("too-short-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	code := run([]string{"--jwt-key", key, "--data-dir", t.TempDir(), "--mqtt-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"}, envOf(nil), &stderr)
	if code == 0 || !strings.Contains(stderr.String(), key) || !strings.Contains(stderr.String(), "at least 32 bytes") || strings.Contains(stderr.String(), "too-short-secret") {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
}
