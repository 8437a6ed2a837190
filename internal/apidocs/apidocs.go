// Package apidocs renders an OpenAPI 3.1 description (imqtt's
// /v1/openapi.json) as one HTML page, served at /docs/.
//
// It renders on the server with html/template, once, when the handler is
// made: the page has no script at all, so it is served under a CSP that
// allows none, and needs no CDN. A vendored renderer (Redoc's standalone
// bundle is about 1 MB of JavaScript) would bring search and collapsible
// schemas, at the price of a megabyte to review and update and a CSP that
// must allow its script; the reference is read more than searched, and
// the browser's find does the rest.
package apidocs

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"
)

//go:embed page.html
var pageHTML string

//go:embed style.css
var styleCSS []byte

// CSP is the pages' Content-Security-Policy: no script, the style sheet
// from the same origin, nothing else.
const CSP = "default-src 'none'; style-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler renders spec (OpenAPI JSON) and serves the page at / and its
// style sheet at /style.css (mount it under a prefix with
// http.StripPrefix).
func Handler(spec []byte) (http.Handler, error) {
	page, err := Render(spec)
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	h.Set("Content-Security-Policy", CSP)
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", Static("text/html; charset=utf-8", page, h))
	mux.Handle("GET /style.css", Static("text/css; charset=utf-8", styleCSS, h))
	return mux, nil
}

// Static serves body, of type typ, as a public document: cacheable for
// five minutes, with an ETag (If-None-Match answers 304), gzipped for a
// client that accepts it, nosniff, and the headers in extra.
func Static(typ string, body []byte, extra http.Header) http.Handler {
	var zipped bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&zipped, gzip.BestCompression)
	_, _ = zw.Write(body)
	_ = zw.Close()
	sum := sha256.Sum256(body)
	etag := hex.EncodeToString(sum[:12])
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		for k, v := range extra {
			h[k] = v
		}
		h.Set("Content-Type", typ)
		h.Set("Cache-Control", "public, max-age=300")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Add("Vary", "Accept-Encoding") // after Vary: Origin, which CORS may have set
		b, tag := body, `"`+etag+`"`
		if AcceptsGzip(r) {
			b, tag = zipped.Bytes(), `"`+etag+`-gz"`
			h.Set("Content-Encoding", "gzip")
		}
		h.Set("ETag", tag)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b))
	})
}

// AcceptsGzip reports whether the request's Accept-Encoding names gzip
// with a weight above 0 (gzip;q=0 refuses it).
func AcceptsGzip(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept-Encoding") {
		for part := range strings.SplitSeq(v, ",") {
			coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			if strings.EqualFold(strings.TrimSpace(coding), "gzip") {
				q := strings.ReplaceAll(params, " ", "")
				return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
			}
		}
	}
	return false
}

// Render renders spec as the reference's HTML page.
func Render(spec []byte) ([]byte, error) {
	var doc document
	if err := json.Unmarshal(spec, &doc); err != nil {
		return nil, fmt.Errorf("apidocs: %w", err)
	}
	tmpl, err := template.New("page").Funcs(template.FuncMap{"text": text, "schema": schemaText}).Parse(pageHTML)
	if err != nil {
		return nil, fmt.Errorf("apidocs: %w", err)
	}
	order, err := pathOrder(spec)
	if err != nil {
		return nil, fmt.Errorf("apidocs: %w", err)
	}
	v, err := doc.view(order)
	if err != nil {
		return nil, fmt.Errorf("apidocs: %w", err)
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, v); err != nil {
		return nil, fmt.Errorf("apidocs: %w", err)
	}
	return buf.Bytes(), nil
}

// document is what the page shows of an OpenAPI description.
type document struct {
	Info struct {
		Title       string `json:"title"`
		Version     string `json:"version"`
		Description string `json:"description"`
	} `json:"info"`
	Tags       []tag                                 `json:"tags"`
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Security   []map[string][]string                 `json:"security"`
	Excluded   []excluded                            `json:"x-excluded"`
	Components struct {
		Schemas         map[string]*schema    `json:"schemas"`
		Responses       map[string]*response  `json:"responses"`
		Parameters      map[string]*parameter `json:"parameters"`
		SecuritySchemes map[string]struct {
			Description string `json:"description"`
		} `json:"securitySchemes"`
	} `json:"components"`
}

type tag struct {
	Name        string `json:"name"`
	Description string `json:"description"`
}

type excluded struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

type operation struct {
	Tags        []string               `json:"tags"`
	Summary     string                 `json:"summary"`
	Description string                 `json:"description"`
	OperationID string                 `json:"operationId"`
	Parameters  []*parameter           `json:"parameters"`
	RequestBody *requestBody           `json:"requestBody"`
	Responses   map[string]*response   `json:"responses"`
	Security    *[]map[string][]string `json:"security"`
}

type parameter struct {
	Ref         string  `json:"$ref"`
	Name        string  `json:"name"`
	In          string  `json:"in"`
	Description string  `json:"description"`
	Required    bool    `json:"required"`
	Schema      *schema `json:"schema"`
}

type requestBody struct {
	Description string               `json:"description"`
	Required    bool                 `json:"required"`
	Content     map[string]mediaType `json:"content"`
}

type response struct {
	Ref         string               `json:"$ref"`
	Description string               `json:"description"`
	Content     map[string]mediaType `json:"content"`
}

type mediaType struct {
	Schema *schema `json:"schema"`
}

type schema struct {
	Ref                  string             `json:"$ref"`
	Type                 any                `json:"type"` // a name, or a list of them in 3.1
	Format               string             `json:"format"`
	Description          string             `json:"description"`
	Enum                 []any              `json:"enum"`
	Items                *schema            `json:"items"`
	Properties           map[string]*schema `json:"properties"`
	Required             []string           `json:"required"`
	AdditionalProperties any                `json:"additionalProperties"`
	OneOf                []*schema          `json:"oneOf"`
	AllOf                []*schema          `json:"allOf"`
}

// The page's view: operations grouped by tag, in the tags' order, each
// group in the spec's order of paths; schemas by name.
type (
	view struct {
		Title, Version, Description string
		Groups                      []group
		Security                    []named
		Schemas                     []schemaView
		Excluded                    []excluded
	}
	group struct {
		Name, Description string
		Ops               []opView
	}
	opView struct {
		ID, Method, Path, Summary, Description string
		Security                               []string // scheme names; empty: public
		Params                                 []*parameter
		Body                                   []bodyView
		BodyDescription                        string
		Responses                              []respView
	}
	bodyView struct {
		Type   string
		Schema *schema
		Props  []propView // an inline object's fields
	}
	respView struct {
		Status, Description string
		Types               []bodyView
	}
	named      struct{ Name, Description string }
	schemaView struct {
		Name   string
		Schema *schema
		Props  []propView
	}
	propView struct {
		Name     string
		Required bool
		Schema   *schema
	}
)

var methods = []string{"get", "put", "post", "patch", "delete", "head", "options"}

// pathOrder returns the paths object's keys in the order the spec has
// them (the YAML's), which the page follows within each tag.
func pathOrder(spec []byte) ([]string, error) {
	var top struct {
		Paths json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(spec, &top); err != nil || len(top.Paths) == 0 {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(top.Paths))
	if _, err := dec.Token(); err != nil { // {
		return nil, err
	}
	var keys []string
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return nil, err
		}
		keys = append(keys, k.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil, err
		}
	}
	return keys, nil
}

func (d *document) view(order []string) (view, error) {
	v := view{Title: d.Info.Title, Version: d.Info.Version, Description: d.Info.Description, Excluded: d.Excluded}
	byTag := map[string]*group{}
	for _, t := range d.Tags {
		v.Groups = append(v.Groups, group{Name: t.Name, Description: t.Description})
	}
	for i := range v.Groups {
		byTag[v.Groups[i].Name] = &v.Groups[i]
	}
	var other group
	for _, path := range order {
		item := d.Paths[path]
		var shared []*parameter
		if raw, ok := item["parameters"]; ok {
			if err := json.Unmarshal(raw, &shared); err != nil {
				return view{}, fmt.Errorf("%s: parameters: %w", path, err)
			}
		}
		for _, m := range methods {
			raw, ok := item[m]
			if !ok {
				continue
			}
			var op operation
			if err := json.Unmarshal(raw, &op); err != nil {
				return view{}, fmt.Errorf("%s %s: %w", m, path, err)
			}
			g := &other
			if len(op.Tags) > 0 && byTag[op.Tags[0]] != nil {
				g = byTag[op.Tags[0]]
			}
			g.Ops = append(g.Ops, d.opView(path, m, &op, shared))
		}
	}
	if len(other.Ops) > 0 {
		other.Name = "Other"
		v.Groups = append(v.Groups, other)
	}
	for _, name := range slices.Sorted(maps.Keys(d.Components.SecuritySchemes)) {
		v.Security = append(v.Security, named{name, d.Components.SecuritySchemes[name].Description})
	}
	for _, name := range slices.Sorted(maps.Keys(d.Components.Schemas)) {
		s := d.Components.Schemas[name]
		v.Schemas = append(v.Schemas, schemaView{Name: name, Schema: s, Props: props(s)})
	}
	return v, nil
}

func (d *document) opView(path, method string, op *operation, shared []*parameter) opView {
	o := opView{ID: cmp.Or(op.OperationID, method+path), Method: strings.ToUpper(method), Path: path,
		Summary: op.Summary, Description: op.Description}
	sec := d.Security
	if op.Security != nil {
		sec = *op.Security
	}
	for _, req := range sec {
		for name := range req {
			o.Security = append(o.Security, name)
		}
	}
	slices.Sort(o.Security)
	for _, p := range append(shared, op.Parameters...) {
		if p.Ref != "" {
			p = d.Components.Parameters[refName(p.Ref)]
		}
		if p != nil {
			o.Params = append(o.Params, p)
		}
	}
	if b := op.RequestBody; b != nil {
		o.BodyDescription = b.Description
		for _, t := range slices.Sorted(maps.Keys(b.Content)) {
			o.Body = append(o.Body, newBodyView(t, b.Content[t].Schema))
		}
	}
	for _, status := range slices.Sorted(maps.Keys(op.Responses)) {
		r := op.Responses[status]
		if r.Ref != "" {
			r = d.Components.Responses[refName(r.Ref)]
		}
		if r == nil {
			continue
		}
		rv := respView{Status: status, Description: r.Description}
		for _, t := range slices.Sorted(maps.Keys(r.Content)) {
			rv.Types = append(rv.Types, newBodyView(t, r.Content[t].Schema))
		}
		o.Responses = append(o.Responses, rv)
	}
	return o
}

// newBodyView shows a body of type t: a named schema as a link, an inline
// object with its fields (those of its allOf's inline parts too).
func newBodyView(t string, s *schema) bodyView {
	b := bodyView{Type: t, Schema: s}
	if s == nil || s.Ref != "" {
		return b
	}
	b.Props = props(s)
	for _, part := range s.AllOf {
		if part.Ref == "" {
			b.Props = append(b.Props, props(part)...)
		}
	}
	return b
}

// props lists an object schema's fields by name.
func props(s *schema) []propView {
	var out []propView
	for _, p := range slices.Sorted(maps.Keys(s.Properties)) {
		out = append(out, propView{p, slices.Contains(s.Required, p), s.Properties[p]})
	}
	return out
}

func refName(ref string) string { return ref[strings.LastIndexByte(ref, '/')+1:] }

// text renders a description: HTML-escaped, `code` in <code>, blank
// lines as paragraph breaks.
func text(s string) template.HTML {
	var b strings.Builder
	for i, para := range strings.Split(strings.TrimSpace(s), "\n\n") {
		if i > 0 {
			b.WriteString("<br><br>")
		}
		for j, part := range strings.Split(para, "`") {
			esc := template.HTMLEscapeString(part)
			if j%2 == 1 {
				b.WriteString("<code>" + esc + "</code>")
			} else {
				b.WriteString(esc)
			}
		}
	}
	return template.HTML(b.String())
}

// schemaText renders a schema in a line: a link to a named schema, a type,
// an array of something, the values of an enum.
func schemaText(s *schema) template.HTML {
	if s == nil {
		return ""
	}
	if s.Ref != "" {
		n := template.HTMLEscapeString(refName(s.Ref))
		return template.HTML(`<a href="#schema-` + n + `">` + n + `</a>`)
	}
	var parts []string
	for _, alt := range append(s.OneOf, s.AllOf...) {
		parts = append(parts, string(schemaText(alt)))
	}
	if len(parts) > 0 {
		sep := " | "
		if len(s.AllOf) > 0 {
			sep = " &amp; "
		}
		return template.HTML(strings.Join(parts, sep))
	}
	var types []string
	switch t := s.Type.(type) {
	case string:
		types = []string{t}
	case []any:
		for _, x := range t {
			types = append(types, fmt.Sprint(x))
		}
	}
	out := template.HTMLEscapeString(strings.Join(types, " | "))
	if slices.Contains(types, "array") && s.Items != nil {
		out = "array of " + string(schemaText(s.Items))
	}
	if s.Format != "" {
		out += " (" + template.HTMLEscapeString(s.Format) + ")"
	}
	if len(s.Enum) > 0 {
		vals := make([]string, len(s.Enum))
		for i, e := range s.Enum {
			b, _ := json.Marshal(e)
			vals[i] = template.HTMLEscapeString(string(b))
		}
		out += ": " + strings.Join(vals, ", ")
	}
	if out == "" {
		out = "any"
	}
	return template.HTML(out)
}
