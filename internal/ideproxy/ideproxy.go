// Package ideproxy serves the IDE origin: it trades a single-use ticket
// for a cookie bound to one edit session's host, and proxies HTTP and
// WebSocket traffic to that session's workspace, checking every request
// against a live session of the cookie's user. Bodies stream both ways;
// nothing is buffered.
package ideproxy

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/playbookstudio/gateway/internal/apierror"
	"github.com/playbookstudio/gateway/internal/config"
	"github.com/playbookstudio/gateway/internal/editsession"
	"github.com/playbookstudio/gateway/internal/kv"
	"github.com/playbookstudio/gateway/internal/workspace"
)

// Config tunes the proxy.
type Config struct {
	Hosts config.HostPattern
	// CookieTTL bounds an IDE cookie's life; every request is checked
	// against the live session anyway.
	CookieTTL time.Duration
	// TouchEvery throttles how often proxied traffic counts as activity.
	TouchEvery time.Duration
	// CrossSite: an outer portal on another site frames the IDE
	// (COOKIE_CROSS_SITE).
	CrossSite bool
}

// Proxy is the IDE host's handler.
type Proxy struct {
	cfg       Config
	sessions  *editsession.Service
	ws        *workspace.Manager
	store     kv.Store
	log       *slog.Logger
	transport *http.Transport
	rp        *httputil.ReverseProxy
	buffers   *bufferPool

	mu      sync.Mutex
	conns   map[string]map[*tunnel]struct{} // open WebSockets by session
	cancels map[string]map[*context.CancelFunc]struct{}
	closed  bool
	wg      sync.WaitGroup

	cookies sync.Map // cookie hash → cookieInfo, a cache over the store

	lastTouch sync.Map // session id → *atomic.Int64
}

type cookieInfo struct {
	SessionID string `json:"sessionId"`
	UserID    string `json:"userId"`
	Tenant    string `json:"tenant"`
}

type cachedCookie struct {
	info    cookieInfo
	expires time.Time
}

// CookieName is the IDE host's cookie. It is host-only (no Domain), so a
// browser never sends it to another session's host.
const CookieName = "pbs_ide"

const cookiePrefix = "ide-cookie:"

// ctxKey carries the workspace key of a proxied request to the dialer.
type ctxKey struct{}

// New builds the proxy and subscribes to session ends, which cut the
// session's connections at once.
func New(cfg Config, sessions *editsession.Service, ws *workspace.Manager, store kv.Store, log *slog.Logger) (*Proxy, error) {
	if sessions == nil || ws == nil || store == nil || log == nil {
		return nil, errors.New("ideproxy: sessions, workspaces, store and logger are required")
	}
	if cfg.CookieTTL <= 0 {
		cfg.CookieTTL = 12 * time.Hour
	}
	if cfg.TouchEvery <= 0 {
		cfg.TouchEvery = 10 * time.Second
	}
	p := &Proxy{cfg: cfg, sessions: sessions, ws: ws, store: store, log: log,
		conns: map[string]map[*tunnel]struct{}{}, cancels: map[string]map[*context.CancelFunc]struct{}{}}
	p.buffers = &bufferPool{pool: sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}}
	p.transport = &http.Transport{
		DialContext: p.dial,
		// Asking code-server for gzip would make it compress the 11 MB
		// workbench on every load; the browser negotiates its own encoding
		// end to end, so the proxy passes Accept-Encoding through instead.
		DisableCompression:    true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		WriteBufferSize:       64 << 10,
		ReadBufferSize:        64 << 10,
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite:      p.rewrite,
		Transport:    p.transport,
		BufferPool:   p.buffers,
		ErrorHandler: p.proxyError,
	}
	sessions.OnEnd(p.cut)
	return p, nil
}

// dial reaches the workspace named by the request's context.
func (p *Proxy) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	key, _ := ctx.Value(ctxKey{}).(string)
	if key == "" {
		return nil, errors.New("ideproxy: no workspace for this request")
	}
	d, err := p.ws.Runtime().Dialer(ctx, key)
	if err != nil {
		return nil, err
	}
	return d(ctx)
}

// Enter handles GET /_gw/enter?ticket=…: the ticket must be valid, unused,
// and minted for this very host's session.
func (p *Proxy) Enter(c echo.Context) error {
	r := c.Request()
	sid, _ := p.cfg.Hosts.Session(r.Host)
	info, err := p.sessions.RedeemTicket(r.Context(), c.QueryParam("ticket"))
	if err != nil {
		if errors.Is(err, editsession.ErrUnavailable) {
			return apierror.Wrap(http.StatusServiceUnavailable, "unavailable", "The IDE cannot be opened right now. Try again in a moment.", err)
		}
		return p.refuse(c, http.StatusForbidden, "bad_ticket", "This IDE link is invalid, used or expired. Open the playbook again from the portal.",
			fmt.Errorf("ticket refused for session %s: %w", sid, err))
	}
	if info.SessionID != sid {
		return p.refuse(c, http.StatusForbidden, "bad_ticket", "This IDE link belongs to another session. Open the playbook again from the portal.",
			fmt.Errorf("ticket of session %s used on host of session %s", info.SessionID, sid))
	}
	sess, ok := p.sessions.Live(sid)
	if !ok || sess.UserID != info.UserID {
		return p.ended(c, sid)
	}
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	value := base64.RawURLEncoding.EncodeToString(b)
	ci := cookieInfo{SessionID: sid, UserID: info.UserID, Tenant: info.Tenant}
	raw, _ := json.Marshal(ci)
	if err := p.store.Set(r.Context(), cookiePrefix+hashOf(value), raw, p.cfg.CookieTTL); err != nil {
		return apierror.Wrap(http.StatusServiceUnavailable, "unavailable", "The IDE cannot be opened right now. Try again in a moment.", err)
	}
	c.SetCookie(p.cookie(value))
	c.Response().Header().Set("Cache-Control", "no-store")
	// Open the workbench on the playbook's folder, creating it if this is
	// a new playbook (an empty archive makes the folder).
	rt := p.ws.Runtime()
	if err := rt.CopyIn(r.Context(), sess.WorkspaceKey, sess.Folder, emptyTar()); err != nil {
		p.log.Warn("create the playbook folder", "session", sid, "error", err)
	}
	root := workspace.ProjectDir
	if pp, ok := rt.(interface{ ProjectPath(string) string }); ok {
		root = pp.ProjectPath(sess.WorkspaceKey)
	}
	target := "/?folder=" + url.QueryEscape(path.Join(root, sess.Folder))
	return c.Redirect(http.StatusFound, target)
}

// cookie builds the IDE cookie. The IDE hosts share the portal's site
// (*.ide.<portal host>), so a SameSite=Lax cookie is sent inside the
// portal's frame. When an outer portal on another site frames everything
// (CrossSite), it must be SameSite=None; Secure; Partitioned instead.
func (p *Proxy) cookie(value string) *http.Cookie {
	ck := &http.Cookie{Name: CookieName, Value: value, Path: "/", HttpOnly: true, MaxAge: int(p.cfg.CookieTTL / time.Second),
		SameSite: http.SameSiteLaxMode, Secure: p.cfg.Hosts.Scheme == "https"}
	if p.cfg.CrossSite {
		ck.Secure, ck.SameSite, ck.Partitioned = true, http.SameSiteNoneMode, true
	}
	return ck
}

// Serve proxies everything else on an IDE host.
func (p *Proxy) Serve(c echo.Context) error {
	r := c.Request()
	sid, _ := p.cfg.Hosts.Session(r.Host)
	ci, err := p.cookieFor(r)
	if err != nil {
		if errors.Is(err, kv.ErrNotFound) {
			return p.refuse(c, http.StatusUnauthorized, "unauthenticated", "Open this IDE from the portal.", fmt.Errorf("no valid IDE cookie for session %s", sid))
		}
		return apierror.Wrap(http.StatusServiceUnavailable, "unavailable", "The IDE cannot be reached right now.", err)
	}
	if ci.SessionID != sid {
		return p.refuse(c, http.StatusForbidden, "forbidden", "This IDE cookie belongs to another session.",
			fmt.Errorf("cookie of session %s used on host of session %s", ci.SessionID, sid))
	}
	sess, ok := p.sessions.Live(sid)
	if !ok {
		return p.ended(c, sid)
	}
	if sess.UserID != ci.UserID || sess.Tenant != ci.Tenant {
		return p.refuse(c, http.StatusForbidden, "forbidden", "This IDE belongs to another user.",
			fmt.Errorf("user %s tried session %s of user %s", ci.UserID, sid, sess.UserID))
	}
	p.touch(sess)
	if isWebSocket(r) {
		want := p.cfg.Hosts.Scheme + "://" + strings.ToLower(r.Host)
		if o := r.Header.Get("Origin"); !strings.EqualFold(o, want) {
			return p.refuse(c, http.StatusForbidden, "bad_origin", "This connection came from another site and was refused.",
				fmt.Errorf("WebSocket Origin %q on session %s", truncate(o, 100), sid))
		}
		return p.tunnel(c, sess)
	}
	return p.forward(c, sess)
}

func (p *Proxy) cookieFor(r *http.Request) (cookieInfo, error) {
	ck, err := r.Cookie(CookieName)
	if err != nil || ck.Value == "" || len(ck.Value) > 100 {
		return cookieInfo{}, kv.ErrNotFound
	}
	h := hashOf(ck.Value)
	if v, ok := p.cookies.Load(h); ok {
		cc := v.(cachedCookie)
		if time.Now().Before(cc.expires) {
			return cc.info, nil
		}
		p.cookies.Delete(h)
	}
	raw, err := p.store.Get(r.Context(), cookiePrefix+h)
	if err != nil {
		return cookieInfo{}, err
	}
	var ci cookieInfo
	if err := json.Unmarshal(raw, &ci); err != nil {
		return cookieInfo{}, kv.ErrNotFound
	}
	// A short cache: the live-session check on every request is what
	// refuses a request of an ended session, so the cookie itself may be
	// remembered for a little while.
	p.cookies.Store(h, cachedCookie{info: ci, expires: time.Now().Add(30 * time.Second)})
	return ci, nil
}

// touch counts proxied traffic as activity, at most once per TouchEvery.
func (p *Proxy) touch(sess *editsession.Session) {
	now := time.Now().UnixNano()
	v, _ := p.lastTouch.LoadOrStore(sess.ID, new(atomic.Int64))
	last := v.(*atomic.Int64)
	prev := last.Load()
	if now-prev < int64(p.cfg.TouchEvery) || !last.CompareAndSwap(prev, now) {
		return
	}
	p.sessions.Touch(sess.ID)
	p.ws.Touch(sess.WorkspaceKey)
}

// forward proxies one HTTP request, streaming, cancelled at once if the
// session ends.
func (p *Proxy) forward(c echo.Context, sess *editsession.Session) error {
	r := c.Request()
	ctx, cancel := context.WithCancel(context.WithValue(r.Context(), ctxKey{}, sess.WorkspaceKey))
	defer cancel()
	if !p.track(sess.ID, &cancel) {
		return p.ended(c, sess.ID)
	}
	defer p.untrack(sess.ID, &cancel)
	r = r.WithContext(ctx)
	p.rp.ServeHTTP(c.Response(), r)
	return nil
}

func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	key, _ := pr.In.Context().Value(ctxKey{}).(string)
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = key + ".workspace"
	pr.Out.Host = pr.In.Host
	scrubHeaders(pr.Out.Header, pr.In.Host, p.cfg.Hosts.Scheme)
}

// scrubHeaders removes what the workspace must never see (the gateway's
// cookies, credentials) and sets what code-server's own origin check reads.
func scrubHeaders(h http.Header, host, scheme string) {
	h.Del("Authorization")
	h.Del("X-Forwarded-For")
	h.Del("Forwarded")
	if cookies := h.Values("Cookie"); len(cookies) > 0 {
		var keep []string
		for _, line := range cookies {
			for _, part := range strings.Split(line, ";") {
				name, _, _ := strings.Cut(strings.TrimSpace(part), "=")
				if name == "" || strings.HasPrefix(name, "pbs_") || strings.HasPrefix(name, "__Host-pbs_") {
					continue
				}
				keep = append(keep, strings.TrimSpace(part))
			}
		}
		h.Del("Cookie")
		if len(keep) > 0 {
			h.Set("Cookie", strings.Join(keep, "; "))
		}
	}
	h.Set("X-Forwarded-Host", host)
	h.Set("X-Forwarded-Proto", scheme)
}

func (p *Proxy) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(r.Context().Err(), context.Canceled) {
		// The session ended or the browser went away mid-request.
		return
	}
	p.log.Warn("workspace unreachable", "host", r.Host, "path", r.URL.Path, "error", err)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadGateway)
	_, _ = io.WriteString(w, `{"error":{"code":"workspace_unreachable","message":"Your workspace does not answer. It may be starting or may have stopped; reopen the playbook from the portal."}}`)
}

func isWebSocket(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket") && headerHasToken(r.Header, "Connection", "upgrade")
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// tunnel is one proxied WebSocket: the browser's connection and the
// workspace's.
type tunnel struct {
	client, backend net.Conn
	once            sync.Once
}

func (t *tunnel) close() {
	t.once.Do(func() {
		_ = t.client.Close()
		_ = t.backend.Close()
	})
}

// tunnel upgrades a WebSocket: the handshake goes through as HTTP, then
// the bytes flow both ways untouched. Between two sockets io.Copy uses
// splice(2) on Linux, so an idle tunnel holds no user-space buffers.
func (p *Proxy) tunnel(c echo.Context, sess *editsession.Session) error {
	r := c.Request()
	ctx, cancel := context.WithTimeout(context.WithValue(r.Context(), ctxKey{}, sess.WorkspaceKey), 15*time.Second)
	defer cancel()
	backend, err := p.dial(ctx, "", "")
	if err != nil {
		p.proxyError(c.Response(), r, err)
		return nil
	}
	out := r.Clone(ctx)
	out.URL = &url.URL{Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery}
	out.RequestURI = ""
	scrubHeaders(out.Header, r.Host, p.cfg.Hosts.Scheme)
	_ = backend.SetDeadline(time.Now().Add(15 * time.Second))
	if err := out.Write(backend); err != nil {
		backend.Close()
		p.proxyError(c.Response(), r, err)
		return nil
	}
	br := bufio.NewReaderSize(backend, 4096)
	resp, err := http.ReadResponse(br, out)
	if err != nil {
		backend.Close()
		p.proxyError(c.Response(), r, err)
		return nil
	}
	_ = backend.SetDeadline(time.Time{})
	if resp.StatusCode != http.StatusSwitchingProtocols {
		defer backend.Close()
		defer resp.Body.Close()
		for k, vs := range resp.Header {
			c.Response().Header()[k] = vs
		}
		c.Response().WriteHeader(resp.StatusCode)
		_, _ = io.Copy(c.Response(), resp.Body)
		return nil
	}
	client, crw, err := http.NewResponseController(c.Response()).Hijack()
	if err != nil {
		backend.Close()
		return err
	}
	if err := resp.Write(client); err != nil {
		client.Close()
		backend.Close()
		return nil
	}
	c.Response().Committed = true
	t := &tunnel{client: client, backend: backend}
	if !p.register(sess.ID, t) {
		t.close()
		return nil
	}
	// Bytes already read past the handshake on either side go first.
	if n := crw.Reader.Buffered(); n > 0 {
		pending, _ := crw.Reader.Peek(n)
		if _, err := backend.Write(pending); err != nil {
			p.unregister(sess.ID, t)
			t.close()
			return nil
		}
	}
	if n := br.Buffered(); n > 0 {
		pending, _ := br.Peek(n)
		if _, err := client.Write(pending); err != nil {
			p.unregister(sess.ID, t)
			t.close()
			return nil
		}
	}
	p.sessions.ConnOpened(sess.ID)
	p.wg.Add(2)
	go func() {
		defer p.wg.Done()
		_, _ = io.Copy(backend, client)
		t.close()
	}()
	go func() {
		defer p.wg.Done()
		_, _ = io.Copy(client, backend)
		t.close()
		p.unregister(sess.ID, t)
		p.sessions.ConnClosed(sess.ID)
	}()
	return nil
}

func (p *Proxy) register(id string, t *tunnel) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	if _, ok := p.sessions.Live(id); !ok {
		return false
	}
	m := p.conns[id]
	if m == nil {
		m = map[*tunnel]struct{}{}
		p.conns[id] = m
	}
	m[t] = struct{}{}
	return true
}

func (p *Proxy) unregister(id string, t *tunnel) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns[id], t)
	if len(p.conns[id]) == 0 {
		delete(p.conns, id)
	}
}

func (p *Proxy) track(id string, cancel *context.CancelFunc) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	m := p.cancels[id]
	if m == nil {
		m = map[*context.CancelFunc]struct{}{}
		p.cancels[id] = m
	}
	m[cancel] = struct{}{}
	return true
}

func (p *Proxy) untrack(id string, cancel *context.CancelFunc) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.cancels[id], cancel)
	if len(p.cancels[id]) == 0 {
		delete(p.cancels, id)
	}
}

// cut closes every connection and request of a session that ended.
func (p *Proxy) cut(id, reason string) {
	p.mu.Lock()
	tunnels := p.conns[id]
	delete(p.conns, id)
	cancels := p.cancels[id]
	delete(p.cancels, id)
	p.mu.Unlock()
	p.lastTouch.Delete(id)
	for t := range tunnels {
		t.close()
	}
	for c := range cancels {
		(*c)()
	}
	if len(tunnels)+len(cancels) > 0 {
		p.log.Info("IDE connections cut", "session", id, "websockets", len(tunnels), "requests", len(cancels), "reason", reason)
	}
}

// OpenTunnels counts the WebSockets being proxied (for tests and metrics).
func (p *Proxy) OpenTunnels() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, m := range p.conns {
		n += len(m)
	}
	return n
}

// Close drains the hijacked connections, which http.Server.Shutdown does
// not track, and waits for their goroutines.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	all := p.conns
	p.conns = map[string]map[*tunnel]struct{}{}
	p.mu.Unlock()
	for _, m := range all {
		for t := range m {
			t.close()
		}
	}
	p.wg.Wait()
	p.transport.CloseIdleConnections()
	return nil
}

// refuse answers a refusal and logs it with its private cause.
func (p *Proxy) refuse(c echo.Context, status int, code, msg string, cause error) error {
	p.log.Warn("IDE request refused", "host", c.Request().Host, "path", c.Request().URL.Path, "code", code, "cause", cause.Error())
	return apierror.Wrap(status, code, msg, cause)
}

var endedPage = template.Must(template.New("ended").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Edit session ended</title>
<style>body{font:15px system-ui,sans-serif;color:#1f2933;background:#f5f7fa;display:grid;place-items:center;min-height:90vh;margin:0}
main{max-width:32rem;background:#fff;border:1px solid #d9e2ec;border-radius:8px;padding:1.5rem 2rem}h1{font-size:1.2rem}</style></head>
<body><main role="main"><h1>This edit session has ended</h1><p data-testid="session-ended">{{.}}</p>
<p>Your files stay in your workspace. Open the playbook again from the portal to continue.</p></main></body></html>`))

// ended answers a request of a session that is no longer live: an HTML
// page for a navigation, 410 JSON for anything else.
func (p *Proxy) ended(c echo.Context, sid string) error {
	reason := p.sessions.EndedReason(sid)
	msg := "This edit session has ended."
	if reason != "" {
		msg = "This edit session has ended: " + reason + "."
	}
	if strings.Contains(c.Request().Header.Get("Accept"), "text/html") {
		c.Response().Header().Set("Content-Type", "text/html; charset=utf-8")
		c.Response().Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
		c.Response().WriteHeader(http.StatusGone)
		return endedPage.Execute(c.Response(), msg)
	}
	return apierror.New(http.StatusGone, "session_ended", msg)
}

func hashOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// bufferPool recycles the proxy's 64 KiB copy buffers.
type bufferPool struct{ pool sync.Pool }

func (b *bufferPool) Get() []byte  { return *(b.pool.Get().(*[]byte)) }
func (b *bufferPool) Put(p []byte) { b.pool.Put(&p) }

// emptyTar is an archive with no entries: copied in, it only creates the
// target folder.
func emptyTar() io.Reader {
	var buf bytes.Buffer
	_ = tar.NewWriter(&buf).Close()
	return &buf
}
