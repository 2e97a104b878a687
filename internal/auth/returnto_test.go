package auth

import (
	"net/url"
	"strings"
	"testing"
)

func TestSafeReturnToAccepts(t *testing.T) {
	for _, path := range []string{
		"/",
		"/playbooks",
		"/playbooks/",
		"/playbooks?x=1",
		"/search?q=a%20b",
		"/playbooks?x=1&y=two",
		"/a/b#frag",
		"/a/b?q=1#frag",
		"/playbooks/p-42/edit",
		"/search?q=%2F%2Fnot-a-host", // encoded slashes inside the query are fine
		"/a/./b",
		"/a/../b",
		"/ünïcode",
		"/" + strings.Repeat("a", 2047),
	} {
		t.Run(path[:min(len(path), 40)], func(t *testing.T) {
			if got := SafeReturnTo(path); got != path {
				t.Fatalf("SafeReturnTo(%q) = %q, want it unchanged", path, got)
			}
		})
	}
}

// refusedReturnTo are values a browser could read as another origin, or
// that decode to something it could, or that are simply malformed.
var refusedReturnTo = []string{
	"",
	"//evil.example",
	"///evil.example",
	"//evil.example/path",
	"/\\evil.example",
	"\\\\evil.example",
	"\\/evil.example",
	"https://evil.example",
	"http://evil.example/",
	"http:evil.example",
	"HTTPS://evil.example",
	"javascript:alert(1)",
	"JavaScript:alert(1)",
	"data:text/html,<script>alert(1)</script>",
	"evil.example",
	"playbooks",
	"/%2F%2Fevil.example",
	"/%2f%2fevil.example",
	"/%2F/evil.example",
	"/%5Cevil.example",
	"/%5cevil.example",
	"%2F%2Fevil.example",
	"/%252F%252Fevil.example",
	"/%25252F%25252Fevil.example",
	"/%2525252F%2525252Fevil.example",     // three layers
	"/%252525252F%252525252Fevil.example", // four layers: too deep to judge
	"/\t/evil.example",
	"/\\t/evil.example",
	"/%09/evil.example",
	"/ /evil",
	"/\n/evil.example",
	"/playbooks\r\nSet-Cookie: x=1",
	"/playbooks%0d%0aSet-Cookie:%20x=1",
	"/playbooks\n",
	"/\x00",
	"/%00",
	"/\x7f",
	"/\u00a0/evil.example", // no-break space
	"/\u2028",              // line separator
	"/\xff\xfe",            // not UTF-8
	"/%ff",
	"/%zz",
	"/%",
	"/" + strings.Repeat("a", 2048), // over-long
	strings.Repeat("/", 3000),
}

func TestSafeReturnToRefuses(t *testing.T) {
	for _, raw := range refusedReturnTo {
		t.Run(raw[:min(len(raw), 40)], func(t *testing.T) {
			if got := SafeReturnTo(raw); got != "/" {
				t.Fatalf("SafeReturnTo(%q) = %q, want /", raw, got)
			}
		})
	}
}

func FuzzSafeReturnTo(f *testing.F) {
	for _, s := range refusedReturnTo {
		f.Add(s)
	}
	for _, s := range []string{"/", "/playbooks", "/playbooks?x=1", "/a/b#frag", "/a/..//b", "/.//evil"} {
		f.Add(s)
	}
	base, err := url.Parse("http://portal.example:8080/base")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got := SafeReturnTo(raw)
		if got != "/" && got != raw {
			t.Fatalf("SafeReturnTo(%q) = %q: neither / nor the input", raw, got)
		}
		if strings.HasPrefix(got, "//") || strings.Contains(got, `\`) {
			t.Fatalf("SafeReturnTo(%q) = %q: starts with // or holds a backslash", raw, got)
		}
		ref, err := url.Parse(got)
		if err != nil {
			t.Fatalf("SafeReturnTo(%q) = %q, which does not parse: %v", raw, got, err)
		}
		res := base.ResolveReference(ref)
		if res.Scheme != "http" || res.Host != "portal.example:8080" || res.User != nil {
			t.Fatalf("SafeReturnTo(%q) = %q resolves to %q: another origin", raw, got, res)
		}
	})
}
