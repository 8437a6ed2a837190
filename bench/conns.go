package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/imqtt/imqtt/wire"
)

// ConnsOptions configure the conns scenario: Conns idle connections, each
// authenticated and subscribed to its inbox (imqttd) or to bench/{i}
// (plain). Zero values take the defaults in parentheses.
type ConnsOptions struct {
	Target Target
	Conns  int // connections (1,000)
	// Users is how many imqttd accounts the connections are spread over,
	// each as devices c{i} of one user (min(Conns, 100)). Accounts are slow
	// to make (password hashing); devices of one account are as costly to
	// hold as connections of different accounts, bar one inbox topic each.
	Users       int
	Concurrency int           // connections being opened at once (64)
	ServerPID   int           // the server's process, whose RSS is read; 0: not measured
	Settle      time.Duration // wait after the last connection before reading the RSS (2s)
	Hold        time.Duration // keep the connections open this long after measuring (0)
	// PerIP is how many connections share one 127.0.0.x source address
	// (20,000): one address has ~28,000 ephemeral ports to one server port.
	PerIP int
	// PprofURL, for a Go server with net/http/pprof (imqttd's --pprof-addr,
	// the mochi baseline's), forces a garbage collection before each memory
	// reading, so the RSS compares like with like, and adds the heap and
	// stacks in use per connection.
	PprofURL string
	// WS, if set, is the broker's WebSocket URL (imqttd: ws://HTTP-ADDR/mqtt):
	// the connections are MQTT over WebSocket instead of TCP to Target.MQTT.
	WS string
	// Keepalive is the keepalive each connection asks for in its CONNECT
	// and sends a PINGREQ at, as a client library does. 0: 900 s and no
	// PINGREQ (a run shorter than 22 minutes).
	Keepalive time.Duration
	// Idle, after the memory reading, is how long the server's CPU is
	// measured while the connections stay idle (pinging at Keepalive):
	// reported per connection per minute. 0: not measured.
	Idle time.Duration
	// Sessions: each connection asks for a persistent session
	// (cleanSession=0) and subscribes at QoS 1, so that imqttd holds a
	// session for it (internal/session) beside the connection.
	Sessions bool
	Progress io.Writer
}

func (o *ConnsOptions) fill() {
	if o.Conns <= 0 {
		o.Conns = 1000
	}
	if o.Users <= 0 {
		o.Users = min(o.Conns, 100)
	}
	o.Users = min(o.Users, o.Conns)
	if o.Concurrency <= 0 {
		o.Concurrency = 64
	}
	if o.Settle <= 0 {
		o.Settle = 2 * time.Second
	}
	if o.PerIP <= 0 {
		o.PerIP = 20_000
	}
}

// Conns runs the conns scenario: the connect rate and the server's resident
// memory per idle connection (its RSS before and after, from /proc).
func Conns(ctx context.Context, o ConnsOptions) (*Result, error) {
	o.fill()
	defer httpClient.CloseIdleConnections() // a server shutting down waits for unused ones
	if err := o.Target.validate(); err != nil {
		return nil, err
	}
	if err := fileLimit(o.Conns + 64); err != nil {
		return nil, err
	}
	if o.Keepalive != 0 && (o.Keepalive < time.Second || o.Keepalive > 65535*time.Second) {
		return nil, fmt.Errorf("keepalive %s: MQTT's is 1 s to 65,535 s", o.Keepalive)
	}
	if o.WS != "" {
		u, err := url.Parse(o.WS)
		if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
			return nil, fmt.Errorf("--ws %q: want ws://host:port/path", o.WS)
		}
	}
	run := newRunID()
	res := &Result{Scenario: "conns", Target: o.Target.label(), Case: connsCase(o), Start: time.Now(),
		Params: map[string]any{"conns": o.Conns, "users": o.Users, "concurrency": o.Concurrency, "server_pid": o.ServerPID,
			"plain": o.Target.Plain, "run": run, "transport": o.transport(), "keepalive_s": o.Keepalive.Seconds(), "sessions": o.Sessions}}
	prog := newProgress(o.Progress, "conns "+res.Target)
	defer prog.close()

	addr := o.Target.MQTT
	var (
		accts  []account
		tokens []string
	)
	if !o.Target.Plain {
		if err := o.Target.ping(ctx); err != nil {
			return nil, err
		}
		users := make([]string, o.Users)
		for i := range users {
			users[i] = fmt.Sprintf("bench-%s-c%d", run, i)
		}
		var err error
		if accts, err = o.Target.accounts(ctx, users, func(int) bool { return false }, prog); err != nil {
			return nil, err
		}
		// A token opens only the device it was issued to: one login per
		// connection, before the measured connects.
		if tokens, err = o.Target.deviceTokens(ctx, o.Conns, func(i int) (string, string) {
			return accts[i%len(accts)].user, "c" + strconv.Itoa(i)
		}, prog); err != nil {
			return nil, err
		}
		if addr, err = o.Target.mqttAddr(ctx); err != nil {
			return nil, err
		}
	}
	dialAddr := addr
	if o.WS != "" {
		u, _ := url.Parse(o.WS)
		dialAddr = u.Host
		if u.Port() == "" {
			dialAddr = net.JoinHostPort(u.Hostname(), map[string]string{"ws": "80", "wss": "443"}[u.Scheme])
		}
	}
	spread := o.Conns > o.PerIP && loopback(dialAddr)
	// identity of connection i
	ident := func(i int) (rd rawDialer, id, user, password, topic string) {
		rd = rawDialer{WS: o.WS, Keepalive: o.Keepalive, Persistent: o.Sessions}
		if spread {
			k := 1 + i/o.PerIP
			rd.Local = &net.TCPAddr{IP: net.IPv4(127, 0, byte(k>>8), byte(k))}
		}
		if o.Target.Plain {
			return rd, fmt.Sprintf("bench-%s-c%d", run, i), "", "", "bench/" + strconv.Itoa(i)
		}
		a := accts[i%len(accts)]
		return rd, a.user + "/c" + strconv.Itoa(i), a.user, tokens[i], wire.InboxTopic(a.user)
	}
	// With a keepalive, each connection pings from its own goroutine (in
	// this process, not the server) until the run ends.
	pingCtx, stopPings := context.WithCancel(ctx)
	defer stopPings()
	var pings atomic.Int64
	keepAlive := func(c *rawConn) {
		if o.Keepalive > 0 {
			go c.keepAlive(pingCtx, o.Keepalive, &pings)
		}
	}

	memBefore, err := o.memory(ctx, prog)
	if err != nil {
		return nil, err
	}
	conns := make([]*rawConn, o.Conns)
	defer func() {
		var wg sync.WaitGroup
		for i := range conns {
			if conns[i] != nil {
				wg.Add(1)
				go func() { defer wg.Done(); conns[i].Close() }()
			}
		}
		wg.Wait()
	}()

	// The first connection alone: an unreachable or refusing server fails here.
	start := time.Now()
	rd, id, user, pw, topic := ident(0)
	first, err := dialRaw(ctx, addr, rd, id, user, pw, topic)
	if err != nil {
		return nil, fmt.Errorf("%w: mqtt %s: %v", ErrUnreachable, o.endpoint(addr), err)
	}
	conns[0] = first
	keepAlive(first)
	var (
		ok, failed atomic.Int64
		errMu      sync.Mutex
		errs       []error
	)
	ok.Store(1)
	prog.measure(func() string {
		n := ok.Load()
		return fmt.Sprintf("connected %d/%d  failed %d  %.0f conn/s", n, o.Conns, failed.Load(), Rate(n, time.Since(start)))
	})
	each(ctx, 1, o.Conns, o.Concurrency, func(i int) {
		rd, id, user, pw, topic := ident(i)
		c, err := dialRaw(ctx, addr, rd, id, user, pw, topic)
		if err != nil {
			failed.Add(1)
			errMu.Lock()
			if len(errs) < 3 {
				errs = append(errs, err)
			}
			errMu.Unlock()
			return
		}
		conns[i] = c
		keepAlive(c)
		ok.Add(1)
	})
	elapsed := time.Since(start)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	n := ok.Load()
	res.Seconds = elapsed.Seconds()
	res.extra("conns", float64(n))
	res.extra("conns_failed", float64(failed.Load()))
	res.extra("connect_per_s", Rate(n, elapsed))
	if spread {
		res.extra("source_addrs", float64((o.Conns+o.PerIP-1)/o.PerIP))
	}
	if failed.Load() > 0 {
		res.problem("%d of %d connections failed: %v", failed.Load(), o.Conns, errors.Join(errs...))
	}

	prog.measure(nil)
	memAfter, err := o.memory(ctx, prog)
	if err != nil {
		return nil, err
	}
	if o.ServerPID > 0 {
		res.extra("server_rss_before_kib", memBefore.rss)
		res.extra("server_rss_after_kib", memAfter.rss)
		if n > 0 {
			res.extra("server_kib_per_conn", (memAfter.rss-memBefore.rss)/float64(n))
		}
	} else {
		res.Notes = append(res.Notes, "no --server-pid: server memory not measured")
	}
	if o.PprofURL != "" && n > 0 {
		res.extra("server_go_live_kib_per_conn", (memAfter.live-memBefore.live)/1024/float64(n))
		res.extra("server_go_heap_kib_per_conn", (memAfter.heap-memBefore.heap)/1024/float64(n))
		res.extra("server_go_stack_kib_per_conn", (memAfter.stack-memBefore.stack)/1024/float64(n))
		res.extra("server_goroutines_per_conn", (memAfter.goroutines-memBefore.goroutines)/float64(n))
		res.extra("server_go_heap_after_kib", memAfter.heap/1024)
		res.extra("server_rss_net_after_kib", memAfter.rssNet)
		res.extra("server_rss_net_kib_per_conn", (memAfter.rssNet-memBefore.rssNet)/float64(n))
		res.extra("server_go_stack_after_kib", memAfter.stack/1024)
		res.extra("server_goroutines_after", memAfter.goroutines)
		res.Notes = append(res.Notes, fmt.Sprintf("RSS read after %d forced GCs and the settle time; go_live is the Go heap and stacks in use, go_heap and go_stack its parts", gcsBeforeReading))
	}
	if o.Idle > 0 && n > 0 {
		if err := o.idleCPU(ctx, res, n, &pings, prog); err != nil {
			return nil, err
		}
	}
	if m, err := o.Target.scrape(ctx); err != nil {
		return nil, err
	} else if m != nil {
		res.extra("server_connections", m["imqtt_connections"])
		if o.Sessions {
			res.extra("server_sessions_active", m["imqtt_sessions_active"])
			if got := int64(m["imqtt_sessions_active"]); got < n {
				res.problem("the server counts %d active sessions, the bench holds %d connections asking for one", got, n)
			}
		}
		if got := int64(m["imqtt_connections"]); got < n {
			res.problem("the server counts %d connections, the bench holds %d", got, n)
		}
	}
	if o.Hold > 0 {
		prog.setf("holding %d connections for %s", n, o.Hold)
		if !sleepCtx(ctx, o.Hold) {
			return nil, ctx.Err()
		}
	}
	return res, nil
}

// connsCase names the parameters two conns results must share to be
// compared: connections with persistent sessions are another case.
func connsCase(o ConnsOptions) string {
	if o.Sessions {
		return fmt.Sprintf("conns=%d sessions", o.Conns)
	}
	return fmt.Sprintf("conns=%d", o.Conns)
}

func (o ConnsOptions) transport() string {
	if o.WS != "" {
		return "ws"
	}
	return "tcp"
}

func (o ConnsOptions) endpoint(addr string) string {
	if o.WS != "" {
		return o.WS
	}
	return addr
}

// idleCPU measures the server's (and this process's) CPU over Idle while
// n connections stay idle, and the PINGREQs answered meanwhile.
func (o ConnsOptions) idleCPU(ctx context.Context, res *Result, n int64, pings *atomic.Int64, prog *progress) error {
	if o.ServerPID <= 0 {
		res.Notes = append(res.Notes, "no --server-pid: idle CPU not measured")
		return nil
	}
	prog.setf("measuring the server's CPU over %s with %d idle connections", o.Idle, n)
	cpu, pings0, start := startCPU(o.ServerPID), pings.Load(), time.Now()
	if !sleepCtx(ctx, o.Idle) {
		return ctx.Err()
	}
	var r Result
	cpu.stop(&r, 0)
	minutes := time.Since(start).Minutes()
	server, bench := r.Extra["server_cpu_s"], r.Extra["bench_cpu_s"]
	res.extra("idle_s", minutes*60)
	res.extra("idle_pings_per_s", float64(pings.Load()-pings0)/(minutes*60))
	res.extra("server_idle_cpu_pct", server/(minutes*60)*100)
	res.extra("server_idle_cpu_ms_per_conn_per_min", server*1000/float64(n)/minutes)
	res.extra("bench_idle_cpu_pct", bench/(minutes*60)*100)
	if o.Keepalive > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("idle: each connection sends a PINGREQ every %s (its CONNECT keepalive)", o.Keepalive))
	} else {
		res.Notes = append(res.Notes, "idle: keepalive 900 s, no PINGREQ within the run")
	}
	return nil
}

// fileLimit raises the soft limit on open files to the hard one if need
// be, and fails if even that is below need.
func fileLimit(need int) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return nil // not knowable here: let the dials say
	}
	if lim.Cur >= uint64(need) {
		return nil
	}
	if lim.Max > lim.Cur {
		lim.Cur = min(lim.Max, max(uint64(need), lim.Cur))
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
		_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	if lim.Cur < uint64(need) {
		return fmt.Errorf("open-file limit %d is below the %d this run needs: raise it (ulimit -n) or ask for fewer connections", lim.Cur, need)
	}
	return nil
}

// memoryReading is the server's memory at one moment.
type memoryReading struct {
	rss float64 // KiB, from /proc
	// rssNet (KiB, with PprofURL) is rss less the Go heap freed but not yet
	// returned to the OS: what the RSS settles to.
	rssNet float64
	// With PprofURL, after gcsBeforeReading GCs: bytes of Go heap and of
	// goroutine stacks in use, their sum, and the number of goroutines.
	heap, stack, live, goroutines float64
}

// gcsBeforeReading is how many GCs the server is made to run before its
// memory is read. A GC shrinks a goroutine's stack by half at most, and only
// if it uses less than a quarter of it: a connection's read goroutine grown
// to 32 KiB by mochi's SUBSCRIBE needs one GC to come back to the 16 KiB it
// keeps, one grown to 64 KiB two.
const gcsBeforeReading = 3

// memory reads the server's memory: with PprofURL, after forcing GCs;
// then after Settle (time for the runtime to return freed pages), the RSS.
func (o ConnsOptions) memory(ctx context.Context, prog *progress) (memoryReading, error) {
	var m memoryReading
	if o.PprofURL != "" {
		for range gcsBeforeReading {
			g, err := goMemory(ctx, o.PprofURL)
			if err != nil {
				return m, err
			}
			m.heap, m.stack = g.heapInuse, g.stackInuse
		}
		m.live = m.heap + m.stack
		var err error
		if m.goroutines, err = goroutines(ctx, o.PprofURL); err != nil {
			return m, err
		}
	}
	if o.ServerPID <= 0 {
		return m, nil
	}
	prog.setf("settling %s before reading the server's memory", o.Settle)
	if !sleepCtx(ctx, o.Settle) {
		return m, ctx.Err()
	}
	rss, err := rssKiB(o.ServerPID)
	m.rss = float64(rss)
	if err != nil || o.PprofURL == "" {
		return m, err
	}
	g, err := goMemory(ctx, o.PprofURL)
	m.rssNet = m.rss - g.unreturned/1024
	return m, err
}

// goroutines is how many goroutines a Go server has, from the first line
// of its net/http/pprof goroutine profile.
func goroutines(ctx context.Context, pprofURL string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(pprofURL, "/")+"/debug/pprof/goroutine?debug=1", nil)
	if err != nil {
		return 0, err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("server goroutines: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("server goroutines: %s", resp.Status)
	}
	line, _ := bufio.NewReader(resp.Body).ReadString('\n')
	total, ok := strings.CutPrefix(line, "goroutine profile: total ")
	if !ok {
		return 0, fmt.Errorf("server goroutines: unexpected profile %.60q", line)
	}
	return strconv.ParseFloat(strings.TrimSpace(total), 64)
}
