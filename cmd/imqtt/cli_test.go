package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeEnv is an environment with these variables and this home directory.
func fakeEnv(home string, vars map[string]string) env {
	return env{
		getenv:  func(k string) string { return vars[k] },
		homeDir: func() (string, error) { return home, nil },
	}
}

// runIn runs the CLI in-process and returns the exit code and output.
func runIn(t *testing.T, e env, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, er bytes.Buffer
	code = runContext(context.Background(), e, args, &o, &er)
	return code, o.String(), er.String()
}

func TestExitCodes(t *testing.T) {
	e := fakeEnv(t.TempDir(), nil)
	cases := []struct {
		args []string
		code int
		err  string
	}{
		{nil, exitUsage, "usage: imqtt"},
		{[]string{"frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		{[]string{"--nope", "send"}, exitUsage, "flag provided but not defined"},
		{[]string{"register"}, exitUsage, "missing arguments"},
		{[]string{"register", "a", "b", "--password", "p"}, exitUsage, "unexpected arguments: b"},
		{[]string{"register", "bad user!", "--password", "p"}, exitUsage, "bad user ID"},
		{[]string{"register", "alice"}, exitUsage, "no password: pipe it to --password-stdin"},
		{[]string{"login", "alice", "--password", "p", "--password-stdin"}, exitUsage, "not both"},
		{[]string{"login", "alice", "--password", "p", "--device", "a/b"}, exitUsage, "bad device ID"},
		{[]string{"send", "hi"}, exitUsage, "exactly one of --to PEER or --group G"},
		{[]string{"send", "--to", "bob", "--group", "g", "hi"}, exitUsage, "exactly one of"},
		{[]string{"send", "--to", "bob"}, exitUsage, "missing the text"},
		{[]string{"send", "--to", "bob", "--type", "gif", "hi"}, exitUsage, "bad --type"},
		{[]string{"send", "--to", "bob", "--meta", "{", "hi"}, exitUsage, "--meta is not JSON"},
		{[]string{"send", "--to", "bob", "hi"}, exitFailure, "not logged in"},
		{[]string{"sync", "--since", "x"}, exitUsage, "--since wants a version"},
		{[]string{"history"}, exitUsage, "missing arguments"},
		// Why 10 (names): ".." is no user ID, so it never becomes a URL path.
		{[]string{"history", ".."}, exitUsage, "bad user ID"},
		{[]string{"read", "."}, exitUsage, "bad user ID"},
		{[]string{"send", "--to", "..", "hi"}, exitUsage, "bad user ID"},
		{[]string{"register", "..", "--password", "p"}, exitUsage, "bad user ID"},
		{[]string{"listen", "extra"}, exitUsage, "unexpected arguments"},
		{[]string{"conversations"}, exitFailure, "not logged in"},
		{[]string{"logout"}, exitFailure, "not logged in"},
		{[]string{"bench", "fanout"}, exitUsage, `unknown scenario "fanout"`},
		{[]string{"bench"}, exitUsage, "missing the scenario"},
		// The lifecycle's commands check their arguments before any request.
		{[]string{"recall"}, exitUsage, "missing arguments"},
		{[]string{"recall", ".."}, exitUsage, "bad ID"},
		{[]string{"recall", "12", "13"}, exitUsage, "unexpected arguments"},
		{[]string{"recall", "12"}, exitFailure, "not logged in"},
		{[]string{"edit", "12"}, exitUsage, "missing arguments"},
		{[]string{"edit", "x1", "new"}, exitUsage, "bad ID"},
		{[]string{"react", "12", "a"}, exitUsage, "is not one emoji"},
		{[]string{"react", "12", "👍👍"}, exitUsage, "is not one emoji"},
		{[]string{"react", "12", "👍", "--remove"}, exitFailure, "not logged in"},
		{[]string{"delete"}, exitUsage, "give message IDs or --peer PEER"},
		{[]string{"delete", "12", "--peer", "bob"}, exitUsage, "give message IDs or --peer PEER"},
		{[]string{"delete", "--peer", ".."}, exitUsage, "bad user ID"},
		{[]string{"delete", "12", "abc"}, exitUsage, "bad ID"},
		{[]string{"typing"}, exitUsage, "exactly one of PEER or --group"},
		{[]string{"typing", "bob", "--group", "g"}, exitUsage, "exactly one of PEER or --group"},
		{[]string{"typing", "b/ob"}, exitUsage, "bad user ID"},
		{[]string{"send", "--to", "bob", "--reply-to", "last", "hi"}, exitUsage, "bad --reply-to"},
		{[]string{"receipts", "maybe"}, exitUsage, "receipts on or off"},
		{[]string{"reads", "g", "0"}, exitUsage, "SEQ wants"},
		{[]string{"reads", "..", "3"}, exitUsage, "bad group ID"},
		{[]string{"help"}, exitOK, ""},
		{[]string{"send", "--help"}, exitOK, ""},
	}
	for _, c := range cases {
		code, _, stderr := runIn(t, e, c.args...)
		if code != c.code || !strings.Contains(stderr, c.err) {
			t.Errorf("imqtt %q: exit %d, stderr %q; want exit %d and %q", c.args, code, stderr, c.code, c.err)
		}
	}
}

// parsed parses global flags pre, then a command's args, as runContext
// does, and returns the settings in force.
func parsed(t *testing.T, e env, pre []string, cmd string, args ...string) (*cli, []string, error) {
	t.Helper()
	c := &cli{env: e, stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}
	gfs := flag.NewFlagSet("imqtt", flag.ContinueOnError)
	c.pre.register(gfs)
	if err := gfs.Parse(pre); err != nil {
		t.Fatal(err)
	}
	fs := c.flags(cmd)
	fs.String("to", "", "")
	pos, err := c.parse(fs, args, 0, -1)
	return c, pos, err
}

func TestGlobalSettingsPrecedence(t *testing.T) {
	home := t.TempDir()
	envHome := filepath.Join(t.TempDir(), "envhome")
	vars := map[string]string{}
	e := fakeEnv(home, vars)

	c, _, err := parsed(t, e, nil, "send")
	if err != nil {
		t.Fatal(err)
	}
	if c.g.server != defaultServer || c.g.home != filepath.Join(home, ".config", "imqtt") || c.g.mqtt != "" {
		t.Fatalf("defaults: %+v", c.g)
	}

	vars["IMQTT_SERVER"], vars["IMQTT_HOME"], vars["IMQTT_MQTT"] = "http://env:1", envHome, "env:1883"
	c, _, _ = parsed(t, e, nil, "send")
	if c.g.server != "http://env:1" || c.g.home != envHome || c.g.mqtt != "env:1883" {
		t.Fatalf("environment: %+v", c.g)
	}

	// Flags before the command beat the environment; flags after it beat both.
	c, _, _ = parsed(t, e, []string{"--server", "http://pre:1", "--home", "/pre"}, "send")
	if c.g.server != "http://pre:1" || c.g.home != "/pre" {
		t.Fatalf("flags before the command: %+v", c.g)
	}
	c, _, _ = parsed(t, e, []string{"--server", "http://pre:1"}, "send", "--server", "http://post:1", "--mqtt", "post:1883")
	if c.g.server != "http://post:1" || c.g.mqtt != "post:1883" {
		t.Fatalf("flags after the command: %+v", c.g)
	}

	// Without a flag or variable, the server a session was made with is used.
	delete(vars, "IMQTT_SERVER")
	c, _, _ = parsed(t, e, nil, "send")
	if err := c.saveSession(session{Server: "http://saved:1", User: "alice", Device: "cli", Token: "t"}); err != nil {
		t.Fatal(err)
	}
	c, _, _ = parsed(t, e, nil, "send")
	if c.g.server != "http://saved:1" {
		t.Fatalf("saved session's server: %+v", c.g)
	}
	st, err := os.Stat(filepath.Join(envHome, "session.json"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("session.json: %v, %v", st, err)
	}
}

func TestInterspersedArguments(t *testing.T) {
	e := fakeEnv(t.TempDir(), nil)
	cases := []struct {
		args []string
		pos  string
		to   string
	}{
		{[]string{"--to", "bob", "hello", "world"}, "hello world", "bob"},
		{[]string{"hello", "--to", "bob", "world"}, "hello world", "bob"},
		{[]string{"hello", "world", "--to=bob"}, "hello world", "bob"},
		{[]string{"--to", "bob", "--", "--not-a-flag", "-x"}, "--not-a-flag -x", "bob"},
	}
	for _, tc := range cases {
		c := &cli{env: e, stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}
		fs := c.flags("send")
		to := fs.String("to", "", "")
		pos, err := c.parse(fs, tc.args, 0, -1)
		if err != nil || strings.Join(pos, " ") != tc.pos || *to != tc.to {
			t.Errorf("parse %q = %q, to=%q, %v; want %q, to=%q", tc.args, pos, *to, err, tc.pos, tc.to)
		}
	}
	c := &cli{env: e, stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}
	fs := c.flags("send")
	if _, err := c.parse(fs, []string{"hi", "--bogus"}, 0, -1); !errors.Is(err, errFlagParse) {
		t.Errorf("an unknown flag after a positional argument: %v", err)
	}
}

func TestExpiredSession(t *testing.T) {
	home := t.TempDir()
	e := fakeEnv(home, map[string]string{"IMQTT_HOME": home})
	c := &cli{env: e, g: globals{home: home}}
	if err := c.saveSession(session{Server: "http://x", User: "alice", Device: "cli", Token: "t", ExpiresAt: 1}); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runIn(t, e, "conversations")
	if code != exitFailure || !strings.Contains(stderr, "expired") {
		t.Fatalf("expired session: exit %d, %q", code, stderr)
	}
}

func TestPasswordFromEnvironment(t *testing.T) {
	c := &cli{env: fakeEnv("", map[string]string{"IMQTT_PASSWORD": "s3cret"})}
	if p, err := c.password(passwordFlags{}, "alice", false); err != nil || p != "s3cret" {
		t.Fatalf("password from IMQTT_PASSWORD: %q, %v", p, err)
	}
	if p, _ := c.password(passwordFlags{value: "flag"}, "alice", false); p != "flag" {
		t.Fatalf("--password did not win: %q", p)
	}
}
