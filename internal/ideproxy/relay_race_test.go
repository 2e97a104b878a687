package ideproxy

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"
)

// Race tests of the WebSocket relay: run them with -race. None of them
// measures time; every wait is for an event (bounded by 5 s or 10 s
// only so that a bug fails instead of hanging).

// flow keeps bytes moving both ways through a connection until it fails:
// a writer of 16 KiB chunks and a reader that says when it first got
// something.
type flow struct {
	wg    sync.WaitGroup
	first chan struct{}
}

func startFlow(c net.Conn, r io.Reader) *flow {
	fl := &flow{first: make(chan struct{})}
	fl.wg.Add(2)
	go func() {
		defer fl.wg.Done()
		chunk := make([]byte, 16<<10)
		for {
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	}()
	go func() {
		defer fl.wg.Done()
		buf := make([]byte, 32<<10)
		once := sync.OnceFunc(func() { close(fl.first) })
		for {
			n, err := r.Read(buf)
			if n > 0 {
				once()
			}
			if err != nil {
				once()
				return
			}
		}
	}()
	return fl
}

// waitClosed waits for ch to be closed; false (and the test failed) if
// it is not within 10 s.
func waitClosed(t *testing.T, what string, ch <-chan struct{}) bool {
	t.Helper()
	select {
	case <-ch:
		return true
	case <-time.After(10 * time.Second):
		t.Errorf("timed out waiting for %s", what)
		return false
	}
}

// openFDs counts this process's open descriptors.
func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(ents)
}

func TestRelayRaceTunnelsOpenAndCloseWhileDataFlows(t *testing.T) {
	if newRelay(1) == nil {
		t.Skip("no event-loop relay on this system")
	}
	r := newRelay(2)
	before := openFDs(t)
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 12 {
				x, err := relayPair(r)
				if err != nil {
					t.Error(err)
					return
				}
				up, down := startFlow(x.client, x.client), startFlow(x.server, x.server)
				if !waitClosed(t, "bytes through the tunnel", up.first) || !waitClosed(t, "bytes through the tunnel", down.first) {
					x.close()
					return
				}
				// Ended, while both directions are busy, by the proxy, by
				// the browser or by the workspace.
				switch (g + i) % 3 {
				case 0:
					x.t.close()
				case 1:
					x.client.Close()
				case 2:
					x.server.Close()
				}
				ended := waitClosed(t, "the tunnel to end", x.closed) // closing it twice would panic
				x.close()
				if !ended {
					return
				}
				up.wg.Wait()
				down.wg.Wait()
			}
		}()
	}
	wg.Wait()
	r.close()
	waitFor(t, "the relay's descriptors to be closed", func() bool { return openFDs(t) <= before })
}

func TestRelayRaceCloseWhileDataFlows(t *testing.T) {
	if newRelay(1) == nil {
		t.Skip("no event-loop relay on this system")
	}
	r := newRelay(2)
	var xs []*relayed
	var flows []*flow
	for range 16 {
		x := newRelayed(t, r, nil)
		defer x.close()
		xs = append(xs, x)
		flows = append(flows, startFlow(x.client, x.client), startFlow(x.server, x.server))
	}
	for _, fl := range flows {
		if !waitClosed(t, "bytes through the tunnels", fl.first) {
			return
		}
	}
	// One prepared, not started yet.
	client, in1 := tcpPair(t, nil)
	in2, server := tcpPair(t, nil)
	defer client.Close()
	defer server.Close()
	late := make(chan struct{})
	rt, err := r.prepare(in1, in2, func() { close(late) })
	if err != nil {
		t.Fatal(err)
	}
	// Tunnels being closed one by one while the relay closes.
	var wg sync.WaitGroup
	for _, x := range xs[:8] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x.t.close()
		}()
	}
	r.close()
	wg.Wait()
	for _, x := range xs {
		select {
		case <-x.closed:
		default:
			t.Error("a tunnel outlived the relay")
		}
		x.close()
	}
	for _, fl := range flows {
		fl.wg.Wait()
	}
	// Started after the close, it lets go of its sockets at once.
	rt.start()
	waitClosed(t, "the late tunnel to end", late)
	_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := client.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("client of a tunnel started after the relay closed: %v", err)
	}
	// And no tunnel is prepared any more.
	a, b := tcpPair(t, nil)
	defer a.Close()
	defer b.Close()
	if _, err := r.prepare(a, b, func() {}); !errors.Is(err, errRelayClosed) {
		t.Errorf("prepare after close: %v", err)
	}
}

// relayPair is a tunnel of r between two loopback TCP connections (see
// newRelayed), for goroutines other than the test's: it returns its
// errors.
func relayPair(r *relay) (*relayed, error) {
	pair := func() (net.Conn, net.Conn, error) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, err
		}
		defer ln.Close()
		a, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return nil, nil, err
		}
		b, err := ln.Accept()
		if err != nil {
			a.Close()
			return nil, nil, err
		}
		return a, b, nil
	}
	client, in1, err := pair()
	if err != nil {
		return nil, err
	}
	in2, server, err := pair()
	if err != nil {
		client.Close()
		in1.Close()
		return nil, err
	}
	x := &relayed{client: client, server: server, closed: make(chan struct{})}
	rt, err := r.prepare(in1, in2, func() { close(x.closed) })
	if err != nil {
		x.close()
		in1.Close()
		in2.Close()
		return nil, err
	}
	x.t = rt
	rt.start()
	return x, nil
}

// endedDuringTransfer opens 8 WebSockets through a gateway with the
// engine, gets bytes flowing both ways on each (the backend echoes), ends
// them with end, and checks that every one ends, though its browser keeps
// writing, and that no tunnel is left.
func endedDuringTransfer(t *testing.T, engine string, end func(f *fixture)) {
	f := newFixture(t, engine, http.HandlerFunc(echoUpgrade))
	var flows []*flow
	for range 8 {
		c, br := f.wsDial()
		defer c.Close()
		flows = append(flows, startFlow(c, br))
	}
	for _, fl := range flows {
		if !waitClosed(t, "echoes", fl.first) {
			return
		}
	}
	end(f)
	done := make(chan struct{})
	go func() {
		for _, fl := range flows {
			fl.wg.Wait()
		}
		close(done)
	}()
	waitClosed(t, "the WebSockets to close", done)
	waitFor(t, "no tunnels", func() bool { return f.p.OpenTunnels() == 0 })
}

func TestWebSocketsCutDuringTransfer(t *testing.T) {
	forEngines(t, func(t *testing.T, engine string) {
		endedDuringTransfer(t, engine, func(f *fixture) { f.end() })
	})
}

func TestCloseDuringTransfer(t *testing.T) {
	forEngines(t, func(t *testing.T, engine string) {
		endedDuringTransfer(t, engine, func(f *fixture) {
			// Close returns once every tunnel has let go of its
			// connections.
			if err := f.p.Close(); err != nil {
				t.Error(err)
			}
			if n := f.p.OpenTunnels(); n != 0 {
				t.Errorf("%d tunnels after Close", n)
			}
		})
	})
}

func TestWebSocketsOpenAndCloseConcurrently(t *testing.T) {
	forEngines(t, testWebSocketsOpenAndCloseConcurrently)
}

func testWebSocketsOpenAndCloseConcurrently(t *testing.T, engine string) {
	f := newFixture(t, engine, http.HandlerFunc(echoUpgrade))
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				c, br, err := f.wsOpen()
				if err != nil {
					t.Error(err)
					return
				}
				msg := []byte{byte(g), byte(i), 'x'}
				if _, err := c.Write(msg); err != nil {
					t.Error(err)
				}
				got := make([]byte, len(msg))
				_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
				if _, err := io.ReadFull(br, got); err != nil || string(got) != string(msg) {
					t.Errorf("echo %d/%d: %q %v", g, i, got, err)
				}
				c.Close()
			}
		}()
	}
	wg.Wait()
	waitFor(t, "no tunnels", func() bool { return f.p.OpenTunnels() == 0 })
}
