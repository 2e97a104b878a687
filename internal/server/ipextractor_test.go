package server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestIPExtractor(t *testing.T) {
	cases := []struct {
		name     string
		trusted  []string
		peer     string
		xff      string // header lines separated by |
		realIP   string
		expected string
	}{
		{"no proxies: direct", nil, "192.0.2.1:1", "", "", "192.0.2.1"},
		{"no proxies: XFF ignored", nil, "192.0.2.1:1", "203.0.113.9", "", "192.0.2.1"},
		{"no proxies: X-Real-IP ignored", nil, "192.0.2.1:1", "", "203.0.113.9", "192.0.2.1"},
		{"no proxies: loopback peer's XFF ignored", nil, "127.0.0.1:1", "203.0.113.9", "", "127.0.0.1"},
		{"no proxies: private peer's XFF ignored", nil, "10.0.0.1:1", "203.0.113.9", "", "10.0.0.1"},
		{"no proxies: IPv6 peer", nil, "[2001:db8::1]:1", "", "", "2001:db8::1"},
		{"trusted proxy: XFF believed", []string{"10.0.0.0/8"}, "10.0.0.1:1", "203.0.113.9", "", "203.0.113.9"},
		{"trusted proxy: chain through proxies", []string{"10.0.0.0/8"}, "10.0.0.1:1", "203.0.113.9, 10.0.0.2", "", "203.0.113.9"},
		{"trusted proxy: forged left entry ignored", []string{"10.0.0.0/8"}, "10.0.0.1:1", "1.1.1.1, 203.0.113.9", "", "203.0.113.9"},
		{"trusted proxy: several header lines", []string{"10.0.0.0/8"}, "10.0.0.1:1", "1.1.1.1|203.0.113.9", "", "203.0.113.9"},
		{"trusted proxy: X-Real-IP not used", []string{"10.0.0.0/8"}, "10.0.0.1:1", "", "203.0.113.9", "10.0.0.1"},
		{"trusted proxy: unparsable XFF", []string{"10.0.0.0/8"}, "10.0.0.1:1", "not-an-ip", "", "10.0.0.1"},
		{"untrusted peer: XFF ignored", []string{"10.0.0.0/8"}, "192.0.2.1:1", "203.0.113.9", "", "192.0.2.1"},
		{"loopback not trusted by default", []string{"10.0.0.0/8"}, "127.0.0.1:1", "203.0.113.9", "", "127.0.0.1"},
		{"private net not trusted by default", []string{"10.0.0.0/8"}, "192.168.1.1:1", "203.0.113.9", "", "192.168.1.1"},
		{"link-local not trusted by default", []string{"10.0.0.0/8"}, "169.254.1.1:1", "203.0.113.9", "", "169.254.1.1"},
		{"loopback trusted when listed", []string{"127.0.0.1/32"}, "127.0.0.1:1", "203.0.113.9", "", "203.0.113.9"},
		{"IPv6 proxy", []string{"fd00::/8"}, "[fd00::1]:1", "2001:db8::7", "", "2001:db8::7"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = tc.peer
			if tc.xff != "" {
				for _, line := range strings.Split(tc.xff, "|") {
					r.Header.Add("X-Forwarded-For", line)
				}
			}
			if tc.realIP != "" {
				r.Header.Set("X-Real-Ip", tc.realIP)
			}
			if got := ipExtractor(mustNets(t, tc.trusted...))(r); got != tc.expected {
				t.Errorf("RealIP = %q, want %q", got, tc.expected)
			}
		})
	}
}
