package ideproxy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"slices"
	"strings"
	"testing"

	"github.com/playbookstudio/gateway/internal/editsession"
)

var bob = editsession.Identity{ID: "bob", Name: "Bob", Tenant: "t1"}

// setCookieBackend answers every request with cookies a page on the IDE
// host could set: for the parent domain, and of the gateway's names. Its
// WebSocket upgrades carry them too, and its HTTP answers come after a
// 103 that carries them.
func setCookieBackend(w http.ResponseWriter, r *http.Request) {
	lines := []string{
		"theme=dark; Domain=ide.test; Path=/",
		"lang=en; path=/; DOMAIN=.ide.test; domain=test; HttpOnly",
		"plain=1; Path=/",
		"pbs_ide=planted; Domain=ide.test; Path=/",
		"__Host-pbs_ide=planted; Path=/; Secure",
		"__Secure-pbs_session=planted; Path=/; Secure",
		"__host-PBS_ide=planted; Path=/; Secure",
		"pbs_ide",
	}
	if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		head := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		for _, l := range lines {
			head += "Set-Cookie: " + l + "\r\n"
		}
		_, _ = io.WriteString(c, head+"\r\n")
		_, _ = io.Copy(c, brw.Reader)
		return
	}
	for _, l := range lines {
		w.Header().Add("Set-Cookie", l)
	}
	w.Header().Add("Link", "</a.css>; rel=preload")
	w.WriteHeader(http.StatusEarlyHints)
	w.Header().Del("Link")
	_, _ = io.WriteString(w, "ok")
}

// wantHostOnly is what must be left of setCookieBackend's cookies.
var wantHostOnly = []string{"theme=dark; Path=/", "lang=en; path=/; HttpOnly", "plain=1; Path=/"}

func TestWorkspaceCookiesStayHostOnly(t *testing.T) { forEngines(t, testWorkspaceCookiesStayHostOnly) }

func testWorkspaceCookiesStayHostOnly(t *testing.T, engine string) {
	f := newFixture(t, engine, http.HandlerFunc(setCookieBackend))

	var early []string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		early = append(early, h.Values("Set-Cookie")...)
		return nil
	}}
	req := f.request(http.MethodGet, "/page", nil)
	req = req.WithContext(httptrace.WithClientTrace(context.Background(), trace))
	resp := f.do(req)
	resp.Body.Close()
	if got := resp.Header.Values("Set-Cookie"); !slices.Equal(got, wantHostOnly) {
		t.Errorf("HTTP: Set-Cookie %q, want %q", got, wantHostOnly)
	}
	if !slices.Equal(early, wantHostOnly) {
		t.Errorf("103: Set-Cookie %q, want %q", early, wantHostOnly)
	}

	c, _, resp, err := f.wsHandshake(f.host, f.cookie, "/ws")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %d", resp.StatusCode)
	}
	if got := resp.Header.Values("Set-Cookie"); !slices.Equal(got, wantHostOnly) {
		t.Errorf("WebSocket 101: Set-Cookie %q, want %q", got, wantHostOnly)
	}
}

func TestHostOnlyCookie(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"a=1", "a=1"},
		{"a=1; Domain=x.test", "a=1"},
		{"a=1;Domain=x.test;Path=/", "a=1;Path=/"},
		{"a=1; Path=/domain; Max-Age=5", "a=1; Path=/domain; Max-Age=5"},
		{"a=domain; Secure", "a=domain; Secure"},
		{"a=1; domain ; Secure", "a=1; Secure"},
		{"pbs_x=1", ""},
		{" pbs_ide =1", ""},
		{"__Host-pbs_ide=1; Path=/; Secure", ""},
		{"__SECURE-pbs_session=1", ""},
		{"pbs_ide", ""},
		{"pbsx=1; Domain=a", "pbsx=1"},
		{"__Host-theme=1; Path=/; Secure", "__Host-theme=1; Path=/; Secure"},
	} {
		got, ok := hostOnlyCookie(c.in)
		if !ok {
			got = ""
		}
		if got != c.want {
			t.Errorf("hostOnlyCookie(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestGatewayCookiesNeverReachTheWorkspace(t *testing.T) {
	h := http.Header{"Cookie": {"pbs_session=a; __Host-pbs_session=b; __Secure-pbs_csrf=c; __host-pbs_ide=d; theme=dark",
		"PBS_X=e; __Host-theme=f; pbsx=g"}}
	scrubHeaders(h, "h", "http")
	if got, want := h.Get("Cookie"), "theme=dark; __Host-theme=f; pbsx=g"; got != want {
		t.Errorf("Cookie to the workspace: %q, want %q", got, want)
	}
}

// A page on a sibling host can plant a cookie of the IDE cookie's name
// for the parent domain; browsers send it beside ours, in either order.
func TestPlantedIDECookiesAreSkipped(t *testing.T) { forEngines(t, testPlantedIDECookiesAreSkipped) }

func testPlantedIDECookiesAreSkipped(t *testing.T, engine string) {
	f := newFixture(t, engine, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }))
	_, _, bobCookie := f.enterAs(bob)
	name := f.p.CookieName()
	for _, c := range []struct {
		cookie string
		want   int
	}{
		{f.cookie, http.StatusOK},
		{name + "=junk; " + f.cookie, http.StatusOK},
		{name + "=junk; theme=x; " + name + "=more-junk; " + f.cookie + "; " + name + "=after", http.StatusOK},
		// Another session's valid cookie (bob's, planted on alice's host).
		{bobCookie + "; " + f.cookie, http.StatusOK},
		{f.cookie + "; " + bobCookie, http.StatusOK},
		{name + "=junk", http.StatusUnauthorized},
		{bobCookie, http.StatusForbidden},
		{name + "=junk; " + bobCookie, http.StatusForbidden},
		// More junk than the gateway looks up: ours is not found.
		{strings.Repeat(name+"=junk; ", maxCookieTries) + f.cookie, http.StatusUnauthorized},
	} {
		req := f.request(http.MethodGet, "/", nil)
		req.Header.Set("Cookie", c.cookie)
		resp := f.do(req)
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("Cookie %.80q…: %d, want %d", c.cookie, resp.StatusCode, c.want)
		}
	}
	// The same for a WebSocket.
	conn, _, resp, err := f.wsHandshake(f.host, name+"=junk; "+f.cookie, "/ws")
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		t.Errorf("WebSocket with a planted cookie first: %d", resp.StatusCode)
	}
}

// On *.localhost IDE hosts (and https) the IDE cookie is __Host-pbs_ide,
// which a sibling host cannot set; the gateway accepts no other name.
func TestIDECookieNameOnLocalhost(t *testing.T) {
	f := newFixtureWith(t, &fixture{engine: EngineRelay, hosts: "http://{session}.ide.playbooks.localhost:8080"},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }))
	if got := f.p.CookieName(); got != "__Host-pbs_ide" {
		t.Fatalf("cookie name %q, want __Host-pbs_ide", got)
	}
	ck := f.p.cookie("v")
	if !ck.Secure || ck.Path != "/" || ck.Domain != "" || !ck.HttpOnly {
		t.Errorf("cookie %+v: a __Host- cookie must be Secure, Path=/, host-only", ck)
	}
	if !strings.HasPrefix(f.cookie, "__Host-pbs_ide=") {
		t.Fatalf("entered with %q", f.cookie)
	}
	value := strings.TrimPrefix(f.cookie, "__Host-pbs_ide=")
	for _, c := range []struct {
		cookie string
		want   int
	}{
		{f.cookie, http.StatusOK},
		{"pbs_ide=" + value, http.StatusUnauthorized},
		{"__Secure-pbs_ide=" + value, http.StatusUnauthorized},
	} {
		req := f.request(http.MethodGet, "/", nil)
		req.Header.Set("Cookie", c.cookie)
		resp := f.do(req)
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("Cookie %q: %d, want %d", c.cookie, resp.StatusCode, c.want)
		}
	}

	plain := newFixture(t, EngineRelay, http.NotFoundHandler())
	if got := plain.p.CookieName(); got != "pbs_ide" {
		t.Errorf("cookie name on plain-http hosts %q, want pbs_ide (browsers drop __Host- cookies there)", got)
	}
}

func TestPortProxyPagesAreSandboxed(t *testing.T) { forEngines(t, testPortProxyPagesAreSandboxed) }

func testPortProxyPagesAreSandboxed(t *testing.T, engine string) {
	f := newFixture(t, engine, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A workspace's own policy cannot lift the sandbox: it is added.
		w.Header().Set("Content-Security-Policy", "sandbox allow-same-origin allow-scripts")
		w.Header().Set("Content-Type", "text/html")
		_, _ = io.WriteString(w, "<script>document.cookie='pbs_ide=x; domain=ide.test'</script>")
	}))
	for _, c := range []struct {
		path    string
		sandbox bool
	}{
		{"/proxy/8000/", true},
		{"/proxy/8000", true},
		{"/absproxy/8000/app/index.html?x=1", true},
		{"/PROXY/8000/", true},
		{"/AbsProxy/3000/", true},
		{"/base/path/proxy/8000/", true},
		{"/base/absproxy/8000/", true},
		{"/%70roxy/8000/", true},
		{"/proxy%2F8000/", true},
		{"//proxy/8000/", true},
		{"/", false},
		{"/?folder=/home/coder/project", false},
		{"/stable-0123abcd/static/out/vs/workbench/workbench.web.main.js", false},
		{"/stable-0123abcd/static/out/vs/workbench/contrib/webview/browser/pre/index.html?id=x", false},
		{"/vscode-remote-resource?path=/home/coder/project/evil.html", true},
		{"/stable-0123abcd/VSCODE-REMOTE-RESOURCE?path=/x.html", true},
		{"/vscode-remote-resourcex?path=/x.html", false},
		{"/_static/src/browser/media/favicon.ico", false},
		{"/proxyish/8000/", false},
	} {
		resp := f.do(f.request(http.MethodGet, c.path, nil))
		resp.Body.Close()
		got := slices.Contains(resp.Header.Values("Content-Security-Policy"), portProxySandbox)
		if got != c.sandbox {
			t.Errorf("%s: sandboxed %v, want %v (CSP %q)", c.path, got, c.sandbox, resp.Header.Values("Content-Security-Policy"))
		}
		if resp.Header.Get("Content-Security-Policy") != "sandbox allow-same-origin allow-scripts" {
			t.Errorf("%s: the workspace's own policy went: %q", c.path, resp.Header.Values("Content-Security-Policy"))
		}
	}
}

// A flood of cookies planted for the parent domain (hundreds of KiB, sent
// to every IDE host) must not make code-server refuse the IDE's requests
// (Node: 431 past 16 KiB of headers): at most workspaceCookieBytes of
// cookies reach the workspace, the first ones the browser sends.
func TestCookieFloodStaysOutOfTheWorkspace(t *testing.T) {
	forEngines(t, testCookieFloodStaysOutOfTheWorkspace)
}

func testCookieFloodStaysOutOfTheWorkspace(t *testing.T, engine string) {
	got := make(chan string, 1)
	f := newFixture(t, engine, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("Cookie")
		_, _ = io.WriteString(w, "ok")
	}))
	var flood []string
	for i := range 150 {
		flood = append(flood, fmt.Sprintf("flood%03d=%s", i, strings.Repeat("f", 4000)))
	}
	req := f.request(http.MethodGet, "/", nil)
	req.Header.Set("Cookie", "theme=dark; "+strings.Join(flood[:75], "; ")+"; "+f.cookie+"; "+strings.Join(flood[75:], "; "))
	resp := f.do(req)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d under a 600 KiB cookie flood", resp.StatusCode)
	}
	sent := <-got
	if len(sent) > workspaceCookieBytes || !strings.HasPrefix(sent, "theme=dark; flood000=") || strings.Contains(sent, "pbs_") {
		t.Errorf("the workspace got %d bytes of cookies: %.60q…", len(sent), sent)
	}
}
