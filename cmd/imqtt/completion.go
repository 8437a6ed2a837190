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

// cmdCompletion: imqtt completion (bash | zsh). The scripts are made from
// the commands table and each command's own FlagSet (commandFlags), so a
// new command or flag is completed without anyone writing completion for
// it; why this and not cobra's is at runContext.
func cmdCompletion(ctx context.Context, c *cli, args []string) error {
	fs := c.flags("completion")
	pos, err := c.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	t := completionTable()
	switch pos[0] {
	case "bash":
		writeBash(c.stdout, t)
	case "zsh":
		writeZsh(c.stdout, t)
	default:
		return usagef("no completion for %q: bash or zsh", pos[0])
	}
	return nil
}

// completionCase is what may follow "imqtt CMD SUB SUB2": subs are words
// (commands, subcommands, choices), flags the flags.
type completionCase struct {
	pattern     string // CMD/SUB/SUB2 as a shell case pattern: "//", "send/*", "groups//", "groups/create/*", "admin/users/"
	subs, flags []string
}

// completion is the whole table a script is made of.
type completion struct {
	valueFlags []string // names of the flags that take a value: the next word is no command
	cases      []completionCase
}

// shellWord is what a command, subcommand or flag name may be to go into a
// script unquoted.
var shellWord = regexp.MustCompile(`^-{0,2}[a-z0-9][a-z0-9-]*$`)

// The scripts quote with Go's %q: a word that passed shellWord has nothing
// a shell would expand.

func completionTable() completion {
	var t completion
	value := map[string]bool{}
	names := func(fl []*flag.Flag) []string {
		var out []string
		for _, f := range fl {
			out = append(out, dashes(f.Name))
			if b, ok := f.Value.(interface{ IsBoolFlag() bool }); !ok || !b.IsBoolFlag() {
				value[f.Name] = true
			}
		}
		return out
	}
	gfs := flag.NewFlagSet("", flag.ContinueOnError)
	var g globals
	g.register(gfs)
	var globalFlags []*flag.Flag
	gfs.VisitAll(func(f *flag.Flag) { globalFlags = append(globalFlags, f) })
	global := names(globalFlags)

	var top []string
	for _, cmd := range commands {
		top = append(top, cmd.name)
	}
	t.cases = append(t.cases, completionCase{"//", append(slices.Clone(top), "help"), append(slices.Clone(global), "--version", "--help")},
		completionCase{"help//", top, nil})
	// level adds the cases of the words after "imqtt CMD SUB..." (path),
	// whose flags are own. A pattern has a slot for each of the three
	// words the scripts look at ("admin/users/"), "*" for the words that
	// are arguments ("groups/create/*").
	var level func(cmd command, path []string, next []word, own []string)
	level = func(cmd command, path []string, next []word, own []string) {
		key := strings.Join(path, "/")
		if len(next) > 0 {
			var subs []string
			for _, w := range next {
				subs = append(subs, w.name)
			}
			t.cases = append(t.cases, completionCase{key + strings.Repeat("/", 3-len(path)), subs, own})
		}
		for _, w := range next {
			sub := append(slices.Clone(path), w.name)
			fl := append(names(commandFlags(cmd, sub[1:]...)), global...)
			switch {
			case len(w.next) > 0:
				level(cmd, sub, w.next, fl)
			case slices.Equal(fl, own):
			case len(sub) < 3:
				t.cases = append(t.cases, completionCase{key + "/" + w.name + "/*", nil, fl})
			default:
				t.cases = append(t.cases, completionCase{key + "/" + w.name, nil, fl})
			}
		}
		t.cases = append(t.cases, completionCase{key + "/*", nil, own})
	}
	for _, cmd := range commands {
		level(cmd, []string{cmd.name}, cmd.subs, append(names(commandFlags(cmd)), global...))
	}
	for name := range value {
		t.valueFlags = append(t.valueFlags, name)
	}
	slices.Sort(t.valueFlags)
	return t
}

// words joins names for the script, leaving out any that is not a plain
// shell word.
func words(names []string) string {
	var ok []string
	for _, n := range names {
		if shellWord.MatchString(n) {
			ok = append(ok, n)
		}
	}
	return strings.Join(ok, " ")
}

func writeBash(w io.Writer, t completion) {
	fmt.Fprintf(w, `# bash completion for imqtt, made by "imqtt completion bash" from its commands.
# Use: source <(imqtt completion bash), or save it as /etc/bash_completion.d/imqtt.
_imqtt_takes_value() {
    local n=${1#-}
    n=${n#-}
    [[ $1 == -* && $1 != *=* && " %s " == *" $n "* ]]
}
_imqtt() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    local cmd= sub= sub2= i w subs= flags=
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${COMP_WORDS[i]}
        if _imqtt_takes_value "$w"; then
            ((i++))
        elif [[ $w != -* ]]; then
            if [[ -z $cmd ]]; then cmd=$w; elif [[ -z $sub ]]; then sub=$w; elif [[ -z $sub2 ]]; then sub2=$w; fi
        fi
    done
    if _imqtt_takes_value "$prev"; then
        return # a flag's value: file names
    fi
    case $cmd/$sub/$sub2 in
`, words(t.valueFlags))
	for _, c := range t.cases {
		fmt.Fprintf(w, "    %s) subs=%q flags=%q ;;\n", c.pattern, words(c.subs), words(c.flags))
	}
	fmt.Fprint(w, `    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$flags" -- "$cur"))
    else
        COMPREPLY=($(compgen -W "$subs" -- "$cur"))
    fi
}
complete -o default -F _imqtt imqtt
`)
}

func writeZsh(w io.Writer, t completion) {
	fmt.Fprintf(w, `#compdef imqtt
# zsh completion for imqtt, made by "imqtt completion zsh" from its commands.
# Use: source <(imqtt completion zsh), or save it as _imqtt in a directory of $fpath.
_imqtt_takes_value() {
  local n=${1#-}
  n=${n#-}
  [[ $1 == -* && $1 != *=* && " %s " == *" $n "* ]]
}
_imqtt() {
  local cmd= sub= sub2= i w subs= flags=
  for ((i = 2; i < CURRENT; i++)); do
    w=${words[i]}
    if _imqtt_takes_value "$w"; then
      ((i++))
    elif [[ $w != -* ]]; then
      if [[ -z $cmd ]]; then cmd=$w; elif [[ -z $sub ]]; then sub=$w; elif [[ -z $sub2 ]]; then sub2=$w; fi
    fi
  done
  if _imqtt_takes_value "${words[CURRENT-1]}"; then
    _files
    return
  fi
  case $cmd/$sub/$sub2 in
`, words(t.valueFlags))
	for _, c := range t.cases {
		fmt.Fprintf(w, "    (%s) subs=%q flags=%q ;;\n", c.pattern, words(c.subs), words(c.flags))
	}
	fmt.Fprint(w, `  esac
  if [[ ${words[CURRENT]} == -* ]]; then
    compadd -- ${=flags}
  elif [[ -n $subs ]]; then
    compadd -- ${=subs}
  else
    _files
  fi
}
if [[ ${funcstack[1]} == _imqtt ]]; then _imqtt "$@"; else compdef _imqtt imqtt; fi
`)
}
