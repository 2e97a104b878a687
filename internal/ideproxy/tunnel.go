package ideproxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/playbookstudio/gateway/internal/editsession"
)

// tunnel is one proxied WebSocket: the browser's connection and the
// workspace's, relayed by the event loops (relay) or, where those are not
// available, by two goroutines (copyTunnel).
type tunnel struct {
	impl interface {
		start()
		close()
	}
	// act is when bytes last went through, either way; an idle timer
	// (watchIdle) closes the tunnel when that was too long ago.
	act activity

	mu      sync.Mutex
	idle    *time.Timer
	stopped bool // no more idle checks
}

func (t *tunnel) close() { t.impl.close() }

// activity is when a WebSocket last carried bytes, on the monotonic
// clock: nanoseconds since epoch.
type activity struct {
	epoch time.Time
	last  atomic.Int64
}

func (a *activity) touch() { a.touchAt(time.Now()) }

func (a *activity) touchAt(now time.Time) { a.last.Store(int64(now.Sub(a.epoch))) }

// quiet is how long ago the last bytes went through.
func (a *activity) quiet() time.Duration { return time.Since(a.epoch) - time.Duration(a.last.Load()) }

// watchIdle closes t once it carried nothing either way for
// WebSocketIdleTimeout. One timer per tunnel, which fires once per
// timeout at most: traffic only stores the time, and the timer, when it
// fires, sleeps again for what is left.
func (p *Proxy) watchIdle(sid string, t *tunnel) {
	limit := p.cfg.WebSocketIdleTimeout
	t.act.touch()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return
	}
	var check func()
	check = func() {
		quiet := t.act.quiet()
		t.mu.Lock()
		if t.stopped {
			t.mu.Unlock()
			return
		}
		if quiet < limit {
			t.idle.Reset(limit - quiet)
			t.mu.Unlock()
			return
		}
		t.stopped = true
		t.mu.Unlock()
		p.log.Info("idle WebSocket closed", "session", sid, "idle", quiet.Round(time.Millisecond).String(), "limit", limit.String())
		// Outside t.mu: closing may end in unregister, which takes it.
		t.close()
	}
	// check takes t.mu before it reads t.idle, which is set under t.mu.
	t.idle = time.AfterFunc(limit, check)
}

// stopIdle ends t's idle checks.
func (t *tunnel) stopIdle() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopped = true
	if t.idle != nil {
		t.idle.Stop()
	}
}

// activeConn tells a's activity of every byte read or written.
type activeConn struct {
	net.Conn
	act *activity
}

func (c activeConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.act.touch()
	}
	return n, err
}

func (c activeConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if n > 0 {
		c.act.touch()
	}
	return n, err
}

// CloseWrite passes a half-close on (ReverseProxy does one when the
// workspace's side ends).
func (c activeConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// tunnel upgrades a WebSocket: the handshake goes through as HTTP, then
// the bytes flow both ways untouched. It owns slot, the WebSocket's place
// under the session's cap: released here unless a tunnel opens, else when
// that tunnel closes.
func (p *Proxy) tunnel(c echo.Context, sess *editsession.Session, slot *capSlot) error {
	opened := false
	defer func() {
		if !opened {
			slot.release()
		}
	}()
	r := c.Request()
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	backend, err := p.dial(ctx, sess.WorkspaceKey)
	if err != nil {
		p.proxyError(c, err)
		return nil
	}
	out := r.Clone(ctx)
	out.URL = &url.URL{Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery}
	out.RequestURI = ""
	scrubHeaders(out.Header, r.Host, p.cfg.Hosts.Scheme)
	_ = backend.SetDeadline(time.Now().Add(15 * time.Second))
	if err := out.Write(backend); err != nil {
		backend.Close()
		p.proxyError(c, err)
		return nil
	}
	br := bufio.NewReaderSize(backend, 4096)
	resp, err := http.ReadResponse(br, out)
	if err != nil {
		backend.Close()
		p.proxyError(c, err)
		return nil
	}
	_ = backend.SetDeadline(time.Time{})
	if resp.StatusCode == http.StatusSwitchingProtocols && !isWebSocketSwitch(resp) {
		backend.Close()
		p.proxyError(c, errors.New("the workspace switched to another protocol than WebSocket"))
		return nil
	}
	workspaceHeaders(resp.Header, r.URL.Path)
	if resp.StatusCode != http.StatusSwitchingProtocols {
		defer backend.Close()
		defer resp.Body.Close()
		for k, vs := range resp.Header {
			if k == "Content-Security-Policy" {
				// Beside the gateway's own, as with the stdlib engine.
				c.Response().Header()[k] = append(c.Response().Header()[k], vs...)
				continue
			}
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
	c.Response().Committed = true
	if err := resp.Write(client); err != nil {
		client.Close()
		backend.Close()
		return nil
	}
	// Bytes already read past the handshake on either side go first.
	if n := crw.Reader.Buffered(); n > 0 {
		pending, _ := crw.Reader.Peek(n)
		if _, err := backend.Write(pending); err != nil {
			client.Close()
			backend.Close()
			return nil
		}
	}
	if n := br.Buffered(); n > 0 {
		pending, _ := br.Peek(n)
		if _, err := client.Write(pending); err != nil {
			client.Close()
			backend.Close()
			return nil
		}
	}
	opened = true
	p.startTunnel(sess.ID, client, backend, slot)
	return nil
}

// startTunnel relays client and backend until either side closes, the
// session ends, the proxy closes or the tunnel idles out; then slot goes
// back.
func (p *Proxy) startTunnel(sid string, client, backend net.Conn, slot *capSlot) {
	t := &tunnel{act: activity{epoch: time.Now()}}
	onClose := func() {
		p.unregister(sid, t)
		p.sessions.ConnClosed(sid)
		slot.release()
	}
	rt, err := p.relay.prepare(client, backend, onClose)
	if err == nil {
		rt.watch(&t.act)
		t.impl = rt
	} else {
		if !errors.Is(err, errNoRelay) {
			p.log.Warn("WebSocket relay unavailable; copying with goroutines", "session", sid, "err", err)
		}
		t.impl = &copyTunnel{p: p, a: activeConn{Conn: client, act: &t.act}, b: backend, onClose: onClose}
	}
	p.sessions.ConnOpened(sid)
	if p.register(sid, t, false) {
		p.watchIdle(sid, t)
	} else {
		t.close()
	}
	// A closed tunnel starts too: it then only lets its connections go.
	t.impl.start()
}

// register adds an open WebSocket of session id, unless the session
// ended or the proxy closed. hold counts it in p.wg, for Close to wait
// for (under p.mu: Close closes every registered tunnel before it
// waits, so the Add happens before that Wait or not at all).
func (p *Proxy) register(id string, t *tunnel, hold bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed.Load() {
		return false
	}
	if _, ok := p.sessions.Live(id); !ok {
		return false
	}
	if hold {
		p.wg.Add(1)
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
	t.stopIdle()
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns[id], t)
	if len(p.conns[id]) == 0 {
		delete(p.conns, id)
	}
}

// copyTunnel relays with two goroutines doing io.Copy (splice(2) between
// sockets on Linux).
type copyTunnel struct {
	p       *Proxy
	a, b    net.Conn
	onClose func()

	mu      sync.Mutex
	started bool
	closed  bool
}

func (t *copyTunnel) start() {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		t.onClose()
		return
	}
	t.started = true
	// Under the lock: Close closes every tunnel before it waits, so
	// this Add happens before that Wait or not at all.
	t.p.wg.Add(2)
	t.mu.Unlock()
	go func() {
		defer t.p.wg.Done()
		_, _ = io.Copy(t.b, t.a)
		t.close()
	}()
	go func() {
		defer t.p.wg.Done()
		_, _ = io.Copy(t.a, t.b)
		t.close()
		t.onClose()
	}()
}

func (t *copyTunnel) close() {
	t.mu.Lock()
	done := t.closed
	t.closed = true
	t.mu.Unlock()
	if !done {
		_ = t.a.Close()
		_ = t.b.Close()
	}
}
