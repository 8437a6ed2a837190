package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/imqtt/imqtt/internal/backup"
	"github.com/imqtt/imqtt/internal/daemon"
)

// runRestore is `imqttd restore --from FILE --data-dir DIR`: it unpacks a
// backup (GET /v1/admin/backup, `imqtt admin backup`) into an empty data
// directory, verified, with a new epoch (docs/operations.md "Backup and
// restore"). It returns the exit code: 0 restored, 1 refused, 2 usage.
func runRestore(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("imqttd restore", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // said in --name form (help.go)
	from := fs.String("from", "", "the backup tar (\"-\": standard input)")
	dir := fs.String("data-dir", "", "the data directory to restore into: empty or absent")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: imqttd restore --from FILE --data-dir DIR")
		printFlags(stderr, fs, false)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0 // the flag package called fs.Usage
		}
		fmt.Fprintln(stderr, "imqttd restore:", flagError(err))
		return 2
	}
	if *from == "" || *dir == "" || fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	if err := daemon.CheckDataDir(*dir); err != nil {
		fmt.Fprintln(stderr, "imqttd restore:", err)
		return 1
	}
	r := stdin
	if *from != "-" {
		f, err := os.Open(*from)
		if err != nil {
			fmt.Fprintln(stderr, "imqttd restore:", err)
			return 1
		}
		defer f.Close()
		r = f
	}
	res, err := backup.Restore(r, *dir)
	if err != nil {
		fmt.Fprintln(stderr, "imqttd restore:", err)
		return 1
	}
	fmt.Fprintf(stdout, "restored %s: node %s, taken %s, %d files, %d bytes (%d users, %d groups, versions reserved up to %d)\n",
		*dir, res.Node, res.Time.UTC().Format(time.RFC3339), len(res.Files), res.Bytes, res.Users, res.Groups, res.MaxVersion)
	fmt.Fprintf(stdout, "new epoch %s -> %s: devices that synced before resync from the start (reset)\n", res.Epoch, res.NewEpoch)
	return 0
}
