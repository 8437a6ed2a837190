package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// completionCases are command lines with the word being completed last,
// and what a shell should offer for it.
var completionCases = []struct{ line, want string }{
	{"imqtt gro", "groups"},
	{"imqtt --server http://x gro", "groups"},
	{"imqtt groups cr", "create"},
	{"imqtt groups create --me", "--members"},
	{"imqtt send --t", "--timeout --to --ttl --type"},
	{"imqtt send --to groups --re", "--reply-to"}, // groups is --to's value, not a command
	{"imqtt login alice --password-", "--password-stdin"},
	{"imqtt bench p2p --pa", "--pairs"},
	{"imqtt bench c", "conns compare"},
	{"imqtt receipts o", "on off"},
	{"imqtt comp", "completion"},
	{"imqtt completion ", "bash zsh"},
	{"imqtt help gr", "groups"},
	{"imqtt admin ", "backup stats clients users groups"}, // not their subcommands
	{"imqtt admin users s", "search show"},
	{"imqtt admin clients k", "kick"},
	{"imqtt admin groups remove-member g1 --admin-", "--admin-token --admin-token-stdin"},
	{"imqtt admin users show ", ""},
}

// TestCompletionBash sources `imqtt completion bash` in bash and completes
// each case as bash would on TAB.
func TestCompletionBash(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatal("bash is needed to check the completion script (make test installs it)")
	}
	code, script, stderr := runIn(t, fakeEnv(t.TempDir(), nil), "completion", "bash")
	if code != exitOK {
		t.Fatalf("completion bash: exit %d: %s", code, stderr)
	}
	var prog strings.Builder
	prog.WriteString(`t() { COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); COMPREPLY=(); _imqtt; echo "${COMPREPLY[*]}"; }` + "\n")
	for _, c := range completionCases {
		prog.WriteString("t " + shellArgs(c.line) + "\n")
	}
	checkCompletion(t, bash, script, prog.String())
}

// TestCompletionZsh runs the zsh script with zsh's completion builtins
// replaced by ones that print what they are given.
func TestCompletionZsh(t *testing.T) {
	zsh, err := exec.LookPath("zsh")
	if err != nil {
		t.Fatal("zsh is needed to check the completion script (make test installs it)")
	}
	code, script, stderr := runIn(t, fakeEnv(t.TempDir(), nil), "completion", "zsh")
	if code != exitOK {
		t.Fatalf("completion zsh: exit %d: %s", code, stderr)
	}
	var prog strings.Builder
	prog.WriteString(`compadd() { shift; print -r -- "${(j: :)${(M)@:#${words[CURRENT]}*}}" }` + "\n")
	prog.WriteString(`_files() { print }` + "\n")
	prog.WriteString(`t() { words=("$@"); CURRENT=${#words}; _imqtt }` + "\n")
	for _, c := range completionCases {
		prog.WriteString("t " + shellArgs(c.line) + "\n")
	}
	checkCompletion(t, zsh, "compdef() { }\n"+script, prog.String())
}

// shellArgs quotes a command line's words for a shell, keeping an empty
// last word (the line ends in a space).
func shellArgs(line string) string {
	ws := strings.Split(line, " ")
	for i, w := range ws {
		ws[i] = "'" + w + "'"
	}
	return strings.Join(ws, " ")
}

func checkCompletion(t *testing.T, shell, script, prog string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "imqtt.sh"), []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(shell, "-c", "source "+filepath.Join(dir, "imqtt.sh")+"\n"+prog).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", shell, err, out)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(got) != len(completionCases) {
		t.Fatalf("%s printed %d lines for %d cases:\n%s", shell, len(got), len(completionCases), out)
	}
	for i, c := range completionCases {
		if got[i] != c.want {
			t.Errorf("%s: %q completes to %q, want %q", filepath.Base(shell), c.line, got[i], c.want)
		}
	}
}

func TestCompletionRefusals(t *testing.T) {
	e := fakeEnv(t.TempDir(), nil)
	for _, args := range [][]string{{"completion"}, {"completion", "fish"}, {"completion", "bash", "zsh"}} {
		if code, out, _ := runIn(t, e, args...); code != exitUsage || out != "" {
			t.Errorf("imqtt %q: exit %d, %q; want exit 2 and nothing", args, code, out)
		}
	}
	// Every word that goes into a script is a plain word: nothing for a
	// shell to expand.
	tab := completionTable()
	for _, c := range tab.cases {
		for _, w := range append(append([]string{}, c.subs...), c.flags...) {
			if !shellWord.MatchString(w) {
				t.Errorf("%s: %q is no plain word", c.pattern, w)
			}
		}
	}
}
