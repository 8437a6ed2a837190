package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
)

// result is the part of a bench result (bench.Result in the server
// module, what `imqtt bench --json` writes) that the charts show. Fields it
// does not know are ignored, so that a newer tool's files still plot.
type result struct {
	file     string
	Scenario string             `json:"scenario"`
	Target   string             `json:"target"`
	Case     string             `json:"case"`
	Rate     float64            `json:"msgs_per_s"`
	Latency  *latency           `json:"latency"`
	Extra    map[string]float64 `json:"extra"`
	Problems []string           `json:"problems"`
}

type latency struct {
	P50 float64 `json:"p50_ms"`
	P90 float64 `json:"p90_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

// load reads one result file. A file that is not one is an error that
// names it and says what is wrong.
func load(path string) (result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return result{}, err
	}
	var r result
	if err := json.Unmarshal(b, &r); err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syn):
			return result{}, fmt.Errorf("%s: not a bench result: line %d: %v", path, line(b, syn.Offset), err)
		case errors.As(err, &typ):
			return result{}, fmt.Errorf("%s: not a bench result: line %d: %v", path, line(b, typ.Offset), err)
		}
		return result{}, fmt.Errorf("%s: not a bench result: %w", path, err)
	}
	r.file = path
	if err := r.check(); err != nil {
		return result{}, fmt.Errorf("%s: not a bench result: %w", path, err)
	}
	return r, nil
}

func line(b []byte, offset int64) int {
	return 1 + bytes.Count(b[:min(int(offset), len(b))], []byte("\n"))
}

func (r *result) check() error {
	var missing []string
	for name, v := range map[string]string{"scenario": r.Scenario, "target": r.Target, "case": r.Case} {
		if strings.TrimSpace(v) == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return fmt.Errorf("no %s", strings.Join(missing, ", "))
	}
	// No figure can be NaN or infinite: JSON has no such number.
	if r.Rate < 0 {
		return fmt.Errorf("msgs_per_s is negative (%v)", r.Rate)
	}
	if l := r.Latency; l != nil && (l.P50 < 0 || l.P90 < 0 || l.P99 < 0 || l.Max < 0) {
		return errors.New("a latency is negative")
	}
	return nil
}
