package ideproxy

import (
	"fmt"
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
	c.Response().Header().Set("Retry-After", strconv.Itoa(1))
	return apierror.New(http.StatusTooManyRequests, code,
		fmt.Sprintf("This edit session already has %d %s, the most allowed (%s). Close some of them or reload the IDE.", max, what, setting))
}
