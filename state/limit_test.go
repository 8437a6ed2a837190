package state

import (
	"testing"
	"time"
)

func TestParseLimit(t *testing.T) {
	for in, want := range map[string]Limit{
		"30/m:60":  {Rate: 30, Per: time.Minute, Burst: 60},
		"50/s":     {Rate: 50, Per: time.Second, Burst: 50},
		"10/15m:3": {Rate: 10, Per: 15 * time.Minute, Burst: 3},
		"10/10m:3": {Rate: 10, Per: 10 * time.Minute, Burst: 3},
		"1/2h:1":   {Rate: 1, Per: 2 * time.Hour, Burst: 1},
		"off":      {Rate: -1},
	} {
		got, err := ParseLimit(in)
		if err != nil || got != want {
			t.Errorf("ParseLimit(%q) = %+v, %v; want %+v", in, got, err, want)
		}
		if back, err := ParseLimit(got.String()); err != nil || back != got {
			t.Errorf("%q -> %q -> %+v, %v", in, got.String(), back, err)
		}
	}
	for _, in := range []string{"", "30", "0/m", "-1/m", "3/x", "3/m:0", "3/m:x", "3/0s"} {
		if l, err := ParseLimit(in); err == nil {
			t.Errorf("ParseLimit(%q) = %+v, no error", in, l)
		}
	}
}
