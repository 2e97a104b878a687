package server

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/playbookstudio/gateway/internal/auth"
	"github.com/playbookstudio/gateway/internal/kv"
)

// newAuth is a sign-in service over store; no provider is contacted.
func newAuth(t *testing.T, store kv.Store) *auth.Auth {
	t.Helper()
	a, err := auth.New(auth.Options{
		Issuer:        "http://127.0.0.1:1",
		ClientID:      "playbook-studio",
		PublicURL:     &url.URL{Scheme: "http", Host: portalHost},
		SessionMaxAge: time.Hour,
		Secret:        bytes.Repeat([]byte("s"), 32),
	}, store, newLogger(&logBuffer{}))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// runLoadSession runs loadSession alone and returns the session the next
// handler saw and the middleware's error.
func runLoadSession(t *testing.T, a *auth.Auth, cookie *http.Cookie) (*auth.Session, bool, error) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	if cookie != nil {
		r.AddCookie(cookie)
	}
	c := echo.New().NewContext(r, httptest.NewRecorder())
	var seen *auth.Session
	reached := false
	err := loadSession(a)(func(c echo.Context) error {
		reached = true
		seen = sessionOf(c)
		return nil
	})(c)
	return seen, reached, err
}

func TestLoadSession(t *testing.T) {
	store := kv.NewMemory(nil)
	a := newAuth(t, store)
	live := putSession(t, store, a.SessionCookieName(), alice, time.Hour)
	expired := putSession(t, store, a.SessionCookieName(), bob, -time.Minute)

	s, reached, err := runLoadSession(t, a, live.cookie)
	if err != nil || !reached || s == nil {
		t.Fatalf("live session: %v %v %v", s, reached, err)
	}
	if s.Identity.Name != "Alice Anders" || s.CSRFToken != live.csrf {
		t.Errorf("session = %+v", s)
	}

	for name, ck := range map[string]*http.Cookie{
		"no cookie":      nil,
		"unknown cookie": {Name: a.SessionCookieName(), Value: "nope"},
		"expired":        expired.cookie,
		"other name":     {Name: "session", Value: live.token},
		"empty":          {Name: a.SessionCookieName(), Value: ""},
	} {
		s, reached, err := runLoadSession(t, a, ck)
		if err != nil || !reached || s != nil {
			t.Errorf("%s: session %v, reached %v, err %v; want no session and no refusal", name, s, reached, err)
		}
	}

	// A store that fails is a 503, not a silent sign-out.
	down := newAuth(t, failingStore{})
	_, reached, err = runLoadSession(t, down, live.cookie)
	if reached {
		t.Fatal("the handler ran with the store down")
	}
	if status, code := codeOf(t, err); status != http.StatusServiceUnavailable || code != "unavailable" {
		t.Errorf("store down: %d %s", status, code)
	}
	// Without a cookie the store is not asked, so anonymous routes work.
	if _, reached, err := runLoadSession(t, down, nil); err != nil || !reached {
		t.Errorf("store down, no cookie: reached %v, err %v", reached, err)
	}
}

func TestUserLabel(t *testing.T) {
	c := echo.New().NewContext(httptest.NewRequest(http.MethodGet, "/", nil), httptest.NewRecorder())
	if got := userLabel(c); got != "" {
		t.Errorf("userLabel without session = %q", got)
	}
	c.Set(ctxSession, &auth.Session{Identity: bob})
	if got := userLabel(c); got != "sub-bob" {
		t.Errorf("userLabel = %q", got)
	}
}

func TestRequireAPISession(t *testing.T) {
	c := echo.New().NewContext(httptest.NewRequest(http.MethodGet, "/api/me", nil), httptest.NewRecorder())
	if status, code := codeOf(t, requireAPISession(ok)(c)); status != http.StatusUnauthorized || code != "unauthenticated" {
		t.Errorf("no session: %d %s", status, code)
	}
	c.Set(ctxSession, &auth.Session{Identity: bob})
	if err := requireAPISession(ok)(c); err != nil {
		t.Errorf("with a session: %v", err)
	}
}

func TestRequirePageSession(t *testing.T) {
	cases := []struct{ target, location string }{
		{"/playbooks", "/auth/login?return_to=%2Fplaybooks"},
		{"/", "/auth/login?return_to=%2F"},
		{"/playbooks?tab=mine&q=x", "/auth/login?return_to=%2Fplaybooks%3Ftab%3Dmine%26q%3Dx"},
		{"/rules/x%2Fy", "/auth/login?return_to=%2Frules%2Fx%252Fy"},
		{"//evil.example/x", "/auth/login?return_to=%2F"},
		{"/%2F%2Fevil.example", "/auth/login?return_to=%2F"},
		{"/a/%5Cevil", "/auth/login?return_to=%2F"},
	}
	for _, tc := range cases {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		u, err := url.ParseRequestURI(tc.target)
		if err != nil {
			t.Fatal(err)
		}
		r.URL = u
		r.RequestURI = tc.target
		w := httptest.NewRecorder()
		c := echo.New().NewContext(r, w)
		if err := requirePageSession(ok)(c); err != nil {
			t.Fatalf("%s: %v", tc.target, err)
		}
		if w.Code != http.StatusFound || w.Header().Get("Location") != tc.location {
			t.Errorf("%s: %d Location %q, want 302 %q", tc.target, w.Code, w.Header().Get("Location"), tc.location)
		}
		if w.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("%s: Cache-Control = %q", tc.target, w.Header().Get("Cache-Control"))
		}
	}

	w := httptest.NewRecorder()
	c := echo.New().NewContext(httptest.NewRequest(http.MethodGet, "/playbooks", nil), w)
	c.Set(ctxSession, &auth.Session{Identity: bob})
	if err := requirePageSession(ok)(c); err != nil || w.Code != http.StatusOK {
		t.Errorf("with a session: %d %v", w.Code, err)
	}
	body, _ := io.ReadAll(w.Body)
	if string(body) != "ok" {
		t.Errorf("with a session the page did not run: %q", body)
	}
}

func TestRequireRole(t *testing.T) {
	c := echo.New().NewContext(httptest.NewRequest(http.MethodGet, "/", nil), httptest.NewRecorder())
	if status, code := codeOf(t, requireRole("admin")(ok)(c)); status != http.StatusForbidden || code != "forbidden" {
		t.Errorf("no session: %d %s", status, code)
	}
	c.Set(ctxSession, &auth.Session{Identity: bob})
	if status, code := codeOf(t, requireRole("admin")(ok)(c)); status != http.StatusForbidden || code != "forbidden" {
		t.Errorf("bob as admin: %d %s", status, code)
	}
	if err := requireRole("author")(ok)(c); err != nil {
		t.Errorf("bob as author: %v", err)
	}
	c.Set(ctxSession, &auth.Session{Identity: alice})
	if err := requireRole("admin")(ok)(c); err != nil {
		t.Errorf("alice as admin: %v", err)
	}
}
