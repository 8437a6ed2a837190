package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"time"

	"github.com/imqtt/imqtt/client"
	"github.com/imqtt/imqtt/wire"
)

// SyncOptions configure the sync scenario: a device misses Messages
// messages, sent over HTTP while it is offline, then connects and catches up.
// Zero values take the defaults in parentheses.
type SyncOptions struct {
	Target    Target // an imqttd
	Messages  int    // messages missed (20,000)
	InFlight  int    // concurrent HTTP sends while filling the inbox (32)
	Size      int    // body bytes (64)
	SyncLimit int    // items per sync request (the SDK's default, 5000)
	// NoCompression asks for plain JSON sync replies instead of gzip.
	NoCompression bool
	Timeout       time.Duration // for the catch-up (2m)
	ServerPID     int           // the server's process, for its CPU time over the catch-up; 0: not measured
	Progress      io.Writer
	Logger        *slog.Logger
}

func (o *SyncOptions) fill() {
	if o.Messages <= 0 {
		o.Messages = 20_000
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
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Sync runs the sync scenario. The measured interval runs from the SDK's
// Dial (connect, subscribe, sync requests) to the last missed message
// reaching the application; the same history is then read again over HTTP
// (GET /v1/sync) for comparison.
func Sync(ctx context.Context, o SyncOptions) (*Result, error) {
	o.fill()
	defer httpClient.CloseIdleConnections() // a server shutting down waits for unused ones
	if o.Target.Plain {
		return nil, errors.New("sync is an imqttd scenario: plain MQTT brokers have no sync")
	}
	if err := o.Target.validate(); err != nil {
		return nil, err
	}
	run := newRunID()
	res := &Result{Scenario: "sync", Target: o.Target.label(), Case: syncCase(o), Start: time.Now(),
		Params: map[string]any{"messages": o.Messages, "inflight": o.InFlight, "size": o.Size, "sync_limit": o.SyncLimit,
			"compression": !o.NoCompression, "run": run}}
	prog := newProgress(o.Progress, "sync")
	defer prog.close()
	if err := o.Target.ping(ctx); err != nil {
		return nil, err
	}
	accts, err := o.Target.accounts(ctx, []string{"bench-" + run + "-sync-s", "bench-" + run + "-sync-r"}, func(int) bool { return true }, prog)
	if err != nil {
		return nil, err
	}
	snd, rcv := accts[0], accts[1]
	tr := NewTracker(1)

	// Fill the offline device's inbox over HTTP.
	api := o.Target.api(snd.token)
	fillStart := time.Now()
	prog.measure(func() string {
		c := tr.Counts()
		return fmt.Sprintf("filling the inbox over HTTP: sent %d/%d  acked %d  unacked %d  %.0f/s",
			c.Sent, o.Messages, c.Acked, c.Unacked, Rate(c.Acked, time.Since(fillStart)))
	})
	each(ctx, 0, o.Messages, o.InFlight, func(seq int) {
		tr.Sent()
		m := wire.Send{CMID: fmt.Sprintf("%s-%d", run, seq), To: rcv.user, Type: "text", Body: encodeBody(run, 0, seq, time.Now(), o.Size)}
		if err := sendHTTP(ctx, api, m); err != nil {
			tr.Failed()
			return
		}
		tr.Ack(0, seq)
	})
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	filled := tr.Counts()
	res.extra("fill_http_sends_per_s", Rate(filled.Acked, time.Since(fillStart)))
	if filled.Acked == 0 {
		return nil, fmt.Errorf("no HTTP send was acked (%d failed)", filled.Unacked)
	}

	// Catch up over MQTT with the SDK, from cursor 0.
	got := make(chan struct{}, 1)
	prog.setf("catching up")
	start := time.Now()
	cpu := startCPU(o.ServerPID)
	prog.measure(func() string {
		c := tr.Counts()
		return fmt.Sprintf("catching up: delivered %d/%d  dup %d  %.0f msgs/s", c.Delivered, c.Acked, c.Duplicated, Rate(c.Delivered, time.Since(start)))
	})
	cl, err := client.Dial(ctx, client.Config{Server: o.Target.Server, MQTT: o.Target.MQTT, User: rcv.user, Device: "bench",
		Token: rcv.token, SyncLimit: o.SyncLimit, DisableCompression: o.NoCompression, Logger: o.Logger, HTTPClient: httpClient,
		OnEvent: func(ev client.Event) {
			if ev.Kind != wire.KindMsg || ev.Msg == nil {
				return
			}
			now := time.Now()
			if st, ok := parseBody(run, ev.Msg.Body); ok && !st.flush {
				tr.Deliver(0, st.seq, start, now, ev.Synced)
				if tr.Complete() {
					select {
					case got <- struct{}{}:
					default:
					}
				}
			}
		}})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnreachable, err)
	}
	defer cl.Close()
	timeout := time.NewTimer(o.Timeout)
	defer timeout.Stop()
	select {
	case <-got:
	case <-timeout.C:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	// Duplicates would come with the end of the sync: wait for it.
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_ = cl.WaitSynced(wctx)
	cancel()
	c := tr.Counts()
	cpu.stop(res, c.Delivered)
	end := tr.LastSeen()
	if end.IsZero() {
		end = time.Now()
	}
	res.Counts = c
	res.Seconds = end.Sub(start).Seconds()
	res.Rate = Rate(c.Delivered, end.Sub(start))
	lat := Summarize(tr.Latencies())
	lat.P50, lat.P90, lat.P99, lat.Mean = 0, 0, 0, 0 // only the time to the last one means anything here
	res.extra("catchup_ms", lat.Max)
	res.Notes = append(res.Notes, "msgs/s is the catch-up: Dial (connect, subscribe, sync) to the last missed message in the application")

	// The same history over HTTP, as `imqtt sync` reads it.
	prog.setf("reading the history over HTTP")
	prog.measure(nil)
	hstart := time.Now()
	var hn int64
	err = o.Target.api(rcv.token).SyncCursor(ctx, &client.MemoryCursor{}, o.SyncLimit, func(m wire.Msg) error {
		if _, ok := parseBody(run, m.Body); ok {
			hn++
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sync over HTTP: %w", err)
	}
	res.extra("http_sync_msgs_per_s", Rate(hn, time.Since(hstart)))
	if hn != c.Acked {
		res.problem("HTTP sync returned %d of the %d acked messages", hn, c.Acked)
	}
	res.checkMessages()
	return res, nil
}

// sendHTTP sends m over HTTP, again with the same cmid while the server
// says it is busy or unavailable (docs/protocol.md#events), for up to a minute.
func sendHTTP(ctx context.Context, api *client.HTTP, m wire.Send) error {
	deadline := time.Now().Add(time.Minute)
	for {
		_, err := api.Send(ctx, m)
		if err == nil || !client.Retryable(err) || time.Now().After(deadline) {
			return err
		}
		if !sleepCtx(ctx, 50*time.Millisecond) {
			return ctx.Err()
		}
	}
}

// syncCase names the parameters two sync results must share to be compared.
func syncCase(o SyncOptions) string {
	limit := "default"
	if o.SyncLimit > 0 {
		limit = strconv.Itoa(o.SyncLimit)
	}
	comp := "gzip"
	if o.NoCompression {
		comp = "none"
	}
	return fmt.Sprintf("messages=%d size=%d limit=%s compression=%s", o.Messages, o.Size, limit, comp)
}
