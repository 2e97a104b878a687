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
}

func (t *tunnel) close() { t.impl.close() }

// tunnel upgrades a WebSocket: the handshake goes through as HTTP, then
// the bytes flow both ways untouched.
func (p *Proxy) tunnel(c echo.Context, sess *editsession.Session) error {
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
	p.startTunnel(sess.ID, client, backend)
	return nil
}

// startTunnel relays client and backend until either side closes, the
// session ends or the proxy closes.
func (p *Proxy) startTunnel(sid string, client, backend net.Conn) {
	t := &tunnel{}
	onClose := func() {
		p.unregister(sid, t)
		p.sessions.ConnClosed(sid)
	}
	rt, err := p.relay.prepare(client, backend, onClose)
	if err == nil {
		t.impl = rt
	} else {
		if !errors.Is(err, errNoRelay) {
			p.log.Warn("WebSocket relay unavailable; copying with goroutines", "session", sid, "err", err)
		}
		t.impl = &copyTunnel{p: p, a: client, b: backend, onClose: onClose}
	}
	p.sessions.ConnOpened(sid)
	if !p.register(sid, t, false) {
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
