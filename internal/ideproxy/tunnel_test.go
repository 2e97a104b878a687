package ideproxy

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// tcpPair is two ends of a loopback TCP connection (ln is only for
// TCP's sake: each pair has a listener of its own, so that concurrent
// pairs never cross).
func tcpPair(t testing.TB, _ net.Listener) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- c
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := <-accepted
	if b == nil {
		t.Fatal("accept failed")
	}
	return a, b
}

// relayed is a tunnel of r between two connections: the test talks to
// the outer ends (client, server), the relay holds the inner ones.
type relayed struct {
	client, server net.Conn
	closed         chan struct{}
	t              *relayTunnel
}

func newRelayed(t testing.TB, r *relay, _ net.Listener) *relayed {
	t.Helper()
	x, err := relayPair(r)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func (x *relayed) close() {
	x.client.Close()
	x.server.Close()
}

func listen(t testing.TB) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func TestRelayCopiesBothWaysWithBackpressure(t *testing.T) {
	if newRelay(1) == nil {
		t.Skip("no event-loop relay on this system")
	}
	r := newRelay(2)
	defer r.close()
	ln := listen(t)
	x := newRelayed(t, r, ln)
	defer x.close()

	// 32 MB each way at once, the server side reading slowly at first:
	// writes block, bytes wait in the tunnel, EPOLLOUT resumes them.
	const size = 32 << 20
	up, down := make([]byte, size), make([]byte, size)
	_, _ = rand.Read(up)
	_, _ = rand.Read(down)
	var wg sync.WaitGroup
	var mu sync.Mutex
	sums := map[string][32]byte{}
	pump := func(w net.Conn, data []byte) {
		defer wg.Done()
		if _, err := w.Write(data); err != nil {
			t.Error(err)
		}
	}
	drain := func(name string, rd net.Conn, slow bool) {
		defer wg.Done()
		h := sha256.New()
		buf := make([]byte, 32<<10)
		n := 0
		for n < size {
			if slow && n < 4<<20 {
				time.Sleep(time.Millisecond)
			}
			m, err := rd.Read(buf)
			h.Write(buf[:m])
			n += m
			if err != nil {
				t.Errorf("%s: %v after %d bytes", name, err, n)
				return
			}
		}
		mu.Lock()
		sums[name] = [32]byte(h.Sum(nil))
		mu.Unlock()
	}
	wg.Add(4)
	go pump(x.client, up)
	go pump(x.server, down)
	go drain("server", x.server, true)
	go drain("client", x.client, false)
	wg.Wait()
	if sums["server"] != sha256.Sum256(up) || sums["client"] != sha256.Sum256(down) {
		t.Fatal("the bytes differ after the relay")
	}
	// And it still relays after all that.
	msg := []byte("ping through the relay")
	if _, err := x.client.Write(msg); err != nil {
		t.Fatal(err)
	}
	got2 := make([]byte, len(msg))
	if _, err := io.ReadFull(x.server, got2); err != nil || !bytes.Equal(got2, msg) {
		t.Fatalf("after the bulk: %q %v", got2, err)
	}

	// One side closing ends the tunnel: the other side sees EOF.
	x.client.Close()
	select {
	case <-x.closed:
	case <-time.After(5 * time.Second):
		t.Fatal("the tunnel outlived its client")
	}
	_ = x.server.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := x.server.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("server end after the client closed: %v", err)
	}
}

func TestRelayIntegrity(t *testing.T) {
	if newRelay(1) == nil {
		t.Skip("no event-loop relay on this system")
	}
	// Both directions' bytes arrive whole and in order, per tunnel, with
	// tunnels opening and closing all the while (descriptor numbers are
	// reused under the loops).
	r := newRelay(2)
	defer r.close()
	ln := listen(t)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				x := newRelayed(t, r, ln)
				size := 1 + (g*7919+i*104729)%(300<<10)
				up := make([]byte, size)
				_, _ = rand.Read(up)
				go func() { _, _ = x.client.Write(up) }()
				got := make([]byte, size)
				if _, err := io.ReadFull(x.server, got); err != nil {
					t.Errorf("tunnel %d/%d: %v", g, i, err)
					x.close()
					return
				}
				if !bytes.Equal(got, up) {
					t.Errorf("tunnel %d/%d: bytes differ", g, i)
				}
				// Echo back a little, then close from either side.
				if _, err := x.server.Write(got[:min(size, 100)]); err != nil {
					t.Error(err)
				}
				back := make([]byte, min(size, 100))
				if _, err := io.ReadFull(x.client, back); err != nil || !bytes.Equal(back, up[:len(back)]) {
					t.Errorf("tunnel %d/%d back: %v", g, i, err)
				}
				if i%2 == 0 {
					x.client.Close()
				} else {
					x.server.Close()
				}
				<-x.closed
				x.close()
			}
		}()
	}
	wg.Wait()
}

func TestRelayCloseBeforeAndAfterStart(t *testing.T) {
	if newRelay(1) == nil {
		t.Skip("no event-loop relay on this system")
	}
	r := newRelay(1)
	ln := listen(t)
	// Closed before it started: the loop lets it go when it gets it.
	client, in1 := tcpPair(t, ln)
	in2, server := tcpPair(t, ln)
	defer client.Close()
	defer server.Close()
	var closes atomic.Int32
	rt, err := r.prepare(in1, in2, func() { closes.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	rt.close()
	rt.start()
	_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := client.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("client of a tunnel closed before start: %v", err)
	}
	waitFor(t, "onClose", func() bool { return closes.Load() == 1 })

	// Running ones close at once; closing twice is harmless.
	xs := []*relayed{newRelayed(t, r, ln), newRelayed(t, r, ln)}
	for _, x := range xs {
		defer x.close()
	}
	xs[0].t.close()
	xs[0].t.close()
	<-xs[0].closed
	_ = xs[0].client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := xs[0].client.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("after close: %v", err)
	}
	// The relay closing drains the rest and refuses new tunnels.
	r.close()
	select {
	case <-xs[1].closed:
	default:
		t.Error("a tunnel outlived the relay")
	}
	a, b := tcpPair(t, ln)
	defer a.Close()
	defer b.Close()
	if _, err := r.prepare(a, b, func() {}); !errors.Is(err, errRelayClosed) {
		t.Errorf("prepare after close: %v", err)
	}
	r.close()
}

func TestCopyTunnelForConnsWithoutSockets(t *testing.T) {
	p := &Proxy{}
	a1, a2 := net.Pipe()
	b1, b2 := net.Pipe()
	if _, err := newRelay(1).prepare(a2, b1, func() {}); !errors.Is(err, errNoRelay) {
		t.Fatalf("prepare of pipes: %v", err)
	}
	closed := make(chan struct{})
	ct := &copyTunnel{p: p, a: a2, b: b1, onClose: func() { close(closed) }}
	ct.start()
	go func() { _, _ = a1.Write([]byte("hi")) }()
	got := make([]byte, 2)
	if _, err := io.ReadFull(b2, got); err != nil || string(got) != "hi" {
		t.Fatalf("%q %v", got, err)
	}
	ct.close()
	<-closed
	p.wg.Wait()
	a1.Close()
	b2.Close()
}

func TestWebSocketThroughTheProxy(t *testing.T) { forEngines(t, testWebSocketThroughTheProxy) }

func testWebSocketThroughTheProxy(t *testing.T, engine string) {
	f := newFixture(t, engine, http.HandlerFunc(echoUpgrade))
	const n = 20
	conns := make([]net.Conn, n)
	for i := range conns {
		c, br := f.wsDial()
		conns[i] = c
		defer c.Close()
		msg := []byte("message " + string(rune('a'+i)))
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(msg))
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(br, got); err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("echo %d: %q %v", i, got, err)
		}
	}
	if got := f.p.OpenTunnels(); got != n {
		t.Errorf("OpenTunnels = %d, want %d", got, n)
	}
	// A browser closing its WebSocket ends the tunnel.
	conns[0].Close()
	waitFor(t, "the tunnel to end", func() bool { return f.p.OpenTunnels() == n-1 })

	// The session ending cuts the rest at once.
	start := time.Now()
	f.end()
	for i, c := range conns[1:] {
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("WebSocket %d after the session ended: %v", i+1, err)
		}
	}
	t.Logf("%d WebSockets cut in %v", n-1, time.Since(start))
	waitFor(t, "no tunnels", func() bool { return f.p.OpenTunnels() == 0 })
}

func TestCloseDrainsWebSockets(t *testing.T) { forEngines(t, testCloseDrainsWebSockets) }

func testCloseDrainsWebSockets(t *testing.T, engine string) {
	f := newFixture(t, engine, http.HandlerFunc(echoUpgrade))
	var conns []net.Conn
	for range 5 {
		c, _ := f.wsDial()
		defer c.Close()
		conns = append(conns, c)
	}
	waitFor(t, "5 tunnels", func() bool { return f.p.OpenTunnels() == 5 })
	if err := f.p.Close(); err != nil {
		t.Fatal(err)
	}
	if got := f.p.OpenTunnels(); got != 0 {
		t.Errorf("OpenTunnels after Close = %d", got)
	}
	for i, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("WebSocket %d after Close: %v", i, err)
		}
	}
	// A WebSocket opened after Close is let go at once.
	c, _ := f.wsDial()
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("WebSocket after Close: %v", err)
	}
	_ = f.p.Close()
}

func BenchmarkRelayRoundTrip(b *testing.B) {
	r := newRelay(1)
	if r == nil {
		b.Skip("no event-loop relay on this system")
	}
	defer r.close()
	ln := listen(b)
	x := newRelayed(b, r, ln)
	defer x.close()
	go func() { _, _ = io.Copy(x.server, x.server) }()
	msg := make([]byte, 1024)
	got := make([]byte, 1024)
	b.SetBytes(2 * 1024)
	for b.Loop() {
		if _, err := x.client.Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(x.client, got); err != nil {
			b.Fatal(err)
		}
	}
}
