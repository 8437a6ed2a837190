package deploy

import (
	"bufio"
	"context"
	"debug/buildinfo"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestStaticBinary builds imqttd and imqtt the way the Dockerfile does
// (CGO_ENABLED=0, -trimpath, -ldflags '-s -w') and checks that the result
// runs on distroless/static: no cgo, no dynamic loader, no libraries. Then
// it starts the built imqttd on each deploy config file and stops it with
// SIGTERM, as a container runtime or systemd would.
//
// The first run compiles the module without cgo (a minute or two on two
// cores); later runs reuse the build cache.
func TestStaticBinary(t *testing.T) {
	build := dockerBuild(t)
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-ldflags='-s -w'"} {
		if !strings.Contains(build, want) {
			t.Fatalf("the Dockerfile's go build changed (no %s): update this test with it", want)
		}
	}
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", out+"/", "./cmd/imqttd", "./cmd/imqtt")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	start := time.Now()
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	t.Logf("static build of imqttd and imqtt: %v", time.Since(start).Round(time.Millisecond))

	for _, name := range []string{"imqttd", "imqtt"} {
		bin := filepath.Join(out, name)
		bi, err := buildinfo.ReadFile(bin)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if bi.Path != "github.com/imqtt/imqtt/cmd/"+name {
			t.Errorf("%s: main package %s", name, bi.Path)
		}
		settings := map[string]string{}
		for _, s := range bi.Settings {
			settings[s.Key] = s.Value
		}
		// (With -trimpath, go omits -ldflags from the build info: the ELF
		// checks below see -s and -w instead.)
		if settings["CGO_ENABLED"] != "0" || settings["-trimpath"] != "true" {
			t.Errorf("%s: build settings CGO_ENABLED=%q -trimpath=%q", name, settings["CGO_ENABLED"], settings["-trimpath"])
		}
		f, err := elf.Open(bin)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
				t.Errorf("%s: dynamically linked (%v): it would not start on distroless/static", name, p.Type)
			}
		}
		if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
			t.Errorf("%s: needs %v", name, libs)
		}
		if f.Section(".symtab") != nil {
			t.Errorf("%s: has a symbol table (no -s)", name)
		}
		for _, s := range f.Sections {
			if strings.HasPrefix(s.Name, ".debug_") || strings.HasPrefix(s.Name, ".zdebug_") {
				t.Errorf("%s: has DWARF %s (no -w)", name, s.Name)
				break
			}
		}
		f.Close()
	}

	cfg := filepath.Join(t.TempDir(), "imqttd.yaml")
	if err := os.WriteFile(cfg, []byte(configMapFile(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, file := range map[string]string{"k8s-configmap": cfg, "example": "imqttd.example.yaml"} {
		t.Run("config="+name, func(t *testing.T) { runDaemon(t, filepath.Join(out, "imqttd"), file) })
	}
}

// runDaemon starts imqttd with a config file (embedded mode: the scale-out
// URIs and the addresses are overridden by flags), waits until it serves,
// asks /healthz, /readyz and /v1/endpoints, then sends SIGTERM and wants a
// clean exit.
func runDaemon(t *testing.T, bin, config string) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--config", config, "--mongo-uri=", "--redis-url=",
		"--data-dir", t.TempDir(), "--mqtt-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--tls-mqtt-addr", "127.0.0.1:0", "--tls-http-addr", "127.0.0.1:0", "--log-format", "json")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()} // no IMQTT_ from this environment
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan map[string]any)
	var log strings.Builder
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			var rec map[string]any
			if json.Unmarshal(sc.Bytes(), &rec) == nil {
				lines <- rec
			}
		}
	}()
	next := func(msg string) map[string]any {
		for rec := range lines {
			if rec["msg"] == msg {
				return rec
			}
		}
		return nil
	}
	serving := next("imqttd serving")
	if serving == nil {
		cmd.Wait()
		t.Fatalf("imqttd --config %s did not start:\n%s", config, log.String())
	}
	base := fmt.Sprintf("http://%s", serving["http"])
	for _, path := range []string{"/healthz", "/readyz", "/v1/endpoints"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d %s", path, resp.StatusCode, body)
		}
	}
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	stopped := next("imqttd stopped")
	for range lines { // drain until stderr closes
	}
	if err := cmd.Wait(); err != nil || stopped == nil {
		t.Fatalf("after SIGTERM: %v, stopped log line %v\n%s", err, stopped, log.String())
	}
	t.Logf("imqttd --config %s: served, and stopped %v after SIGTERM", config, time.Since(start).Round(time.Millisecond))
}
