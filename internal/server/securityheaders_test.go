package server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
)

func TestSecurityHeaders(t *testing.T) {
	for _, hsts := range []bool{false, true} {
		e := echo.New()
		e.Use(securityHeaders("default-src 'self'", hsts))
		e.GET("/", ok)
		// Headers are set before the handler runs, so errors carry them too.
		for _, path := range []string{"/", "/missing"} {
			w := httptest.NewRecorder()
			e.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
			h := w.Header()
			want := map[string]string{
				"Content-Security-Policy":      "default-src 'self'",
				"X-Content-Type-Options":       "nosniff",
				"Referrer-Policy":              "strict-origin-when-cross-origin",
				"Cross-Origin-Resource-Policy": "same-origin",
				"Permissions-Policy":           "camera=(), microphone=(), geolocation=(), payment=()",
			}
			for k, v := range want {
				if h.Get(k) != v {
					t.Errorf("hsts=%v %s: %s = %q, want %q", hsts, path, k, h.Get(k), v)
				}
			}
			if got := h.Get("Strict-Transport-Security"); (got != "") != hsts {
				t.Errorf("hsts=%v %s: Strict-Transport-Security = %q", hsts, path, got)
			}
			if h.Get("X-Frame-Options") != "" {
				t.Errorf("X-Frame-Options is set; frame-ancestors replaces it")
			}
		}
	}
}

func TestPortalCSP(t *testing.T) {
	csp := portalCSP("http://*.ide.localhost:8080", "http://localhost:8081", []string{"https://a.example.com", "https://b.example.com"})
	directives := map[string]string{}
	for _, d := range strings.Split(csp, "; ") {
		name, value, _ := strings.Cut(d, " ")
		directives[name] = value
	}
	want := map[string]string{
		"default-src":     "'self'",
		"script-src":      "'self'",
		"style-src":       "'self'",
		"connect-src":     "'self'",
		"frame-src":       "http://*.ide.localhost:8080",
		"frame-ancestors": "'self' https://a.example.com https://b.example.com",
		"form-action":     "'self' http://localhost:8081",
		"base-uri":        "'none'",
		"object-src":      "'none'",
	}
	for k, v := range want {
		if directives[k] != v {
			t.Errorf("%s = %q, want %q (CSP %q)", k, directives[k], v, csp)
		}
	}
	if strings.Contains(csp, "unsafe") {
		t.Errorf("CSP allows unsafe sources: %q", csp)
	}
	// Without outer portals only the portal itself may frame it.
	if got := portalCSP("x", "y", nil); !strings.Contains(got, "frame-ancestors 'self';") {
		t.Errorf("portalCSP without ancestors = %q", got)
	}
}

func TestIDECSP(t *testing.T) {
	got := ideCSP("http://localhost:8080", []string{"https://outer.example.com"})
	want := "frame-ancestors 'self' http://localhost:8080 https://outer.example.com; base-uri 'self'; object-src 'none'"
	if got != want {
		t.Errorf("ideCSP = %q, want %q", got, want)
	}
}
