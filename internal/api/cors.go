package api

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// CORS (--cors-origins) lets a web front end on another origin call the
// API (/v1/). It is off unless origins are given. The API authenticates
// by Bearer tokens, never cookies, so no answer ever carries
// Access-Control-Allow-Credentials, and "*" (any origin) is safe to
// allow: a page elsewhere can use only a token it already holds.

// corsMaxAge is how long a browser may keep a preflight's answer.
const corsMaxAge = 10 * 60

const (
	corsMethods = "GET, HEAD, POST, PUT, PATCH, DELETE"
	corsHeaders = "Authorization, Content-Type"
	// corsExpose are the answers' headers a page may read beyond the
	// safelisted ones: rate_limited's Retry-After, media's ETag and name.
	corsExpose = "Retry-After, ETag, Content-Disposition"
)

// ParseCORSOrigins reads --cors-origins: comma-separated origins
// (scheme://host[:port], no path), or "*" alone for any; "" is off (nil).
func ParseCORSOrigins(s string) ([]string, error) {
	var origins []string
	for o := range strings.SplitSeq(s, ",") {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		if o != "*" {
			u, err := url.Parse(o)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
				(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
				return nil, fmt.Errorf("--cors-origins: %q is not an origin (scheme://host[:port], as a browser sends it), nor *", o)
			}
			o = strings.ToLower(u.Scheme + "://" + u.Host)
		}
		origins = append(origins, o)
	}
	if len(origins) > 1 && slices.Contains(origins, "*") {
		return nil, fmt.Errorf("--cors-origins: * (any origin) goes alone")
	}
	return origins, nil
}

// cors answers CORS for the API's paths: it adds the headers to an
// allowed origin's request, and answers its preflight itself (true: r is
// answered). A request of another origin gets no CORS header (so the
// browser keeps the answer from the page), and its preflight goes on to
// the routes (405: no route takes OPTIONS).
func (a *API) cors(w http.ResponseWriter, r *http.Request) bool {
	if len(a.cfg.CORSOrigins) == 0 || !strings.HasPrefix(r.URL.Path, "/v1/") {
		return false
	}
	h := w.Header()
	h.Add("Vary", "Origin") // the answer depends on it, for every cache between
	origin := r.Header.Get("Origin")
	if origin == "" || !a.corsAllowed(origin) {
		return false
	}
	if a.cfg.CORSOrigins[0] == "*" {
		h.Set("Access-Control-Allow-Origin", "*")
	} else {
		h.Set("Access-Control-Allow-Origin", origin)
	}
	if r.Method != http.MethodOptions || r.Header.Get("Access-Control-Request-Method") == "" {
		h.Set("Access-Control-Expose-Headers", corsExpose)
		return false
	}
	h.Set("Access-Control-Allow-Methods", corsMethods)
	h.Set("Access-Control-Allow-Headers", corsHeaders)
	h.Set("Access-Control-Max-Age", strconv.Itoa(corsMaxAge))
	w.WriteHeader(http.StatusNoContent)
	return true
}

func (a *API) corsAllowed(origin string) bool {
	if a.cfg.CORSOrigins[0] == "*" {
		return true
	}
	return slices.Contains(a.cfg.CORSOrigins, strings.ToLower(origin))
}
