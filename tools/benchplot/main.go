// Command benchplot draws SVG charts of `imqtt bench` results, for
// BENCHMARKS.md:
//
//	go -C tools run ./benchplot -out ../bench/plots ../bench/results
//
// An argument is a result file, or a directory whose *.json files are
// results (not its subdirectories).
//
// For each scenario in the files it writes {scenario}-rate.svg (delivered
// msgs/s; connections made per second for conns) and, where the results
// have them, {scenario}-latency.svg (p50, p90, p99 and max, log scale) and
// conns-memory.svg (server RSS and Go heap+stacks per idle connection).
// Each chart has one row per result: its case, then its target
// (imqttd, mochi, mosquitto...), so the targets measured in one run stand
// side by side. A file that is not a bench result is an error naming it;
// nothing is written then.
//
// The SVG is written by hand (svg.go): a bar chart is a few rectangles and
// labels, and the output is small, stable between runs of the same input
// and readable in a diff.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	out := flag.String("out", "bench/plots", "directory to write the SVG files to (made if missing)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: benchplot [-out DIR] RESULT.json|DIR...")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	written, err := run(*out, flag.Args())
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchplot:", err)
		os.Exit(1)
	}
	for _, f := range written {
		fmt.Println(f)
	}
}

// run reads every file, then writes the charts into dir and returns their
// paths. A bad file stops it before anything is written.
func run(dir string, files []string) ([]string, error) {
	files, err := expand(files)
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, errors.New("no result files")
	}
	results := make([]result, 0, len(files))
	for _, f := range files {
		r, err := load(f)
		if err != nil {
			return nil, err
		}
		results = append(results, r)
	}
	charts := build(results)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var written []string
	for _, c := range charts {
		path := filepath.Join(dir, c.file)
		if err := os.WriteFile(path, c.svg(), 0o644); err != nil {
			return written, err
		}
		written = append(written, path)
	}
	return written, nil
}

// expand replaces each directory in args by its *.json files.
func expand(args []string) ([]string, error) {
	var files []string
	for _, a := range args {
		fi, err := os.Stat(a)
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			files = append(files, a)
			continue
		}
		in, err := filepath.Glob(filepath.Join(a, "*.json"))
		if err != nil {
			return nil, err
		}
		files = append(files, in...)
	}
	return files, nil
}
