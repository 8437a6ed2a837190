package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/imqtt/imqtt/client"
	"github.com/imqtt/imqtt/wire"
)

// P2POptions configure the p2p scenario: Pairs senders each sending QoS 1
// to its own receiver. Zero values take the defaults in parentheses.
type P2POptions struct {
	Target   Target
	Pairs    int           // sender/receiver pairs (10)
	Rate     float64       // total sends per second over all pairs; 0: as fast as acks allow
	InFlight int           // unacknowledged sends per sender (64)
	Duration time.Duration // how long to send (10s), unless Messages
	Messages int           // total messages over all pairs; 0: send for Duration
	Size     int           // body bytes (64)
	Drain    time.Duration // how long to wait for acks and deliveries after sending (30s)
	// Sessions (imqttd only): the receivers are plain MQTT devices (paho,
	// MQTT 3.1.1) with persistent sessions, subscribed to their inbox at
	// QoS 1 and acknowledging each delivery, instead of the SDK's clean
	// sessions (QoS 0, recovery by sync).
	Sessions bool
	// PushDevices (imqttd with --push-webhook only): each receiver user
	// also logs in PushPhones devices ("phone", "phone2"...) that never
	// connect and registers a webhook push token for each ("bench-{user}",
	// "bench-{user}-2"...), so that every message is also an offline push
	// to each of them (collapsed per device within 2 s), while the
	// connected device takes it live.
	PushDevices bool
	PushPhones  int          // phones per receiver with PushDevices (1)
	Progress    io.Writer    // the live status line; nil: none
	Logger      *slog.Logger // the SDK's connection logs; nil: none
	// ServerPID, if set, is the server's process: its CPU time over the run
	// is reported beside the bench's own (they share the machine).
	ServerPID int
	// PprofURL and ProfilePrefix, if both set, save the server's CPU and
	// allocation profiles over the sending time (Duration, or 10s) to
	// ProfilePrefix-cpu.pprof and ProfilePrefix-allocs.pprof.
	PprofURL, ProfilePrefix string
}

func (o *P2POptions) fill() {
	if o.Pairs <= 0 {
		o.Pairs = 10
	}
	if o.InFlight <= 0 {
		o.InFlight = 64
	}
	if o.Duration <= 0 && o.Messages <= 0 {
		o.Duration = 10 * time.Second
	}
	if o.Size <= 0 {
		o.Size = 64
	}
	if o.Drain <= 0 {
		o.Drain = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.PushDevices && o.PushPhones <= 0 {
		o.PushPhones = 1
	}
}

// p2pCase names the parameters two p2p results must share to be compared.
func p2pCase(o P2POptions) string {
	rate := "max"
	if o.Rate > 0 {
		rate = strconv.FormatFloat(o.Rate, 'f', 0, 64)
	}
	c := fmt.Sprintf("pairs=%d rate=%s inflight=%d size=%d", o.Pairs, rate, o.InFlight, o.Size)
	if o.Sessions {
		c += " receivers=qos1-sessions"
	}
	if o.PushDevices {
		c += fmt.Sprintf(" push-phones=%d", o.PushPhones)
	}
	return c
}

// sender sends one message and waits for its ack: imqttd's (stored
// durably) or the broker's PUBACK.
type sender interface {
	send(ctx context.Context, body string) error
}

// P2P runs the p2p scenario. It returns an error when the run could not be
// made (the target unreachable, a refused login); a run that was made but
// lost or duplicated messages, or fell short of the asked rate, returns its
// Result with Problems (see Result.Err).
func P2P(ctx context.Context, o P2POptions) (*Result, error) {
	o.fill()
	defer httpClient.CloseIdleConnections() // a server shutting down waits for unused ones
	if err := o.Target.validate(); err != nil {
		return nil, err
	}
	if o.Sessions && o.Target.Plain {
		return nil, errors.New("p2p with sessions is an imqttd scenario: a plain broker's receivers are already QoS 1")
	}
	if o.PushDevices && o.Target.Plain {
		return nil, errors.New("p2p with push devices is an imqttd scenario")
	}
	run := newRunID()
	res := &Result{Scenario: "p2p", Target: o.Target.label(), Case: p2pCase(o), Start: time.Now(), TargetRate: o.Rate,
		Params: map[string]any{"pairs": o.Pairs, "rate": o.Rate, "inflight": o.InFlight, "duration_s": o.Duration.Seconds(),
			"messages": o.Messages, "size": o.Size, "plain": o.Target.Plain, "run": run, "sessions": o.Sessions,
			"push_phones": o.PushPhones}}
	prog := newProgress(o.Progress, "p2p "+res.Target)
	defer prog.close()
	tr := NewTracker(o.Pairs)

	var (
		senders []sender
		closers []func()
	)
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	var err error
	if o.Target.Plain {
		senders, closers, err = plainPairs(ctx, o, run, tr, prog)
	} else {
		senders, closers, err = imqttPairs(ctx, o, run, tr, prog)
	}
	if err != nil {
		return nil, err
	}
	before, err := o.Target.scrape(ctx)
	if err != nil {
		return nil, err
	}

	// Send.
	start := time.Now()
	res.Start = start
	cpu := startCPU(o.ServerPID)
	profiled := make(chan error, 1)
	if o.PprofURL != "" && o.ProfilePrefix != "" {
		d := o.Duration
		if o.Messages > 0 || d <= 0 {
			d = 10 * time.Second
		}
		go func() { profiled <- profile(ctx, o.PprofURL, o.ProfilePrefix, d) }()
	} else {
		profiled <- nil
	}
	prog.measure(func() string {
		c := tr.Counts()
		return fmt.Sprintf("sent %d  acked %d  delivered %d (synced %d)  dup %d  unacked %d  %.0f delivered/s",
			c.Sent, c.Acked, c.Delivered, c.Synced, c.Duplicated, c.Unacked, Rate(c.Delivered, time.Since(start)))
	})
	ackCtx, cancelAcks := context.WithCancel(ctx)
	defer cancelAcks()
	var stopAt time.Time
	if o.Messages <= 0 {
		stopAt = start.Add(o.Duration)
	}
	var sendWG, ackWG sync.WaitGroup
	var acks ackTimes
	for i, s := range senders {
		quota := 0
		if o.Messages > 0 {
			quota = o.Messages / o.Pairs
			if i < o.Messages%o.Pairs {
				quota++
			}
		}
		sendWG.Add(1)
		go func() {
			defer sendWG.Done()
			sendLoop(ctx, ackCtx, &ackWG, s, i, quota, stopAt, start, o, run, tr, &acks)
		}()
	}
	sendWG.Wait()
	sendEnd := time.Now()
	res.SendRate = Rate(tr.Counts().Sent, sendEnd.Sub(start))

	// Drain: wait for the acks, then for the deliveries. On imqttd, a
	// receiver whose last messages were dropped live finds the gap at its next
	// message: flush markers play that next message. A session's receiver
	// drops nothing: its session resends from the store.
	deadline := time.Now().Add(o.Drain)
	acked := make(chan struct{})
	go func() { ackWG.Wait(); close(acked) }()
	select {
	case <-acked:
	case <-time.After(time.Until(deadline)):
		cancelAcks()
		<-acked
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	flushed := time.Now()
	for !tr.Complete() && time.Now().Before(deadline) && ctx.Err() == nil {
		if !o.Target.Plain && !o.Sessions && time.Since(flushed) >= 500*time.Millisecond {
			flushed = time.Now()
			flush(ctx, senders, tr.Incomplete(), run)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	after, err := o.Target.scrape(ctx)
	if err != nil {
		return nil, err
	}

	c := tr.Counts()
	cpu.stop(res, c.Delivered)
	if err := <-profiled; err != nil {
		return nil, err
	}
	res.Counts = c
	end := tr.LastSeen()
	if end.Before(sendEnd) {
		end = sendEnd
	}
	res.Seconds = end.Sub(start).Seconds()
	res.Rate = Rate(c.Delivered, end.Sub(start))
	lat := Summarize(tr.Latencies())
	res.Latency = &lat
	if al := Summarize(acks.samples()); al.Count > 0 {
		res.extra("ack_p50_ms", al.P50)
		res.extra("ack_p99_ms", al.P99)
	}
	res.addServerFigures(before, after)
	if o.Sessions {
		res.extra("server_session_replayed", delta(before, after, "imqtt_session_replayed_total"))
		res.extra("server_sessions_active", after["imqtt_sessions_active"])
		if got := int(after["imqtt_sessions_active"]); got < o.Pairs {
			res.problem("the server counts %d active sessions for the %d receivers", got, o.Pairs)
		}
		res.Notes = append(res.Notes, "receivers: paho, MQTT 3.1.1, persistent sessions (cleanSession=0), inbox at QoS 1, PUBACK per delivery")
	}
	if o.PushDevices {
		res.addPushFigures(before, after)
		res.Notes = append(res.Notes, fmt.Sprintf("each receiver has %d offline phone(s) with a webhook push token: the server's push figures above", o.PushPhones))
	}
	if o.Rate > 0 {
		res.Notes = append(res.Notes, "latency is measured from each message's scheduled send time, so a sender that falls behind shows it")
	}
	res.checkMessages()
	return res, nil
}

// sendLoop is one sender: quota messages (0: until stopAt), at the asked
// rate or as fast as InFlight unacknowledged sends allow. Each send runs in
// its own goroutine, tracked by ackWG and bounded by ackCtx.
func sendLoop(ctx, ackCtx context.Context, ackWG *sync.WaitGroup, s sender, stream, quota int, stopAt, start time.Time, o P2POptions, run string, tr *Tracker, acks *ackTimes) {
	slots := make(chan struct{}, o.InFlight)
	var interval time.Duration
	if o.Rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(o.Pairs) / o.Rate)
		start = start.Add(interval * time.Duration(stream) / time.Duration(o.Pairs)) // stagger the senders
	}
	for seq := 0; quota <= 0 || seq < quota; seq++ {
		sentAt := time.Now()
		if interval > 0 {
			sentAt = start.Add(interval * time.Duration(seq))
			if !stopAt.IsZero() && sentAt.After(stopAt) {
				return // not waited for: at a low rate per sender, the wait would stretch the run past Duration
			}
			if d := time.Until(sentAt); d > 0 && !sleepCtx(ctx, d) {
				return
			}
		}
		if !stopAt.IsZero() && time.Now().After(stopAt) {
			return
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		if interval == 0 {
			sentAt = time.Now()
		}
		body := encodeBody(run, stream, seq, sentAt, o.Size)
		tr.Sent()
		ackWG.Add(1)
		go func() {
			defer ackWG.Done()
			if err := s.send(ackCtx, body); err != nil {
				tr.Failed()
			} else {
				tr.Ack(stream, seq)
				acks.add(time.Since(sentAt))
			}
			<-slots
		}()
	}
}

// ackTimes collects the time from each send (its scheduled time at a
// fixed rate) to its ack: on imqttd, to the message stored; the send
// path's latency, apart from the delivery's.
type ackTimes struct {
	mu sync.Mutex
	ns []int64
}

func (a *ackTimes) add(d time.Duration) {
	a.mu.Lock()
	a.ns = append(a.ns, int64(d))
	a.mu.Unlock()
}

func (a *ackTimes) samples() []int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ns
}

// flush sends a marker from each sender whose receiver lacks an acked message.
func flush(ctx context.Context, senders []sender, streams []int, run string) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, i := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = senders[i].send(ctx, flushBody(run, i))
		}()
	}
	wg.Wait()
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// imqttSender sends through the SDK: QoS 1 to im/send, done at imqttd's ack,
// which comes only once the message is stored.
type imqttSender struct {
	c  *client.Client
	to string
}

func (s imqttSender) send(ctx context.Context, body string) error {
	_, err := s.c.Send(ctx, wire.Send{To: s.to, Type: "text", Body: body})
	return err
}

// imqttPairs registers the pairs' accounts and connects them: receivers
// first (each synced before any send), then senders.
func imqttPairs(ctx context.Context, o P2POptions, run string, tr *Tracker, prog *progress) ([]sender, []func(), error) {
	if err := o.Target.ping(ctx); err != nil {
		return nil, nil, err
	}
	users := make([]string, 0, 2*o.Pairs)
	for i := range o.Pairs {
		users = append(users, fmt.Sprintf("bench-%s-s%d", run, i), fmt.Sprintf("bench-%s-r%d", run, i))
	}
	accts, err := o.Target.accounts(ctx, users, func(int) bool { return true }, prog)
	if err != nil {
		return nil, nil, err
	}
	var closers []func()
	mqttAddr, err := o.Target.mqttAddr(ctx)
	if err != nil {
		return nil, nil, err
	}
	dial := func(a account, onEvent func(client.Event)) (*client.Client, error) {
		dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		c, err := client.Dial(dctx, client.Config{Server: o.Target.Server, MQTT: o.Target.MQTT, User: a.user, Device: "bench",
			Token: a.token, OnEvent: onEvent, Logger: o.Logger, HTTPClient: httpClient})
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrUnreachable, err)
		}
		closers = append(closers, func() { c.Close() })
		return c, nil
	}
	for i := range o.Pairs {
		prog.setf("connecting receivers %d/%d", i+1, o.Pairs)
		if o.Sessions {
			closer, err := sessionReceiver(ctx, mqttAddr, accts[2*i+1], func(m wire.Msg) {
				now := time.Now()
				if st, ok := parseBody(run, m.Body); ok && !st.flush && st.stream == i {
					tr.Deliver(i, st.seq, st.sent, now, false)
				}
			})
			if closer != nil {
				closers = append(closers, closer)
			}
			if err != nil {
				return nil, closers, err
			}
			continue
		}
		c, err := dial(accts[2*i+1], func(ev client.Event) {
			if ev.Kind != wire.KindMsg || ev.Msg == nil {
				return
			}
			now := time.Now()
			if st, ok := parseBody(run, ev.Msg.Body); ok && !st.flush && st.stream == i {
				tr.Deliver(i, st.seq, st.sent, now, ev.Synced)
			}
		})
		if err != nil {
			return nil, closers, err
		}
		if err := c.WaitSynced(ctx); err != nil {
			return nil, closers, err
		}
	}
	if o.PushDevices {
		if err := pushPhones(ctx, o, accts, prog); err != nil {
			return nil, closers, err
		}
	}
	senders := make([]sender, o.Pairs)
	for i := range o.Pairs {
		prog.setf("connecting senders %d/%d", i+1, o.Pairs)
		c, err := dial(accts[2*i], nil)
		if err != nil {
			return nil, closers, err
		}
		senders[i] = imqttSender{c: c, to: accts[2*i+1].user}
	}
	return senders, closers, nil
}

// pushPhones logs in o.PushPhones phones for each receiver (accts[2i+1])
// and registers a webhook push token for each: devices that never
// connect, so every message to the receiver is also pushed to them.
func pushPhones(ctx context.Context, o P2POptions, accts []account, prog *progress) error {
	n := o.Pairs * o.PushPhones
	phone := func(i int) (user, device, token string) {
		user = accts[2*(i/o.PushPhones)+1].user
		device, token = "phone", "bench-"+user
		if k := i%o.PushPhones + 1; k > 1 {
			device, token = device+strconv.Itoa(k), token+"-"+strconv.Itoa(k)
		}
		return user, device, token
	}
	tokens, err := o.Target.deviceTokens(ctx, n, func(i int) (string, string) {
		user, device, _ := phone(i)
		return user, device
	}, prog)
	if err != nil {
		return err
	}
	return eachOf(ctx, n, "push registrations", prog, func(ctx context.Context, i int) error {
		user, device, token := phone(i)
		if _, err := o.Target.api(tokens[i]).RegisterPush(ctx, wire.PushRegister{Provider: wire.ProviderWebhook, Token: token}); err != nil {
			return fmt.Errorf("push token for %s/%s (imqttd needs --push-webhook): %w", user, device, err)
		}
		return nil
	})
}

// addPushFigures adds what imqttd's push worker counted during the run
// (webhook pushes by result, the mean latency from commit to the
// provider's answer). Pushes still queued at the end are not in them: the
// sink's figures are the whole count.
func (r *Result) addPushFigures(before, after serverMetrics) {
	for _, res := range []string{"sent", "retry", "online", "failed", "expired", "invalid_token"} {
		r.extra("server_push_"+res, delta(before, after, `imqtt_push_total{provider="webhook",result="`+res+`"}`))
	}
	if n := delta(before, after, "imqtt_push_latency_seconds_count"); n > 0 {
		r.extra("server_push_latency_mean_ms", 1000*delta(before, after, "imqtt_push_latency_seconds_sum")/n)
	}
}

// sessionReceiver connects a plain MQTT device of user a, device "bench": paho, MQTT 3.1.1, cleanSession=0, the token as password (as
// the SDK logs in), its inbox subscribed at QoS 1 and each message event
// handed to onMsg, then acknowledged by paho's automatic PUBACK. It
// returns once the SUBACK is in: every message committed after it is the
// session's.
func sessionReceiver(ctx context.Context, addr string, a account, onMsg func(wire.Msg)) (func(), error) {
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(wire.ClientID(a.user, "bench")).
		SetUsername(a.user).SetPassword(a.token).SetProtocolVersion(4).
		SetCleanSession(false).SetAutoReconnect(false).SetConnectRetry(false).SetKeepAlive(60 * time.Second).
		SetOrderMatters(true).SetConnectTimeout(10 * time.Second).
		SetCustomOpenConnectionFn(client.OpenBufferedTCP))
	if err := waitToken(ctx, c.Connect()); err != nil {
		return nil, fmt.Errorf("%w: mqtt %s: %v", ErrUnreachable, addr, err)
	}
	closer := func() { c.Disconnect(100) }
	topic := wire.InboxTopic(a.user)
	tok := c.Subscribe(topic, 1, func(_ paho.Client, pm paho.Message) {
		var m wire.Msg
		if json.Unmarshal(pm.Payload(), &m) == nil && m.Kind == wire.KindMsg {
			onMsg(m)
		}
	})
	if err := waitToken(ctx, tok); err != nil {
		return closer, fmt.Errorf("subscribe %s: %w", topic, err)
	}
	if st, ok := tok.(*paho.SubscribeToken); ok && st.Result()[topic] != 1 {
		return closer, fmt.Errorf("subscribe %s: granted %#x, want QoS 1", topic, st.Result()[topic])
	}
	return closer, nil
}

// plainSender publishes QoS 1 to bench/{i}; done at the broker's PUBACK.
type plainSender struct {
	c     paho.Client
	topic string
}

func (s plainSender) send(ctx context.Context, body string) error {
	tok := s.c.Publish(s.topic, 1, false, body)
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// plainPairs connects paho clients to any MQTT broker: receiver i
// subscribes to bench/{i} at QoS 1, sender i publishes there.
func plainPairs(ctx context.Context, o P2POptions, run string, tr *Tracker, prog *progress) ([]sender, []func(), error) {
	var closers []func()
	connect := func(id string) (paho.Client, error) {
		c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + o.Target.MQTT).SetClientID(id).
			SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).SetKeepAlive(60 * time.Second).
			SetOrderMatters(true).SetConnectTimeout(10 * time.Second).
			SetCustomOpenConnectionFn(client.OpenBufferedTCP)) // as the SDK's clients read
		if err := waitToken(ctx, c.Connect()); err != nil {
			return nil, fmt.Errorf("%w: mqtt %s: %v", ErrUnreachable, o.Target.MQTT, err)
		}
		closers = append(closers, func() { c.Disconnect(100) })
		return c, nil
	}
	for i := range o.Pairs {
		prog.setf("connecting receivers %d/%d", i+1, o.Pairs)
		c, err := connect(fmt.Sprintf("bench-%s-r%d", run, i))
		if err != nil {
			return nil, closers, err
		}
		topic := "bench/" + strconv.Itoa(i)
		tok := c.Subscribe(topic, 1, func(_ paho.Client, m paho.Message) {
			now := time.Now()
			if st, ok := parseBody(run, string(m.Payload())); ok && !st.flush && st.stream == i {
				tr.Deliver(i, st.seq, st.sent, now, false)
			}
		})
		if err := waitToken(ctx, tok); err != nil {
			return nil, closers, fmt.Errorf("subscribe %s: %w", topic, err)
		}
		if st, ok := tok.(*paho.SubscribeToken); ok && st.Result()[topic] >= 0x80 {
			return nil, closers, fmt.Errorf("subscribe %s: refused (%#x)", topic, st.Result()[topic])
		}
	}
	senders := make([]sender, o.Pairs)
	for i := range o.Pairs {
		prog.setf("connecting senders %d/%d", i+1, o.Pairs)
		c, err := connect(fmt.Sprintf("bench-%s-s%d", run, i))
		if err != nil {
			return nil, closers, err
		}
		senders[i] = plainSender{c: c, topic: "bench/" + strconv.Itoa(i)}
	}
	return senders, closers, nil
}

func waitToken(ctx context.Context, tok paho.Token) error {
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}
