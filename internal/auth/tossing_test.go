package auth

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
)

// TestPlantedFlowCookieRefused: login CSRF. An attacker starts a sign-in
// in their own browser and stops at the callback URL; a page on a sibling
// host (an IDE host) plants the attacker's flow cookie for the parent
// domain in the victim's browser and sends the victim to that URL. A
// sibling can only plant a cookie without the __Host- prefix (the browser
// refuses a Domain-scoped __Host- cookie), so the callback, which reads only
// the prefixed name, finds no flow of this browser and the victim's own
// session stays as it was.
func TestPlantedFlowCookieRefused(t *testing.T) {
	e := newEnv(t, envOptions{host: "playbooks.localhost"})
	e.mustSignIn("/")
	victim := e.jar.Cookies(e.public)

	attacker := newEnv(t, envOptions{host: "playbooks.localhost"})
	login := attacker.startLogin("/")
	flow := login.cookieWithPrefix(loginCookiePrefix)
	cb := attacker.authorize(login)
	if !strings.HasPrefix(flow.Name, "__Host-") {
		t.Fatalf("the flow cookie %q has no __Host- prefix", flow.Name)
	}

	// The planted cookie as the victim's browser sends it: the only name a
	// sibling host can set, with the attacker's genuine sealed value.
	planted := strings.TrimPrefix(flow.Name, "__Host-")
	cbURL := strings.Replace(cb, attacker.public.Host, e.public.Host, 1)
	req := httptest.NewRequest(http.MethodGet, cbURL, nil)
	for _, c := range victim {
		req.AddCookie(c)
	}
	req.AddCookie(&http.Cookie{Name: planted, Value: flow.Value})
	rec := httptest.NewRecorder()
	ech := echo.New()
	err := e.a.Callback(ech.NewContext(req, rec))
	var he *echo.HTTPError
	if err == nil || !errorAs(err, &he) || he.Code != http.StatusBadRequest || !strings.Contains(he.Error(), "sign_in_expired") {
		t.Fatalf("a planted flow cookie: err %v, set %q", err, rec.Header().Values("Set-Cookie"))
	}
	if got := rec.Header().Values("Set-Cookie"); strings.Contains(strings.Join(got, ";"), e.a.SessionCookieName()+"=") &&
		!strings.Contains(strings.Join(got, ";"), e.a.SessionCookieName()+"=;") {
		t.Errorf("the refused callback set a session: %q", got)
	}
	if me := e.get(e.gwURL("/me")); me.status != http.StatusOK || !strings.Contains(string(me.body), "Ada Lovelace") {
		t.Errorf("the victim's session after the attempt: %d %s", me.status, me.body)
	}
}

func errorAs(err error, he **echo.HTTPError) bool {
	h, ok := err.(*echo.HTTPError)
	if ok {
		*he = h
	}
	return ok
}

// TestPlantedSessionCookieIgnored: on a plain-http host other than a
// loopback name (no __Host- prefix), a sibling can plant a cookie of the
// session's name; the browser then sends both, the planted one first if
// its path is longer. The gateway tries each, so the victim stays signed
// in as themself.
func TestPlantedSessionCookieIgnored(t *testing.T) {
	e := newEnv(t, envOptions{host: "portal.test"})
	e.mustSignIn("/")
	name := e.a.SessionCookieName()
	if name != "pbs_session" {
		t.Fatalf("SessionCookieName on plain http to portal.test = %q", name)
	}
	var mine string
	for _, c := range e.jar.Cookies(e.public) {
		if c.Name == name {
			mine = c.Value
		}
	}
	for _, junk := range []string{"junk", randomToken(), strings.Repeat("x", 500), ""} {
		req := httptest.NewRequest(http.MethodGet, e.gwURL("/me"), nil)
		req.Header.Set("Cookie", name+"="+junk+"; "+name+"="+mine)
		s, err := e.a.SessionFrom(req)
		if err != nil || s.Identity.Name != "Ada Lovelace" {
			t.Errorf("junk %.20q before the real cookie: %v", junk, err)
		}
	}
	// Many planted copies cost a bounded number of store look-ups.
	req := httptest.NewRequest(http.MethodGet, e.gwURL("/me"), nil)
	req.Header.Set("Cookie", strings.Repeat(name+"="+randomToken()+"; ", 50)+name+"="+mine)
	if _, err := e.a.SessionFrom(req); err != ErrNoSession {
		t.Errorf("50 planted cookies before the real one: %v, want ErrNoSession (look-ups are capped)", err)
	}
}

// TestHandoffKeepsExpiry: a session redeemed from a hand-off ends when
// the session that handed it off would have, so hand-offs cannot extend a
// sign-in without going back to the provider.
func TestHandoffKeepsExpiry(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.mustSignIn("/")
	first, err := e.a.SessionFrom(e.requestWithJar("/me"))
	if err != nil {
		t.Fatal(err)
	}
	ech := echo.New()
	handoff := func(from *http.Request) string {
		t.Helper()
		rec := httptest.NewRecorder()
		if err := e.a.Handoff(ech.NewContext(from, rec)); err != nil || rec.Code != http.StatusOK {
			t.Fatalf("handoff: %v %d", err, rec.Code)
		}
		var out struct{ Code string }
		_ = json.Unmarshal(rec.Body.Bytes(), &out)
		return out.Code
	}
	redeem := func(code string) (*http.Cookie, error) {
		req := httptest.NewRequest(http.MethodPost, e.gwURL("/auth/handoff/redeem"), strings.NewReader(`{"code":"`+code+`"}`))
		rec := httptest.NewRecorder()
		if err := e.a.Redeem(ech.NewContext(req, rec)); err != nil {
			return nil, err
		}
		for _, c := range rec.Result().Cookies() {
			if c.Name == e.a.SessionCookieName() {
				return c, nil
			}
		}
		t.Fatalf("redeem set no session cookie: %q", rec.Header().Values("Set-Cookie"))
		return nil, nil
	}

	// Hand off again and again, each from the last redeemed session, well
	// inside the lifetime: the expiry never moves.
	from := e.requestWithJar("/me")
	for i := range 4 {
		e.clock.Advance(testMaxAge / 5)
		ck, err := redeem(handoff(from))
		if err != nil {
			t.Fatalf("redeem %d: %v", i, err)
		}
		if remaining := time.Duration(ck.MaxAge) * time.Second; remaining != first.ExpiresAt.Sub(e.clock.Now()) {
			t.Errorf("redeem %d: cookie Max-Age %v, want the %v left of the first session", i, remaining, first.ExpiresAt.Sub(e.clock.Now()))
		}
		from = httptest.NewRequest(http.MethodGet, e.gwURL("/me"), nil)
		from.AddCookie(ck)
		s, err := e.a.SessionFrom(from)
		if err != nil {
			t.Fatalf("redeemed session %d: %v", i, err)
		}
		if !s.ExpiresAt.Equal(first.ExpiresAt) {
			t.Fatalf("redeemed session %d expires %v, the first %v", i, s.ExpiresAt, first.ExpiresAt)
		}
	}
	// Past the first session's end every copy is gone, and a code minted
	// just before the end does not open a new one after it.
	code := handoff(from)
	e.clock.Advance(first.ExpiresAt.Sub(e.clock.Now()))
	if _, err := e.a.SessionFrom(from); err != ErrNoSession {
		t.Errorf("a redeemed session outlived the first: %v", err)
	}
	if _, err := redeem(code); err == nil {
		t.Error("a hand-off code redeemed after its session's end opened a session")
	}
}

// requestWithJar is a request to path carrying the test browser's cookies.
func (e *env) requestWithJar(path string) *http.Request {
	req := httptest.NewRequest(http.MethodGet, e.gwURL(path), nil)
	for _, c := range e.jar.Cookies(e.public) {
		req.AddCookie(c)
	}
	return req
}
