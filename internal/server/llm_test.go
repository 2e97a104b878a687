package server

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/playbookstudio/gateway/internal/auth"
	"github.com/playbookstudio/gateway/internal/config"
	"github.com/playbookstudio/gateway/internal/editsession"
	"github.com/playbookstudio/gateway/internal/kv"
	"github.com/playbookstudio/gateway/internal/llm"
	"github.com/playbookstudio/gateway/internal/metrics"
	"github.com/playbookstudio/gateway/internal/testsvc"
	"github.com/playbookstudio/gateway/web"
)

// llmEnv is a whole server whose model endpoint talks to baseURL, with a
// workspace token of alice's live edit session.
type llmEnv struct {
	srv     *Server
	deps    Deps
	metrics *metrics.Metrics
	logs    *logBuffer
	token   string
}

func newLLMEnv(t *testing.T, baseURL string, budget int64) *llmEnv {
	t.Helper()
	vars := map[string]string{
		"OIDC_ISSUER":      "http://127.0.0.1:" + strconv.Itoa(testsvc.FreePort(t)),
		"DATA_DIR":         t.TempDir(),
		"PUBLIC_URL":       portalOrigin,
		"IDE_URL_TEMPLATE": "http://{session}.ide.localhost:8080",
	}
	cfg, err := config.Load(nil, func(k string) string { return vars[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	log := newLogger(logs)
	store := kv.NewMemory(nil)
	a, err := auth.New(auth.Options{Issuer: cfg.OIDCIssuer, ClientID: "c", PublicURL: cfg.PublicURL, SessionMaxAge: time.Hour,
		Secret: bytes.Repeat([]byte("k"), 32), HTTPClient: &http.Client{Timeout: 2 * time.Second}}, store, log)
	if err != nil {
		t.Fatal(err)
	}
	files, err := web.Static()
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New()
	d := fullDeps(t, Deps{Config: cfg, Log: log, Auth: a, KV: store, Metrics: m, Web: files})
	f := newTokenFixture(t)
	d.Workspaces, d.Sessions = f.ws, f.sessions
	d.LLM, err = llm.New(llm.Config{BaseURL: baseURL, APIKey: "sk-secret", Model: "m", DailyBudget: budget, MaxTokens: 100},
		llm.NewMemoryCounter(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(d)
	if err != nil {
		t.Fatal(err)
	}
	_, token := f.open(t, editsession.Identity{ID: alice.ID, Name: alice.Name, Tenant: alice.Tenant}, "Alpha")
	return &llmEnv{srv: srv, deps: d, metrics: m, logs: logs, token: token}
}

func (e *llmEnv) complete(t *testing.T, body string) *httptest.ResponseRecorder {
	t.Helper()
	r := req(http.MethodPost, "/api/llm/v1/chat/completions", strings.NewReader(body))
	r.Header.Set("Authorization", "Bearer "+e.token)
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	e.srv.ServeHTTP(w, r)
	return w
}

const chatBody = `{"messages":[{"role":"user","content":"hi"}]}`

// TestLLMCallsCountedInMetricsNotAudit: a completion adds to the call and
// token counters and to GET /api/llm/usage, and writes nothing to the
// admin audit log, whose sign-ins and activations it would bury.
func TestLLMCallsCountedInMetricsNotAudit(t *testing.T) {
	provider := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"choices":[{"message":{"role":"assistant","content":"hello"}}],"usage":{"prompt_tokens":100,"completion_tokens":20}}`)
	}))
	defer provider.Close()
	e := newLLMEnv(t, provider.URL, 10000)
	before, err := e.deps.Audit.Recent(context.Background(), alice.Tenant, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if w := e.complete(t, chatBody); w.Code != http.StatusOK {
			t.Fatalf("completion: %d %s", w.Code, w.Body)
		}
	}
	labels := func(kv ...string) map[string]string {
		m := map[string]string{"tenant": alice.Tenant}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	if n := metricValue(t, e.metrics, "gateway_llm_calls_total", labels("result", "ok")); n != 2 {
		t.Errorf("calls ok = %v, want 2", n)
	}
	if n := metricValue(t, e.metrics, "gateway_llm_tokens_total", labels("kind", "prompt")); n != 200 {
		t.Errorf("prompt tokens = %v, want 200", n)
	}
	if n := metricValue(t, e.metrics, "gateway_llm_tokens_total", labels("kind", "completion")); n != 40 {
		t.Errorf("completion tokens = %v, want 40", n)
	}
	after, err := e.deps.Audit.Recent(context.Background(), alice.Tenant, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range after {
		if strings.HasPrefix(ev.Action, "llm") {
			t.Fatalf("a model call was audited: %+v", ev)
		}
	}
	if len(after) != len(before) {
		t.Fatalf("the audit log grew from %d to %d events", len(before), len(after))
	}
	// Usage keeps its shape.
	r := req(http.MethodGet, "/api/llm/usage", nil)
	r.Header.Set("Authorization", "Bearer "+e.token)
	w := httptest.NewRecorder()
	e.srv.ServeHTTP(w, r)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"used":240`) || !strings.Contains(w.Body.String(), `"budget":10000`) {
		t.Fatalf("usage: %d %s", w.Code, w.Body)
	}
}

// TestLLMErrorsHideTheProvider: what the workspace is told says what
// happened in words, never the provider's address or the transport's
// words; the cause is in the log.
func TestLLMErrorsHideTheProvider(t *testing.T) {
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, `{"error":{"message":"backend dial tcp 127.0.0.1:9 failed"}}`)
	}))
	defer failing.Close()
	closedPort := strconv.Itoa(testsvc.FreePort(t))
	cases := []struct {
		name, baseURL, port, words, logged string
	}{
		{"closed port", "http://127.0.0.1:" + closedPort + "/v1", closedPort, "cannot be reached", "127.0.0.1:" + closedPort},
		{"provider fails", failing.URL + "/v1", failing.URL[strings.LastIndex(failing.URL, ":")+1:], "failed (500)", "backend dial tcp"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newLLMEnv(t, tc.baseURL, 10000)
			w := e.complete(t, chatBody)
			wantError(t, w, http.StatusBadGateway, "llm_error")
			_, msg := apiError(t, w)
			if !strings.Contains(msg, tc.words) {
				t.Errorf("message %q does not say %q", msg, tc.words)
			}
			for _, leak := range []string{tc.baseURL, "127.0.0.1", tc.port, "dial", "tcp"} {
				if strings.Contains(w.Body.String(), leak) {
					t.Errorf("answer %s carries %q", w.Body, leak)
				}
			}
			if !strings.Contains(e.logs.String(), tc.logged) {
				t.Errorf("the cause is not in the log: %s", e.logs)
			}
			if n := metricValue(t, e.metrics, "gateway_llm_calls_total", map[string]string{"tenant": alice.Tenant, "result": "provider_error"}); n != 1 {
				t.Errorf("provider errors counted %v, want 1", n)
			}
		})
	}
}

// TestLLMRefusals: the budget's 429 says when to retry; n > 1 is a 400
// naming n.
func TestLLMRefusals(t *testing.T) {
	provider := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":10}}`)
	}))
	defer provider.Close()
	// A call reserves 11 (prompt) + 100 (LLM_MAX_TOKENS) and is charged
	// 20: after one, 20 + 111 is past 120.
	e := newLLMEnv(t, provider.URL, 120)
	w := e.complete(t, `{"n":3,"messages":[{"role":"user","content":"hi"}]}`)
	wantError(t, w, http.StatusBadRequest, "llm_error")
	if _, msg := apiError(t, w); !strings.Contains(msg, "n = 3") {
		t.Fatalf("message %q does not name n", msg)
	}
	if w := e.complete(t, chatBody); w.Code != http.StatusOK {
		t.Fatalf("first call: %d %s", w.Code, w.Body)
	}
	w = e.complete(t, chatBody)
	wantError(t, w, http.StatusTooManyRequests, "token_budget_exhausted")
	if s, err := strconv.Atoi(w.Header().Get("Retry-After")); err != nil || s < 1 || s > 24*3600 {
		t.Fatalf("Retry-After %q, want the seconds until midnight UTC", w.Header().Get("Retry-After"))
	}
	for result, want := range map[string]float64{"ok": 1, "invalid": 1, "exhausted": 1} {
		if n := metricValue(t, e.metrics, "gateway_llm_calls_total", map[string]string{"tenant": alice.Tenant, "result": result}); n != want {
			t.Errorf("calls %s = %v, want %v", result, n, want)
		}
	}
}
