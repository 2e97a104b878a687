package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/playbookstudio/gateway/internal/kv"
)

// TestWorkspaceToken checks the bearer-token middleware and the
// either-or middleware of routes both the portal and the extension use.
func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func TestWorkspaceToken(t *testing.T) {
	store := kv.NewMemory(nil)
	m := testWorkspaces(t, store)
	// The stub runtime keeps no environment to read the minted token
	// from, so a token is stored the way the manager stores its own.
	token := "pbw_test-token-0123456789"
	raw := []byte(`{"key":"k","owner":"alice","tenant":"t1"}`)
	if err := store.Set(context.Background(), "ws-token:"+sha256Hex(token), raw, time.Hour); err != nil {
		t.Fatal(err)
	}

	e := echo.New()
	e.HTTPErrorHandler = errorHandler(newLogger(&logBuffer{}))
	var seen string
	ok := func(c echo.Context) error {
		if tok := workspaceTokenOf(c); tok != nil {
			seen = "token:" + tok.Owner
		} else if s := sessionOf(c); s != nil {
			seen = "session:" + s.Identity.ID
		} else {
			seen = "nobody"
		}
		return c.NoContent(http.StatusNoContent)
	}
	e.GET("/token", ok, workspaceToken(m))
	denySession := func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error { return echo.NewHTTPError(http.StatusUnauthorized) }
	}
	e.GET("/either", ok, sessionOrWorkspaceToken(m, []echo.MiddlewareFunc{denySession}))

	for _, tc := range []struct {
		path, auth string
		status     int
		seen       string
	}{
		{"/token", "Bearer " + token, 204, "token:alice"},
		{"/token", "Bearer " + token + "x", 401, ""},
		{"/token", "Bearer ", 401, ""},
		{"/token", "Basic abc", 401, ""},
		{"/token", "", 401, ""},
		{"/either", "Bearer " + token, 204, "token:alice"},
		{"/either", "Bearer forged", 401, ""},
		{"/either", "", 401, ""}, // the session chain decides
	} {
		seen = ""
		r := httptest.NewRequest(http.MethodGet, tc.path, nil)
		if tc.auth != "" {
			r.Header.Set("Authorization", tc.auth)
		}
		w := httptest.NewRecorder()
		e.ServeHTTP(w, r)
		if w.Code != tc.status || seen != tc.seen {
			t.Errorf("%s with %q: %d seen %q, want %d %q", tc.path, tc.auth, w.Code, seen, tc.status, tc.seen)
		}
	}
}
