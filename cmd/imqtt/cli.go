package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/imqtt/imqtt/internal/version"
	"golang.org/x/term"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// Defaults of the global settings (docs/cli.md).
const (
	defaultServer = "http://127.0.0.1:8080"
	defaultDevice = "cli"
)

// env is what the CLI reads from its surroundings, so tests can give their
// own. A nil stdin reads as empty; a nil isTerminal says no.
type env struct {
	getenv       func(string) string
	homeDir      func() (string, error)
	stdin        io.Reader
	isTerminal   func(f any) bool       // whether f (stdin, stdout, stderr) is a terminal
	readPassword func() ([]byte, error) // a line from the terminal on stdin, not echoed
}

func osEnv() env {
	return env{getenv: os.Getenv, homeDir: os.UserHomeDir, stdin: os.Stdin,
		isTerminal: func(f any) bool {
			file, ok := f.(*os.File)
			return ok && term.IsTerminal(int(file.Fd()))
		},
		readPassword: func() ([]byte, error) { return term.ReadPassword(int(os.Stdin.Fd())) }}
}

// command is one subcommand. The dispatcher is the flag package's, not
// cobra's: runContext says why.
type command struct {
	name    string
	args    string // the synopsis after the name
	summary string
	subs    []word // the subcommands or choices that may follow the name, for completion
	run     func(ctx context.Context, c *cli, args []string) error
}

// word is a subcommand or a choice, with the words that may follow it in
// turn ("admin users show"). They are listed, not read from the synopsis:
// a synopsis mixes the levels ("users (show | unban) USER").
type word struct {
	name string
	next []word
}

// choices are words that nothing follows.
func choices(names ...string) []word {
	out := make([]word, len(names))
	for i, n := range names {
		out[i] = word{name: n}
	}
	return out
}

// commands is filled in init: the commands refer back to it for their usage.
var commands []command

func init() {
	commands = []command{
		{"register", "USER [--password P | --password-stdin]", "create an account (no password given: asked for on a terminal)", nil, cmdRegister},
		{"login", "USER [--password P | --password-stdin] [--device D]", "log in and save a token for this device (no password given: asked for on a terminal)", nil, cmdLogin},
		{"logout", "", "revoke the saved token and forget it", nil, cmdLogout},
		{"send", "(--to PEER [--ttl SECONDS] | --group G [--mention U,@all]) [--reply-to ID] TEXT...", "send a message; print the ack once it comes", nil, cmdSend},
		{"recall", "ID", "unsend a message for everyone; print the ack", nil, cmdRecall},
		{"edit", "ID TEXT...", "replace the text of one's message; print the ack", nil, cmdEdit},
		{"react", "ID EMOJI [--remove]", "add (or remove) a reaction to a message; print the ack", nil, cmdReact},
		{"delete", "(ID... | --peer PEER)", "hide messages, or a whole conversation, from one's own devices; print the ack", nil, cmdDelete},
		{"typing", "(PEER | --group G) [--stop]", "tell a peer or a group that you are typing (or stopped)", nil, cmdTyping},
		{"receipts", "[on | off]", "show, or turn on or off, read receipts (off: neither side gets them)", choices("on", "off"), cmdReceipts},
		{"reads", "G SEQ [--after USER] [--limit N]", "how many members of group G have read its message SEQ, and who", nil, cmdReads},
		{"listen", "", "catch up from the saved cursor (inbox and groups), then print every event until stopped", nil, cmdListen},
		{"sync", "[--since N]", "print what was missed (inbox, then each group) and save the cursor", nil, cmdSync},
		{"conversations", "", "the conversation list with unread counts", nil, cmdConversations},
		{"history", "PEER [--before ID] [--limit N]", "messages with PEER, newest first", nil, cmdHistory},
		{"read", "PEER [--upto ID]", "mark messages with PEER read", nil, cmdRead},
		{"push", "[register --provider apns|fcm|webhook --token T [--topic B] [--sandbox] | unregister [DEVICE]]", "this device's offline push registration (none: list them)", choices("register", "unregister"), cmdPush},
		{"groups", groupsUsage, "list, create, manage and administer groups", choices("create", "show", "add", "remove", "leave", "rename", "update", "disband", "transfer", "mute", "unmute"), cmdGroups},
		{"mute", "(PEER | --group G) [--until DURATION|TIME]", "mute a conversation (its unread leaves the total; no push but mentions)", nil, cmdMute},
		{"unmute", "(PEER | --group G)", "unmute a conversation", nil, cmdUnmute},
		{"pin", "(PEER | --group G)", "pin a conversation (pinned ones list first)", nil, cmdPin},
		{"unpin", "(PEER | --group G)", "unpin a conversation", nil, cmdUnpin},
		{"contacts", "[add USER | accept USER | remove USER] [--after USER] [--limit N]", "list contacts and requests; ask, accept, decline or remove one", choices("add", "accept", "remove"), cmdContacts},
		{"block", "USER", "block a user: its messages, typing and requests no longer reach you", nil, cmdBlock},
		{"unblock", "USER", "lift a block", nil, cmdUnblock},
		{"blocks", "[--after USER] [--limit N]", "list the users you blocked", nil, cmdBlocks},
		{"presence", "USER...", "who of these users is online (only contacts who share it are listed)", nil, cmdPresence},
		{"settings", "[--accept-from anyone|contacts] [--presence contacts|nobody] [--read-receipts on|off]", "show, or change, your privacy settings", nil, cmdSettings},
		{"bench", "SCENARIO", "load tests (see BENCHMARKS.md)", choices(benchScenarioNames...), cmdBench},
		{"completion", "(bash | zsh)", "print a shell completion script: source <(imqtt completion bash)", choices("bash", "zsh"), cmdCompletion},
		{"admin", adminUsage, "operate the server: backup, cluster stats and clients, users and groups (admin token; env IMQTT_ADMIN_TOKEN)", adminWords, cmdAdmin},
	}
	commands = withMedia(commands) // upload, download, send --file
}

// globals are the flags every command takes, before or after its name.
type globals struct {
	server  string
	home    string
	mqtt    string
	verbose bool
}

func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.server, "server", "", "HTTP base `URL` of imqttd (env IMQTT_SERVER; default: the saved session's, else "+defaultServer+")")
	fs.StringVar(&g.home, "home", "", "the `DIR` of the token and the sync cursor (env IMQTT_HOME; default ~/.config/imqtt)")
	fs.StringVar(&g.mqtt, "mqtt", "", "MQTT broker `HOST:PORT` (env IMQTT_MQTT; default: from /v1/endpoints)")
	fs.BoolVar(&g.verbose, "verbose", false, "log connection details to stderr")
}

// merge returns g with the settings of later (given after the command) on top.
func (g globals) merge(later globals) globals {
	for _, f := range []struct{ dst, src *string }{{&g.server, &later.server}, {&g.home, &later.home}, {&g.mqtt, &later.mqtt}} {
		if *f.src != "" {
			*f.dst = *f.src
		}
	}
	g.verbose = g.verbose || later.verbose
	return g
}

// cli is one run of the command line.
type cli struct {
	env    env
	stdout io.Writer
	stderr io.Writer
	pre    globals // global flags given before the command
	post   globals // ... and after it
	g      globals // the settings in force, after resolve
	log    *slog.Logger

	flagSets *[]*flag.FlagSet // when set, every FlagSet flags makes (for completion)
}

// usageError is a mistake on the command line: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

// runContext runs the CLI and returns its exit code.
//
// Why this dispatcher on the flag package stays, and spf13/cobra does not
// come in (issue 20 asked to compare). Cobra (with spf13/pflag) would give
// completion for bash, zsh, fish and PowerShell, with dynamic completion of
// values, and grouped help (AddGroup). It would take every command's
// FlagSet (30 of them, 123 flags, in 11 files) rewritten as a
// cobra.Command with pflag flags, and would change what users and scripts
// see: pflag takes --name but not -name (one dash is for one-letter
// shorthands), its errors read differently, and a global flag must be
// declared persistent to follow the command; exit codes would still come
// from our own mapping of RunE's error. TestExitCodes,
// TestInterspersedArguments and the command tests would all follow. What
// the issue needs of it costs less here: help grouped by commandGroups and
// flags printed as --name (help.go), and completion for bash and zsh made
// from the commands table (completion.go), about 350 lines in all.
func runContext(ctx context.Context, e env, args []string, stdout, stderr io.Writer) int {
	c := &cli{env: e, stdout: stdout, stderr: stderr}
	fs := flag.NewFlagSet("imqtt", flag.ContinueOnError)
	fs.SetOutput(flagOutput{stderr})
	fs.Usage = func() { c.usage(stderr) }
	c.pre.register(fs)
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if *showVersion {
		fmt.Fprintln(stdout, version.Get().String("imqtt"))
		return exitOK
	}
	if fs.NArg() == 0 {
		c.usage(stderr)
		return exitUsage
	}
	name, rest := fs.Arg(0), fs.Args()[1:]
	if name == "help" && len(rest) == 0 {
		c.usage(stdout)
		return exitOK
	}
	if name == "help" { // help COMMAND [SUBCOMMAND]: its usage, on stdout
		name, rest = rest[0], append(rest[1:len(rest):len(rest)], "--help")
		c.stderr = stdout
	}
	var cmd *command
	for i := range commands {
		if commands[i].name == name {
			cmd = &commands[i]
		}
	}
	if cmd == nil {
		fmt.Fprintf(stderr, "imqtt: unknown command %q\n", name)
		c.usage(stderr)
		return exitUsage
	}
	err := cmd.run(ctx, c, rest)
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "imqtt %s: %v\nusage: imqtt %s %s\n", cmd.name, err, cmd.name, cmd.args)
		return exitUsage
	case errors.Is(err, errFlagParse):
		return exitUsage // the flag package has said why
	case errors.Is(err, errNotImplemented):
		fmt.Fprintf(stderr, "imqtt %s: %v\n", cmd.name, err)
		return exitUsage
	}
	fmt.Fprintf(stderr, "imqtt %s: %v\n", cmd.name, err)
	return exitFailure
}

// usage is `imqtt help`: the synopsis, the commands by group (help.go) and
// the global flags.
func (c *cli) usage(w io.Writer) {
	fmt.Fprint(w, globalSynopsis)
	printCommands(w)
	fmt.Fprintf(w, "\nglobal flags (before or after the command):\n")
	fs := flag.NewFlagSet("imqtt", flag.ContinueOnError)
	var g globals
	g.register(fs)
	fs.Bool("version", false, "print the version and exit")
	printFlags(w, fs, nil)
}

// errFlagParse says the flag package has already reported a bad flag.
var errFlagParse = errors.New("bad flags")

// flags returns a FlagSet for a command that also takes the global flags.
func (c *cli) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("imqtt "+name, flag.ContinueOnError)
	fs.SetOutput(flagOutput{c.stderr})
	c.post.register(fs)
	if add := extraFlags[name]; add != nil {
		add(fs)
	}
	for _, cmd := range commands {
		if cmd.name == name {
			fs.Usage = func() {
				fmt.Fprintf(c.stderr, "usage: imqtt %s %s\n  %s\n\nflags:\n", cmd.name, cmd.args, cmd.summary)
				printFlags(c.stderr, fs, func(name string) bool { return !isGlobal(name) })
				fmt.Fprintf(c.stderr, "\nglobal flags: --server URL, --home DIR, --mqtt HOST:PORT, --verbose (imqtt help)\n")
			}
		}
	}
	if c.flagSets != nil {
		*c.flagSets = append(*c.flagSets, fs)
	}
	return fs
}

// parse parses a command's arguments, letting flags and positional arguments
// come in any order ("send hello --to bob"); "--" ends the flags. It then
// fills in the global settings and checks the number of positional
// arguments is in [min, max] (max < 0: no limit).
func (c *cli) parse(fs *flag.FlagSet, args []string, minPos, maxPos int) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, errFlagParse
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
	c.g = c.pre.merge(c.post)
	if err := c.resolve(); err != nil {
		return nil, err
	}
	switch {
	case len(pos) < minPos:
		return nil, usagef("missing arguments")
	case maxPos >= 0 && len(pos) > maxPos:
		return nil, usagef("unexpected arguments: %s", strings.Join(pos[maxPos:], " "))
	}
	return pos, nil
}

// resolve fills the global settings not given as flags, in one place:
// flag, then environment, then the saved session (server only), then the
// default. It also sets up the logger.
func (c *cli) resolve() error {
	if c.g.home == "" {
		c.g.home = c.env.getenv("IMQTT_HOME")
	}
	if c.g.home == "" {
		h, err := c.env.homeDir()
		if err != nil || h == "" {
			return fmt.Errorf("no home directory: set --home or IMQTT_HOME (%v)", err)
		}
		c.g.home = filepath.Join(h, ".config", "imqtt")
	}
	if c.g.server == "" {
		c.g.server = c.env.getenv("IMQTT_SERVER")
	}
	if c.g.server == "" {
		if s, err := c.loadSession(); err == nil && s.Server != "" {
			c.g.server = s.Server
		}
	}
	if c.g.server == "" {
		c.g.server = defaultServer
	}
	if c.g.mqtt == "" {
		c.g.mqtt = c.env.getenv("IMQTT_MQTT")
	}
	level := slog.LevelWarn
	if c.g.verbose {
		level = slog.LevelDebug
	}
	c.log = slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: level}))
	return nil
}
