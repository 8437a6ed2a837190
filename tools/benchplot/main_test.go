package main

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The result directories BENCHMARKS.md plots, and where their charts are
// committed.
var plotted = map[string]string{
	"../../bench/results":       "../../bench/plots",
	"../../bench/results/scale": "../../bench/plots/scale",
}

// TestPlotsEveryResult renders every committed result file: each becomes a
// bar of its scenario's rate chart, every chart is well-formed XML, and the
// charts committed under bench/plots are the ones the results make now
// (re-run the command in BENCHMARKS.md after a bench run).
func TestPlotsEveryResult(t *testing.T) {
	for in, committed := range plotted {
		files, err := filepath.Glob(filepath.Join(in, "*.json"))
		if err != nil || len(files) == 0 {
			t.Fatalf("%s: no result files (%v)", in, err)
		}
		out := t.TempDir()
		written, err := run(out, []string{in})
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		bars := 0
		for _, path := range written {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := wellFormed(b); err != nil {
				t.Errorf("%s: %v", path, err)
			}
			if strings.HasSuffix(path, "-rate.svg") {
				bars += bytes.Count(b, []byte("<title>"))
			}
			want, err := os.ReadFile(filepath.Join(committed, filepath.Base(path)))
			if err != nil || !bytes.Equal(b, want) {
				t.Errorf("%s is not what %s makes now: run go -C tools run ./benchplot -out %s %s",
					filepath.Join(committed, filepath.Base(path)), in, strings.TrimPrefix(committed, "../"), strings.TrimPrefix(in, "../"))
			}
		}
		if bars != len(files) {
			t.Errorf("%s: %d bars in the rate charts for %d result files", in, bars, len(files))
		}
	}
}

func wellFormed(b []byte) error {
	d := xml.NewDecoder(bytes.NewReader(b))
	for {
		if _, err := d.Token(); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
	}
}

// TestRefusesMalformed: a file that is not a bench result stops the
// command with its name and what is wrong, before any chart is written.
func TestRefusesMalformed(t *testing.T) {
	good, err := os.ReadFile("../../bench/results/imqttd-p2p-max.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, body, want string }{
		{"truncated", string(good[:len(good)/2]), "not a bench result: line 31: unexpected end of JSON input"},
		{"syntax", "{\n  \"scenario\": \"p2p\",\n  \"target\" \"x\"\n}", "line 3: invalid character"},
		{"wrong type", "{\n  \"scenario\": \"p2p\",\n  \"msgs_per_s\": \"fast\"\n}", "line 3: json: cannot unmarshal string"},
		{"an array", "[1, 2]", "not a bench result: line 1: json: cannot unmarshal array"},
		{"no scenario", `{"target": "imqttd", "case": "x", "msgs_per_s": 1}`, "not a bench result: no scenario"},
		{"empty object", `{}`, "no case, scenario, target"},
		{"negative rate", `{"scenario": "p2p", "target": "imqttd", "case": "x", "msgs_per_s": -1}`, "msgs_per_s is negative"},
		{"negative latency", `{"scenario": "p2p", "target": "imqttd", "case": "x", "latency": {"p99_ms": -3}}`, "a latency is negative"},
	} {
		dir := t.TempDir()
		bad := filepath.Join(dir, "bad.json")
		if err := os.WriteFile(bad, []byte(c.body), 0o644); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, "plots")
		_, err := run(out, []string{"../../bench/results/imqttd-p2p-max.json", bad})
		if err == nil || !strings.Contains(err.Error(), bad+": ") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want an error naming %s and saying %q", c.name, err, bad, c.want)
		}
		if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: the output directory was made (%v)", c.name, err)
		}
	}
	if _, err := run(t.TempDir(), []string{t.TempDir()}); err == nil || !strings.Contains(err.Error(), "no result files") {
		t.Errorf("an empty directory: %v", err)
	}
}

func TestNaturalOrder(t *testing.T) {
	want := []string{"conns=5000", "conns=19000", "rate=1000", "rate=6812", "rate=12071", "rate=max"}
	for i := range want {
		for j := range want {
			if got := naturalLess(want[i], want[j]); got != (i < j) {
				t.Errorf("naturalLess(%q, %q) = %v", want[i], want[j], got)
			}
		}
	}
}
