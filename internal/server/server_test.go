package server

import (
	"encoding/json"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/labstack/echo/v4"
)

func TestNewRequiresEveryDependency(t *testing.T) {
	env := newTestEnv(t, nil)
	full := fullDeps(t, Deps{Config: env.cfg, Log: newLogger(&logBuffer{}), Auth: env.auth, KV: env.store, Metrics: env.metrics, Web: fstest.MapFS{"index.html": {Data: []byte("<!doctype html>")}}})
	if _, err := New(full); err != nil {
		t.Fatalf("full deps: %v", err)
	}
	for _, strip := range []func(*Deps){
		func(d *Deps) { d.Config = nil },
		func(d *Deps) { d.Log = nil },
		func(d *Deps) { d.Auth = nil },
		func(d *Deps) { d.KV = nil },
		func(d *Deps) { d.Metrics = nil },
		func(d *Deps) { d.Web = nil },
		func(d *Deps) { d.Web = fstest.MapFS{"assets/app.js": {}} },
	} {
		d := full
		strip(&d)
		if _, err := New(d); err == nil {
			t.Errorf("New accepted %+v", d)
		}
	}
}

func TestHostRouting(t *testing.T) {
	env := newTestEnv(t, nil)

	// The portal host, in any case.
	for _, host := range []string{"localhost:8080", "LocalHost:8080"} {
		r := req(http.MethodGet, "/api/me", nil)
		r.Host = host
		wantError(t, env.do(r), http.StatusUnauthorized, "unauthenticated")
	}

	// An IDE host: the proxy, which wants its cookie, with the IDE's own
	// CSP; none of the portal's routes answer there.
	for _, path := range []string{"/", "/api/me", "/auth/login", "/healthz"} {
		w := env.do(req(http.MethodGet, "http://abc.ide.localhost:8080"+path, nil))
		wantError(t, w, http.StatusUnauthorized, "unauthenticated")
		csp := w.Header().Get("Content-Security-Policy")
		if !strings.HasPrefix(csp, "frame-ancestors 'self' http://localhost:8080 "+outerOrigin+";") {
			t.Errorf("IDE CSP = %q", csp)
		}
		if w.Header().Get("X-Content-Type-Options") != "nosniff" || w.Header().Get("X-Request-Id") == "" {
			t.Errorf("IDE headers = %v", w.Header())
		}
	}
	if w := env.do(req(http.MethodPost, "http://ABC.ide.localhost:8080/anything", strings.NewReader("x"))); w.Code != http.StatusUnauthorized {
		t.Errorf("IDE POST: %d", w.Code)
	}

	// Unknown hosts, including near misses of the IDE pattern.
	for _, host := range []string{"evil.example", "a.b.ide.localhost:8080", "abc.ide.localhost:9090", "localhost:8081", "127.0.0.2:8080", ""} {
		r := req(http.MethodGet, "/api/me", nil)
		r.Host = host
		w := env.do(r)
		if w.Code != http.StatusMisdirectedRequest {
			t.Errorf("host %q: %d, want 421", host, w.Code)
			continue
		}
		if !strings.Contains(w.Body.String(), "http://localhost:8080") || w.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("host %q: 421 body %q headers %v", host, w.Body.String(), w.Header())
		}
	}

	// The host workspaces reach the gateway by (WORKSPACE_GATEWAY_URL,
	// here the local default http://127.0.0.1:8080) answers the API only.
	for path, want := range map[string]int{"/api/me": http.StatusUnauthorized, "/api/workspace/session": http.StatusUnauthorized, "/playbooks": http.StatusMisdirectedRequest, "/auth/login": http.StatusMisdirectedRequest} {
		r := req(http.MethodGet, path, nil)
		r.Host = "127.0.0.1:8080"
		if w := env.do(r); w.Code != want {
			t.Errorf("workspace API host %s: %d, want %d", path, w.Code, want)
		}
	}

	// Health checks answer on any host.
	r := req(http.MethodGet, "/healthz", nil)
	r.Host = "10.0.0.5:8080"
	if w := env.do(r); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"status":"ok"`) {
		t.Errorf("/healthz on an unknown host: %d %q", w.Code, w.Body.String())
	}
	r = req(http.MethodGet, "/readyz", nil)
	r.Host = "10.0.0.5:8080"
	if w := env.do(r); w.Code != http.StatusServiceUnavailable {
		t.Errorf("/readyz on an unknown host: %d (the issuer is down)", w.Code)
	}
}

func TestPortalHeaders(t *testing.T) {
	env := newTestEnv(t, map[string]string{"ALLOWED_FRAME_ANCESTORS": "https://outer.example.com https://other.example.com:8443"})
	for _, path := range []string{"/healthz", "/api/me", "/playbooks", "/assets/app.css", "/nope"} {
		w := env.do(req(http.MethodGet, path, nil))
		csp := w.Header().Get("Content-Security-Policy")
		for _, want := range []string{
			"frame-ancestors 'self' https://outer.example.com https://other.example.com:8443;",
			"frame-src http://*.ide.localhost:8080;",
			"form-action 'self' " + env.cfg.OIDCIssuer + ";",
			"default-src 'self';",
		} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP %q lacks %q", path, csp, want)
			}
		}
		if w.Header().Get("X-Content-Type-Options") != "nosniff" || w.Header().Get("Referrer-Policy") != "strict-origin-when-cross-origin" {
			t.Errorf("%s: headers %v", path, w.Header())
		}
		if w.Header().Get("Strict-Transport-Security") != "" {
			t.Errorf("%s: HSTS on plain http", path)
		}
	}
}

func TestPortalHeadersHTTPS(t *testing.T) {
	env := newTestEnv(t, map[string]string{
		"PUBLIC_URL":       "https://studio.example.com",
		"IDE_URL_TEMPLATE": "https://{session}.ide.example.com",
	})
	w := env.do(req(http.MethodGet, "https://studio.example.com/healthz", nil))
	if w.Header().Get("Strict-Transport-Security") == "" {
		t.Error("no HSTS on https")
	}
	if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "frame-src https://*.ide.example.com;") {
		t.Errorf("CSP = %q", csp)
	}
	w = env.do(req(http.MethodGet, "https://x1.ide.example.com/", nil))
	if w.Header().Get("Strict-Transport-Security") == "" || !strings.HasPrefix(w.Header().Get("Content-Security-Policy"), "frame-ancestors 'self' https://studio.example.com ") {
		t.Errorf("IDE host headers = %v", w.Header())
	}
	if env.auth.SessionCookieName() != "__Host-pbs_session" {
		t.Errorf("cookie name on https = %q", env.auth.SessionCookieName())
	}
}

func TestUnauthenticated(t *testing.T) {
	env := newTestEnv(t, nil)

	w := env.do(req(http.MethodGet, "/api/me", nil))
	wantError(t, w, http.StatusUnauthorized, "unauthenticated")
	var body map[string]map[string]string
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || len(body) != 1 || len(body["error"]) != 2 {
		t.Errorf("401 body = %q, want exactly {error:{code,message}}", w.Body.String())
	}

	for _, p := range []string{"/api/x", "/api/", "/api", "/api/playbooks/1"} {
		wantError(t, env.do(req(http.MethodGet, p, nil)), http.StatusUnauthorized, "unauthenticated")
	}
	wantError(t, env.do(req(http.MethodPost, "/api/x", nil)), http.StatusUnauthorized, "unauthenticated")

	// An API call with a browser's Accept still answers JSON.
	r := req(http.MethodGet, "/api/me", nil)
	r.Header.Set("Accept", "text/html")
	wantError(t, env.do(r), http.StatusUnauthorized, "unauthenticated")

	for _, p := range []string{"/", "/playbooks", "/incidents", "/incidents/x", "/integrations", "/rules", "/sessions"} {
		r := req(http.MethodGet, p, nil)
		r.Header.Set("Accept", "text/html,application/xhtml+xml")
		w := env.do(r)
		want := "/auth/login?return_to=" + url.QueryEscape(p)
		if w.Code != http.StatusFound || w.Header().Get("Location") != want {
			t.Errorf("%s: %d Location %q, want 302 %q", p, w.Code, w.Header().Get("Location"), want)
		}
		if w.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("%s: redirect Cache-Control %q", p, w.Header().Get("Cache-Control"))
		}
	}
	if loc := env.do(req(http.MethodGet, "/playbooks", nil)).Header().Get("Location"); loc != "/auth/login?return_to=%2Fplaybooks" {
		t.Errorf("Location = %q", loc)
	}

	// Assets are public: the sign-in error page uses the stylesheet.
	w = env.do(req(http.MethodGet, "/assets/app.css", nil))
	if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/css") || w.Header().Get("Cache-Control") != "no-cache" {
		t.Errorf("/assets/app.css: %d %v", w.Code, w.Header())
	}
	for _, p := range []string{"/assets/", "/assets/nope.js", "/assets/../index.html", "/assets/%2e%2e/index.html"} {
		if w := env.do(req(http.MethodGet, p, nil)); w.Code != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", p, w.Code)
		}
	}
	// Unknown portal paths are 404s, as HTML for a browser.
	r = req(http.MethodGet, "/nope", nil)
	r.Header.Set("Accept", "text/html")
	if w := env.do(r); w.Code != http.StatusNotFound || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") {
		t.Errorf("/nope: %d %q", w.Code, w.Header().Get("Content-Type"))
	}
}

func TestStateChangingRequestGuards(t *testing.T) {
	env := newTestEnv(t, nil)

	r := req(http.MethodPost, "/auth/logout", nil)
	r.Header.Set("Origin", "https://evil.example")
	wantError(t, env.do(r), http.StatusForbidden, "bad_origin")

	r = req(http.MethodPost, "/auth/logout", nil)
	r.Header.Set("Sec-Fetch-Site", "cross-site")
	wantError(t, env.do(r), http.StatusForbidden, "bad_origin")

	r = req(http.MethodPost, "/api/me", nil)
	r.Header.Set("Origin", "http://abc.ide.localhost:8080")
	wantError(t, env.do(r), http.StatusForbidden, "bad_origin")

	// From the portal itself the request goes through (no session: just
	// sent home).
	r = req(http.MethodPost, "/auth/logout", nil)
	r.Header.Set("Origin", portalOrigin)
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	if w := env.do(r); w.Code != http.StatusSeeOther || w.Header().Get("Location") != "http://localhost:8080/" {
		t.Errorf("same-origin logout: %d %q", w.Code, w.Header().Get("Location"))
	}

	// Bodies are limited to 1 MiB.
	r = req(http.MethodPost, "/auth/logout", strings.NewReader(strings.Repeat("a", 1<<20+1)))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	wantError(t, env.do(r), http.StatusRequestEntityTooLarge, "too_large")
	r = req(http.MethodPost, "/auth/logout", strings.NewReader(strings.Repeat("a", 1<<20)))
	if w := env.do(r); w.Code != http.StatusSeeOther {
		t.Errorf("a 1 MiB body: %d", w.Code)
	}
}

// The access log shows the address c.RealIP() settled on.
func TestForwardedForNeedsTrustedProxy(t *testing.T) {
	cases := []struct {
		name, trusted, peer, want string
	}{
		{"no trusted proxies", "", "192.0.2.1:5000", "192.0.2.1"},
		{"peer is a trusted proxy", "192.0.2.0/24", "192.0.2.1:5000", "203.0.113.9"},
		{"peer outside the trusted range", "10.0.0.0/8", "192.0.2.1:5000", "192.0.2.1"},
		{"loopback peer, not listed", "10.0.0.0/8", "127.0.0.1:5000", "127.0.0.1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnv(t, map[string]string{"TRUSTED_PROXIES": tc.trusted})
			r := req(http.MethodGet, "/healthz", nil)
			r.RemoteAddr = tc.peer
			r.Header.Set("X-Forwarded-For", "203.0.113.9")
			r.Header.Set("X-Request-Id", "from-the-proxy")
			w := env.do(r)
			id := w.Header().Get("X-Request-Id")
			l := env.logs.find(t, "request", map[string]any{"request_id": id, "path": "/healthz"})
			if l["remote_ip"] != tc.want {
				t.Errorf("remote_ip = %v, want %s", l["remote_ip"], tc.want)
			}
			// The incoming request id is kept exactly when the peer is trusted.
			if trusted := tc.want == "203.0.113.9"; (id == "from-the-proxy") != trusted {
				t.Errorf("request id = %q (peer trusted: %v)", id, trusted)
			}
		})
	}
}

// metricsDo sends r to the metrics listener's handler.
func (e *testEnv) metricsDo(r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	e.srv.Metrics().ServeHTTP(w, r)
	return w
}

func TestMetricsEndpoint(t *testing.T) {
	env := newTestEnv(t, nil)
	env.do(req(http.MethodGet, "/healthz", nil))
	env.do(req(http.MethodGet, "/api/me", nil))

	for _, peer := range []string{"127.0.0.1:40000", "[::1]:40000"} {
		r := req(http.MethodGet, "/metrics", nil)
		r.RemoteAddr = peer
		w := env.metricsDo(r)
		if w.Code != http.StatusOK {
			t.Fatalf("%s: %d %q", peer, w.Code, w.Body.String())
		}
		body := w.Body.String()
		for _, want := range []string{
			`gateway_http_requests_total{method="GET",route="/healthz",status="200"} 1`,
			`gateway_http_requests_total{method="GET",route="/api/me",status="401"} 1`,
			"gateway_http_request_duration_seconds_bucket",
			"go_goroutines",
		} {
			if !strings.Contains(body, want) {
				t.Errorf("%s: /metrics lacks %q", peer, want)
			}
		}
		// The public port never answers /metrics, from any peer.
		r = req(http.MethodGet, "/metrics", nil)
		r.RemoteAddr = peer
		if w := env.do(r); w.Code != http.StatusNotFound || strings.Contains(w.Body.String(), "go_goroutines") {
			t.Errorf("%s: /metrics on the public handler: %d", peer, w.Code)
		}
	}

	for _, peer := range []string{"192.0.2.1:40000", "10.0.0.1:40000"} {
		r := req(http.MethodGet, "/metrics", nil)
		r.RemoteAddr = peer
		r.Header.Set("X-Forwarded-For", "127.0.0.1")
		wantError(t, env.metricsDo(r), http.StatusForbidden, "forbidden")
	}
	// Even with the peer's proxy trusted, the forwarded address does not count.
	env = newTestEnv(t, map[string]string{"TRUSTED_PROXIES": "192.0.2.0/24"})
	r := req(http.MethodGet, "/metrics", nil)
	r.RemoteAddr = "192.0.2.1:40000"
	r.Header.Set("X-Forwarded-For", "127.0.0.1")
	wantError(t, env.metricsDo(r), http.StatusForbidden, "forbidden")
}

func TestReadyzNamesTheProvider(t *testing.T) {
	env := newTestEnv(t, nil)
	w := env.do(req(http.MethodGet, "/readyz", nil))
	if w.Code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz = %d %q", w.Code, w.Body.String())
	}
	var body struct {
		Status  string            `json:"status"`
		Failing []string          `json:"failing"`
		Checks  map[string]string `json:"checks"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if body.Status != "unavailable" || !slices.Equal(body.Failing, []string{"oidc"}) || body.Checks["kv"] != "ok" || body.Checks["oidc"] != "unavailable" {
		t.Errorf("/readyz body = %s", w.Body.String())
	}
	if w := env.do(req(http.MethodGet, "/healthz", nil)); w.Code != http.StatusOK {
		t.Errorf("/healthz = %d while the provider is down", w.Code)
	}
}

func TestErrorPagesForBrowsers(t *testing.T) {
	env := newTestEnv(t, nil)
	browser := func(target string) (int, string, string) {
		r := req(http.MethodGet, target, nil)
		r.Header.Set("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
		w := env.do(r)
		return w.Code, w.Header().Get("Content-Type"), w.Body.String()
	}
	xss := url.QueryEscape(`<script>alert(1)</script>`)
	for _, target := range []string{
		"/auth/callback?state=s&error=" + xss + "&error_description=" + xss,
		"/auth/callback?state=" + xss + "&code=" + xss,
		"/auth/callback?error=" + xss,
	} {
		status, ct, body := browser(target)
		if status < 400 || status >= 500 || !strings.HasPrefix(ct, "text/html") {
			t.Errorf("%s: %d %q", target, status, ct)
		}
		if strings.Contains(body, "<script>alert") || strings.Contains(body, "alert(1)") {
			t.Errorf("%s reflected the parameter:\n%s", target, body)
		}
		if !strings.Contains(body, `data-testid="error-message"`) {
			t.Errorf("%s: not the error page:\n%s", target, body)
		}
	}
	// Sign-in with the provider down: a page saying so, not a stack trace.
	status, ct, body := browser("/auth/login?return_to=%2Fplaybooks")
	if status != http.StatusServiceUnavailable || !strings.HasPrefix(ct, "text/html") || !strings.Contains(body, "sign-in provider does not answer") {
		t.Errorf("/auth/login with the provider down: %d %q\n%s", status, ct, body)
	}
	if strings.Contains(body, env.cfg.OIDCIssuer) {
		t.Errorf("the error page shows the internal cause:\n%s", body)
	}
	// The same for a script is JSON.
	wantError(t, env.do(req(http.MethodGet, "/auth/login", nil)), http.StatusServiceUnavailable, "provider_unavailable")
	// A HEAD request gets the status alone.
	if w := env.do(req(http.MethodHead, "/api/me", nil)); w.Code != http.StatusUnauthorized || w.Body.Len() != 0 {
		t.Errorf("HEAD /api/me: %d %q", w.Code, w.Body.String())
	}
}

func TestSignedIn(t *testing.T) {
	env := newTestEnv(t, nil)
	s := env.signIn(t, alice)

	w := env.do(s.add(req(http.MethodGet, "/api/me", nil)))
	if w.Code != http.StatusOK || w.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("/api/me: %d %v %q", w.Code, w.Header(), w.Body.String())
	}
	var me map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &me); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"id": "sub-alice", "email": "alice@example.com", "name": "Alice Anders", "tenant": "default",
		"roles": []any{"author", "automation", "admin"}, "csrfToken": s.csrf,
	}
	if len(me) != len(want) {
		t.Errorf("/api/me keys = %v, want exactly %v", me, want)
	}
	for k, v := range want {
		if got, _ := json.Marshal(me[k]); string(got) != mustJSON(t, v) {
			t.Errorf("/api/me %s = %s, want %s", k, got, mustJSON(t, v))
		}
	}
	if strings.Contains(w.Body.String(), "signature-of") {
		t.Error("/api/me leaks the ID token")
	}

	// Pages, for anyone signed in; admin-only parts are hidden client-side.
	bobs := env.signIn(t, bob)
	for _, p := range []string{"/", "/playbooks", "/incidents", "/incidents/x", "/integrations", "/rules", "/sessions"} {
		for _, sess := range []testSession{s, bobs} {
			r := sess.add(req(http.MethodGet, p, nil))
			r.Header.Set("Accept", "text/html")
			w := env.do(r)
			if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") || w.Header().Get("Cache-Control") != "no-store" {
				t.Errorf("%s: %d %v", p, w.Code, w.Header())
			}
			if !strings.Contains(w.Body.String(), "<!doctype html>") {
				t.Errorf("%s: not the portal shell", p)
			}
		}
	}

	// The access log names the user.
	env.logs.find(t, "request", map[string]any{"path": "/api/me", "user": "sub-alice", "status": float64(200)})

	// An unknown API route is a 404 once signed in.
	wantError(t, env.do(s.add(req(http.MethodGet, "/api/nope", nil))), http.StatusNotFound, "not_found")
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestLogoutNeedsCSRFToken(t *testing.T) {
	env := newTestEnv(t, nil)
	s := env.signIn(t, alice)

	wantError(t, env.do(s.add(req(http.MethodPost, "/auth/logout", nil))), http.StatusForbidden, "csrf_failed")

	r := s.add(req(http.MethodPost, "/auth/logout", nil))
	r.Header.Set("X-CSRF-Token", "wrong")
	wantError(t, env.do(r), http.StatusForbidden, "csrf_failed")

	// A browser's plain form without the token gets the HTML page.
	r = s.add(req(http.MethodPost, "/auth/logout", strings.NewReader("csrf_token=wrong")))
	r.Header.Set("Content-Type", echo.MIMEApplicationForm)
	r.Header.Set("Accept", "text/html")
	if w := env.do(r); w.Code != http.StatusForbidden || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") {
		t.Errorf("form without token: %d %q", w.Code, w.Header().Get("Content-Type"))
	}
	// Still signed in.
	if w := env.do(s.add(req(http.MethodGet, "/api/me", nil))); w.Code != http.StatusOK {
		t.Fatalf("a refused logout signed out: %d", w.Code)
	}

	// The form field is accepted.
	r = s.add(req(http.MethodPost, "/auth/logout", strings.NewReader(url.Values{"csrf_token": {s.csrf}}.Encode())))
	r.Header.Set("Content-Type", echo.MIMEApplicationForm)
	r.Header.Set("Origin", portalOrigin)
	w := env.do(r)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "http://localhost:8080/" {
		t.Fatalf("logout: %d %q %q", w.Code, w.Header().Get("Location"), w.Body.String())
	}
	cleared := false
	for _, ck := range w.Result().Cookies() {
		if ck.Name == env.auth.SessionCookieName() && ck.MaxAge < 0 && ck.Value == "" {
			cleared = true
		}
	}
	if !cleared || w.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("logout did not clear the cookie: %v", w.Header())
	}
	wantError(t, env.do(s.add(req(http.MethodGet, "/api/me", nil))), http.StatusUnauthorized, "unauthenticated")

	// The header is accepted too.
	s = env.signIn(t, bob)
	r = s.add(req(http.MethodPost, "/auth/logout", nil))
	r.Header.Set("X-CSRF-Token", s.csrf)
	if w := env.do(r); w.Code != http.StatusSeeOther {
		t.Fatalf("logout with header: %d %q", w.Code, w.Body.String())
	}
	wantError(t, env.do(s.add(req(http.MethodGet, "/api/me", nil))), http.StatusUnauthorized, "unauthenticated")
}

func TestSessionStoreDown(t *testing.T) {
	env := newTestEnv(t, nil)
	s := env.signIn(t, alice)
	files, err := fs.Sub(fstest.MapFS{"w/index.html": {Data: []byte("<!doctype html>")}}, "w")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(fullDeps(t, Deps{Config: env.cfg, Log: newLogger(env.logs), Auth: newAuth(t, failingStore{}), KV: failingStore{}, Metrics: env.metrics, Web: files}))
	if err != nil {
		t.Fatal(err)
	}
	down := &testEnv{srv: srv}
	wantError(t, down.do(s.add(req(http.MethodGet, "/api/me", nil))), http.StatusServiceUnavailable, "unavailable")
	// Without a cookie the answer is still a plain 401.
	wantError(t, down.do(req(http.MethodGet, "/api/me", nil)), http.StatusUnauthorized, "unauthenticated")
	w := down.do(req(http.MethodGet, "/readyz", nil))
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), `"kv"`) {
		t.Errorf("/readyz with the store down: %d %s", w.Code, w.Body.String())
	}
}
