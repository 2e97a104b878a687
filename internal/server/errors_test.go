package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/playbookstudio/gateway/internal/apierror"
)

// renderError runs errorHandler on err for a request.
func renderError(t *testing.T, logs *logBuffer, r *http.Request, err error) *httptest.ResponseRecorder {
	t.Helper()
	e := echo.New()
	w := httptest.NewRecorder()
	c := e.NewContext(r, w)
	c.Set(ctxRequestID, "rid-1")
	errorHandler(newLogger(logs))(err, c)
	return w
}

func TestErrorHandlerJSON(t *testing.T) {
	logs := &logBuffer{}
	w := renderError(t, logs, httptest.NewRequest(http.MethodGet, "/api/things", nil),
		apierror.Wrap(http.StatusConflict, "user_has_session", "You are editing elsewhere.", errors.New("private cause")))
	wantError(t, w, http.StatusConflict, "user_has_session")
	var body map[string]map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &body)
	if len(body) != 1 || len(body["error"]) != 2 || body["error"]["message"] != "You are editing elsewhere." {
		t.Errorf("body = %s, want exactly {error:{code,message}}", w.Body.String())
	}
	if strings.Contains(w.Body.String(), "private cause") {
		t.Error("the cause reached the client")
	}
	l := logs.find(t, "request refused", map[string]any{"request_id": "rid-1"})
	if l["err"] != "private cause" || l["code"] != "user_has_session" || l["status"] != float64(409) || l["level"] != "INFO" {
		t.Errorf("log = %v", l)
	}

	// Extra fields ride next to the error.
	he := apierror.New(http.StatusConflict, "user_has_session", "Busy.")
	b := he.Message.(apierror.Body)
	b.Extra = map[string]any{"session": map[string]any{"id": "s1"}}
	he.Message = b
	w = renderError(t, logs, httptest.NewRequest(http.MethodPost, "/api/x", nil), he)
	if !strings.Contains(w.Body.String(), `"session":{"id":"s1"}`) {
		t.Errorf("extra fields missing: %s", w.Body.String())
	}

	// Echo's own errors get the contract's codes.
	for _, tc := range []struct {
		err    error
		status int
		code   string
	}{
		{echo.ErrNotFound, 404, "not_found"},
		{echo.ErrMethodNotAllowed, 405, "method_not_allowed"},
		{echo.ErrStatusRequestEntityTooLarge, 413, "too_large"},
		{echo.ErrUnauthorized, 401, "unauthenticated"},
	} {
		w = renderError(t, logs, httptest.NewRequest(http.MethodGet, "/api/x", nil), tc.err)
		wantError(t, w, tc.status, tc.code)
	}

	// A plain error is a 500 that says nothing about itself.
	w = renderError(t, logs, httptest.NewRequest(http.MethodGet, "/api/x", nil), errors.New("db password is hunter2"))
	wantError(t, w, http.StatusInternalServerError, "internal")
	if strings.Contains(w.Body.String(), "hunter2") {
		t.Error("a plain error's text reached the client")
	}
	if l := logs.find(t, "request refused", map[string]any{"status": float64(500)}); l["level"] != "ERROR" {
		t.Errorf("500 logged at %v", l["level"])
	}
}

func TestErrorHandlerHTML(t *testing.T) {
	logs := &logBuffer{}
	r := httptest.NewRequest(http.MethodGet, "/auth/callback", nil)
	r.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
	w := renderError(t, logs, r, apierror.New(http.StatusBadRequest, "bad_request", `Bad <script>alert("x")</script> & more`))
	if w.Code != http.StatusBadRequest || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("%d %q", w.Code, w.Header().Get("Content-Type"))
	}
	body := w.Body.String()
	if strings.Contains(body, "<script>") || !strings.Contains(body, "&lt;script&gt;") || !strings.Contains(body, "&amp; more") {
		t.Errorf("message not escaped:\n%s", body)
	}
	if !strings.Contains(body, "<title>Bad Request · Playbook Studio</title>") || w.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("page = %s, Cache-Control %q", body, w.Header().Get("Cache-Control"))
	}

	// API, health and metrics paths answer JSON even to browsers.
	for _, p := range []string{"/api/me", "/api", "/healthz", "/readyz", "/metrics"} {
		r := httptest.NewRequest(http.MethodGet, p, nil)
		r.Header.Set("Accept", "text/html")
		wantError(t, renderError(t, logs, r, echo.ErrNotFound), 404, "not_found")
	}
	// Pages answer JSON to fetch() calls.
	wantError(t, renderError(t, logs, httptest.NewRequest(http.MethodGet, "/playbooks", nil), echo.ErrNotFound), 404, "not_found")
}

func TestErrorHandlerHeadAndCommitted(t *testing.T) {
	logs := &logBuffer{}
	w := renderError(t, logs, httptest.NewRequest(http.MethodHead, "/api/x", nil), echo.ErrNotFound)
	if w.Code != http.StatusNotFound || w.Body.Len() != 0 {
		t.Errorf("HEAD: %d %q", w.Code, w.Body.String())
	}

	e := echo.New()
	w = httptest.NewRecorder()
	c := e.NewContext(httptest.NewRequest(http.MethodGet, "/api/x", nil), w)
	_ = c.String(http.StatusOK, "partial")
	errorHandler(newLogger(logs))(echo.ErrNotFound, c)
	if w.Code != http.StatusOK || w.Body.String() != "partial" {
		t.Errorf("committed response changed: %d %q", w.Code, w.Body.String())
	}
}
