package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// serverMetrics is one scrape of imqttd's /metrics: each series (name with
// its labels, as written) to its value.
type serverMetrics map[string]float64

// scrape reads server's /metrics; nil (and no error) for a plain target.
func (t Target) scrape(ctx context.Context) (serverMetrics, error) {
	if t.Plain || t.Server == "" {
		return nil, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(t.Server, "/")+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape metrics: %s", resp.Status)
	}
	m := serverMetrics{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		m[line[:i]] = v
	}
	return m, sc.Err()
}

// delta is after[name] - before[name] (0 when either is missing).
func delta(before, after serverMetrics, name string) float64 {
	if before == nil || after == nil {
		return 0
	}
	return after[name] - before[name]
}

// addServerFigures adds what imqttd counted during a run: packets dropped on
// full client queues, items sent by sync, and the store's batching.
func (r *Result) addServerFigures(before, after serverMetrics) {
	if before == nil || after == nil {
		return
	}
	r.extra("server_dropped", delta(before, after, "imqtt_dropped_total"))
	r.extra("server_sync_items", delta(before, after, "imqtt_sync_items_total"))
	commits := delta(before, after, "imqtt_store_batch_messages_count")
	if commits > 0 {
		r.extra("store_commits", commits)
		r.extra("store_batch_mean_msgs", delta(before, after, "imqtt_store_batch_messages_sum")/commits)
		// The share of commits per batch-size bucket (upper bound), as the histogram has it.
		prev := 0.0
		for _, le := range []string{"1", "2", "4", "8", "16", "32", "64", "128", "256", "512", "1024", "+Inf"} {
			c := delta(before, after, `imqtt_store_batch_messages_bucket{le="`+le+`"}`)
			if c-prev > 0 {
				r.extra("store_batches_le_"+padLE(le), c-prev)
			}
			prev = c
		}
	}
}

// rssKiB reads a process's resident set size (VmRSS) from /proc.
func rssKiB(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("server RSS: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				return strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("server RSS: no VmRSS in /proc/%d/status", pid)
}

// padLE zero-pads a bucket bound so the buckets sort in order by name.
func padLE(le string) string {
	if le == "+Inf" {
		return "inf"
	}
	return strings.Repeat("0", max(4-len(le), 0)) + le
}

// cpuSeconds is the user+system CPU time a process has used, from
// /proc/PID/stat (in USER_HZ ticks, 100 a second on Linux).
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("process CPU: %w", err)
	}
	// The command name (field 2) may hold spaces; the fields after its ")" are fixed.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("process CPU: odd /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("process CPU: short /proc/%d/stat", pid)
	}
	utime, err1 := strconv.ParseFloat(f[11], 64) // field 14
	stime, err2 := strconv.ParseFloat(f[12], 64) // field 15
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("process CPU: bad /proc/%d/stat", pid)
	}
	return (utime + stime) / 100, nil
}

// cpuMeter measures the CPU the bench and the server use over an interval.
type cpuMeter struct {
	server          int // 0: the bench only
	bench0, server0 float64
}

func startCPU(serverPID int) *cpuMeter {
	m := &cpuMeter{server: serverPID}
	m.bench0, _ = cpuSeconds(os.Getpid())
	if serverPID > 0 {
		m.server0, _ = cpuSeconds(serverPID)
	}
	return m
}

// stop adds the CPU seconds used since start, and the server's CPU per
// delivered message, to r.
func (m *cpuMeter) stop(r *Result, delivered int64) {
	if b, err := cpuSeconds(os.Getpid()); err == nil {
		r.extra("bench_cpu_s", b-m.bench0)
	}
	if m.server <= 0 || m.server == os.Getpid() {
		return
	}
	s, err := cpuSeconds(m.server)
	if err != nil {
		return
	}
	r.extra("server_cpu_s", s-m.server0)
	if delivered > 0 {
		r.extra("server_cpu_us_per_msg", (s-m.server0)/float64(delivered)*1e6)
	}
}

// goMem is a Go server's memory after a forced GC, from runtime.MemStats.
type goMem struct {
	heapInuse, stackInuse float64 // bytes
	// unreturned is heap the runtime has freed but not yet given back to
	// the OS (HeapIdle - HeapReleased): part of the RSS that a burst (the
	// logins' password hashing) left behind and the scavenger returns slowly.
	unreturned float64
}

// goMemory forces a garbage collection in a Go server through its
// net/http/pprof (heap?gc=1) and reads its memory after it, from the
// profile's runtime.MemStats footer.
func goMemory(ctx context.Context, pprofURL string) (goMem, error) {
	var m goMem
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(pprofURL, "/")+"/debug/pprof/heap?gc=1&debug=1", nil)
	if err != nil {
		return m, err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return m, fmt.Errorf("server heap: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return m, fmt.Errorf("server heap: %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var idle, released float64
	fields := map[string]*float64{"# HeapInuse = ": &m.heapInuse, "# Stack = ": &m.stackInuse, "# HeapIdle = ": &idle, "# HeapReleased = ": &released}
	found := 0
	for sc.Scan() {
		line := sc.Text()
		for prefix, dst := range fields {
			if v, ok := strings.CutPrefix(line, prefix); ok {
				*dst, _ = strconv.ParseFloat(strings.TrimSpace(strings.Split(v, "/")[0]), 64)
				found++
			}
		}
	}
	if err := sc.Err(); err != nil {
		return m, fmt.Errorf("server heap: %w", err)
	}
	if found < len(fields) {
		return m, errors.New("server heap: no runtime.MemStats in the heap profile")
	}
	m.unreturned = idle - released
	return m, nil
}

// profile saves the server's CPU and allocation profiles over d to
// prefix-cpu.pprof and prefix-allocs.pprof, both at once.
func profile(ctx context.Context, pprofURL, prefix string, d time.Duration) error {
	secs := max(int(d.Seconds()), 1)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, kind := range []string{"profile", "allocs"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fetchTo(ctx, fmt.Sprintf("%s/debug/pprof/%s?seconds=%d", strings.TrimRight(pprofURL, "/"), kind, secs),
				prefix+map[string]string{"profile": "-cpu.pprof", "allocs": "-allocs.pprof"}[kind])
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func fetchTo(ctx context.Context, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	c := &http.Client{Timeout: 10 * time.Minute}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile %s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("profile %s: %w", url, err)
	}
	return f.Close()
}
