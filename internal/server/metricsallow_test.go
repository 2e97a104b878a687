package server

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/labstack/echo/v4"
)

func TestAllowPeers(t *testing.T) {
	nets := mustNets(t, "127.0.0.0/8", "::1/128", "10.20.0.0/16")
	cases := []struct {
		peer, xff string
		allowed   bool
	}{
		{"127.0.0.1:5000", "", true},
		{"127.3.2.1:5000", "", true},
		{"[::1]:5000", "", true},
		{"10.20.30.40:5000", "", true},
		{"10.21.0.1:5000", "", false},
		{"192.0.2.1:5000", "", false},
		{"192.0.2.1:5000", "127.0.0.1", false}, // forwarding headers are not believed
		{"[::2]:5000", "", false},
		{"[::ffff:127.0.0.1]:5000", "", true}, // IPv4-mapped loopback
		{"127.0.0.1", "", false},              // no port: unparsable
		{"", "", false},
		{"garbage:1", "", false},
	}
	for _, tc := range cases {
		r := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		r.RemoteAddr = tc.peer
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
			r.Header.Set("X-Real-Ip", tc.xff)
		}
		e := echo.New()
		e.IPExtractor = echo.ExtractIPFromXFFHeader() // even a trusting extractor changes nothing
		c := e.NewContext(r, httptest.NewRecorder())
		err := allowPeers(nets)(ok)(c)
		if tc.allowed {
			if err != nil {
				t.Errorf("peer %q refused: %v", tc.peer, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("peer %q (X-Forwarded-For %q) allowed", tc.peer, tc.xff)
			continue
		}
		if status, code := codeOf(t, err); status != http.StatusForbidden || code != "forbidden" {
			t.Errorf("peer %q: got %d %s", tc.peer, status, code)
		}
	}

	// With no networks nobody reads metrics.
	r := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	r.RemoteAddr = "127.0.0.1:1"
	if err := allowPeers(nil)(ok)(echo.New().NewContext(r, httptest.NewRecorder())); err == nil {
		t.Error("an empty METRICS_ALLOW let loopback in")
	}
}
