package ideproxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/playbookstudio/gateway/internal/editsession"
)

// The proxy engines (Config.Engine, IDE_PROXY_ENGINE).
const (
	// EngineRelay is the default: HTTP through httputil.ReverseProxy,
	// WebSockets relayed by the epoll event loops (goroutines where those
	// are not available).
	EngineRelay = "relay"
	// EngineStdlib is httputil.ReverseProxy for WebSockets too (its own
	// Upgrade handling): the baseline the relay has to beat in `make
	// bench` to keep its place.
	EngineStdlib = "stdlib"
)

// stdProxy carries HTTP (and, with the stdlib engine, WebSockets).
// Authentication, the session check, the
// origin check and the activity throttle stay in Serve; the header rules
// are the relay engine's (rewrite); a session's end cancels its requests
// and WebSockets through their contexts (stdCall).
type stdProxy struct {
	p  *Proxy
	rp *httputil.ReverseProxy
	tr *http.Transport
}

func newStdProxy(p *Proxy) *stdProxy {
	s := &stdProxy{p: p}
	s.tr = &http.Transport{
		// The URL's host is the workspace key (rewrite): one pool per
		// workspace, every connection dialled through the workspace
		// manager. No proxy from the environment.
		DialContext:            s.dial,
		MaxIdleConnsPerHost:    maxIdle,
		IdleConnTimeout:        p.cfg.BackendIdleTimeout,
		ResponseHeaderTimeout:  headerTimeout,
		MaxResponseHeaderBytes: maxResponseHead,
		DisableCompression:     true,
		ForceAttemptHTTP2:      false,
		// A non-nil empty map: no HTTP/2, ever.
		TLSNextProto:    map[string]func(string, *tls.Conn) http.RoundTripper{},
		WriteBufferSize: 16 << 10,
		ReadBufferSize:  32 << 10,
	}
	s.rp = &httputil.ReverseProxy{
		Rewrite:        s.rewrite,
		Transport:      s.tr,
		BufferPool:     stdBuffers{p.buffers},
		ModifyResponse: s.modifyResponse,
		ErrorHandler:   s.errorHandler,
		ErrorLog:       slog.NewLogLogger(p.log.Handler(), slog.LevelWarn),
	}
	return s
}

// dial reaches the workspace whose key is the host of addr.
func (s *stdProxy) dial(ctx context.Context, _, addr string) (net.Conn, error) {
	key, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	return s.p.dial(ctx, key)
}

// stdCall is one request of the stdlib engine: cut cancels it (the
// transport then closes its connection; ReverseProxy closes both ends of
// a WebSocket).
type stdCall struct {
	cancel context.CancelFunc
	c      echo.Context
	st     *sessionState
	sess   *editsession.Session
	// aborted is set by cut, under st.mu.
	aborted bool
	// switched: the workspace answered 101; tunnel is the registered
	// WebSocket (nil if the session ended meanwhile).
	switched bool
	tunnel   *tunnel
	err      error // what Serve returns (an error page)
}

type stdCallKey struct{}

func callOf(r *http.Request) *stdCall {
	return r.Context().Value(stdCallKey{}).(*stdCall)
}

// serve proxies one request, a WebSocket's included.
func (s *stdProxy) serve(c echo.Context, st *sessionState, sess *editsession.Session) error {
	r := c.Request()
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	call := &stdCall{cancel: cancel, c: c, st: st, sess: sess}
	if !st.beginCall(call) {
		return s.p.ended(c, sess.ID)
	}
	s.rp.ServeHTTP(stdWriter{c.Response(), call}, r.WithContext(context.WithValue(ctx, stdCallKey{}, call)))
	st.endCall(call)
	if t := call.tunnel; t != nil {
		s.p.unregister(sess.ID, t)
		s.p.sessions.ConnClosed(sess.ID)
		s.p.wg.Done()
	}
	return call.err
}

// rewrite applies the header rules (those of scrubHeaders for WebSocket
// handshakes too): gateway cookies and Authorization stripped,
// X-Forwarded-Host/-Proto set;
// ReverseProxy has already dropped the hop-by-hop headers and the
// client's X-Forwarded-* and Forwarded.
func (s *stdProxy) rewrite(pr *httputil.ProxyRequest) {
	in, out := pr.In, pr.Out
	out.URL.Scheme = "http"
	out.URL.Host = callOf(in).sess.WorkspaceKey
	out.Host = in.Host
	h := out.Header
	h.Del("Authorization")
	h.Del("Expect")
	if !isWebSocket(in) {
		// Only WebSockets switch protocols.
		h.Del("Upgrade")
		h.Del("Connection")
	}
	scrubHeaders(h, in.Host, s.p.cfg.Hosts.Scheme)
	// No request trailers reach the workspace (as with the relay engine).
	out.Trailer = nil
}

// modifyResponse registers a WebSocket once the workspace switched
// protocols: from then on it counts as an open tunnel, which cut and
// Close end by cancelling its request.
func (s *stdProxy) modifyResponse(resp *http.Response) error {
	call := callOf(resp.Request)
	if resp.StatusCode < 100 {
		// net/http's ResponseWriter would panic.
		return fmt.Errorf("the workspace answered an invalid status %d", resp.StatusCode)
	}
	// A WebSocket's 101 too: ReverseProxy writes its head as it is.
	workspaceHeaders(resp.Header, call.c.Request().URL.Path)
	if resp.StatusCode != http.StatusSwitchingProtocols {
		if _, ok := resp.Header["Content-Type"]; !ok {
			// As the relay engine: no type sniffed by net/http.
			call.c.Response().Header()["Content-Type"] = nil
		}
		return nil
	}
	if !isWebSocket(resp.Request) || !isWebSocketSwitch(resp) {
		return errors.New("the workspace switched protocols on a request that did not ask for a WebSocket")
	}
	call.switched = true
	t := &tunnel{impl: stdTunnel{call.cancel}, act: activity{epoch: time.Now()}}
	if !s.p.register(call.sess.ID, t, true) {
		// The session ended or the proxy closed meanwhile: the
		// WebSocket opens and closes at once, as the relay engine's.
		call.cancel()
		return nil
	}
	s.p.sessions.ConnOpened(call.sess.ID)
	s.p.watchIdle(call.sess.ID, t)
	call.tunnel = t
	return nil
}

// errorHandler answers a request the workspace did not: the session's
// end page if the session was cut, else the relay engine's 502.
func (s *stdProxy) errorHandler(_ http.ResponseWriter, r *http.Request, err error) {
	call := callOf(r)
	if call.switched {
		return // the connection is no longer HTTP
	}
	call.st.mu.Lock()
	cut := call.aborted
	call.st.mu.Unlock()
	if cut {
		call.err = s.p.ended(call.c, call.sess.ID)
		return
	}
	s.p.proxyError(call.c, err)
}

func (s *stdProxy) close() { s.tr.CloseIdleConnections() }

// stdWriter passes 1xx answers (103 Early Hints), which ReverseProxy
// relays, to net/http's ResponseWriter: Echo's would take one for the
// final answer and drop the real one. It also watches a WebSocket's
// traffic, for the idle timeout.
type stdWriter struct {
	*echo.Response
	call *stdCall
}

func (w stdWriter) WriteHeader(code int) {
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		// ReverseProxy copies a 1xx answer's head here as it came
		// (ModifyResponse sees only the final answer).
		scrubSetCookies(w.Header())
		w.Response.Writer.WriteHeader(code)
		return
	}
	w.Response.WriteHeader(code)
}

// Hijack is the browser's connection of a WebSocket, which ReverseProxy
// takes over once the workspace switched protocols: every byte either way
// passes through it, so it tells the tunnel of its traffic.
func (w stdWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := w.Response.Hijack()
	if err != nil || w.call.tunnel == nil {
		return c, brw, err
	}
	return activeConn{Conn: c, act: &w.call.tunnel.act}, brw, nil
}

// stdTunnel is a stdlib-proxied WebSocket: ReverseProxy copies it with
// goroutines of its own; closing it cancels its request.
type stdTunnel struct{ cancel context.CancelFunc }

func (stdTunnel) start()   {}
func (t stdTunnel) close() { t.cancel() }

// stdBuffers lends ReverseProxy the relay engine's 64 KiB buffers.
type stdBuffers struct{ b *bufferPool }

func (s stdBuffers) Get() []byte  { return *s.b.get() }
func (s stdBuffers) Put(b []byte) { s.b.put(&b) }
