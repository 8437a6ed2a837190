package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestHelpGroups: every flag is in exactly one group of --help, and every
// name in a group is a flag.
func TestHelpGroups(t *testing.T) {
	fs := newFlagSet(&options{})
	in := map[string]string{}
	for _, g := range flagGroups {
		for _, name := range g.flags {
			if other, ok := in[name]; ok {
				t.Errorf("--%s is in %q and %q", name, other, g.title)
			}
			in[name] = g.title
			if fs.Lookup(name) == nil {
				t.Errorf("group %q names --%s, which is not a flag", g.title, name)
			}
		}
	}
	fs.VisitAll(func(f *flag.Flag) {
		if _, ok := in[f.Name]; !ok {
			t.Errorf("--%s is in no group of --help", f.Name)
		}
	})
}

// TestHelp: --help goes to stdout and exits 0; it names each flag as
// --name with its default in human units and its environment variable,
// and no line names a flag as -name; a flag error says --name too.
func TestHelp(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := runTo([]string{"--help"}, envOf(nil), &out, &errOut); code != 0 || errOut.Len() != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
	help := out.String()
	for _, want := range []string{
		"\nListeners & TLS:\n", "\nLogs & admin:\n",
		"  --max-body SIZE  (default 64 KiB, IMQTT_MAX_BODY)\n",
		"  --max-packet-size SIZE  (default 256 KiB, IMQTT_MAX_PACKET_SIZE)\n",
		"  --http-body-timeout DURATION  (default 10s, IMQTT_HTTP_BODY_TIMEOUT)\n",
		"  --mqtt-addr STRING  (default \":1883\", IMQTT_MQTT_ADDR)\n",
		"  --upgrade-mongo  (IMQTT_UPGRADE_MONGO)\n",
		"generate: imqttd makes one", // what the start log and docs/operations.md tell operators to use
	} {
		if !strings.Contains(help, want) {
			t.Errorf("help lacks %q", want)
		}
	}
	if m := regexp.MustCompile(`(?m)(^|\s)-[a-z][a-z-]+`).FindAllString(help, -1); len(m) > 0 {
		t.Errorf("help names flags with one dash: %q", m)
	}
	errOut.Reset()
	if code := runTo([]string{"--max-bdy", "1"}, envOf(nil), &out, &errOut); code != 2 ||
		!strings.Contains(errOut.String(), "not defined: --max-bdy") {
		t.Fatalf("unknown flag: exit %d, %q", code, errOut.String())
	}
	for _, sub := range []string{"restore", "migrate"} {
		errOut.Reset()
		if code := runTo([]string{sub, "--help"}, envOf(nil), &out, &errOut); code != 0 || strings.Count(errOut.String(), "usage:") != 1 ||
			!strings.Contains(errOut.String(), "  --data-dir STRING") {
			t.Errorf("%s --help: exit %d, %q", sub, code, errOut.String())
		}
	}
	errOut.Reset()
	if code := runTo([]string{"restore", "--nope"}, envOf(nil), &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "--nope") {
		t.Fatalf("restore, unknown flag: exit %d, %q", code, errOut.String())
	}
}

// TestSizeFlags: size flags take plain bytes and SI or IEC units, from the
// command line, the environment and the config file, and refuse
// anything else with the flag's or variable's name.
func TestSizeFlags(t *testing.T) {
	file := filepath.Join(t.TempDir(), "imqttd.yaml")
	os.WriteFile(file, []byte("media-max-video: 1GiB\nmax-read-backlog: 4096\n"), 0o600)
	o, err := parse([]string{"--config", file, "--max-body", "512KB", "--max-packet-size", "1 MiB", "--min-free-disk", "-1"},
		envOf(map[string]string{"IMQTT_MEDIA_MAX_IMAGE": "1.5MiB", "IMQTT_MAX_WRITE_BACKLOG": "2mb"}))
	if err != nil {
		t.Fatal(err)
	}
	c := o.cfg
	if c.MaxBody != 512_000 || c.Broker.MaxPacketSize != 1<<20 || c.MinFreeDisk != -1 || c.Media.MaxVideo != 1<<30 ||
		c.Broker.MaxReadBacklog != 4096 || c.Media.MaxImage != 3<<19 || c.Broker.MaxWriteBacklog != 2_000_000 {
		t.Fatalf("config %+v", c)
	}
	for _, c := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--max-body", "12 parsecs"}, nil, "--max-body"},
		{[]string{"--max-body", "1.5"}, nil, "whole bytes"},
		{[]string{"--max-packet-size", "-1"}, nil, "0 or more"},
		{nil, map[string]string{"IMQTT_MEDIA_MAX_FILE": "lots"}, "IMQTT_MEDIA_MAX_FILE"},
		{[]string{"--max-body", "9EiB"}, nil, "--max-body"},
	} {
		if _, err := parse(c.args, envOf(c.env)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("parse(%q, %v) = %v, want %q", c.args, c.env, err, c.want)
		}
	}
	for n, want := range map[int64]string{256 << 10: "256 KiB", 1 << 30: "1 GiB", 1000: "1000 bytes", 3 << 19: "1536 KiB"} {
		if got := humanSize(n); got != want {
			t.Errorf("humanSize(%d) = %q, want %q", n, got, want)
		}
	}
}
