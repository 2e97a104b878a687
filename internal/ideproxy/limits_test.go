package ideproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// echoOrOK upgrades WebSockets (echoUpgrade) and answers other requests
// "ok".
func echoOrOK(w http.ResponseWriter, r *http.Request) {
	if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		echoUpgrade(w, r)
		return
	}
	_, _ = io.WriteString(w, "ok")
}

// roundTrip sends msg through an open WebSocket and reads the echo.
func roundTrip(c net.Conn, br interface{ Read([]byte) (int, error) }, msg string) error {
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, msg); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(br, got); err != nil {
		return err
	}
	if string(got) != msg {
		return errors.New("echo: " + string(got))
	}
	return nil
}

// firstFrame writes msg and reads what comes back: the echo of msg (code
// 0), or a close frame's code and reason.
func firstFrame(c net.Conn, br interface{ Read([]byte) (int, error) }, msg string) (int, string, error) {
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, msg); err != nil {
		return 0, "", err
	}
	head := make([]byte, 2)
	if _, err := io.ReadFull(br, head); err != nil {
		return 0, "", err
	}
	if head[0] != 0x88 {
		rest := make([]byte, len(msg)-2)
		if _, err := io.ReadFull(br, rest); err != nil {
			return 0, "", err
		}
		if got := string(head) + string(rest); got != msg {
			return 0, "", errors.New("echo: " + got)
		}
		return 0, "", nil
	}
	body := make([]byte, int(head[1]&0x7f))
	if _, err := io.ReadFull(br, body); err != nil || len(body) < 2 {
		return 0, "", fmt.Errorf("close frame: %v", err)
	}
	return int(body[0])<<8 | int(body[1]), string(body[2:]), nil
}

// sessionState of sid, for the counters.
func (f *fixture) state(sid string) *sessionState {
	v, ok := f.p.states.Load(sid)
	if !ok {
		f.t.Fatalf("no state for session %s", sid)
	}
	return v.(*sessionState)
}

// The "done when": one session opening 2,000 WebSockets hits the
// cap with a clear refusal, while another user's session keeps working;
// refused upgrades hold no connection to the workspace.
func TestWebSocketCapPerSession(t *testing.T) { forEngines(t, testWebSocketCapPerSession) }

func testWebSocketCapPerSession(t *testing.T, engine string) {
	const limit, attempts = 16, 2000
	f := newFixtureWith(t, &fixture{engine: engine, configure: func(c *Config) { c.MaxWebSockets = limit }}, http.HandlerFunc(echoOrOK))
	bobSID, bobHost, bobCookie := f.enterAs(bob)
	fdsBefore := openFDs(t)
	backendBefore := f.conns.Load()

	var (
		mu      sync.Mutex
		open    []net.Conn
		refused atomic.Int64
		other   atomic.Int64
		bodies  sync.Map
	)
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	work := make(chan struct{})
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				c, br, resp, err := f.wsHandshake(f.host, f.cookie, "/ws")
				if err != nil {
					other.Add(1)
					continue
				}
				if resp.StatusCode != http.StatusSwitchingProtocols {
					c.Close()
					other.Add(1)
					continue
				}
				// Over the cap the gateway upgrades and closes at once
				// with 1008 and a reason (a browser shows nothing of a
				// refused upgrade); otherwise the workspace echoes.
				code, reason, err := firstFrame(c, br, "hi")
				switch {
				case err != nil:
					c.Close()
					other.Add(1)
				case code == 1008:
					c.Close()
					refused.Add(1)
					bodies.Store(reason, true)
				case code == 0:
					mu.Lock()
					open = append(open, c)
					mu.Unlock()
				default:
					c.Close()
					other.Add(1)
				}
			}
		}()
	}
	// Bob works throughout.
	bobDone := make(chan error, 1)
	go func() {
		bc, bbr, resp, err := f.wsHandshake(bobHost, bobCookie, "/ws")
		if err != nil {
			bobDone <- err
			return
		}
		defer bc.Close()
		if resp.StatusCode != http.StatusSwitchingProtocols {
			bobDone <- errors.New("bob's upgrade: " + resp.Status)
			return
		}
		for i := range 20 {
			if err := roundTrip(bc, bbr, "bob"); err != nil {
				bobDone <- err
				return
			}
			req, _ := http.NewRequest(http.MethodGet, "http://"+bobHost+"/x", nil)
			req.Header.Set("Cookie", bobCookie)
			resp, err := f.client().Do(req)
			if err != nil {
				bobDone <- err
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				bobDone <- errors.New("bob's request " + resp.Status)
				return
			}
			_ = i
		}
		bobDone <- nil
	}()
	for range attempts {
		work <- struct{}{}
	}
	close(work)
	wg.Wait()
	if err := <-bobDone; err != nil {
		t.Errorf("bob's session during alice's flood: %v", err)
	}

	if len(open) != limit || refused.Load() != attempts-limit || other.Load() != 0 {
		t.Fatalf("%d open, %d refused with 429, %d otherwise; want %d open and the rest refused", len(open), refused.Load(), other.Load(), limit)
	}
	bodies.Range(func(k, _ any) bool {
		body := k.(string)
		if !strings.Contains(body, "too many WebSockets") || !strings.Contains(body, "IDE_MAX_WEBSOCKETS_PER_SESSION") || !strings.Contains(body, "16") {
			t.Errorf("close reason %q does not name the cap and its setting", body)
		}
		return true
	})
	// Only the opened WebSockets (and bob's traffic) reached the
	// workspace.
	if n := f.conns.Load() - backendBefore; n > limit+1+20 {
		t.Errorf("the workspace accepted %d connections for %d WebSockets", n, limit)
	}
	// The open WebSockets hold four each (browser and gateway ends, the
	// gateway's and the workspace's ends of the backend connection);
	// refused ones must not hold any once their browsers left.
	waitFor(t, "descriptors of refused upgrades closed", func() bool { return openFDs(t) <= fdsBefore+4*limit+40 })
	// Alice's HTTP still works, and the open WebSockets too.
	resp := f.do(f.request(http.MethodGet, "/x", nil))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("alice's HTTP at the WebSocket cap: %d", resp.StatusCode)
	}
	if got := f.state(f.sid).websockets.count(); got != limit {
		t.Errorf("the cap counts %d, want %d", got, limit)
	}
	for _, c := range open {
		c.Close()
	}
	open = nil
	waitFor(t, "the session's WebSocket count back to 0", func() bool { return f.state(f.sid).websockets.count() == 0 })
	waitFor(t, "bob's count back to 0", func() bool { return f.state(bobSID).websockets.count() == 0 })
	// Room again.
	c, _ := f.wsDial()
	c.Close()
}

func TestRequestCapPerSession(t *testing.T) { forEngines(t, testRequestCapPerSession) }

func testRequestCapPerSession(t *testing.T, engine string) {
	const limit = 3
	release := make(chan struct{})
	var inSlow atomic.Int64
	f := newFixtureWith(t, &fixture{engine: engine, configure: func(c *Config) { c.MaxRequests = limit }},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/slow" {
				inSlow.Add(1)
				<-release
			}
			echoOrOK(w, r)
		}))
	_, bobHost, bobCookie := f.enterAs(bob)
	var wg sync.WaitGroup
	for range limit {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := f.client().Do(f.request(http.MethodGet, "/slow", nil))
			if err == nil {
				resp.Body.Close()
			}
		}()
	}
	released := false
	defer func() {
		if !released {
			close(release)
		}
		wg.Wait()
	}()
	waitFor(t, "the slow requests at the workspace", func() bool { return inSlow.Load() == limit })

	resp := f.do(f.request(http.MethodGet, "/x", nil))
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" ||
		!strings.Contains(string(body), "IDE_MAX_REQUESTS_PER_SESSION") || !strings.Contains(string(body), "too_many_requests") {
		t.Errorf("over the cap: %d, Retry-After %q, %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	// WebSockets have a cap of their own; another session is not counted.
	c, _ := f.wsDial()
	c.Close()
	req, _ := http.NewRequest(http.MethodGet, "http://"+bobHost+"/x", nil)
	req.Header.Set("Cookie", bobCookie)
	resp = f.do(req)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("bob's request while alice is at her cap: %d", resp.StatusCode)
	}

	close(release)
	released = true
	wg.Wait()
	waitFor(t, "the request count back to 0", func() bool { return f.state(f.sid).requests.count() == 0 })
	resp = f.do(f.request(http.MethodGet, "/x", nil))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("after the slow requests: %d", resp.StatusCode)
	}
}

func TestIdleWebSocketIsClosed(t *testing.T) { forEngines(t, testIdleWebSocketIsClosed) }

func testIdleWebSocketIsClosed(t *testing.T, engine string) {
	f := newFixtureWith(t, &fixture{engine: engine, configure: func(c *Config) { c.WebSocketIdleTimeout = 100 * time.Millisecond }},
		http.HandlerFunc(echoOrOK))
	c, br := f.wsDial()
	defer c.Close()
	if err := roundTrip(c, br, "hello"); err != nil {
		t.Fatal(err)
	}
	// Then silence: the gateway closes it.
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := br.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("an idle WebSocket: read %d, %v; want it closed", n, err)
	}
	waitFor(t, "the tunnel gone", func() bool { return f.p.OpenTunnels() == 0 })
	waitFor(t, "the WebSocket's slot back", func() bool { return f.state(f.sid).websockets.count() == 0 })
}

// Traffic either way counts as activity, whatever the engine: the
// tunnel's clock moves with each byte.
func TestWebSocketTrafficIsActivity(t *testing.T) { forEngines(t, testWebSocketTrafficIsActivity) }

func testWebSocketTrafficIsActivity(t *testing.T, engine string) {
	f := newFixture(t, engine, http.HandlerFunc(echoOrOK))
	c, br := f.wsDial()
	defer c.Close()
	waitFor(t, "the tunnel", func() bool { return f.p.OpenTunnels() == 1 })
	f.p.mu.Lock()
	var tn *tunnel
	for t := range f.p.conns[f.sid] {
		tn = t
	}
	f.p.mu.Unlock()
	opened := time.Duration(tn.act.last.Load())
	time.Sleep(5 * time.Millisecond)
	if err := roundTrip(c, br, "ping"); err != nil {
		t.Fatal(err)
	}
	// The echo came back through the tunnel, so it was seen.
	waitFor(t, "activity after the round trip", func() bool { return time.Duration(tn.act.last.Load()) >= opened+5*time.Millisecond })
}

// Every path of a WebSocket gives its place back exactly once: refused
// by the workspace, unreachable workspace, closed by either side, cut.
func TestWebSocketSlotsAreReleased(t *testing.T) { forEngines(t, testWebSocketSlotsAreReleased) }

func testWebSocketSlotsAreReleased(t *testing.T, engine string) {
	var down atomic.Bool
	f := newFixtureWith(t, &fixture{engine: engine, configure: func(c *Config) { c.MaxWebSockets = 4 }},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/nows" {
				http.NotFound(w, r)
				return
			}
			echoOrOK(w, r)
		}))
	dial := f.rt.DialFunc
	f.rt.DialFunc = func(ctx context.Context) (net.Conn, error) {
		if down.Load() {
			return nil, errors.New("down")
		}
		return dial(ctx)
	}
	st := f.p.state(f.sid) // made on the session's first request
	count := func() int64 { return st.websockets.count() }
	for i := range 3 {
		// Refused by the workspace.
		c, _, resp, err := f.wsHandshake(f.host, f.cookie, "/nows")
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("refused upgrade: %d", resp.StatusCode)
		}
		// Unreachable workspace.
		down.Store(true)
		f.p.std.tr.CloseIdleConnections() // no kept-alive one either
		c, _, resp, err = f.wsHandshake(f.host, f.cookie, "/ws")
		down.Store(false)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		if resp.StatusCode != http.StatusBadGateway {
			t.Fatalf("unreachable workspace: %d", resp.StatusCode)
		}
		// Closed by the browser, and by the workspace's end.
		c, _ = f.wsDial()
		c.Close()
		waitFor(t, "count 0 after the browser closed", func() bool { return count() == 0 })
		_ = i
	}
	// Four open: full; then the session is cut.
	var open []net.Conn
	for range 4 {
		c, _ := f.wsDial()
		open = append(open, c)
	}
	// A fifth is upgraded and closed at once with 1008, holding nothing.
	fifth, br, err := f.wsOpen()
	if err != nil {
		t.Fatal(err)
	}
	if code, _, err := firstFrame(fifth, br, "hi"); err != nil || code != 1008 || count() != 4 {
		t.Fatalf("a fifth WebSocket: close %d, %v, count %d", code, err, count())
	}
	fifth.Close()
	f.end()
	waitFor(t, "count 0 after the cut", func() bool { return count() == 0 })
	for _, c := range open {
		c.Close()
	}
}

func TestSessionCapRace(t *testing.T) {
	const max, workers, rounds = 5, 16, 2000
	c := newSessionCap(max)
	var held, peak atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				s, ok := c.acquire()
				if !ok {
					continue
				}
				if h := held.Add(1); h > peak.Load() {
					peak.Store(h)
				}
				held.Add(-1)
				// Released from two paths at once: counted once.
				var both sync.WaitGroup
				both.Add(2)
				go func() { defer both.Done(); s.release() }()
				go func() { defer both.Done(); s.release() }()
				both.Wait()
			}
		}()
	}
	wg.Wait()
	if c.count() != 0 || peak.Load() > max {
		t.Fatalf("count %d after all released (want 0), peak %d (cap %d)", c.count(), peak.Load(), max)
	}
	var nilSlot *capSlot
	nilSlot.release()
}
