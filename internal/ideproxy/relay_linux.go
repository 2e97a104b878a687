//go:build linux

package ideproxy

import (
	"errors"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// The WebSocket relay: a few event loops, each an epoll instance over the
// raw non-blocking sockets of its tunnels, level-triggered. A readable
// socket is read once into the loop's buffer and written to its peer; only
// when that write would block does the rest wait in a buffer of the
// tunnel's own, with EPOLLOUT on the peer and EPOLLIN off on the reader
// until it drains. An idle tunnel holds two file descriptors and a small
// struct: no goroutines, no buffers.
//
// The sockets are duplicates of the net.Conns' descriptors, which are
// closed (that takes them out of Go's poller); the loop alone closes the
// duplicates, so a descriptor number it watches can never belong to
// another socket. Events carry a slot and its generation: an event of a
// tunnel closed earlier in the same batch is recognised and skipped.

var errNoRelay = errors.New("ideproxy: connection without a raw socket")

var errRelayClosed = errors.New("ideproxy: relay closed")

// relayLoops is how many event loops the relay runs.
func relayLoops() int {
	if v, err := strconv.Atoi(relayLoopsX); err == nil && v > 0 { // EXPERIMENT
		return v
	}
	return max(runtime.GOMAXPROCS(0)-1, 1)
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

// dupConn duplicates c's socket descriptor (close-on-exec; it shares the
// original's non-blocking mode).
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
		r, _, e := syscall.Syscall(syscall.SYS_FCNTL, s, syscall.F_DUPFD_CLOEXEC, 0)
		if e != 0 {
			derr = e
			return
		}
		fd = int(r)
	}); err != nil {
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
	epfd, evfd int
	file       *os.File
	done       chan struct{}

	mu       sync.Mutex
	cmds     []loopCmd
	woken    bool // evfd was written since the loop last took cmds
	stopping bool

	// The loop goroutine's own.
	spare  []loopCmd
	slots  []*relayTunnel
	gens   []int32
	free   []int32
	buf    []byte
	events []syscall.EpollEvent
}

const wakeData = -1 // the event data of the eventfd

func newLoop() (*loop, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	r, _, e := syscall.Syscall(syscall.SYS_EVENTFD2, 0, syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if e != 0 {
		_ = syscall.Close(epfd)
		return nil, e
	}
	evfd := int(r)
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: wakeData}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, evfd, &ev); err != nil {
		_ = syscall.Close(evfd)
		_ = syscall.Close(epfd)
		return nil, err
	}
	l := &loop{epfd: epfd, evfd: evfd, done: make(chan struct{}),
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

// wakeLocked writes the eventfd, under l.mu: the loop closes it under
// l.mu too, once stopping, so this never writes to a reused number.
func (l *loop) wakeLocked() {
	if l.woken {
		return
	}
	l.woken = true
	one := uint64(1)
	_, _, _ = syscall.RawSyscall(syscall.SYS_WRITE, uintptr(l.evfd), uintptr(unsafe.Pointer(&one)), 8)
}

// EXPERIMENT knobs, set with -ldflags -X.
var relayMode, relayLoopsX string

var relaySlice string // EXPERIMENT: custom EEVDF slice in µs for the loop thread

func (l *loop) run() {
	defer close(l.done)
	if us, err := strconv.Atoi(relaySlice); err == nil && us > 0 {
		runtime.LockOSThread()
		attr := [14]uint32{0: 56} // struct sched_attr, SCHED_NORMAL, nice 0
		rt := uint64(us) * 1000
		attr[6], attr[7] = uint32(rt), uint32(rt>>32) // sched_runtime at offset 24
		_, _, e := syscall.RawSyscall(314, 0, uintptr(unsafe.Pointer(&attr[0])), 0)
		if e != 0 {
			println("sched_setattr:", e.Error())
		}
	}
	var wait func() (int, error)
	if relayMode == "poll" {
		// Wait in Go's poller: the epoll descriptor is itself pollable.
		_ = syscall.SetNonblock(l.epfd, true)
		f := os.NewFile(uintptr(l.epfd), "epoll")
		rc, err := f.SyscallConn()
		if err != nil {
			panic(err)
		}
		l.file = f
		wait = func() (int, error) {
			var n int
			var werr error
			err := rc.Read(func(fd uintptr) bool {
				r, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_WAIT, fd, uintptr(unsafe.Pointer(&l.events[0])), uintptr(len(l.events)), 0, 0, 0)
				if e != 0 {
					if e == syscall.EINTR {
						return false
					}
					werr = e
					return true
				}
				n = int(r)
				return n > 0
			})
			if err != nil {
				return 0, err
			}
			return n, werr
		}
	} else {
		wait = func() (int, error) { return syscall.EpollWait(l.epfd, l.events, -1) }
	}
	for {
		n, err := wait()
		if err != nil {
			if err == syscall.EINTR {
				continue
			}
			l.shutdown()
			return
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

// commands runs the queued commands; true when the loop must stop.
func (l *loop) commands() bool {
	var b [8]byte
	_, _, _ = syscall.RawSyscall(syscall.SYS_READ, uintptr(l.evfd), uintptr(unsafe.Pointer(&b[0])), 8)
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
	_ = syscall.Close(l.evfd)
	if l.file != nil {
		_ = l.file.Close()
	} else {
		_ = syscall.Close(l.epfd)
	}
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
		if n == 0 || err != syscall.EAGAIN && err != syscall.EINTR {
			l.closeTunnel(t) // end of stream or error: the tunnel ends
		}
		return
	}
	m, err := rawWrite(dst.fd, l.buf[:n])
	if m == n {
		return
	}
	if err != 0 && err != syscall.EAGAIN && err != syscall.EINTR {
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
			if err != 0 && err != syscall.EAGAIN && err != syscall.EINTR {
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

// rawRead and rawWrite never block (the sockets are non-blocking), so
// they skip the scheduler's syscall bookkeeping. The writes use send(2)
// with MSG_NOSIGNAL.
func rawRead(fd int, b []byte) (int, syscall.Errno) {
	r, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), syscall.MSG_DONTWAIT, 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(r), 0
}

func rawWrite(fd int, b []byte) (int, syscall.Errno) {
	r, _, e := syscall.RawSyscall6(syscall.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)),
		syscall.MSG_NOSIGNAL|syscall.MSG_DONTWAIT, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), 0
}
