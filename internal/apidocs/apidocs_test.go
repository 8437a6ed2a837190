package apidocs

import (
	"strings"
	"testing"
)

// TestRenderEscapes: text from the description is escaped, `code` is
// marked up, and an operation shows its fields and links its schemas.
func TestRenderEscapes(t *testing.T) {
	page, err := Render([]byte(`{"openapi":"3.1.0","info":{"title":"t","version":"1",
		"description":"<script>alert(1)</script> use ` + "`x<y`" + `"},
		"tags":[{"name":"A"}],
		"paths":{"/v1/things/{id}":{"post":{"tags":["A"],"operationId":"makeThing","summary":"Make",
			"requestBody":{"content":{"application/json":{"schema":{"type":"object","required":["n"],
				"properties":{"n":{"type":"integer","description":"how many"}}}}}},
			"responses":{"200":{"description":"ok","content":{"application/json":{"schema":{"$ref":"#/components/schemas/Thing"}}}}}}}},
		"components":{"schemas":{"Thing":{"type":"object","properties":{"id":{"type":"string"}}}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	s := string(page)
	for _, want := range []string{"&lt;script&gt;alert(1)&lt;/script&gt;", "<code>x&lt;y</code>", `id="makeThing"`,
		"<code>n</code> <span class=\"req\">required</span>", "how many", `<a href="#schema-Thing">Thing</a>`, `id="schema-Thing"`} {
		if !strings.Contains(s, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if strings.Contains(s, "<script") {
		t.Error("a script in the page")
	}
}
