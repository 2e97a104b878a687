package auth

import (
	"net/url"
	"strings"
	"unicode"
)

// SafeReturnTo returns raw if it is a path on this origin that a browser
// cannot read as another host, and "/" otherwise. It is deliberately
// strict: browsers treat "//host", "/\host", "\\host" and tabs or newlines
// inside URLs in surprising ways, and percent-decoding may reveal any of
// them, so anything near those shapes falls back to the portal's home.
func SafeReturnTo(raw string) string {
	if !isSafeReturnTo(raw) {
		return "/"
	}
	return raw
}

func isSafeReturnTo(raw string) bool {
	if raw == "" || len(raw) > 2048 || raw[0] != '/' {
		return false
	}
	// Check the raw form and every decoding of it until it stops changing:
	// a double-encoded "%252F%252F" must not survive a proxy that decodes.
	s := raw
	for i := 0; i < 4; i++ {
		if !safeShape(s) {
			return false
		}
		dec, err := url.PathUnescape(s)
		if err != nil {
			return false
		}
		if dec == s {
			break
		}
		s = dec
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return false
	}
	return true
}

func safeShape(s string) bool {
	if len(s) > 1 && (s[1] == '/' || s[1] == '\\') {
		return false
	}
	if !strings.HasPrefix(s, "/") {
		return false
	}
	for _, r := range s {
		if r == '\\' || unicode.IsControl(r) || unicode.IsSpace(r) || r == unicode.ReplacementChar {
			return false
		}
	}
	return true
}
