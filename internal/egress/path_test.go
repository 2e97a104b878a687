package egress

import (
	"net/url"
	"path"
	"strings"
	"testing"

	"github.com/playbookstudio/gateway/internal/fault"
)

func mustURL(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestJoinURLRefusesEscapes(t *testing.T) {
	base := mustURL(t, "https://api.example.com/v2")
	for _, p := range []string{
		"/../x", "../x", "/a/../../x", "/a/..", "..",
		"/%2e%2e/x", "/%2E%2e/x", "/%2e%2E/x", "/.%2e/x", "/%2e./x", "/%252e%252e/x", "/%25252e%25252e/x",
		"/./x", "/%2e/x",
		"//evil.example/x", "http://evil.example/", "https://evil.example", "HTTP://evil.example/", "javascript:alert(1)",
		`\evil.example\x`, `/a\..\x`, "/a%5c..%5cx", "/a%2f..%2fx", "/a%252f..",
		"/a\x00b", "/a\nb", "/a\rb", "/a\tb", "/a\x7fb", "/a%00b", "/a%0ab",
		"/a#frag", "/%zz", "/a?b=%zz",
		"/..;/x", "/a/..;/..;/x", "/%2e%2e;/x", "/a;jsessionid=1/../x", "/a%3b/x",
	} {
		t.Run(p, func(t *testing.T) {
			u, err := joinURL(base, p, nil)
			if err == nil {
				t.Fatalf("joinURL(%q) = %s, want invalid_path", p, u)
			}
			f, ok := fault.As(err)
			if !ok || f.Code != "invalid_path" || f.Kind != fault.Invalid || f.Message == "" {
				t.Fatalf("joinURL(%q) error = %v, want an Invalid invalid_path fault", p, err)
			}
		})
	}
}

func TestJoinURL(t *testing.T) {
	for _, c := range []struct {
		base, path string
		query      url.Values
		want       string
	}{
		{"https://api.example.com/v2", "/users/1", nil, "https://api.example.com/v2/users/1"},
		{"https://api.example.com/v2/", "users/1", nil, "https://api.example.com/v2/users/1"},
		{"https://api.example.com/v2", "", nil, "https://api.example.com/v2"},
		{"https://api.example.com/v2", "/", nil, "https://api.example.com/v2/"},
		{"https://api.example.com", "/x", nil, "https://api.example.com/x"},
		{"https://api.example.com", "", nil, "https://api.example.com/"},
		{"https://api.example.com/v2?api-version=1", "/u?b=2&a=1", url.Values{"c": {"3"}, "a": {"0"}}, "https://api.example.com/v2/u?a=1&a=0&api-version=1&b=2&c=3"},
		{"https://api.example.com/v2", "/files/a%20b%2Bc", nil, "https://api.example.com/v2/files/a%20b%2Bc"},
		{"https://api.example.com/v2", "/a..b/c...", nil, "https://api.example.com/v2/a..b/c..."},
		{"https://api.example.com/v2", "/projects/p:getIamPolicy", nil, "https://api.example.com/v2/projects/p:getIamPolicy"},
	} {
		u, err := joinURL(mustURL(t, c.base), c.path, c.query)
		if err != nil {
			t.Errorf("joinURL(%s, %q): %v", c.base, c.path, err)
			continue
		}
		if u.String() != c.want {
			t.Errorf("joinURL(%s, %q) = %s, want %s", c.base, c.path, u, c.want)
		}
	}
}

// FuzzJoinURL: whatever the path, the result is on the base's host, under
// its path, and holds no dot segment, even once decoded.
func FuzzJoinURL(f *testing.F) {
	for _, s := range []string{"/users/1", "/../x", "/%2e%2e/x", "/%252e%252e/", "//evil.example/", "http://evil.example/",
		`\x`, "/a?b=c", "/%2f", "/a/./b", "/.%2E/", "%2e%2e", "/a%00", "/v2x", "?x=1", "/a//b", "/%25"} {
		f.Add(s)
	}
	base := mustURL(f, "https://api.example.com/v2")
	f.Fuzz(func(t *testing.T, p string) {
		u, err := joinURL(base, p, nil)
		if err != nil {
			if fault.CodeOf(err) != "invalid_path" {
				t.Fatalf("joinURL(%q): %v, want invalid_path", p, err)
			}
			return
		}
		// What a server sees: the URL re-parsed from its text.
		back, err := url.Parse(u.String())
		if err != nil {
			t.Fatalf("joinURL(%q) = %q does not parse: %v", p, u, err)
		}
		if back.Scheme != "https" || back.Host != "api.example.com" || back.User != nil {
			t.Fatalf("joinURL(%q) = %q leaves the base host", p, u)
		}
		if c := path.Clean(back.Path); c != "/v2" && !strings.HasPrefix(c, "/v2/") {
			t.Fatalf("joinURL(%q) = %q leaves the base path (%q)", p, u, c)
		}
		s := back.EscapedPath()
		for i := 0; i < 5; i++ {
			for _, seg := range strings.Split(s, "/") {
				if seg == ".." || seg == "." {
					t.Fatalf("joinURL(%q) = %q has a dot segment after %d decodings", p, u, i)
				}
			}
			d, err := url.PathUnescape(s)
			if err != nil || d == s {
				break
			}
			s = d
		}
	})
}
