package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/imqtt/imqtt/internal/daemon"
	"github.com/imqtt/imqtt/store/migrate"
	"github.com/imqtt/imqtt/store/mongo"
	"github.com/imqtt/imqtt/store/pebble"
)

// runMigrate is `imqttd migrate`: it copies a stopped node's embedded
// store, media and bans into a MongoDB database (store/migrate), printing
// progress on stderr at most once a second and the verification at the
// end. Exit 0 if the copy is complete and verified, 1 if not, 2 for bad
// arguments. Each flag also reads IMQTT_<FLAG>.
func runMigrate(args []string, env func(string) string, stderr io.Writer) int {
	fs := flag.NewFlagSet("imqttd migrate", flag.ContinueOnError)
	dataDir := fs.String("data-dir", daemon.DefaultDataDir, "data directory of the stopped embedded node")
	walDir := fs.String("wal-dir", "", "the stopped node's --wal-dir, if it had one")
	uri := fs.String("mongo-uri", "", "MongoDB URI of the target (required)")
	db := fs.String("mongo-db", "", "MongoDB database (default: the URI's, else imqtt); new, or this migration's to resume")
	rowRate := fs.Float64("rate", 0, "rows written per second at most (0: no limit)")
	sample := fs.Int("verify-every", 100, "read back every Nth row of each kind from both stores (-1: counts only)")
	fs.SetOutput(io.Discard) // said below in --name form (help.go)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: imqttd migrate --mongo-uri URI [--data-dir DIR] [--rate N] [--verify-every N]")
		printFlags(stderr, fs, true)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0 // the flag package called fs.Usage
		}
		fmt.Fprintln(stderr, "imqttd migrate:", flagError(err))
		return 2
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	fs.VisitAll(func(f *flag.Flag) {
		if v := env("IMQTT_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))); v != "" && !set[f.Name] {
			_ = f.Value.Set(v)
		}
	})
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "imqttd migrate: "+format+"\n", a...)
		return code
	}
	if fs.NArg() > 0 {
		return fail(2, "unexpected arguments: %q", fs.Args())
	}
	if *uri == "" {
		return fail(2, "--mongo-uri is required")
	}
	if !(*rowRate >= 0) { // NaN too: a negative rate would silently mean no limit
		return fail(2, "--rate %v: rows per second, 0 or more", *rowRate)
	}

	if _, err := os.Stat(*dataDir); err == nil { // no imqttd may start on it meanwhile
		lock, err := daemon.LockDataDir(*dataDir)
		if err != nil {
			return fail(1, "%v: stop it first (or restore a backup into a scratch directory and migrate that)", err)
		}
		defer lock.Release()
	}
	dir := filepath.Join(*dataDir, "pebble")
	src, err := pebble.OpenReadOnly(dir, pebble.Options{WALDir: *walDir})
	if errors.Is(err, pebble.ErrInUse) {
		return fail(1, "the embedded store in %s is in use: stop the imqttd running on it first "+
			"(or restore a backup into a scratch directory and migrate that)", dir)
	}
	if err != nil {
		return fail(1, "%v", err)
	}
	defer src.Close()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	dst, err := mongo.Open(ctx, *uri, mongo.Options{Database: *db})
	if err != nil {
		return fail(1, "--mongo-uri: %v", err)
	}
	defer dst.Close()

	var last time.Time
	progress := func(p migrate.Progress) {
		if time.Since(last) < time.Second {
			return
		}
		last = time.Now()
		fmt.Fprintf(stderr, "migrate: %-13s %d/%d rows, %.0f rows/s\n", p.Kind, p.Done, p.Total, p.Rate)
	}
	sum, err := migrate.Run(ctx, src, dst, migrate.Options{Rate: *rowRate, Sample: *sample, DataDir: *dataDir, Progress: progress})
	printSummary(stderr, sum)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return fail(1, "stopped; run it again to resume")
		}
		return fail(1, "%v", err)
	}
	fmt.Fprintf(stderr, "migrate: done; start the nodes with --mongo-uri and --redis-url\n")
	return 0
}

func printSummary(w io.Writer, s migrate.Summary) {
	if len(s.Kinds) > 0 {
		fmt.Fprintf(w, "verify: %-13s %10s %10s\n", "kind", "source", "target")
		for _, k := range s.Kinds {
			mark := ""
			if k.Source != k.Target {
				mark = "  MISMATCH"
			}
			fmt.Fprintf(w, "verify: %-13s %10d %10d%s\n", k.Kind, k.Source, k.Target, mark)
		}
		fmt.Fprintf(w, "verify: %d rows read back from both stores, %d mismatches (%s)\n", s.Sampled, len(s.Mismatches),
			s.Verifying.Round(time.Millisecond))
	}
	for _, m := range s.Mismatches {
		fmt.Fprintf(w, "verify: mismatch: %s\n", m)
	}
	msgRate := 0.0
	if secs := s.Copying.Seconds(); secs > 0 {
		msgRate = float64(s.Messages) / secs
	}
	fmt.Fprintf(w, "migrate: %d rows (%d messages) written in %s: %.0f rows/s, %.0f messages/s; media %d copied, %d already there; bans %d; %s in all\n",
		s.Copied, s.Messages, s.Copying.Round(time.Millisecond), s.Rate, msgRate, s.Media, s.MediaSkip, s.Bans, s.Duration.Round(time.Millisecond))
}
