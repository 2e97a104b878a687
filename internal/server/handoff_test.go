package server

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestSignInHandoff: the popup's session mints a one-time code; a frame
// without a session redeems it for a session of its own, once.
func TestSignInHandoff(t *testing.T) {
	env := newTestEnv(t, nil)
	popup := env.signIn(t, alice)

	// Without the CSRF token, or without a session, no code.
	r := popup.add(req(http.MethodPost, "/auth/handoff", nil))
	r.Header.Set("Origin", portalOrigin)
	wantError(t, env.do(r), http.StatusForbidden, "csrf_failed")
	wantError(t, env.do(req(http.MethodPost, "/auth/handoff", nil)), http.StatusUnauthorized, "unauthenticated")

	r = popup.add(req(http.MethodPost, "/auth/handoff", nil))
	r.Header.Set("X-CSRF-Token", popup.csrf)
	w := env.do(r)
	var out struct{ Code string }
	if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &out) != nil || out.Code == "" {
		t.Fatalf("handoff: %d %s", w.Code, w.Body)
	}

	redeem := func(code, origin string) *http.Response {
		r := req(http.MethodPost, "/auth/handoff/redeem", strings.NewReader(`{"code":"`+code+`"}`))
		r.Header.Set("Content-Type", "application/json")
		if origin != "" {
			r.Header.Set("Origin", origin)
		}
		return env.do(r).Result()
	}
	if resp := redeem(out.Code, "https://evil.example"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("redeem from another origin: %d", resp.StatusCode)
	}
	resp := redeem(out.Code, portalOrigin)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("redeem: %d", resp.StatusCode)
	}
	var frame *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == env.auth.SessionCookieName() && c.Value != "" {
			frame = c
		}
	}
	if frame == nil || frame.Value == popup.token || !frame.HttpOnly {
		t.Fatalf("redeem set no new session cookie: %v", resp.Cookies())
	}
	me := req(http.MethodGet, "/api/me", nil)
	me.AddCookie(frame)
	if w := env.do(me); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "Alice Anders") {
		t.Fatalf("/api/me with the frame's session: %d %s", w.Code, w.Body)
	}
	if resp := redeem(out.Code, portalOrigin); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a code redeemed twice: %d", resp.StatusCode)
	}
	if resp := redeem("forged", portalOrigin); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a forged code: %d", resp.StatusCode)
	}
}
