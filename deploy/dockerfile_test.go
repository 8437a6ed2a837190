package deploy

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

type instruction struct {
	line int
	cmd  string // upper case
	args string
}

type stage struct {
	image, name string
	instrs      []instruction
}

// parseDockerfile splits deploy/Dockerfile into stages of instructions,
// joining continuation lines and dropping comments (and the syntax
// directive).
func parseDockerfile(t *testing.T) (global []instruction, stages []stage) {
	t.Helper()
	known := []string{"FROM", "ARG", "ENV", "WORKDIR", "COPY", "ADD", "RUN", "USER", "VOLUME", "EXPOSE",
		"ENTRYPOINT", "CMD", "LABEL", "HEALTHCHECK", "STOPSIGNAL", "SHELL", "ONBUILD"}
	fromRE := regexp.MustCompile(`^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$`)
	var cur strings.Builder
	start := 0
	lines := strings.Split(readFile(t, "Dockerfile"), "\n")
	for i, raw := range lines {
		l := strings.TrimSpace(raw)
		if strings.HasPrefix(l, "#") || (l == "" && cur.Len() == 0) {
			continue
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if more, ok := strings.CutSuffix(l, "\\"); ok {
			cur.WriteString(more + " ")
			continue
		}
		cur.WriteString(l)
		text := cur.String()
		cur.Reset()
		cmd, args, _ := strings.Cut(text, " ")
		in := instruction{start, strings.ToUpper(cmd), strings.TrimSpace(args)}
		if !slices.Contains(known, in.cmd) {
			t.Errorf("Dockerfile:%d: unknown instruction %s", in.line, cmd)
		}
		if in.cmd == "FROM" {
			m := fromRE.FindStringSubmatch(in.args)
			if m == nil {
				t.Fatalf("Dockerfile:%d: FROM %q", in.line, in.args)
			}
			stages = append(stages, stage{image: m[1], name: m[2]})
			continue
		}
		if len(stages) == 0 {
			if in.cmd != "ARG" {
				t.Errorf("Dockerfile:%d: %s before the first FROM", in.line, in.cmd)
			}
			global = append(global, in)
			continue
		}
		stages[len(stages)-1].instrs = append(stages[len(stages)-1].instrs, in)
	}
	if cur.Len() > 0 {
		t.Error("Dockerfile ends in a continuation line")
	}
	return global, stages
}

// dockerBuild is the go build command of the Dockerfile's build stage.
func dockerBuild(t *testing.T) string {
	t.Helper()
	_, stages := parseDockerfile(t)
	for _, s := range stages {
		for _, in := range s.instrs {
			if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
				return in.args
			}
		}
	}
	t.Fatal("the Dockerfile runs no go build")
	return ""
}

func TestDockerfile(t *testing.T) {
	global, stages := parseDockerfile(t)
	if len(stages) < 2 {
		t.Fatalf("%d stages, want a build stage and a runtime stage", len(stages))
	}
	// The Go image is the go.mod version.
	gomod := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(readFile(t, "../go.mod"))
	if gomod == nil {
		t.Fatal("go.mod has no go directive")
	}
	if !slices.ContainsFunc(global, func(in instruction) bool { return in.args == "GO_VERSION="+gomod[1] }) ||
		!strings.HasPrefix(stages[0].image, "golang:${GO_VERSION}") {
		t.Errorf("build stage %s: want golang:${GO_VERSION} with ARG GO_VERSION=%s (go.mod)", stages[0].image, gomod[1])
	}
	names := map[string]bool{}
	for i, s := range stages {
		for _, in := range s.instrs {
			if in.cmd == "ADD" {
				t.Errorf("Dockerfile:%d: ADD (use COPY; never a remote URL)", in.line)
			}
			if in.cmd == "HEALTHCHECK" {
				t.Errorf("Dockerfile:%d: HEALTHCHECK cannot run on distroless (no shell, no curl)", in.line)
			}
			if in.cmd == "COPY" {
				for _, f := range strings.Fields(in.args) {
					if from, ok := strings.CutPrefix(f, "--from="); ok && !names[from] {
						t.Errorf("Dockerfile:%d: COPY --from=%s is no earlier stage", in.line, from)
					}
				}
				if !strings.Contains(in.args, "--from=") {
					for _, src := range strings.Fields(in.args)[:len(strings.Fields(in.args))-1] {
						if _, err := os.Stat(filepath.Join("..", src)); err != nil && !strings.HasPrefix(src, "--") {
							t.Errorf("Dockerfile:%d: COPY %s: not in the build context (the repository root)", in.line, src)
						}
					}
				}
			}
		}
		if i < len(stages)-1 && s.name == "" {
			t.Errorf("stage %d (%s) has no name", i, s.image)
		}
		names[s.name] = true
	}

	build := dockerBuild(t)
	for _, want := range []string{"CGO_ENABLED=0", "go build", "-trimpath", "-ldflags='-s -w'", "./cmd/imqttd", "./cmd/imqtt"} {
		if !strings.Contains(build, want) {
			t.Errorf("the go build step lacks %s: %s", want, build)
		}
	}

	final := stages[len(stages)-1]
	if !strings.HasPrefix(final.image, "gcr.io/distroless/static") && final.image != "scratch" {
		t.Errorf("final image %s: want distroless/static or scratch", final.image)
	}
	last := map[string]string{}
	var copies []string
	for _, in := range final.instrs {
		last[in.cmd] = in.args
		if in.cmd == "COPY" {
			copies = append(copies, in.args)
		}
	}
	if u := last["USER"]; u != "65532:65532" && u != "65532" {
		t.Errorf("final USER %q, want 65532 (nonroot)", u)
	}
	for _, p := range []string{"1883", "8080", "8883"} {
		if !slices.Contains(strings.Fields(last["EXPOSE"]), p) {
			t.Errorf("EXPOSE %q lacks %s", last["EXPOSE"], p)
		}
	}
	var vols []string
	if err := json.Unmarshal([]byte(last["VOLUME"]), &vols); err != nil || !slices.Contains(vols, "/data") {
		t.Errorf("VOLUME %q: want the JSON form with /data", last["VOLUME"])
	}
	// The default --data-dir ./data, seen from WORKDIR, is the volume.
	if filepath.Join(last["WORKDIR"], "data") != "/data" {
		t.Errorf("WORKDIR %q: ./data (the default --data-dir) is not the /data volume", last["WORKDIR"])
	}
	var entry []string
	if err := json.Unmarshal([]byte(last["ENTRYPOINT"]), &entry); err != nil || len(entry) == 0 || entry[0] != "/usr/local/bin/imqttd" {
		t.Errorf("ENTRYPOINT %q: want the exec form of /usr/local/bin/imqttd (SIGTERM must reach it)", last["ENTRYPOINT"])
	}
	if !slices.ContainsFunc(copies, func(c string) bool {
		return strings.Contains(c, "/out/imqttd") && strings.Contains(c, "/out/imqtt ") && strings.HasSuffix(c, "/usr/local/bin/")
	}) {
		t.Errorf("the final stage does not copy both binaries to /usr/local/bin/: %q", copies)
	}
	if !slices.ContainsFunc(copies, func(c string) bool {
		return strings.Contains(c, "--chown=65532:65532") && strings.HasSuffix(c, " /data")
	}) {
		t.Error("the final stage does not create /data owned by 65532")
	}
}

// TestDockerignore: the build context keeps everything the two commands
// compile and embed, and leaves out .git and local data.
func TestDockerignore(t *testing.T) {
	var patterns []string
	for _, l := range strings.Split(readFile(t, "../.dockerignore"), "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") {
			patterns = append(patterns, l)
		}
	}
	for _, want := range []string{".git", "/data"} {
		if !slices.Contains(patterns, want) {
			t.Errorf(".dockerignore does not leave out %s", want)
		}
	}
	// Every Go file and embedded file of the module that the binaries need.
	cmd := exec.Command("go", "list", "-deps", "-f",
		`{{if .Module}}{{if .Module.Main}}{{.Dir}}|{{join .GoFiles ","}},{{join .EmbedFiles ","}}{{end}}{{end}}`,
		"./cmd/imqttd", "./cmd/imqtt")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	root, _ := filepath.Abs("..")
	needed := []string{"go.mod", "go.sum"}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		dir, files, _ := strings.Cut(l, "|")
		rel, _ := filepath.Rel(root, dir)
		for _, f := range strings.Split(files, ",") {
			if f != "" {
				needed = append(needed, filepath.ToSlash(filepath.Join(rel, f)))
			}
		}
	}
	if len(needed) < 20 {
		t.Fatalf("go list found only %d files", len(needed))
	}
	for _, f := range needed {
		for _, p := range patterns {
			if !strings.HasPrefix(p, "!") && ignores(p, f) {
				t.Errorf(".dockerignore %q leaves out %s, which the build needs", p, f)
			}
		}
	}
}

// ignores reports whether a .dockerignore pattern leaves out path (or a
// directory it is in): the pattern matches the path or one of its parents;
// a leading **/ matches at any depth.
func ignores(pattern, path string) bool {
	pattern = strings.TrimPrefix(pattern, "/")
	parts := strings.Split(path, "/")
	for i := 1; i <= len(parts); i++ {
		prefix := strings.Join(parts[:i], "/")
		if ok, _ := filepath.Match(pattern, prefix); ok {
			return true
		}
		if rest, ok := strings.CutPrefix(pattern, "**/"); ok {
			for j := 0; j < i; j++ {
				if ok, _ := filepath.Match(rest, strings.Join(parts[j:i], "/")); ok {
					return true
				}
			}
		}
	}
	return false
}
