package ideproxy

import (
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/playbookstudio/gateway/internal/apierror"
)

// Limits on what the proxy waits for and keeps: the workspace is not
// trusted.
const (
	// maxIdle bounds the idle connections kept per workspace.
	maxIdle = 256
	// headerTimeout bounds the wait for the response's head.
	headerTimeout = 60 * time.Second
	dialTimeout   = 15 * time.Second
	// maxResponseHead bounds the response's head, 1xx answers included.
	maxResponseHead = 1 << 20
)

// The per-session caps' defaults (Config). A browser opens at most six
// HTTP/1.1 connections to a host, and a VS Code window a handful of
// WebSockets (its management socket and its extension host's, a few more
// with terminals and webviews), so only a runaway or hostile page in the
// workspace comes near them.
const (
	defaultMaxWebSockets = 64
	defaultMaxRequests   = 256
	// VS Code's own sockets send a keep-alive every 5 s, so only sockets of
	// apps behind the port proxy can be this quiet.
	defaultWebSocketIdle = time.Hour
	defaultBackendIdle   = 90 * time.Second
)

// The caps by name, as LimitRefused and the refusals name them.
const (
	limitWebSockets = "websockets"
	limitRequests   = "requests"
)

// limitInfo is what a refusal says about a cap: its setting, what it
// counts, the error code and the cap itself.
func (p *Proxy) limitInfo(limit string) (setting, what, code string, max int) {
	if limit == limitRequests {
		return "IDE_MAX_REQUESTS_PER_SESSION", "requests in flight", "too_many_requests", p.cfg.MaxRequests
	}
	return "IDE_MAX_WEBSOCKETS_PER_SESSION", "open WebSockets", "too_many_websockets", p.cfg.MaxWebSockets
}

// defaultLimits fills in the caps and timeouts left zero and refuses
// negative ones and a WebSocket idle timeout VS Code could not live with.
func (cfg *Config) defaultLimits() error {
	if cfg.MaxWebSockets < 0 || cfg.MaxRequests < 0 || cfg.WebSocketIdleTimeout < 0 || cfg.BackendIdleTimeout < 0 {
		return fmt.Errorf("ideproxy: negative per-session limits (%d WebSockets, %d requests, idle %s and %s)",
			cfg.MaxWebSockets, cfg.MaxRequests, cfg.WebSocketIdleTimeout, cfg.BackendIdleTimeout)
	}
	if cfg.MaxWebSockets == 0 {
		cfg.MaxWebSockets = defaultMaxWebSockets
	}
	if cfg.MaxRequests == 0 {
		cfg.MaxRequests = defaultMaxRequests
	}
	if cfg.WebSocketIdleTimeout == 0 {
		cfg.WebSocketIdleTimeout = defaultWebSocketIdle
	}
	if cfg.BackendIdleTimeout == 0 {
		cfg.BackendIdleTimeout = defaultBackendIdle
	}
	return nil
}

// sessionCap counts one kind of a session's connections against a cap.
type sessionCap struct {
	max int64
	n   atomic.Int64
}

func newSessionCap(max int) *sessionCap { return &sessionCap{max: int64(max)} }

// acquire takes a place under the cap; false (and nothing taken) when
// the cap is reached. The place goes back with the slot's release.
func (c *sessionCap) acquire() (*capSlot, bool) {
	if c.n.Add(1) > c.max {
		c.n.Add(-1)
		return nil, false
	}
	return &capSlot{c: c}, true
}

// count is how many places are taken (for tests).
func (c *sessionCap) count() int64 { return c.n.Load() }

// capSlot is one place taken under a sessionCap. release gives it back
// once, however many paths call it; a nil slot releases nothing.
type capSlot struct {
	c    *sessionCap
	done atomic.Bool
}

func (s *capSlot) release() {
	if s != nil && s.done.CompareAndSwap(false, true) {
		s.c.n.Add(-1)
	}
}

// overLimit refuses a request over one of the session's caps: 429, a
// Retry-After, and a message naming the cap and its setting. A WebSocket
// is refused before the upgrade, so it never holds a connection to the
// workspace. The log line is throttled (a runaway page refused thousands
// of times a second would flood the log).
func (p *Proxy) overLimit(c echo.Context, st *sessionState, sid, limit string) error {
	setting, what, code, max := p.limitInfo(limit)
	if p.cfg.LimitRefused != nil {
		p.cfg.LimitRefused(limit)
	}
	now := time.Now().UnixNano()
	if prev := st.lastRefusal.Load(); now-prev > int64(10*time.Second) && st.lastRefusal.CompareAndSwap(prev, now) {
		p.log.Warn("IDE request over a per-session cap", "session", sid, "limit", limit, "max", max,
			"host", c.Request().Host, "path", c.Request().URL.Path)
	}
	if limit == limitWebSockets {
		// A browser's WebSocket API shows nothing of a refused upgrade's
		// body (only close code 1006): accept the upgrade here, without
		// the workspace, and close it at once with 1008 and a reason
		// naming the cap, which the page (and VS Code's log) can read.
		reason := fmt.Sprintf("too many WebSockets in this edit session (%d, %s)", max, setting)
		if err := closeAtUpgrade(c, 1008, reason); err == nil {
			return nil
		}
	}
	c.Response().Header().Set("Retry-After", strconv.Itoa(1))
	return apierror.New(http.StatusTooManyRequests, code,
		fmt.Sprintf("This edit session already has %d %s, the most allowed (%s). Close some of them or reload the IDE.", max, what, setting))
}

// errNotUpgradable means the request cannot be answered with a WebSocket
// (no key, another version): the caller answers in HTTP instead.
var errNotUpgradable = errors.New("not a WebSocket version 13 handshake")

// closeAtUpgrade completes a WebSocket handshake and sends one close frame
// (RFC 6455 §5.5.1) with code and reason, then ends the connection. It
// holds nothing of the workspace's and at most a second of the client's
// time, waiting for its closing frame so the close is not lost to a reset.
func closeAtUpgrade(c echo.Context, code int, reason string) error {
	r := c.Request()
	key := r.Header.Get("Sec-WebSocket-Key")
	if key == "" || r.Header.Get("Sec-WebSocket-Version") != "13" {
		return errNotUpgradable
	}
	if len(reason) > 123 {
		reason = reason[:123]
	}
	conn, rw, err := c.Response().Hijack()
	if err != nil {
		return err
	}
	defer conn.Close()
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
		base64.StdEncoding.EncodeToString(sum[:]) + "\r\n\r\n")
	rw.Write([]byte{0x88, byte(2 + len(reason)), byte(code >> 8), byte(code)})
	rw.WriteString(reason)
	if err := rw.Flush(); err != nil {
		return nil // the client is gone; the answer is given as far as it goes
	}
	if tc, ok := conn.(interface{ CloseWrite() error }); ok {
		_ = tc.CloseWrite()
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(rw, 4096))
	return nil
}
