package deploy

import (
	"fmt"
	"net/url"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// composeService is the subset of the Compose specification's service that
// docker-compose.yml uses, with the specification's field names; decoding
// is strict.
type composeService struct {
	Image string `yaml:"image"`
	Build *struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
	} `yaml:"build"`
	Hostname        string            `yaml:"hostname"`
	Command         []string          `yaml:"command"`
	Entrypoint      []string          `yaml:"entrypoint"`
	Environment     map[string]string `yaml:"environment"`
	Ports           []string          `yaml:"ports"`
	Volumes         []string          `yaml:"volumes"`
	Restart         string            `yaml:"restart"`
	StopSignal      string            `yaml:"stop_signal"`
	StopGracePeriod string            `yaml:"stop_grace_period"`
	DependsOn       dependsOn         `yaml:"depends_on"`
	Healthcheck     *struct {
		Test        []string `yaml:"test"`
		Interval    string   `yaml:"interval"`
		Timeout     string   `yaml:"timeout"`
		Retries     int      `yaml:"retries"`
		StartPeriod string   `yaml:"start_period"`
	} `yaml:"healthcheck"`
	Ulimits map[string]struct {
		Soft int `yaml:"soft"`
		Hard int `yaml:"hard"`
	} `yaml:"ulimits"`
}

// dependsOn is either form of depends_on: a list of names (condition
// service_started) or a map of name to condition.
type dependsOn map[string]string

func (d *dependsOn) UnmarshalYAML(n *yaml.Node) error {
	*d = dependsOn{}
	switch n.Kind {
	case yaml.SequenceNode:
		var names []string
		if err := n.Decode(&names); err != nil {
			return err
		}
		for _, s := range names {
			(*d)[s] = "service_started"
		}
		return nil
	case yaml.MappingNode:
		var m map[string]struct {
			Condition string `yaml:"condition"`
			Restart   bool   `yaml:"restart"`
			Required  *bool  `yaml:"required"`
		}
		if err := n.Decode(&m); err != nil {
			return err
		}
		for s, c := range m {
			(*d)[s] = c.Condition
		}
		return nil
	}
	return fmt.Errorf("line %d: depends_on is neither a list nor a map", n.Line)
}

type composeFile struct {
	Name     string                    `yaml:"name"`
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
	Networks map[string]any            `yaml:"networks"`
}

var interpRE = regexp.MustCompile(`\$\{([A-Z0-9_]+)(:?[-?][^}]*)?\}`)

// interpolate applies Compose's ${VAR:-default} with no variable set.
func interpolate(s string) string {
	return interpRE.ReplaceAllStringFunc(s, func(m string) string {
		sub := interpRE.FindStringSubmatch(m)
		if strings.HasPrefix(sub[2], ":-") || strings.HasPrefix(sub[2], "-") {
			return strings.TrimLeft(sub[2], ":-")
		}
		return ""
	})
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	var raw map[string]any // merges the x- anchors (<<) into the services
	if err := yaml.Unmarshal([]byte(readFile(t, "docker-compose.yml")), &raw); err != nil {
		t.Fatal(err)
	}
	for k := range raw {
		if strings.HasPrefix(k, "x-") {
			delete(raw, k)
		}
	}
	var c composeFile
	if err := strict(raw, &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return c
}

func TestCompose(t *testing.T) {
	c := loadCompose(t)
	flags := imqttdFlags(t)
	if strings.Contains(readFile(t, "docker-compose.yml"), "\nversion:") {
		t.Error("docker-compose.yml has the obsolete top-level version key")
	}
	var mongods, nodes []string
	for name, s := range c.Services {
		if s.Image == "" && s.Build == nil {
			t.Errorf("service %s has neither image nor build", name)
		}
		if s.Build != nil {
			ctx := filepath.Join(".", s.Build.Context)
			if !fileExists(filepath.Join(ctx, "go.mod")) || !fileExists(filepath.Join(ctx, s.Build.Dockerfile)) {
				t.Errorf("service %s: build context %s or dockerfile %s missing", name, s.Build.Context, s.Build.Dockerfile)
			}
		}
		for dep, cond := range s.DependsOn {
			d, ok := c.Services[dep]
			switch {
			case !ok:
				t.Errorf("service %s depends on %s, which does not exist", name, dep)
			case !slices.Contains([]string{"service_started", "service_healthy", "service_completed_successfully"}, cond):
				t.Errorf("service %s: depends_on %s condition %q", name, dep, cond)
			case cond == "service_healthy" && d.Healthcheck == nil:
				t.Errorf("service %s waits for %s to be healthy, which has no healthcheck", name, dep)
			}
		}
		for _, v := range s.Volumes {
			src, _, ok := strings.Cut(v, ":")
			if !ok {
				t.Errorf("service %s: volume %q has no target", name, v)
			} else if strings.HasPrefix(src, ".") || strings.HasPrefix(src, "/") {
				if !fileExists(filepath.Join(".", src)) {
					t.Errorf("service %s: bind mount %s does not exist", name, src)
				}
			} else if _, ok := c.Volumes[src]; !ok {
				t.Errorf("service %s: volume %s is not declared under volumes:", name, src)
			}
		}
		if slices.Contains(s.Command, "mongod") {
			mongods = append(mongods, name)
		}
		if s.Build != nil {
			nodes = append(nodes, name)
		}
		for k := range s.Environment {
			if strings.HasPrefix(k, "IMQTT_") && !slices.ContainsFunc(keys(flags), func(f string) bool { return envOf(f) == k }) {
				t.Errorf("service %s: %s is no imqttd flag", name, k)
			}
		}
	}
	slices.Sort(mongods)
	slices.Sort(nodes)
	if len(mongods) != 3 || len(nodes) != 3 {
		t.Fatalf("mongod services %v, imqttd services %v: want three of each", mongods, nodes)
	}

	// Host ports are distinct.
	hostPorts := map[string]string{}
	for name, s := range c.Services {
		for _, p := range s.Ports {
			host, _, ok := strings.Cut(p, ":")
			if !ok {
				t.Errorf("service %s: port %q is not host:container", name, p)
			}
			if other, dup := hostPorts[host]; dup {
				t.Errorf("host port %s published by %s and %s", host, other, name)
			}
			hostPorts[host] = name
		}
	}

	// The replica set: rs.initiate lists the mongod services, and every
	// node's URI names all of them and the set.
	initName, init := "", composeService{}
	for name, s := range c.Services {
		if strings.Contains(strings.Join(s.Command, " "), "rs.initiate") {
			initName, init = name, s
		}
	}
	if initName == "" {
		t.Fatal("no service runs rs.initiate")
	}
	script := strings.Join(init.Command, " ")
	rsName := regexp.MustCompile(`_id: "([^"]+)", members`).FindStringSubmatch(script)
	if rsName == nil {
		t.Fatal("rs.initiate names no replica set _id")
	}
	for _, m := range mongods {
		if !strings.Contains(script, `host: "`+m+`:27017"`) {
			t.Errorf("rs.initiate does not list %s", m)
		}
		if c.Services[m].Healthcheck == nil || !slices.Contains(c.Services[m].Command, rsName[1]) {
			t.Errorf("%s: no healthcheck, or not started with --replSet %s", m, rsName[1])
		}
		if init.DependsOn[m] != "service_healthy" {
			t.Errorf("%s does not wait for %s to be healthy", initName, m)
		}
	}
	if init.Restart != "no" {
		t.Errorf("%s is one-shot: restart must be \"no\"", initName)
	}

	ids, advertised := map[string]string{}, map[string]string{}
	for _, n := range nodes {
		s := c.Services[n]
		env := s.Environment
		if s.DependsOn[initName] != "service_completed_successfully" {
			t.Errorf("%s does not wait for %s to complete", n, initName)
		}
		if s.StopGracePeriod == "" || s.StopSignal != "SIGTERM" {
			t.Errorf("%s: stop_signal SIGTERM and a stop_grace_period for the drain are missing", n)
		}
		id := env["IMQTT_NODE_ID"]
		if id == "" || ids[id] != "" {
			t.Errorf("%s: IMQTT_NODE_ID %q empty or not unique", n, id)
		}
		ids[id] = n
		u, err := url.Parse(env["IMQTT_MONGO_URI"])
		if err != nil || u.Query().Get("replicaSet") != rsName[1] {
			t.Errorf("%s: IMQTT_MONGO_URI %q does not name replica set %s", n, env["IMQTT_MONGO_URI"], rsName[1])
		} else {
			for _, m := range mongods {
				if !strings.Contains(u.Host, m+":27017") {
					t.Errorf("%s: IMQTT_MONGO_URI does not list %s", n, m)
				}
			}
		}
		if r, err := url.Parse(env["IMQTT_REDIS_URL"]); err != nil || c.Services[r.Hostname()].Image == "" {
			t.Errorf("%s: IMQTT_REDIS_URL %q is not a service", n, env["IMQTT_REDIS_URL"])
		}
		// Advertised addresses are this node's published ports.
		published := map[string]string{}
		for _, p := range s.Ports {
			host, ctr, _ := strings.Cut(p, ":")
			published[ctr] = host
		}
		mqtt := interpolate(env["IMQTT_ADVERTISE_MQTT"])
		ws := interpolate(env["IMQTT_ADVERTISE_WS"])
		if published["1883"] == "" || mqtt != "localhost:"+published["1883"] {
			t.Errorf("%s: IMQTT_ADVERTISE_MQTT %q is not its published MQTT port %s", n, mqtt, published["1883"])
		}
		if published["8080"] == "" || ws != "ws://localhost:"+published["8080"]+"/mqtt" {
			t.Errorf("%s: IMQTT_ADVERTISE_WS %q is not its published HTTP port %s", n, ws, published["8080"])
		}
		if advertised[mqtt] != "" {
			t.Errorf("%s and %s advertise the same %s", n, advertised[mqtt], mqtt)
		}
		advertised[mqtt] = n
	}

	// The load balancer mounts haproxy.cfg where the image reads it and
	// publishes 1883 and 8080.
	lb, ok := c.Services["lb"]
	if !ok || !strings.HasPrefix(lb.Image, "haproxy:") {
		t.Fatal("no lb service on the haproxy image")
	}
	if !slices.Contains(lb.Volumes, "./haproxy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro") {
		t.Error("lb does not mount ./haproxy/haproxy.cfg at /usr/local/etc/haproxy/haproxy.cfg")
	}
	if !slices.Contains(lb.Ports, "1883:1883") || !slices.Contains(lb.Ports, "8080:8080") {
		t.Errorf("lb ports %v, want 1883:1883 and 8080:8080", lb.Ports)
	}
	checkHAProxy(t, nodes)
}

// checkHAProxy: MQTT is a tcp frontend on 1883, HTTP an http frontend on
// 8080; both backends hold every node and check it on GET /readyz of its
// HTTP port.
func checkHAProxy(t *testing.T, nodes []string) {
	const path = "haproxy/haproxy.cfg"
	sections := map[string][]string{}
	cur := ""
	for i, line := range strings.Split(readFile(t, path), "\n") {
		if j := strings.Index(line, "#"); j >= 0 {
			line = line[:j]
		}
		if strings.TrimSpace(line) == "" {
			continue
		}
		if line[0] != ' ' && line[0] != '\t' {
			cur = strings.Join(strings.Fields(line), " ")
			if _, dup := sections[cur]; dup {
				t.Errorf("%s:%d: section %q twice", path, i+1, cur)
			}
			sections[cur] = []string{}
			continue
		}
		if cur == "" {
			t.Fatalf("%s:%d: a setting outside any section", path, i+1)
		}
		sections[cur] = append(sections[cur], strings.Join(strings.Fields(line), " "))
	}
	for _, s := range []string{"global", "defaults"} {
		if _, ok := sections[s]; !ok {
			t.Errorf("%s: no %s section", path, s)
		}
	}
	for _, fe := range []struct{ name, bind, mode string }{{"mqtt", ":1883", "tcp"}, {"http", ":8080", "http"}} {
		lines, ok := sections["frontend "+fe.name]
		if !ok {
			t.Errorf("%s: no frontend %s", path, fe.name)
			continue
		}
		if !slices.Contains(lines, "bind "+fe.bind) || !slices.Contains(lines, "mode "+fe.mode) {
			t.Errorf("frontend %s: want bind %s and mode %s, have %q", fe.name, fe.bind, fe.mode, lines)
		}
		var backend string
		for _, l := range lines {
			if b, ok := strings.CutPrefix(l, "default_backend "); ok {
				backend = b
			}
		}
		be, ok := sections["backend "+backend]
		if !ok {
			t.Errorf("frontend %s: backend %q does not exist", fe.name, backend)
			continue
		}
		if !slices.Contains(be, "mode "+fe.mode) || !slices.Contains(be, "option httpchk") ||
			!slices.ContainsFunc(be, func(l string) bool { return strings.HasPrefix(l, "http-check send meth GET uri /readyz") }) ||
			!slices.Contains(be, "http-check expect status 200") {
			t.Errorf("backend %s: want mode %s and an HTTP check of GET /readyz expecting 200, have %q", backend, fe.mode, be)
		}
		var defaults string
		var servers []string
		for _, l := range be {
			if d, ok := strings.CutPrefix(l, "default-server "); ok {
				defaults = d
			}
			if s, ok := strings.CutPrefix(l, "server "); ok {
				servers = append(servers, s)
			}
			if strings.Contains(l, "shutdown-sessions") {
				t.Errorf("backend %s cuts sessions when a node is marked down; the node drains them in waves itself", backend)
			}
		}
		port := strings.TrimPrefix(fe.bind, ":")
		for _, n := range nodes {
			if !slices.ContainsFunc(servers, func(s string) bool {
				f := strings.Fields(s)
				return len(f) >= 2 && f[1] == n+":"+port
			}) {
				t.Errorf("backend %s has no server %s:%s", backend, n, port)
			}
		}
		check := " " + defaults + " " + strings.Join(servers, " ") + " "
		if !strings.Contains(check, " check ") {
			t.Errorf("backend %s: servers are not checked", backend)
		}
		if fe.mode == "tcp" && !strings.Contains(check, " port 8080 ") {
			t.Errorf("backend %s: the check must go to the HTTP port (port 8080)", backend)
		}
	}
	// HAProxy's own parser (scripts/test.sh installs haproxy).
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		t.Fatal("haproxy is not installed (scripts/test.sh installs it): haproxy -c cannot check haproxy.cfg")
	}
	if out, err := exec.Command(bin, "-c", "-f", path).CombinedOutput(); err != nil {
		t.Errorf("haproxy -c: %v\n%s", err, out)
	}
}
