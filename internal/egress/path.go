package egress

import (
	"net/url"
	"path"
	"strings"

	"github.com/playbookstudio/gateway/internal/fault"
)

// maxDecodeRounds bounds how often a segment is percent-decoded when
// looking for a hidden "..": %252e%252e needs two rounds; anything that is
// still changing after this many is refused rather than trusted.
const maxDecodeRounds = 4

func invalidPath(msg string) error {
	return fault.New(fault.Invalid, "invalid_path", msg)
}

// joinURL puts p (a path, possibly with a query) under base and merges
// the queries of base, p and extra. The answer never leaves base: same
// scheme, same host, and a path under base's path. Anything that could be
// read as leaving it by this code, a proxy or the server (an absolute or
// scheme-relative URL, a backslash, a dot segment even percent-encoded any
// number of times, an encoded slash, a control character) is refused, not
// cleaned: a playbook that sends one is wrong, and silently rewriting it
// would hide that.
func joinURL(base *url.URL, p string, extra url.Values) (*url.URL, error) {
	for i := 0; i < len(p); i++ {
		if c := p[i]; c < 0x20 || c == 0x7f {
			return nil, invalidPath("the path contains a control character (byte 0x" + hex2(c) + ")")
		}
	}
	switch {
	case strings.Contains(p, `\`):
		return nil, invalidPath(`the path contains a backslash: some servers read it as "/"`)
	case strings.HasPrefix(p, "//"):
		return nil, invalidPath("the path starts with // (a scheme-relative URL naming another host): give a path under the profile's base URL")
	case strings.Contains(p, "#"):
		return nil, invalidPath("the path contains a fragment (#): fragments are never sent")
	}
	rawPath, rawQuery, _ := strings.Cut(p, "?")
	if i := strings.IndexByte(rawPath, ':'); i >= 0 && !strings.Contains(rawPath[:i], "/") {
		// "http://evil.example/", "mailto:x", "javascript:…": a scheme.
		return nil, invalidPath("the path is an absolute URL: give a path under the profile's base URL, not a URL")
	}
	segs := strings.Split(rawPath, "/")
	for _, seg := range segs {
		if err := checkSegment(seg); err != nil {
			return nil, err
		}
	}
	basePath := strings.TrimSuffix(base.EscapedPath(), "/")
	joined := basePath
	if rel := strings.TrimPrefix(rawPath, "/"); rel != "" || rawPath == "/" {
		joined = basePath + "/" + rel
	}
	if joined == "" {
		joined = "/"
	}
	decoded, err := url.PathUnescape(joined)
	if err != nil {
		return nil, invalidPath("the path has a malformed percent-encoding")
	}
	// The belt to checkSegment's braces: after cleaning, the escaped and the
	// decoded path must still sit under the base path.
	if !under(path.Clean(joined), basePath) || !under(path.Clean(decoded), strings.TrimSuffix(base.Path, "/")) {
		return nil, invalidPath("the path leaves the profile's base path " + base.Path)
	}

	q, err := url.ParseQuery(base.RawQuery)
	if err != nil {
		return nil, invalidPath("the profile's base URL has a malformed query")
	}
	pq, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, invalidPath("the path's query is malformed: " + err.Error())
	}
	for k, vs := range pq {
		q[k] = append(q[k], vs...)
	}
	for k, vs := range extra {
		q[k] = append(q[k], vs...)
	}

	u := &url.URL{Scheme: base.Scheme, Host: base.Host, Path: decoded, RawQuery: q.Encode()}
	if u.EscapedPath() != joined {
		u.RawPath = joined
	}
	return u, nil
}

// checkSegment refuses a path segment that is, or decodes (repeatedly) to,
// a dot segment, or that hides a separator or a control character.
func checkSegment(seg string) error {
	s := seg
	for round := 0; ; round++ {
		// Servlet containers (Tomcat, Jetty, Spring) cut ";params" off a
		// segment before resolving dots: "..;" leaves the base path there.
		if strings.Contains(s, ";") {
			return invalidPath(`the path segment "` + seg + `" holds a ";" (path parameters), which some servers read as a way out of the base path`)
		}
		if s == "." || s == ".." {
			return invalidPath(`the path contains a dot segment ("` + seg + `"): it could leave the profile's base path`)
		}
		if round > 0 && (strings.ContainsAny(s, `/\`) || hasControl(s)) {
			return invalidPath(`the path segment "` + seg + `" hides a slash, a backslash or a control character in percent-encoding`)
		}
		if !strings.Contains(s, "%") {
			return nil
		}
		if round == maxDecodeRounds {
			return invalidPath(`the path segment "` + seg + `" is percent-encoded too many times over`)
		}
		d, err := url.PathUnescape(s)
		if err != nil {
			return invalidPath(`the path segment "` + seg + `" has a malformed percent-encoding`)
		}
		if d == s {
			return nil
		}
		s = d
	}
}

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// under reports whether p is base or below it ("/v2x" is not under "/v2").
func under(p, base string) bool {
	if base == "" || base == "/" {
		return strings.HasPrefix(p, "/")
	}
	return p == base || strings.HasPrefix(p, base+"/")
}

func hex2(c byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[c>>4], digits[c&15]})
}
