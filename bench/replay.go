package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/imqtt/imqtt/wire"
)

// ReplayOptions configure the replay scenario: Devices plain MQTT devices
// with persistent sessions each miss Missed messages, then all reconnect
// and get them replayed from the store (internal/session). Zero values take
// the defaults in parentheses.
type ReplayOptions struct {
	Target  Target // an imqttd
	Devices int    // devices, one account each (1)
	Missed  int    // messages each device misses (1,000)
	// Concurrency is how many devices reconnect at once (Devices: all).
	Concurrency int
	InFlight    int           // concurrent HTTP sends while filling the inboxes (32)
	Size        int           // body bytes (64)
	Timeout     time.Duration // for the replay (2m)
	// Linger, after the last device is complete, is how long the
	// connections stay open so that a duplicate would show (1s).
	Linger time.Duration
	// PerIP is how many devices share one 127.0.0.x source address when
	// the server is on loopback (64): imqttd closes more than
	// --max-preauth-per-ip (128) connections of one address that have
	// not yet logged in, and 1,000 devices reconnecting at once are that.
	PerIP     int
	ServerPID int // the server's process, for its CPU time over the replay; 0: not measured
	// PprofURL and ProfilePrefix, if both set, save the server's CPU and
	// allocation profiles over ProfileTime (2s) from the first reconnect
	// to ProfilePrefix-cpu.pprof and ProfilePrefix-allocs.pprof.
	PprofURL, ProfilePrefix string
	ProfileTime             time.Duration
	Progress                io.Writer
}

func (o *ReplayOptions) fill() {
	if o.Devices <= 0 {
		o.Devices = 1
	}
	if o.Missed <= 0 {
		o.Missed = 1000
	}
	if o.Concurrency <= 0 {
		o.Concurrency = o.Devices
	}
	if o.InFlight <= 0 {
		o.InFlight = 32
	}
	if o.Size <= 0 {
		o.Size = 64
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Minute
	}
	if o.Linger <= 0 {
		o.Linger = time.Second
	}
	if o.PerIP <= 0 {
		o.PerIP = 64
	}
	if o.ProfileTime <= 0 {
		o.ProfileTime = 2 * time.Second
	}
}

// replayCase names the parameters two replay results must share to be compared.
func replayCase(o ReplayOptions) string {
	return fmt.Sprintf("devices=%d missed=%d concurrency=%d size=%d", o.Devices, o.Missed, o.Concurrency, o.Size)
}

// replayDevice is one device's reconnect: what it got, in which order.
type replayDevice struct {
	start    time.Time // its CONNECT
	connack  time.Time // its CONNACK
	done     time.Time // its last missed message; zero until then
	n        int       // distinct missed messages seen
	lastVer  uint64
	disorder int // message events with a ver below one already seen
	resyncs  int
	present  bool
}

// Replay runs the replay scenario. Setup: Devices accounts, each with a
// raw MQTT 3.1.1 device (cleanSession=0, the token as password) that
// subscribes to its inbox at QoS 1 and disconnects; then Missed messages to
// each over HTTP (not timed). Measured: all devices reconnect (Concurrency
// at once), without subscribing (the session restores it), and acknowledge
// each delivery; the clock runs from the first CONNECT to the last device
// holding all its messages. Each device must get each message once, in
// ver order.
func Replay(ctx context.Context, o ReplayOptions) (*Result, error) {
	o.fill()
	defer httpClient.CloseIdleConnections() // a server shutting down waits for unused ones
	if o.Target.Plain {
		return nil, errors.New("replay is an imqttd scenario: it reads the sessions' backlog from imqttd's store")
	}
	if err := o.Target.validate(); err != nil {
		return nil, err
	}
	if err := fileLimit(o.Devices + 64); err != nil {
		return nil, err
	}
	run := newRunID()
	res := &Result{Scenario: "replay", Target: o.Target.label(), Case: replayCase(o), Start: time.Now(),
		Params: map[string]any{"devices": o.Devices, "missed": o.Missed, "concurrency": o.Concurrency, "inflight": o.InFlight,
			"size": o.Size, "run": run}}
	prog := newProgress(o.Progress, "replay")
	defer prog.close()
	if err := o.Target.ping(ctx); err != nil {
		return nil, err
	}
	users := make([]string, 0, o.Devices+1)
	users = append(users, "bench-"+run+"-replay-s")
	for i := range o.Devices {
		users = append(users, fmt.Sprintf("bench-%s-replay-d%d", run, i))
	}
	accts, err := o.Target.accounts(ctx, users, func(int) bool { return true }, prog)
	if err != nil {
		return nil, err
	}
	snd, devs := accts[0], accts[1:]
	addr, err := o.Target.mqttAddr(ctx)
	if err != nil {
		return nil, err
	}
	spread := loopback(addr)
	dialer := func(i int) rawDialer {
		rd := rawDialer{Persistent: true}
		if spread {
			k := 1 + i/o.PerIP
			rd.Local = &net.TCPAddr{IP: net.IPv4(127, 0, byte(k>>8), byte(k))}
		}
		return rd
	}
	clientID := func(i int) string { return wire.ClientID(devs[i].user, "bench") }

	// Each device starts its session: its inbox at QoS 1 from the head on.
	before, err := o.Target.scrape(ctx)
	if err != nil {
		return nil, err
	}
	var started atomic.Int64
	err = eachOf(ctx, o.Devices, "sessions", nil, func(ctx context.Context, i int) error {
		c, err := dialRaw(ctx, addr, dialer(i), clientID(i), devs[i].user, devs[i].token, wire.InboxTopic(devs[i].user))
		if err != nil {
			return fmt.Errorf("%w: mqtt %s: %v", ErrUnreachable, addr, err)
		}
		prog.setf("sessions started %d/%d", started.Add(1), o.Devices)
		return c.disconnect()
	})
	if err != nil {
		return nil, err
	}
	// Sent before imqttd has seen the disconnects, a message would go out
	// live and, unacknowledged, be replayed anyway; but wait for them so
	// that every message is a replayed one.
	if err := o.waitConnections(ctx, before, prog); err != nil {
		return nil, err
	}

	// Fill the inboxes over HTTP, message k to every device before k+1.
	tr := NewTracker(o.Devices)
	api := o.Target.api(snd.token)
	total := o.Devices * o.Missed
	fillStart := time.Now()
	prog.measure(func() string {
		c := tr.Counts()
		return fmt.Sprintf("filling the inboxes over HTTP: sent %d/%d  acked %d  unacked %d  %.0f/s",
			c.Sent, total, c.Acked, c.Unacked, Rate(c.Acked, time.Since(fillStart)))
	})
	acked := make([]atomic.Int64, o.Devices)
	each(ctx, 0, total, o.InFlight, func(j int) {
		dev, seq := j%o.Devices, j/o.Devices
		tr.Sent()
		m := wire.Send{CMID: fmt.Sprintf("%s-%d-%d", run, dev, seq), To: devs[dev].user, Type: "text",
			Body: encodeBody(run, dev, seq, time.Now(), o.Size)}
		if err := sendHTTP(ctx, api, m); err != nil {
			tr.Failed()
			return
		}
		tr.Ack(dev, seq)
		acked[dev].Add(1)
	})
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	filled := tr.Counts()
	res.extra("fill_http_sends_per_s", Rate(filled.Acked, time.Since(fillStart)))
	if filled.Acked == 0 {
		return nil, fmt.Errorf("no HTTP send was acked (%d failed)", filled.Unacked)
	}
	want := make([]int, o.Devices) // acked messages of each device
	for i := range want {
		want[i] = int(acked[i].Load())
	}

	// Reconnect, all at once (Concurrency at a time), and take the replay.
	before, err = o.Target.scrape(ctx)
	if err != nil {
		return nil, err
	}
	devices := make([]replayDevice, o.Devices)
	var (
		mu       sync.Mutex // devices
		complete atomic.Int64
		failed   atomic.Int64
		errMu    sync.Mutex
		errs     []error
		conns    = make([]*rawConn, o.Devices)
		readers  sync.WaitGroup
	)
	defer func() { // the connections still open when the run ends early
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	allDone := make(chan struct{})
	onMsg := func(i int, p []byte) {
		now := time.Now()
		var m wire.Msg
		if json.Unmarshal(p, &m) != nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		d := &devices[i]
		switch m.Kind {
		case wire.KindResync:
			d.resyncs++
			return
		case wire.KindMsg:
		default:
			return
		}
		st, ok := parseBody(run, m.Body)
		if !ok || st.flush || st.stream != i {
			return
		}
		if tr.Deliver(i, st.seq, d.start, now, false) {
			return
		}
		if m.Ver < d.lastVer {
			d.disorder++
		}
		d.lastVer = max(d.lastVer, m.Ver)
		d.n++
		if d.n == want[i] {
			d.done = now
			if int(complete.Add(1)) == o.Devices {
				close(allDone)
			}
		}
	}
	for i := range devices {
		if want[i] == 0 { // nothing acked for it: complete at once
			devices[i].done = time.Now()
			if int(complete.Add(1)) == o.Devices {
				close(allDone)
			}
		}
	}
	prog.measure(func() string {
		c := tr.Counts()
		return fmt.Sprintf("replaying: delivered %d/%d  devices complete %d/%d  dup %d  failed %d",
			c.Delivered, c.Acked, complete.Load(), o.Devices, c.Duplicated, failed.Load())
	})
	profiled := make(chan error, 1)
	if o.PprofURL != "" && o.ProfilePrefix != "" {
		go func() { profiled <- profile(ctx, o.PprofURL, o.ProfilePrefix, o.ProfileTime) }()
	} else {
		profiled <- nil
	}
	start := time.Now()
	cpu := startCPU(o.ServerPID)
	each(ctx, 0, o.Devices, min(o.Concurrency, o.Devices), func(i int) {
		mu.Lock()
		devices[i].start = time.Now()
		mu.Unlock()
		c, err := dialRaw(ctx, addr, dialer(i), clientID(i), devs[i].user, devs[i].token, "")
		if err != nil {
			failed.Add(1)
			errMu.Lock()
			if len(errs) < 3 {
				errs = append(errs, err)
			}
			errMu.Unlock()
			return
		}
		mu.Lock()
		devices[i].connack = time.Now()
		devices[i].present = c.present
		conns[i] = c
		mu.Unlock()
		readers.Add(1)
		go func() {
			defer readers.Done()
			c.readPublishes(func(p []byte) { onMsg(i, p) })
		}()
	})
	timeout := time.NewTimer(o.Timeout)
	defer timeout.Stop()
	select {
	case <-allDone:
	case <-timeout.C:
	case <-ctx.Done():
	}
	end := time.Now()
	c0 := tr.Counts()
	cpu.stop(res, c0.Delivered)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Duplicates would come right after: a resend of what was not yet acknowledged.
	prog.setf("lingering %s for duplicates", o.Linger)
	prog.measure(nil)
	sleepCtx(ctx, o.Linger)
	after, err := o.Target.scrape(ctx)
	if err != nil {
		return nil, err
	}
	mu.Lock()
	for _, c := range conns {
		if c != nil {
			_ = c.disconnect()
		}
	}
	mu.Unlock()
	readers.Wait()
	if err := <-profiled; err != nil {
		return nil, err
	}

	c := tr.Counts()
	res.Counts = c
	if last := tr.LastSeen(); !last.IsZero() && complete.Load() == int64(o.Devices) {
		end = last
	}
	res.Seconds = end.Sub(start).Seconds()
	res.Rate = Rate(c0.Delivered, end.Sub(start))
	var ttc, connack []int64
	var disorder, resyncs, absent int
	for i := range devices {
		d := &devices[i]
		if !d.done.IsZero() && want[i] > 0 {
			ttc = append(ttc, int64(d.done.Sub(d.start)))
		}
		if !d.connack.IsZero() {
			connack = append(connack, int64(d.connack.Sub(d.start)))
		}
		disorder += d.disorder
		resyncs += d.resyncs
		if conns[i] != nil && !d.present {
			absent++
		}
	}
	lat := Summarize(ttc) // sorts ttc
	res.Latency = &lat
	res.extra("events_per_s", res.Rate)
	res.extra("devices_complete", float64(complete.Load()))
	if len(ttc) > 0 {
		res.extra("device_complete_p50_ms", ms(float64(Percentile(ttc, 50))))
		res.extra("device_complete_p99_ms", ms(float64(Percentile(ttc, 99))))
		// The median of Missed/t is Missed over the median t.
		res.extra("device_events_per_s_p50", Rate(int64(o.Missed), time.Duration(Percentile(ttc, 50))))
		res.extra("device_events_per_s_at_p99", Rate(int64(o.Missed), time.Duration(Percentile(ttc, 99))))
	}
	if len(connack) > 0 {
		// How much of the time to complete is the connect itself (TCP,
		// CONNECT, the token checked, the session loaded).
		cl := Summarize(connack)
		res.extra("device_connack_p50_ms", cl.P50)
		res.extra("device_connack_p99_ms", cl.P99)
	}
	res.extra("server_session_replayed", delta(before, after, "imqtt_session_replayed_total"))
	res.extra("resyncs", float64(resyncs))
	res.Notes = append(res.Notes,
		"events/s: first reconnect's CONNECT to the last device holding all its missed messages; latency: per device, its CONNECT to its last missed message",
		"devices: raw MQTT 3.1.1, cleanSession=0, no SUBSCRIBE on reconnect (the session restores it), PUBACK per delivery")
	if failed.Load() > 0 {
		res.problem("%d of %d reconnects failed: %v", failed.Load(), o.Devices, errors.Join(errs...))
	}
	if absent > 0 {
		res.problem("%d of %d reconnects had no Session Present in their CONNACK", absent, o.Devices)
	}
	if disorder > 0 {
		res.problem("%d message events came after one with a higher ver (out of order)", disorder)
	}
	if resyncs > 0 {
		res.problem("%d resync events: more was missed than imqttd replays (--session-replay-max)", resyncs)
	}
	if n := complete.Load(); n < int64(o.Devices) {
		res.problem("%d of %d devices did not get all their messages within %s", int64(o.Devices)-n, o.Devices, o.Timeout)
	}
	res.checkMessages()
	return res, nil
}

// waitConnections waits until imqttd counts no more connections than
// before (the devices' disconnects processed), for up to 10 s.
func (o ReplayOptions) waitConnections(ctx context.Context, before serverMetrics, prog *progress) error {
	if before == nil {
		return nil
	}
	prog.setf("waiting for the disconnects")
	deadline := time.Now().Add(10 * time.Second)
	for {
		m, err := o.Target.scrape(ctx)
		if err != nil {
			return err
		}
		if m["imqtt_connections"] <= before["imqtt_connections"] || time.Now().After(deadline) {
			return nil
		}
		if !sleepCtx(ctx, 20*time.Millisecond) {
			return ctx.Err()
		}
	}
}
