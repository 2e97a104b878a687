//go:build linux && (amd64 || arm64)

package ideproxy

import (
	"errors"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The WebSocket relay: a few event loops (one per P), each an epoll
// instance over the raw non-blocking sockets of its tunnels,
// level-triggered. A readable socket is read once into the loop's buffer
// and written to its peer; only when that write would block does the rest
// wait in a buffer of the tunnel's own, with EPOLLOUT on the peer and
// EPOLLIN off on the reader until it drains. An idle tunnel holds two file
// descriptors and a small struct: no goroutines, no buffers.
//
// A loop is a goroutine that collects its events with a non-blocking
// epoll_wait and, when there are none, parks in Go's own poller on the
// epoll descriptor (which is pollable): no thread sits in a blocking
// system call, which would make the scheduler take its P away.
//
// The sockets are duplicates of the net.Conns' descriptors, which are
// closed (that takes them out of Go's poller); the loop alone closes the
// duplicates, so a descriptor number it watches can never belong to
// another socket. Events carry a slot and its generation: an event of a
// tunnel closed earlier in the same batch is recognised and skipped.

var errNoRelay = errors.New("ideproxy: connection without a raw socket")

var errRelayClosed = errors.New("ideproxy: relay closed")

// relayLoops is how many event loops the relay runs: one per P, as
// nginx runs a worker per core.
func relayLoops() int {
	return min(runtime.GOMAXPROCS(0), 16)
}

const relayBufSize = 64 << 10

type relay struct {
	n      int
	next   atomic.Uint32
	mu     sync.Mutex
	loops  []*loop // started on the first tunnel
	closed bool
}

func newRelay(n int) *relay { return &relay{n: max(n, 1)} }

// prepare takes a and b over: on success they are closed, and their
// sockets belong to the returned tunnel, which start hands to a loop.
// errNoRelay: one of them has no raw socket (use goroutines).
func (r *relay) prepare(a, b net.Conn, onClose func()) (*relayTunnel, error) {
	if r == nil {
		return nil, errNoRelay
	}
	afd, err := dupConn(a)
	if err != nil {
		return nil, err
	}
	bfd, err := dupConn(b)
	if err != nil {
		_ = syscall.Close(afd)
		return nil, err
	}
	l, err := r.pick()
	if err != nil {
		_ = syscall.Close(afd)
		_ = syscall.Close(bfd)
		return nil, err
	}
	_ = a.Close()
	_ = b.Close()
	return &relayTunnel{loop: l, onClose: onClose, slot: -1, ends: [2]relayEnd{{fd: afd}, {fd: bfd}}}, nil
}

// pick starts the loops on first use and returns the next one.
func (r *relay) pick() (*loop, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, errRelayClosed
	}
	if r.loops == nil {
		loops := make([]*loop, 0, r.n)
		for range r.n {
			l, err := newLoop()
			if err != nil {
				for _, l := range loops {
					l.stop()
					<-l.done
				}
				return nil, err
			}
			loops = append(loops, l)
		}
		r.loops = loops
	}
	return r.loops[int(r.next.Add(1))%len(r.loops)], nil
}

// close stops the loops, which close every tunnel they hold, and waits
// for them.
func (r *relay) close() {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.closed = true
	loops := r.loops
	r.mu.Unlock()
	for _, l := range loops {
		l.stop()
	}
	for _, l := range loops {
		<-l.done
	}
}

// dupConn duplicates c's socket descriptor, close-on-exec and
// non-blocking.
func dupConn(c net.Conn) (int, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return -1, errNoRelay
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var derr error
	if err := rc.Control(func(s uintptr) {
		// As package os does: no exec may inherit the duplicate between
		// dup(2) and setting close-on-exec.
		syscall.ForkLock.RLock()
		defer syscall.ForkLock.RUnlock()
		fd, derr = syscall.Dup(int(s))
		if derr == nil {
			syscall.CloseOnExec(fd)
		}
	}); err != nil {
		if derr == nil && fd >= 0 {
			_ = syscall.Close(fd)
		}
		return -1, err
	}
	if derr != nil {
		return -1, derr
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		_ = syscall.Close(fd)
		return -1, err
	}
	return fd, nil
}

// alive checks that an idle keep-alive connection is still open: no EOF,
// no stray bytes.
func alive(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	ok = false
	_ = rc.Control(func(fd uintptr) {
		var b [1]byte
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		ok = err == syscall.EAGAIN
	})
	return ok
}

// relayTunnel is one WebSocket in a loop. Its fields past closeReq are the
// loop's alone.
type relayTunnel struct {
	loop     *loop
	onClose  func()
	act      *activity // told of traffic; set before start
	closeReq atomic.Bool

	slot   int32 // -1 until added
	gen    int32
	ends   [2]relayEnd
	closed bool
}

type relayEnd struct {
	fd      int
	events  uint32 // registered interest
	pending []byte // read from the other end, not yet written to this one
}

// watch has the loop tell a of the tunnel's traffic (call it before
// start).
func (t *relayTunnel) watch(a *activity) { t.act = a }

func (t *relayTunnel) start() {
	if !t.loop.send(loopCmd{add: true, t: t}) {
		// The relay stopped before the loop got the tunnel: nobody else
		// holds its sockets.
		_ = syscall.Close(t.ends[0].fd)
		_ = syscall.Close(t.ends[1].fd)
		t.onClose()
	}
}

// close asks the loop to close the tunnel; before start, the loop closes
// it as soon as it gets it.
func (t *relayTunnel) close() {
	if t.closeReq.CompareAndSwap(false, true) {
		t.loop.send(loopCmd{t: t})
	}
}

type loopCmd struct {
	add bool // else close
	t   *relayTunnel
}

type loop struct {
	epfd         int
	wakeR, wakeW int             // a pipe: a byte in it wakes the loop
	file         *os.File        // the epoll descriptor, in Go's poller
	rc           syscall.RawConn // to wait on it
	done         chan struct{}

	mu       sync.Mutex
	cmds     []loopCmd
	woken    bool // the pipe was written since the loop last took cmds
	stopping bool

	// The loop goroutine's own.
	spare  []loopCmd
	slots  []*relayTunnel
	gens   []int32
	free   []int32
	buf    []byte
	events []syscall.EpollEvent
	now    time.Time // when the current batch of events came
}

const wakeData = -1 // the event data of the wake pipe

func newLoop() (*loop, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	var wake [2]int
	if err := syscall.Pipe2(wake[:], syscall.O_NONBLOCK|syscall.O_CLOEXEC); err != nil {
		_ = syscall.Close(epfd)
		return nil, err
	}
	fail := func(err error) (*loop, error) {
		_ = syscall.Close(wake[0])
		_ = syscall.Close(wake[1])
		_ = syscall.Close(epfd)
		return nil, err
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: wakeData}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, wake[0], &ev); err != nil {
		return fail(err)
	}
	// Go's poller watches the epoll descriptor for the loop.
	if err := syscall.SetNonblock(epfd, true); err != nil {
		return fail(err)
	}
	f := os.NewFile(uintptr(epfd), "epoll")
	rc, err := f.SyscallConn()
	if err != nil {
		_ = syscall.Close(wake[0])
		_ = syscall.Close(wake[1])
		_ = f.Close()
		return nil, err
	}
	l := &loop{epfd: epfd, wakeR: wake[0], wakeW: wake[1], file: f, rc: rc, done: make(chan struct{}),
		buf: make([]byte, relayBufSize), events: make([]syscall.EpollEvent, 256)}
	go l.run()
	return l, nil
}

// send queues a command; false once the loop stops.
func (l *loop) send(c loopCmd) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopping {
		return false
	}
	l.cmds = append(l.cmds, c)
	l.wakeLocked()
	return true
}

func (l *loop) stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.stopping {
		l.stopping = true
		l.wakeLocked()
	}
}

// wakeLocked writes a byte to the wake pipe, under l.mu: the loop closes
// the pipe under l.mu too, once stopping, so this never writes to a
// reused number. At most one byte is in the pipe at a time.
func (l *loop) wakeLocked() {
	if l.woken {
		return
	}
	l.woken = true
	_, _ = syscall.Write(l.wakeW, []byte{1})
}

func (l *loop) run() {
	defer close(l.done)
	yielded, iterations := time.Now(), 0
	for {
		// A busy loop does not park for a long time: it yields now and
		// then, so that the scheduler need not preempt it (a signal every
		// 10 ms) and other goroutines get their turn.
		if iterations++; iterations&63 == 0 {
			if now := time.Now(); now.Sub(yielded) > 2*time.Millisecond {
				runtime.Gosched()
				yielded = now
			}
		}
		n, err := l.wait()
		if err != nil {
			l.shutdown()
			return
		}
		if n > 0 {
			// One clock reading per batch, for the tunnels' activity.
			l.now = time.Now()
		}
		for i := range n {
			ev := &l.events[i]
			if ev.Fd == wakeData {
				if l.commands() {
					l.shutdown()
					return
				}
				continue
			}
			slot := int(ev.Fd >> 1)
			if slot >= len(l.slots) {
				continue
			}
			t := l.slots[slot]
			if t == nil || t.gen != ev.Pad {
				continue // closed earlier in this batch
			}
			l.event(t, int(ev.Fd&1), ev.Events)
		}
	}
}

// wait returns the next events, parking in Go's poller while there are
// none.
func (l *loop) wait() (int, error) {
	var n int
	var werr error
	err := l.rc.Read(func(fd uintptr) bool {
		for {
			n, werr = syscall.EpollWait(int(fd), l.events, 0)
			if werr != syscall.EINTR {
				break
			}
		}
		// No events: park until the epoll descriptor becomes readable.
		return werr != nil || n > 0
	})
	if err != nil {
		return 0, err
	}
	return n, werr
}

// commands runs the queued commands; true when the loop must stop.
func (l *loop) commands() bool {
	var b [8]byte
	_, _ = syscall.Read(l.wakeR, b[:])
	l.mu.Lock()
	cmds := l.cmds
	l.cmds = l.spare[:0]
	l.woken = false
	stop := l.stopping
	l.mu.Unlock()
	for _, c := range cmds {
		switch {
		case c.add && !stop:
			l.add(c.t)
		case c.add:
			l.closeTunnel(c.t)
		case c.t.slot >= 0:
			l.closeTunnel(c.t)
		}
		// A close of a tunnel not added yet: its add sees closeReq.
	}
	clear(cmds)
	l.spare = cmds[:0]
	return stop
}

// shutdown closes every tunnel, including those still queued, then the
// loop's own descriptors.
func (l *loop) shutdown() {
	l.mu.Lock()
	l.stopping = true
	cmds := l.cmds
	l.cmds = nil
	l.mu.Unlock()
	for _, c := range cmds {
		if c.add {
			l.closeTunnel(c.t)
		}
	}
	for _, t := range l.slots {
		if t != nil {
			l.closeTunnel(t)
		}
	}
	l.mu.Lock()
	_ = syscall.Close(l.wakeR)
	_ = syscall.Close(l.wakeW)
	_ = l.file.Close()
	l.mu.Unlock()
}

func (l *loop) add(t *relayTunnel) {
	if t.closeReq.Load() {
		l.closeTunnel(t)
		return
	}
	var slot int32
	if n := len(l.free); n > 0 {
		slot = l.free[n-1]
		l.free = l.free[:n-1]
	} else {
		slot = int32(len(l.slots))
		l.slots = append(l.slots, nil)
		l.gens = append(l.gens, 0)
	}
	l.gens[slot]++
	t.slot, t.gen = slot, l.gens[slot]
	l.slots[slot] = t
	for side := range 2 {
		e := &t.ends[side]
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: slot<<1 | int32(side), Pad: t.gen}
		if err := syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_ADD, e.fd, &ev); err != nil {
			l.closeTunnel(t)
			return
		}
		e.events = syscall.EPOLLIN
	}
}

// closeTunnel closes both sockets and tells the proxy, once.
func (l *loop) closeTunnel(t *relayTunnel) {
	if t.closed {
		return
	}
	t.closed = true
	for i := range t.ends {
		e := &t.ends[i]
		if t.slot >= 0 {
			_ = syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_DEL, e.fd, nil)
		}
		_ = syscall.Close(e.fd)
		e.fd, e.events, e.pending = -1, 0, nil
	}
	if t.slot >= 0 {
		l.slots[t.slot] = nil
		l.free = append(l.free, t.slot)
		t.slot = -1
	}
	t.onClose()
}

func (l *loop) event(t *relayTunnel, side int, ev uint32) {
	if ev&syscall.EPOLLOUT != 0 {
		l.flush(t, side)
		if t.closed {
			return
		}
	}
	if ev&(syscall.EPOLLIN|syscall.EPOLLHUP|syscall.EPOLLERR) != 0 {
		l.pump(t, side, ev)
	}
}

// pump reads what the side has and writes it to the other.
func (l *loop) pump(t *relayTunnel, side int, ev uint32) {
	src, dst := &t.ends[side], &t.ends[1-side]
	if len(dst.pending) > 0 {
		// Not read until dst drains; but a hang-up or error ends it.
		if ev&(syscall.EPOLLHUP|syscall.EPOLLERR) != 0 {
			l.closeTunnel(t)
		}
		return
	}
	n, err := rawRead(src.fd, l.buf)
	if n <= 0 {
		if n == 0 || !retryable(err) {
			l.closeTunnel(t) // end of stream or error: the tunnel ends
		}
		return
	}
	if t.act != nil {
		t.act.touchAt(l.now)
	}
	m, err := rawWrite(dst.fd, l.buf[:n])
	if m == n {
		return
	}
	if err != nil && !retryable(err) {
		l.closeTunnel(t)
		return
	}
	dst.pending = append([]byte(nil), l.buf[m:n]...)
	l.update(t)
}

// flush writes what waits for the side.
func (l *loop) flush(t *relayTunnel, side int) {
	e := &t.ends[side]
	if len(e.pending) > 0 {
		m, err := rawWrite(e.fd, e.pending)
		e.pending = e.pending[m:]
		if len(e.pending) > 0 {
			if err != nil && !retryable(err) {
				l.closeTunnel(t)
			}
			return
		}
		e.pending = nil
	}
	l.update(t)
}

// update registers what each side waits for: input unless its peer has
// bytes waiting, output while it has.
func (l *loop) update(t *relayTunnel) {
	for i := range t.ends {
		e := &t.ends[i]
		var want uint32
		if len(t.ends[1-i].pending) == 0 {
			want |= syscall.EPOLLIN
		}
		if len(e.pending) > 0 {
			want |= syscall.EPOLLOUT
		}
		if want == e.events {
			continue
		}
		ev := syscall.EpollEvent{Events: want, Fd: t.slot<<1 | int32(i), Pad: t.gen}
		if err := syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_MOD, e.fd, &ev); err != nil {
			l.closeTunnel(t)
			return
		}
		e.events = want
	}
}

// rawRead and rawWrite never block (the sockets are non-blocking). The
// writes use sendmsg(2) with MSG_NOSIGNAL: a peer gone away is an EPIPE
// error, not a signal.
func rawRead(fd int, b []byte) (int, error) {
	n, err := syscall.Read(fd, b)
	if err != nil {
		return -1, err
	}
	return n, nil
}

func rawWrite(fd int, b []byte) (int, error) {
	n, err := syscall.SendmsgN(fd, b, nil, nil, syscall.MSG_NOSIGNAL|syscall.MSG_DONTWAIT)
	if err != nil {
		return 0, err
	}
	return n, nil
}

// retryable: the socket would block, or a signal came first; epoll
// reports it again.
func retryable(err error) bool { return err == syscall.EAGAIN || err == syscall.EINTR }
