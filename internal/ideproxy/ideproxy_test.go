package ideproxy

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/playbookstudio/gateway/internal/config"
)

func TestSessionIDMatchesTheHostPattern(t *testing.T) {
	for _, tmpl := range []string{"http://{session}.ide.localhost:8080", "https://ide-{session}.example.com", "http://{session}.ide.test"} {
		hosts, err := config.ParseHostPattern(tmpl)
		if err != nil {
			t.Fatal(err)
		}
		p := &Proxy{}
		p.hostSuffix = hosts.Suffix()
		p.hostPrefix = hostPrefixOf(hosts)
		for _, label := range []string{"abc", "ABC", "a-b", "-ab", "0", "", "a.b", "a_b", "x" + string(make([]byte, 70)),
			"6f1c2b1e-5b6a-4c3e-9d2f-1a2b3c4d5e6f", "é", "a b", "z9-"} {
			for _, host := range []string{hosts.URL(label)[len(hosts.Scheme)+3:], label, label + hosts.Suffix(), "IDE-" + label + ".EXAMPLE.COM", hosts.Suffix()} {
				want, _ := hosts.Session(host)
				if got := p.sessionID(host); got != want {
					t.Errorf("%s: sessionID(%q) = %q, Session says %q", tmpl, host, got, want)
				}
			}
		}
	}
}

func TestIDECookieMatchesRequestCookie(t *testing.T) {
	for _, lines := range [][]string{
		nil,
		{"pbs_ide=abc"},
		{"a=1; pbs_ide=abc; b=2"},
		{" pbs_ide = abc "},
		{`pbs_ide="quoted"`},
		{`pbs_ide=bad"value; pbs_ide=good`},
		{"pbs_ide=; x=1"},
		{"x=1", "pbs_ide=second-line"},
		{"pbs_ide=first", "pbs_ide=second"},
		{"pbs_idex=no; xpbs_ide=no"},
		{"pbs_ide=a\\b;pbs_ide=c"},
		{"pbs_ide=with space"},
		{"pbs_ide=planted; pbs_ide=ours; __Host-pbs_ide=other"},
		{strings.Repeat("pbs_ide=junk; ", 20) + "pbs_ide=ours"},
	} {
		checkIDECookies(t, lines)
	}
}

// checkIDECookies: ideCookies finds the values r.CookiesNamed finds, in
// order, at most maxCookieTries of them.
func checkIDECookies(t *testing.T, lines []string) {
	t.Helper()
	h := http.Header{"Cookie": lines}
	var want []string
	for _, ck := range (&http.Request{Header: h}).CookiesNamed(CookieBase) {
		want = append(want, ck.Value)
	}
	if len(want) > maxCookieTries {
		want = want[:maxCookieTries]
	}
	got := ideCookies(h, CookieBase, nil)
	if !slices.Equal(got, want) {
		t.Errorf("ideCookies(%q) = %q, r.CookiesNamed says %q", lines, got, want)
	}
	for _, v := range got {
		if !validCookieValue(v) {
			t.Errorf("ideCookies(%q) has %q: not a valid cookie value", lines, v)
		}
	}
}
