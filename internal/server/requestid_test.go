package server

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
)

// serveRequestID runs requestIDs alone and returns the id the handler saw
// and the one the response carries.
func serveRequestID(t *testing.T, trusted []string, remoteAddr, incoming string) (seen, header string) {
	t.Helper()
	e := echo.New()
	e.Use(requestIDs(mustNets(t, trusted...)))
	e.GET("/", func(c echo.Context) error {
		seen = requestID(c)
		return c.NoContent(http.StatusNoContent)
	})
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = remoteAddr
	if incoming != "" {
		r.Header.Set(echo.HeaderXRequestID, incoming)
	}
	w := httptest.NewRecorder()
	e.ServeHTTP(w, r)
	return seen, w.Header().Get(echo.HeaderXRequestID)
}

var generatedID = regexp.MustCompile(`^[0-9a-f]{24}$`)

func TestRequestIDGenerated(t *testing.T) {
	seen, header := serveRequestID(t, nil, "192.0.2.1:1234", "")
	if !generatedID.MatchString(seen) || header != seen {
		t.Fatalf("handler saw %q, header %q; want the same 24 hex digits", seen, header)
	}
	again, _ := serveRequestID(t, nil, "192.0.2.1:1234", "")
	if again == seen {
		t.Fatalf("two requests got the same id %q", seen)
	}
}

func TestRequestIDIncoming(t *testing.T) {
	const proxy = "10.0.0.0/8"
	cases := []struct {
		name     string
		trusted  []string
		peer     string
		incoming string
		keep     bool
	}{
		{"no trusted proxies", nil, "10.1.1.1:1234", "abc-123", false},
		{"from a trusted proxy", []string{proxy}, "10.1.1.1:1234", "abc-123.X_y", true},
		{"from a trusted IPv6 proxy", []string{"fd00::/8"}, "[fd00::1]:1234", "abc", true},
		{"from a client while proxies are trusted", []string{proxy}, "192.0.2.1:1234", "forged", false},
		{"from loopback, not in the list", []string{proxy}, "127.0.0.1:1234", "forged", false},
		{"too long", []string{proxy}, "10.1.1.1:1234", strings.Repeat("a", 65), false},
		{"64 characters", []string{proxy}, "10.1.1.1:1234", strings.Repeat("a", 64), true},
		{"with a space", []string{proxy}, "10.1.1.1:1234", "abc def", false},
		{"with a newline", []string{proxy}, "10.1.1.1:1234", "abc\ndef", false},
		{"with JSON", []string{proxy}, "10.1.1.1:1234", `a","user":"admin`, false},
		{"unparsable peer", []string{proxy}, "garbage", "abc", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			seen, header := serveRequestID(t, tc.trusted, tc.peer, tc.incoming)
			if header != seen {
				t.Fatalf("header %q differs from context %q", header, seen)
			}
			if tc.keep && seen != tc.incoming {
				t.Fatalf("id = %q, want the incoming %q", seen, tc.incoming)
			}
			if !tc.keep && !generatedID.MatchString(seen) {
				t.Fatalf("id = %q, want a fresh one instead of %q", seen, tc.incoming)
			}
		})
	}
}

func TestRequestIDWithoutMiddleware(t *testing.T) {
	c := echo.New().NewContext(httptest.NewRequest(http.MethodGet, "/", nil), httptest.NewRecorder())
	if id := requestID(c); id != "" {
		t.Fatalf("requestID without the middleware = %q", id)
	}
}
