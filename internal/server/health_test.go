package server

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
)

func TestReadyzHandler(t *testing.T) {
	up := func(context.Context) error { return nil }
	down := func(context.Context) error { return errors.New("no answer") }
	slow := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }

	serve := func(checks []readinessCheck) (int, map[string]any) {
		e := echo.New()
		e.GET("/readyz", handleReadyz(slog.New(slog.DiscardHandler), checks))
		w := httptest.NewRecorder()
		e.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		var body map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
			t.Fatalf("body %q: %v", w.Body.String(), err)
		}
		return w.Code, body
	}

	status, body := serve([]readinessCheck{{"kv", up}, {"oidc", up}})
	if status != 200 || body["status"] != "ok" || body["checks"].(map[string]any)["kv"] != "ok" {
		t.Errorf("all up: %d %v", status, body)
	}

	status, body = serve([]readinessCheck{{"kv", down}, {"oidc", up}, {"db", down}})
	failing := []string{}
	for _, f := range body["failing"].([]any) {
		failing = append(failing, f.(string))
	}
	slices.Sort(failing)
	if status != 503 || body["status"] != "unavailable" || !slices.Equal(failing, []string{"db", "kv"}) {
		t.Errorf("two down: %d %v", status, body)
	}
	if body["checks"].(map[string]any)["kv"] != "unavailable" || body["checks"].(map[string]any)["oidc"] != "ok" {
		t.Errorf("checks = %v", body["checks"])
	}

	// A check that hangs is cut off after two seconds, not forever.
	start := time.Now()
	status, body = serve([]readinessCheck{{"slow", slow}, {"kv", up}})
	if took := time.Since(start); took > 3*time.Second || took < 1900*time.Millisecond {
		t.Errorf("a hanging check took %v", took)
	}
	if status != 503 || body["failing"].([]any)[0] != "slow" {
		t.Errorf("hanging check: %d %v", status, body)
	}
}

func TestHealthzHandler(t *testing.T) {
	e := echo.New()
	e.GET("/healthz", handleHealthz())
	w := httptest.NewRecorder()
	e.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if w.Code != 200 || w.Body.String() != "{\"status\":\"ok\"}\n" {
		t.Errorf("healthz: %d %q", w.Code, w.Body.String())
	}
}
