package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// maxStdinPassword bounds the line --password-stdin (and
// --admin-token-stdin) reads.
const maxStdinPassword = 4 << 10

// passwordFlags are register's and login's ways to give the password.
type passwordFlags struct {
	value string
	stdin bool
}

func (p *passwordFlags) register(fs *flag.FlagSet, what string) {
	fs.StringVar(&p.value, "password", "", what+" (visible to ps: prefer --password-stdin, IMQTT_PASSWORD or the prompt)")
	fs.BoolVar(&p.stdin, "password-stdin", false, "read the password from the first line of standard input")
}

// password returns the password from, in order: --password,
// --password-stdin, IMQTT_PASSWORD, or a prompt without echo when
// standard input is a terminal (asked twice when confirm is set). A
// script with none of them gets a usage error naming --password-stdin
// rather than a prompt it cannot answer.
func (c *cli) password(p passwordFlags, user string, confirm bool) (string, error) {
	switch {
	case p.value != "" && p.stdin:
		return "", usagef("give --password or --password-stdin, not both")
	case p.value != "":
		return p.value, nil
	case p.stdin:
		return readSecretLine(c.env.stdin, "--password-stdin", "password")
	}
	if v := c.env.getenv("IMQTT_PASSWORD"); v != "" {
		return v, nil
	}
	if c.env.stdin == nil || !c.terminal(c.env.stdin) || c.env.readPassword == nil {
		return "", usagef("no password: pipe it to --password-stdin (printf '%%s\\n' \"$PW\" | imqtt ... --password-stdin), set IMQTT_PASSWORD, or run in a terminal to be asked")
	}
	pw, err := c.promptPassword(fmt.Sprintf("Password for %s: ", user))
	if err != nil || !confirm {
		return pw, err
	}
	again, err := c.promptPassword("Password again: ")
	if err != nil {
		return "", err
	}
	if again != pw {
		return "", usagef("the passwords do not match")
	}
	return pw, nil
}

// promptPassword asks on stderr and reads a line from the terminal
// without echo.
func (c *cli) promptPassword(prompt string) (string, error) {
	fmt.Fprint(c.stderr, prompt)
	b, err := c.env.readPassword()
	fmt.Fprintln(c.stderr) // the newline the terminal did not echo
	if err != nil {
		return "", fmt.Errorf("read the password: %w", err)
	}
	if len(b) == 0 {
		return "", usagef("empty password")
	}
	return string(b), nil
}

// readSecretLine reads the first line of r, without its line ending: the
// secret (what) that flag says is there.
func readSecretLine(r io.Reader, flag, what string) (string, error) {
	if r == nil {
		return "", usagef("%s: no standard input", flag)
	}
	line, err := bufio.NewReader(io.LimitReader(r, maxStdinPassword+2)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read the %s from stdin: %w", what, err)
	}
	line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	switch {
	case len(line) > maxStdinPassword:
		return "", usagef("%s: the first line is longer than %d bytes", flag, maxStdinPassword)
	case line == "":
		return "", usagef("%s: standard input has no %s (an empty first line)", flag, what)
	}
	return line, nil
}
