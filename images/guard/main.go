//go:build linux

// Command pbs-guard is the first process of every workspace container the
// Docker runtime starts (internal/workspace/docker.go): it is the only way
// into the workspace's code-server, and it answers nobody but the gateway.
//
// Why a guard: code-server runs with --auth none (the gateway authenticates
// users), so whoever connects to it owns the workspace. A published port on
// 127.0.0.1 is open to every local user, a container's bridge address to
// every process of the host, and a stale port cached by a gateway replica
// may by now belong to another user's container. So code-server listens
// only on a unix socket inside the container, and the guard listens in its
// place, on a TCP port (publish and network modes) or a unix socket in a
// volume only root on the host reaches (socket mode). Before it carries a
// single byte to code-server, the connecting side must prove it knows this
// container's secret, and the guard proves it knows it too, so the gateway
// never sends a request to a container that is not the one it inspected:
//
//	gateway → guard   "PBSG1 " hex(nc) "\n"                  nc: 16 random bytes
//	guard → gateway   status " " hex(ns) " " hex(macG) "\n"  ns: 16 random bytes
//	gateway → guard   hex(macC) "\n"                         (only when status is "ok")
//	then the connection is code-server's, both ways.
//
//	macG = HMAC-SHA256(K, "pbs-guard/1\x00guard\x00" status "\x00" nc ns)
//	macC = HMAC-SHA256(K, "pbs-guard/1\x00gateway\x00\x00" nc ns)
//
// K is the container's secret (PBS_GUARD_SECRET, 32 random bytes in hex,
// made by the runtime for each container it creates, read back from the
// container's configuration by any gateway replica). status is "ok", or
// "down" when code-server does not accept connections yet. Neither side
// ever sends K, so a connection that reaches the wrong container (an
// impostor on a recycled port) learns nothing it could replay.
//
// The guard runs as the container's init (PID 1): it reaps orphaned
// processes, passes signals to its child and exits with the child's
// status. It makes itself non-dumpable, so the workspace's own processes
// (same uid) can neither read its environment (the secret) nor trace it,
// and as PID 1 of the container's PID namespace it cannot be killed from
// inside. The child gets the environment without any PBS_GUARD_ variable.
//
// Usage: pbs-guard [--] COMMAND [ARG...], configured by the environment:
//
//	PBS_GUARD_SECRET    required: 64 hex digits
//	PBS_GUARD_LISTEN    tcp:[HOST]:PORT or unix:PATH (default tcp::8081)
//	PBS_GUARD_UPSTREAM  code-server: unix:PATH, or tcp:127.0.0.1:PORT
//	PBS_GUARD_FORWARD   optional LISTEN=TARGET, e.g.
//	                    tcp:127.0.0.1:8080=unix:/run/playbook/gateway.sock:
//	                    carries the workspace's loopback port to the
//	                    gateway's API socket (socket mode, where the
//	                    container has no network but its loopback)
package main

import (
	"bufio"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	envPrefix   = "PBS_GUARD_"
	envSecret   = envPrefix + "SECRET"
	envListen   = envPrefix + "LISTEN"
	envUpstream = envPrefix + "UPSTREAM"
	envForward  = envPrefix + "FORWARD"

	hello         = "PBSG1 "
	nonceLen      = 16
	handshakeTime = 10 * time.Second
	upstreamDial  = 2 * time.Second
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv))
}

// config is what the environment says.
type config struct {
	secret   []byte
	listen   addr
	upstream addr
	forward  *[2]addr // listen, target
}

type addr struct{ network, address string }

func (a addr) String() string { return a.network + ":" + a.address }

func parseAddr(s string) (addr, error) {
	network, rest, ok := strings.Cut(s, ":")
	switch {
	case !ok || rest == "":
		return addr{}, fmt.Errorf("address %q is neither tcp:HOST:PORT nor unix:PATH", s)
	case network == "unix":
		if !filepath.IsAbs(rest) {
			return addr{}, fmt.Errorf("unix socket path %q is not absolute", rest)
		}
	case network == "tcp":
		if _, _, err := net.SplitHostPort(rest); err != nil {
			return addr{}, fmt.Errorf("address %q: %v", s, err)
		}
	default:
		return addr{}, fmt.Errorf("address %q is neither tcp:HOST:PORT nor unix:PATH", s)
	}
	return addr{network, rest}, nil
}

// loopback reports whether a is a unix socket or a TCP address on the
// IPv4 loopback: where the guard may connect or listen for the workspace.
func loopback(a addr) bool {
	if a.network == "unix" {
		return true
	}
	host, _, _ := net.SplitHostPort(a.address)
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback() && ip.To4() != nil
}

func configFromEnv(getenv func(string) string) (config, error) {
	var c config
	secret, err := hex.DecodeString(getenv(envSecret))
	if err != nil || len(secret) < 32 {
		return c, fmt.Errorf("%s must be at least 64 hex digits", envSecret)
	}
	c.secret = secret
	listen := getenv(envListen)
	if listen == "" {
		listen = "tcp::8081"
	}
	if c.listen, err = parseAddr(listen); err != nil {
		return c, fmt.Errorf("%s: %v", envListen, err)
	}
	if c.upstream, err = parseAddr(getenv(envUpstream)); err != nil {
		return c, fmt.Errorf("%s: %v", envUpstream, err)
	}
	if !loopback(c.upstream) {
		return c, fmt.Errorf("%s: code-server must be on a unix socket or the loopback, not %s", envUpstream, c.upstream)
	}
	if f := getenv(envForward); f != "" {
		l, t, ok := strings.Cut(f, "=")
		if !ok {
			return c, fmt.Errorf("%s: want LISTEN=TARGET, got %q", envForward, f)
		}
		la, err := parseAddr(l)
		if err != nil {
			return c, fmt.Errorf("%s: %v", envForward, err)
		}
		ta, err := parseAddr(t)
		if err != nil {
			return c, fmt.Errorf("%s: %v", envForward, err)
		}
		if !loopback(la) || ta.network != "unix" {
			return c, fmt.Errorf("%s: listens on the loopback only and forwards to a unix socket only, not %s", envForward, f)
		}
		c.forward = &[2]addr{la, ta}
	}
	return c, nil
}

// childEnv is env without the guard's own variables.
func childEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if !strings.HasPrefix(kv, envPrefix) {
			out = append(out, kv)
		}
	}
	return out
}

func run(args []string, getenv func(string) string) int {
	logf := func(format string, a ...any) { fmt.Fprintf(os.Stderr, "pbs-guard: "+format+"\n", a...) }
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		logf("usage: pbs-guard [--] COMMAND [ARG...]")
		return 2
	}
	cfg, err := configFromEnv(getenv)
	if err != nil {
		logf("%v", err)
		return 2
	}
	// Nobody of the container's uid may read the secret from /proc or
	// trace this process.
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_DUMPABLE, 0, 0); errno != 0 {
		logf("prctl(PR_SET_DUMPABLE): %v", errno)
		return 1
	}
	ln, err := listen(cfg.listen)
	if err != nil {
		logf("%v", err)
		return 1
	}
	g := &guard{key: cfg.secret, upstream: cfg.upstream, logf: logf}
	go g.serve(ln)
	if cfg.forward != nil {
		fl, err := listen(cfg.forward[0])
		if err != nil {
			logf("%v", err)
			return 1
		}
		go forward(fl, cfg.forward[1], logf)
	}
	if cfg.upstream.network == "unix" {
		// code-server makes its socket, not the folder.
		if err := os.MkdirAll(filepath.Dir(cfg.upstream.address), 0o700); err != nil {
			logf("%v", err)
			return 1
		}
	}
	return supervise(args, childEnv(os.Environ()), logf)
}

func listen(a addr) (net.Listener, error) {
	if a.network == "unix" {
		_ = os.Remove(a.address) // a socket left by an earlier run
		ln, err := net.Listen("unix", a.address)
		if err != nil {
			return nil, fmt.Errorf("listen on %s: %w", a, err)
		}
		// The handshake is the access control; the folder (a volume
		// only root on the host enters) is the first.
		if err := os.Chmod(a.address, 0o666); err != nil {
			ln.Close()
			return nil, err
		}
		return ln, nil
	}
	ln, err := net.Listen("tcp", a.address)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", a, err)
	}
	return ln, nil
}

// supervise starts the child and waits for it, reaping every other
// process that ends (the guard is the container's init) and passing on
// the signals a container receives.
func supervise(args, env []string, logf func(string, ...any)) int {
	sigs := make(chan os.Signal, 32)
	signal.Notify(sigs, syscall.SIGCHLD, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP,
		syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH)
	path, err := exec.LookPath(args[0])
	if err != nil {
		logf("%v", err)
		return 127
	}
	proc, err := os.StartProcess(path, args, &os.ProcAttr{
		Env:   env,
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr},
	})
	if err != nil {
		logf("start %s: %v", args[0], err)
		return 126
	}
	for {
		// Reap first: the child may have ended before the signal was
		// set up to be noticed.
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if err == syscall.EINTR {
				continue
			}
			if pid <= 0 || err != nil {
				break
			}
			if pid == proc.Pid {
				switch {
				case ws.Exited():
					return ws.ExitStatus()
				case ws.Signaled():
					return 128 + int(ws.Signal())
				}
				return 1
			}
		}
		sig := <-sigs
		if sig != syscall.SIGCHLD {
			_ = proc.Signal(sig)
		}
	}
}

// guard answers connections on the listening address.
type guard struct {
	key      []byte
	upstream addr
	logf     func(string, ...any)
}

func (g *guard) serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			g.logf("accept: %v", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		go g.handle(c)
	}
}

// mac is the handshake's proof of K for role ("guard" or "gateway").
func mac(key []byte, role, status string, nc, ns []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte("pbs-guard/1\x00" + role + "\x00" + status + "\x00"))
	h.Write(nc)
	h.Write(ns)
	return h.Sum(nil)
}

// readLine reads one line of at most bufio's buffer (4 KiB).
func readLine(br *bufio.Reader) (string, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(string(line), "\n"), nil
}

func (g *guard) handle(c net.Conn) {
	spliced := false
	defer func() {
		if !spliced {
			c.Close()
		}
	}()
	_ = c.SetDeadline(time.Now().Add(handshakeTime))
	br := bufio.NewReaderSize(c, 4096)
	line, err := readLine(br)
	if err != nil || !strings.HasPrefix(line, hello) {
		return
	}
	nc, err := hex.DecodeString(strings.TrimPrefix(line, hello))
	if err != nil || len(nc) != nonceLen {
		return
	}
	ns := make([]byte, nonceLen)
	if _, err := rand.Read(ns); err != nil {
		return
	}
	up, uerr := net.DialTimeout(g.upstream.network, g.upstream.address, upstreamDial)
	status := "ok"
	if uerr != nil {
		status = "down"
	} else {
		defer func() {
			if !spliced {
				up.Close()
			}
		}()
	}
	if _, err := fmt.Fprintf(c, "%s %s %s\n", status, hex.EncodeToString(ns), hex.EncodeToString(mac(g.key, "guard", status, nc, ns))); err != nil || uerr != nil {
		return
	}
	line, err = readLine(br)
	if err != nil {
		return
	}
	got, err := hex.DecodeString(line)
	if err != nil || !hmac.Equal(got, mac(g.key, "gateway", "", nc, ns)) {
		return
	}
	_ = c.SetDeadline(time.Time{})
	spliced = true
	splice(c, br, up)
}

// forward carries each connection on ln to the unix socket target.
func forward(ln net.Listener, target addr, logf func(string, ...any)) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			logf("accept: %v", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		go func() {
			t, err := net.DialTimeout(target.network, target.address, upstreamDial)
			if err != nil {
				c.Close()
				return
			}
			splice(c, c, t)
		}()
	}
}

// splice copies a→b (reading a through ar, which may hold bytes already
// read) and b→a until both directions end, passing on half-closes.
func splice(a net.Conn, ar io.Reader, b net.Conn) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, _ = io.Copy(b, ar)
		closeWrite(b)
	}()
	_, _ = io.Copy(a, b)
	closeWrite(a)
	wg.Wait()
	a.Close()
	b.Close()
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
		return
	}
	_ = c.Close()
}
