package api

import (
	"net/http"
	"strings"

	"github.com/imqtt/imqtt/wire"
)

// probeMethods are the methods notRoute asks the mux about, in the order
// Allow lists them.
var probeMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// notRoute answers a request under /v1/ that no route took: 405 with
// Allow when the path is a route under other methods (ServeMux would say
// so itself, but the /v1/ catch-all matches every method first), else
// 404. The server API's paths stay 404 while it is off: they are not
// routes then (serverRoutes).
func (a *API) notRoute(w http.ResponseWriter, r *http.Request) {
	if allow := a.allowed(r); len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeError(w, http.StatusMethodNotAllowed, wire.CodeMethodNotAllowed,
			r.Method+" "+r.URL.Path+": this route takes "+strings.Join(allow, ", "))
		return
	}
	writeError(w, http.StatusNotFound, wire.CodeNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
}

// allowed lists the methods the mux routes r's path under to a route of
// its own (not a catch-all).
func (a *API) allowed(r *http.Request) []string {
	var allow []string
	for _, m := range probeMethods {
		probe := *r // shallow: Handler only reads the method, host and path
		probe.Method = m
		if _, pattern := a.mux.Handler(&probe); pattern != "" && pattern != catchAll && pattern != adminCatchAll {
			allow = append(allow, m)
		}
	}
	return allow
}

// The patterns of the routes' fallbacks (notRoute): adminCatchAll's runs
// behind adminGuard.
const (
	catchAll      = "/v1/"
	adminCatchAll = "/v1/admin/"
)
