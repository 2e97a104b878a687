package egress

import (
	"bytes"
	"net/http"
	"net/url"
	"sort"
	"strings"
)

const redacted = "[redacted]"

// minRedacted: shorter values are not looked for. Replacing every "t" of
// an answer would wreck it, and a value that short protects nothing.
const minRedacted = 4

// redactor removes a profile's secret values, and the values derived from
// them that travel on the wire (an OAuth2 access token, a Basic header's
// base64), from what goes back to a playbook: a service that echoes a
// request (httpbin, an error page quoting the Authorization header) must
// not hand the credential to the playbook's author.
type redactor struct{ values [][]byte }

func newRedactor(values ...string) *redactor {
	seen := map[string]bool{}
	r := &redactor{}
	for _, v := range values {
		// The URL-encoded form too: a query-parameter key comes back that
		// way in echoed URLs.
		for _, f := range []string{v, url.QueryEscape(v), url.PathEscape(v)} {
			if len(f) >= minRedacted && !seen[f] {
				seen[f] = true
				r.values = append(r.values, []byte(f))
			}
		}
	}
	// Longest first, so a secret that contains another is removed whole.
	sort.Slice(r.values, func(i, j int) bool { return len(r.values[i]) > len(r.values[j]) })
	return r
}

func (r *redactor) add(v string) {
	if v == "" {
		return
	}
	n := newRedactor(v)
	r.values = append(r.values, n.values...)
	sort.Slice(r.values, func(i, j int) bool { return len(r.values[i]) > len(r.values[j]) })
}

func (r *redactor) bytes(b []byte) []byte {
	for _, v := range r.values {
		if bytes.Contains(b, v) {
			b = bytes.ReplaceAll(b, v, []byte(redacted))
		}
	}
	return b
}

func (r *redactor) string(s string) string {
	for _, v := range r.values {
		if strings.Contains(s, string(v)) {
			s = strings.ReplaceAll(s, string(v), redacted)
		}
	}
	return s
}

// cutTail drops a trailing proper prefix of any secret from a body that
// was cut at the size cap: the cut may fall inside a secret, and what is
// left of it would not match the whole value.
func (r *redactor) cutTail(b []byte) []byte {
	for _, v := range r.values {
		for k := len(v) - 1; k > 0; k-- {
			if bytes.HasSuffix(b, v[:k]) {
				b = b[:len(b)-k]
				break
			}
		}
	}
	return b
}

func (r *redactor) header(h http.Header) http.Header {
	out := make(http.Header, len(h))
	for k, vs := range h {
		c := make([]string, len(vs))
		for i, v := range vs {
			c[i] = r.string(v)
		}
		out[k] = c
	}
	return out
}
