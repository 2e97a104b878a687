package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"go.uber.org/goleak"

	"github.com/playbookstudio/gateway/internal/apierror"
	"github.com/playbookstudio/gateway/internal/audit"
	"github.com/playbookstudio/gateway/internal/auth"
	"github.com/playbookstudio/gateway/internal/config"
	"github.com/playbookstudio/gateway/internal/editlock"
	"github.com/playbookstudio/gateway/internal/editsession"
	"github.com/playbookstudio/gateway/internal/ideproxy"
	"github.com/playbookstudio/gateway/internal/integration"
	"github.com/playbookstudio/gateway/internal/kv"
	"github.com/playbookstudio/gateway/internal/llm"
	"github.com/playbookstudio/gateway/internal/metrics"
	"github.com/playbookstudio/gateway/internal/playbook"
	"github.com/playbookstudio/gateway/internal/testsvc"
	"github.com/playbookstudio/gateway/internal/workspace"
	"github.com/playbookstudio/gateway/internal/workspace/workspacetest"
	"github.com/playbookstudio/gateway/web"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	portalHost   = "localhost:8080"
	portalOrigin = "http://localhost:8080"
	outerOrigin  = "https://outer.example.com"
)

// logBuffer collects JSON log lines from concurrent writers.
type logBuffer struct{ testsvc.Buffer }

// lines decodes every JSON log line.
func (b *logBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	s := bufio.NewScanner(strings.NewReader(b.String()))
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		var m map[string]any
		if err := json.Unmarshal(s.Bytes(), &m); err != nil {
			t.Fatalf("log line is not JSON: %q: %v", s.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

// find returns the first log line with msg whose fields include want.
func (b *logBuffer) find(t *testing.T, msg string, want map[string]any) map[string]any {
	t.Helper()
next:
	for _, l := range b.lines(t) {
		if l["msg"] != msg {
			continue
		}
		for k, v := range want {
			if l[k] != v {
				continue next
			}
		}
		return l
	}
	t.Fatalf("no %q log line with %v in:\n%s", msg, want, b.String())
	return nil
}

func newLogger(b *logBuffer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// testEnv is a whole server built the way cmd/gateway builds it, with an
// OpenID provider address where nothing listens.
type testEnv struct {
	srv     *Server
	cfg     *config.Config
	auth    *auth.Auth
	store   *kv.Memory
	metrics *metrics.Metrics
	logs    *logBuffer
	// playbooks is the server's store, for tests that save versions
	// without a workspace.
	playbooks playbook.Store
	// deps are what the server was built with.
	deps Deps
}

func newTestEnv(t *testing.T, env map[string]string) *testEnv {
	t.Helper()
	return newTestEnvWith(t, env, nil)
}

// newTestEnvWith is newTestEnv with deps adjusted by tweak before the
// server is built (nil: none).
func newTestEnvWith(t *testing.T, env map[string]string, tweak func(*Deps)) *testEnv {
	t.Helper()
	vars := map[string]string{
		"OIDC_ISSUER":             "http://127.0.0.1:" + strconv.Itoa(testsvc.FreePort(t)),
		"ALLOWED_FRAME_ANCESTORS": outerOrigin,
		"DATA_DIR":                t.TempDir(),
		"PUBLIC_URL":              portalOrigin,
		"IDE_URL_TEMPLATE":        "http://{session}.ide.localhost:8080",
	}
	for k, v := range env {
		vars[k] = v
	}
	cfg, err := config.Load(nil, func(k string) string { return vars[k] }, io.Discard)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	logs := &logBuffer{}
	log := newLogger(logs)
	store := kv.NewMemory(nil)
	a, err := auth.New(auth.Options{
		Issuer:       cfg.OIDCIssuer,
		ClientID:     cfg.OIDCClientID,
		ClientSecret: cfg.OIDCClientSecret,
		Scopes:       cfg.OIDCScopes,
		PublicURL:    cfg.PublicURL,
		Mapping: auth.ClaimMapping{
			DefaultTenant: cfg.OIDCDefaultTenant,
			RolesClaim:    cfg.OIDCRolesClaim,
			RoleMap:       cfg.OIDCRoleMap,
		},
		SessionMaxAge: cfg.SessionMaxAge,
		Secret:        bytes.Repeat([]byte("k"), 32),
		HTTPClient:    &http.Client{Timeout: 2 * time.Second},
	}, store, log)
	if err != nil {
		t.Fatalf("auth: %v", err)
	}
	files, err := web.Static()
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New()
	deps := fullDeps(t, Deps{Config: cfg, Log: log, Auth: a, KV: store, Metrics: m, Web: files})
	if tweak != nil {
		tweak(&deps)
	}
	srv, err := New(deps)
	if err != nil {
		t.Fatalf("server: %v", err)
	}
	return &testEnv{srv: srv, cfg: cfg, auth: a, store: store, metrics: m, logs: logs, playbooks: deps.Playbooks, deps: deps}
}

// do serves one request in process.
func (e *testEnv) do(r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	e.srv.ServeHTTP(w, r)
	return w
}

// req builds a request to the portal (or to the host in target, if it is
// absolute) from the default peer 192.0.2.1.
func req(method, target string, body io.Reader) *http.Request {
	if strings.HasPrefix(target, "/") {
		target = portalOrigin + target
	}
	return httptest.NewRequest(method, target, body)
}

// testSession is a signed-in portal session written straight into the
// store, under the key auth uses.
type testSession struct {
	cookie *http.Cookie
	csrf   string
	token  string
}

func (s testSession) add(r *http.Request) *http.Request {
	r.AddCookie(s.cookie)
	return r
}

var (
	alice = auth.Identity{ID: "sub-alice", Email: "alice@example.com", Name: "Alice Anders", Tenant: "default", Roles: []string{"author", "automation", "admin"}}
	bob   = auth.Identity{ID: "sub-bob", Email: "bob@example.com", Name: "Bob Berg", Tenant: "default", Roles: []string{"author"}}
)

func putSession(t *testing.T, store kv.Store, cookieName string, id auth.Identity, expiresIn time.Duration) testSession {
	t.Helper()
	token := "tok-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-" + id.ID
	csrf := "csrf-" + token
	now := time.Now()
	raw, err := json.Marshal(auth.Session{
		Identity:  id,
		CSRFToken: csrf,
		IDToken:   "header.payload.signature-of-" + id.ID,
		CreatedAt: now.UTC(),
		ExpiresAt: now.Add(expiresIn).UTC(),
	})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(token))
	if err := store.Set(context.Background(), "portal-session:"+hex.EncodeToString(sum[:]), raw, time.Hour); err != nil {
		t.Fatal(err)
	}
	return testSession{cookie: &http.Cookie{Name: cookieName, Value: token}, csrf: csrf, token: token}
}

func (e *testEnv) signIn(t *testing.T, id auth.Identity) testSession {
	t.Helper()
	return putSession(t, e.store, e.auth.SessionCookieName(), id, time.Hour)
}

// apiError decodes {"error":{"code","message"}} and checks its shape.
func apiError(t *testing.T, w *httptest.ResponseRecorder) (code, message string) {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("error Content-Type = %q, want JSON; body %q", ct, w.Body.String())
	}
	var body struct {
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error == nil {
		t.Fatalf("error body %q is not {\"error\":{…}}: %v", w.Body.String(), err)
	}
	if body.Error.Code == "" || body.Error.Message == "" {
		t.Fatalf("error body %q lacks code or message", w.Body.String())
	}
	return body.Error.Code, body.Error.Message
}

func wantError(t *testing.T, w *httptest.ResponseRecorder, status int, code string) {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status = %d, want %d; body %q", w.Code, status, w.Body.String())
	}
	if got, _ := apiError(t, w); got != code {
		t.Fatalf("code = %q, want %q", got, code)
	}
}

// failingStore is a kv.Store whose every call fails, like a Redis that
// has gone away.
type failingStore struct{}

var errStoreDown = errors.New("kv: redis: dial tcp 127.0.0.1:6379: connect: connection refused")

func (failingStore) Get(context.Context, string) ([]byte, error) { return nil, errStoreDown }
func (failingStore) Set(context.Context, string, []byte, time.Duration) error {
	return errStoreDown
}
func (failingStore) Take(context.Context, string) ([]byte, error) { return nil, errStoreDown }
func (failingStore) Delete(context.Context, string) error         { return errStoreDown }
func (failingStore) Ping(context.Context) error                   { return errStoreDown }
func (failingStore) Name() string                                 { return "failing" }
func (failingStore) Close() error                                 { return nil }

// codeOf returns the status and public code of an error a middleware
// returned.
func codeOf(t *testing.T, err error) (int, string) {
	t.Helper()
	var he *echo.HTTPError
	if !errors.As(err, &he) {
		t.Fatalf("error %v (%T) is not an *echo.HTTPError", err, err)
	}
	return he.Code, apierror.FromHTTPError(he).Code
}

// ok is a handler that answers 200 "ok".
func ok(c echo.Context) error { return c.String(http.StatusOK, "ok") }

// mustNets parses CIDRs.
func mustNets(t *testing.T, cidrs ...string) []*net.IPNet {
	t.Helper()
	var out []*net.IPNet
	for _, c := range cidrs {
		_, n, err := net.ParseCIDR(c)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	return out
}

func testWorkspaces(t *testing.T, store kv.Store) *workspace.Manager {
	t.Helper()
	m, err := workspace.NewManager(workspace.Config{IdleTimeout: time.Hour, MaxConcurrentSpawns: 2, GatewayURL: "http://127.0.0.1:1"},
		workspacetest.New(), store, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// fullDeps adds the workspace, session, IDE and audit dependencies (over a
// stub runtime) to d.
func fullDeps(t *testing.T, d Deps) Deps {
	t.Helper()
	store := d.KV
	if _, broken := store.(failingStore); broken {
		store = kv.NewMemory(nil)
	}
	d.Workspaces = testWorkspaces(t, store)
	al, err := audit.NewMemory(slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	d.Audit = al
	sessions, err := editsession.New(editsession.Config{TTL: 2 * time.Minute, IDEURL: d.Config.IDEHost.URL},
		editsession.Deps{Locks: editlock.NewMemory(nil), Workspaces: d.Workspaces, Store: store, Audit: al, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sessions.Close() })
	d.Sessions = sessions
	ide, err := ideproxy.New(ideproxy.Config{Hosts: d.Config.IDEHost}, sessions, d.Workspaces, store, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ide.Close() })
	d.IDE = ide
	pb, err := playbook.NewSQLite(filepath.Join(t.TempDir(), "playbooks.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pb.Close() })
	d.Playbooks = pb
	g, err := llm.New(llm.Config{DailyBudget: 1000}, llm.NewMemoryCounter(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	d.LLM = g
	d.Integrations = testIntegrations(t, d, nil)
	return d
}

// testIntegrations is a profile service over SQLite in the config's data
// directory (a temporary one without), auditing to d.Audit.
func testIntegrations(t *testing.T, d Deps, inUse integration.InUse) *integration.Service {
	t.Helper()
	dir := d.Config.DataDir
	if dir == "" {
		dir = t.TempDir()
	}
	ps, err := integration.NewSQLite(filepath.Join(dir, "integrations.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ps.Close() })
	keys, err := integration.NewKeyring(bytes.Repeat([]byte{7}, integration.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	log := d.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	limit := d.Config.IntegrationLimit
	if limit == 0 {
		limit = 500
	}
	svc, err := integration.NewService(integration.ServiceConfig{Store: ps, Keys: keys, Audit: d.Audit, Log: log, Limit: limit, InUse: inUse})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}
