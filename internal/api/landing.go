package api

import "net/http"

// landing is the page at /: where a person who opened the server's
// address goes next. Plain HTML: no script, no style, and a policy that
// allows none.
const landing = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>imqtt</title>
</head>
<body>
<h1>imqtt</h1>
<p>An IM server whose long connections are MQTT.</p>
<ul>
<li><a href="/chat/">Web chat</a>: sign up or log in, and chat</li>
<li><a href="/dashboard/">Dashboard</a>: for operators, with the admin token</li>
<li><a href="/docs/">API docs</a>: the HTTP API (<a href="/v1/openapi.json">OpenAPI</a>)</li>
<li><a href="/metrics">Metrics</a>: Prometheus</li>
</ul>
<p>MQTT clients connect over TCP, or over WebSocket at <code>/mqtt</code>.</p>
</body>
</html>
`

// landingRoutes serves the landing page at / alone ("/{$}"): every other
// path outside the routes keeps its 404.
func (a *API) landingRoutes() {
	a.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(landing))
	})
}
