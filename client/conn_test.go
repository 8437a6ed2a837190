package client

import (
	"testing"
	"time"
)

func TestPickBroker(t *testing.T) {
	cases := []struct {
		server  string
		eps     []string
		attempt int
		want    string
	}{
		{"http://127.0.0.1:8080", nil, 0, "127.0.0.1:1883"},
		{"https://im.example.com", nil, 3, "im.example.com:1883"},
		{"http://[::1]:8080", nil, 0, "[::1]:1883"},
		{"http://im.example.com:8080", []string{"10.0.0.5:1883", "10.0.0.6:1883"}, 0, "10.0.0.5:1883"},
		{"http://im.example.com:8080", []string{"10.0.0.5:1883", "10.0.0.6:1883"}, 1, "10.0.0.6:1883"},
		{"http://im.example.com:8080", []string{"10.0.0.5:1883", "10.0.0.6:1883"}, 2, "10.0.0.5:1883"},
		{"http://im.example.com:8080", []string{":41883"}, 0, "im.example.com:41883"},
		{"http://im.example.com:8080", []string{"0.0.0.0:1883"}, 0, "im.example.com:1883"},
		{"http://im.example.com:8080", []string{"[::]:1883"}, 0, "im.example.com:1883"},
		{"http://im.example.com:8080", []string{"ssl://mq.example.com:8883"}, 0, "ssl://mq.example.com:8883"},
	}
	for _, c := range cases {
		got, err := PickBroker(c.server, c.eps, c.attempt)
		if err != nil || got != c.want {
			t.Errorf("PickBroker(%q, %q, %d) = %q, %v; want %q", c.server, c.eps, c.attempt, got, err, c.want)
		}
	}
	if _, err := PickBroker("", nil, 0); err == nil {
		t.Error("no server and no endpoints gave an address")
	}
	if _, err := PickBroker("http://x", []string{"nonsense"}, 0); err == nil {
		t.Error("a malformed endpoint gave an address")
	}
}

func TestJitteredBackoff(t *testing.T) {
	lo, hi := 250*time.Millisecond, 8*time.Second
	for n, full := range []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second} {
		if got := jitteredBackoff(lo, hi, n, 0); got != full/2 {
			t.Errorf("attempt %d, r=0: %v, want %v", n, got, full/2)
		}
		if got := jitteredBackoff(lo, hi, n, 0.999999); got < full*99/100 || got > full {
			t.Errorf("attempt %d, r≈1: %v, want about %v", n, got, full)
		}
	}
	if got := jitteredBackoff(lo, hi, 1000, 0.5); got > hi {
		t.Errorf("attempt 1000: %v over the cap", got)
	}
}
