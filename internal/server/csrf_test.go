package server

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/playbookstudio/gateway/internal/auth"
)

func TestCSRFToken(t *testing.T) {
	const token = "the-session-csrf-token"
	form := func(v string) string { return url.Values{"csrf_token": {v}}.Encode() }
	cases := []struct {
		name        string
		signedIn    bool
		method      string
		header      string
		contentType string
		body        string
		allowed     bool
		target      string
	}{
		{"no session, POST", false, http.MethodPost, "", "", "", true, ""},
		{"session, GET", true, http.MethodGet, "", "", "", true, ""},
		{"session, HEAD", true, http.MethodHead, "", "", "", true, ""},
		{"session, POST without token", true, http.MethodPost, "", "", "", false, ""},
		{"session, POST with header", true, http.MethodPost, token, "", "", true, ""},
		{"session, DELETE with header", true, http.MethodDelete, token, "", "", true, ""},
		{"session, PUT without token", true, http.MethodPut, "", "", "", false, ""},
		{"session, POST wrong header", true, http.MethodPost, "other", "", "", false, ""},
		{"session, POST token prefix", true, http.MethodPost, token[:5], "", "", false, ""},
		{"session, POST form field", true, http.MethodPost, "", echo.MIMEApplicationForm, form(token), true, ""},
		{"session, POST form field with charset", true, http.MethodPost, "", echo.MIMEApplicationForm + "; charset=UTF-8", form(token), true, ""},
		{"session, POST wrong form field", true, http.MethodPost, "", echo.MIMEApplicationForm, form("nope"), false, ""},
		{"session, POST field in JSON body", true, http.MethodPost, "", echo.MIMEApplicationJSON, `{"csrf_token":"` + token + `"}`, false, ""},
		{"session, POST field in query", true, http.MethodPost, "", "", "", false, "/?csrf_token=" + token},
		{"session, POST wrong header beats right field", true, http.MethodPost, "wrong", echo.MIMEApplicationForm, form(token), false, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			target := tc.target
			if target == "" {
				target = "/"
			}
			r := httptest.NewRequest(tc.method, target, strings.NewReader(tc.body))
			if tc.header != "" {
				r.Header.Set("X-CSRF-Token", tc.header)
			}
			if tc.contentType != "" {
				r.Header.Set(echo.HeaderContentType, tc.contentType)
			}
			c := echo.New().NewContext(r, httptest.NewRecorder())
			if tc.signedIn {
				c.Set(ctxSession, &auth.Session{Identity: alice, CSRFToken: token})
			}
			reached := false
			err := csrfToken(func(echo.Context) error { reached = true; return nil })(c)
			if tc.allowed {
				if err != nil || !reached {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if reached {
				t.Fatal("the handler ran")
			}
			if status, code := codeOf(t, err); status != http.StatusForbidden || code != "csrf_failed" {
				t.Fatalf("got %d %s, want 403 csrf_failed", status, code)
			}
		})
	}
}

// A session whose token is somehow empty must not accept an empty token.
func TestCSRFTokenEmptySessionToken(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	c := echo.New().NewContext(r, httptest.NewRecorder())
	c.Set(ctxSession, &auth.Session{Identity: alice})
	if err := csrfToken(ok)(c); err == nil {
		t.Fatal("accepted a POST against a session without a token")
	}
}
