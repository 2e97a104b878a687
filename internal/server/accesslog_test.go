package server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/playbookstudio/gateway/internal/apierror"
	"github.com/playbookstudio/gateway/internal/auth"
)

func TestAccessLog(t *testing.T) {
	logs := &logBuffer{}
	e := echo.New()
	e.HTTPErrorHandler = errorHandler(newLogger(logs))
	e.Use(requestIDs(nil), accessLog(newLogger(logs)))
	e.GET("/items/:id", func(c echo.Context) error {
		c.Set(ctxSession, &auth.Session{Identity: alice})
		return c.String(http.StatusOK, "hello")
	})
	e.GET("/teapot", func(c echo.Context) error {
		return apierror.New(http.StatusTeapot, "teapot", "I am a teapot.")
	})

	r := httptest.NewRequest(http.MethodGet, "http://portal.test/items/42?code=SECRET-CODE&state=s", nil)
	r.RemoteAddr = "192.0.2.7:4321"
	w := httptest.NewRecorder()
	e.ServeHTTP(w, r)
	id := w.Header().Get(echo.HeaderXRequestID)
	l := logs.find(t, "request", map[string]any{"request_id": id})
	want := map[string]any{
		"level":     "INFO",
		"method":    "GET",
		"host":      "portal.test",
		"path":      "/items/42",
		"route":     "/items/:id",
		"status":    float64(200),
		"bytes":     float64(5),
		"remote_ip": "192.0.2.7",
		"user":      "sub-alice",
	}
	for k, v := range want {
		if l[k] != v {
			t.Errorf("log %s = %v (%T), want %v", k, l[k], l[k], v)
		}
	}
	if _, ok := l["duration"]; !ok {
		t.Error("log lacks duration")
	}
	if strings.Contains(logs.String(), "SECRET-CODE") {
		t.Errorf("the query reached the log:\n%s", logs.String())
	}

	// An error is logged with the status the client got, once.
	w = httptest.NewRecorder()
	e.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/teapot", nil))
	if w.Code != http.StatusTeapot {
		t.Fatalf("status = %d", w.Code)
	}
	l = logs.find(t, "request", map[string]any{"path": "/teapot"})
	if l["status"] != float64(http.StatusTeapot) || l["user"] != "" {
		t.Errorf("error request logged as %v", l)
	}
	if n := strings.Count(w.Body.String(), `"code":"teapot"`); n != 1 {
		t.Errorf("error rendered %d times: %q", n, w.Body.String())
	}

	// An unknown route is labelled as such.
	e.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/nowhere", nil))
	l = logs.find(t, "request", map[string]any{"path": "/nowhere"})
	if l["status"] != float64(http.StatusNotFound) {
		t.Errorf("unknown route logged as %v", l)
	}
}

func TestRouteLabel(t *testing.T) {
	c := echo.New().NewContext(httptest.NewRequest(http.MethodGet, "/", nil), httptest.NewRecorder())
	if got := routeLabel(c); got != "unmatched" {
		t.Errorf("routeLabel without a route = %q", got)
	}
	c.SetPath("/api/playbooks/:id")
	if got := routeLabel(c); got != "/api/playbooks/:id" {
		t.Errorf("routeLabel = %q", got)
	}
}
