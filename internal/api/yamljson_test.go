package api

import (
	"bytes"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestYAMLToJSONNumbers: an integer is written exactly, past 2^53 too, in
// the decimal JSON takes; a float as JSON writes it; an integer past int64
// or a float JSON cannot say is an error, never a changed number.
func TestYAMLToJSONNumbers(t *testing.T) {
	for in, want := range map[string]string{
		"9007199254740993":     "9007199254740993",
		"-9223372036854775808": "-9223372036854775808",
		"0x1f":                 "31",
		"500":                  "500",
		"1.5":                  "1.5",
		"1e3":                  "1000",
		"18446744073709551615": "", // YAML int beyond int64: refused, not rounded
		".inf":                 "",
	} {
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte("n: "+in), &doc); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		err := yamlToJSON(&buf, &doc)
		if want == "" {
			if err == nil {
				t.Errorf("%s: %s, want an error", in, buf.String())
			}
			continue
		}
		if got := buf.String(); err != nil || got != `{"n":`+want+`}` {
			t.Errorf("%s: %s %v, want %s", in, got, err, want)
		}
	}
}
