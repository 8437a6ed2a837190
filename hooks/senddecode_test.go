package hooks

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/imqtt/imqtt/wire"
)

// decodeSendJSON is DecodeSend as it was before decodeSendFast: wire's
// encoding/json decoding alone, the reference.
func decodeSendJSON(payload []byte) (req wire.Send, e *wire.Error, limit string) {
	if e, limit := wire.DecodeRequest("send", payload, &req); e != nil {
		return wire.Send{}, e, limit
	}
	return req, nil, ""
}

// sameAsJSON fails unless DecodeSend gives exactly what encoding/json
// does (value, error event, limit), and unless whatever the fast path
// accepted plain encoding/json accepts with the same value. It returns
// whether the fast path took the payload.
func sameAsJSON(t *testing.T, payload []byte) bool {
	t.Helper()
	req, e, limit := DecodeSend(payload)
	wantReq, wantE, wantLimit := decodeSendJSON(payload)
	if !reflect.DeepEqual(req, wantReq) || !reflect.DeepEqual(e, wantE) || limit != wantLimit {
		t.Fatalf("DecodeSend(%.300q) = %+v, %+v, %q; encoding/json: %+v, %+v, %q", payload, req, e, limit, wantReq, wantE, wantLimit)
	}
	fast, ok := decodeSendFast(payload)
	if !ok {
		return false
	}
	var std wire.Send
	if err := json.Unmarshal(payload, &std); err != nil {
		t.Fatalf("fast path accepted %.300q, encoding/json refuses: %v", payload, err)
	}
	if !reflect.DeepEqual(fast, std) {
		t.Fatalf("fast path decoded %.300q as %+v, encoding/json as %+v", payload, fast, std)
	}
	return true
}

// TestDecodeSendFast: each payload decodes as encoding/json decodes it;
// fast says which path the common shapes take, and that the edges of
// JSON go to encoding/json.
func TestDecodeSendFast(t *testing.T) {
	huge := strings.Repeat("x", 200<<10)
	deep := strings.Repeat(`{"a":`, 100) + "1" + strings.Repeat("}", 100)
	for _, c := range []struct {
		name, payload string
		fast          bool
	}{
		{"plain", `{"cmid":"c-1","to":"bob","type":"text","body":"hi"}`, true},
		{"group and media", `{"cmid":"c-2","group":"g1","type":"image","body":"","media":"m-8f2"}`, true},
		{"whitespace", " \t\r\n{ \"cmid\" : \"c\" ,\n\"body\":\"b\" } \n", true},
		{"empty object", `{}`, true},
		{"simple escapes", `{"cmid":"c","body":"a\"b\\c\/d\b\f\n\r\te"}`, true},
		{"utf-8", `{"cmid":"c","body":"héllo 世界 😀"}`, true},
		{"duplicate key, last wins", `{"cmid":"a","body":"x","cmid":"b"}`, true},
		{"huge string", `{"cmid":"c","body":"` + huge + `"}`, true},
		{"unicode escape", `{"cmid":"c","body":"\u00e9\ud83d\ude00"}`, false},
		{"lone surrogate escape", `{"cmid":"c","body":"\ud800"}`, false},
		{"unicode escape in key", `{"\u0063mid":"c"}`, false},
		{"invalid utf-8", "{\"cmid\":\"c\",\"body\":\"a\xffb\"}", false},
		{"invalid utf-8 truncated", "{\"cmid\":\"c\",\"body\":\"a\xe4\xb8\"}", false},
		{"utf-8 surrogate", "{\"cmid\":\"c\",\"body\":\"\xed\xa0\x80\"}", false},
		{"invalid utf-8 in key", "{\"cm\xffid\":\"c\"}", false},
		{"control character", "{\"cmid\":\"c\",\"body\":\"a\nb\"}", false},
		{"unknown escape", `{"cmid":"c","body":"\x41"}`, false},
		{"key in another case", `{"CMID":"c","Body":"b"}`, false},
		{"kelvin sign key", `{"cmid":"c","\u212aey":"v"}`, false},
		{"unknown member", `{"cmid":"c","extra":"x"}`, false},
		{"unknown member not a string", `{"cmid":"c","extra":[1,{"a":null}]}`, false},
		{"meta", `{"cmid":"c","meta":{"w":800}}`, false},
		{"meta null", `{"cmid":"c","meta":null}`, false},
		{"null value", `{"cmid":"c","body":null}`, false},
		{"duplicate then null", `{"cmid":"c","cmid":null}`, false},
		{"number for a string", `{"cmid":1}`, false},
		{"number out of range", `{"cmid":"c","x":1e999}`, false},
		{"bool", `{"cmid":true}`, false},
		{"trailing data", `{"cmid":"c"}x`, false},
		{"two objects", `{"cmid":"c"}{}`, false},
		{"trailing comma", `{"cmid":"c",}`, false},
		{"missing colon", `{"cmid" "c"}`, false},
		{"unterminated string", `{"cmid":"c`, false},
		{"unterminated object", `{"cmid":"c"`, false},
		{"backslash at end", `{"cmid":"c\`, false},
		{"single quotes", `{'cmid':'c'}`, false},
		{"top-level null", `null`, false},
		{"top-level string", `"x"`, false},
		{"array", `[]`, false},
		{"empty", ``, false},
		{"byte order mark", "\xef\xbb\xbf{\"cmid\":\"c\"}", false},
		{"nested too deep", deep, false},
		{"deep in an unknown member", `{"cmid":"c","x":` + deep + `}`, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if fast := sameAsJSON(t, []byte(c.payload)); fast != c.fast {
				t.Errorf("fast path took it: %v, want %v", fast, c.fast)
			}
		})
	}
}

// TestDecodeSendFastShares: the values of an unescaped payload share one
// copy of it, which outlives the payload's buffer (mochi reuses it).
func TestDecodeSendFastShares(t *testing.T) {
	payload := []byte(`{"cmid":"c-1","to":"bob","type":"text","body":"hi"}`)
	req, ok := decodeSendFast(payload)
	if !ok {
		t.Fatal("fast path refused a plain send")
	}
	for i := range payload {
		payload[i] = 'X'
	}
	if req.CMID != "c-1" || req.To != "bob" || req.Type != "text" || req.Body != "hi" {
		t.Fatalf("values changed with the payload's buffer: %+v", req)
	}
}

// FuzzDecodeSendFast: DecodeSend (the fast path, else encoding/json)
// accepts and refuses exactly what encoding/json does, with the same
// values and error events. Seeds: testdata/fuzz/FuzzDecodeSendFast/.
func FuzzDecodeSendFast(f *testing.F) {
	for _, s := range []string{
		`{"cmid":"c-1","to":"bob","type":"text","body":"hi"}`,
		`{"cmid":"c","body":"a\"b\\c\/d\b\f\n\r\te","media":"m"}`,
		`{"cmid":"a","cmid":"b","group":"g"}`,
		"{\"cmid\":\"c\",\"body\":\"h\xc3\xa9\xff\"}",
		`{"CMID":"c","body":"\u00e9","meta":{"a":[1,2]}}`,
		` {"cmid" : "c" } `,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		sameAsJSON(t, payload)
	})
}

// BenchmarkDecodeSend: an ordinary im/send payload by DecodeSend (the fast
// path) and by encoding/json (wire.DecodeRequest, as before).
func BenchmarkDecodeSend(b *testing.B) {
	payload := []byte(`{"cmid":"bench-12-345678","to":"user0007","type":"text","body":"` + strings.Repeat("x", 64) + `"}`)
	for _, c := range []struct {
		name string
		fn   func([]byte) (wire.Send, *wire.Error, string)
	}{{"decoder=fast", DecodeSend}, {"decoder=encoding-json", decodeSendJSON}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(payload)))
			for b.Loop() {
				if _, e, _ := c.fn(payload); e != nil {
					b.Fatal(e)
				}
			}
		})
	}
}
