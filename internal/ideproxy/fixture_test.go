package ideproxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"go.uber.org/goleak"

	"github.com/playbookstudio/gateway/internal/audit"
	"github.com/playbookstudio/gateway/internal/config"
	"github.com/playbookstudio/gateway/internal/editlock"
	"github.com/playbookstudio/gateway/internal/editsession"
	"github.com/playbookstudio/gateway/internal/kv"
	"github.com/playbookstudio/gateway/internal/workspace"
	"github.com/playbookstudio/gateway/internal/workspace/workspacetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var alice = editsession.Identity{ID: "alice", Name: "Alice", Tenant: "t1"}

// fixture is a proxy in an Echo on a loopback listener, with one live
// session of alice (entered: the cookie is set) whose workspace is the
// backend on a unix socket.
type fixture struct {
	t        testing.TB
	engine   string // Config.Engine
	p        *Proxy
	sessions *editsession.Service
	rt       *workspacetest.Runtime
	gw       *httptest.Server
	sid      string
	host     string // the session's IDE host
	cookie   string // "pbs_ide=…"
	backend  *httptest.Server
	conns    atomic.Int64 // connections the backend accepted
	// hosts is the IDE host pattern ("" for http://{session}.ide.test);
	// configure, if set, changes the proxy's Config (before start).
	hosts     string
	configure func(*Config)
}

// engines are the proxy engines the behaviour tests run against.
var engines = []string{EngineRelay, EngineStdlib}

// forEngines runs test once per engine, as subtests named after them.
func forEngines(t *testing.T, test func(t *testing.T, engine string)) {
	for _, e := range engines {
		t.Run(e, func(t *testing.T) { test(t, e) })
	}
}

func newFixture(t testing.TB, engine string, backend http.Handler) *fixture {
	t.Helper()
	return newFixtureWith(t, &fixture{engine: engine}, backend)
}

// newFixtureWith is newFixture with f's hosts and configure.
func newFixtureWith(t testing.TB, f *fixture, backend http.Handler) *fixture {
	t.Helper()
	f.t = t
	sock := filepath.Join(t.TempDir(), "ws.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	f.backend = &httptest.Server{Listener: ln, Config: &http.Server{Handler: backend, ConnState: func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			f.conns.Add(1)
		}
	}}}
	f.backend.Start()
	t.Cleanup(f.backend.Close)
	f.rt = &workspacetest.Runtime{DialFunc: func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}
	f.start()
	return f
}

// start builds the proxy and a session over f.rt.
func (f *fixture) start() {
	t := f.t
	log := slog.New(slog.DiscardHandler)
	store := kv.NewMemory(nil)
	ws, err := workspace.NewManager(workspace.Config{IdleTimeout: time.Hour, MaxConcurrentSpawns: 2, GatewayURL: "http://127.0.0.1:1"}, f.rt, store, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	al, err := audit.NewMemory(log, nil)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := f.hosts
	if tmpl == "" {
		tmpl = "http://{session}.ide.test"
	}
	hosts, err := config.ParseHostPattern(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	f.sessions, err = editsession.New(editsession.Config{TTL: time.Minute, IDEURL: hosts.URL},
		editsession.Deps{Locks: editlock.NewMemory(nil), Workspaces: ws, Store: store, Audit: al, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.sessions.Close() })
	cfg := Config{Hosts: hosts, Engine: f.engine}
	if f.configure != nil {
		f.configure(&cfg)
	}
	f.p, err = New(cfg, f.sessions, ws, store, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.p.Close() })
	e := echo.New()
	e.GET("/_gw/enter", f.p.Enter)
	e.Any("/*", f.p.Serve)
	f.gw = httptest.NewServer(e)
	t.Cleanup(f.gw.Close)

	f.sid, f.host, f.cookie = f.enterAs(alice)
}

// enterAs starts an edit session of id and enters it: its id, IDE host
// and "name=value" IDE cookie.
func (f *fixture) enterAs(id editsession.Identity) (sid, host, cookie string) {
	t := f.t
	t.Helper()
	st, err := f.sessions.Start(context.Background(), id, editsession.StartRequest{Name: "Triage " + id.Name})
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(st.IDEURL)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, st.IDEURL, nil)
	resp := f.do(req)
	resp.Body.Close()
	for _, ck := range resp.Cookies() {
		if ck.Name == f.p.CookieName() {
			cookie = ck.Name + "=" + ck.Value
		}
	}
	if resp.StatusCode != http.StatusFound || cookie == "" {
		t.Fatalf("enter: %d %v", resp.StatusCode, resp.Header)
	}
	return st.ID, u.Host, cookie
}

// client is an HTTP client of the gateway (every host name is the
// gateway) with its own connections.
func (f *fixture) client() *http.Client {
	addr := f.gw.Listener.Addr().String()
	tr := &http.Transport{DisableCompression: true, DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}}
	f.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// do sends req to the gateway with a client of its own.
func (f *fixture) do(req *http.Request) *http.Response {
	f.t.Helper()
	resp, err := f.client().Do(req)
	if err != nil {
		f.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	return resp
}

// request is a request to path on the session's host, with the cookie.
func (f *fixture) request(method, path string, body io.Reader) *http.Request {
	req, err := http.NewRequest(method, "http://"+f.host+path, body)
	if err != nil {
		f.t.Fatal(err)
	}
	req.Header.Set("Cookie", f.cookie)
	return req
}

// end ends the session as alice would.
func (f *fixture) end() {
	if err := f.sessions.End(context.Background(), alice, f.sid); err != nil {
		f.t.Fatal(err)
	}
}

// wsDial opens a WebSocket through the gateway; the returned reader holds
// what came after the handshake.
func (f *fixture) wsDial() (net.Conn, *bufio.Reader) {
	f.t.Helper()
	c, br, err := f.wsOpen()
	if err != nil {
		f.t.Fatal(err)
	}
	return c, br
}

// wsOpen is wsDial for goroutines other than the test's.
func (f *fixture) wsOpen() (net.Conn, *bufio.Reader, error) {
	c, br, resp, err := f.wsHandshake(f.host, f.cookie, "/ws")
	if err != nil {
		return nil, nil, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		c.Close()
		return nil, nil, fmt.Errorf("upgrade: %d", resp.StatusCode)
	}
	return c, br, nil
}

// wsHandshake sends a WebSocket handshake for path to host with cookie
// and reads the answer's head, whatever it is; the caller closes c.
func (f *fixture) wsHandshake(host, cookie, path string) (net.Conn, *bufio.Reader, *http.Response, error) {
	c, err := net.Dial("tcp", f.gw.Listener.Addr().String())
	if err != nil {
		return nil, nil, nil, err
	}
	req := "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
		"Origin: http://" + host + "\r\nCookie: " + cookie + "\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		c.Close()
		return nil, nil, nil, err
	}
	br := bufio.NewReader(c)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		c.Close()
		return nil, nil, nil, err
	}
	_ = c.SetReadDeadline(time.Time{})
	return c, br, resp, nil
}

// echoUpgrade is a backend handler that upgrades any request and echoes
// raw bytes (no framing: the proxy does not look at it).
func echoUpgrade(w http.ResponseWriter, r *http.Request) {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		http.Error(w, "want an upgrade", http.StatusBadRequest)
		return
	}
	c, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer c.Close()
	_, _ = io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	_, _ = io.Copy(c, brw.Reader)
}

// listenConns serves every connection to a new unix socket with handle,
// closing it after, until stop (or the test's end), which closes the
// socket and waits for the handlers. dial reaches it.
func listenConns(t testing.TB, handle func(c net.Conn)) (dial func(ctx context.Context) (net.Conn, error), stop func()) {
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "ws.sock"))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	stop = sync.OnceFunc(func() {
		ln.Close()
		wg.Wait()
	})
	t.Cleanup(stop)
	return func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", ln.Addr().String())
	}, stop
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
