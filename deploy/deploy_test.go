package deploy

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// assumedFlags are the scale-out flags the deploy files rely on; they are
// accepted even before cmd/imqttd defines them (it does today).
var assumedFlags = []string{"mongo-uri", "redis-url", "node-id", "advertise-mqtt", "advertise-ws"}

// otherEnv are IMQTT_ names in deploy/ that are not imqttd settings.
var otherEnv = map[string]string{
	"IMQTT_PUBLIC_HOST": "docker-compose.yml interpolation: the host clients reach the published ports at",
}

// otherFlags are --options of other commands (docker, kubectl, mongod, go,
// ...) written in deploy/; any other --name must be an imqttd flag.
var otherFlags = []string{
	"platform", "mount", "from", "chown", "build", "file", "rm", "entrypoint", // docker, Dockerfile
	"replSet", "bind_ip_all", "host", "quiet", "eval", // mongod, mongosh
	"save", "appendonly", // redis-server
	"from-literal", "dry-run", "validate", "offline", // kubectl, systemd-analyze
	"now", "trimpath", "ldflags", "race", "count", "run", "tags", "detach", "help", // systemctl, go, compose
	"password", "server", "home", "mqtt", "per-ip", // the imqtt CLI
	"system", // sysctl
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// yamlDocs decodes every document of a (multi-document) YAML file.
func yamlDocs(t *testing.T, path string) []*yaml.Node {
	t.Helper()
	dec := yaml.NewDecoder(strings.NewReader(readFile(t, path)))
	var docs []*yaml.Node
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: document %d: %v", path, len(docs)+1, err)
		}
		docs = append(docs, &n)
	}
	if len(docs) == 0 {
		t.Fatalf("%s: no YAML document", path)
	}
	return docs
}

// strict decodes v (any Go value, typically a decoded document) into out,
// refusing fields out does not declare.
func strict(v any, out any) error {
	b, err := yaml.Marshal(v)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	return dec.Decode(out)
}

var flagRE = regexp.MustCompile(`fs\.[A-Z][A-Za-z0-9]*\((?:[^,"()]+,\s*)?"([a-z0-9-]+)"`) // fs.IntVar(&x, "name", ...), fs.Var(sizeFlag[int]{&x}, "name", ...)

// imqttdFlags are the flag names cmd/imqttd defines, read from its source.
func imqttdFlags(t *testing.T) map[string]bool {
	t.Helper()
	files, err := filepath.Glob("../cmd/imqttd/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no cmd/imqttd sources: %v", err)
	}
	flags := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		for _, m := range flagRE.FindAllStringSubmatch(readFile(t, f), -1) {
			flags[m[1]] = true
		}
	}
	for _, want := range []string{"config", "mqtt-addr", "http-addr", "data-dir"} {
		if !flags[want] {
			t.Fatalf("reading cmd/imqttd found no --%s: the flag pattern %s is out of date", want, flagRE)
		}
	}
	for _, f := range assumedFlags {
		if !flags[f] {
			t.Logf("--%s is not in cmd/imqttd yet; assumed", f)
			flags[f] = true
		}
	}
	return flags
}

func envOf(flag string) string {
	return "IMQTT_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// deployFiles are the files of deploy/ other than the Go sources, and the
// repository's .dockerignore.
func deployFiles(t *testing.T) []string {
	t.Helper()
	files := []string{"../.dockerignore"}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && !strings.HasSuffix(path, ".go") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestYAMLParses: every YAML file of deploy/, each of its documents, and the
// config file inside the ConfigMap, parses (yaml.v3 also refuses duplicate
// keys).
func TestYAMLParses(t *testing.T) {
	n := 0
	for _, f := range deployFiles(t) {
		if ext := filepath.Ext(f); ext != ".yaml" && ext != ".yml" {
			continue
		}
		for _, doc := range yamlDocs(t, f) {
			var v any
			if err := doc.Decode(&v); err != nil {
				t.Errorf("%s: %v", f, err)
			}
			n++
		}
	}
	if n < 8 {
		t.Fatalf("only %d YAML documents under deploy/", n)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(configMapFile(t)), &cfg); err != nil {
		t.Fatalf("configmap.yaml imqttd.yaml: %v", err)
	}
}

var (
	envRE      = regexp.MustCompile(`\bIMQTT_[A-Z0-9_]+`)
	dashFlagRE = regexp.MustCompile(`(?:^|[\s"'\[(])--([a-zA-Z][a-zA-Z0-9_-]*)`)
	keyRE      = regexp.MustCompile(`(?m)^#?\s?([a-z][a-z0-9_-]*):`)
)

// TestNamesExist: every IMQTT_ variable, every --flag and every config-file
// key written in deploy/ is one imqttd (or the imqtt CLI) knows.
func TestNamesExist(t *testing.T) {
	flags := imqttdFlags(t)
	env := map[string]bool{}
	for f := range flags {
		env[envOf(f)] = true
	}
	cli, _ := filepath.Glob("../cmd/imqtt/*.go")
	for _, f := range cli {
		if !strings.HasSuffix(f, "_test.go") {
			for _, name := range envRE.FindAllString(readFile(t, f), -1) {
				env[name] = true
			}
		}
	}
	used := map[string]bool{}
	for _, f := range deployFiles(t) {
		text := readFile(t, f)
		for _, name := range envRE.FindAllString(text, -1) {
			used[name] = true
			if !env[name] && otherEnv[name] == "" {
				t.Errorf("%s: %s is no imqttd setting (flags: cmd/imqttd/config.go)", f, name)
			}
		}
		for _, m := range dashFlagRE.FindAllStringSubmatch(text, -1) {
			if !flags[m[1]] && !slices.Contains(otherFlags, m[1]) {
				t.Errorf("%s: --%s is neither an imqttd flag nor in otherFlags", f, m[1])
			}
		}
	}
	for _, name := range []string{"IMQTT_NODE_ID", "IMQTT_MONGO_URI", "IMQTT_REDIS_URL", "IMQTT_ADVERTISE_MQTT", "IMQTT_ADVERTISE_WS"} {
		if !used[name] {
			t.Errorf("no deploy file sets %s", name)
		}
	}
	// Config files: keys (also the commented-out ones of the sample) are
	// flag names, and never "config" itself.
	for name, text := range map[string]string{
		"imqttd.example.yaml":            readFile(t, "imqttd.example.yaml"),
		"k8s/configmap.yaml imqttd.yaml": configMapFile(t),
	} {
		keys := keyRE.FindAllStringSubmatch(text, -1)
		if len(keys) < 5 {
			t.Errorf("%s: only %d keys found", name, len(keys))
		}
		for _, m := range keys {
			k := strings.ReplaceAll(m[1], "_", "-")
			if !flags[k] || k == "config" {
				t.Errorf("%s: key %q is not an imqttd flag", name, m[1])
			}
		}
	}
}
