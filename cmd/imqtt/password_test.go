package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestPasswordStdin(t *testing.T) {
	cases := []struct {
		stdin, want, err string
	}{
		{"s3cret\n", "s3cret", ""},
		{"s3cret\r\nsecond line\n", "s3cret", ""},
		{"  spaces kept \n", "  spaces kept ", ""},
		{"no newline", "no newline", ""},
		{"\nlater\n", "", "empty first line"},
		{"", "", "empty first line"},
		{strings.Repeat("x", maxStdinPassword+1) + "\n", "", "longer than"},
		{strings.Repeat("x", maxStdinPassword) + "\n", strings.Repeat("x", maxStdinPassword), ""},
	}
	for _, tc := range cases {
		e := fakeEnv("", map[string]string{"IMQTT_PASSWORD": "from-env"})
		e.stdin = strings.NewReader(tc.stdin)
		c := &cli{env: e}
		got, err := c.password(passwordFlags{stdin: true}, "alice", false)
		var ue *usageError
		if tc.err != "" {
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("stdin %.20q: %q, %v; want a usage error %q", tc.stdin, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("stdin %.20q: %.20q, %v; want %.20q", tc.stdin, got, err, tc.want)
		}
	}
}

// TestPasswordPrompt: with no password given, a terminal on stdin is
// asked (twice for register), without echo; anything else gets a usage
// error naming --password-stdin, and nothing is read.
func TestPasswordPrompt(t *testing.T) {
	prompt := func(terminal bool, answers ...string) (*cli, *bytes.Buffer, *int) {
		var stderr bytes.Buffer
		reads := 0
		e := fakeEnv("", nil)
		e.stdin = strings.NewReader("not read\n")
		e.isTerminal = func(f any) bool { return terminal && f == e.stdin }
		e.readPassword = func() ([]byte, error) {
			reads++
			if reads > len(answers) {
				return nil, errors.New("no more answers")
			}
			return []byte(answers[reads-1]), nil
		}
		return &cli{env: e, stderr: &stderr}, &stderr, &reads
	}

	c, stderr, _ := prompt(true, "typed")
	if p, err := c.password(passwordFlags{}, "alice", false); err != nil || p != "typed" || stderr.String() != "Password for alice: \n" {
		t.Fatalf("login on a terminal: %q, %v, prompt %q", p, err, stderr)
	}
	c, stderr, _ = prompt(true, "typed", "typed")
	if p, err := c.password(passwordFlags{}, "alice", true); err != nil || p != "typed" || !strings.Contains(stderr.String(), "Password again: ") {
		t.Fatalf("register on a terminal: %q, %v, prompt %q", p, err, stderr)
	}
	c, _, _ = prompt(true, "typed", "typo")
	if _, err := c.password(passwordFlags{}, "alice", true); err == nil || !strings.Contains(err.Error(), "do not match") {
		t.Fatalf("register, two different answers: %v", err)
	}
	c, _, _ = prompt(true, "")
	if _, err := c.password(passwordFlags{}, "alice", false); err == nil || !strings.Contains(err.Error(), "empty password") {
		t.Fatalf("an empty answer: %v", err)
	}
	c, stderr, reads := prompt(false, "typed")
	var ue *usageError
	if _, err := c.password(passwordFlags{}, "alice", false); !errors.As(err, &ue) || !strings.Contains(err.Error(), "--password-stdin") || *reads != 0 || stderr.Len() != 0 {
		t.Fatalf("not a terminal: %v, %d reads, prompt %q", err, *reads, stderr)
	}
}
