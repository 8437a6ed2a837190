package wire

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckDepth(t *testing.T) {
	nest := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	for _, tc := range []struct {
		in   string
		deep bool
	}{
		{`{}`, false},
		{`{"a":{"b":[1,2,{"c":3}]}}`, false},
		{nest(MaxDepth), false},
		{nest(MaxDepth + 1), true},
		{`{"m":` + nest(9998) + `}`, true},
		{`"` + strings.Repeat("[", 100) + `"`, false},          // brackets inside a string
		{`["\"` + strings.Repeat("[", 100) + `"]`, false},      // after an escaped quote, still in the string
		{`["\\"` + strings.Repeat(",[", MaxDepth) + `]`, true}, // an escaped backslash ends the escape
		{strings.Repeat("{\"a\":", MaxDepth+1) + "1" + strings.Repeat("}", MaxDepth+1), true},
	} {
		err := CheckDepth([]byte(tc.in), MaxDepth)
		if (err != nil) != tc.deep {
			t.Errorf("CheckDepth(%.40q…) = %v, want deep=%v", tc.in, err, tc.deep)
		}
		if err != nil && !errors.Is(err, ErrTooDeep) {
			t.Errorf("error %v is not ErrTooDeep", err)
		}
	}
}
