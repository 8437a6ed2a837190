package main

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/imqtt/imqtt/internal/version"
)

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"-version"}, {"--home", "/nowhere", "--version"}} {
		code, stdout, stderr := runIn(t, fakeEnv(t.TempDir(), nil), args...)
		if want := version.Get().String("imqtt") + "\n"; code != exitOK || stdout != want || stderr != "" {
			t.Errorf("imqtt %q: exit %d, stdout %q, stderr %q; want exit 0 and %q", args, code, stdout, stderr, want)
		}
	}
}

// singleDash is a flag of more than one letter written with one dash, as
// the flag package's PrintDefaults and its errors would.
var singleDash = regexp.MustCompile(`(?m)(^|\s)-[a-z][a-z-]+`)

// TestHelpSaysDoubleDash: the help, each command's usage and the flag
// package's errors name flags as the synopses and docs/cli.md do: --name.
func TestHelpSaysDoubleDash(t *testing.T) {
	e := fakeEnv(t.TempDir(), nil)
	code, help, _ := runIn(t, e, "help")
	if code != exitOK || !strings.Contains(help, "  --server URL\n") || !strings.Contains(help, "  --version\n") {
		t.Fatalf("help: exit %d\n%s", code, help)
	}
	if m := singleDash.FindString(help); m != "" {
		t.Errorf("help names a flag %q", m)
	}
	for _, cmd := range commands {
		_, _, usage := runIn(t, e, cmd.name, "--help")
		if !strings.Contains(usage, "usage: imqtt "+cmd.name) {
			t.Errorf("imqtt %s --help: %q", cmd.name, usage)
		}
		if m := singleDash.FindString(usage); m != "" {
			t.Errorf("imqtt %s --help names a flag %q:\n%s", cmd.name, m, usage)
		}
	}
	// help COMMAND [SUBCOMMAND] is COMMAND's --help, on stdout.
	for _, args := range [][]string{{"help", "send"}, {"help", "bench", "p2p"}, {"help", "groups", "create"}} {
		code, stdout, stderr := runIn(t, e, args...)
		if code != exitOK || !strings.HasPrefix(stdout, "usage: imqtt "+args[1]) || stderr != "" {
			t.Errorf("imqtt %q: exit %d, stdout %q, stderr %q", args, code, firstLine(stdout), stderr)
		}
	}
	if _, stdout, _ := runIn(t, e, "help", "bench", "p2p"); !strings.Contains(stdout, "--pairs") {
		t.Errorf("help bench p2p: %q", stdout)
	}
	if code, _, stderr := runIn(t, e, "help", "nope"); code != exitUsage || !strings.Contains(stderr, `unknown command "nope"`) {
		t.Errorf("help nope: exit %d, %q", code, firstLine(stderr))
	}
	_, _, usage := runIn(t, e, "send", "--help")
	if !strings.Contains(usage, "  --to string\n") || !strings.Contains(usage, `(default "text")`) || !strings.Contains(usage, "(default 30s)") {
		t.Errorf("send --help:\n%s", usage)
	}
	for args, want := range map[string]string{
		"--nope send":         "flag provided but not defined: --nope",
		"send --to":           "flag needs an argument: --to",
		"sync --limit=x":      "for flag --limit",
		"send --file= --to b": "--file needs a file name",
	} {
		if _, _, stderr := runIn(t, e, strings.Fields(args)...); !strings.Contains(stderr, want) {
			t.Errorf("imqtt %s: %q, want %q", args, firstLine(stderr), want)
		}
	}
}

func firstLine(s string) string { l, _, _ := strings.Cut(s, "\n"); return l }

// TestSynopsisFlagsExist: every flag a command's synopsis (the help's,
// and docs/cli.md's) names is one the command takes.
func TestSynopsisFlagsExist(t *testing.T) {
	named := regexp.MustCompile(`(?:^|[\s\[(])-(-[a-z][a-z0-9-]*|[a-z])\b`)
	for _, cmd := range commands {
		have := map[string]bool{}
		var visit func(path []string, next []word)
		visit = func(path []string, next []word) {
			for _, f := range commandFlags(cmd, path...) {
				have[f.Name] = true
			}
			for _, w := range next {
				visit(append(slices.Clone(path), w.name), w.next)
			}
		}
		visit(nil, cmd.subs)
		for _, m := range named.FindAllStringSubmatch(cmd.args, -1) {
			if name := strings.TrimPrefix(m[1], "-"); !have[name] {
				t.Errorf("imqtt %s: the synopsis names %s, which the command does not take", cmd.name, dashes(name))
			}
		}
	}
}

// TestSubcommandsInSynopsis: the words completion offers (command.subs)
// are words of the command's synopsis, so that one is not changed without
// the other.
func TestSubcommandsInSynopsis(t *testing.T) {
	for _, cmd := range commands {
		synopsis := cmd.args
		if cmd.name == "bench" {
			synopsis = benchScenarios
		}
		var visit func(path string, next []word)
		visit = func(path string, next []word) {
			for _, w := range next {
				if !regexp.MustCompile(`(^|[\s\[(|])` + regexp.QuoteMeta(w.name) + `($|[\s\])|,])`).MatchString(synopsis) {
					t.Errorf("imqtt %s: %q is no word of the synopsis %q", path, w.name, synopsis)
				}
				visit(path+" "+w.name, w.next)
			}
		}
		visit(cmd.name, cmd.subs)
	}
}

// TestHelpGroupsEveryCommand: `imqtt help` lists each command once, under
// one of commandGroups' headings (a new command goes into one of them).
func TestHelpGroupsEveryCommand(t *testing.T) {
	var grouped []string
	for _, g := range commandGroups {
		grouped = append(grouped, g.names...)
	}
	for _, cmd := range commands {
		n := 0
		for _, name := range grouped {
			if name == cmd.name {
				n++
			}
		}
		if n != 1 {
			t.Errorf("command %s is in %d groups of commandGroups, want 1", cmd.name, n)
		}
	}
	for _, name := range grouped {
		if !slices.ContainsFunc(commands, func(c command) bool { return c.name == name }) {
			t.Errorf("commandGroups lists %s, which is no command", name)
		}
	}
	_, help, _ := runIn(t, fakeEnv(t.TempDir(), nil), "help")
	if !regexp.MustCompile(`(?s)\nmessaging:\n  send .*\ngroups:\n  groups .*\nmedia:\n  upload `).MatchString(help) {
		t.Errorf("help is not grouped:\n%s", help)
	}
}
