package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
)

// commandGroups orders `imqtt help`: each command under one heading. A
// command missing here is listed under "other" (TestHelpGroupsEveryCommand
// says which).
var commandGroups = []struct {
	title string
	names []string
}{
	{"messaging", []string{"send", "recall", "edit", "react", "delete", "typing", "listen", "sync", "conversations", "history", "read", "mute", "unmute", "pin", "unpin"}},
	{"groups", []string{"groups", "reads"}},
	{"social", []string{"contacts", "block", "unblock", "blocks", "presence"}},
	{"media", []string{"upload", "download"}},
	{"account", []string{"register", "login", "logout", "settings", "receipts", "push"}},
	{"admin", []string{"admin"}},
	{"tools", []string{"bench", "completion"}},
}

// globalSynopsis is the first line of `imqtt help`.
const globalSynopsis = "usage: imqtt [--server URL] [--home DIR] [--mqtt HOST:PORT] [--verbose] COMMAND [ARGS] [FLAGS]\n" +
	"       imqtt --version\n"

// printCommands writes the command list, grouped by commandGroups.
func printCommands(w io.Writer) {
	listed := map[string]bool{}
	section := func(title string, names []string) {
		var lines []string
		for _, name := range names {
			for _, cmd := range commands {
				if cmd.name == name {
					lines = append(lines, fmt.Sprintf("  %s\n      %s\n", strings.TrimSpace(cmd.name+" "+cmd.args), cmd.summary))
					listed[name] = true
				}
			}
		}
		if len(lines) > 0 {
			fmt.Fprintf(w, "\n%s:\n%s", title, strings.Join(lines, ""))
		}
	}
	for _, g := range commandGroups {
		section(g.title, g.names)
	}
	var other []string
	for _, cmd := range commands {
		if !listed[cmd.name] {
			other = append(other, cmd.name)
		}
	}
	section("other", other)
}

// printFlags writes fs's flags as they are typed: --name (-x for a
// one-letter flag), its value's placeholder, its usage and any default.
// The flag package's PrintDefaults would print -name while the synopses
// and docs/cli.md say --name; both forms are accepted. keep, if not nil,
// picks the flags to print.
func printFlags(w io.Writer, fs *flag.FlagSet, keep func(name string) bool) {
	fs.VisitAll(func(f *flag.Flag) {
		if keep != nil && !keep(f.Name) {
			return
		}
		name, usage := flag.UnquoteUsage(f)
		line := "  " + dashes(f.Name)
		if name != "" {
			line += " " + name
		}
		if !isZeroDefault(f) {
			if fmt.Sprintf("%T", f.Value) == "*flag.stringValue" {
				usage += fmt.Sprintf(" (default %q)", f.DefValue)
			} else {
				usage += fmt.Sprintf(" (default %s)", f.DefValue)
			}
		}
		fmt.Fprintf(w, "%s\n      %s\n", line, strings.ReplaceAll(usage, "\n", "\n      "))
	})
}

// dashes is how a flag is written: --name, or -x for a one-letter one.
func dashes(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// isGlobal reports whether name is one of the global flags.
func isGlobal(name string) bool {
	var g globals
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	g.register(fs)
	return fs.Lookup(name) != nil
}

// isZeroDefault reports whether f's default is its type's zero value,
// which is not worth printing.
func isZeroDefault(f *flag.Flag) bool {
	return slices.Contains([]string{"", "0", "false", "0s"}, f.DefValue)
}

// flagOutput is what the flag package writes its errors to: it names the
// flag as the help does ("flag provided but not defined: --nope").
type flagOutput struct{ w io.Writer }

var flagInMessage = regexp.MustCompile(`(: |flag |for )-([A-Za-z0-9][A-Za-z0-9_-]+)`)

func (o flagOutput) Write(p []byte) (int, error) {
	if _, err := o.w.Write(flagInMessage.ReplaceAll(p, []byte("$1--$2"))); err != nil {
		return 0, err
	}
	return len(p), nil
}

// commandFlags returns the flags of command cmd (of its subcommand sub,
// if given: "users", "show"), learnt by running it with --help, which
// every command answers before it reads a file or makes a request. The
// global flags are left out.
func commandFlags(cmd command, sub ...string) []*flag.Flag {
	var sets []*flag.FlagSet
	c := &cli{env: env{getenv: func(string) string { return "" }, homeDir: func() (string, error) { return "", nil }},
		stdout: io.Discard, stderr: io.Discard, flagSets: &sets}
	_ = cmd.run(context.Background(), c, append(slices.Clone(sub), "--help"))
	seen := map[string]bool{}
	var out []*flag.Flag
	for _, fs := range sets {
		fs.VisitAll(func(f *flag.Flag) {
			if !isGlobal(f.Name) && !seen[f.Name] {
				seen[f.Name] = true
				out = append(out, f)
			}
		})
	}
	return out
}
