// Package ideproxy serves the IDE origin: it trades a single-use ticket
// for a cookie bound to one edit session's host, and proxies HTTP and
// WebSocket traffic to that session's workspace, checking every request
// against a live session of the cookie's user. Bodies stream both ways;
// nothing is buffered.
//
// HTTP goes through httputil.ReverseProxy over a tuned http.Transport
// (stdproxy.go). WebSockets go, with the relay engine (Config.Engine, the
// default), to epoll event loops over the raw sockets (relay_epoll.go),
// or, with the stdlib engine, through ReverseProxy too. `make bench`
// measures both engines in the same run: the relay holds an idle
// WebSocket in about a sixteenth of the memory and costs less CPU per
// round trip, so it stays; a transport-free HTTP forwarder of ours did not
// beat ReverseProxy (small requests 0.80 of nginx against 0.88) and went.
// Authentication, the header rules, the origin check and the cut-off at a
// session's end are the same for both engines, and the proxy's tests run
// against both; FuzzForwardDifferential holds the proxy's HTTP to a plain
// net/http reference.
package ideproxy

import (
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
	"github.com/playbookstudio/gateway/internal/fault"
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
	// Engine is how requests reach the workspace (IDE_PROXY_ENGINE):
	// EngineRelay (also "") or EngineStdlib. Authentication, the header
	// rules, the origin check and the session cut-off are the same.
	Engine string

	// Per-session caps, over which a request is refused with 429: open
	// WebSockets (IDE_MAX_WEBSOCKETS_PER_SESSION) and HTTP requests in
	// flight to the workspace (IDE_MAX_REQUESTS_PER_SESSION). Zero: the
	// defaults, which VS Code never comes near.
	MaxWebSockets int
	MaxRequests   int
	// WebSocketIdleTimeout closes a WebSocket that carried no byte either
	// way for this long (IDE_WEBSOCKET_IDLE_TIMEOUT); BackendIdleTimeout
	// closes a keep-alive connection to a workspace unused for this long
	// (IDE_BACKEND_IDLE_TIMEOUT). Zero: the defaults.
	WebSocketIdleTimeout time.Duration
	BackendIdleTimeout   time.Duration
	// LimitRefused, if set, is told of each request refused by a cap, with
	// the cap's name (limitWebSockets, limitRequests): for metrics.
	LimitRefused func(limit string)
}

// Proxy is the IDE host's handler.
type Proxy struct {
	cfg      Config
	sessions *editsession.Service
	ws       *workspace.Manager
	store    kv.Store
	log      *slog.Logger
	buffers  *bufferPool

	states sync.Map  // session id → *sessionState
	relay  *relay    // the WebSocket event loops (nil: ReverseProxy)
	std    *stdProxy // HTTP, and WebSockets with the stdlib engine
	closed atomic.Bool

	mu    sync.Mutex
	conns map[string]map[*tunnel]struct{} // open WebSockets by session
	wg    sync.WaitGroup                  // WebSockets relayed by goroutines

	cookieMu sync.RWMutex
	cookies  map[[sha256.Size]byte]cachedCookie // by cookie hash, a cache over the store

	// The IDE host pattern's text around {session}.
	hostPrefix, hostSuffix string
	// cookieName is the IDE cookie's: CookieBase, __Host- prefixed where
	// the IDE hosts' browsers accept that (config.CookieName).
	cookieName string
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

const cookiePrefix = "ide-cookie:"

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
	if err := cfg.defaultLimits(); err != nil {
		return nil, err
	}
	switch cfg.Engine {
	case "":
		cfg.Engine = EngineRelay
	case EngineRelay, EngineStdlib:
	default:
		return nil, fmt.Errorf("ideproxy: unknown engine %q (want %s or %s)", cfg.Engine, EngineRelay, EngineStdlib)
	}
	p := &Proxy{cfg: cfg, sessions: sessions, ws: ws, store: store, log: log,
		conns: map[string]map[*tunnel]struct{}{}, cookies: map[[sha256.Size]byte]cachedCookie{}}
	p.hostPrefix, p.hostSuffix = hostPrefixOf(cfg.Hosts), cfg.Hosts.Suffix()
	p.cookieName = config.CookieName(CookieBase, cfg.Hosts.Scheme, p.hostPrefix+"x"+p.hostSuffix)
	p.buffers = &bufferPool{pool: sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}}
	p.std = newStdProxy(p)
	if cfg.Engine == EngineRelay {
		p.relay = newRelay(relayLoops())
	}
	sessions.OnEnd(p.cut)
	return p, nil
}

// dial reaches the workspace key, through the workspace manager.
func (p *Proxy) dial(ctx context.Context, key string) (net.Conn, error) {
	return p.ws.Dial(ctx, key)
}

// Enter handles GET /_gw/enter?ticket=…: the ticket must be valid, unused,
// and minted for this very host's session.
func (p *Proxy) Enter(c echo.Context) error {
	r := c.Request()
	sid, _ := p.cfg.Hosts.Session(r.Host)
	info, err := p.sessions.RedeemTicket(r.Context(), c.QueryParam("ticket"))
	if err != nil {
		if fault.KindOf(err) == fault.Unavailable {
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
	// Open the workbench on the playbook's folder (the session made it).
	target := "/?folder=" + url.QueryEscape(path.Join(p.ws.ProjectPath(sess.WorkspaceKey), sess.Folder))
	return c.Redirect(http.StatusFound, target)
}

// CookieName is the name of the IDE cookie: __Host-pbs_ide on https and
// on *.localhost IDE hosts, where no sibling host can set or shadow it,
// else pbs_ide.
func (p *Proxy) CookieName() string { return p.cookieName }

// cookie builds the IDE cookie. The IDE hosts share the portal's site
// (*.ide.<portal host>), so a SameSite=Lax cookie is sent inside the
// portal's frame. When an outer portal on another site frames everything
// (CrossSite), it must be SameSite=None; Secure; Partitioned instead. It
// is host-only (no Domain), so a browser never sends it to another
// session's host; a __Host- name must be Secure (browsers take that from
// http://*.localhost too).
func (p *Proxy) cookie(value string) *http.Cookie {
	ck := &http.Cookie{Name: p.cookieName, Value: value, Path: "/", HttpOnly: true, MaxAge: int(p.cfg.CookieTTL / time.Second),
		SameSite: http.SameSiteLaxMode, Secure: p.cfg.Hosts.Scheme == "https" || strings.HasPrefix(p.cookieName, "__Host-")}
	if p.cfg.CrossSite {
		ck.Secure, ck.SameSite, ck.Partitioned = true, http.SameSiteNoneMode, true
	}
	return ck
}

// Serve proxies everything else on an IDE host.
func (p *Proxy) Serve(c echo.Context) error {
	r := c.Request()
	sid := p.sessionID(r.Host)
	ci, err := p.cookieFor(r, sid)
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
	st := p.state(sid)
	if st == nil {
		return p.ended(c, sid)
	}
	p.touch(st, sess)
	if isWebSocket(r) {
		want := p.cfg.Hosts.Scheme + "://" + strings.ToLower(r.Host)
		if o := r.Header.Get("Origin"); !strings.EqualFold(o, want) {
			return p.refuse(c, http.StatusForbidden, "bad_origin", "This connection came from another site and was refused.",
				fmt.Errorf("WebSocket Origin %q on session %s", truncate(o, 100), sid))
		}
		slot, ok := st.websockets.acquire()
		if !ok {
			return p.overLimit(c, st, sid, limitWebSockets)
		}
		if p.relay == nil {
			defer slot.release()
			return p.std.serve(c, st, sess)
		}
		// The tunnel holds the slot while it is open.
		return p.tunnel(c, sess, slot)
	}
	slot, ok := st.requests.acquire()
	if !ok {
		return p.overLimit(c, st, sid, limitRequests)
	}
	defer slot.release()
	return p.std.serve(c, st, sess)
}

// cookieFor finds the IDE cookie of session sid among the request's
// cookies of the IDE cookie's name. There can be several: a page on a
// sibling host may have planted some for the parent domain (the __Host-
// name keeps them out where browsers allow it). Each is tried in turn, and
// one issued for this session wins; failing that, one issued for another
// session (the caller refuses it as such); failing that, kv.ErrNotFound.
func (p *Proxy) cookieFor(r *http.Request, sid string) (cookieInfo, error) {
	var buf [maxCookieTries]string
	var other *cookieInfo
	for _, value := range ideCookies(r.Header, p.cookieName, buf[:0]) {
		ci, err := p.lookupCookie(r.Context(), value)
		if errors.Is(err, kv.ErrNotFound) {
			continue
		}
		if err != nil {
			return cookieInfo{}, err
		}
		if ci.SessionID == sid {
			return ci, nil
		}
		if other == nil {
			other = &ci
		}
	}
	if other != nil {
		return *other, nil
	}
	return cookieInfo{}, kv.ErrNotFound
}

// lookupCookie is what the store says of one cookie value.
func (p *Proxy) lookupCookie(ctx context.Context, value string) (cookieInfo, error) {
	if value == "" || len(value) > 100 {
		return cookieInfo{}, kv.ErrNotFound
	}
	sum := sha256.Sum256([]byte(value))
	now := time.Now()
	p.cookieMu.RLock()
	cc, ok := p.cookies[sum]
	p.cookieMu.RUnlock()
	if ok && now.Before(cc.expires) {
		return cc.info, nil
	}
	h := hex.EncodeToString(sum[:])
	raw, err := p.store.Get(ctx, cookiePrefix+h)
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
	p.cookieMu.Lock()
	if len(p.cookies) >= 1024 {
		for k, v := range p.cookies {
			if !now.Before(v.expires) {
				delete(p.cookies, k)
			}
		}
	}
	p.cookies[sum] = cachedCookie{info: ci, expires: now.Add(30 * time.Second)}
	p.cookieMu.Unlock()
	return ci, nil
}

// hostPrefixOf is the host text before {session} (URL("x") is
// scheme://prefix x suffix).
func hostPrefixOf(h config.HostPattern) string {
	return strings.TrimSuffix(strings.TrimPrefix(h.URL("x"), h.Scheme+"://"), "x"+h.Suffix())
}

// sessionID is the session named by an IDE host, as Hosts.Session finds
// it, without a regular expression.
func (p *Proxy) sessionID(host string) string {
	for i := 0; i < len(host); i++ {
		if 'A' <= host[i] && host[i] <= 'Z' {
			host = strings.ToLower(host)
			break
		}
	}
	if p.hostSuffix == "" || len(host) <= len(p.hostPrefix)+len(p.hostSuffix) ||
		!strings.HasPrefix(host, p.hostPrefix) || !strings.HasSuffix(host, p.hostSuffix) {
		return ""
	}
	id := host[len(p.hostPrefix) : len(host)-len(p.hostSuffix)]
	if len(id) > 63 || id[0] == '-' {
		return ""
	}
	for i := 0; i < len(id); i++ {
		if b := id[i]; !('a' <= b && b <= 'z' || '0' <= b && b <= '9' || b == '-') {
			return ""
		}
	}
	return id
}

// sessionState is what the proxy keeps per live session: its requests in
// flight through ReverseProxy (cut when the session ends) and the
// activity throttle. It is made on the session's first request and
// dropped by cut.
type sessionState struct {
	lastTouch atomic.Int64
	// The session's open WebSockets and HTTP requests in flight, against
	// their caps.
	websockets, requests *sessionCap
	// lastRefusal throttles the log lines of cap refusals (unix ns).
	lastRefusal atomic.Int64

	mu    sync.Mutex
	ended bool
	calls map[*stdCall]struct{} // HTTP, and WebSockets with the stdlib engine
}

// state is the session's state, nil once the session ended or the proxy
// closed.
func (p *Proxy) state(id string) *sessionState {
	if v, ok := p.states.Load(id); ok {
		return v.(*sessionState)
	}
	if p.closed.Load() {
		return nil
	}
	st := &sessionState{calls: map[*stdCall]struct{}{},
		websockets: newSessionCap(p.cfg.MaxWebSockets), requests: newSessionCap(p.cfg.MaxRequests)}
	if v, loaded := p.states.LoadOrStore(id, st); loaded {
		return v.(*sessionState)
	}
	// cut forgets a session after it left the live set: a session that
	// ended between the caller's check and the store above is gone now.
	if _, ok := p.sessions.Live(id); !ok {
		p.states.CompareAndDelete(id, st)
		st.mu.Lock()
		st.ended = true
		st.mu.Unlock()
	}
	return st
}

// beginCall and endCall are begin and end for the stdlib engine.
func (st *sessionState) beginCall(c *stdCall) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.ended {
		return false
	}
	st.calls[c] = struct{}{}
	return true
}

func (st *sessionState) endCall(c *stdCall) {
	st.mu.Lock()
	defer st.mu.Unlock()
	delete(st.calls, c)
}

// touch counts proxied traffic as activity, at most once per TouchEvery.
func (p *Proxy) touch(st *sessionState, sess *editsession.Session) {
	now := time.Now().UnixNano()
	prev := st.lastTouch.Load()
	if now-prev < int64(p.cfg.TouchEvery) || !st.lastTouch.CompareAndSwap(prev, now) {
		return
	}
	p.sessions.Touch(sess.ID)
	p.ws.Touch(sess.WorkspaceKey)
}

// workspaceCookieBytes bounds the cookies forwarded to a workspace.
// code-server (Node) refuses requests whose headers pass 16 KiB with a 431,
// and a page on a sibling host can flood the parent domain with hundreds
// of KiB of cookies that the browser then sends to every IDE host: past
// this budget the rest are dropped, so the IDE keeps working.
const workspaceCookieBytes = 8 << 10

// scrubHeaders removes what the workspace must never see (the gateway's
// cookies, credentials) and sets what code-server's own origin check reads.
// Both engines apply it to HTTP requests and WebSocket handshakes.
func scrubHeaders(h http.Header, host, scheme string) {
	h.Del("Authorization")
	h.Del("X-Forwarded-For")
	h.Del("Forwarded")
	if cookies := h.Values("Cookie"); len(cookies) > 0 {
		var keep []string
		size := 0
		for _, line := range cookies {
			for _, part := range strings.Split(line, ";") {
				part = strings.TrimSpace(part)
				if !keepCookie(part) || size+len(part)+2 > workspaceCookieBytes {
					continue
				}
				size += len(part) + 2
				keep = append(keep, part)
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

func (p *Proxy) proxyError(c echo.Context, err error) {
	r := c.Request()
	if errors.Is(r.Context().Err(), context.Canceled) {
		// The browser went away mid-request.
		return
	}
	p.log.Warn("workspace unreachable", "host", r.Host, "path", r.URL.Path, "err", err)
	w := c.Response()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadGateway)
	_, _ = io.WriteString(w, `{"error":{"code":"workspace_unreachable","message":"Your workspace does not answer. It may be starting or may have stopped; reopen the playbook from the portal."}}`)
}

func isWebSocket(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket") && headerHasToken(r.Header, "Connection", "upgrade")
}

// isWebSocketSwitch: a 101 answer switches to WebSocket (as
// httputil.ReverseProxy checks it).
func isWebSocketSwitch(resp *http.Response) bool {
	return strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") && headerHasToken(resp.Header, "Connection", "upgrade")
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

// cut closes every connection and request of a session that ended.
func (p *Proxy) cut(id, reason string) {
	p.mu.Lock()
	tunnels := p.conns[id]
	delete(p.conns, id)
	p.mu.Unlock()
	requests := 0
	if v, ok := p.states.LoadAndDelete(id); ok {
		st := v.(*sessionState)
		st.mu.Lock()
		st.ended = true
		for c := range st.calls {
			c.aborted = true
			c.cancel()
			requests++
		}
		clear(st.calls)
		st.mu.Unlock()
	}
	for t := range tunnels {
		t.close()
	}
	if len(tunnels)+requests > 0 {
		p.log.Info("IDE connections cut", "session", id, "websockets", len(tunnels), "requests", requests, "reason", reason)
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
// not track: it closes them, waits for the relay to let them go, and
// closes the idle connections to the workspaces.
func (p *Proxy) Close() error {
	p.closed.Store(true)
	p.mu.Lock()
	all := p.conns
	p.conns = map[string]map[*tunnel]struct{}{}
	p.mu.Unlock()
	for _, m := range all {
		for t := range m {
			t.close()
		}
	}
	p.relay.close()
	p.wg.Wait()
	p.std.close()
	return nil
}

// refuse answers a refusal and logs it with its private cause.
func (p *Proxy) refuse(c echo.Context, status int, code, msg string, cause error) error {
	p.log.Warn("IDE request refused", "host", c.Request().Host, "path", c.Request().URL.Path, "code", code, "err", cause.Error())
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

func (b *bufferPool) get() *[]byte  { return b.pool.Get().(*[]byte) }
func (b *bufferPool) put(p *[]byte) { b.pool.Put(p) }
