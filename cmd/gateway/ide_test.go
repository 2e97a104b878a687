package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/playbookstudio/gateway/internal/testsvc"
	"github.com/playbookstudio/gateway/internal/workspace"
)

// ideClient talks to IDE hosts: every host name dials the gateway on
// loopback (as Chromium resolves *.localhost), and the IDE cookie is
// carried by hand, to try it on hosts it was not made for.
type ideClient struct {
	*http.Client
	port   int
	cookie string
}

func newIDEClient(port int) *ideClient {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, "127.0.0.1:"+strconv.Itoa(port))
		},
		DisableCompression: true,
	}
	return &ideClient{port: port, Client: &http.Client{Transport: tr, Timeout: 60 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (c *ideClient) get(t *testing.T, u string, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.cookie != "" {
		req.Header.Set("Cookie", c.cookie)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// enter trades the ticket in ideURL for the IDE cookie.
func (c *ideClient) enter(t *testing.T, ideURL string) {
	t.Helper()
	resp, body := c.get(t, ideURL, nil)
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("enter: %d %s", resp.StatusCode, body)
	}
	for _, ck := range resp.Cookies() {
		// __Host-pbs_ide on *.localhost and https IDE hosts.
		if ck.Name == "pbs_ide" || ck.Name == "__Host-pbs_ide" {
			c.cookie = ck.Name + "=" + ck.Value
			if !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Domain != "" || ck.Path != "/" {
				t.Errorf("IDE cookie attributes: %+v (want HttpOnly, SameSite=Lax, host-only)", ck)
			}
		}
	}
	if c.cookie == "" {
		t.Fatalf("enter set no IDE cookie: %v", resp.Header)
	}
	if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, "/?folder=") {
		t.Fatalf("enter redirected to %q, want the workbench on the playbook's folder", loc)
	}
}

// wsDial sends a WebSocket upgrade to an IDE host and returns the status
// line and the connection.
func (c *ideClient) wsDial(t *testing.T, host, origin, cookie string) (int, net.Conn) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(c.port), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	req := "GET /?reconnectionToken=" + strconv.FormatInt(time.Now().UnixNano(), 10) + "&reconnection=false&skipWebSocketFrames=false HTTP/1.1\r\n" +
		"Host: " + host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
		"Origin: " + origin + "\r\n"
	if cookie != "" {
		req += "Cookie: " + cookie + "\r\n"
	}
	req += "\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("WebSocket handshake: %v", err)
	}
	_ = conn.SetReadDeadline(time.Time{})
	return resp.StatusCode, conn
}

type startedSession struct {
	ID           string `json:"id"`
	IDEURL       string `json:"ideUrl"`
	FencingToken int64  `json:"fencingToken"`
	State        string `json:"state"`
	Notice       string `json:"notice"`
	Folder       string `json:"folder"`
	Error        *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func (b *browser) api(t *testing.T, g *gateway, csrf, method, path string, body any, v any) int {
	t.Helper()
	var r io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		r = strings.NewReader(string(raw))
	}
	resp, out := b.do(t, b.noFollow(), method, g.base+path, r, map[string]string{
		"Accept": "application/json", "Content-Type": "application/json", "Origin": g.base, "X-CSRF-Token": csrf})
	if v != nil && out != "" {
		if err := json.Unmarshal([]byte(out), v); err != nil {
			t.Fatalf("%s %s: %v in %q", method, path, err, out)
		}
	}
	return resp.StatusCode
}

var workbenchJS = regexp.MustCompile(`[^"'\s]*workbench\.js`)

// TestIDEProxyWithRealCodeServer opens an edit session, enters its IDE
// host, loads the real workbench and its 11 MB workbench.js through the
// proxy, upgrades a WebSocket, and checks every refusal.
func TestIDEProxyWithRealCodeServer(t *testing.T) {
	g, idp, env := gatewayWithWorkspaces(t, nil)
	_, listen, _ := net.SplitHostPort(env["LISTEN_ADDR"])
	port, _ := strconv.Atoi(listen)

	alice, bob := newBrowser(t), newBrowser(t)
	signIn(t, alice, g, idp, "alice", "alice")
	signIn(t, bob, g, idp, "bob", "bob")
	var am, bm me
	alice.getJSON(t, g.base+"/api/me", &am)
	bob.getJSON(t, g.base+"/api/me", &bm)

	var s startedSession
	if code := alice.api(t, g, am.CSRFToken, http.MethodPost, "/api/edit-sessions", map[string]any{"name": "Phishing triage"}, &s); code != http.StatusCreated {
		t.Fatalf("start: %d %+v\n%s", code, s.Error, g.stdout)
	}
	ide, err := url.Parse(s.IDEURL)
	if err != nil || ide.Host != s.ID+".ide.localhost:"+strconv.Itoa(port) || s.FencingToken <= 0 {
		t.Fatalf("started %+v", s)
	}
	ideOrigin := "http://" + ide.Host

	// Refusals before entering: forged ticket, no cookie.
	c := newIDEClient(port)
	if resp, body := c.get(t, ideOrigin+"/_gw/enter?ticket=forged", nil); resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "bad_ticket") {
		t.Errorf("forged ticket: %d %s", resp.StatusCode, body)
	}
	if resp, _ := c.get(t, ideOrigin+"/", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("no cookie: %d", resp.StatusCode)
	}
	// A ticket is bound to its session's host.
	other := newIDEClient(port)
	wrongHost := strings.Replace(s.IDEURL, s.ID, "00000000-0000-4000-8000-000000000000", 1)
	if resp, _ := other.get(t, wrongHost, nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("ticket on another session's host: %d", resp.StatusCode)
	}
	// That attempt used the ticket up: single use, even when refused.
	if resp, _ := c.get(t, s.IDEURL, nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("ticket after it was used: %d", resp.StatusCode)
	}

	// A fresh session, entered properly (takeover of alice's own session).
	if code := alice.api(t, g, am.CSRFToken, http.MethodPost, "/api/edit-sessions", map[string]any{"name": "Phishing triage"}, &s); code != http.StatusConflict || s.Error == nil || s.Error.Code != "user_has_session" {
		t.Fatalf("second session without takeover: %d %+v", code, s.Error)
	}
	if code := alice.api(t, g, am.CSRFToken, http.MethodPost, "/api/edit-sessions", map[string]any{"name": "Phishing triage", "takeover": true}, &s); code != http.StatusCreated {
		t.Fatalf("takeover: %d %+v", code, s.Error)
	}
	ide, _ = url.Parse(s.IDEURL)
	ideOrigin = "http://" + ide.Host
	c.enter(t, s.IDEURL)
	if resp, _ := c.get(t, s.IDEURL, nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("replayed ticket: %d", resp.StatusCode)
	}

	// Wait for the workspace, then load the workbench through the proxy.
	deadline := time.Now().Add(60 * time.Second)
	for {
		var st startedSession
		alice.api(t, g, am.CSRFToken, http.MethodGet, "/api/edit-sessions/"+s.ID, nil, &st)
		if st.State == "ready" {
			break
		}
		if st.State == "failed" || time.Now().After(deadline) {
			t.Fatalf("workspace state %q\n%s", st.State, g.stdout)
		}
		time.Sleep(100 * time.Millisecond)
	}
	resp, page := c.get(t, ideOrigin+"/?folder=%2Fx", map[string]string{"Accept": "text/html"})
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), "vscode-workbench-web-configuration") {
		t.Fatalf("workbench page: %d %.300s", resp.StatusCode, page)
	}
	js := workbenchJS.FindString(string(page))
	if js == "" {
		t.Fatalf("no workbench.js in the page")
	}
	jsURL, _ := url.Parse(ideOrigin + "/")
	jsURL, _ = jsURL.Parse(js)
	resp, body := c.get(t, jsURL.String(), nil)
	if resp.StatusCode != http.StatusOK || len(body) < 5<<20 {
		t.Fatalf("workbench.js: %d, %d bytes", resp.StatusCode, len(body))
	}
	t.Logf("workbench.js through the proxy: %d bytes", len(body))

	// WebSocket: upgraded with the IDE's own origin, refused otherwise.
	status, ws := c.wsDial(t, ide.Host, ideOrigin, c.cookie)
	if status != http.StatusSwitchingProtocols {
		t.Fatalf("WebSocket upgrade: %d", status)
	}
	defer ws.Close()
	if status, conn := c.wsDial(t, ide.Host, "http://evil.example", c.cookie); status != http.StatusForbidden {
		t.Errorf("WebSocket from a foreign origin: %d", status)
	} else {
		conn.Close()
	}
	if status, conn := c.wsDial(t, ide.Host, ideOrigin, ""); status != http.StatusUnauthorized {
		t.Errorf("WebSocket without cookie: %d", status)
	} else {
		conn.Close()
	}

	// Bob: cannot open alice's playbook and is told who has it; his own
	// session's cookie does not open alice's host.
	var refused startedSession
	if code := bob.api(t, g, bm.CSRFToken, http.MethodPost, "/api/edit-sessions", map[string]any{"name": "phishing TRIAGE"}, &refused); code != http.StatusConflict ||
		refused.Error == nil || refused.Error.Code != "playbook_locked" || !strings.Contains(refused.Error.Message, "Alice Anders") {
		t.Errorf("bob on alice's playbook: %d %+v", code, refused.Error)
	}
	var bs startedSession
	if code := bob.api(t, g, bm.CSRFToken, http.MethodPost, "/api/edit-sessions", map[string]any{"name": "Bob's rule"}, &bs); code != http.StatusCreated {
		t.Fatalf("bob's session: %d %+v", code, bs.Error)
	}
	bc := newIDEClient(port)
	bc.enter(t, bs.IDEURL)
	if resp, _ := bc.get(t, ideOrigin+"/", nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("bob's cookie on alice's IDE host: %d", resp.StatusCode)
	}
	if code := bob.api(t, g, bm.CSRFToken, http.MethodDelete, "/api/admin/sessions/"+s.ID, nil, nil); code != http.StatusForbidden {
		t.Errorf("bob (no admin) terminating: %d", code)
	}

	// The admin view lists both; terminating alice's session cuts her
	// WebSocket at once and her IDE says it ended.
	var list struct {
		Sessions []struct {
			ID, User, Name string
			Workspace      struct{ State string }
		}
	}
	alice.api(t, g, am.CSRFToken, http.MethodGet, "/api/admin/sessions", nil, &list)
	if len(list.Sessions) != 2 {
		t.Fatalf("admin sessions: %+v", list)
	}
	// The tunnel is open and idle before the termination…
	_ = ws.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := ws.Read(make([]byte, 1)); err == nil {
		t.Log("code-server sent data on the idle WebSocket")
	} else if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("the WebSocket closed before the termination: %v", err)
	}
	if code := alice.api(t, g, am.CSRFToken, http.MethodDelete, "/api/admin/sessions/"+s.ID, nil, nil); code != http.StatusNoContent {
		t.Fatalf("terminate: %d", code)
	}
	_ = ws.SetReadDeadline(time.Now().Add(3 * time.Second))
	start := time.Now()
	for {
		if _, err := ws.Read(make([]byte, 4096)); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatal("the WebSocket was not cut after termination")
			}
			break
		}
	}
	t.Logf("WebSocket cut %s after termination", time.Since(start))
	resp, body = c.get(t, ideOrigin+"/", map[string]string{"Accept": "text/html"})
	if resp.StatusCode != http.StatusGone || !strings.Contains(string(body), "administrator") {
		t.Errorf("IDE after termination: %d %s", resp.StatusCode, body)
	}

	var events struct {
		Events []struct{ Action, Target string }
	}
	alice.api(t, g, am.CSRFToken, http.MethodGet, "/api/admin/audit?limit=50", nil, &events)
	seen := map[string]bool{}
	for _, e := range events.Events {
		seen[e.Action] = true
	}
	for _, want := range []string{"sign_in", "session.start", "session.takeover", "session.terminate"} {
		if !seen[want] {
			t.Errorf("audit lacks %s: %+v", want, events.Events)
		}
	}
	if !strings.Contains(g.stdout.String(), "IDE request refused") {
		t.Error("refusals were not logged")
	}
}

// stopWorkspacesAfter stops, once the gateway has stopped, the code-server
// processes it started: they outlive a gateway by design (a restarted
// gateway adopts them), but not a test.
func stopWorkspacesAfter(t *testing.T, dataDir string) {
	t.Cleanup(func() {
		rt, err := workspace.NewLocal(workspace.LocalConfig{CodeServer: testsvc.CodeServer(t), Dir: filepath.Join(dataDir, "workspaces")}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Error(err)
			return
		}
		found, _ := rt.List(context.Background())
		for _, o := range found {
			if err := rt.Stop(context.Background(), o.Key); err != nil {
				t.Error(err)
			}
		}
		// Let the reapers of the stopped processes return.
		time.Sleep(100 * time.Millisecond)
	})
}
