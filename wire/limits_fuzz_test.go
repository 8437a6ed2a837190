package wire

import (
	"encoding/json"
	"testing"
)

// depthOf is how deeply v, decoded from JSON, nests objects and arrays.
func depthOf(v any) int {
	d := 0
	switch v := v.(type) {
	case map[string]any:
		for _, e := range v {
			d = max(d, depthOf(e))
		}
		return d + 1
	case []any:
		for _, e := range v {
			d = max(d, depthOf(e))
		}
		return d + 1
	}
	return 0
}

// FuzzCheckDepth: on valid JSON, CheckDepth refuses exactly what nests
// deeper than the bound; on anything, it does not panic.
func FuzzCheckDepth(f *testing.F) {
	for _, s := range []string{`{}`, `[[[]]]`, `{"a":"[[[["}`, `["\\",[]]`, `"\"[{"`, `{"m":{"a":[{"b":[1]}]}}`} {
		f.Add([]byte(s), 3)
	}
	f.Fuzz(func(t *testing.T, data []byte, bound int) {
		bound = bound%40 + 1
		if bound < 1 {
			bound += 40
		}
		err := CheckDepth(data, bound)
		var v any
		if json.Unmarshal(data, &v) != nil {
			return
		}
		if got := depthOf(v); (got > bound) != (err != nil) {
			t.Fatalf("depth %d, bound %d: CheckDepth = %v", got, bound, err)
		}
	})
}
