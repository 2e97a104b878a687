package config

import (
	"net"
	"strings"
)

// SecureCookies tells whether cookies for scheme://host may carry the
// Secure attribute, and so the __Host- prefix. Browsers accept Secure
// cookies from https origins and from the loopback names they treat as
// potentially trustworthy (localhost, *.localhost, 127.0.0.0/8, ::1) even
// over plain http; measured in Chromium here: an http://*.localhost page
// sets __Host- cookies and a sibling host's Domain-scoped __Host- cookie is
// refused. On any other plain-http host the prefix would make the browser
// drop the cookie, so those local-only set-ups go without it (README,
// "Cookies on plain http").
func SecureCookies(scheme, host string) bool {
	if scheme == "https" {
		return true
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// CookieName gives a gateway cookie its __Host- prefixed name wherever
// SecureCookies allows: such a cookie cannot be set or shadowed by a sibling
// host (an IDE host serving a workspace's pages), only by this host itself.
func CookieName(base, scheme, host string) string {
	if SecureCookies(scheme, host) {
		return "__Host-" + base
	}
	return base
}
