package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/imqtt/imqtt/bench"
)

// benchScenarioNames are the arguments imqtt bench takes first;
// benchScenarios lists them for a message.
var (
	benchScenarioNames = []string{"p2p", "conns", "sync", "group", "replay", "compare", "push-sink"}
	benchScenarios     = strings.Join(benchScenarioNames[:len(benchScenarioNames)-1], ", ") + " or " + benchScenarioNames[len(benchScenarioNames)-1]
)

// cmdBench: imqtt bench SCENARIO [flags]
// It runs one load scenario (package bench) against --server (imqttd) or,
// with --plain, against any MQTT broker at --mqtt; shows a live progress line
// on stderr; prints a result table (or JSON) on stdout; and fails with exit
// code 1 when a message was lost or duplicated, a send was never acked, or
// the asked rate was not reached. "compare FILE..." turns result files into
// markdown with the ratios to the baselines.
func cmdBench(ctx context.Context, c *cli, args []string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
			fmt.Fprintf(c.stderr, "usage: imqtt bench SCENARIO [flags]; SCENARIO is %s; imqtt bench SCENARIO --help lists its flags\n", benchScenarios)
			return flag.ErrHelp
		}
		return usagef("missing the scenario: %s", benchScenarios)
	}
	scenario, args := args[0], args[1:]
	fs := c.flags("bench")
	var out benchOutput
	out.register(fs)
	target := func(plain *bool, label *string) bench.Target {
		return bench.Target{Server: c.g.server, MQTT: c.g.mqtt, Plain: *plain, Label: *label}
	}
	var run func() (*bench.Result, error)
	switch scenario {
	case "p2p":
		var o bench.P2POptions
		plain, label := targetFlags(fs)
		fs.IntVar(&o.Pairs, "pairs", 10, "sender/receiver pairs")
		fs.Float64Var(&o.Rate, "rate", 0, "total sends per second over all pairs (0: as fast as acks allow)")
		fs.IntVar(&o.InFlight, "inflight", 64, "unacknowledged sends per sender")
		fs.DurationVar(&o.Duration, "duration", 10*time.Second, "how long to send (unless --messages)")
		fs.IntVar(&o.Messages, "messages", 0, "total messages to send over all pairs (0: send for --duration)")
		fs.IntVar(&o.Size, "size", 64, "message body bytes")
		fs.DurationVar(&o.Drain, "drain", 30*time.Second, "how long to wait for acks and deliveries after sending")
		fs.IntVar(&o.ServerPID, "server-pid", 0, "the server's process ID: its CPU time (/proc/PID/stat) is reported")
		fs.StringVar(&o.PprofURL, "pprof", "", "the server's net/http/pprof base URL (imqttd --pprof-addr), for --profile")
		fs.StringVar(&o.ProfilePrefix, "profile", "", "save the server's CPU and allocation profiles while sending to PREFIX-cpu.pprof and PREFIX-allocs.pprof")
		fs.BoolVar(&o.Sessions, "sessions", false, "receivers are plain MQTT 3.1.1 devices with persistent sessions, inbox at QoS 1 (imqttd only)")
		fs.BoolVar(&o.PushDevices, "push-devices", false, "each receiver also has an offline phone with a webhook push token: every message is also a push (imqttd with --push-webhook)")
		fs.IntVar(&o.PushPhones, "push-phones", 1, "offline phones per receiver with --push-devices, at most 16 (imqttd's push registrations per user; each is a login: about 50 ms of server CPU)")
		run = func() (*bench.Result, error) {
			o.Target, o.Progress, o.Logger = target(plain, label), out.progress(c), c.log
			if o.PushDevices && o.Target.Plain {
				return nil, usagef("--push-devices is for imqttd, not --plain")
			}
			if o.Target.Plain && o.Target.MQTT == "" {
				return nil, usagef("--plain needs --mqtt HOST:PORT")
			}
			if o.Target.Plain && o.Sessions {
				return nil, usagef("--sessions is for imqttd, not --plain")
			}
			return bench.P2P(ctx, o)
		}
	case "conns":
		var o bench.ConnsOptions
		plain, label := targetFlags(fs)
		fs.IntVar(&o.Conns, "conns", 1000, "idle connections to open")
		fs.IntVar(&o.Users, "users", 0, "imqttd accounts to spread them over (default min(conns, 100); accounts are slow to make)")
		fs.IntVar(&o.Concurrency, "concurrency", 64, "connections being opened at once")
		fs.IntVar(&o.ServerPID, "server-pid", 0, "the server's process ID, whose RSS (/proc/PID/status) is read before and after")
		fs.DurationVar(&o.Settle, "settle", 2*time.Second, "wait after the last connection before reading the RSS")
		fs.DurationVar(&o.Hold, "hold", 0, "keep the connections open this long after measuring")
		fs.IntVar(&o.PerIP, "per-ip", 20_000, "connections per 127.0.0.x source address")
		fs.StringVar(&o.PprofURL, "pprof", "", "a Go server's net/http/pprof base URL: force a GC before each memory reading and report the heap in use")
		fs.StringVar(&o.WS, "ws", "", "connect over WebSocket to this URL (imqttd: ws://HTTP-ADDR/mqtt) instead of TCP")
		fs.DurationVar(&o.Keepalive, "keepalive", 0, "CONNECT keepalive, with a PINGREQ sent at it (0: 900 s and no PINGREQ)")
		fs.DurationVar(&o.Idle, "idle", 0, "after the memory reading, measure the server's CPU (--server-pid) over this idle time")
		fs.BoolVar(&o.Sessions, "sessions", false, "each connection asks for a persistent session (cleanSession=0), subscribed at QoS 1")
		run = func() (*bench.Result, error) {
			o.Target, o.Progress = target(plain, label), out.progress(c)
			if o.Target.Plain && o.Target.MQTT == "" {
				return nil, usagef("--plain needs --mqtt HOST:PORT")
			}
			return bench.Conns(ctx, o)
		}
	case "sync":
		var o bench.SyncOptions
		label := fs.String("label", bench.LabelImqttd, "the target's name in the report")
		fs.IntVar(&o.Messages, "messages", 20_000, "messages the device misses")
		fs.IntVar(&o.InFlight, "inflight", 32, "concurrent HTTP sends while filling its inbox")
		fs.IntVar(&o.Size, "size", 64, "message body bytes")
		fs.IntVar(&o.SyncLimit, "sync-limit", 0, "items per sync request (0: the SDK's default)")
		fs.BoolVar(&o.NoCompression, "no-compression", false, "ask for plain JSON sync replies instead of gzip")
		fs.IntVar(&o.ServerPID, "server-pid", 0, "the server's process ID: its CPU time over the catch-up is reported")
		run = func() (*bench.Result, error) {
			o.Target, o.Progress, o.Logger = bench.Target{Server: c.g.server, MQTT: c.g.mqtt, Label: *label}, out.progress(c), c.log
			return bench.Sync(ctx, o)
		}
	case "group":
		var o bench.GroupOptions
		label := fs.String("label", bench.LabelImqttd, "the target's name in the report")
		fs.IntVar(&o.Members, "members", 200, "group size, the owner included")
		fs.IntVar(&o.Online, "online", 50, "members connected")
		fs.IntVar(&o.Messages, "messages", 100, "messages the owner sends")
		fs.IntVar(&o.InFlight, "inflight", 1, "the owner's unacknowledged sends")
		fs.IntVar(&o.Size, "size", 64, "message body bytes")
		run = func() (*bench.Result, error) {
			o.Target, o.Progress, o.Logger = bench.Target{Server: c.g.server, MQTT: c.g.mqtt, Label: *label}, out.progress(c), c.log
			return bench.Group(ctx, o)
		}
	case "replay":
		var o bench.ReplayOptions
		label := fs.String("label", bench.LabelImqttd, "the target's name in the report")
		fs.IntVar(&o.Devices, "devices", 1, "devices with persistent sessions, one account each")
		fs.IntVar(&o.Missed, "missed", 1000, "messages each device misses while away")
		fs.IntVar(&o.Concurrency, "concurrency", 0, "devices reconnecting at once (0: all)")
		fs.IntVar(&o.InFlight, "inflight", 32, "concurrent HTTP sends while filling the inboxes")
		fs.IntVar(&o.Size, "size", 64, "message body bytes")
		fs.DurationVar(&o.Timeout, "timeout", 2*time.Minute, "how long the replay may take")
		fs.IntVar(&o.PerIP, "per-ip", 64, "devices per 127.0.0.x source address (imqttd's --max-preauth-per-ip is 128)")
		fs.IntVar(&o.ServerPID, "server-pid", 0, "the server's process ID: its CPU time over the replay is reported")
		fs.StringVar(&o.PprofURL, "pprof", "", "the server's net/http/pprof base URL (imqttd --pprof-addr), for --profile")
		fs.StringVar(&o.ProfilePrefix, "profile", "", "save the server's CPU and allocation profiles from the first reconnect to PREFIX-cpu.pprof and PREFIX-allocs.pprof")
		fs.DurationVar(&o.ProfileTime, "profile-time", 2*time.Second, "how long --profile profiles (whole seconds)")
		run = func() (*bench.Result, error) {
			o.Target, o.Progress = bench.Target{Server: c.g.server, MQTT: c.g.mqtt, Label: *label}, out.progress(c)
			return bench.Replay(ctx, o)
		}
	case "push-sink":
		return benchPushSink(ctx, c, fs, args)
	case "compare":
		files, err := c.parse(fs, args, 1, -1)
		if err != nil {
			return err
		}
		return benchCompare(c.stdout, files)
	default:
		return usagef("unknown scenario %q: want %s", scenario, benchScenarios)
	}
	if _, err := c.parse(fs, args, 0, 0); err != nil {
		return err
	}
	if err := out.check(); err != nil {
		return err
	}
	if out.cpuprofile != "" {
		f, err := os.Create(out.cpuprofile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return err
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	res, err := run()
	if err != nil {
		return err
	}
	if err := out.write(c.stdout, res); err != nil {
		return err
	}
	return res.Err()
}

// targetFlags are the flags of the scenarios that also run against plain brokers.
func targetFlags(fs *flag.FlagSet) (plain *bool, label *string) {
	plain = fs.Bool("plain", false, "any MQTT broker at --mqtt on plain topics bench/{i}, no accounts (for the baselines)")
	label = fs.String("label", "", "the target's name in the report (default imqttd, or plain with --plain)")
	return plain, label
}

// benchOutput is where a result goes.
type benchOutput struct {
	format     string
	json       string
	quiet      bool
	cpuprofile string
}

func (o *benchOutput) register(fs *flag.FlagSet) {
	fs.StringVar(&o.format, "format", "table", "result on stdout: table or json")
	fs.StringVar(&o.json, "json", "", "also write the result as JSON to this file")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress line on stderr")
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "write the bench's own CPU profile to this file (the load tool shares the machine)")
}

func (o *benchOutput) check() error {
	if o.format != "table" && o.format != "json" {
		return usagef("--format is table or json, not %q", o.format)
	}
	return nil
}

func (o *benchOutput) progress(c *cli) io.Writer {
	if o.quiet {
		return nil
	}
	return c.stderr
}

func (o *benchOutput) write(stdout io.Writer, res *bench.Result) error {
	if o.json != "" {
		f, err := os.Create(o.json)
		if err != nil {
			return err
		}
		if err := res.WriteJSON(f); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	if o.format == "json" {
		return res.WriteJSON(stdout)
	}
	return res.WriteTable(stdout)
}

// benchPushSink: imqtt bench push-sink --addr A --delay D --secret S [--status N]
// It runs a webhook push receiver (bench.Sink) for imqttd's --push-webhook
// until SIGINT or SIGTERM: it prints {"url":...} once listening, and the
// figures ({"pushes","per_sec","latency_ms":{"p50","p99","max"}...}) as
// it ends; GET URL/stats gives them meanwhile (?reset=1 starts them again).
func benchPushSink(ctx context.Context, c *cli, fs *flag.FlagSet, args []string) error {
	var o bench.SinkOptions
	fs.StringVar(&o.Addr, "addr", "127.0.0.1:0", "where to listen")
	fs.DurationVar(&o.Delay, "delay", 0, "how long each answer waits (a slow provider)")
	secret := fs.String("secret", "", "imqttd's --webhook-secret: each push's X-Imqtt-Signature is checked with it (env IMQTT_PUSH_SECRET)")
	fs.IntVar(&o.Status, "status", http.StatusOK, "the answers' HTTP status (410: an invalid token, 503: an outage)")
	if _, err := c.parse(fs, args, 0, 0); err != nil {
		return err
	}
	if *secret == "" {
		*secret = c.env.getenv("IMQTT_PUSH_SECRET")
	}
	if *secret == "" {
		return usagef("--secret is required: imqttd's --webhook-secret")
	}
	o.Secret = []byte(*secret)
	s, err := bench.NewSink(o)
	if err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	enc := json.NewEncoder(c.stdout)
	if err := enc.Encode(map[string]string{"url": s.URL()}); err != nil {
		s.Close()
		return err
	}
	select {
	case <-ctx.Done():
	case err = <-served:
		if err == nil {
			err = errors.New("push sink: stopped")
		}
	}
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	if err := enc.Encode(s.Stats(false)); err != nil {
		return err
	}
	return err
}

// benchCompare prints the markdown comparison of result files.
func benchCompare(stdout io.Writer, files []string) error {
	var rs []*bench.Result
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		r, err := bench.ReadResult(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		rs = append(rs, r)
	}
	return bench.Compare(stdout, rs)
}
