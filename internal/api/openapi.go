package api

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"

	"go.yaml.in/yaml/v3"

	"github.com/imqtt/imqtt/internal/apidocs"
	"github.com/imqtt/imqtt/internal/version"
	"github.com/imqtt/imqtt/wire"
)

// The OpenAPI 3.1 description of this API is hand-written YAML
// (openapi.yaml, beside this file), served as JSON at GET /v1/openapi.json
// and rendered as HTML at /docs/ (internal/apidocs). openapi_test.go
// validates it with getkin/kin-openapi and holds it against the routes the
// API registers (routeMux), so a route added without its description, or a
// description left behind by a removed route, fails the test by name.

//go:embed openapi.yaml
var openapiYAML []byte

// OpenAPI returns the description as JSON, with info.version set to this
// build's. The YAML is checked by the tests, so an error here is a broken
// build, not a runtime condition.
var OpenAPI = sync.OnceValues(func() ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(openapiYAML, &doc); err != nil {
		return nil, fmt.Errorf("openapi.yaml: %w", err)
	}
	var buf bytes.Buffer
	if err := yamlToJSON(&buf, &doc); err != nil {
		return nil, fmt.Errorf("openapi.yaml: %w", err)
	}
	if !json.Valid(buf.Bytes()) {
		return nil, fmt.Errorf("openapi.yaml: not valid as JSON")
	}
	return setInfoVersion(buf.Bytes(), version.Get().Short())
})

// setInfoVersion replaces the placeholder version of the YAML's info
// object ("0") with v, keeping every key where the YAML put it.
func setInfoVersion(spec []byte, v string) ([]byte, error) {
	q, _ := json.Marshal(v)
	const placeholder = `"version":"0"`
	if bytes.Count(spec, []byte(placeholder)) != 1 {
		return nil, fmt.Errorf("openapi.yaml: want exactly one %s (info.version)", placeholder)
	}
	return bytes.Replace(spec, []byte(placeholder), append([]byte(`"version":`), q...), 1), nil
}

// yamlToJSON writes a YAML node as JSON, keeping the mappings' key order
// (which the rendered reference follows). Only what JSON can say is
// allowed: string keys, no aliases, no tags but the core schema's.
func yamlToJSON(buf *bytes.Buffer, n *yaml.Node) error {
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) != 1 {
			return fmt.Errorf("line %d: want one document", n.Line)
		}
		return yamlToJSON(buf, n.Content[0])
	case yaml.MappingNode:
		buf.WriteByte('{')
		for i := 0; i < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode || k.Tag != "!!str" {
				return fmt.Errorf("line %d: a key must be a string", k.Line)
			}
			if i > 0 {
				buf.WriteByte(',')
			}
			writeJSONString(buf, k.Value)
			buf.WriteByte(':')
			if err := yamlToJSON(buf, v); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
	case yaml.SequenceNode:
		buf.WriteByte('[')
		for i, v := range n.Content {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := yamlToJSON(buf, v); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!str":
			writeJSONString(buf, n.Value)
		case "!!int": // read as YAML reads it (0x1f, 1_000), exact past 2^53
			var i int64
			if err := n.Decode(&i); err != nil {
				return fmt.Errorf("line %d: integer %q: %w", n.Line, n.Value, err)
			}
			buf.WriteString(strconv.FormatInt(i, 10))
		case "!!float":
			var f float64
			if err := n.Decode(&f); err != nil {
				return fmt.Errorf("line %d: number %q: %w", n.Line, n.Value, err)
			}
			b, err := json.Marshal(f)
			if err != nil { // .inf, .nan
				return fmt.Errorf("line %d: number %q has no JSON form", n.Line, n.Value)
			}
			buf.Write(b)
		case "!!bool":
			var b bool
			if err := n.Decode(&b); err != nil {
				return fmt.Errorf("line %d: %w", n.Line, err)
			}
			buf.WriteString(strconv.FormatBool(b))
		case "!!null":
			buf.WriteString("null")
		default:
			return fmt.Errorf("line %d: tag %s has no JSON form", n.Line, n.Tag)
		}
	default:
		return fmt.Errorf("line %d: aliases and anchors are not used in openapi.yaml", n.Line)
	}
	return nil
}

func writeJSONString(buf *bytes.Buffer, s string) {
	b, _ := json.Marshal(s)
	buf.Write(b)
}

// routeMux is the API's ServeMux, remembering each pattern registered on
// it: every route of the API is registered through a.mux, so Routes is
// the whole list.
type routeMux struct {
	*http.ServeMux
	patterns []string
}

func newRouteMux() *routeMux { return &routeMux{ServeMux: http.NewServeMux()} }

// Handle registers h for pattern and records the pattern.
func (m *routeMux) Handle(pattern string, h http.Handler) {
	m.patterns = append(m.patterns, pattern)
	m.ServeMux.Handle(pattern, h)
}

// HandleFunc registers h for pattern and records the pattern.
func (m *routeMux) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request)) {
	m.Handle(pattern, http.HandlerFunc(h))
}

// Routes returns the ServeMux patterns the API registered ("GET
// /v1/sync", "/mqtt", ...), in the order they were registered.
func (a *API) Routes() []string { return append([]string(nil), a.mux.patterns...) }

// openapiRoutes serves the description (public: it tells nothing that the
// routes themselves do not) and its rendering at /docs/.
func (a *API) openapiRoutes() {
	h, err := docHandlers()
	if err != nil { // a broken build: answer so, and let the tests say why
		a.log.Error("openapi", "err", err)
		broken := func(w http.ResponseWriter, r *http.Request) {
			writeError(w, http.StatusInternalServerError, wire.CodeInternal, "the API description does not load")
		}
		h = docs{spec: http.HandlerFunc(broken), page: http.HandlerFunc(broken)}
	}
	a.mux.Handle("GET /v1/openapi.json", h.spec)
	a.mux.Handle("GET /docs/", h.page)
	a.mux.Handle("GET /docs", http.RedirectHandler("/docs/", http.StatusMovedPermanently))
}

// docs are the handlers of /v1/openapi.json and /docs/.
type docs struct{ spec, page http.Handler }

// docHandlers makes them once per process: rendering and compressing take
// milliseconds, and every API serves the same bytes.
var docHandlers = sync.OnceValues(func() (docs, error) {
	spec, err := OpenAPI()
	if err != nil {
		return docs{}, err
	}
	page, err := apidocs.Handler(spec)
	if err != nil {
		return docs{}, err
	}
	return docs{spec: apidocs.Static("application/json", spec, nil), page: http.StripPrefix("/docs", page)}, nil
})
