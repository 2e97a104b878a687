package server

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// TestCookieFlood: cookies planted for the parent domain by a page on an
// IDE host, up to what a browser keeps (180 of 4 KiB), neither lock the
// user out of the portal nor hide their session; the answer deletes the
// planted cookies so the browser stops sending them.
func TestCookieFlood(t *testing.T) {
	env := newTestEnv(t, nil)
	user := env.signIn(t, alice)

	var flood []string
	for i := range 180 {
		flood = append(flood, fmt.Sprintf("toss%03d=%s", i, strings.Repeat("x", 4000)))
	}
	// The planted cookies come before and after the session's.
	r := req(http.MethodGet, "/api/me", nil)
	r.Header.Set("Cookie", strings.Join(flood[:90], "; ")+"; "+env.auth.SessionCookieName()+"="+user.token+"; "+strings.Join(flood[90:], "; "))
	w := env.do(r)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "Alice") {
		t.Fatalf("/api/me under a cookie flood: %d %.200s", w.Code, w.Body)
	}
	set := w.Header().Values("Set-Cookie")
	// The portal is localhost (secure origin): host-only deletions (parent
	// domains: TestParentDomains), for / and the request's path.
	for _, want := range []string{
		"toss000=; Path=/; Max-Age=0; Secure",
		"toss179=; Path=/; Max-Age=0; Secure",
		"toss179=; Path=/api/me; Max-Age=0; Secure",
	} {
		if !slices.Contains(set, want) {
			t.Errorf("no %q among %d Set-Cookie lines (first %q)", want, len(set), set[:min(3, len(set))])
		}
	}
	for _, s := range set {
		if strings.HasPrefix(s, env.auth.SessionCookieName()+"=") {
			t.Errorf("the flood's answer deletes the session cookie: %q", s)
		}
	}

	// Names Go's cookie parser skips (browsers keep them) are shed too.
	r = req(http.MethodGet, "/api/me", nil)
	r.Header.Set("Cookie", `a(b=1; d="q"r; c=x\y; `+strings.Join(flood, "; "))
	w = env.do(r)
	set = w.Header().Values("Set-Cookie")
	for _, want := range []string{"a(b=; Path=/; Max-Age=0; Secure", `d=; Path=/; Max-Age=0; Secure`, `c=; Path=/api; Max-Age=0; Secure`} {
		if !slices.Contains(set, want) {
			t.Errorf("no %q", want)
		}
	}

	// An ordinary request sheds nothing.
	r = user.add(req(http.MethodGet, "/api/me", nil))
	r.Header.Add("Cookie", "analytics=1")
	if w := env.do(r); w.Code != http.StatusOK || len(w.Header().Values("Set-Cookie")) != 0 {
		t.Errorf("a small Cookie header: %d, Set-Cookie %q", w.Code, w.Header().Values("Set-Cookie"))
	}
}

func TestParentDomains(t *testing.T) {
	for host, want := range map[string][]string{
		"playbooks.localhost:8080": {"", "playbooks.localhost"},
		"portal.soc.example.com":   {"", "portal.soc.example.com", "soc.example.com", "example.com"},
		"127.0.0.1:8080":           {""},
		"[::1]:8080":               {""},
		"localhost":                {""},
	} {
		if got := parentDomains(host); !slices.Equal(got, want) {
			t.Errorf("parentDomains(%q) = %q, want %q", host, got, want)
		}
	}
}
