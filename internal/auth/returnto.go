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
	// A value still changing after maxDecodes rounds is refused rather
	// than left with its innermost decoding unchecked.
	s := raw
	for i := 0; ; i++ {
		// Unencoded spaces never come from a browser; encoded ones (a
		// search for "a b") are harmless once decoded.
		if !safeShape(s) || (i == 0 && strings.ContainsFunc(s, unicode.IsSpace)) {
			return false
		}
		dec, err := url.PathUnescape(s)
		if err != nil {
			return false
		}
		if dec == s {
			break
		}
		if i == maxDecodes {
			return false
		}
		s = dec
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return false
	}
	return true
}

// maxDecodes is how many layers of percent-encoding a return path may have.
const maxDecodes = 3

func safeShape(s string) bool {
	if len(s) > 1 && (s[1] == '/' || s[1] == '\\') {
		return false
	}
	if !strings.HasPrefix(s, "/") {
		return false
	}
	for _, r := range s {
		if r == '\\' || unicode.IsControl(r) || (r != ' ' && unicode.IsSpace(r)) || r == unicode.ReplacementChar {
			return false
		}
	}
	return true
}
