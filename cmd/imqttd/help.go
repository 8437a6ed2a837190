package main

import (
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// flagGroups order --help by concern; every flag is in exactly one
// (TestHelpGroups).
var flagGroups = []struct {
	title string
	flags []string
}{
	{"Configuration", []string{"config"}},
	{"Listeners & TLS", []string{"mqtt-addr", "http-addr", "tls-cert", "tls-key", "tls-mqtt-addr", "tls-http-addr", "cors-origins"}},
	{"Store", []string{"data-dir", "wal-dir", "sync-interval", "min-free-disk", "backup-rate", "retention", "retention-rate",
		"mongo-uri", "mongo-db", "upgrade-mongo"}},
	{"Scale-out", []string{"redis-url", "redis-prefix", "node-id", "advertise-mqtt", "advertise-ws", "drain-period"}},
	{"Messages & groups", []string{"max-body", "max-group-members", "max-groups-per-user", "max-send-rate", "max-send-burst",
		"recall-window", "edit-window", "max-typing-group"}},
	{"Limits", []string{"login-ip-limit", "login-user-ip-limit", "login-user-limit", "register-ip-limit", "connect-timeout",
		"max-preauth-per-ip", "max-preauth", "max-subscriptions", "max-client-requests", "http-body-timeout",
		"http-upload-min-rate", "http-upload-window", "max-http-conns-per-ip", "max-http-conns"}},
	{"Sessions", []string{"session-expiry-max", "session-replay-max", "session-max-per-user", "session-inflight"}},
	{"Media", []string{"media-max-image", "media-max-audio", "media-max-video", "media-max-file", "ffmpeg"}},
	{"Push", []string{"push-preview", "push-ttl", "push-rate", "apns-key-file", "apns-key-id", "apns-team-id", "apns-topic",
		"apns-url", "fcm-credentials", "fcm-url", "fcm-token-url", "push-webhook"}},
	{"Webhooks", []string{"webhook-url", "webhook-secret", "webhook-events", "webhook-timeout", "webhook-fail",
		"webhook-concurrency", "webhook-ttl"}},
	{"Content filter", []string{"filter-words", "filter-action", "filter-links"}},
	{"Auth & sign-up", []string{"signup", "jwt-key", "jwt-audience", "jwt-issuer", "server-key", "server-send-rate"}},
	{"Broker", []string{"max-packet-size", "max-read-backlog", "max-write-backlog", "max-writes-pending", "keepalive",
		"mqtt-goroutines"}},
	{"Logs & admin", []string{"log-format", "log-level", "access-log-sample", "admin-token", "pprof-addr"}},
}

const usageHead = `usage: imqttd [--flag value ...]       serve (every flag is optional)
       imqttd --version                print the version and exit
       imqttd restore --help           restore a backup into an empty data dir
       imqttd migrate --help           copy a stopped node's embedded store into MongoDB

Every flag also reads the environment variable shown (IMQTT_<NAME>) and the key <name> of the
--config file. Precedence: flag, environment, file, default. Sizes take bytes or a unit:
512KB, 256KiB, 1MiB, 2GB. Durations: 300ms, 10s, 1h30m.
`

// printHelp writes --help: the commands, then each group's flags with
// their value, default (sizes in IEC units, durations as Go prints them)
// and environment variable.
func printHelp(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, usageHead)
	for _, g := range flagGroups {
		fmt.Fprintf(w, "\n%s:\n", g.title)
		for _, name := range g.flags {
			if f := fs.Lookup(name); f != nil { // TestHelpGroups checks there is one
				printFlag(w, f, true)
			}
		}
	}
}

// printFlag writes one flag's help: "--name VALUE (default D, IMQTT_NAME)"
// and its usage below, wrapped.
func printFlag(w io.Writer, f *flag.Flag, env bool) {
	line := "  --" + f.Name
	if v := valueName(f); v != "" {
		line += " " + v
	}
	var facts []string
	if d := defaultText(f); d != "" {
		facts = append(facts, "default "+d)
	}
	if env {
		facts = append(facts, envName(f.Name))
	}
	if len(facts) > 0 {
		line += "  (" + strings.Join(facts, ", ") + ")"
	}
	fmt.Fprintln(w, line)
	wrap(w, f.Usage, "      ", 100)
}

// printFlags writes a subcommand's flags in printFlag's form (the
// standard library's PrintDefaults writes -name).
func printFlags(w io.Writer, fs *flag.FlagSet, env bool) {
	fs.VisitAll(func(f *flag.Flag) { printFlag(w, f, env) })
}

// envName is the environment variable a flag reads.
func envName(flagName string) string {
	return "IMQTT_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// valueName is what a flag's value is, for the help line ("" for a switch).
func valueName(f *flag.Flag) string {
	switch f.Value.(type) {
	case sized:
		return "SIZE"
	case limitFlag:
		return "RATE/PERIOD:BURST|off"
	case corsFlag, serverKeysFlag:
		return "LIST"
	}
	if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
		return ""
	}
	name, _ := flag.UnquoteUsage(f)
	switch name {
	case "float":
		return "NUMBER"
	case "uint":
		return "INT"
	}
	return strings.ToUpper(name)
}

// defaultText is a flag's default as a person reads it, "" for none.
func defaultText(f *flag.Flag) string {
	if _, ok := f.Value.(sized); ok {
		if n, _ := strconv.ParseInt(f.DefValue, 10, 64); n > 0 {
			return humanSize(n)
		}
		return f.DefValue
	}
	switch f.DefValue {
	case "", "false":
		return ""
	}
	if _, err := time.ParseDuration(f.DefValue); err == nil {
		return f.DefValue
	}
	if _, err := strconv.ParseFloat(f.DefValue, 64); err == nil {
		return f.DefValue
	}
	return strconv.Quote(f.DefValue)
}

// wrap writes text in lines of at most width, each after indent.
func wrap(w io.Writer, text, indent string, width int) {
	line := indent
	for _, word := range strings.Fields(text) {
		if len(line) > len(indent) && len(line)+1+len(word) > width {
			fmt.Fprintln(w, line)
			line = indent
		}
		if len(line) > len(indent) {
			line += " "
		}
		line += word
	}
	fmt.Fprintln(w, line)
}

// flagError says a flag package's error with the flags as --name, as
// help and usage name them (the package writes -name).
func flagError(err error) error {
	msg := err.Error()
	for _, p := range []string{"flag provided but not defined: -", "flag needs an argument: -", " for flag -", " for -"} {
		msg = strings.Replace(msg, p, p+"-", 1)
	}
	if strings.HasPrefix(msg, "flag provided but not defined") {
		msg += " (imqttd --help lists them)"
	}
	return fmt.Errorf("%s", msg)
}
