package config

import (
	"strings"
	"testing"
)

func TestParseHostPatternGood(t *testing.T) {
	cases := []struct {
		template, scheme, prefix, suffix string
	}{
		{"http://{session}.ide.localhost:8080", "http", "", ".ide.localhost:8080"},
		{"http://{session}.ide.localhost:8080/", "http", "", ".ide.localhost:8080"},
		{"https://ide-{session}.example.com", "https", "ide-", ".example.com"},
		{"https://ws{session}.Example.COM", "https", "ws", ".example.com"},
		{"HTTPS://{session}.IDE.example.com:8443", "https", "", ".ide.example.com:8443"},
		{"http://{session}.localhost", "http", "", ".localhost"},
	}
	for _, tc := range cases {
		p, err := ParseHostPattern(tc.template)
		if err != nil {
			t.Errorf("ParseHostPattern(%q): %v", tc.template, err)
			continue
		}
		if p.Scheme != tc.scheme || p.prefix != tc.prefix || p.suffix != tc.suffix || p.Suffix() != tc.suffix {
			t.Errorf("ParseHostPattern(%q) = %+v, want scheme %q prefix %q suffix %q", tc.template, p, tc.scheme, tc.prefix, tc.suffix)
		}
	}
}

func TestParseHostPatternBad(t *testing.T) {
	for _, tmpl := range []string{
		"",
		"{session}",
		"http://ide.localhost:8080", // no placeholder
		"http://{session}.{session}.localhost:8080",  // twice
		"http://{session}.ide.localhost/{session}",   // twice, once in the path
		"http://ide.localhost:8080/{session}",        // in the path
		"http://{session}.ide.localhost:8080/path",   // a path
		"http://{session}.ide.localhost:8080?x=1",    // a query
		"http://{session}.ide.localhost:8080?",       // an empty query
		"http://{session}.ide.localhost:8080#frag",   // a fragment
		"http://{session}.ide.localhost:8080/#",      // an empty fragment
		"http://ide.localhost:8080/?s={session}",     // in the query
		"http://ide.localhost:8080/#{session}",       // in the fragment
		"ftp://{session}.ide.localhost",              // not http(s)
		"{session}.ide.localhost:8080",               // no scheme
		"//{session}.ide.localhost:8080",             // no scheme
		"http://{session}",                           // no domain after it
		"http://a.{session}.ide.localhost",           // not the first label
		"http://{session}ide.localhost",              // not a whole label
		"http://{session}-ide.localhost",             // not a whole label
		"http://user@{session}.ide.localhost",        // userinfo
		"http://{session}.ide.localhost:port",        // bad port
		"http://{session}.ide.localhost:8080:8080",   // bad port
		"http://{session}.ide local.host",            // space in host
		"http://{SESSION}.ide.localhost",             // placeholder is case-sensitive
		"http://{session}.ide.localhost\\@evil.test", // backslash
	} {
		if p, err := ParseHostPattern(tmpl); err == nil {
			t.Errorf("ParseHostPattern(%q) = %+v, want an error", tmpl, p)
		} else if tmpl != "" && !strings.Contains(err.Error(), tmpl) && !strings.Contains(err.Error(), "{session}") {
			t.Errorf("ParseHostPattern(%q): error %q names neither the template nor the placeholder", tmpl, err)
		}
	}
}

func TestHostPatternSession(t *testing.T) {
	p, err := ParseHostPattern("http://{session}.ide.localhost:8080")
	if err != nil {
		t.Fatal(err)
	}
	long63 := strings.Repeat("a", 63)
	cases := []struct {
		host, id string
		ok       bool
	}{
		{"abc.ide.localhost:8080", "abc", true},
		{"ABC.IDE.LocalHost:8080", "abc", true},
		{"3f1c2e4a-9b7d-4c2e-8f1a-0b9c8d7e6f5a.ide.localhost:8080", "3f1c2e4a-9b7d-4c2e-8f1a-0b9c8d7e6f5a", true},
		{"0.ide.localhost:8080", "0", true},
		{long63 + ".ide.localhost:8080", long63, true},
		{long63 + "a.ide.localhost:8080", "", false}, // 64 characters
		{"a.b.ide.localhost:8080", "", false},        // two labels
		{"abc.ide.localhost:9090", "", false},        // wrong port
		{"abc.ide.localhost", "", false},             // no port
		{"abc.ide.localhost:80800", "", false},
		{".ide.localhost:8080", "", false}, // empty label
		{"ide.localhost:8080", "", false},
		{"a_b.ide.localhost:8080", "", false},
		{"-abc.ide.localhost:8080", "", false},
		{"ab%63.ide.localhost:8080", "", false},
		{"ab c.ide.localhost:8080", "", false},
		{"abc.ide.localhost:8080.evil.test", "", false},
		{"evil.test/abc.ide.localhost:8080", "", false},
		{"localhost:8080", "", false},
		{"", "", false},
	}
	for _, tc := range cases {
		id, ok := p.Session(tc.host)
		if id != tc.id || ok != tc.ok {
			t.Errorf("Session(%q) = %q, %v; want %q, %v", tc.host, id, ok, tc.id, tc.ok)
		}
		if p.Matches(tc.host) != tc.ok {
			t.Errorf("Matches(%q) = %v", tc.host, !tc.ok)
		}
	}

	prefixed, err := ParseHostPattern("https://ide-{session}.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if id, ok := prefixed.Session("IDE-xyz.example.com"); !ok || id != "xyz" {
		t.Errorf("prefixed Session = %q, %v", id, ok)
	}
	for _, h := range []string{"xyz.example.com", "ide-.example.com", "ide-xyz.example.com:443", "ide-xyz.example.org"} {
		if id, ok := prefixed.Session(h); ok {
			t.Errorf("prefixed Session(%q) = %q, want refusal", h, id)
		}
	}

	var zero HostPattern
	if id, ok := zero.Session("abc.ide.localhost:8080"); ok {
		t.Errorf("the zero pattern matched: %q", id)
	}
}

func TestHostPatternURL(t *testing.T) {
	for _, tc := range []struct{ template, id, want string }{
		{"http://{session}.ide.localhost:8080", "abc", "http://abc.ide.localhost:8080"},
		{"http://{session}.ide.localhost:8080/", "abc", "http://abc.ide.localhost:8080"},
		{"https://ide-{session}.Example.com", "x-1", "https://ide-x-1.example.com"},
	} {
		p, err := ParseHostPattern(tc.template)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.URL(tc.id); got != tc.want {
			t.Errorf("%q.URL(%q) = %q, want %q", tc.template, tc.id, got, tc.want)
		}
		host := strings.TrimPrefix(p.URL(tc.id), p.Scheme+"://")
		if id, ok := p.Session(host); !ok || id != tc.id {
			t.Errorf("%q: Session(URL(%q)) = %q, %v", tc.template, tc.id, id, ok)
		}
	}
}

// FuzzHostPatternSession checks, for any template that parses and any
// host, that a host accepted as an IDE host names a session whose URL is
// exactly that host, and that the id is a plain DNS label.
func FuzzHostPatternSession(f *testing.F) {
	for _, seed := range []struct{ template, host string }{
		{"http://{session}.ide.localhost:8080", "abc.ide.localhost:8080"},
		{"http://{session}.ide.localhost:8080", "ABC.IDE.localhost:8080"},
		{"http://{session}.ide.localhost:8080", "a.b.ide.localhost:8080"},
		{"http://{session}.ide.localhost:8080", "abc.ide.localhost:9090"},
		{"http://{session}.ide.localhost:8080", ".ide.localhost:8080"},
		{"http://{session}.ide.localhost:8080", "a_b.ide.localhost:8080"},
		{"http://{session}.ide.localhost:8080", strings.Repeat("z", 64) + ".ide.localhost:8080"},
		{"https://ide-{session}.example.com", "ide-3f1c2e4a-9b7d-4c2e-8f1a-0b9c8d7e6f5a.example.com"},
		{"https://ide-{session}.example.com", "IDE-X.EXAMPLE.COM"},
		{"https://{session}.Example.com/", "k.example.com"},
		{"http://{session}.ide.localhost:8080", "\u212a.ide.localhost:8080"}, // Kelvin sign lowers to k
		{"http://{session}.ide.localhost:8080", "abc.ide.localhost:8080\x00"},
	} {
		f.Add(seed.template, seed.host)
	}
	f.Fuzz(func(t *testing.T, template, host string) {
		p, err := ParseHostPattern(template)
		if err != nil {
			return
		}
		id, ok := p.Session(host)
		if !ok {
			if id != "" {
				t.Fatalf("Session(%q) refused but returned %q", host, id)
			}
			return
		}
		if want := p.Scheme + "://" + strings.ToLower(host); p.URL(id) != want {
			t.Fatalf("template %q: Session(%q) = %q but URL(%q) = %q, want %q", template, host, id, id, p.URL(id), want)
		}
		if !sessionLabel.MatchString(id) || len(id) > 63 {
			t.Fatalf("Session(%q) = %q, not a plain DNS label", host, id)
		}
		if !p.Matches(host) {
			t.Fatalf("Matches(%q) disagrees with Session", host)
		}
	})
}
