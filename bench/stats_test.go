package bench

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestPercentileNearestRank(t *testing.T) {
	s := make([]int64, 100)
	for i := range s {
		s[i] = int64(i + 1) // 1..100
	}
	for _, c := range []struct {
		p    float64
		want int64
	}{{50, 50}, {90, 90}, {99, 99}, {100, 100}, {0.1, 1}, {0, 1}} {
		if got := Percentile(s, c.p); got != c.want {
			t.Errorf("p%v = %d, want %d", c.p, got, c.want)
		}
	}
	if got := Percentile([]int64{7}, 99); got != 7 {
		t.Errorf("one sample: %d", got)
	}
	// Ten samples: p99 is the largest, p50 the fifth.
	ten := []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	if Percentile(ten, 99) != 10 || Percentile(ten, 50) != 5 || Percentile(ten, 90) != 9 {
		t.Errorf("ten samples: %d %d %d", Percentile(ten, 50), Percentile(ten, 90), Percentile(ten, 99))
	}
}

func TestSummarize(t *testing.T) {
	if (Summarize(nil) != Latency{}) {
		t.Fatal("no samples must give the zero Latency")
	}
	var s []int64
	for i := 1000; i >= 1; i-- { // unsorted on purpose
		s = append(s, int64(i)*int64(time.Millisecond))
	}
	l := Summarize(s)
	want := Latency{Count: 1000, Mean: 500.5, P50: 500, P90: 900, P99: 990, Max: 1000}
	if l != want {
		t.Fatalf("got %+v, want %+v", l, want)
	}
	if got := Summarize([]int64{1500}); got.P50 != 0.002 || got.Max != 0.002 { // 1.5 µs rounds to 2 µs
		t.Fatalf("rounding: %+v", got)
	}
}

func TestRate(t *testing.T) {
	if Rate(100, 2*time.Second) != 50 || Rate(5, 0) != 0 || Rate(5, -time.Second) != 0 {
		t.Fatal("Rate")
	}
}

func TestBitset(t *testing.T) {
	var b bitset
	for _, i := range []int{0, 63, 64, 1000} {
		if b.set(i) {
			t.Fatalf("%d set twice", i)
		}
		if !b.set(i) || !b.has(i) {
			t.Fatalf("%d not kept", i)
		}
	}
	if b.has(1) || b.has(65) || b.has(5000) {
		t.Fatal("phantom members")
	}
}

func TestTrackerCounts(t *testing.T) {
	tr := NewTracker(2)
	t0 := time.Unix(100, 0)
	for range 4 {
		tr.Sent()
	}
	tr.Sent()
	tr.Failed() // the fifth send gave up
	tr.Ack(0, 0)
	tr.Ack(0, 1)
	tr.Ack(0, 1) // a second ack of one message counts once
	tr.Ack(1, 0)
	// Delivered before its ack: counts once the ack comes.
	if tr.Deliver(1, 1, t0, t0.Add(3*time.Millisecond), false) {
		t.Fatal("first sighting reported as duplicate")
	}
	tr.Ack(1, 1)
	tr.Deliver(0, 0, t0, t0.Add(time.Millisecond), false)
	if !tr.Deliver(0, 0, t0, t0.Add(9*time.Millisecond), false) {
		t.Fatal("second sighting not a duplicate")
	}
	tr.Deliver(1, 0, t0, t0.Add(2*time.Millisecond), true)
	// Stream 0 message 1 is acked and never seen: lost (once the run is over).
	want := Counts{Sent: 5, Acked: 4, Delivered: 3, Lost: 1, Duplicated: 1, Synced: 1, Unacked: 1}
	if got := tr.Counts(); got != want {
		t.Fatalf("counts %+v, want %+v", got, want)
	}
	if tr.Complete() {
		t.Fatal("complete with a message missing")
	}
	if inc := tr.Incomplete(); len(inc) != 1 || inc[0] != 0 {
		t.Fatalf("incomplete %v", inc)
	}
	if m := tr.Missing(0, 3); len(m) != 2 || m[0] != 1 || m[1] != 2 {
		t.Fatalf("missing %v", m)
	}
	if l := Summarize(tr.Latencies()); l.Count != 3 || l.Max != 3 {
		t.Fatalf("latencies %+v (the duplicate's must not count)", l)
	}
	if !tr.LastSeen().Equal(t0.Add(3 * time.Millisecond)) {
		t.Fatalf("last seen %v", tr.LastSeen())
	}
	tr.Deliver(0, 1, t0, t0.Add(4*time.Millisecond), true)
	if !tr.Complete() || tr.Counts().Lost != 0 {
		t.Fatalf("complete: %+v", tr.Counts())
	}
}

func TestBody(t *testing.T) {
	sent := time.Unix(1700000000, 123456789)
	b := encodeBody("ab12", 3, 42, sent, 64)
	if len(b) != 64 {
		t.Fatalf("size %d", len(b))
	}
	st, ok := parseBody("ab12", b)
	if !ok || st.stream != 3 || st.seq != 42 || !st.sent.Equal(sent) || st.flush {
		t.Fatalf("%+v %v", st, ok)
	}
	if long := encodeBody("ab12", 3, 42, sent, 4); !strings.HasPrefix(long, "ab12:3:42:") {
		t.Fatalf("a size below the header keeps the header: %q", long)
	}
	if st, ok := parseBody("ab12", flushBody("ab12", 7)); !ok || !st.flush || st.stream != 7 {
		t.Fatalf("flush: %+v %v", st, ok)
	}
	for _, bad := range []string{"", "hello", "zz99:1:2:3:", "ab12:x:2:3:", "ab12:1:-2:3:", "ab12:1:2:x:", "ab12:1:2:3"} {
		if _, ok := parseBody("ab12", bad); ok {
			t.Errorf("parsed %q", bad)
		}
	}
}

func TestResultChecks(t *testing.T) {
	ok := Result{Scenario: "p2p", Target: "imqttd", Counts: Counts{Sent: 10, Acked: 10, Delivered: 10}}
	ok.checkMessages()
	if ok.Err() != nil {
		t.Fatal(ok.Err())
	}
	for name, c := range map[string]struct {
		r    Result
		want string
	}{
		"lost":       {Result{Counts: Counts{Sent: 10, Acked: 10, Delivered: 9, Lost: 1}}, "1 of 10 acked messages lost"},
		"dup":        {Result{Counts: Counts{Sent: 10, Acked: 10, Delivered: 10, Duplicated: 2}}, "2 duplicate deliveries"},
		"unacked":    {Result{Counts: Counts{Sent: 10, Acked: 9, Delivered: 9, Unacked: 1}}, "1 of 10 sends never acked"},
		"nothing":    {Result{}, "nothing was delivered"},
		"short rate": {Result{Counts: Counts{Sent: 10, Acked: 10, Delivered: 10}, TargetRate: 1000, SendRate: 900}, "target load not reached: sent 900 msgs/s of the 1000 asked (90%)"},
	} {
		c.r.Scenario, c.r.Target = "p2p", "x"
		c.r.checkMessages()
		if err := c.r.Err(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
	reached := Result{Counts: Counts{Sent: 10, Acked: 10, Delivered: 10}, TargetRate: 1000, SendRate: 960}
	reached.checkMessages()
	if reached.Err() != nil {
		t.Fatalf("96%% of the asked rate is reached: %v", reached.Err())
	}
}

func TestReportTableAndJSON(t *testing.T) {
	r := &Result{Scenario: "p2p", Target: "imqttd", Case: "pairs=2 rate=max", Seconds: 2,
		Counts: Counts{Sent: 100, Acked: 100, Delivered: 99, Lost: 1, Synced: 3}, Rate: 49.5, SendRate: 50,
		Latency: &Latency{Count: 99, P50: 1.25, P90: 2.5, P99: 7.25, Max: 9}, Extra: map[string]float64{"store_commits": 12}}
	r.checkMessages()
	var tab bytes.Buffer
	if err := r.WriteTable(&tab); err != nil {
		t.Fatal(err)
	}
	out := tab.String()
	for _, want := range []string{"lost", "dup", "msgs/s", " 99 ", "49.50", "7.25", "store_commits: 12", "FAIL: 1 of 100 acked messages lost"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	// The rate and the loss count share the row: never one without the other.
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "49.50") && !strings.Contains(line, " 1 ") {
			t.Errorf("rate without the loss count: %q", line)
		}
	}
	var js bytes.Buffer
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"lost": 1`, `"duplicated": 0`, `"msgs_per_s": 49.5`, `"p99_ms": 7.25`, `"problems"`} {
		if !strings.Contains(js.String(), want) {
			t.Errorf("JSON lacks %s:\n%s", want, js.String())
		}
	}
	back, err := ReadResult(&js)
	if err != nil || back.Lost != 1 || back.Latency.P99 != 7.25 || back.Case != r.Case || len(back.Problems) != 1 {
		t.Fatalf("round trip: %+v %v", back, err)
	}
	if _, err := ReadResult(strings.NewReader(`{}`)); err == nil {
		t.Fatal("a result without a scenario was accepted")
	}

	conns := &Result{Scenario: "conns", Target: "mochi", Extra: map[string]float64{"conns": 1000, "conns_failed": 0,
		"connect_per_s": 5000, "server_rss_before_kib": 10240, "server_rss_after_kib": 20480, "server_kib_per_conn": 10.24}}
	tab.Reset()
	if err := conns.WriteTable(&tab); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"KiB/conn", "10.24", "20.0", "PASS"} {
		if !strings.Contains(tab.String(), want) {
			t.Errorf("conns table lacks %q:\n%s", want, tab.String())
		}
	}
}

func TestCompare(t *testing.T) {
	p2p := func(target string, rate, asked float64, p99 float64) *Result {
		return &Result{Scenario: "p2p", Target: target, Case: "pairs=2 rate=max", Rate: rate, TargetRate: asked, SendRate: asked,
			Counts: Counts{Sent: 10, Acked: 10, Delivered: 10}, Latency: &Latency{Count: 10, P99: p99}}
	}
	half := p2p(LabelImqttd, 5000, 5000, 12.5)
	half.Case = "pairs=2 rate=5000"
	halfMosq := p2p(LabelMosquitto, 5000, 5000, 1.5)
	halfMosq.Case = half.Case
	conns := func(target string, kib float64) *Result {
		return &Result{Scenario: "conns", Target: target, Case: "conns=1000", Extra: map[string]float64{"conns": 1000, "server_kib_per_conn": kib, "server_go_live_kib_per_conn": kib / 2}}
	}
	rs := []*Result{
		p2p(LabelImqttd, 5000, 0, 80), p2p(LabelMosquitto, 10000, 0, 40), p2p(LabelMochi, 20000, 0, 30), half, halfMosq,
		conns(LabelImqttd, 15), conns(LabelMosquitto, 5), conns(LabelMochi, 10),
		{Scenario: "sync", Target: LabelImqttd, Case: "messages=100", Rate: 150000, Counts: Counts{Acked: 100, Delivered: 100}},
		{Scenario: "group", Target: LabelImqttd, Case: "members=8", Rate: 900, Counts: Counts{Acked: 40, Delivered: 40}, Latency: &Latency{P99: 3}},
	}
	var b bytes.Buffer
	if err := Compare(&b, rs); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"| pairs=2 rate=max | imqttd | 5000 | 0 | 0 | 0 | 0.00 | 0.00 | 80.00 | 0.00 | 0.50× | 0.25× | – | – | pass |",
		"| pairs=2 rate=5000 | imqttd | 5000 |", // the half-rate case compares with Mosquitto at the same rate
		"| conns=1000 | imqttd | 1000 |", "| 15.00 | 3.00× | 1.50× |",
		"p2p ≥ 1.0× Mosquitto, persisted end to end, 0 lost, 0 duplicated: **not met** — imqttd 5000 msgs/s (lost 0, dup 0) vs Mosquitto 10000 msgs/s (lost 0, dup 0) = 0.50×",
		"p99 < 20 ms at half that rate: **met** — at 5000 msgs/s asked (0.50× Mosquitto's max)",
		"≤ 12 KiB per idle connection: **not met** — 15.00 KiB/conn (RSS)",
		"p2p ≥ 0.5× Mosquitto (issue 15), 0 lost, 0 duplicated: **met** — 0.50×",
		"≤ 8 KiB of Go heap+stacks per idle connection (issue 15): **met** — 7.50 KiB/conn",
		"sync ≥ 100000 msgs/s (messages=100): **met** — 150000 msgs/s",
		"### group",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("compare lacks %q:\n%s", want, out)
		}
	}
	b.Reset()
	if err := Compare(&b, nil); err != nil || !strings.Contains(b.String(), "not measured") {
		t.Fatalf("empty compare: %v\n%s", err, b.String())
	}
}

// TestCompareRSSFell: a run whose RSS fell while the connections were
// made (freed heap returned to the system) meets no memory target.
func TestCompareRSSFell(t *testing.T) {
	rs := []*Result{{Scenario: "conns", Target: LabelImqttd, Case: "conns=1000",
		Extra: map[string]float64{"conns": 1000, "server_kib_per_conn": -6.5}}}
	var b bytes.Buffer
	if err := Compare(&b, rs); err != nil {
		t.Fatal(err)
	}
	if want := "≤ 12 KiB per idle connection: not measured — RSS fell by 6.50 KiB/conn"; !strings.Contains(b.String(), want) {
		t.Errorf("compare lacks %q:\n%s", want, b.String())
	}
}
