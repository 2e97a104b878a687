package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/playbookstudio/gateway/internal/testsvc"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// Keep-alive connections of HTTP clients that outlive a test
		// (testsvc.WaitHTTP uses http.DefaultClient) end on their own.
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
	)
}

// syncBuffer collects output written from many goroutines.
type syncBuffer = testsvc.Buffer

// gateway is one run() in a goroutine.
type gateway struct {
	base   string
	stdout *syncBuffer
	stderr *syncBuffer
	cancel context.CancelFunc
	done   chan error
}

// baseEnv is what every test gateway is told; port is where it listens.
func baseEnv(t *testing.T, port int, issuer string) map[string]string {
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	return map[string]string{
		"LISTEN_ADDR":         "127.0.0.1:" + strconv.Itoa(port),
		"METRICS_ADDR":        "127.0.0.1:0",
		"PUBLIC_URL":          base,
		"IDE_URL_TEMPLATE":    "http://{session}.ide.localhost:" + strconv.Itoa(port),
		"OIDC_ISSUER":         issuer,
		"DATA_DIR":            t.TempDir(),
		"LOG_LEVEL":           "debug",
		"CODE_SERVER_BIN":     testsvc.CodeServer(t),
		"WORKSPACE_EXTENSION": testsvc.ExtensionVSIX(t),
	}
}

// startGateway runs run() until the test ends, and waits for /healthz.
// gatewayWithWorkspaces starts the dev provider and a gateway with real
// local workspaces (stopped after the test), with extra settings on top.
func gatewayWithWorkspaces(t *testing.T, extra map[string]string) (*gateway, *testsvc.DevIDP, map[string]string) {
	t.Helper()
	port := testsvc.FreePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	idp := testsvc.StartDevIDP(t, base+"/auth/callback", base+"/")
	env := baseEnv(t, port, idp.Issuer)
	env["OIDC_CLIENT_ID"], env["OIDC_CLIENT_SECRET"] = idp.ClientID, idp.ClientSecret
	env["LOG_LEVEL"] = "info"
	for k, v := range extra {
		env[k] = v
	}
	stopWorkspacesAfter(t, env["DATA_DIR"])
	return startGateway(t, env), idp, env
}

func startGateway(t *testing.T, env map[string]string) *gateway {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	g := &gateway{
		base:   env["PUBLIC_URL"],
		stdout: &syncBuffer{},
		stderr: &syncBuffer{},
		cancel: cancel,
		done:   make(chan error, 1),
	}
	go func() { g.done <- run(ctx, nil, func(k string) string { return env[k] }, g.stdout, g.stderr) }()
	t.Cleanup(func() {
		g.cancel()
		select {
		case err := <-g.done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("run did not return after cancel")
		}
	})
	wctx, wcancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer wcancel()
	if err := testsvc.WaitHTTP(wctx, g.base+"/healthz", 15*time.Second); err != nil {
		select {
		case err := <-g.done:
			t.Fatalf("run returned early: %v\nstdout:\n%s", err, g.stdout)
		default:
		}
		t.Fatalf("gateway: %v\nstdout:\n%s", err, g.stdout)
	}
	return g
}

// browser is an HTTP client with a cookie jar that follows redirects and
// remembers every URL it was sent to.
type browser struct {
	*http.Client
	mu      sync.Mutex
	visited []*url.URL
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	b := &browser{}
	b.Client = &http.Client{
		Jar:     jar,
		Timeout: 15 * time.Second,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			b.mu.Lock()
			b.visited = append(b.visited, req.URL)
			b.mu.Unlock()
			if len(via) >= 10 {
				return errors.New("too many redirects")
			}
			return nil
		},
	}
	t.Cleanup(b.CloseIdleConnections)
	return b
}

// noFollow shares the jar but hands redirects back to the test.
func (b *browser) noFollow() *http.Client {
	return &http.Client{Jar: b.Jar, Timeout: 15 * time.Second, Transport: b.Transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func (b *browser) do(t *testing.T, c *http.Client, method, u string, body io.Reader, header map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(raw)
}

func (b *browser) getJSON(t *testing.T, u string, v any) int {
	t.Helper()
	resp, body := b.do(t, b.noFollow(), http.MethodGet, u, nil, map[string]string{"Accept": "application/json"})
	if v != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal([]byte(body), v); err != nil {
			t.Fatalf("GET %s: %v in %q", u, err, body)
		}
	}
	if v != nil && resp.StatusCode != http.StatusOK {
		_ = json.Unmarshal([]byte(body), v)
	}
	return resp.StatusCode
}

var hiddenField = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// signInResult is what the test saw on the wire during sign-in.
type signInResult struct {
	code string // the authorization code the provider sent to /auth/callback
}

// signIn goes to a page, follows the gateway and the provider to the
// login form, submits it and follows everything back to the page.
func signIn(t *testing.T, b *browser, g *gateway, idp *testsvc.DevIDP, user, pass string) signInResult {
	t.Helper()
	resp, body := b.do(t, b.Client, http.MethodGet, g.base+"/playbooks", nil, nil)
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/login" || !strings.HasPrefix(resp.Request.URL.String(), idp.Issuer) {
		t.Fatalf("GET /playbooks ended at %d %s:\n%s\ngateway log:\n%s", resp.StatusCode, resp.Request.URL, body, g.stdout)
	}
	if resp.Request.URL.Query().Get("authRequestID") == "" {
		t.Fatalf("login form URL %s lacks authRequestID", resp.Request.URL)
	}
	form := url.Values{}
	for _, m := range hiddenField.FindAllStringSubmatch(body, -1) {
		form.Set(m[1], html.UnescapeString(m[2]))
	}
	if form.Get("authRequestID") == "" || form.Get("csrf") == "" {
		t.Fatalf("login form lacks its hidden fields:\n%s", body)
	}
	form.Set("username", user)
	form.Set("password", pass)

	b.mu.Lock()
	b.visited = nil
	b.mu.Unlock()
	resp, body = b.do(t, b.Client, http.MethodPost, idp.Issuer+"/login", strings.NewReader(form.Encode()),
		map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Origin": idp.Issuer})
	if resp.StatusCode != http.StatusOK || resp.Request.URL.String() != g.base+"/playbooks" {
		t.Fatalf("after the login form: %d at %s:\n%s\ngateway log:\n%s", resp.StatusCode, resp.Request.URL, body, g.stdout)
	}
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(body, "<!doctype html>") || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("/playbooks after sign-in: %v\n%s", resp.Header, body)
	}
	var res signInResult
	b.mu.Lock()
	for _, u := range b.visited {
		if u.Path == "/auth/callback" {
			res.code = u.Query().Get("code")
		}
	}
	b.mu.Unlock()
	if res.code == "" {
		t.Fatalf("no authorization code seen on the way back; visited %v", b.visited)
	}
	return res
}

type me struct {
	ID        string   `json:"id"`
	Email     string   `json:"email"`
	Name      string   `json:"name"`
	Tenant    string   `json:"tenant"`
	Roles     []string `json:"roles"`
	CSRFToken string   `json:"csrfToken"`
	Error     *struct {
		Code string `json:"code"`
	} `json:"error"`
}

func endSessionEndpoint(t *testing.T, idp *testsvc.DevIDP) string {
	t.Helper()
	resp, err := http.Get(idp.Issuer + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		EndSession string `json:"end_session_endpoint"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || doc.EndSession == "" {
		t.Fatalf("discovery: %v %+v", err, doc)
	}
	return doc.EndSession
}

func TestSignInThroughDevIDP(t *testing.T) {
	for _, store := range []string{"memory", "redis"} {
		t.Run(store, func(t *testing.T) {
			t.Parallel()
			port := testsvc.FreePort(t)
			base := "http://127.0.0.1:" + strconv.Itoa(port)
			idp := testsvc.StartDevIDP(t, base+"/auth/callback", base+"/")
			env := baseEnv(t, port, idp.Issuer)
			env["OIDC_CLIENT_ID"] = idp.ClientID
			env["OIDC_CLIENT_SECRET"] = idp.ClientSecret
			var redis *testsvc.Redis
			if store == "redis" {
				redis = testsvc.StartRedis(t)
				env["REDIS_URL"] = redis.URL
				env["SESSION_SECRET"] = "a-session-secret-of-at-least-32-bytes-" + strconv.Itoa(port)
			}
			g := startGateway(t, env)
			b := newBrowser(t)

			// Not signed in yet.
			if status := b.getJSON(t, g.base+"/api/me", nil); status != http.StatusUnauthorized {
				t.Fatalf("/api/me before sign-in: %d", status)
			}

			res := signIn(t, b, g, idp, "alice", "alice")
			var who me
			if status := b.getJSON(t, g.base+"/api/me", &who); status != http.StatusOK {
				t.Fatalf("/api/me after sign-in: %d", status)
			}
			if who.Name != "Alice Anders" || who.Email != "alice@example.com" || who.Tenant != "default" || who.ID == "" ||
				!slices.Equal(who.Roles, []string{"author", "automation", "admin"}) || who.CSRFToken == "" {
				t.Fatalf("/api/me = %+v", who)
			}
			sessionCookie := ""
			for _, ck := range b.Jar.Cookies(&url.URL{Scheme: "http", Host: "127.0.0.1:" + strconv.Itoa(port), Path: "/"}) {
				if ck.Name == "__Host-pbs_session" { // a loopback host: the prefix applies over plain http
					sessionCookie = ck.Value
				}
			}
			if sessionCookie == "" {
				t.Fatal("no __Host-pbs_session cookie in the jar")
			}

			// Sign out: the CSRF token is required, then the provider's
			// end-session endpoint is next.
			resp, _ := b.do(t, b.noFollow(), http.MethodPost, g.base+"/auth/logout", nil, map[string]string{"Origin": g.base})
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("logout without CSRF token: %d", resp.StatusCode)
			}
			resp, body := b.do(t, b.noFollow(), http.MethodPost, g.base+"/auth/logout", nil,
				map[string]string{"Origin": g.base, "X-CSRF-Token": who.CSRFToken})
			if resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("logout: %d %s", resp.StatusCode, body)
			}
			loc, err := url.Parse(resp.Header.Get("Location"))
			if err != nil {
				t.Fatal(err)
			}
			endSession := endSessionEndpoint(t, idp)
			if !strings.HasPrefix(loc.String(), endSession+"?") {
				t.Fatalf("logout went to %s, want the provider's %s", loc, endSession)
			}
			idToken := loc.Query().Get("id_token_hint")
			if strings.Count(idToken, ".") != 2 || loc.Query().Get("post_logout_redirect_uri") != g.base+"/" || loc.Query().Get("client_id") != idp.ClientID {
				t.Fatalf("end-session query = %v", loc.Query())
			}
			if status := b.getJSON(t, g.base+"/api/me", nil); status != http.StatusUnauthorized {
				t.Fatalf("/api/me after sign-out: %d", status)
			}

			if redis != nil {
				testRedisOutage(t, b, g, idp, redis)
			}

			// The log: one JSON line per request, with its id; never the
			// code, the ID token, the password or a secret.
			logs := g.stdout.String()
			checkLogs(t, logs)
			for what, secret := range map[string]string{
				"authorization code": res.code,
				"ID token":           idToken,
				"session cookie":     sessionCookie,
				"client secret":      idp.ClientSecret,
				"session secret":     env["SESSION_SECRET"],
			} {
				if secret != "" && strings.Contains(logs, secret) {
					t.Errorf("the log holds the %s", what)
				}
			}
			if strings.Contains(logs, `"alice"`) || strings.Contains(strings.ToLower(logs), "password") {
				t.Errorf("the log holds the password:\n%s", logs)
			}
		})
	}
}

// testRedisOutage stops Redis under a signed-in session and starts it
// again.
func testRedisOutage(t *testing.T, b *browser, g *gateway, idp *testsvc.DevIDP, redis *testsvc.Redis) {
	t.Helper()
	signIn(t, b, g, idp, "alice", "alice")
	if status := b.getJSON(t, g.base+"/api/me", nil); status != http.StatusOK {
		t.Fatalf("/api/me after the second sign-in: %d", status)
	}

	redis.Stop()
	var who me
	if status := b.getJSON(t, g.base+"/api/me", &who); status != http.StatusServiceUnavailable || who.Error == nil || who.Error.Code != "unavailable" {
		t.Fatalf("/api/me with Redis down: %d %+v, want 503 unavailable", status, who.Error)
	}
	// Probes send no cookies. (With the session cookie, every portal route,
	// /healthz and /readyz included, answers the session middleware's 503.)
	probe := newBrowser(t)
	var ready struct {
		Status  string   `json:"status"`
		Failing []string `json:"failing"`
	}
	if status := probe.getJSON(t, g.base+"/readyz", &ready); status != http.StatusServiceUnavailable || ready.Status != "unavailable" || !slices.Equal(ready.Failing, []string{"kv"}) {
		t.Fatalf("/readyz with Redis down: %d %+v", status, ready)
	}
	if status := probe.getJSON(t, g.base+"/healthz", nil); status != http.StatusOK {
		t.Fatalf("/healthz with Redis down: %d", status)
	}

	redis.Restart()
	deadline := time.Now().Add(10 * time.Second)
	for probe.getJSON(t, g.base+"/readyz", nil) != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("/readyz did not recover after Redis came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Redis kept nothing, so the session is gone: signed out, not an error.
	if status := b.getJSON(t, g.base+"/api/me", nil); status != http.StatusUnauthorized {
		t.Fatalf("/api/me after Redis restarted empty: %d, want 401", status)
	}
}

// checkLogs asserts that stdout is JSON lines and every request line has
// a request id.
func checkLogs(t *testing.T, logs string) {
	t.Helper()
	requests := 0
	paths := map[string]bool{}
	s := bufio.NewScanner(strings.NewReader(logs))
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		var l map[string]any
		if err := json.Unmarshal(s.Bytes(), &l); err != nil {
			t.Fatalf("log line is not JSON: %q", s.Text())
		}
		if l["msg"] != "request" {
			continue
		}
		requests++
		if id, _ := l["request_id"].(string); id == "" {
			t.Errorf("request line without request_id: %s", s.Text())
		}
		p, _ := l["path"].(string)
		paths[p] = true
		if strings.Contains(p, "?") {
			t.Errorf("request line with a query: %s", s.Text())
		}
	}
	for _, p := range []string{"/healthz", "/playbooks", "/auth/login", "/auth/callback", "/api/me", "/auth/logout"} {
		if !paths[p] {
			t.Errorf("no request line for %s", p)
		}
	}
	if requests < 6 {
		t.Errorf("only %d request lines", requests)
	}
}

func TestConfigErrorsStopStart(t *testing.T) {
	port := testsvc.FreePort(t)
	env := baseEnv(t, port, "http://127.0.0.1:1")
	env["LOG_LEVEL"] = "loud"
	env["MAX_CONCURRENT_SPAWNS"] = "0"
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(context.Background(), nil, func(k string) string { return env[k] }, &stdout, &stderr)
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "LOG_LEVEL") || !strings.Contains(err.Error(), "MAX_CONCURRENT_SPAWNS") {
			t.Fatalf("run = %v, want an error naming LOG_LEVEL and MAX_CONCURRENT_SPAWNS", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("run started despite a bad configuration")
	}
	if c, err := net.DialTimeout("tcp", env["LISTEN_ADDR"], 200*time.Millisecond); err == nil {
		c.Close()
		t.Error("something listens on LISTEN_ADDR after a configuration error")
	}
	if stdout.String() != "" {
		t.Errorf("stdout = %q", stdout.String())
	}

	// Flags are checked the same way.
	err := run(context.Background(), []string{"-session-secret=short"}, func(k string) string { return env[k] }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "SESSION_SECRET") {
		t.Errorf("bad flag: %v", err)
	}
	err = run(context.Background(), []string{"-no-such-flag"}, func(string) string { return "" }, io.Discard, io.Discard)
	if err == nil {
		t.Error("an unknown flag was accepted")
	}
}

func TestListenAddrInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	env := baseEnv(t, port, "http://127.0.0.1:1")
	err = run(context.Background(), nil, func(k string) string { return env[k] }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "LISTEN_ADDR") {
		t.Fatalf("run = %v, want an error naming LISTEN_ADDR", err)
	}
}

func TestGracefulShutdown(t *testing.T) {
	port := testsvc.FreePort(t)
	env := baseEnv(t, port, "http://127.0.0.1:"+strconv.Itoa(testsvc.FreePort(t)))
	env["LOG_LEVEL"] = "info"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout syncBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, func(k string) string { return env[k] }, &stdout, io.Discard) }()
	base := env["PUBLIC_URL"]
	if err := testsvc.WaitHTTP(ctx, base+"/healthz", 15*time.Second); err != nil {
		t.Fatal(err)
	}
	// The provider is down: the gateway runs anyway and says so.
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), `"failing":["oidc"]`) {
		t.Errorf("/readyz = %d %s", resp.StatusCode, body)
	}
	http.DefaultClient.CloseIdleConnections()

	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run after cancel = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("run did not return within 5 s of cancel")
	}
	t.Logf("shut down in %v", time.Since(start))
	logs := stdout.String()
	for _, want := range []string{`"msg":"gateway listening"`, `"msg":"shutting down"`, `"msg":"stopped"`, `"store":"memory"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %s:\n%s", want, logs)
		}
	}
	if c, err := net.DialTimeout("tcp", env["LISTEN_ADDR"], 200*time.Millisecond); err == nil {
		c.Close()
		t.Error("still listening after shutdown")
	}
}
