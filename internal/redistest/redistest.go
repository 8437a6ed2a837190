// Package redistest runs redis-server child processes for tests: plain or
// as a one-node Redis Cluster, on free ports, killable and restartable.
// Tests fail (never skip) when redis-server is missing; scripts/test.sh
// installs it.
package redistest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Server is a redis-server child process on 127.0.0.1 without
// persistence: killing it loses everything, as a Redis restart does.
type Server struct {
	port, busPort int // busPort: the cluster bus, 0 for a plain server
	dir           string
	cmd           *exec.Cmd
	exited        chan struct{}
	out           *syncBuffer
}

// Start starts a redis-server on a free port; with cluster, a
// single-node Redis Cluster owning all 16384 slots, so that a script whose
// keys hash to different slots fails as it would on a real cluster.
func Start(cluster bool) (*Server, error) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		return nil, fmt.Errorf("redis-server is not installed (scripts/test.sh installs it with apt-get): %w", err)
	}
	dir, err := os.MkdirTemp("", "imqtt-redis-")
	if err != nil {
		return nil, err
	}
	var lastErr error
	for range 5 { // a free port may be taken before redis-server binds it
		r := &Server{dir: dir}
		if r.port, err = FreePort(); err != nil {
			return nil, err
		}
		if cluster {
			if r.busPort, err = FreePort(); err != nil {
				return nil, err
			}
		}
		if lastErr = r.start(); lastErr == nil {
			if cluster {
				if lastErr = r.assignSlots(); lastErr != nil {
					r.Kill()
					continue
				}
			}
			return r, nil
		}
	}
	os.RemoveAll(dir)
	return nil, lastErr
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (r *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }
func (r *Server) URL() string  { return "redis://" + r.Addr() + "/0" }

// start runs redis-server on r.port and waits until it answers.
func (r *Server) start() error {
	args := []string{"--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", r.dir, "--logfile", ""}
	if r.busPort != 0 {
		os.Remove(r.dir + "/nodes.conf")
		args = append(args, "--cluster-enabled", "yes", "--cluster-port", strconv.Itoa(r.busPort),
			"--cluster-config-file", "nodes.conf")
	}
	r.out = &syncBuffer{}
	r.cmd = exec.Command("redis-server", args...)
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
	r.cmd.SysProcAttr = childAttr()
	if err := r.cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	r.exited = make(chan struct{})
	go func() { r.cmd.Wait(); close(r.exited) }()

	c := goredis.NewClient(&goredis.Options{Addr: r.Addr(), MaxRetries: -1, DialTimeout: time.Second})
	defer c.Close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-r.exited:
			return fmt.Errorf("redis-server on port %d exited: %s", r.port, r.out.String())
		default:
		}
		if time.Now().After(deadline) {
			r.Kill()
			return fmt.Errorf("redis-server on port %d does not answer: %v", r.port, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// assignSlots gives the single cluster node every slot and waits for the
// cluster to report ok.
func (r *Server) assignSlots() error {
	c := goredis.NewClient(&goredis.Options{Addr: r.Addr()})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := c.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", 0, 16383).Err(); err != nil {
		return fmt.Errorf("cluster addslotsrange: %w", err)
	}
	for {
		info, err := c.ClusterInfo(ctx).Result()
		if err == nil && bytes.Contains([]byte(info), []byte("cluster_state:ok")) {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("cluster state not ok: %v %q", err, info)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Kill kills the server (no shutdown, no save) and waits for it to exit.
func (r *Server) Kill() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	r.cmd.Process.Kill()
	<-r.exited
}

// Restart starts a new server on the same port, empty.
func (r *Server) Restart() error {
	r.Kill()
	var err error
	for range 50 { // the port is usually free at once; give it a moment if not
		if err = r.start(); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

// Close kills the server and removes its directory.
func (r *Server) Close() {
	r.Kill()
	os.RemoveAll(r.dir)
}

// Answers reports whether a Redis answers at url.
func Answers(url string) error {
	o, err := goredis.ParseURL(url)
	if err != nil {
		return err
	}
	// A plain dial first: go-redis logs every failed dial to stderr.
	conn, err := net.DialTimeout(o.Network, o.Addr, time.Second)
	if err != nil {
		return err
	}
	conn.Close()
	o.MaxRetries = -1
	o.DialTimeout = time.Second
	c := goredis.NewClient(o)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		return errors.Join(errors.New("no answer"), err)
	}
	return nil
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.b.Len() > 1<<16 {
		return len(p), nil // enough to explain a failure
	}
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
