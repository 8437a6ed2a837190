package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Result is the outcome of one scenario run against one target. A rate is
// never shown without the loss and duplicate counts beside it.
type Result struct {
	Scenario string         `json:"scenario"` // p2p, conns, sync, group
	Target   string         `json:"target"`   // a label: imqttd, mosquitto, mochi
	Case     string         `json:"case"`     // the parameters a comparison must match: "pairs=20 rate=max"
	Params   map[string]any `json:"params"`
	Start    time.Time      `json:"start"`
	Seconds  float64        `json:"seconds"` // the measured interval
	Counts
	Rate       float64            `json:"msgs_per_s"`            // delivered per second over the measured interval
	SendRate   float64            `json:"send_per_s,omitempty"`  // sends per second while sending
	TargetRate float64            `json:"target_rate,omitempty"` // the rate asked for; 0: as fast as acks allow
	Latency    *Latency           `json:"latency,omitempty"`     // send to delivery (group: to the last online member)
	Extra      map[string]float64 `json:"extra,omitempty"`       // scenario figures, the unit in the key
	Problems   []string           `json:"problems,omitempty"`    // why the run failed; empty: it passed
	Notes      []string           `json:"notes,omitempty"`
}

// reachedShare is the share of the asked rate a run must reach.
const reachedShare = 0.95

// checkMessages adds the problems of a message scenario: loss, duplicates,
// sends never acked, nothing delivered, a rate asked for but not reached.
func (r *Result) checkMessages() {
	if r.Lost > 0 {
		r.problem("%d of %d acked messages lost (never delivered)", r.Lost, r.Acked)
	}
	if r.Duplicated > 0 {
		r.problem("%d duplicate deliveries", r.Duplicated)
	}
	if r.Unacked > 0 {
		r.problem("%d of %d sends never acked", r.Unacked, r.Sent)
	}
	if r.Delivered == 0 {
		r.problem("nothing was delivered")
	}
	if r.TargetRate > 0 && r.SendRate < reachedShare*r.TargetRate {
		r.problem("target load not reached: sent %.0f msgs/s of the %.0f asked (%.0f%%)", r.SendRate, r.TargetRate, 100*r.SendRate/r.TargetRate)
	}
}

func (r *Result) problem(format string, a ...any) {
	r.Problems = append(r.Problems, fmt.Sprintf(format, a...))
}

func (r *Result) extra(key string, v float64) {
	if r.Extra == nil {
		r.Extra = map[string]float64{}
	}
	r.Extra[key] = v
}

// Err is nil if the run passed, else an error listing its problems.
func (r *Result) Err() error {
	if len(r.Problems) == 0 {
		return nil
	}
	return fmt.Errorf("%s against %s FAILED: %s", r.Scenario, r.Target, strings.Join(r.Problems, "; "))
}

// WriteJSON writes r as indented JSON.
func (r *Result) WriteJSON(w io.Writer) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// ReadResult decodes one result written by WriteJSON.
func ReadResult(rd io.Reader) (*Result, error) {
	var r Result
	dec := json.NewDecoder(rd)
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("decode result: %w", err)
	}
	if r.Scenario == "" {
		return nil, errors.New("decode result: no scenario")
	}
	return &r, nil
}

// WriteTable writes r as a human-readable table: the counts, the rate and
// latency on one row, the scenario's own figures after it, then the verdict.
func (r *Result) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	if r.Scenario == "conns" {
		e := r.Extra
		fmt.Fprintf(tw, "scenario\ttarget\tconnected\tfailed\tconn/s\tRSS before MiB\tRSS after MiB\tKiB/conn\t\n")
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.2f\t\n", r.Scenario, r.Target, num(e["conns"]), num(e["conns_failed"]),
			num(e["connect_per_s"]), mib(e["server_rss_before_kib"]), mib(e["server_rss_after_kib"]), e["server_kib_per_conn"])
		return r.writeTail(w, tw)
	}
	fmt.Fprintf(tw, "scenario\ttarget\tsent\tacked\tdelivered\tlost\tdup\tsynced\tmsgs/s\tp50 ms\tp90 ms\tp99 ms\tmax ms\t\n")
	lat := r.Latency
	if lat == nil {
		lat = &Latency{}
	}
	fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t\n", r.Scenario, r.Target,
		r.Sent, r.Acked, r.Delivered, r.Lost, r.Duplicated, r.Synced, num(r.Rate),
		fms(lat.P50, lat.Count), fms(lat.P90, lat.Count), fms(lat.P99, lat.Count), fms(lat.Max, lat.Count))
	return r.writeTail(w, tw)
}

// writeTail flushes the table and writes the case, the extra figures, the
// notes and the verdict.
func (r *Result) writeTail(w io.Writer, tw *tabwriter.Writer) error {
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "case: %s; measured over %.2fs", r.Case, r.Seconds)
	if r.TargetRate > 0 {
		fmt.Fprintf(w, "; asked %s msgs/s, sent %s msgs/s", num(r.TargetRate), num(r.SendRate))
	} else if r.SendRate > 0 {
		fmt.Fprintf(w, "; sent %s msgs/s", num(r.SendRate))
	}
	fmt.Fprintln(w)
	for _, k := range slices.Sorted(maps.Keys(r.Extra)) {
		fmt.Fprintf(w, "  %s: %s\n", k, num(r.Extra[k]))
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
	if len(r.Problems) == 0 {
		_, err := fmt.Fprintln(w, "PASS")
		return err
	}
	for _, p := range r.Problems {
		fmt.Fprintf(w, "FAIL: %s\n", p)
	}
	return nil
}

// num formats a figure with three significant digits past the integer part
// for small values, none for large ones.
func num(v float64) string {
	switch {
	case v == math.Trunc(v) && math.Abs(v) < 1e15:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case math.Abs(v) >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case math.Abs(v) >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

// fms formats a latency in milliseconds, "-" when there were no samples.
func fms(v float64, n int64) string {
	if n == 0 {
		return "-"
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}
