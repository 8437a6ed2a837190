package deploy

import (
	"bufio"
	"fmt"
	"math"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/imqtt/imqtt/internal/daemon"
)

// The sizing deploy/kernel.md does its arithmetic for.
const (
	targetConns = 1_000_000
	storeFiles  = 4096     // the store's tables, logs and media files, at most
	machineMem  = 64 << 30 // the machine the note sizes tcp_mem for
	pageSize    = 4096
)

// parseSysctl reads a sysctl.d file: "key = value" lines, # and ; comments.
// A value is its whitespace-separated integers.
func parseSysctl(text string) (map[string][]int64, error) {
	out := map[string][]int64{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("line %d: %q is no key = value", n, line)
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("line %d: %s twice", n, k)
		}
		for _, f := range strings.Fields(v) {
			i, err := strconv.ParseInt(f, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("line %d: %s: %q is not an integer", n, k, f)
			}
			out[k] = append(out[k], i)
		}
		if len(out[k]) == 0 {
			return nil, fmt.Errorf("line %d: %s has no value", n, k)
		}
	}
	return out, sc.Err()
}

// noteRows are the rows of kernel.md's settings table: key -> value.
func noteRows(md string) map[string]string {
	rows := map[string]string{}
	re := regexp.MustCompile("^\\| `([a-zA-Z0-9_.-]+)`(?: \\(drop-in\\))? \\| ([0-9 ]+) \\|")
	for _, line := range strings.Split(md, "\n") {
		if m := re.FindStringSubmatch(line); m != nil {
			rows[m[1]] = strings.Join(strings.Fields(m[2]), " ")
		}
	}
	return rows
}

// kernelProblems checks the sysctl values, the drop-in's LimitNOFILE and
// the note against each other and the arithmetic the note gives.
func kernelProblems(sys map[string][]int64, limitNOFILE, baseLimit int64, md string) []string {
	var p []string
	bad := func(format string, a ...any) { p = append(p, fmt.Sprintf(format, a...)) }
	shape := map[string]int{
		"fs.nr_open": 1, "fs.file-max": 1, "net.core.somaxconn": 1, "net.ipv4.tcp_max_syn_backlog": 1,
		"net.core.netdev_max_backlog": 1, "net.ipv4.tcp_mem": 3, "net.ipv4.tcp_rmem": 3, "net.ipv4.tcp_wmem": 3,
		"net.ipv4.ip_local_port_range": 2, "net.netfilter.nf_conntrack_max": 1,
	}
	for k, n := range shape {
		if len(sys[k]) != n {
			bad("%s: %d values, want %d", k, len(sys[k]), n)
		}
	}
	for k := range sys {
		if _, ok := shape[k]; !ok {
			bad("%s: not one the note explains", k)
		}
	}
	if len(p) > 0 {
		return p
	}
	one := func(k string) int64 { return sys[k][0] }

	// Descriptors: file-max >= nr_open >= LimitNOFILE >= 1M + margin.
	need := int64(targetConns + daemon.DefaultHTTPConns + storeFiles)
	if limitNOFILE < need {
		bad("LimitNOFILE %d < %d connections + %d HTTP (--max-http-conns) + %d store files = %d", limitNOFILE, targetConns, daemon.DefaultHTTPConns, storeFiles, need)
	}
	if limitNOFILE <= baseLimit {
		bad("the drop-in's LimitNOFILE %d does not raise the unit's %d", limitNOFILE, baseLimit)
	}
	if one("fs.nr_open") < limitNOFILE {
		bad("fs.nr_open %d < LimitNOFILE %d: systemd cannot apply it", one("fs.nr_open"), limitNOFILE)
	}
	if one("fs.file-max") < one("fs.nr_open") {
		bad("fs.file-max %d < fs.nr_open %d", one("fs.file-max"), one("fs.nr_open"))
	}
	if fm := one("fs.file-max"); fm < limitNOFILE+2*targetConns { // a proxy beside it: two per client
		bad("fs.file-max %d < imqttd's %d + a proxy's %d", fm, limitNOFILE, 2*targetConns)
	}
	// Accept queues.
	if one("net.core.somaxconn") < 4096 || one("net.core.somaxconn") > math.MaxUint16 {
		bad("net.core.somaxconn %d: want 4096..65535", one("net.core.somaxconn"))
	}
	if one("net.ipv4.tcp_max_syn_backlog") < one("net.core.somaxconn") {
		bad("tcp_max_syn_backlog %d < somaxconn %d", one("net.ipv4.tcp_max_syn_backlog"), one("net.core.somaxconn"))
	}
	if one("net.core.netdev_max_backlog") <= 1000 {
		bad("netdev_max_backlog %d: not above the default 1000", one("net.core.netdev_max_backlog"))
	}
	// Buffers: two pages per connection at pressure, the max under a fifth of the machine.
	mem := sys["net.ipv4.tcp_mem"]
	if mem[0] > mem[1] || mem[1] > mem[2] {
		bad("tcp_mem %v not ascending", mem)
	}
	if mem[1] < 2*targetConns {
		bad("tcp_mem pressure %d pages < two per connection (%d)", mem[1], 2*targetConns)
	}
	if mem[2]*pageSize > machineMem/5 {
		bad("tcp_mem max %d pages = %d GiB, over a fifth of %d GiB", mem[2], mem[2]*pageSize>>30, machineMem>>30)
	}
	for _, k := range []string{"net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"} {
		v := sys[k]
		if v[0] > v[1] || v[1] > v[2] {
			bad("%s %v not ascending", k, v)
		}
		if v[1]*targetConns > 16<<30 {
			bad("%s initial %d × %d connections > 16 GiB", k, v[1], targetConns)
		}
	}
	// Ports: above imqttd's own, and the note's count of source addresses.
	pr := sys["net.ipv4.ip_local_port_range"]
	if pr[0] >= pr[1] || pr[1] > math.MaxUint16 {
		bad("ip_local_port_range %v", pr)
	}
	for _, addr := range []string{daemon.DefaultMQTTAddr, daemon.DefaultHTTPAddr, daemon.DefaultTLSMQTTAddr, daemon.DefaultTLSHTTPAddr} {
		_, port, _ := net.SplitHostPort(addr)
		if n, _ := strconv.ParseInt(port, 10, 64); n >= pr[0] && n <= pr[1] {
			bad("imqttd's default port %d is inside ip_local_port_range %v", n, pr)
		}
	}
	ports := pr[1] - pr[0] + 1
	sources := (targetConns + ports - 1) / ports
	if m := regexp.MustCompile(`need (\d+) source addresses`).FindStringSubmatch(md); m == nil || m[1] != strconv.FormatInt(sources, 10) {
		bad("the note should say 1M connections need %d source addresses (⌈%d / %d⌉), it says %v", sources, targetConns, ports, m)
	}
	if !strings.Contains(md, strconv.FormatInt(ports/1000, 10)+","+fmt.Sprintf("%03d", ports%1000)) {
		bad("the note does not give the range's %d ports", ports)
	}
	if one("net.netfilter.nf_conntrack_max") < limitNOFILE {
		bad("nf_conntrack_max %d < LimitNOFILE %d", one("net.netfilter.nf_conntrack_max"), limitNOFILE)
	}
	// The note's table says what the files say.
	rows := noteRows(md)
	for k, v := range sys {
		var s []string
		for _, i := range v {
			s = append(s, strconv.FormatInt(i, 10))
		}
		if got, want := rows[k], strings.Join(s, " "); got != want {
			bad("kernel.md gives %s as %q, the sysctl file %q", k, got, want)
		}
	}
	if got := rows["LimitNOFILE"]; got != strconv.FormatInt(limitNOFILE, 10) {
		bad("kernel.md gives LimitNOFILE as %q, the drop-in %d", got, limitNOFILE)
	}
	if len(rows) != len(sys)+1 {
		bad("kernel.md's table has %d rows, the files %d settings", len(rows), len(sys)+1)
	}
	return p
}

// TestKernelSettings: deploy/sysctl.d/90-imqtt.conf, the systemd drop-in
// and deploy/kernel.md agree with each other and with the note's arithmetic
// for 1M connections (kernelProblems).
func TestKernelSettings(t *testing.T) {
	sys, err := parseSysctl(readFile(t, "sysctl.d/90-imqtt.conf"))
	if err != nil {
		t.Fatalf("sysctl.d/90-imqtt.conf: %v", err)
	}
	drop := parseUnit(t, "systemd/imqttd.service.d/90-scale.conf")
	limit, err := strconv.ParseInt(drop.get("Service", "LimitNOFILE"), 10, 64)
	if err != nil {
		t.Fatalf("drop-in LimitNOFILE: %v", err)
	}
	base, err := strconv.ParseInt(parseUnit(t, "systemd/imqttd.service").get("Service", "LimitNOFILE"), 10, 64)
	if err != nil {
		t.Fatalf("unit LimitNOFILE: %v", err)
	}
	for _, p := range kernelProblems(sys, limit, base, readFile(t, "kernel.md")) {
		t.Error(p)
	}
}

// TestKernelProblemsFindDrift: the checks catch a value changed in one
// place only, a limit under the arithmetic, and a malformed file.
func TestKernelProblemsFindDrift(t *testing.T) {
	text := readFile(t, "sysctl.d/90-imqtt.conf")
	md := readFile(t, "kernel.md")
	for _, c := range []struct {
		name      string
		from, to  string // replaced in the sysctl file
		limit     int64
		wantMatch string
	}{
		{"nr_open under LimitNOFILE", "fs.nr_open = 2097152", "fs.nr_open = 1048576", 1100000, "systemd cannot apply"},
		{"LimitNOFILE under 1M + margin", "", "", 1010000, "HTTP (--max-http-conns)"},
		{"value changed in the file only", "net.core.somaxconn = 65535", "net.core.somaxconn = 32768", 1100000, "kernel.md gives net.core.somaxconn"},
		{"port range changed, note's count not", "10240 65535", "40000 65535", 1100000, "source addresses"},
		{"default port in the range", "10240 65535", "1024 65535", 1100000, "default port 1883"},
		{"tcp_mem too small", "1572864 2097152 3145728", "262144 393216 524288", 1100000, "two per connection"},
		{"a key the note does not explain", "fs.file-max = 4194304", "fs.file-max = 4194304\nnet.ipv4.tcp_fin_timeout = 10", 1100000, "not one the note explains"},
	} {
		t.Run(c.name, func(t *testing.T) {
			sys, err := parseSysctl(strings.Replace(text, c.from, c.to, 1))
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Join(kernelProblems(sys, c.limit, 1048576, md), "\n")
			if !strings.Contains(got, c.wantMatch) {
				t.Fatalf("problems %q, want one saying %q", got, c.wantMatch)
			}
		})
	}
	for _, bad := range []string{"fs.nr_open 5", "fs.nr_open = x", "fs.nr_open = 1\nfs.nr_open = 2", "fs.nr_open ="} {
		if _, err := parseSysctl(bad); err == nil {
			t.Errorf("parseSysctl(%q) accepted it", bad)
		}
	}
}
