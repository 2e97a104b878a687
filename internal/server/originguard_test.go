package server

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/labstack/echo/v4"
)

func TestOriginGuard(t *testing.T) {
	cases := []struct {
		name, method, origin, fetchSite string
		allowed                         bool
	}{
		{"GET from anywhere", http.MethodGet, "https://evil.example", "cross-site", true},
		{"HEAD from anywhere", http.MethodHead, "https://evil.example", "cross-site", true},
		{"OPTIONS from anywhere", http.MethodOptions, "https://evil.example", "cross-site", true},
		{"POST same origin", http.MethodPost, portalOrigin, "same-origin", true},
		{"POST same origin without Sec-Fetch-Site", http.MethodPost, portalOrigin, "", true},
		{"POST foreign origin", http.MethodPost, "https://evil.example", "", false},
		{"POST foreign origin claiming same-origin", http.MethodPost, "https://evil.example", "same-origin", false},
		{"POST from an IDE host", http.MethodPost, "http://abc.ide.localhost:8080", "same-site", false},
		{"POST with Origin null", http.MethodPost, "null", "", false},
		{"POST origin with a trailing slash", http.MethodPost, portalOrigin + "/", "", false},
		{"POST origin with another port", http.MethodPost, "http://localhost:8081", "", false},
		{"POST origin https instead of http", http.MethodPost, "https://localhost:8080", "", false},
		{"PUT foreign", http.MethodPut, "https://evil.example", "", false},
		{"PATCH foreign", http.MethodPatch, "https://evil.example", "", false},
		{"DELETE foreign", http.MethodDelete, "https://evil.example", "", false},
		{"POST cross-site without Origin", http.MethodPost, "", "cross-site", false},
		{"POST same-site without Origin", http.MethodPost, "", "same-site", false},
		{"POST same-origin without Origin", http.MethodPost, "", "same-origin", true},
		{"POST user-typed (none) without Origin", http.MethodPost, "", "none", true},
		{"POST from a non-browser client", http.MethodPost, "", "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, "/", nil)
			if tc.origin != "" {
				r.Header.Set("Origin", tc.origin)
			}
			if tc.fetchSite != "" {
				r.Header.Set("Sec-Fetch-Site", tc.fetchSite)
			}
			c := echo.New().NewContext(r, httptest.NewRecorder())
			reached := false
			err := originGuard(portalOrigin)(func(c echo.Context) error { reached = true; return nil })(c)
			if tc.allowed {
				if err != nil || !reached {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if reached {
				t.Fatal("the handler ran")
			}
			if status, code := codeOf(t, err); status != http.StatusForbidden || code != "bad_origin" {
				t.Fatalf("got %d %s, want 403 bad_origin", status, code)
			}
		})
	}
}

func TestTruncate(t *testing.T) {
	if got := truncate("abcdef", 3); got != "abc…" {
		t.Errorf("truncate = %q", got)
	}
	if got := truncate("abc", 3); got != "abc" {
		t.Errorf("truncate = %q", got)
	}
}
