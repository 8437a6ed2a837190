package bench

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
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
