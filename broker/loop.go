package broker

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/logging"
	"github.com/lesismal/nbio/mempool"
	"github.com/lesismal/nbio/nbhttp"
	"github.com/lesismal/nbio/nbhttp/websocket"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// The event loop. Plain TCP and WebSocket connections (TLS ones stay on
// mochi's goroutines) are not read by a goroutine each
// (mochi's way: one blocked in Read and one in WriteLoop, ~20 KiB of stacks
// per idle client) but by nbio's pollers, a few goroutines waiting in
// epoll for all connections at once:
//
//   - the poller reads what a socket has into its own buffer and frames
//     MQTT packets from it (onData; over WebSocket from each binary
//     message, which nbio's parser gives whole); only an incomplete
//     packet's bytes are kept, until it completes, so an idle connection
//     holds no buffer;
//   - complete packets go, in order, to the connection's job list
//     (nbio.Conn.Execute), which runs them one after another on a goroutine
//     taken only while the list is not empty: never on the poller, because
//     mochi's hooks block (auth reads the store, an im/send PUBLISH waits
//     for its commit before the PUBACK), and one connection's wait must not
//     hold up another's PINGREQ;
//   - the jobs are mochi's own code through the fork's seam
//     (third_party/mochi/IMQTT.md): the gate's checks and ConnectClient for
//     the CONNECT, DecodePacket and ReceivePacket for each packet after,
//     DetachClient once the connection has ended;
//   - writes go straight to the socket (mochi's NewDirectClient: no outbound
//     queue, no WriteLoop). nbio keeps what the socket cannot take yet and
//     closes a connection whose backlog passes Options.MaxWriteBacklog: a
//     subscriber that stops reading is cut off with bounded memory;
//   - deadlines are nbio timers: the gate's CONNECT deadline, then mochi's
//     keepalive (RefreshDeadline after each packet) [MQTT-3.1.2-22].
//
// What a connection may have framed and not yet processed is bounded
// (maxBacklogPackets, Options.MaxReadBacklog): past it the client is
// disconnected, with DISCONNECT 0x96 (Message rate too high, MQTT 5
// §3.14.2.1: the Client is publishing at a rate that is too high) for
// MQTT 5, rather than queueing without end. nbio offers no way to stop
// reading one connection (its pollers read every readable socket), so the
// bound disconnects instead of pushing back.
//
// The gate's rules (gate.go) hold here as on mochi's goroutines: the
// accept loop (tcp.go) or the HTTP handler (ws.go) counts the connection
// before its first byte, the CONNECT deadline is a read deadline, header
// checks the first packet's type and size as it arrives, and the CONNECT
// job runs checkConnect on its bytes before mochi sees it.
type loop struct {
	id     string // the listener's
	srv    *mqtt.Server
	gate   *gate
	log    *slog.Logger
	engine *nbio.Engine

	maxPacket    int // mochi's MaximumPacketSize, 0 for none
	maxBacklog   int // bytes framed and not yet processed, per connection
	maxBacklogPk int // packets framed and not yet processed, per connection
	busy         func(limit string)

	maxWriteBacklog int // bytes queued for a connection's writer

	// WebSocket (addWS): nbhttp's frame parser, without its HTTP server;
	// the upgrader carries the options and the message callback, the
	// engine only the limits the parser reads.
	wsUp     *websocket.Upgrader
	wsEngine *nbhttp.Engine

	// stopping is taken for reading to add a connection and for writing
	// by stop: nbio's Stop closes the connections it has and waits for
	// each one's close, so one added while it runs would be waited for
	// without end.
	stopping sync.RWMutex
	stopped  bool
}

// maxBacklogPackets bounds the packets one connection may have framed and
// not yet processed. An MQTT 5 client has at most Receive Maximum QoS 1
// PUBLISHes unacknowledged (mochi disconnects it past that, 0x93), but a
// 3.1.1 client has no such bound and may pipeline its sends (a bot
// sending 1,500 messages of 4 KB at once, e2e TestStalledSubscriber),
// which mochi's goroutine would have slowed through TCP by reading one
// packet at a time: sixteen times Receive Maximum leaves it room.
func maxBacklogPackets(receiveMaximum uint16) int { return max(16*int(receiveMaximum), 16384) }

// Refusal labels: clients disconnected for sending faster than they were
// processed, and for reading slower than they were written to.
const (
	refusedBacklog      = "read_backlog"
	refusedWriteBacklog = "write_backlog"
)

func newLoop(id string, srv *mqtt.Server, g *gate, o Options, log *slog.Logger) (*loop, error) {
	caps := srv.Options.Capabilities
	l := &loop{id: id, srv: srv, gate: g, log: log,
		maxPacket:    int(caps.MaximumPacketSize),
		maxBacklog:   o.MaxReadBacklog,
		maxBacklogPk: maxBacklogPackets(caps.ReceiveMaximum),
		busy:         o.Refused,

		maxWriteBacklog: o.MaxWriteBacklog,
	}
	setupNBIO(log)
	e := nbio.NewEngine(nbio.Config{
		Name:               "imqtt-" + id,
		MaxWriteBufferSize: o.MaxWriteBacklog,
	})
	// A connection's jobs run on a goroutine of their own while it has any
	// (nbio's default runs them on the caller: the poller). Go keeps exited
	// goroutines for reuse, so this is a pool without a pool's limit on
	// how many connections are served at once: a connection blocked in a
	// hook holds one goroutine, as under mochi, and nobody waits for it.
	e.Execute = func(f func()) { go f() }
	e.OnData(l.onData)
	e.OnClose(l.onClose)
	l.wsEngine = &nbhttp.Engine{Engine: e, Config: nbhttp.Config{
		ReadLimit:     l.maxBacklog, // bytes of one incomplete WebSocket frame
		BodyAllocator: mempool.DefaultMemPool,
		// Each packet written is one frame, as gorilla wrote it (0 would
		// write empty fragments without end).
		MaxWebsocketFramePayloadSize: math.MaxInt32,
	}, CheckUtf8: utf8.Valid}
	l.wsUp = websocket.NewUpgrader()
	l.wsUp.Engine = l.wsEngine
	l.wsUp.KeepaliveTime = 0 // mochi's keepalive sets the deadlines
	// Whole messages, not frames: nbio's data-frame callback is told the
	// first message's type for every later one, so it cannot refuse text.
	// A message is bounded as a backlog is.
	l.wsUp.MessageLengthLimit = l.maxBacklog
	l.wsUp.OnMessage(l.onWSMessage)
	if err := e.Start(); err != nil {
		return nil, fmt.Errorf("event loop: %w", err)
	}
	l.engine = e
	return l, nil
}

var nbioOnce sync.Once

// setupNBIO sets nbio's globals, once per process: its log goes to log (its
// start and stop lines at debug level), and setMaxOpenFiles.
func setupNBIO(log *slog.Logger) {
	nbioOnce.Do(func() {
		logging.SetLogger(nbioLog{log.With("component", "nbio")})
		setMaxOpenFiles()
	})
}

// refuse counts a refusal by one of the loop's limits.
func (l *loop) refuse(limit string) {
	if l.busy != nil {
		l.busy(limit)
	}
}

// nbioLog is nbio's logging.Logger on slog. nbio logs no packet contents.
type nbioLog struct{ l *slog.Logger }

func (n nbioLog) Debug(format string, v ...any) { n.l.Debug(fmt.Sprintf(format, v...)) }
func (n nbioLog) Info(format string, v ...any)  { n.l.Debug(fmt.Sprintf(format, v...)) }
func (n nbioLog) Warn(format string, v ...any)  { n.l.Warn(fmt.Sprintf(format, v...)) }
func (n nbioLog) Error(format string, v ...any) { n.l.Error(fmt.Sprintf(format, v...)) }

// setMaxOpenFiles sizes nbio's table of connections by file descriptor
// (MaxOpenFiles, 2M by default: 16 MiB of pointers) to the process's limit
// on open files, which Go raises to the hard limit at start.
func setMaxOpenFiles() {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err == nil && r.Cur > 0 && r.Cur < uint64(nbio.MaxOpenFiles) {
		nbio.MaxOpenFiles = int(r.Cur)
	}
}

// add puts an accepted connection, admitted by the gate under key, on the
// loop. It closes conn if it cannot. nbio takes a *net.TCPConn's
// descriptor; from any other type it would neither read nor close it.
func (l *loop) add(conn *net.TCPConn, key netip.Addr) { l.addConn(conn, key, nil) }

// addWS puts a WebSocket connection on the loop, once its handshake is done
// (conn is the hijacked TCP connection, subprotocol the one agreed): MQTT
// is read from its binary messages, which may split or join packets, and
// each packet written is one binary frame, as over mochi's goroutines
// (ws.go).
func (l *loop) addWS(conn *net.TCPConn, key netip.Addr, subprotocol string) {
	l.addConn(conn, key, &subprotocol)
}

func (l *loop) addConn(conn *net.TCPConn, key netip.Addr, wsSubprotocol *string) {
	l.stopping.RLock()
	defer l.stopping.RUnlock()
	if l.stopped {
		_ = conn.Close()
		l.gate.leave(key)
		return
	}
	c, err := nbConn(conn)
	if err != nil {
		_ = conn.Close()
		l.gate.leave(key)
		l.log.Debug("connection not added to the event loop", "listener", l.id, "err", err)
		return
	}
	lc := &loopConn{Conn: c, l: l, key: key}
	if wsSubprotocol != nil {
		lc.ws = websocket.NewServerConn(l.wsUp, c, *wsSubprotocol, false, false)
		lc.ws.Engine = l.wsEngine
		lc.ws.Execute = nbhttp.SyncExecutor // messages go to onWSMessage on the poller, which only frames MQTT
		lc.ws.SetSession(lc)
	}
	c.Lock() // the poller reads lc after taking this lock: it sees lc whole
	c.SetSession(lc)
	c.Unlock()
	if _, err := l.engine.AddConn(c); err != nil {
		lc.release() // AddConn has closed c; release is once, whether or not onClose runs
		l.log.Debug("connection not added to the event loop", "listener", l.id, "err", err)
		return
	}
	_ = lc.SetDeadline(time.Now().Add(l.gate.timeout)) // the CONNECT deadline; mochi's keepalive replaces it
}

// nbConn moves conn's socket to an nbio connection: a dup of its
// descriptor (conn is closed), made close-on-exec under syscall.ForkLock,
// as Go makes its own (nbio's syscall.Dup does not). A descriptor a child
// process inherits keeps the socket's epoll registration, under the
// descriptor's number, alive after nbio closes it: its events would then
// go to the next connection given that number, and close it.
func nbConn(conn *net.TCPConn) (*nbio.Conn, error) {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	c, err := nbio.NBConn(conn)
	if err != nil {
		return nil, err
	}
	rc, err := c.SyscallConn()
	if err == nil {
		err = rc.Control(func(fd uintptr) { syscall.CloseOnExec(int(fd)) })
	}
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	return c, nil
}

// stop closes every connection still on the loop and stops its pollers,
// once; a connection added after it is closed at once.
func (l *loop) stop() {
	l.stopping.Lock()
	stopped := l.stopped
	l.stopped = true
	l.stopping.Unlock()
	if stopped {
		return
	}
	// nbio's Stop waits for every connection it counts to close. Twice in
	// the CLI's tests it waited forever for one it no longer had in its
	// table (cause not found; see the issue 21 notes): the node's shutdown
	// must not hang on it. What is left runs until the process exits.
	done := make(chan struct{})
	go func() {
		l.engine.Stop()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(loopStopTimeout):
		l.log.Error("event loop did not stop in time; its pollers are left running", "listener", l.id, "after", loopStopTimeout)
	}
}

// loopStopTimeout bounds how long stop waits for nbio to stop.
const loopStopTimeout = 5 * time.Second

// loopConn is one connection on the loop, and the net.Conn mochi writes
// to, sets deadlines on and closes (nbio.Conn's Write does not block).
type loopConn struct {
	*nbio.Conn
	ws       *websocket.Conn // nil for plain TCP
	l        *loop
	key      netip.Addr // the gate's count of unauthenticated connections
	released atomic.Bool

	// Framing: touched by the poller goroutine only (nbio reads one
	// connection on one poller).
	partial   []byte // an incomplete packet's bytes; nil between packets
	need      int    // the incomplete packet's size, 0 while its fixed header is incomplete
	connected bool   // the CONNECT has been framed
	dead      bool   // framing failed or the backlog overflowed: read nothing more

	// Bytes and packets framed and not yet processed.
	backlog, backlogPk atomic.Int64

	// Writes (Write, flush): wbuf holds what waits for the writer, nil
	// when nothing does; wio orders the writer's and Close's writes.
	wmu      sync.Mutex
	wio      sync.Mutex
	wbuf     *[]byte
	flushing bool // a writer goroutine runs
	wclosed  bool
	queued   bool // nbio holds bytes the socket did not take: later writes go behind them (under wio)

	// The read deadline (CONNECT, then mochi's keepalive): a timer of
	// ours, not nbio's, whose expiry ends the connection through the
	// poller (shutdown), not by a close on the timer's goroutine.
	dmu      sync.Mutex
	deadline *time.Timer

	// Jobs: touched by the connection's jobs only, which run one at a time
	// (cl is also read by the poller's overflow).
	cl         atomic.Pointer[mqtt.Client] // set once ConnectClient has succeeded: DetachClient is owed
	connectRan bool                        // a CONNECT has been processed (accepted or not)
	ending     atomic.Bool                 // we end the connection: process nothing more
	endErr     atomic.Pointer[error]       // why we end it
}

// frame is one complete packet: its fixed header and its bytes, the fixed
// header's included (raw[hdr:] is the body).
type frame struct {
	fh  packets.FixedHeader
	hdr int
	raw []byte
}

var (
	errMalformedHeader = errors.New("malformed fixed header")
	errBacklog         = errors.New("packets sent faster than they are processed")
)

// release takes the connection out of the gate's unauthenticated count, once.
func (lc *loopConn) release() {
	if lc.released.CompareAndSwap(false, true) {
		lc.l.gate.leave(lc.key)
	}
}

// Write queues one packet (mochi writes each in one call) for the
// connection's writer: as it is over TCP, as one binary frame over
// WebSocket. It does not block, and makes no system call: mochi writes
// deliveries on the publisher's goroutine (the chat dispatcher, for every
// connection), which must not spend a write(2) on each. The writer is a
// goroutine that runs while bytes wait (flush), and sends all that queued
// meanwhile in one write, as mochi's WriteLoop gathered its queue.
func (lc *loopConn) Write(p []byte) (int, error) {
	lc.wmu.Lock()
	if lc.wclosed {
		lc.wmu.Unlock()
		return 0, net.ErrClosed
	}
	if lc.wbuf == nil {
		lc.wbuf = writeBufs.Get().(*[]byte)
	}
	if lc.ws != nil {
		*lc.wbuf = appendWSHeader(*lc.wbuf, len(p))
	}
	*lc.wbuf = append(*lc.wbuf, p...)
	over := len(*lc.wbuf) > lc.l.maxWriteBacklog
	start := !lc.flushing && !over
	lc.flushing = lc.flushing || start
	lc.wmu.Unlock()
	if over { // the writer cannot keep up: as nbio's MaxWriteBufferSize
		lc.l.refuse(refusedWriteBacklog)
		go lc.end(nbio.ErrOverflow)
		return 0, nbio.ErrOverflow
	}
	if start {
		go lc.flush()
	}
	return len(p), nil
}

// appendWSHeader appends the header of an unmasked, final, binary
// WebSocket frame of n bytes (RFC 6455 §5.2), as a server sends it.
func appendWSHeader(b []byte, n int) []byte {
	b = append(b, 0x82)
	switch {
	case n < 126:
		return append(b, byte(n))
	case n <= 0xffff:
		return append(b, 126, byte(n>>8), byte(n))
	default:
		return append(b, 127, byte(uint64(n)>>56), byte(uint64(n)>>48), byte(uint64(n)>>40), byte(uint64(n)>>32),
			byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}

// writeBufs holds the writers' buffers between bursts: a connection holds
// one only while bytes wait for its writer.
var writeBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// flush is the connection's writer: it hands what was queued to nbio's
// Write, which does not block (it keeps what the socket cannot take, up to
// MaxWriteBacklog), until nothing is left, and returns.
func (lc *loopConn) flush() {
	for {
		lc.wio.Lock()
		lc.wmu.Lock()
		b := lc.wbuf
		lc.wbuf = nil
		if b == nil {
			lc.flushing = false
			lc.wmu.Unlock()
			lc.wio.Unlock()
			return
		}
		lc.wmu.Unlock()
		err := lc.send(*b)
		lc.wio.Unlock()
		putWriteBuf(b)
		if err != nil { // nbio has closed the connection (a backlog past MaxWriteBacklog, a reset)
			if errors.Is(err, nbio.ErrOverflow) {
				lc.l.refuse(refusedWriteBacklog)
			}
			lc.wmu.Lock()
			lc.wclosed, lc.flushing = true, false
			if lc.wbuf != nil {
				putWriteBuf(lc.wbuf)
				lc.wbuf = nil
			}
			lc.wmu.Unlock()
			return
		}
	}
}

func putWriteBuf(b *[]byte) {
	if cap(*b) <= 64<<10 { // a large packet's buffer goes to the garbage collector
		*b = (*b)[:0]
		writeBufs.Put(b)
	}
}

// send writes b to the socket, under wio. nbio's Write closes the
// descriptor on the writing goroutine when the write fails (the peer
// reset), while the poller may hold an event of that socket: once a new
// connection reuses the number, the event closes it (seen as a client
// cut off before its CONNACK). So send writes itself while nothing waits
// in nbio: a failure ends the connection through shutdown(2) and the
// poller, like every close of ours. What the socket does not take goes to
// nbio's Write, which queues it for the poller, and so does everything
// after it on that connection (its order is nbio's from then on).
// WebSocket connections write through nbio always (nbhttp writes its
// control frames there too).
func (lc *loopConn) send(b []byte) error {
	if lc.queued || lc.ws != nil {
		_, err := lc.Conn.Write(b)
		return err
	}
	lc.Conn.Lock()
	if closed, _ := lc.Conn.IsClosed(); closed {
		lc.Conn.Unlock()
		return net.ErrClosed
	}
	rc, _ := lc.Conn.SyscallConn()
	var n int
	var err error
	_ = rc.Control(func(fd uintptr) {
		for n < len(b) {
			k, e := syscall.Write(int(fd), b[n:])
			if k > 0 {
				n += k
			}
			if errors.Is(e, syscall.EINTR) {
				continue
			}
			if e != nil || k <= 0 {
				err = e
				break
			}
		}
		if err != nil && !errors.Is(err, syscall.EAGAIN) {
			_ = syscall.Shutdown(int(fd), syscall.SHUT_RDWR) // the poller sees the hang-up and closes
		}
	})
	lc.Conn.Unlock()
	switch {
	case err != nil && !errors.Is(err, syscall.EAGAIN):
		return err
	case n == len(b):
		return nil
	}
	lc.queued = true // the socket is full: nbio queues the rest and writes it when it drains
	_, err = lc.Conn.Write(b[n:])
	return err
}

// SetDeadline is mochi's keepalive (and, before it, the CONNECT deadline):
// a read deadline only. Writes need none (they do not block;
// MaxWriteBacklog bounds them). Its expiry ends the connection as nbio's
// read deadline would (nbio.ErrReadTimeout), through the poller.
func (lc *loopConn) SetDeadline(t time.Time) error {
	if lc.ws != nil {
		return lc.Conn.SetReadDeadline(t) // nbhttp's connection: nbio's own deadline, as its writes are nbio's
	}
	lc.dmu.Lock()
	defer lc.dmu.Unlock()
	switch {
	case t.IsZero():
		if lc.deadline != nil {
			lc.deadline.Stop()
		}
	case lc.deadline == nil:
		lc.deadline = time.AfterFunc(time.Until(t), lc.expire)
	default:
		lc.deadline.Reset(time.Until(t))
	}
	return nil
}

var errReadTimeout = nbio.ErrReadTimeout

func (lc *loopConn) expire() {
	lc.endErr.CompareAndSwap(nil, &errReadTimeout)
	lc.shutdown()
}

// Close writes what is queued (a refusal CONNACK, a DISCONNECT), then
// closes the connection.
func (lc *loopConn) Close() error {
	lc.wio.Lock()
	lc.wmu.Lock()
	b := lc.wbuf
	lc.wbuf, lc.wclosed = nil, true
	lc.wmu.Unlock()
	if b != nil {
		_ = lc.send(*b)
		putWriteBuf(b)
	}
	lc.wio.Unlock()
	lc.shutdown()
	return nil
}

// shutdown ends the connection for its poller to close. nbio closes a
// descriptor on whichever goroutine calls Close; the poller may then hold
// an event of the closed socket (its peer hung up too) and, once a new
// connection has reused the descriptor number, close that one in its
// place: seen as a new client cut off before its CONNACK. shutdown(2)
// makes the socket report a hang-up, and the poller, which takes events in
// order, closes it itself (onClose follows as for any close).
func (lc *loopConn) shutdown() {
	lc.Conn.Lock() // nbio marks a connection closed under this lock before it closes the descriptor
	defer lc.Conn.Unlock()
	if closed, _ := lc.Conn.IsClosed(); closed {
		return
	}
	rc, _ := lc.Conn.SyscallConn()
	_ = rc.Control(func(fd uintptr) { _ = syscall.Shutdown(int(fd), syscall.SHUT_RDWR) })
}

// onData takes what the poller read for a connection, in data, which is
// the poller's buffer and valid only during the call.
func (l *loop) onData(c *nbio.Conn, data []byte) {
	lc, _ := c.Session().(*loopConn)
	if lc == nil || lc.dead {
		return
	}
	if lc.ws != nil {
		if err := lc.ws.Parse(data); err != nil { // calls onWSMessage for each message
			lc.fail(err)
		}
		return
	}
	lc.push(data)
}

// onWSMessage takes a WebSocket message's payload: bytes of the MQTT
// stream, which a message may split or join (MQTT 5 §6.0).
func (l *loop) onWSMessage(ws *websocket.Conn, typ websocket.MessageType, data []byte) {
	lc, _ := ws.Session().(*loopConn)
	if lc == nil || lc.dead {
		return
	}
	if typ != websocket.BinaryMessage {
		lc.fail(errTextFrame) // [MQTT-6.0.0-1]
		return
	}
	lc.push(data)
}

// push frames the packets in data and queues them for the connection's jobs.
func (lc *loopConn) push(data []byte) {
	l := lc.l
	batch, err := lc.frame(data)
	if err != nil {
		lc.fail(err)
		return
	}
	if len(batch) == 0 {
		return
	}
	n := 0
	for _, f := range batch {
		n += len(f.raw)
	}
	if lc.backlog.Add(int64(n)) > int64(l.maxBacklog) || lc.backlogPk.Add(int64(len(batch))) > int64(l.maxBacklogPk) {
		lc.overflow()
		return
	}
	lc.Execute(func() { lc.run(batch) })
}

// frame returns the packets data completes, each in a buffer of its own,
// and keeps the bytes of an incomplete one (a copy) until the next call.
func (lc *loopConn) frame(data []byte) ([]frame, error) {
	var batch []frame
	for len(data) > 0 {
		if lc.partial == nil {
			f, n, err := lc.header(data)
			switch {
			case err != nil:
				return nil, err
			case n == 0: // header incomplete
				lc.partial = append(make([]byte, 0, 5), data...)
				data = nil
			case len(data) >= n: // a whole packet
				f.raw = append(make([]byte, 0, n), data[:n]...)
				batch = append(batch, f)
				data = data[n:]
			default: // the start of a packet
				lc.partial = append(make([]byte, 0, n), data...)
				lc.need = n
				data = nil
			}
			continue
		}
		if lc.need == 0 { // complete the fixed header a byte at a time (at most 5)
			lc.partial = append(lc.partial, data[0])
			data = data[1:]
			_, n, err := lc.header(lc.partial)
			switch {
			case err != nil:
				return nil, err
			case n > 0:
				lc.need = n
				lc.partial = append(make([]byte, 0, n), lc.partial...)
			}
		} else {
			k := min(lc.need-len(lc.partial), len(data))
			lc.partial = append(lc.partial, data[:k]...)
			data = data[k:]
		}
		if lc.need > 0 && len(lc.partial) == lc.need {
			f, _, _ := lc.header(lc.partial)
			f.raw = lc.partial
			batch = append(batch, f)
			lc.partial, lc.need = nil, 0
		}
	}
	return batch, nil
}

// header reads the fixed header at the start of b. It returns the size of
// the whole packet, or 0 if b holds only part of the header, and an error
// for a header that cannot start an acceptable packet. Until the CONNECT,
// the gate's rules apply: it must come first [MQTT-3.1.0-1] and be at most
// maxConnectSize bytes; after it, mochi's MaximumPacketSize
// [MQTT-3.2.2-15].
func (lc *loopConn) header(b []byte) (frame, int, error) {
	var f frame
	if !lc.connected && b[0]>>4 != packets.Connect {
		return f, 0, errNotConnect
	}
	if err := f.fh.Decode(b[0]); err != nil {
		return f, 0, err
	}
	rem, shift := 0, 0
	for i := 1; ; i++ {
		if i == 5 {
			return f, 0, errMalformedHeader // more than 4 length bytes [MQTT-1.5.5]
		}
		if i == len(b) {
			return f, 0, nil
		}
		rem |= int(b[i]&0x7f) << shift
		shift += 7
		if b[i]&0x80 == 0 {
			f.hdr = i + 1
			break
		}
	}
	f.fh.Remaining = rem
	switch {
	case !lc.connected && f.hdr+rem > maxConnectSize:
		return f, 0, errConnectSize
	case lc.connected && lc.l.maxPacket > 0 && rem+1 > lc.l.maxPacket:
		return f, 0, packets.ErrPacketTooLarge
	}
	if f.fh.Type == packets.Connect {
		lc.connected = true
	}
	return f, f.hdr + rem, nil
}

// fail ends a connection whose bytes cannot be framed: what mochi's Read
// does with an error from ReadFixedHeader (close, no DISCONNECT).
func (lc *loopConn) fail(err error) {
	lc.dead = true
	if !lc.connected {
		lc.l.gate.refuse(refusedInvalid)
	}
	lc.end(err)
}

// overflow ends a connection that has sent more than its backlog allows.
// The DISCONNECT is written on a goroutine of its own: the poller must not
// take the client's lock, which a job may hold.
func (lc *loopConn) overflow() {
	lc.dead = true
	lc.l.refuse(refusedBacklog)
	lc.endErr.CompareAndSwap(nil, &errBacklog)
	lc.ending.Store(true)
	go func() {
		if cl := lc.cl.Load(); cl != nil && cl.Properties.ProtocolVersion >= 5 {
			_ = lc.l.srv.DisconnectClient(cl, packets.ErrMessageRateTooHigh) // 0x96 (MQTT 5 §3.14.2.1)
		}
		_ = lc.Close()
	}()
}

// end records why the connection ends, unless a reason is recorded
// already, and closes it; its jobs process nothing more.
func (lc *loopConn) end(err error) {
	lc.endErr.CompareAndSwap(nil, &err)
	lc.ending.Store(true)
	_ = lc.Close()
}

// run processes a batch of packets in order: a job of the connection's.
func (lc *loopConn) run(batch []frame) {
	for _, f := range batch {
		lc.backlog.Add(-int64(len(f.raw)))
		lc.backlogPk.Add(-1)
		if lc.ending.Load() {
			continue // as mochi's Read stops at a closed client
		}
		if !lc.connectRan {
			lc.connect(f)
		} else {
			lc.receive(f)
		}
	}
}

// connect runs the CONNECT: the gate's checks of its raw bytes, then
// mochi's ConnectClient.
func (lc *loopConn) connect(f frame) {
	l := lc.l
	lc.connectRan = true
	if r := checkConnect(f.raw); r != nil {
		l.gate.refuse(r.limit)
		if r.code != nil {
			_, _ = lc.Write(r.connack())
		}
		lc.end(fmt.Errorf("CONNECT refused: %s", r.reason))
		return
	}
	cl := l.srv.NewDirectClient(lc, l.id)
	atomic.AddInt64(&l.srv.Info.BytesReceived, int64(f.hdr))
	pk, err := cl.DecodePacket(&f.fh, f.raw[f.hdr:])
	if err != nil {
		lc.end(fmt.Errorf("read connection: %w", err))
		return
	}
	l.srv.Listeners.ClientsWg.Add(1)
	if err := l.srv.ConnectClient(cl, l.id, pk); err != nil {
		l.srv.Listeners.ClientsWg.Done()
		cl.Stop(nil) // as attachClient's deferred Stop
		lc.end(err)
		return
	}
	lc.cl.Store(cl)
}

// receive runs one packet after the CONNECT, as mochi's Read loop does.
func (lc *loopConn) receive(f frame) {
	cl := lc.cl.Load()
	if cl == nil {
		return // the CONNECT was refused
	}
	atomic.AddInt64(&lc.l.srv.Info.BytesReceived, int64(f.hdr))
	pk, err := cl.DecodePacket(&f.fh, f.raw[f.hdr:])
	if err == nil {
		err = lc.l.srv.ReceivePacket(cl, pk)
	}
	if err != nil {
		lc.end(err)
		return
	}
	if cl.Closed() { // a DISCONNECT, a takeover, a kick
		lc.ending.Store(true)
		return
	}
	cl.RefreshDeadline()
}

// onClose is nbio's: the connection has closed, for err (nil: closed by
// us; io.EOF: by the peer; nbio.ErrReadTimeout: a deadline). It queues
// the end behind the jobs already queued.
func (l *loop) onClose(c *nbio.Conn, err error) {
	lc, _ := c.Session().(*loopConn)
	if lc == nil {
		return
	}
	// Packets framed before the peer closed are still processed, as mochi
	// reads what the socket buffered before it reads the end.
	c.MustExecute(func() { lc.closed(err) })
}

// closed ends the connection once its jobs are done: the gate forgets it,
// and mochi's DetachClient runs for a client that was connected, with why
// it ended as mochi's Read would report it.
func (lc *loopConn) closed(err error) {
	lc.release()
	lc.dmu.Lock()
	if lc.deadline != nil {
		lc.deadline.Stop()
	}
	lc.dmu.Unlock()
	l := lc.l
	cl := lc.cl.Load()
	if cl == nil {
		if e := lc.endErr.Load(); e != nil {
			err = *e
		}
		if !lc.connectRan && errors.Is(err, nbio.ErrReadTimeout) {
			l.gate.refuse(refusedTimeout)
		}
		return
	}
	switch {
	case lc.endErr.Load() != nil:
		err = *lc.endErr.Load()
	case cl.Closed(): // stopped by the server or by the client's DISCONNECT: Read returns nil
		err = nil
	case err == nil:
		err = io.EOF
	}
	_ = l.srv.DetachClient(cl, l.id, err)
	l.srv.Listeners.ClientsWg.Done()
}
