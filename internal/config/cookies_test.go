package config

import "testing"

func TestSecureCookies(t *testing.T) {
	for _, c := range []struct {
		scheme, host string
		want         bool
	}{
		{"https", "portal.example.com", true},
		{"http", "playbooks.localhost:8080", true},
		{"http", "abc.ide.playbooks.localhost:8080", true},
		{"http", "localhost", true},
		{"http", "LOCALHOST.", true},
		{"http", "127.0.0.1:8080", true},
		{"http", "[::1]:8080", true},
		{"http", "portal.example.com", false},
		{"http", "localhost.example.com", false},
		{"http", "10.0.0.1:8080", false},
	} {
		if got := SecureCookies(c.scheme, c.host); got != c.want {
			t.Errorf("SecureCookies(%q, %q) = %v, want %v", c.scheme, c.host, got, c.want)
		}
	}
	if got := CookieName("pbs_session", "http", "playbooks.localhost:8080"); got != "__Host-pbs_session" {
		t.Errorf("CookieName = %q", got)
	}
	if got := CookieName("pbs_session", "http", "portal.example.com"); got != "pbs_session" {
		t.Errorf("CookieName = %q", got)
	}
}
