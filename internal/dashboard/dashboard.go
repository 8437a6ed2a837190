// Package dashboard is the operators' web app, embedded in the binary and
// served at /dashboard/: plain HTML, CSS and JavaScript, no build step and
// nothing fetched from elsewhere at run time. It logs in with the admin
// token (kept in sessionStorage, sent as a Bearer token) and reads and acts
// through /v1/admin/ only, so it can do nothing the admin API does not allow.
package dashboard

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// Handler serves the dashboard; mount it at /dashboard/.
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.StripPrefix("/dashboard/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// Only our own files run; nothing may frame the page; the token is
		// never sent anywhere but this origin.
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
			"connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}
